//! `nkctl endpoint add|del`: a Pod-like endpoint the way Cilium's
//! `--datapath-mode={veth,netkit,netkit-l2}` sets one up.
//!
//! Host side: device NAME, up, a /32 (/128) route to the Pod's address.
//! Pod side (netns NS, created if missing): `eth0` with the address, lo
//! up, and a default route via a link-local gateway (169.254.0.1 or
//! fe80::1) on-link. In the L2 modes the gateway gets a permanent
//! neighbour entry with the host device's MAC; netkit in L3 mode has no
//! L2 address at all (the kernel reports an all-zero MAC), so it needs
//! and gets no neighbour entry.
//!
//! Anything created is removed again if a later step fails.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsFd;
use std::path::PathBuf;

use nk_bpf::{mprog, pin, Anchor, AttachPoint, Direction, NetkitSide, Object};
use nk_netlink::{
    addr::parse_cidr, link::check_ifname, LinkChange, Mac, NetkitMode, NetkitSpec, NetkitSync,
    NetnsFd, NetnsRef, RtSocket,
};

use crate::cli::Error;

/// Cilium's datapath modes (`--json` spells them as the CLI does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// A veth pair.
    Veth,
    /// netkit in L3 mode.
    Netkit,
    /// netkit in L2 mode.
    NetkitL2,
}

/// The Pod-side device name.
pub const POD_DEV: &str = "eth0";
/// Where endpoint programs are pinned.
pub const PIN_ROOT: &str = "/sys/fs/bpf/nkdev/endpoints";

#[derive(clap::Args)]
pub struct EndpointAdd {
    /// Host-side device name (e.g. lxc0123).
    pub name: String,
    /// Datapath mode.
    #[arg(long, value_enum)]
    pub mode: Mode,
    /// The Pod's netns name (under /run/netns; created if missing).
    #[arg(long)]
    pub netns: String,
    /// The Pod's address, ADDR/PREFIX.
    #[arg(long)]
    pub addr: String,
    /// ELF object with the endpoint program to attach (pinned under
    /// /sys/fs/bpf/nkdev/endpoints/NAME).
    #[arg(long)]
    pub bpf: Option<PathBuf>,
    /// Program name in --bpf; runs on traffic from the Pod (netkit peer
    /// list, or tcx ingress of the host veth).
    #[arg(long, default_value = "nk_endpoint_from_pod", requires = "bpf")]
    pub prog: String,
    /// Settings the host-side primary owns for the pair (IFLA_NETKIT_SYNC,
    /// netkit modes only): mtu, gso, mtu,gso or none. With gso, BIG TCP
    /// limits set on the primary reach the Pod's eth0.
    #[arg(long, value_name = "mtu,gso")]
    pub sync: Option<NetkitSync>,
}

#[derive(clap::Args)]
pub struct EndpointDel {
    /// Host-side device name.
    pub name: String,
    /// Also delete this netns (only if nkctl may: it is removed like `ip netns del`).
    #[arg(long)]
    pub netns: Option<String>,
}

/// What `endpoint add` made, for the output and for rollback.
#[derive(serde::Serialize)]
pub struct Endpoint {
    pub name: String,
    pub ifindex: u32,
    pub mode: Mode,
    pub netns: String,
    pub pod_dev: &'static str,
    pub pod_ifindex: u32,
    pub addr: String,
    /// The Pod device's MAC; None for netkit in L3 mode (no L2 address).
    pub pod_mac: Option<String>,
    pub pinned: Option<String>,
}

fn gateway(addr: &IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::new(169, 254, 0, 1)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
    }
}

fn mac_of(a: &Option<nk_netlink::HwAddr>) -> Option<Mac> {
    a.as_ref().filter(|a| !a.is_zero())?.mac()
}

struct Rollback {
    link: Option<u32>,
    netns: Option<String>,
    pin_dir: Option<PathBuf>,
}

impl Rollback {
    fn undo(&mut self, host: &mut RtSocket) {
        if let Some(d) = self.pin_dir.take() {
            let _ = std::fs::remove_dir_all(d);
            prune_pin_root();
        }
        if let Some(i) = self.link.take() {
            let _ = host.link_del(i);
        }
        if let Some(n) = self.netns.take() {
            let _ = NetnsFd::delete_named(&n);
        }
    }
}

