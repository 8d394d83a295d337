//! bpf_redirect_peer from tcx ingress of a host veth into a netkit peer
//! delivers, and counts in the peer's rx stats (upstream 024ee930cb3c).

use nk_netlink::NetkitMode;

use crate::env;
use crate::harness::{Reporter, TResult};
use crate::{check, check_eq, Ctx};

const PROBES: usize = 5;

pub fn redirect_peer(ctx: &Ctx, r: &mut Reporter) {
    for mode in [NetkitMode::L3, NetkitMode::L2] {
        r.sub(&format!("veth_to_netkit_{mode}_rx_stats"), || -> TResult {
            env::require_root()?;
            let t = env::redirect_topo(mode)?;
            let (obj, _link) = t.attach_redirect(&ctx.bpf_dir)?;
            let cfg = obj.map("cfg")?;
            let before = t.pod.rt()?.link_get("nk1")?.stats.unwrap_or_default();
            let sock = env::listen(&t.pod, t.pod_ip)?;
            env::send_probes(&t.src, t.pod_ip, PROBES)?;
            env::recv_probes(&sock, PROBES)?;
            check_eq!(
                cfg.get_u32(1)?,
                PROBES as u32,
                "redirects done by the program"
            );
            let after = t.pod.rt()?.link_get("nk1")?.stats.unwrap_or_default();
            let rx = after.rx_packets - before.rx_packets;
            check!(
                rx >= PROBES as u64,
                "nk1 rx_packets grew by {rx}, want at least {PROBES}"
            );
            Ok(())
        });
    }
}
