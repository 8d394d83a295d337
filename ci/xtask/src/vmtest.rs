//! `cargo xtask vmtest`: build what the tests need, boot the kernel under
//! qemu, run the plan, and report.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nk_init::plan::{Entry, Format};

use crate::kernel::{self, KernelArgs};
use crate::progress::{log_path, run_logged, Stage};
use crate::vm::{self, KvmMode, Limits, VmSpec};
use crate::{bpf, deps, upstream, Ctx};

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
    /// Test the runner itself: a plan that passes, skips, fails, hangs,
    /// prints a splat, leaks a device and panics the kernel, checked
    /// against the outcomes the runner must report.
    #[arg(long)]
    pub runner_selftest: bool,
    /// Set by `cargo xtask bench`: run these benchmarks instead of tests.
    #[arg(skip)]
    pub bench: Option<Vec<String>>,
    /// Set by `cargo xtask bench --size`.
    #[arg(skip)]
    pub bench_size: Option<usize>,
    /// Set by `cargo xtask golden`: run only the netlink capture, with a
    /// writable `out/` share in the run directory.
    #[arg(skip)]
    pub golden: bool,
}

/// `cargo xtask bench`: benchmarks in the VM, side by side in one run.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub kernel: KernelArgs,
    /// Benchmarks to run (default: all).
    pub names: Vec<String>,
    /// Problem size (e.g. number of pairs) instead of each benchmark's default.
    #[arg(long)]
    pub size: Option<usize>,
    /// Accelerator.
    #[arg(long, value_enum, default_value = "auto")]
    pub kvm: KvmMode,
    /// Also run the benchmarks on the unpatched base kernel, right before
    /// the patched one, and print both with their ratio.
    #[arg(long, conflicts_with = "base_only")]
    pub compare_base: bool,
}

/// Runs the benchmarks and prints their metrics.
pub fn bench(ctx: &Ctx, b: &BenchArgs) -> Result<bool> {
    if b.compare_base {
        return bench_compare(ctx, b);
    }
    let c = run_counts(ctx, &bench_args(b, b.kernel.base_only))?;
    println!("{c}");
    Ok(c.ok())
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
            runner_selftest: false,
            bench: None,
            bench_size: None,
            golden: false,
        }
    }
}

/// The VM run of `bench` on the base (`base_only`) or the patched kernel.
fn bench_args(b: &BenchArgs, base_only: bool) -> VmtestArgs {
    let mut kernel = b.kernel.clone();
    kernel.base_only = base_only;
    VmtestArgs {
        test_timeout: 900,
        bench: Some(b.names.clone()),
        bench_size: b.size,
        ..VmtestArgs::defaults(kernel, b.kvm)
    }
}

/// `bench --compare-base`: the same benchmarks on the base kernel, then on
/// the patched one, in one invocation, with a table of both and the ratio.
fn bench_compare(ctx: &Ctx, b: &BenchArgs) -> Result<bool> {
    let mut runs = Vec::new();
    let mut ok = true;
    for base_only in [true, false] {
        let args = bench_args(b, base_only);
        let p = prepare(ctx, &args)?;
        let (c, m) = run_prepared_full(ctx, &args, &p)?;
        println!("{} kernel: {c}", if base_only { "base" } else { "patched" });
        ok &= c.ok();
        runs.push(m);
    }
    println!(
        "{:<18} {:<22} {:>12} {:>12} {:>8}",
        "BENCH", "METRIC", "BASE", "PATCHED", "RATIO"
    );
    let mut rows = Vec::new();
    for (bench, metric, patched) in &runs[1] {
        let base = runs[0]
            .iter()
            .find(|(b2, m2, _)| b2 == bench && m2 == metric)
            .map(|x| x.2);
        let ratio = base.filter(|v| *v != 0.0).map(|v| patched / v);
        println!(
            "{bench:<18} {metric:<22} {:>12} {patched:>12.1} {:>8}",
            base.map_or("-".into(), |v| format!("{v:.1}")),
            ratio.map_or("-".into(), |r| format!("{r:.3}"))
        );
        rows.push(serde_json::json!({
            "bench": bench, "metric": metric, "base": base,
            "patched": patched, "ratio": ratio,
        }));
    }
    let out = ctx.target.join("bench").join("compare-base.json");
    fs::create_dir_all(out.parent().unwrap())?;
    fs::write(&out, serde_json::to_string_pretty(&rows)?)?;
    eprintln!("    comparison: {}", out.display());
    render_charts(ctx, &out);
    Ok(ok)
}

