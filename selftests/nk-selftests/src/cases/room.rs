//! A netkit pair's headroom against Open vSwitch, the master that asks
//! its ports for a datapath-wide rx headroom (`ndo_set_rx_headroom`)
//! under `ovs_mutex` alone, without RTNL. The bridge's case, under RTNL,
//! is upstream-style in `netkit_pair` (test_progs).

use std::sync::atomic::{AtomicBool, Ordering};

use nk_netlink::ovs::{Ovs, VportType};
use nk_netlink::{LinkChange, NetkitMode, NetkitSpec};

use crate::env::{self, Ns};
use crate::harness::{Reporter, Stop, TResult};
use crate::{check, check_eq, Ctx};

/// `NET_SKB_PAD` on x86_64 (`max(32, L1_CACHE_BYTES)`): what netkit
/// counts a reset request (-1, a port leaving OVS) as. netkit's own
/// forwarding headroom, which OVS adds into its request, is 0
/// (`IFF_PHONY_HEADROOM`), as is OVS's internal port's.
const NET_SKB_PAD: u16 = 64;
/// A vxlan device over IPv6 without a lower device needs
/// ETH_HLEN + ipv6hdr + udphdr + vxlanhdr + ETH_HLEN = 84 bytes.
const VXLAN6_HEADROOM: u16 = 84;

const DP: &str = "nkdp";

/// An OVS datapath in `ns`, deleted (with its ports) when dropped. One
/// socket, opened in `ns` (and bound to it), serves every request; the
/// race subtest shares it between threads.
struct Datapath {
    ovs: std::sync::Mutex<Ovs>,
    ifindex: i32,
}

impl Datapath {
    fn new(ns: &Ns) -> Result<Self, Stop> {
        let mut ovs = ns.run(Ovs::open)??;
        let ifindex = ovs.dp_add(DP)?;
        Ok(Datapath {
            ovs: std::sync::Mutex::new(ovs),
            ifindex,
        })
    }

    fn ovs(&self) -> std::sync::MutexGuard<'_, Ovs> {
        self.ovs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self, dev: &str) -> TResult {
        self.ovs().vport_add(self.ifindex, dev, VportType::Netdev)?;
        Ok(())
    }

    fn del(&self, dev: &str) -> TResult {
        self.ovs().vport_del(self.ifindex, dev)?;
        Ok(())
    }
}

impl Drop for Datapath {
    fn drop(&mut self) {
        if let Err(e) = self.ovs().dp_del(DP) {
            eprintln!("# deleting OVS datapath {DP}: {e}");
        }
    }
}

/// The host side of the topology: the primary nk0 and a vxlan device
/// vx0 (whose 84-byte headroom OVS will ask of every port) in `host`,
/// the peer nk1 in `pod`.
fn topo() -> Result<(Ns, Ns), Stop> {
    let host = Ns::new()?;
    let pod = Ns::new()?;
    let mut spec = NetkitSpec::new("nk0", "nk1", NetkitMode::L2);
    spec.peer.netns = Some(pod.as_ref());
    host.rt()?.netkit_add(&spec)?;
    env::ip(
        &host,
        &[
            "link", "add", "vx0", "type", "vxlan", "id", "42", "remote", "fd00::2", "dstport",
            "4789",
        ],
    )?;
    for (ns, dev) in [(&host, "nk0"), (&host, "vx0"), (&pod, "nk1")] {
        env::up(ns, dev)?;
    }
    Ok((host, pod))
}

/// The effective headroom both devices report, through IFLA_HEADROOM
/// and IFLA_NETKIT_HEADROOM, which must agree.
fn room(host: &Ns, pod: &Ns) -> Result<(u16, u16), Stop> {
    let mut out = [0u16; 2];
    for (i, (ns, dev)) in [(host, "nk0"), (pod, "nk1")].into_iter().enumerate() {
        let l = ns.rt()?.link_get(dev)?;
        let generic = l.headroom.ok_or_else(|| {
            Stop::Skip(format!(
                "{dev}: the kernel does not dump IFLA_HEADROOM (6.12 without the series)"
            ))
        })?;
        let nk = l.netkit.and_then(|n| n.headroom);
        check_eq!(
            nk,
            Some(generic),
            "{dev}: IFLA_NETKIT_HEADROOM against IFLA_HEADROOM"
        );
        out[i] = generic;
    }
    Ok((out[0], out[1]))
}

