//! Test topology helpers: private netns, devices, addresses, UDP probes.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nk_netlink::{NetkitMode, NetkitSpec, NetnsFd, NetnsRef, RtSocket};

use crate::harness::{Stop, TResult};

/// The UDP port the BPF programs under `bpf/` treat as a probe.
pub const PROBE_PORT: u16 = 4242;

/// Where the BPF objects are (`--bpf-dir`).
pub fn bpf_obj(dir: &Path, name: &str) -> Result<PathBuf, Stop> {
    let p = dir.join(name);
    if !p.is_file() {
        return Err(Stop::Fail(format!(
            "{} missing: cargo xtask vmtest builds it, unless this kernel lacks \
             the BTF types its `// nkdev: requires-btf` lines name (the base \
             kernel without the series)",
            p.display()
        )));
    }
    Ok(p)
}

/// Skips unless root (the VM runs tests as root; a host `cargo test` must not).
pub fn require_root() -> TResult {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(Stop::Skip(
            "needs root: run in the VM with `cargo xtask vmtest`".into(),
        ));
    }
    Ok(())
}

/// A private netns with its own rtnetlink socket, brought up with lo.
pub struct Ns {
    pub fd: NetnsFd,
}

/// Brings up `lo` in the calling thread's netns.
pub fn lo_up() -> TResult {
    let mut s = RtSocket::open()?;
    let lo = s.link_get("lo")?;
    s.link_set(
        lo.index,
        &nk_netlink::LinkChange {
            up: Some(true),
            ..Default::default()
        },
    )?;
    Ok(())
}

/// A named netns (`ip netns add` style, so user space can find it in
/// /run/netns) with lo up.
pub fn named_netns(name: &str) -> Result<NetnsFd, Stop> {
    let fd = NetnsFd::create_named(name)?;
    fd.run(lo_up)??;
    Ok(fd)
}

/// `SO_ERROR` of a socket (-1 if getsockopt fails).
pub fn so_error(fd: std::os::fd::RawFd) -> i32 {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v and len are live and sized for SO_ERROR's int.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return -1;
    }
    v
}

impl Ns {
    pub fn new() -> Result<Ns, Stop> {
        let ns = Ns {
            fd: NetnsFd::create()?,
        };
        ns.run(lo_up)??;
        Ok(ns)
    }

    /// Runs `f` with the calling thread inside this netns.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> Result<T, Stop> {
        Ok(self.fd.run(f)?)
    }

    /// An rtnetlink socket in this netns (bound to it for its lifetime).
    pub fn rt(&self) -> Result<RtSocket, Stop> {
        self.run(RtSocket::open)?.map_err(Stop::from)
    }

    pub fn as_ref(&self) -> NetnsRef<'_> {
        NetnsRef::Fd(std::os::fd::AsFd::as_fd(&self.fd))
    }
}

/// ifindex of `name` in `ns`.
pub fn ifindex(ns: &Ns, name: &str) -> Result<u32, Stop> {
    Ok(ns.rt()?.link_get(name)?.index)
}

/// Sets a device up.
pub fn up(ns: &Ns, name: &str) -> TResult {
    let mut s = ns.rt()?;
    let l = s.link_get(name)?;
    s.link_set(
        l.index,
        &nk_netlink::LinkChange {
            up: Some(true),
            ..Default::default()
        },
    )?;
    Ok(())
}

/// Adds an IPv4 address to a device.
pub fn addr(ns: &Ns, dev: &str, cidr: &str) -> TResult {
    let (a, p) = nk_netlink::addr::parse_cidr(cidr)?;
    let mut s = ns.rt()?;
    let l = s.link_get(dev)?;
    s.addr_add(l.index, a, p)?;
    Ok(())
}

/// Host/Pod pair: `nk0` (primary) in `host`, `nk1` (peer) in `pod`,
/// 10.0.0.1/24 and 10.0.0.2/24, both up.
pub struct NetkitPair {
    pub host: Ns,
    pub pod: Ns,
    pub primary: u32,
    pub peer: u32,
}