/// PNG charts of a results file, into `target/bench/charts/`.
fn render_charts(ctx: &Ctx, json: &std::path::Path) {
    let out = ctx.target.join("bench").join("charts");
    // Debian's python3, which python3-matplotlib (installed by `deps`)
    // belongs to, whatever python3 comes first on PATH.
    let py = if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    match Command::new(py)
        .arg(ctx.root.join("ci/bench/render.py"))
        .arg(json)
        .arg(&out)
        .output()
    {
        Ok(o) if o.status.success() => {
            for l in String::from_utf8_lossy(&o.stdout).lines() {
                eprintln!("    chart: {l}");
            }
        }
        Ok(o) => eprintln!(
            "warning: rendering charts failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => eprintln!("warning: cannot run python3 for the charts: {e}"),
    }
}

/// `# bench: <bench> <metric> <value>` lines of a run's KTAP log.
fn bench_metrics(ktap: &str) -> Vec<(String, String, f64)> {
    ktap.lines()
        .filter_map(|l| l.trim_start().strip_prefix("# bench: "))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((
                it.next()?.to_string(),
                it.next()?.to_string(),
                it.next()?.parse().ok()?,
            ))
        })
        .collect()
}

/// The runner self-test: (name, shell command, timeout, expected outcome).
const RUNNER_SELFTEST: &[(&str, &str, u64, &str)] = &[
    ("runner.pass", "true", 10, "pass"),
    (
        "runner.skip",
        "echo 'SKIP: demonstration'; exit 4",
        10,
        "skip",
    ),
    ("runner.fail", "echo failing on purpose; exit 1", 10, "fail"),
    ("runner.hang", "sleep 600", 3, "timeout"),
    (
        "runner.splat",
        "echo '<4>WARNING: CPU: 0 PID: 1 at nkdev/runner-selftest: injected' > /dev/kmsg",
        10,
        "fail",
    ),
    ("runner.leak", "ip link add nkleak0 type dummy", 10, "fail"),
    (
        "runner.panic",
        "echo c > /proc/sysrq-trigger; sleep 30",
        60,
        "fail",
    ),
    ("runner.after_panic", "true", 10, "skip"),
];

fn runner_selftest_plan() -> Vec<Entry> {
    RUNNER_SELFTEST
        .iter()
        .map(|(name, sh, t, _)| Entry {
            name: name.to_string(),
            timeout: Duration::from_secs(*t),
            format: Format::Raw,
            cwd: "/".into(),
            argv: vec!["/bin/sh".into(), "-c".into(), sh.to_string()],
        })
        .collect()
}

/// Compares the report with what each runner self-test must produce.
fn check_runner_selftest(report: &vm::VmReport) -> (usize, usize) {
    use ktap::Outcome;
    let mut passed = 0;
    for ((name, _, _, want), got) in RUNNER_SELFTEST.iter().zip(&report.tests) {
        let kind = match &got.outcome {
            Outcome::Pass | Outcome::Todo(_) => "pass",
            Outcome::Fail => "fail",
            Outcome::Skip(_) => "skip",
            Outcome::Timeout(_) => "timeout",
        };
        let extra = match *name {
            "runner.splat" => got.splats.iter().any(|s| s.kind == "WARNING"),
            "runner.leak" => got
                .diagnostics
                .iter()
                .any(|d| d.contains("leaked network device")),
            "runner.panic" => report
                .aborted
                .as_deref()
                .is_some_and(|a| a.contains("panic")),
            _ => true,
        };
        let good = kind == *want && extra;
        passed += usize::from(good);
        println!(
            "{} runner self-test {name}: reported {kind}, expected {want}",
            if good { "ok    " } else { "FAILED" }
        );
    }
    (passed, RUNNER_SELFTEST.len() - passed)
}

/// Paths of the userspace binaries the guest runs.
struct Bins {
    init: PathBuf,
    selftests: PathBuf,
    nkctl: PathBuf,
}