/// Sets the pair's configured headroom on the primary; a kernel without
/// the series refuses it (upstream: creation only).
fn configure(host: &Ns, headroom: u16) -> TResult {
    let mut rt = host.rt()?;
    let idx = rt.link_get("nk0")?.index;
    match rt.link_set(
        idx,
        &LinkChange {
            netkit_headroom: Some(headroom),
            ..Default::default()
        },
    ) {
        Err(e) if e.errno() == Some(libc::EACCES) => Err(Stop::Skip(format!(
            "the kernel refuses IFLA_NETKIT_HEADROOM in changelink (nkdev series not applied): {e}"
        ))),
        r => Ok(r?),
    }
}

pub fn ovs(_: &Ctx, r: &mut Reporter) {
    r.sub("ovs_request_reaches_both_devices", || -> TResult {
        env::require_root()?;
        let (host, pod) = topo()?;
        check_eq!(room(&host, &pod)?, (0, 0), "before OVS");
        let dp = Datapath::new(&host)?;
        // netkit's own forwarding headroom is 0 (IFF_PHONY_HEADROOM), as
        // is the internal port's: alone in the datapath, OVS asks it for 0.
        dp.add("nk0")?;
        check_eq!(room(&host, &pod)?, (0, 0), "nk0 alone in the datapath");
        dp.add("vx0")?;
        check_eq!(
            room(&host, &pod)?,
            (VXLAN6_HEADROOM, VXLAN6_HEADROOM),
            "vx0 joined: OVS asks every port for vxlan's headroom"
        );
        // Removing vx0 lowers the datapath's request again.
        dp.del("vx0")?;
        check_eq!(room(&host, &pod)?, (0, 0), "vx0 left the datapath");
        // Leaving OVS resets the request (-1), which counts as NET_SKB_PAD.
        dp.del("nk0")?;
        check_eq!(
            room(&host, &pod)?,
            (NET_SKB_PAD, NET_SKB_PAD),
            "nk0 left the datapath"
        );
        Ok(())
    });
    r.sub(
        "configured_room_and_ovs_request_survive_each_other",
        || -> TResult {
            env::require_root()?;
            let (host, pod) = topo()?;
            let dp = Datapath::new(&host)?;
            dp.add("nk0")?;
            dp.add("vx0")?;
            configure(&host, 128)?;
            check_eq!(
                room(&host, &pod)?,
                (128, 128),
                "configured 128 above OVS's 84"
            );
            configure(&host, 0)?;
            check_eq!(
                room(&host, &pod)?,
                (VXLAN6_HEADROOM, VXLAN6_HEADROOM),
                "configured 0: OVS's request was kept"
            );
            configure(&host, 100)?;
            dp.del("vx0")?;
            check_eq!(
                room(&host, &pod)?,
                (100, 100),
                "OVS lowered its request: the configured room is the floor"
            );
            Ok(())
        },
    );
    r.sub("ovs_and_changelink_race", || -> TResult {
        env::require_root()?;
        let (host, pod) = topo()?;
        let dp = Datapath::new(&host)?;
        dp.add("nk0")?;
        configure(&host, 0)?;
        // OVS's updates (ovs_mutex) against changelink (RTNL), from two
        // threads. Whatever interleaving, the end state must be
        // max(configured, OVS's request) on both devices: a lost update
        // leaves one device, or both, at a stale value.
        let stop = AtomicBool::new(false);
        let rounds = 100;
        let (ovs_err, cfg_err) = std::thread::scope(|s| {
            let ovs = s.spawn(|| -> TResult {
                // The changelink thread stops on this flag, however this
                // one ends: an early error or a panic must not leave it
                // looping until the case's timeout.
                struct Stopper<'a>(&'a AtomicBool);
                impl Drop for Stopper<'_> {
                    fn drop(&mut self) {
                        self.0.store(true, Ordering::Relaxed);
                    }
                }
                let _stop = Stopper(&stop);
                for _ in 0..rounds {
                    dp.add("vx0")?;
                    dp.del("vx0")?;
                }
                dp.add("vx0")
            });
            let cfg = s.spawn(|| -> Result<(u32, u16), Stop> {
                let (mut n, mut last) = (0, 0);
                while !stop.load(Ordering::Relaxed) {
                    last = if n % 2 == 0 { 96 } else { 32 };
                    configure(&host, last)?;
                    n += 1;
                }
                Ok((n, last))
            });
            (ovs.join(), cfg.join())
        });
        let joined = |what: &str| Stop::Fail(format!("the {what} thread panicked"));
        ovs_err.map_err(|_| joined("OVS"))??;
        let (changes, last) = cfg_err.map_err(|_| joined("changelink"))??;
        check!(changes > 0, "changelink never ran during the OVS updates");
        let want = last.max(VXLAN6_HEADROOM);
        check_eq!(
            room(&host, &pod)?,
            (want, want),
            "after {rounds} OVS updates against {changes} changelinks (configured {last}, OVS {VXLAN6_HEADROOM})"
        );
        configure(&host, 32)?;
        dp.del("vx0")?;
        check_eq!(
            room(&host, &pod)?,
            (32, 32),
            "OVS's request gone: the configured 32 is the floor"
        );
        Ok(())
    });
}