pub const POD_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

pub fn netkit_pair(mode: NetkitMode) -> Result<NetkitPair, Stop> {
    let host = Ns::new()?;
    let pod = Ns::new()?;
    let mut spec = NetkitSpec::new("nk0", "nk1", mode);
    spec.peer.netns = Some(pod.as_ref());
    host.rt()?.netkit_add(&spec)?;
    addr(&host, "nk0", "10.0.0.1/24")?;
    addr(&pod, "nk1", "10.0.0.2/24")?;
    up(&host, "nk0")?;
    up(&pod, "nk1")?;
    let primary = ifindex(&host, "nk0")?;
    let peer = ifindex(&pod, "nk1")?;
    Ok(NetkitPair {
        host,
        pod,
        primary,
        peer,
    })
}

/// A UDP socket bound in `ns` on `ip:PROBE_PORT`, with a receive timeout.
pub fn listen(ns: &Ns, ip: Ipv4Addr) -> Result<UdpSocket, Stop> {
    let s = ns.run(|| UdpSocket::bind(SocketAddr::from((ip, PROBE_PORT))))??;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    Ok(s)
}

/// Sends `n` probes from `ns` to `dst:PROBE_PORT`.
pub fn send_probes(ns: &Ns, dst: Ipv4Addr, n: usize) -> TResult {
    let s = ns.run(|| UdpSocket::bind("0.0.0.0:0"))??;
    for i in 0..n {
        s.send_to(
            format!("probe {i}").as_bytes(),
            SocketAddr::from((dst, PROBE_PORT)),
        )?;
    }
    Ok(())
}

/// Receives `n` probes or fails naming how many arrived.
pub fn recv_probes(s: &UdpSocket, n: usize) -> TResult {
    let mut buf = [0u8; 64];
    for i in 0..n {
        if let Err(e) = s.recv_from(&mut buf) {
            return Err(Stop::Fail(format!("received {i} of {n} probes: {e}")));
        }
    }
    Ok(())
}

/// `src --veth1/veth0--> host --(bpf_redirect_peer at veth0's tcx
/// ingress)--> pod nk1`, the way Cilium delivers traffic into a Pod. The
/// program is not attached yet; `redirect_target` is nk0's ifindex.
pub struct RedirectTopo {
    /// Where traffic comes from (the other end of veth0).
    pub src: Ns,
    /// Holds veth0 and the netkit primary nk0.
    pub host: Ns,
    /// Holds the netkit peer nk1, 10.2.0.2/24.
    pub pod: Ns,
    /// nk1's address.
    pub pod_ip: Ipv4Addr,
    /// veth0's ifindex in `host`.
    pub veth0: u32,
    /// nk0's ifindex in `host`, for the program's config.
    pub redirect_target: u32,
}