/// The target triple of the static release build.
const STATIC_TARGET: &str = "x86_64-unknown-linux-gnu";

/// `cargo build --release` of `pkgs`, linked statically for
/// [`STATIC_TARGET`] (glibc, and libelf and zlib from their `.a` files).
/// The target must be explicit so that build scripts and proc macros stay
/// dynamic. Returns the command and the directory the binaries land in.
fn static_build(ctx: &Ctx, pkgs: &[&str], features: &[&str]) -> Result<(Command, PathBuf)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&ctx.root)
        .args(["build", "--quiet", "--release", "--target", STATIC_TARGET]);
    for p in pkgs {
        cmd.args(["-p", p]);
    }
    for f in features {
        cmd.args(["--features", f]);
    }
    cmd.env("RUSTFLAGS", "-C target-feature=+crt-static");
    // Only nkctl's `static` feature links libelf and zlib from their .a.
    if !features.is_empty() {
        let out = Command::new("pkg-config")
            .args(["--variable=libdir", "libelf"])
            .output()
            .context("pkg-config --variable=libdir libelf")?;
        let libdir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if libdir.is_empty() {
            bail!("pkg-config finds no libelf (install libelf-dev)");
        }
        cmd.env("LIBBPF_SYS_LIBRARY_PATH", libdir);
    }
    Ok((cmd, ctx.target.join(STATIC_TARGET).join("release")))
}

/// Builds the guest's binaries. Tests use the dev profile for the test
/// binaries (faster to build). Benchmarks use what an operator would
/// install: a static release build, which starts ~35 % faster than a
/// dynamic one because no loader runs; that is most of a one-shot CLI's
/// time. nk-init, PID 1, is always a static release build: the guest
/// loads it over 9p before the first test, and the debug build is 7 MB.
fn cargo_build(ctx: &Ctx, release: bool) -> Result<Bins> {
    let stage = Stage::new(format!(
        "userspace: cargo build{} (nk-init, nk-selftests, nkctl)",
        if release { " --release, static" } else { "" }
    ));
    let log = log_path(&ctx.target, "cargo-build");
    let _ = fs::remove_file(&log);
    let (bins, init) = if release {
        let (mut cmd, dir) = static_build(
            ctx,
            &["nk-init", "nk-selftests", "nkctl"],
            &["nkctl/static"],
        )?;
        run_logged("cargo build", &mut cmd, &log)?;
        (dir.clone(), dir)
    } else {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        run_logged(
            "cargo build",
            Command::new(cargo).current_dir(&ctx.root).args([
                "build",
                "--quiet",
                "-p",
                "nk-selftests",
                "-p",
                "nkctl",
            ]),
            &log,
        )?;
        let (mut cmd, dir) = static_build(ctx, &["nk-init"], &[])?;
        run_logged("cargo build nk-init", &mut cmd, &log)?;
        (ctx.target.join("debug"), dir)
    };
    stage.done("built");
    Ok(Bins {
        init: init.join("nk-init"),
        selftests: bins.join("nk-selftests"),
        nkctl: bins.join("nkctl"),
    })
}

/// Matches a test name against a filter: `*` globs, otherwise substring.
pub fn matches(name: &str, pat: &str) -> bool {
    if !pat.contains('*') {
        return name.contains(pat);
    }
    let parts: Vec<&str> = pat.split('*').collect();
    let mut rest = name;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(p) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            let Some(at) = rest.find(p) else { return false };
            rest = &rest[at + p.len()..];
        }
    }
    true
}

fn selected(args: &VmtestArgs, name: &str) -> bool {
    args.filter.is_empty() || args.filter.iter().any(|p| matches(name, p))
}

/// `nk-selftests --list`: one `name<TAB>timeout` per line (run on the host,
/// unprivileged).
fn selftest_cases(bin: &Path) -> Result<Vec<(String, Option<u64>)>> {
    let out = Command::new(bin)
        .arg("--list")
        .output()
        .with_context(|| format!("running {} --list", bin.display()))?;
    if !out.status.success() {
        bail!(
            "{} --list failed: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (n, t) = l.split_once('\t').unwrap_or((l, ""));
            (n.to_string(), t.parse().ok())
        })
        .collect())
}