/// A netdevsim device with one port and `queues` rx/tx queues, created
/// from `ns` (netdevsim puts its netdev in the creator's netns) and
/// deleted when dropped.
struct Nsim {
    id: u32,
    ifindex: u32,
}

impl Nsim {
    const ID: u32 = 4242;

    fn new(ns: &Ns, queues: u32) -> Result<Self, Stop> {
        let id = Self::ID;
        ns.run(|| std::fs::write("/sys/bus/netdevsim/new_device", format!("{id} 1 {queues}")))?
            .map_err(|e| {
                Stop::Fail(format!(
                "creating netdevsim {id} (/sys/bus/netdevsim/new_device; CONFIG_NETDEVSIM): {e}"
            ))
            })?;
        let mut n = Nsim { id, ifindex: 0 };
        // The netns was fresh and netkit devices are created after this:
        // besides lo and the tunnels' fallback devices (sit0 ...), which
        // have a link kind, netdevsim's netdev is the only device.
        let links = ns.rt()?.link_dump()?;
        let devs: Vec<_> = links
            .iter()
            .filter(|l| l.name != "lo" && l.kind.is_none())
            .collect();
        let name = match devs.as_slice() {
            [l] => {
                n.ifindex = l.index;
                l.name.clone()
            }
            other => {
                return Err(Stop::Fail(format!(
                    "expected netdevsim's netdev alone beside lo and sit0, found {:?}",
                    other.iter().map(|l| &l.name).collect::<Vec<_>>()
                )))
            }
        };
        // queue-get reports the queues of a running device only (ENOENT
        // while it is down).
        env::up(ns, &name)?;
        Ok(n)
    }
}

impl Drop for Nsim {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write("/sys/bus/netdevsim/del_device", self.id.to_string()) {
            eprintln!("# deleting netdevsim {}: {e}", self.id);
        }
    }
}

fn netdev(ns: &Ns) -> Result<nk_netlink::netdev::Netdev, Stop> {
    let nd = ns.run(nk_netlink::netdev::Netdev::open)??;
    if !nd.supports_queue_create() {
        return Err(Stop::Skip(
            "the kernel's netdev family has no queue-create (netkit queue leasing is 7.3's)".into(),
        ));
    }
    Ok(nd)
}

/// What the pair's settings look like from one device.
#[derive(Debug, PartialEq, Eq)]
struct Settings {
    mtu: Option<u32>,
    headroom: Option<u16>,
    gso_max_size: Option<u32>,
    gro_max_size: Option<u32>,
}

/// What [`change_all`] sets.
const CHANGED: Settings = Settings {
    mtu: Some(1400),
    headroom: Some(96),
    gso_max_size: Some(32768),
    gro_max_size: Some(32768),
};

fn settings(ns: &Ns, ifindex: u32) -> Result<Settings, Stop> {
    let l = ns.rt()?.link_get_index(ifindex)?;
    Ok(Settings {
        mtu: l.mtu,
        headroom: l.headroom,
        gso_max_size: l.gso_max_size,
        gro_max_size: l.gro_max_size,
    })
}

