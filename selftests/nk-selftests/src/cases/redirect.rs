//! bpf_redirect_peer from tcx ingress of a host veth into a netkit peer
//! delivers, and counts in the peer's rx stats (upstream 024ee930cb3c).

use std::net::Ipv4Addr;

use nk_bpf::{mprog, Anchor, AttachPoint, Direction, Object};
use nk_netlink::{Mac, NetkitMode, NetkitSpec};

use crate::env::{self, Ns};
use crate::harness::{Reporter, TResult};
use crate::{check, check_eq, Ctx};

const PROBES: usize = 5;

pub fn redirect_peer(ctx: &Ctx, r: &mut Reporter) {
    for mode in [NetkitMode::L3, NetkitMode::L2] {
        r.sub(&format!("veth_to_netkit_{mode}_rx_stats"), || -> TResult {
            env::require_root()?;
            // src ns --veth1/veth0--> host ns --(redirect_peer)--> pod ns nk1
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
                env::up(ns, dev)?;
            }
            env::addr(&src, "veth1", "10.1.0.1/24")?;
            env::addr(&pod, "nk1", "10.2.0.2/24")?;
            let pod_ip = Ipv4Addr::new(10, 2, 0, 2);
            let veth0 = host.rt()?.link_get("veth0")?;
            let veth0_mac = Mac(veth0
                .address
                .clone()
                .unwrap_or_default()
                .try_into()
                .map_err(|_| "veth0 MAC")?);
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
            let obj = Object::load(&env::bpf_obj(&ctx.bpf_dir, "nk_redirect.bpf.o")?)?;
            let cfg = obj.map("cfg")?;
            cfg.set_u32(0, host.rt()?.link_get("nk0")?.index)?;
            let at = AttachPoint::Tcx {
                ifindex: veth0.index,
                dir: Direction::Ingress,
            };
            let _link = host.run(|| {
                mprog::link_create(&obj.prog("nk_redirect_peer")?, at, Anchor::Last, None)
            })??;
            let before = pod.rt()?.link_get("nk1")?.stats.unwrap_or_default();
            let sock = env::listen(&pod, pod_ip)?;
            env::send_probes(&src, pod_ip, PROBES)?;
            env::recv_probes(&sock, PROBES)?;
            check_eq!(
                cfg.get_u32(1)?,
                PROBES as u32,
                "redirects done by the program"
            );
            let after = pod.rt()?.link_get("nk1")?.stats.unwrap_or_default();
            let rx = after.rx_packets - before.rx_packets;
            check!(
                rx >= PROBES as u64,
                "nk1 rx_packets grew by {rx}, want at least {PROBES}"
            );
            Ok(())
        });
    }
}
