//! `cargo xtask vmtest`: build what the tests need, boot the kernel under
//! qemu, run the plan, and report.
//!
//! | file                | job |
//! |---------------------|-----|
//! | `mod.rs`            | arguments, one VM run from plan to verdict |
//! | `build.rs`          | the guest's userspace (cargo builds) |
//! | `plan.rs`           | the test plan: nk-selftests and upstream test_progs |
//! | `skips.rs`          | expected skips; any other skip fails |
//! | `counts.rs`         | the closing line, tests and subtests |
//! | `runner_selftest.rs`| the runner tested on itself |
//! | `bench.rs`          | `cargo xtask bench` |
//! | `test.rs`           | `cargo xtask test`: unit tests, hygiene, VM runs, `--repeat` |

mod bench;
mod build;
mod counts;
mod insn;
pub mod plan;
mod profile;
mod runner_selftest;
mod skips;
mod test;

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nk_init::plan::{Entry, Format};

pub use bench::{run as bench, BenchArgs};
pub use counts::Counts;
pub use test::{test, BINDINGS_BASE};

use crate::kernel::{self, KernelArgs};
use crate::progress::Stage;
use crate::vm::{self, KvmMode, Limits, VmReport, VmSpec};
use crate::{bpf, deps, Ctx};

#[derive(Clone, Debug, clap::Args)]
pub struct VmtestArgs {
    #[command(flatten)]
    pub kernel: KernelArgs,
    /// Accelerator: probe KVM with a short boot (auto), require it, or use TCG.
    #[arg(long, value_enum, default_value = "auto")]
    pub kvm: KvmMode,
    /// Run only tests whose name matches (glob with `*`, or a substring); repeatable.
    #[arg(long, value_name = "PATTERN")]
    pub filter: Vec<String>,
    /// Default per-test timeout in seconds (the guest kills the test; the
    /// host kills the VM 20 s later).
    #[arg(long, default_value_t = 120)]
    pub test_timeout: u64,
    /// Timeout for the whole VM run in seconds (default: sum of test timeouts + 120).
    #[arg(long)]
    pub run_timeout: Option<u64>,
    /// vCPUs for the guest.
    #[arg(long, default_value_t = 2)]
    pub cpus: u32,
    /// Print the plan and exit without booting.
    #[arg(long)]
    pub list: bool,
    /// Extra kernel command line.
    #[arg(long, default_value = "")]
    pub append: String,
    /// Run this shell command in the VM instead of the plan, as a test
    /// (exit 0 passes, 4 skips); repeatable. Kernel reports and leaks
    /// count as for any test.
    #[arg(long, value_name = "CMD")]
    pub exec: Vec<String>,
    /// Run the plan N times, each in a fresh VM, and report each test's
    /// failure rate (flakes are bugs: this measures them).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    /// Test the runner itself: a plan that passes, skips, fails, hangs,
    /// reports short, prints a splat, leaks a device and a daemon, and
    /// panics the kernel, checked against what the runner must report.
    #[arg(long)]
    pub runner_selftest: bool,
    /// Set by `cargo xtask bench`: run these benchmarks instead of tests.
    #[arg(skip)]
    pub bench: Option<Vec<String>>,
    /// Set by `cargo xtask bench --size`.
    #[arg(skip)]
    pub bench_size: Option<usize>,
    /// Set by `cargo xtask bench --reps`: repetitions inside one boot.
    #[arg(skip)]
    pub bench_reps: u32,
    /// Set by `cargo xtask golden`: run only the netlink capture, with a
    /// writable `out/` share in the run directory.
    #[arg(skip)]
    pub golden: bool,
    /// Set by `cargo xtask bench --measure insn`: the TCG plugin that
    /// counts guest instructions between the benchmarks' marks.
    #[arg(skip)]
    pub insn_plugin: Option<PathBuf>,
    /// Set by `cargo xtask bench --measure insn`: run with `-icount
    /// shift=N` (see `VmSpec::icount`).
    #[arg(skip)]
    pub icount: Option<u32>,
    /// Set by `cargo xtask bench --by-function`: the plugin also writes
    /// kernel instructions by function (`prof.txt`).
    #[arg(skip)]
    pub insn_profile: bool,
}