/// Builds a [`RedirectTopo`] with a netkit pair in `mode`.
pub fn redirect_topo(mode: NetkitMode) -> Result<RedirectTopo, Stop> {
    let src = Ns::new()?;
    let host = Ns::new()?;
    let pod = Ns::new()?;
    host.rt()?.veth_add("veth0", "veth1", Some(src.as_ref()))?;
    let mut spec = NetkitSpec::new("nk0", "nk1", mode);
    spec.peer.netns = Some(pod.as_ref());
    host.rt()?.netkit_add(&spec)?;
    for (ns, dev) in [
        (&host, "veth0"),
        (&src, "veth1"),
        (&host, "nk0"),
        (&pod, "nk1"),
    ] {
        up(ns, dev)?;
    }
    addr(&src, "veth1", "10.1.0.1/24")?;
    addr(&pod, "nk1", "10.2.0.2/24")?;
    let pod_ip = Ipv4Addr::new(10, 2, 0, 2);
    let veth0 = host.rt()?.link_get("veth0")?;
    let veth0_mac = veth0
        .address
        .as_ref()
        .and_then(|a| a.mac())
        .ok_or("veth0 MAC")?;
    let mut s = src.rt()?;
    let veth1 = s.link_get("veth1")?.index;
    s.route_add(
        std::net::IpAddr::V4(Ipv4Addr::new(10, 2, 0, 0)),
        24,
        veth1,
        None,
    )?;
    s.neigh_add(veth1, pod_ip.into(), veth0_mac)?;
    if mode == NetkitMode::L2 {
        // The frame keeps veth0's MAC as destination; let the pod take it.
        let nk1 = pod.rt()?.link_get("nk1")?.index;
        pod.rt()?.link_set(
            nk1,
            &nk_netlink::LinkChange {
                mac: Some(veth0_mac),
                ..Default::default()
            },
        )?;
    }
    let redirect_target = host.rt()?.link_get("nk0")?.index;
    Ok(RedirectTopo {
        src,
        host,
        pod,
        pod_ip,
        veth0: veth0.index,
        redirect_target,
    })
}

/// `ip ARGS` inside `ns`, failing with its stderr.
pub fn ip(ns: &Ns, args: &[&str]) -> TResult {
    let out = ns.run(|| std::process::Command::new("ip").args(args).output())??;
    if !out.status.success() {
        return Err(Stop::Fail(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

impl RedirectTopo {
    /// Loads `nk_redirect.bpf.o`, points it at nk0 and attaches
    /// `nk_redirect_peer` at veth0's tcx ingress; returns the object and
    /// the link (detached when dropped).
    pub fn attach_redirect(
        &self,
        bpf_dir: &Path,
    ) -> Result<(nk_bpf::Object, nk_bpf::LinkFd), Stop> {
        let obj = nk_bpf::Object::load(&bpf_obj(bpf_dir, "nk_redirect.bpf.o")?)?;
        obj.map("cfg")?.set_u32(0, self.redirect_target)?;
        let at = nk_bpf::AttachPoint::Tcx {
            ifindex: self.veth0,
            dir: nk_bpf::Direction::Ingress,
        };
        let link = self.host.run(|| {
            nk_bpf::mprog::link_create(
                &obj.prog("nk_redirect_peer")?,
                at,
                nk_bpf::Anchor::Last,
                None,
            )
        })??;
        Ok((obj, link))
    }
}

/// The bpffs pins of `bpf/nk_e2e.bpf.c`'s maps: pinned by name, so that every
/// object loaded for the node (one per endpoint, by nkctl) shares them.
pub const E2E_PINS: [&str; 2] = ["/sys/fs/bpf/nk_e2e_eps", "/sys/fs/bpf/nk_e2e_cfg"];

/// Tells the e2e datapath about a Pod: its IPv4 address maps to its
/// host-side device `dev` and the MAC of its `eth0` (zero for netkit L3).
pub fn e2e_add_endpoint(
    eps: &nk_bpf::MapFd,
    host: &Ns,
    dev: &str,
    pod_ns: &str,
    ip: Ipv4Addr,
) -> TResult {
    let pod = Ns {
        fd: NetnsFd::named(pod_ns)?,
    };
    let mac = pod.rt()?.link_get("eth0")?.address.unwrap_or_default();
    // struct nk_ep { __u32 ifindex; __u8 mac[6]; __u8 pad[2]; }
    let mut v = [0u8; 12];
    v[..4].copy_from_slice(&host.rt()?.link_get(dev)?.index.to_ne_bytes());
    if mac.len() == 6 {
        v[4..10].copy_from_slice(&mac);
    }
    eps.update(&ip.octets(), &v)?;
    Ok(())
}

/// Removes the e2e datapath's pins (what a run leaves in bpffs).
pub fn e2e_remove_pins() {
    for p in E2E_PINS {
        let _ = std::fs::remove_file(p);
    }
}
