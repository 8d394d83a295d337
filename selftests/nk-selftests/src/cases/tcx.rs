//! tcx through bpf_mprog: anchors decide the order, the query reports it
//! with a revision, and traffic runs the programs in that order.

use std::os::fd::AsFd;

use nk_bpf::{mprog, Anchor, AttachPoint, Direction, Object, Relative};

use crate::env::{self, Ns};
use crate::harness::{expect_errno, Reporter, TResult};
use crate::{check, check_eq, Ctx};

pub fn order(ctx: &Ctx, r: &mut Reporter) {
    for dir in [Direction::Ingress, Direction::Egress] {
        r.sub(
            &format!(
                "anchors_{}",
                if dir == Direction::Ingress {
                    "ingress"
                } else {
                    "egress"
                }
            ),
            || -> TResult {
                env::require_root()?;
                let ns = Ns::new()?;
                let lo = env::ifindex(&ns, "lo")?;
                let obj = Object::load(&env::bpf_obj(&ctx.bpf_dir, "nk_tcx_order.bpf.o")?)?;
                let (p1, p2, p3) = (
                    obj.prog("nk_order_1")?,
                    obj.prog("nk_order_2")?,
                    obj.prog("nk_order_3")?,
                );
                let at = AttachPoint::Tcx { ifindex: lo, dir };
                let q0 = ns.run(|| mprog::query(at))??;
                check!(q0.prog_ids.is_empty(), "nothing attached yet: {q0:?}");
                // p1 last, p2 first, p3 right after p1's link: 2, 1, 3.
                let l1 =
                    ns.run(|| mprog::link_create(&p1, at, Anchor::Last, Some(q0.revision)))??;
                let l2 = ns.run(|| mprog::link_create(&p2, at, Anchor::First, None))??;
                let q = ns.run(|| mprog::query(at))??;
                let l3 = ns.run(|| {
                    mprog::link_create(
                        &p3,
                        at,
                        Anchor::After(Relative::LinkFd(l1.as_fd())),
                        Some(q.revision),
                    )
                })??;
                let q = ns.run(|| mprog::query(at))??;
                check_eq!(
                    q.prog_ids,
                    vec![p2.id()?, p1.id()?, p3.id()?],
                    "query order"
                );
                check_eq!(q.link_ids, vec![l2.id()?, l1.id()?, l3.id()?], "link ids");
                check!(
                    q.revision > q0.revision + 2,
                    "revision grew with each attach: {} -> {}",
                    q0.revision,
                    q.revision
                );
                // A stale revision is refused.
                let p = obj.prog("nk_order_1")?;
                expect_errno(
                    ns.run(|| mprog::link_create(&p, at, Anchor::Last, Some(q0.revision)))?,
                    libc::ESTALE,
                    "stale",
                )?;
                // Traffic runs them in the queried order.
                let sock = env::listen(&ns, std::net::Ipv4Addr::LOCALHOST)?;
                env::send_probes(&ns, std::net::Ipv4Addr::LOCALHOST, 1)?;
                env::recv_probes(&sock, 1)?;
                let order = obj.map("order")?;
                let ran: Vec<u32> = (0..3).map(|i| order.get_u32(i)).collect::<Result<_, _>>()?;
                check_eq!(ran, vec![2, 1, 3], "programs ran in this order");
                check_eq!(obj.map("pos")?.get_u32(0)?, 3, "each program ran once");
                // Detaching the middle one keeps the others in order.
                l1.detach()?;
                let q2 = ns.run(|| mprog::query(at))??;
                check_eq!(q2.prog_ids, vec![p2.id()?, p3.id()?], "order after detach");
                check!(q2.revision > q.revision, "detach bumps the revision");
                Ok(())
            },
        );
    }
}

