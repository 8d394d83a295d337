//! Benchmarks run inside the VM by `cargo xtask bench`. Each prints
//! `# bench: <name> <metric> <value>` lines that the host collects, and
//! KTAP results for its leak checks. Side by side in one run, so ratios
//! are meaningful even though absolute numbers are emulated (TCG).

use std::fs;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use nk_bpf::{mprog, Anchor, AttachPoint, Direction, Object};
use nk_netlink::{NetkitMode, NetkitSpec};

use crate::env::{self, Ns};
use crate::harness::{Reporter, Stop, TResult};
use crate::{check, check_eq, Ctx};

fn metric(bench: &str, name: &str, v: f64) {
    println!("# bench: {bench} {name} {v:.4}");
}

fn fds() -> usize {
    fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn link_count(ns: &Ns) -> Result<usize, Stop> {
    Ok(ns.rt()?.link_dump()?.len())
}

/// 1000 netkit pairs created and deleted in a netns: nkctl's library (one
/// process, one socket) against iproute2 6.15 (see below for why creation
/// is one `ip` per pair).
pub fn netkit_pairs(_: &Ctx, r: &mut Reporter, n: usize) {
    r.sub("nkctl_vs_ip_batch", || -> TResult {
        env::require_root()?;
        let ns = Ns::new()?;
        let base_links = link_count(&ns)?;
        let fd0 = fds();
        let t = Instant::now();
        let mut s = ns.rt()?;
        let mut idx = Vec::with_capacity(n);
        for i in 0..n {
            s.netkit_add(&NetkitSpec::new(
                &format!("nkb{i}"),
                &format!("nkp{i}"),
                NetkitMode::L3,
            ))?;
        }
        let created = t.elapsed().as_secs_f64();
        for l in s.link_dump()? {
            if l.name.starts_with("nkb") {
                idx.push(l.index);
            }
        }
        check_eq!(idx.len(), n, "pairs created");
        let t2 = Instant::now();
        for i in idx {
            s.link_del(i)?;
        }
        let deleted = t2.elapsed().as_secs_f64();
        drop(s);
        check_eq!(fds(), fd0, "no fd leaked");
        check_eq!(link_count(&ns)?, base_links, "no device left");
        metric("netkit_pairs", "nkctl_create_s", created);
        metric("netkit_pairs", "nkctl_delete_s", deleted);

        let ns2 = Ns::new()?;
        // iproute2 6.15's netkit option parser keeps its state ("mode",
        // "peer") across -batch lines, so a batch creates one pair and then
        // fails with `duplicate "peer"`. Creation therefore runs one `ip`
        // process per pair, as a script would; deletion uses -batch.
        let t = Instant::now();
        for i in 0..n {
            let (a, b) = (format!("nkb{i}"), format!("nkp{i}"));
            let args = [
                "link",
                "add",
                a.as_str(),
                "type",
                "netkit",
                "peer",
                "name",
                b.as_str(),
            ];
            let st = ns2.run(|| Command::new("ip").args(args).status())??;
            check!(st.success(), "ip link add {a}: {st}");
        }
        let ip_created = t.elapsed().as_secs_f64();
        let del: String = (0..n).map(|i| format!("link del nkb{i}\n")).collect();
        let t = Instant::now();
        let mut c = ns2.run(|| {
            Command::new("ip")
                .args(["-batch", "-"])
                .stdin(Stdio::piped())
                .spawn()
        })??;
        c.stdin.take().unwrap().write_all(del.as_bytes())?;
        let st = c.wait()?;
        check!(st.success(), "ip -batch (link del) failed: {st}");
        let ip_deleted = t.elapsed().as_secs_f64();
        check_eq!(link_count(&ns2)?, base_links, "ip -batch left no device");
        metric("netkit_pairs", "ip_per_pair_create_s", ip_created);
        metric("netkit_pairs", "ip_batch_delete_s", ip_deleted);
        metric("netkit_pairs", "create_speedup_vs_ip", ip_created / created);
        metric("netkit_pairs", "delete_speedup_vs_ip", ip_deleted / deleted);
        Ok(())
    });
}

/// tcx attach + detach cycles on one device: nk-bpf links in one process
/// against one bpftool process per attach and per detach (the way a
/// script uses it; bpftool has no batch mode for tcx).
pub fn tcx_attach(ctx: &Ctx, r: &mut Reporter, n: usize) {
    r.sub("nkctl_vs_bpftool", || -> TResult {
        env::require_root()?;
        let ns = Ns::new()?;
        let lo = env::ifindex(&ns, "lo")?;
        let at = AttachPoint::Tcx {
            ifindex: lo,
            dir: Direction::Ingress,
        };
        let obj = Object::load(&env::bpf_obj(&ctx.bpf_dir, "nk_tcx_order.bpf.o")?)?;
        let prog = obj.prog("nk_order_1")?;
        let fd0 = fds();
        let t = Instant::now();
        for _ in 0..n {
            let l = ns.run(|| mprog::link_create(&prog, at, Anchor::Last, None))??;
            l.detach()?;
        }
        let ours = t.elapsed().as_secs_f64();
        check_eq!(fds(), fd0, "no fd leaked");
        check!(
            ns.run(|| mprog::query(at))??.prog_ids.is_empty(),
            "nothing left attached"
        );
        metric("tcx_attach", "nk_bpf_cycles_s", ours);

        let pin = format!("/sys/fs/bpf/nkdev-bench-{}", std::process::id());
        nk_bpf::pin::pin(&prog, std::path::Path::new(&pin))?;
        let m = n.min(200);
        let t = Instant::now();
        let r = (|| -> TResult {
            for _ in 0..m {
                for args in [
                    vec![
                        "net",
                        "attach",
                        "tcx_ingress",
                        "pinned",
                        pin.as_str(),
                        "dev",
                        "lo",
                    ],
                    vec!["net", "detach", "tcx_ingress", "dev", "lo"],
                ] {
                    let st = ns.run(|| Command::new("bpftool").args(&args).status())??;
                    check!(st.success(), "bpftool {args:?}: {st}");
                }
            }
            Ok(())
        })();
        let bt = t.elapsed().as_secs_f64();
        nk_bpf::pin::unpin(std::path::Path::new(&pin))?;
        r?;
        metric(
            "tcx_attach",
            "bpftool_cycles_s_per_1000",
            bt * 1000.0 / m as f64,
        );
        metric(
            "tcx_attach",
            "speedup_vs_bpftool",
            (bt * 1000.0 / m as f64) / (ours * 1000.0 / n as f64),
        );
        Ok(())
    });
}
