//! netkit behaviour already in the 6.12 base: pairs across netns, MAC
//! setting (upstream d6fe532b7499), pkt_type override (3998d184267d).

use nk_bpf::{mprog, Anchor, AttachPoint, Direction, NetkitSide, Object};
use nk_netlink::{LinkChange, Mac, NetkitMode, NetkitPolicy};

use crate::env::{self, Ns};
use crate::harness::{expect_errno, Reporter, Stop, TResult};
use crate::{check, check_eq, Ctx};

const MODES: [NetkitMode; 2] = [NetkitMode::L2, NetkitMode::L3];

/// Create a pair with the peer in another netns; both sides must report
/// netkit, the right mode and role, and (L3) no L2 address.
pub fn pair(_: &Ctx, r: &mut Reporter) {
    for mode in MODES {
        r.sub(&format!("create_{mode}_peer_in_netns"), || -> TResult {
            env::require_root()?;
            let host = Ns::new()?;
            let pod = Ns::new()?;
            let mut spec = nk_netlink::NetkitSpec::new("nk0", "nk1", mode);
            spec.peer.netns = Some(pod.as_ref());
            spec.policy = Some(NetkitPolicy::Pass);
            spec.peer_policy = Some(NetkitPolicy::Drop);
            host.rt()?.netkit_add(&spec)?;
            let p = host.rt()?.link_get("nk0")?;
            check_eq!(p.kind.as_deref(), Some("netkit"), "primary kind");
            let nk = p.netkit.clone().unwrap_or_default();
            check!(nk.primary, "nk0 reports IFLA_NETKIT_PRIMARY=1");
            check_eq!(nk.mode, Some(mode), "primary mode");
            check_eq!(nk.policy, Some(NetkitPolicy::Pass), "policy");
            check_eq!(nk.peer_policy, Some(NetkitPolicy::Drop), "peer policy");
            check!(
                host.rt()?.link_get("nk1").is_err(),
                "the peer is not in the host netns"
            );
            let q = pod.rt()?.link_get("nk1")?;
            check_eq!(q.kind.as_deref(), Some("netkit"), "peer kind");
            check!(
                !q.netkit.clone().unwrap_or_default().primary,
                "nk1 is not the primary"
            );
            let zero_mac = q
                .address
                .as_deref()
                .is_none_or(|a| a.iter().all(|b| *b == 0));
            match mode {
                NetkitMode::L3 => {
                    check!(zero_mac, "L3 peer has no L2 address, got {:?}", q.address)
                }
                NetkitMode::L2 => check!(!zero_mac, "L2 peer has a MAC address"),
                other => return Err(Stop::Fail(format!("no expectation for mode {other}"))),
            }
            Ok(())
        });
    }
}

/// Setting a MAC works in L2 on both sides and fails with EOPNOTSUPP in L3.
pub fn mac(_: &Ctx, r: &mut Reporter) {
    let mac: Mac = "02:00:00:00:aa:01".parse().expect("valid MAC");
    for mode in MODES {
        for side in ["primary", "peer"] {
            r.sub(&format!("set_mac_{mode}_{side}"), || -> TResult {
                env::require_root()?;
                let p = env::netkit_pair(mode)?;
                let (ns, name) = if side == "primary" {
                    (&p.host, "nk0")
                } else {
                    (&p.pod, "nk1")
                };
                let mut s = ns.rt()?;
                let l = s.link_get(name)?;
                let change = LinkChange {
                    mac: Some(mac),
                    ..Default::default()
                };
                match mode {
                    NetkitMode::L2 => {
                        s.link_set(l.index, &change)?;
                        check_eq!(
                            s.link_get(name)?.address.and_then(|a| a.mac()),
                            Some(mac),
                            "MAC after set"
                        );
                    }
                    NetkitMode::L3 => expect_errno(
                        s.link_set(l.index, &change),
                        libc::EOPNOTSUPP,
                        "set MAC in l3",
                    )?,
                    other => return Err(Stop::Fail(format!("no expectation for mode {other}"))),
                }
                Ok(())
            });
        }
    }
}

/// A pkt_type set by the primary's program survives into the peer.
pub fn pkt_type(ctx: &Ctx, r: &mut Reporter) {
    for mode in MODES {
        r.sub(&format!("override_{mode}"), || -> TResult {
            env::require_root()?;
            let p = env::netkit_pair(mode)?;
            let obj = Object::load(&env::bpf_obj(&ctx.bpf_dir, "nk_pkt_type.bpf.o")?)?;
            let seen = obj.map("seen")?;
            let at = AttachPoint::Netkit {
                ifindex: p.primary,
                side: NetkitSide::Primary,
            };
            let _l1 = p.host.run(|| {
                mprog::link_create(&obj.prog("nk_mark_mcast")?, at, Anchor::Last, None)
            })??;
            let at = AttachPoint::Tcx {
                ifindex: p.peer,
                dir: Direction::Ingress,
            };
            let _l2 = p.pod.run(|| {
                mprog::link_create(&obj.prog("nk_check_mcast")?, at, Anchor::Last, None)
            })??;
            let sock = env::listen(&p.pod, env::POD_IP)?;
            env::send_probes(&p.host, env::POD_IP, 1)?;
            env::recv_probes(&sock, 1)?;
            check_eq!(seen.get_u32(0)?, 1, "primary program ran");
            check_eq!(seen.get_u32(1)?, 1, "primary program saw PACKET_HOST");
            check_eq!(seen.get_u32(2)?, 1, "peer tcx program ran");
            check_eq!(
                seen.get_u32(3)?,
                1,
                "peer saw the PACKET_MULTICAST the primary set"
            );
            Ok(())
        });
    }
}