impl VmtestArgs {
    /// The command line's defaults, for commands that run the VM with a
    /// plan of their own (`bench`, `golden`).
    pub fn defaults(kernel: KernelArgs, kvm: KvmMode) -> VmtestArgs {
        VmtestArgs {
            kernel,
            kvm,
            filter: vec![],
            test_timeout: 120,
            run_timeout: None,
            cpus: 2,
            list: false,
            append: String::new(),
            exec: vec![],
            repeat: 1,
            runner_selftest: false,
            bench: None,
            bench_size: None,
            bench_reps: 1,
            golden: false,
            insn_plugin: None,
            icount: None,
            insn_profile: false,
        }
    }
}

/// What every VM run needs, built once per command.
pub struct Prepared {
    pub k: kernel::Kernel,
    pub bins: build::Bins,
    pub bpf_dir: PathBuf,
}

pub fn prepare(ctx: &Ctx, args: &VmtestArgs) -> Result<Prepared> {
    deps::ensure(&ctx.target)?;
    let k = kernel::build(ctx, &args.kernel)?;
    let bins = build::userspace(ctx, args.bench.is_some())?;
    let bpf_dir = bpf::build(ctx, &k)?;
    Ok(Prepared { k, bins, bpf_dir })
}

/// One finished VM run.
pub struct Run {
    pub counts: Counts,
    /// `target/vmtest/<run>/`: console.log, ktap.log, results.ktap, summary.json.
    pub dir: PathBuf,
    pub report: VmReport,
    pub metrics: Vec<bench::Metric>,
    /// Of the metrics repeated inside the boot (`bench --reps`), the
    /// spread of their repetitions, in percent.
    pub rep_spreads: Vec<bench::Metric>,
    /// With `bench --by-function`: kernel instructions per operation by
    /// function, the boot's repetitions folded into their median.
    pub profile: profile::Profiles,
}

/// `cargo xtask vmtest`: the plan (N times with `--repeat`), then the
/// closing line.
pub fn run(ctx: &Ctx, args: &VmtestArgs) -> Result<bool> {
    let p = prepare(ctx, args)?;
    if args.repeat > 1 {
        return test::repeat(ctx, args, &p).map(|c| {
            c.print();
            c.ok()
        });
    }
    let r = run_prepared(ctx, args, &p)?;
    r.counts.print();
    Ok(r.counts.ok())
}

/// KASAN and lockdep under TCG make the debug kernel 8-12x slower
/// (upstream tc_netkit: 27 s on vm, over 300 s on debug).
fn slowdown(k: &kernel::Kernel) -> u64 {
    if k.profile == kernel::Profile::Debug {
        8
    } else {
        1
    }
}

fn plan_for(ctx: &Ctx, args: &VmtestArgs, p: &Prepared) -> Result<Vec<Entry>> {
    let slow = slowdown(&p.k);
    if args.runner_selftest {
        return Ok(runner_selftest::plan());
    }
    if let Some(names) = &args.bench {
        return bench::plan(args, p, names, slow);
    }
    if !args.exec.is_empty() {
        if let Some(c) = args.exec.iter().find(|c| c.contains(['\t', '\n'])) {
            bail!("--exec {c:?}: the command may not contain tabs or newlines (the plan is one line per test)");
        }
        return Ok(args
            .exec
            .iter()
            .enumerate()
            .map(|(i, cmd)| Entry {
                name: format!("exec.{}", i + 1),
                timeout: Duration::from_secs(args.test_timeout * slow),
                format: Format::Raw,
                cwd: "/tmp".into(),
                argv: vec!["/bin/sh".into(), "-c".into(), cmd.clone()],
            })
            .collect());
    }
    if args.golden {
        return Ok(vec![Entry {
            name: "golden.capture".into(),
            timeout: Duration::from_secs(120 * slow),
            format: Format::Ktap,
            cwd: "/tmp".into(),
            argv: vec![
                p.bins.selftests.display().to_string(),
                "--golden-capture".into(),
                nk_init::GUEST_OUT.into(),
            ],
        }]);
    }
    plan::tests(ctx, args, p, slow)
}