/// MTU, configured headroom and GSO/GRO limits set on `dev` in `ns`.
fn change_all(ns: &Ns, dev: &str) -> TResult {
    let mut rt = ns.rt()?;
    let idx = rt.link_get(dev)?.index;
    match rt.link_set(
        idx,
        &LinkChange {
            mtu: CHANGED.mtu,
            netkit_headroom: CHANGED.headroom,
            gso_max_size: CHANGED.gso_max_size,
            gro_max_size: CHANGED.gro_max_size,
            ..Default::default()
        },
    ) {
        Err(e) if e.errno() == Some(libc::EACCES) => Err(Stop::Skip(format!(
            "the kernel refuses IFLA_NETKIT_HEADROOM in changelink (nkdev series not applied): {e}"
        ))),
        r => Ok(r?),
    }
}

/// The leased queue of netdevsim, seen from netdevsim: the netkit device
/// and queue it is leased to, if any.
fn lease_of(ns: &Ns, nsim: &Nsim, queue: u32) -> Result<Option<(u32, u32)>, Stop> {
    let q = netdev(ns)?.rx_queue(nsim.ifindex, queue)?;
    Ok(q.lease.map(|l| (l.ifindex, l.queue)))
}

/// 7.3's netkit leases rx queues of a physical device, on the peer of a
/// pair or on a single device. What the series' MTU, GSO/GRO and room
/// propagation does to such a device: it changes the netkit device as
/// without a lease, leaves the physical device alone, and the lease
/// stays.
pub fn lease(_: &Ctx, r: &mut Reporter) {
    r.sub("pair_peer_lease_survives_primary_changes", || -> TResult {
        env::require_root()?;
        let host = Ns::new()?;
        let pod = Ns::new()?;
        netdev(&pod)?;
        let nsim = Nsim::new(&pod, 2)?;
        let phys_before = settings(&pod, nsim.ifindex)?;
        let mut spec = NetkitSpec::new("nk0", "nk1", NetkitMode::L2);
        spec.peer.netns = Some(pod.as_ref());
        spec.peer.num_rx_queues = Some(2);
        spec.sync = Some(nk_netlink::NetkitSync(
            nk_netlink::NetkitSync::MTU | nk_netlink::NetkitSync::GSO,
        ));
        host.rt()?.netkit_add(&spec)?;
        let peer = env::ifindex(&pod, "nk1")?;
        let q = netdev(&pod)?.queue_create_lease(peer, nsim.ifindex, 1)?;
        check_eq!(q, 1, "the peer's new queue");
        check_eq!(lease_of(&pod, &nsim, 1)?, Some((peer, 1)), "lease before");
        change_all(&host, "nk0")?;
        check_eq!(
            settings(&pod, peer)?,
            CHANGED,
            "the peer followed the primary"
        );
        check_eq!(
            settings(&pod, nsim.ifindex)?,
            phys_before,
            "the physical device is untouched"
        );
        check_eq!(lease_of(&pod, &nsim, 1)?, Some((peer, 1)), "lease after");
        host.rt()?.link_del(env::ifindex(&host, "nk0")?)?;
        check_eq!(
            lease_of(&pod, &nsim, 1)?,
            None,
            "deleting the pair ends the lease"
        );
        Ok(())
    });
    r.sub("single_device_lease_survives_own_changes", || -> TResult {
        env::require_root()?;
        let pod = Ns::new()?;
        netdev(&pod)?;
        let nsim = Nsim::new(&pod, 2)?;
        let phys_before = settings(&pod, nsim.ifindex)?;
        let mut spec = NetkitSpec::single("nks0", NetkitMode::L2);
        spec.num_rx_queues = Some(2);
        pod.rt()?.netkit_add(&spec)?;
        let l = pod.rt()?.link_get("nks0")?;
        check_eq!(
            l.netkit.and_then(|n| n.single),
            Some(true),
            "nks0 dumps IFLA_NETKIT_PAIRING = NETKIT_DEVICE_SINGLE"
        );
        let dev = l.index;
        let q = netdev(&pod)?.queue_create_lease(dev, nsim.ifindex, 0)?;
        check_eq!(q, 1, "the single device's new queue");
        change_all(&pod, "nks0")?;
        check_eq!(
            settings(&pod, dev)?,
            CHANGED,
            "the single device took its own settings"
        );
        check_eq!(
            settings(&pod, nsim.ifindex)?,
            phys_before,
            "the physical device is untouched"
        );
        check_eq!(lease_of(&pod, &nsim, 0)?, Some((dev, 1)), "lease after");
        pod.rt()?.link_del(dev)?;
        check_eq!(
            lease_of(&pod, &nsim, 0)?,
            None,
            "deleting the device ends the lease"
        );
        Ok(())
    });
}