fn now_stamp() -> String {
    let out = Command::new("date")
        .arg("+%Y%m%d-%H%M%S")
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    String::from_utf8_lossy(&out).trim().to_string()
}

/// Passed, failed and skipped counts of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Counts {
    pub fn ok(&self) -> bool {
        self.failed == 0
    }
}

impl std::ops::Add for Counts {
    type Output = Counts;
    fn add(self, o: Counts) -> Counts {
        Counts {
            passed: self.passed + o.passed,
            failed: self.failed + o.failed,
            skipped: self.skipped + o.skipped,
        }
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )
    }
}

/// Runs the VM tests and prints the closing line.
pub fn run(ctx: &Ctx, args: &VmtestArgs) -> Result<bool> {
    let c = run_counts(ctx, args)?;
    println!("{c}");
    Ok(c.ok())
}

/// What every VM run needs, built once per command.
struct Prepared {
    k: kernel::Kernel,
    bins: Bins,
    bpf_dir: PathBuf,
}

fn prepare(ctx: &Ctx, args: &VmtestArgs) -> Result<Prepared> {
    deps::ensure(&ctx.target)?;
    let k = kernel::build(ctx, &args.kernel)?;
    let bins = cargo_build(ctx, args.bench.is_some())?;
    let bpf_dir = bpf::build(ctx, &k)?;
    Ok(Prepared { k, bins, bpf_dir })
}

pub(crate) fn run_counts(ctx: &Ctx, args: &VmtestArgs) -> Result<Counts> {
    let p = prepare(ctx, args)?;
    run_prepared(ctx, args, &p)
}

fn run_prepared(ctx: &Ctx, args: &VmtestArgs, p: &Prepared) -> Result<Counts> {
    Ok(run_prepared_full(ctx, args, p)?.0)
}

/// A benchmark metric: (bench, metric, value).
type Metric = (String, String, f64);