pub fn add(a: &EndpointAdd) -> Result<Endpoint, Error> {
    // Check everything we can before the first syscall.
    check_ifname(&a.name)?;
    let (addr, prefix) = parse_cidr(&a.addr)?;
    if a.netns.is_empty() || a.netns.contains('/') {
        return Err(format!("invalid netns name {:?}", a.netns).into());
    }
    if a.sync.is_some() && a.mode == Mode::Veth {
        return Err("--sync is a netkit setting: a veth endpoint has no primary that owns its peer's settings".into());
    }
    if let Some(obj) = &a.bpf {
        if !obj.is_file() {
            return Err(format!("--bpf {}: no such file", obj.display()).into());
        }
        pin::check_bpffs(&PathBuf::from(PIN_ROOT).join("x"))
            .or_else(|_| pin::check_bpffs(std::path::Path::new("/sys/fs/bpf/x")))?;
    }
    let mut host = RtSocket::open()?;
    if host.link_get(&a.name).is_ok() {
        return Err(format!("device {} exists already", a.name).into());
    }
    let mut rb = Rollback {
        link: None,
        netns: None,
        pin_dir: None,
    };
    let r = add_steps(a, addr, prefix, &mut host, &mut rb);
    if r.is_err() {
        rb.undo(&mut host);
    }
    r
}

fn add_steps(
    a: &EndpointAdd,
    addr: IpAddr,
    prefix: u8,
    host: &mut RtSocket,
    rb: &mut Rollback,
) -> Result<Endpoint, Error> {
    let ns = match NetnsFd::named(&a.netns) {
        Ok(ns) => ns,
        Err(_) => {
            let ns = NetnsFd::create_named(&a.netns)?;
            rb.netns = Some(a.netns.clone());
            ns
        }
    };
    let peer_ns = NetnsRef::Fd(ns.as_fd());
    match a.mode {
        Mode::Veth => host.veth_add(&a.name, POD_DEV, Some(peer_ns))?,
        Mode::Netkit | Mode::NetkitL2 => {
            let mode = if a.mode == Mode::Netkit {
                NetkitMode::L3
            } else {
                NetkitMode::L2
            };
            let mut spec = NetkitSpec::new(&a.name, POD_DEV, mode);
            spec.peer.netns = Some(peer_ns);
            spec.sync = a.sync;
            host.netkit_add(&spec)?;
        }
    }
    let hl = host.link_get(&a.name)?;
    rb.link = Some(hl.index);
    host.link_set(
        hl.index,
        &LinkChange {
            up: Some(true),
            ..Default::default()
        },
    )?;
    let full = if addr.is_ipv4() { 32 } else { 128 };
    host.route_add(addr, full, hl.index, None)?;

    let mut pod = ns.run(RtSocket::open)??;
    let lo = pod.link_get("lo")?;
    pod.link_set(
        lo.index,
        &LinkChange {
            up: Some(true),
            ..Default::default()
        },
    )?;
    let pl = pod.link_get(POD_DEV)?;
    pod.addr_add(pl.index, addr, prefix)?;
    pod.link_set(
        pl.index,
        &LinkChange {
            up: Some(true),
            ..Default::default()
        },
    )?;
    let gw = gateway(&addr);
    if a.mode != Mode::Netkit {
        let host_mac = mac_of(&hl.address)
            .ok_or_else(|| format!("{} has no MAC address in {:?} mode", a.name, a.mode))?;
        pod.neigh_add(pl.index, gw, host_mac)?;
    }
    let default = if addr.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    };
    pod.route_add(default, 0, pl.index, Some(gw))?;

    let mut pinned = None;
    if let Some(obj) = &a.bpf {
        let o = Object::load(obj)?;
        let prog = o.prog(&a.prog)?;
        let at = match a.mode {
            Mode::Veth => AttachPoint::Tcx {
                ifindex: hl.index,
                dir: Direction::Ingress,
            },
            _ => AttachPoint::Netkit {
                ifindex: hl.index,
                side: NetkitSide::Peer,
            },
        };
        let dir = PathBuf::from(PIN_ROOT).join(&a.name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        rb.pin_dir = Some(dir.clone());
        let link = mprog::link_create(&prog, at, Anchor::Last, None)?;
        let p = dir.join("from-pod");
        pin::pin(&link, &p)?;
        pinned = Some(p.display().to_string());
    }
    let pod_mac = mac_of(&pod.link_get(POD_DEV)?.address).map(|m| m.to_string());
    // Success: nothing to roll back.
    *rb = Rollback {
        link: None,
        netns: None,
        pin_dir: None,
    };
    Ok(Endpoint {
        name: a.name.clone(),
        ifindex: hl.index,
        mode: a.mode,
        netns: a.netns.clone(),
        pod_dev: POD_DEV,
        pod_ifindex: pl.index,
        addr: a.addr.clone(),
        pod_mac,
        pinned,
    })
}

