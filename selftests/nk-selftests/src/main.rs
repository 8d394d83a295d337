//! nkdev's privileged selftests. They run as root inside the freshly
//! built kernel (`cargo xtask vmtest` boots it and runs one case per
//! plan entry) and print KTAP; unprivileged they skip, saying why.
//!
//! `nk-selftests --list` prints `case<TAB>timeout`;
//! `nk-selftests --bpf-dir DIR --run CASE` runs one case.

#![deny(clippy::undocumented_unsafe_blocks)]

mod bench;
mod cases;
mod env;
mod golden;
mod harness;

use std::path::PathBuf;

/// What every case gets.
pub struct Ctx {
    /// Where `bpf/*.bpf.o` were built.
    pub bpf_dir: PathBuf,
    /// The nkctl binary, for the cross-check cases.
    pub nkctl: Option<PathBuf>,
    /// `--reps N`: how many times a benchmark that repeats (the
    /// `repeats` column of [`BENCHES`]) measures each variant inside this
    /// boot; the host reports the median of the repetitions. 1 for cases.
    pub reps: usize,
}

type CaseFn = fn(&Ctx, &mut harness::Reporter);

/// (name, subtest count, timeout seconds, function)
const CASES: &[(&str, u32, u64, CaseFn)] = &[
    ("netkit_pair", 2, 60, cases::netkit::pair),
    ("netkit_mac", 4, 60, cases::netkit::mac),
    ("netkit_pkt_type", 2, 60, cases::netkit::pkt_type),
    ("redirect_peer", 2, 60, cases::redirect::redirect_peer),
    ("tcx_order", 2, 60, cases::tcx::order),
    ("netkit_order", 4, 90, cases::tcx::netkit_order),
    ("tools_iproute2", 1, 60, cases::tools::iproute2),
    ("tools_bpftool", 1, 60, cases::tools::bpftool),
    ("nkctl_prog_sources", 1, 60, cases::tools::prog_sources),
    ("nkctl_endpoint", 4, 90, cases::tools::endpoint),
    ("netkit_runtime", 4, 60, cases::tools::netkit_runtime),
    ("bpf_loader", 3, 60, cases::loader::loader),
    ("bpf_features", 1, 60, cases::features::features),
    ("netlink_events", 1, 60, cases::netlink::events),
    ("netkit_room_ovs", 3, 120, cases::room::ovs),
    ("netkit_room_lease", 2, 60, cases::room::lease),
    ("e2e_datapath", 1, 90, cases::e2e::datapath),
    ("sock_destroy", 9, 150, cases::sock::destroy),
    ("golden_script", 1, 60, golden::script),
];

type BenchFn = fn(&Ctx, &mut harness::Reporter, usize);

/// (name, default size, timeout seconds, subtests, repeats, function);
/// run by `cargo xtask bench`. The subtests are the KTAP plan, which the
/// runner holds the results to. A benchmark that `repeats` measures each
/// variant `--reps` times inside one boot (the host scales its timeout by
/// that); the others measure once and refuse `--reps` above 1.
const BENCHES: &[(&str, usize, u64, u32, bool, BenchFn)] = &[
    ("netkit_pairs", 1000, 900, 1, false, bench::netkit_pairs),
    ("tcx_attach", 1000, 900, 1, false, bench::tcx_attach),
    ("tcx_ops", 100, 600, 1, false, bench::tcx_ops),
    (
        "redirect_peer_pps",
        5,
        120,
        1,
        false,
        bench::redirect_peer_pps,
    ),
    ("tcp_stream", 5, 180, 4, false, bench::tcp_streams),
    ("udp_pods", 5, 120, 2, false, bench::udp_pods),
    ("vxlan_headroom", 5, 120, 1, false, bench::vxlan_headroom),
    (
        "sock_destroy",
        100,
        1500,
        1,
        true,
        bench::sock::sock_destroy,
    ),
];

fn usage() -> ! {
    eprintln!("usage: nk-selftests --list | --list-bench | [--bpf-dir DIR] [--nkctl PATH] (--run CASE | --bench NAME [--size N] [--reps N] [--pin-cpu N]) | --golden-capture DIR");
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut bpf_dir = PathBuf::from("target/bpf/vm");
    let mut run = None;
    let mut nkctl = None;
    let mut bench = None;
    let mut size: Option<usize> = None;
    let mut pin_cpu: Option<usize> = None;
    let mut reps = 1;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--list-bench" => {
                for (n, size, t, _, repeats, _) in BENCHES {
                    let r = if *repeats { "repeats" } else { "once" };
                    println!("{n}\t{t}\t{size}\t{r}");
                }
                return;
            }
            "--bench" => {
                i += 1;
                bench = Some(args.get(i).cloned().unwrap_or_else(|| usage()));
            }
            "--size" => {
                i += 1;
                size = args.get(i).and_then(|s| s.parse().ok());
            }
            "--reps" => {
                i += 1;
                reps = args
                    .get(i)
                    .and_then(|s| s.parse().ok())
                    .filter(|n| *n >= 1)
                    .unwrap_or_else(|| usage());
            }
            "--pin-cpu" => {
                i += 1;
                pin_cpu = Some(
                    args.get(i)
                        .and_then(|s| s.parse().ok())
                        .unwrap_or_else(|| usage()),
                );
            }
            "--list" => {
                for (n, _, t, _) in CASES {
                    println!("{n}\t{t}");
                }
                return;
            }
            "--bpf-dir" => {
                i += 1;
                bpf_dir = args.get(i).map(PathBuf::from).unwrap_or_else(|| usage());
            }
            "--nkctl" => {
                i += 1;
                nkctl = Some(args.get(i).map(PathBuf::from).unwrap_or_else(|| usage()));
            }
            "--golden-capture" => {
                i += 1;
                let dir = args.get(i).map(PathBuf::from).unwrap_or_else(|| usage());
                std::process::exit(golden::main(&dir));
            }
            "--run" => {
                i += 1;
                run = Some(args.get(i).cloned().unwrap_or_else(|| usage()));
            }
            _ => usage(),
        }
        i += 1;
    }
    let ctx = Ctx {
        bpf_dir,
        nkctl,
        reps,
    };
    if let Some(b) = bench {
        let Some((_, default, _, plan, repeats, f)) = BENCHES.iter().find(|(n, ..)| *n == b) else {
            eprintln!("no benchmark {b:?}; --list-bench shows them");
            std::process::exit(2);
        };
        if reps > 1 && !repeats {
            eprintln!("--reps {reps}: {b} measures once per boot (--list-bench)");
            std::process::exit(2);
        }
        if let Some(cpu) = pin_cpu {
            if let Err(e) = bench::insn::pin_to_cpu(cpu) {
                eprintln!("--pin-cpu {cpu}: {e}");
                std::process::exit(1);
            }
        }
        let mut r = harness::Reporter::new(*plan);
        f(&ctx, &mut r, size.unwrap_or(*default));
        std::process::exit(r.exit_code());
    }
    let name = run.unwrap_or_else(|| usage());
    let Some((_, plan, _, f)) = CASES.iter().find(|(n, ..)| *n == name) else {
        eprintln!("no case {name:?}; --list shows them");
        std::process::exit(2);
    };
    if reps > 1 {
        eprintln!("--reps is for benchmarks (--bench), not cases");
        std::process::exit(2);
    }
    let mut r = harness::Reporter::new(*plan);
    f(&ctx, &mut r);
    std::process::exit(r.exit_code());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_names_are_unique() {
        let mut names: Vec<_> = CASES.iter().map(|c| c.0).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CASES.len());
    }
}