/// netkit's two program lists, in both modes: anchors, query order, the
/// order traffic takes, link update (replace), a stale revision and detach.
pub fn netkit_order(ctx: &Ctx, r: &mut Reporter) {
    use nk_bpf::NetkitSide;
    use nk_netlink::NetkitMode;
    for mode in [NetkitMode::L2, NetkitMode::L3] {
        for side in [NetkitSide::Primary, NetkitSide::Peer] {
            let name = format!(
                "{mode}_{}",
                if side == NetkitSide::Primary {
                    "primary"
                } else {
                    "peer"
                }
            );
            r.sub(&name, || -> TResult {
                env::require_root()?;
                let p = env::netkit_pair(mode)?;
                let obj = Object::load(&env::bpf_obj(&ctx.bpf_dir, "nk_tcx_order.bpf.o")?)?;
                let (p1, p2, p3) = (
                    obj.prog("nk_order_1")?,
                    obj.prog("nk_order_2")?,
                    obj.prog("nk_order_3")?,
                );
                // Both lists are addressed through the primary, from its netns.
                let at = AttachPoint::Netkit {
                    ifindex: p.primary,
                    side,
                };
                let h = &p.host;
                let q0 = h.run(|| mprog::query(at))??;
                let l3 =
                    h.run(|| mprog::link_create(&p3, at, Anchor::Last, Some(q0.revision)))??;
                let l1 = h.run(|| {
                    mprog::link_create(&p1, at, Anchor::Before(Relative::LinkFd(l3.as_fd())), None)
                })??;
                let id1 = p1.id()?;
                let l2 = h.run(|| {
                    mprog::link_create(&p2, at, Anchor::Before(Relative::ProgId(id1)), None)
                })??;
                let q = h.run(|| mprog::query(at))??;
                check_eq!(
                    q.prog_ids,
                    vec![p2.id()?, p1.id()?, p3.id()?],
                    "query order"
                );
                check_eq!(q.link_ids, vec![l2.id()?, l1.id()?, l3.id()?], "link ids");
                let other = match side {
                    nk_bpf::NetkitSide::Primary => nk_bpf::NetkitSide::Peer,
                    nk_bpf::NetkitSide::Peer => nk_bpf::NetkitSide::Primary,
                };
                let q_other = h.run(|| {
                    mprog::query(AttachPoint::Netkit {
                        ifindex: p.primary,
                        side: other,
                    })
                })??;
                check!(
                    q_other.prog_ids.is_empty(),
                    "the other list stays empty: {q_other:?}"
                );
                expect_errno(
                    h.run(|| {
                        mprog::link_create(
                            &obj.prog("nk_order_1")?,
                            at,
                            Anchor::First,
                            Some(q0.revision),
                        )
                    })?,
                    libc::ESTALE,
                    "stale revision",
                )?;
                // Primary programs see what the primary sends (host -> pod);
                // peer programs see what the peer sends (pod -> host).
                let (from, to, to_ip) = match side {
                    nk_bpf::NetkitSide::Primary => (&p.host, &p.pod, env::POD_IP),
                    nk_bpf::NetkitSide::Peer => {
                        (&p.pod, &p.host, std::net::Ipv4Addr::new(10, 0, 0, 1))
                    }
                };
                let sock = env::listen(to, to_ip)?;
                env::send_probes(from, to_ip, 1)?;
                env::recv_probes(&sock, 1)?;
                let order = obj.map("order")?;
                let ran: Vec<u32> = (0..3).map(|i| order.get_u32(i)).collect::<Result<_, _>>()?;
                check_eq!(ran, vec![2, 1, 3], "programs ran in this order");
                // Replace the middle program in place (BPF_LINK_UPDATE) with
                // the same code loaded again (a program can be in a list once).
                let obj_b = Object::load(&env::bpf_obj(&ctx.bpf_dir, "nk_tcx_order.bpf.o")?)?;
                let p1b = obj_b.prog("nk_order_1")?;
                expect_errno(
                    l1.update(&p1b, Some(&p2)),
                    libc::EPERM,
                    "update with the wrong old program",
                )?;
                l1.update(&p1b, Some(&p1))?;
                let q2 = h.run(|| mprog::query(at))??;
                check_eq!(
                    q2.prog_ids,
                    vec![p2.id()?, p1b.id()?, p3.id()?],
                    "order after replace"
                );
                check_eq!(q2.link_ids[1], l1.id()?, "the link keeps its place");
                drop(l2);
                let q3 = h.run(|| mprog::query(at))??;
                check_eq!(
                    q3.prog_ids,
                    vec![p1b.id()?, p3.id()?],
                    "closing a link fd detaches it"
                );
                Ok(())
            });
        }
    }
}