/// Runs the plan; also returns the benchmark metrics the run printed.
fn run_prepared_full(ctx: &Ctx, args: &VmtestArgs, p: &Prepared) -> Result<(Counts, Vec<Metric>)> {
    let started = Instant::now();
    let Prepared { k, bins, bpf_dir } = p;

    // KASAN and lockdep under TCG make the debug kernel 8-12x slower
    // (upstream tc_netkit: 27 s on vm, over 300 s on debug).
    let slow = if k.profile == kernel::Profile::Debug {
        8
    } else {
        1
    };
    let mut plan = Vec::new();
    if args.runner_selftest {
        plan = runner_selftest_plan();
    }
    if let Some(names) = &args.bench {
        let out = Command::new(&bins.selftests).arg("--list-bench").output()?;
        let all: Vec<(String, u64)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                Some((f.first()?.to_string(), f.get(1)?.parse().ok()?))
            })
            .collect();
        if let Some(n) = names.iter().find(|n| !all.iter().any(|(a, _)| a == *n)) {
            bail!(
                "no benchmark {n:?}; there are: {}",
                all.iter()
                    .map(|a| a.0.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        for (name, t) in all
            .into_iter()
            .filter(|(n, _)| names.is_empty() || names.contains(n))
        {
            let mut argv = vec![
                bins.selftests.display().to_string(),
                "--bpf-dir".into(),
                bpf_dir.display().to_string(),
                "--nkctl".into(),
                bins.nkctl.display().to_string(),
                "--bench".into(),
                name.clone(),
            ];
            if let Some(s) = args.bench_size {
                argv.extend(["--size".into(), s.to_string()]);
            }
            plan.push(Entry {
                name: format!("bench.{name}"),
                timeout: Duration::from_secs(t * slow),
                format: Format::Ktap,
                cwd: "/tmp".into(),
                argv,
            });
        }
    }
    if args.golden {
        plan.push(Entry {
            name: "golden.capture".into(),
            timeout: Duration::from_secs(120 * slow),
            format: Format::Ktap,
            cwd: "/tmp".into(),
            argv: vec![
                bins.selftests.display().to_string(),
                "--golden-capture".into(),
                nk_init::GUEST_OUT.into(),
            ],
        });
    }
    let only_special = args.runner_selftest || args.bench.is_some() || args.golden;
    for (case, t) in selftest_cases(&bins.selftests)?
        .into_iter()
        .filter(|_| !only_special)
    {
        let name = format!("nk.{case}");
        if selected(args, &name) {
            plan.push(Entry {
                name,
                timeout: Duration::from_secs(t.unwrap_or(args.test_timeout) * slow),
                format: Format::Ktap,
                cwd: "/tmp".into(),
                argv: vec![
                    bins.selftests.display().to_string(),
                    "--bpf-dir".into(),
                    bpf_dir.display().to_string(),
                    "--nkctl".into(),
                    bins.nkctl.display().to_string(),
                    "--run".into(),
                    case,
                ],
            });
        }
    }
    let list = upstream::parse_list(&fs::read_to_string(
        ctx.root.join("selftests/upstream/bpf.list"),
    )?)?;
    if !only_special
        && list
            .iter()
            .any(|t| selected(args, &format!("upstream.bpf.{}", t.name)))
    {
        if let Some(tp) = upstream::build(ctx, k)? {
            for t in tp
                .tests
                .iter()
                .filter(|t| selected(args, &format!("upstream.bpf.{t}")))
            {
                plan.push(Entry {
                    name: format!("upstream.bpf.{t}"),
                    timeout: Duration::from_secs(args.test_timeout.max(300) * slow),
                    format: Format::TestProgs,
                    cwd: tp.dir.clone(),
                    argv: vec![
                        tp.dir.join("test_progs").display().to_string(),
                        "-t".into(),
                        t.clone(),
                    ],
                });
            }
            // Not built, not run: say so in the results (exit 4 is a skip).
            for t in tp
                .missing
                .iter()
                .filter(|t| selected(args, &format!("upstream.bpf.{t}")))
            {
                plan.push(Entry {
                    name: format!("upstream.bpf.{t}"),
                    timeout: Duration::from_secs(30),
                    format: Format::Raw,
                    cwd: PathBuf::from("/"),
                    argv: vec![
                        "/bin/sh".into(),
                        "-c".into(),
                        format!(
                            "echo 'SKIP: prog_tests/{t}.c is not in this kernel tree \
                             (the series adds it)'; exit 4"
                        ),
                    ],
                });
            }
        }
    }
    if plan.is_empty() {
        bail!("no test matches --filter {:?}", args.filter);
    }
    if args.list {
        for e in &plan {
            println!("{}", e.name);
        }
        return Ok((Counts::default(), Vec::new()));
    }

    let run_name = format!(
        "{}-{}{}",
        now_stamp(),
        k.profile.name(),
        if k.base_only { "-base" } else { "" }
    );
    let run_dir = ctx.target.join("vmtest").join(&run_name);
    fs::create_dir_all(&run_dir)?;
    let latest = ctx.target.join("vmtest/latest");
    let _ = fs::remove_file(&latest);
    let _ = std::os::unix::fs::symlink(&run_name, &latest);
    let plan_path = run_dir.join("plan.tsv");
    fs::write(
        &plan_path,
        plan.iter()
            .map(|e| nk_init::plan::format_entry(e) + "\n")
            .collect::<String>(),
    )?;

    for p in [&ctx.root, &ctx.target, &ctx.cache, &plan_path] {
        let s = p.display().to_string();
        if s.contains(|c: char| c.is_whitespace() || c == ',') {
            bail!("{s}: paths passed to the guest on the kernel command line may not contain spaces or commas");
        }
    }
    let (accel, why) = vm::qemu::choose_accel(args.kvm, &k.bzimage, &ctx.cache, &run_dir)?;
    eprintln!("==> vm: accelerator {}", why);
    let console = run_dir.join("console.log");
    let ktap_log = run_dir.join("ktap.log");
    let out_dir = run_dir.join("out");
    if args.golden {
        fs::create_dir_all(&out_dir)?;
    }
    let spec = VmSpec {
        kernel: vm::qemu::boot_image(&k.build, &k.bzimage, &k.vmlinux),
        init: &bins.init,
        plan: &plan_path,
        console: &console,
        ktap: &ktap_log,
        // The socket benchmark holds ~120k sockets.
        mem_mb: if args.bench.is_some() {
            k.profile.guest_mem_mb().max(2048)
        } else {
            k.profile.guest_mem_mb()
        },
        cpus: args.cpus,
        accel,
        extra_cmdline: &args.append,
        keep: vec![ctx.root.clone(), ctx.target.clone(), ctx.cache.clone()],
        out: args.golden.then_some(out_dir.as_path()),
    };
    let total: u64 = plan.iter().map(|e| e.timeout.as_secs()).sum();
    let limits = Limits {
        boot: Duration::from_secs(if accel == vm::Accel::Tcg { 90 } else { 30 }),
        run: Duration::from_secs(args.run_timeout.unwrap_or(total + 120)),
    };
    let stage = Stage::new(format!(
        "vm: booting kernel {} [{}] under {}, {} test(s); logs in {}",
        k.release,
        k.build.file_name().unwrap().to_string_lossy(),
        accel.name().to_uppercase(),
        plan.len(),
        run_dir.display()
    ));
    let report = vm::run(&spec, &plan, &run_dir, &limits)?;
    stage.done("VM run finished");
    vm::report::print(&report);
    fs::write(run_dir.join("results.ktap"), report.to_ktap())?;
    let summary = serde_json::json!({
        "kernel": k,
        "accelerator": accel.name(),
        "accelerator_reason": why,
        "total_seconds": started.elapsed().as_secs_f64(),
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
    let mut metrics = Vec::new();
    if args.bench.is_some() {
        metrics = bench_metrics(&fs::read_to_string(&ktap_log).unwrap_or_default());
        println!("{:<14} {:<28} {:>12}", "BENCH", "METRIC", "VALUE");
        for (b, m, v) in &metrics {
            println!("{b:<14} {m:<28} {v:>12.4}");
        }
        let json: Vec<_> = metrics
            .iter()
            .map(|(b, m, v)| serde_json::json!({"bench": b, "metric": m, "value": v}))
            .collect();
        let out = ctx.target.join("bench").join(format!("{run_name}.json"));
        fs::create_dir_all(out.parent().unwrap())?;
        fs::write(
            &out,
            serde_json::to_string_pretty(
                &serde_json::json!({"accelerator": accel.name(), "kernel": k.release, "metrics": json}),
            )?,
        )?;
        eprintln!("    metrics: {}", out.display());
        render_charts(ctx, &out);
    }
    if args.runner_selftest {
        let (passed, failed) = check_runner_selftest(&report);
        let c = Counts {
            passed,
            failed,
            skipped: 0,
        };
        return Ok((c, metrics));
    }
    let (p, f, s) = report.counts();
    // An aborted run is a failure even when every reported test passed.
    let f = if report.aborted.is_some() && f == 0 {
        1
    } else {
        f as usize
    };
    let c = Counts {
        passed: p as usize,
        failed: f,
        skipped: s as usize,
    };
    Ok((c, metrics))
}

/// `cargo xtask test`: unprivileged unit tests, then the VM tests.
pub fn test(ctx: &Ctx, args: &VmtestArgs) -> Result<bool> {
    let stage = Stage::new("test: cargo test --workspace (unprivileged unit tests)");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(cargo)
        .current_dir(&ctx.root)
        .args(["test", "--workspace", "--quiet"])
        .status()?;
    if !st.success() {
        bail!("unit tests failed");
    }
    stage.done("unit tests passed");
    // Kernel, userspace and BPF objects are built once for both VM runs.
    let p = prepare(ctx, args)?;
    // Generated files are up to date with the patched kernel's headers.
    crate::bindings::run(&ctx.root, &p.k.headers, true)?;
    let selftest = VmtestArgs {
        runner_selftest: true,
        bench: None,
        filter: vec![],
        ..args.clone()
    };
    let a = run_prepared(ctx, &selftest, &p)?;
    let b = run_prepared(ctx, args, &p)?;
    let total = a + b;
    println!("{total}");
    Ok(total.ok())
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn filters() {
        assert!(matches("nk.netkit_l2", "netkit"));
        assert!(matches("nk.netkit_l2", "nk.*l2"));
        assert!(matches("upstream.bpf.tc_netkit", "upstream.*"));
        assert!(!matches("nk.tcx_order", "nk.*l2"));
        assert!(matches("abc", "*"));
        assert!(!matches("abc", "b*"));
    }
}