/// Removes the pin directories above an endpoint's when they are empty,
/// so that deleting the last endpoint leaves bpffs as it was.
fn prune_pin_root() {
    let root = PathBuf::from(PIN_ROOT);
    if std::fs::remove_dir(&root).is_ok() {
        if let Some(parent) = root.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

pub fn del(d: &EndpointDel) -> Result<(), Error> {
    check_ifname(&d.name)?;
    let dir = PathBuf::from(PIN_ROOT).join(&d.name);
    if dir.exists() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
        for e in entries.flatten() {
            // Detach explicitly: the link may be held elsewhere too.
            if let Ok(fd) = pin::get(&e.path()) {
                let _ = nk_bpf::LinkFd::from_owned(fd).detach();
            }
            pin::unpin(&e.path())?;
        }
        std::fs::remove_dir(&dir).map_err(|e| format!("removing {}: {e}", dir.display()))?;
        prune_pin_root();
    }
    let mut host = RtSocket::open()?;
    let l = host.link_get(&d.name)?;
    host.link_del(l.index)?;
    if let Some(n) = &d.netns {
        NetnsFd::delete_named(n)?;
    }
    Ok(())
}

pub fn table(e: &Endpoint) -> String {
    format!(
        "endpoint {} (ifindex {}, {}) -> netns {} {} (ifindex {}) {} mac {}{}\n",
        e.name,
        e.ifindex,
        match e.mode {
            Mode::Veth => "veth",
            Mode::Netkit => "netkit",
            Mode::NetkitL2 => "netkit-l2",
        },
        e.netns,
        e.pod_dev,
        e.pod_ifindex,
        e.addr,
        e.pod_mac
            .as_deref()
            .unwrap_or("none (netkit l3: no L2 address, no ARP)"),
        e.pinned
            .as_deref()
            .map(|p| format!(", program pinned at {p}"))
            .unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(mode: Mode, mac: Option<&str>) -> Endpoint {
        Endpoint {
            name: "lxc0".into(),
            ifindex: 7,
            mode,
            netns: "pod0".into(),
            pod_dev: POD_DEV,
            pod_ifindex: 2,
            addr: "10.250.0.2/32".into(),
            pod_mac: mac.map(String::from),
            pinned: Some(format!("{PIN_ROOT}/lxc0/from-pod")),
        }
    }

    #[test]
    fn endpoint_output_snapshot() {
        let text = [
            ep(Mode::Netkit, None),
            ep(Mode::NetkitL2, Some("02:00:00:00:00:02")),
            ep(Mode::Veth, Some("aa:bb:cc:00:00:01")),
        ]
        .iter()
        .map(table)
        .collect::<String>();
        insta::assert_snapshot!(text);
    }

    #[test]
    fn endpoint_json_snapshot() {
        let eps = [
            ep(Mode::Netkit, None),
            ep(Mode::Veth, Some("aa:bb:cc:00:00:01")),
        ];
        insta::assert_snapshot!(crate::output::json(&eps).unwrap());
    }

    #[test]
    fn sync_is_refused_for_veth_before_any_syscall() {
        let a = EndpointAdd {
            name: "lxc0".into(),
            mode: Mode::Veth,
            netns: "pod0".into(),
            addr: "10.250.0.2/32".into(),
            bpf: None,
            prog: "nk_endpoint_from_pod".into(),
            sync: Some(NetkitSync(NetkitSync::GSO)),
        };
        // Unprivileged and with the syscall fake failing closed: the error
        // must come from the check, not from the kernel.
        let Err(e) = add(&a) else {
            panic!("a veth endpoint with --sync was accepted");
        };
        let e = e.to_string();
        assert!(e.contains("--sync is a netkit setting"), "{e}");
    }

    #[test]
    fn an_all_zero_mac_is_no_mac() {
        assert_eq!(mac_of(&Some(nk_netlink::HwAddr(vec![0; 6]))), None);
        assert_eq!(mac_of(&None), None);
        assert_eq!(
            mac_of(&Some(nk_netlink::HwAddr(vec![2, 0, 0, 0, 0, 1]))),
            Some(Mac([2, 0, 0, 0, 0, 1]))
        );
    }
}