/// A new directory under `target/vmtest/` that no other run has: named by
/// time and kernel (`20261201-090000-7.3-vm`), with `-2`, `-3`... when a run of the same
/// second already took the name (created atomically, so two concurrent
/// runs never share one). `latest` points at it.
fn new_run_dir(ctx: &Ctx, k: &kernel::Kernel) -> Result<(String, PathBuf)> {
    let sh = xshell::Shell::new()?;
    let stamp = xshell::cmd!(sh, "date +%Y%m%d-%H%M%S").quiet().read()?;
    let stem = format!("{stamp}-{}", k.id);
    let parent = ctx.target.join("vmtest");
    fs::create_dir_all(&parent)?;
    for n in 1.. {
        let name = if n == 1 {
            stem.clone()
        } else {
            format!("{stem}-{n}")
        };
        let dir = parent.join(&name);
        match fs::create_dir(&dir) {
            Ok(()) => {
                let latest = parent.join("latest");
                let _ = fs::remove_file(&latest);
                let _ = std::os::unix::fs::symlink(&name, &latest);
                return Ok((name, dir));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    unreachable!()
}

/// Runs the plan in one VM and judges it: the guest's KTAP, the host's
/// watchdog and splat scan, and the expected-skip list.
pub fn run_prepared(ctx: &Ctx, args: &VmtestArgs, p: &Prepared) -> Result<Run> {
    let started = Instant::now();
    let Prepared { k, bins, .. } = p;
    let plan = plan_for(ctx, args, p)?;
    if plan.is_empty() {
        bail!("no test matches --filter {:?}", args.filter);
    }
    if args.list {
        for e in &plan {
            println!("{}", e.name);
        }
        return Ok(Run {
            counts: Counts::default(),
            dir: PathBuf::new(),
            report: VmReport::empty(),
            metrics: vec![],
            rep_spreads: vec![],
            profile: Default::default(),
        });
    }
    let expected = if args.runner_selftest {
        runner_selftest::expected_skips()
    } else {
        let path = ctx.root.join("selftests/expected-skips");
        skips::parse(
            &fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
        )?
    };

    let (run_name, run_dir) = new_run_dir(ctx, k)?;
    let plan_path = run_dir.join("plan.tsv");
    fs::write(
        &plan_path,
        plan.iter()
            .map(|e| nk_init::plan::format_entry(e) + "\n")
            .collect::<String>(),
    )?;
    for path in [&ctx.root, &ctx.target, &ctx.cache, &plan_path] {
        let s = path.display().to_string();
        if s.contains(|c: char| c.is_whitespace() || c == ',') {
            bail!("{s}: paths passed to the guest on the kernel command line may not contain spaces or commas");
        }
    }
    let image = vm::qemu::boot_image(&k.build, &k.bzimage, &k.vmlinux);
    let (accel, why) = vm::qemu::choose_accel(args.kvm, image, &ctx.cache, &run_dir)?;
    eprintln!("==> vm: accelerator {why}");
    let console = run_dir.join("console.log");
    let ktap_log = run_dir.join("ktap.log");
    let out_dir = run_dir.join("out");
    if args.golden {
        fs::create_dir_all(&out_dir)?;
    }
    let spec = VmSpec {
        kernel: image,
        init: &bins.init,
        plan: &plan_path,
        console: &console,
        ktap: &ktap_log,
        // The socket benchmark holds up to ~210k sockets.
        mem_mb: if args.bench.is_some() {
            k.profile.guest_mem_mb().max(3072)
        } else {
            k.profile.guest_mem_mb()
        },
        cpus: args.cpus,
        accel,
        extra_cmdline: &args.append,
        keep: vec![ctx.root.clone(), ctx.target.clone(), ctx.cache.clone()],
        out: args.golden.then_some(out_dir.as_path()),
        plugin: match &args.insn_plugin {
            Some(so) => {
                if accel != vm::Accel::Tcg {
                    bail!("--measure insn needs TCG (the plugin counts what TCG translates); run with --kvm off");
                }
                let (syms, prof) = (run_dir.join("syms.txt"), run_dir.join("prof.txt"));
                Some(insn::plugin_arg(
                    so,
                    &run_dir.join("insn.txt"),
                    &k.build.join("System.map"),
                    args.insn_profile
                        .then_some((syms.as_path(), prof.as_path())),
                )?)
            }
            None => None,
        },
        icount: args.icount,
    };
    if args.icount.is_some() && accel != vm::Accel::Tcg {
        bail!("-icount needs TCG; run with --kvm off");
    }
    let total: u64 = plan.iter().map(|e| e.timeout.as_secs()).sum();
    // Under -icount guest time is 2^shift ns per instruction, whatever
    // the host's speed: a loaded host runs fewer guest seconds per host
    // second, and the host's watchdog allows for it.
    let guest_slowdown = if args.icount.is_some() { 4 } else { 1 };
    let limits = Limits {
        boot: Duration::from_secs(
            if accel == vm::Accel::Tcg { 90 } else { 30 } * u64::from(guest_slowdown),
        ),
        run: Duration::from_secs(
            args.run_timeout
                .unwrap_or(total * u64::from(guest_slowdown) + 120),
        ),
        guest_slowdown,
    };
    let stage = Stage::new(format!(
        "vm: booting kernel {} [{}] under {}, {} test(s); logs in {}",
        k.release,
        k.id,
        accel.name().to_uppercase(),
        plan.len(),
        run_dir.display()
    ));
    let mut report = vm::run(&spec, &plan, &run_dir, &limits)?;
    stage.done("VM run finished");
    let key = skips::RunKey::new(&k.release, k.profile.name(), k.base_only);
    let verdict = skips::apply(&mut report, &expected, &key);
    vm::report::print(&report);
    for u in &verdict.unused {
        eprintln!("    note: {u}: remove the entry, or say why it stays");
    }
    fs::write(run_dir.join("results.ktap"), report.to_ktap())?;
    let summary = serde_json::json!({
        "kernel": k,
        "accelerator": accel.name(),
        "accelerator_reason": why,
        "total_seconds": started.elapsed().as_secs_f64(),
        "unexpected_skips": verdict.unexpected,
        "stale_expected_skips": verdict.unused,
        "report": report,
    });
    fs::write(
        run_dir.join("summary.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    if let (Some(b), Some(f)) = (report.boot_seconds, report.first_test_seconds) {
        eprintln!(
            "    boot to nk-init {b:.2}s, to first test {f:.2}s (guest uptime at init {:.2}s), VM wall {:.1}s, total {:.1}s",
            report.guest_uptime_at_init.unwrap_or(0.0),
            report.wall_seconds,
            started.elapsed().as_secs_f64()
        );
    }
    match report.guest_cpus {
        Some(n) if n != args.cpus => eprintln!(
            "    warning: the guest brought up {n} CPU(s); --cpus asked for {}",
            args.cpus
        ),
        _ => {}
    }
    eprintln!(
        "    results: {}/results.ktap, summary.json, console.log",
        run_dir.display()
    );
    let bench::Recorded {
        metrics,
        rep_spreads,
        profile,
    } = if args.bench.is_some() {
        let insn = args.insn_plugin.as_ref().map(|_| run_dir.join("insn.txt"));
        let prof = args.insn_profile.then(|| run_dir.join("prof.txt"));
        bench::record(
            ctx,
            &run_name,
            &ktap_log,
            insn.as_deref(),
            prof.as_deref(),
            accel.name(),
            &k.release,
        )?
    } else {
        bench::Recorded::default()
    };
    let counts = if args.runner_selftest {
        let (passed, failed) = runner_selftest::check(&report);
        Counts {
            passed,
            failed,
            ..Counts::default()
        }
    } else {
        Counts::of(&report)
    };
    Ok(Run {
        counts,
        dir: run_dir,
        report,
        metrics,
        rep_spreads,
        profile,
    })
}
