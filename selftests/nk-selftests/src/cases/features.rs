//! `nk_bpf::Features` (and `nkctl feature`) against the running kernel:
//! what BTF says is there must be what kallsyms has, on the patched kernel
//! and on the base.

use nk_bpf::Features;

use crate::harness::{Reporter, Stop, TResult};
use crate::{check_eq, Ctx};

/// Whether the kernel has a function named `name` (kallsyms lists names
/// to everyone; only addresses are hidden).
fn has_symbol(syms: &str, name: &str) -> bool {
    syms.lines()
        .any(|l| l.split_whitespace().nth(2) == Some(name))
}

pub fn features(ctx: &Ctx, r: &mut Reporter) {
    r.sub("btf_agrees_with_kallsyms", || -> TResult {
        let f = Features::probe()?;
        let syms = std::fs::read_to_string("/proc/kallsyms")?;
        let both = |a: &str, b: &str| has_symbol(&syms, a) && has_symbol(&syms, b);
        check_eq!(f.tcx, has_symbol(&syms, "tcx_link_attach"), "tcx");
        check_eq!(
            f.netkit_links,
            has_symbol(&syms, "netkit_link_attach"),
            "netkit links"
        );
        check_eq!(
            f.sock_iter_kfuncs,
            both("bpf_iter_tcp_sock_new", "bpf_iter_udp_sock_new"),
            "socket iterator kfuncs"
        );
        check_eq!(
            f.sock_iter_abort,
            both("bpf_iter_tcp_sock_abort", "bpf_iter_udp_sock_abort"),
            "socket abort kfuncs"
        );
        check_eq!(
            f.netns_iter_kfuncs,
            has_symbol(&syms, "bpf_iter_net_new"),
            "netns iterator kfuncs"
        );
        // nkctl prints the same, as JSON.
        let nk = ctx
            .nkctl
            .clone()
            .ok_or_else(|| Stop::Fail("--nkctl not given".into()))?;
        let out = std::process::Command::new(nk)
            .args(["--json", "feature"])
            .output()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| Stop::Fail(format!("nkctl --json feature: {e}")))?;
        check_eq!(v, serde_json::to_value(f)?, "nkctl --json feature");
        Ok(())
    });
}
