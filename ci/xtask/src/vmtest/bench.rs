//! `cargo xtask bench`: benchmarks in the VM, side by side in one run,
//! and `--compare-base`, the same benchmarks on the base kernel first.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Result};
use nk_init::plan::{Entry, Format};

use super::{prepare, run_prepared, Prepared, VmtestArgs};
use crate::kernel::KernelArgs;
use crate::vm::KvmMode;
use crate::Ctx;

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
    /// What to measure: wall time only, or also guest instructions per
    /// operation with the TCG plugin of ci/insn-plugin (TCG only).
    #[arg(long, value_enum, default_value = "wall")]
    pub measure: Measure,
    /// Run the VM this many times and report each metric's median and
    /// spread ((max - min) / median) over the runs.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub runs: u32,
    /// Inside each boot, measure every variant this many times (odd, so
    /// that the median is one of them) and report each metric's median
    /// over the repetitions, with their spread, so that one background
    /// event in one span does not move a result. For the benchmarks that
    /// `nk-selftests --list-bench` marks `repeats` (sock_destroy), named.
    #[arg(long, default_value_t = 1, value_parser = odd_reps)]
    pub reps: u32,
    /// Of --runs, how many (the last ones) run with two busy processes on
    /// the host, to show how the host's load moves each metric.
    #[arg(long, default_value_t = 0)]
    pub loaded_runs: u32,
    /// With --measure insn: the guest clock. `insn` (the default) runs
    /// qemu with -icount, so that guest time is a function of the
    /// instructions executed and timers, TCP's clocks and fixed-time
    /// windows do not move with the host's load (one vCPU); `host` keeps
    /// TCG's multi-threaded mode, two vCPUs and the host's clock.
    #[arg(long, value_enum, default_value = "insn")]
    pub clock: Clock,
    /// With --measure insn: also count kernel instructions by function
    /// (the plugin's profile) and print, for each measured span, the
    /// functions whose count moved most between repetitions (one run) or
    /// between runs (--runs); all of it in target/bench/profile.json.
    #[arg(long)]
    pub by_function: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Clock {
    /// Guest time from the instruction count (-icount shift=3).
    Insn,
    /// Guest time from the host's clock (multi-threaded TCG).
    Host,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Measure {
    /// Wall time and the benchmarks' own counters.
    Wall,
    /// Wall time plus guest instructions per operation (TCG plugin).
    Insn,
}

/// `--reps`: 1, 3, 5, 7 or 9.
fn odd_reps(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if (1..=9).contains(&n) && n % 2 == 1 => Ok(n),
        Ok(n) => Err(format!(
            "{n}: want an odd number from 1 to 9 (an even count's median is the mean of the middle two, which one outlier still moves)"
        )),
        Err(e) => Err(format!("{s:?}: {e}")),
    }
}

/// A benchmark metric: (bench, metric, value).
pub type Metric = (String, String, f64);

/// Runs the benchmarks and prints their metrics.
pub fn run(ctx: &Ctx, b: &BenchArgs) -> Result<bool> {
    if b.loaded_runs > b.runs {
        bail!(
            "--loaded-runs {} is more than --runs {}",
            b.loaded_runs,
            b.runs
        );
    }
    if b.by_function && b.measure != Measure::Insn {
        bail!("--by-function needs --measure insn: the profile comes from the instruction-counting plugin");
    }
    if b.by_function && b.compare_base {
        bail!("--by-function is for one kernel's runs; it cannot be combined with --compare-base");
    }
    if b.measure == Measure::Insn && b.kvm == KvmMode::On {
        bail!("--measure insn needs TCG: the plugin counts what TCG translates (drop --kvm on)");
    }
    if b.compare_base {
        if b.runs > 1 {
            bail!("--compare-base runs each kernel once; --runs is for one kernel");
        }
        return compare(ctx, b);
    }
    let plugin = insn_plugin(ctx, b)?;
    let args = vm_args(b, b.kernel.base_only, plugin);
    let p = prepare(ctx, &args)?;
    let mut ok = true;
    let mut runs = Vec::new();
    let mut reps = Vec::new();
    let mut profiles = super::profile::Profiles::new();
    for i in 0..b.runs {
        let loaded = i >= b.runs - b.loaded_runs;
        if b.runs > 1 {
            eprintln!(
                "==> bench: run {}/{}{}",
                i + 1,
                b.runs,
                if loaded {
                    ", host loaded by two busy processes"
                } else {
                    ""
                }
            );
        }
        let _load = if loaded {
            Some(HostLoad::start(2)?)
        } else {
            None
        };
        let r = run_prepared(ctx, &args, &p)?;
        r.counts.print();
        ok &= r.counts.ok();
        runs.push(r.metrics);
        reps.push(r.rep_spreads);
        for (k, v) in r.profile {
            profiles.entry(k).or_default().extend(v);
        }
    }
    if b.runs > 1 {
        print_spreads(ctx, b, &runs, &reps)?;
        if b.by_function {
            super::profile::report(
                &super::profile::rows(&profiles),
                &format!("{} runs, each the median of its repetitions", b.runs),
                &ctx.target.join("bench").join("profile.json"),
            )?;
        }
    }
    Ok(ok)
}

/// Busy processes on the host for as long as it lives.
struct HostLoad(Vec<std::process::Child>);

impl HostLoad {
    fn start(n: usize) -> Result<HostLoad> {
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(
                // Busy while xtask lives: killed by a signal, xtask runs no
                // Drop, and a bare `while :` would spin on for ever.
                Command::new("sh")
                    .args([
                        "-c",
                        &format!(
                            "while kill -0 {} 2>/dev/null; do :; done",
                            std::process::id()
                        ),
                    ])
                    .spawn()?,
            );
        }
        Ok(HostLoad(v))
    }
}

impl Drop for HostLoad {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Each metric over the runs: median, min, max, spread (and with
/// `--reps`, the largest spread of the repetitions inside one boot); also
/// written to `target/bench/spread.json`.
fn print_spreads(
    ctx: &Ctx,
    b: &BenchArgs,
    runs: &[Vec<Metric>],
    reps: &[Vec<Metric>],
) -> Result<()> {
    let rows = super::insn::spreads(runs);
    let in_boot = super::insn::spreads(reps);
    let rep_max = |r: &super::insn::Spread| {
        in_boot
            .iter()
            .find(|x| x.bench == r.bench && x.metric == r.metric)
            .map(|x| x.max())
    };
    // IN-BOOT: the largest spread of one boot's repetitions (--reps).
    let in_boot_col = b.reps > 1;
    println!(
        "{:<16} {:<44} {:>14} {:>14} {:>14} {:>8}{}",
        "BENCH",
        "METRIC",
        "MEDIAN",
        "MIN",
        "MAX",
        "SPREAD",
        if in_boot_col { "   IN-BOOT" } else { "" }
    );
    let mut json = Vec::new();
    for r in &rows {
        let rm = rep_max(r);
        let col = match (in_boot_col, rm) {
            (false, _) => String::new(),
            (true, Some(v)) => format!(" {:>8.2}%", v),
            (true, None) => format!(" {:>9}", "-"),
        };
        println!(
            "{:<16} {:<44} {:>14.3} {:>14.3} {:>14.3} {:>7.2}%{col}",
            r.bench,
            r.metric,
            r.median(),
            r.min(),
            r.max(),
            r.spread_pct(),
        );
        let mut j = serde_json::json!({
            "bench": r.bench, "metric": r.metric, "values": r.values,
            "median": r.median(), "spread_pct": r.spread_pct(),
        });
        if let Some(v) = rm {
            j["rep_spread_pct_max"] = serde_json::json!(v);
        }
        json.push(j);
    }
    let out = ctx.target.join("bench").join("spread.json");
    fs::create_dir_all(out.parent().unwrap())?;
    fs::write(
        &out,
        serde_json::to_string_pretty(&serde_json::json!({
            "runs": b.runs, "loaded_runs": b.loaded_runs, "reps": b.reps,
            "measure": format!("{:?}", b.measure).to_lowercase(),
            "metrics": json,
        }))?,
    )?;
    eprintln!(
        "    {} runs ({} with the host loaded, {} repetition(s) inside each); spread: {}",
        b.runs,
        b.loaded_runs,
        b.reps,
        out.display()
    );
    Ok(())
}

/// The plugin of `--measure insn`, built.
fn insn_plugin(ctx: &Ctx, b: &BenchArgs) -> Result<Option<PathBuf>> {
    match b.measure {
        Measure::Wall => Ok(None),
        Measure::Insn => super::insn::build_plugin(ctx).map(Some),
    }
}

/// One line of `nk-selftests --list-bench`: `name<TAB>timeout<TAB>size<TAB>repeats|once`.
#[derive(Debug, PartialEq)]
struct ListedBench {
    name: String,
    timeout: u64,
    repeats: bool,
}

/// `--reps` above 1 is for benchmarks that repeat inside a boot; any
/// other chosen one is refused by name.
fn check_reps(chosen: &[ListedBench], reps: u32) -> Result<()> {
    let once: Vec<&str> = chosen
        .iter()
        .filter(|a| !a.repeats)
        .map(|a| a.name.as_str())
        .collect();
    if reps > 1 && !once.is_empty() {
        let repeating: Vec<&str> = chosen
            .iter()
            .filter(|a| a.repeats)
            .map(|a| a.name.as_str())
            .collect();
        bail!(
            "--reps {reps}: {} cannot repeat inside a boot (only what nk-selftests --list-bench marks `repeats` can); name only benchmarks that repeat{}, or use --runs",
            once.join(", "),
            if repeating.is_empty() {
                String::new()
            } else {
                format!(" ({})", repeating.join(", "))
            }
        );
    }
    Ok(())
}

fn list_bench(text: &str) -> Vec<ListedBench> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Some(ListedBench {
                name: f.first()?.to_string(),
                timeout: f.get(1)?.parse().ok()?,
                repeats: f.get(3) == Some(&"repeats"),
            })
        })
        .collect()
}

/// The VM run of `bench` on the base (`base_only`) or the patched kernel.
fn vm_args(b: &BenchArgs, base_only: bool, insn_plugin: Option<PathBuf>) -> VmtestArgs {
    let mut kernel = b.kernel.clone();
    kernel.base_only = base_only;
    // The plugin counts what TCG translates: no KVM probe.
    let kvm = if insn_plugin.is_some() {
        KvmMode::Off
    } else {
        b.kvm
    };
    // shift 3: 8 ns of guest time per instruction, a 125 MHz guest, about
    // what single-threaded TCG runs here, so that the benchmarks' guest-time
    // windows take about as long on the host as without -icount (shift 0
    // took 3x as long to boot: every udelay() is executed instructions).
    // At HZ=250 that is 500k instructions between ticks.
    let icount = (insn_plugin.is_some() && b.clock == Clock::Insn).then_some(3);
    VmtestArgs {
        test_timeout: 900,
        bench: Some(b.names.clone()),
        bench_size: b.size,
        bench_reps: b.reps,
        insn_plugin,
        icount,
        insn_profile: b.by_function,
        // One vCPU under -icount: qemu 10.0 with a plugin loaded in
        // single-threaded TCG does not bring up a second vCPU (with
        // -icount it hangs in smpboot, without it the new vCPU faults).
        // One vCPU also makes every count "local": the receiver's
        // softirq, RCU callbacks and kworkers run in the same instruction
        // stream, at the same points in every run.
        cpus: if icount.is_some() { 1 } else { 2 },
        ..VmtestArgs::defaults(kernel, kvm)
    }
}

/// The plan: one entry per chosen benchmark, as `nk-selftests --list-bench`
/// names them.
pub fn plan(args: &VmtestArgs, p: &Prepared, names: &[String], slow: u64) -> Result<Vec<Entry>> {
    let bins = &p.bins;
    let out = Command::new(&bins.selftests).arg("--list-bench").output()?;
    let all = list_bench(&String::from_utf8_lossy(&out.stdout));
    if let Some(n) = names.iter().find(|n| !all.iter().any(|a| a.name == **n)) {
        bail!(
            "no benchmark {n:?}; there are: {}",
            all.iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let chosen: Vec<ListedBench> = all
        .into_iter()
        .filter(|a| names.is_empty() || names.contains(&a.name))
        .collect();
    check_reps(&chosen, args.bench_reps)?;
    let mut plan = Vec::new();
    for ListedBench { name, timeout, .. } in chosen {
        let mut argv = vec![
            bins.selftests.display().to_string(),
            "--bpf-dir".into(),
            p.bpf_dir.display().to_string(),
            "--nkctl".into(),
            bins.nkctl.display().to_string(),
            "--bench".into(),
            name.clone(),
        ];
        if let Some(s) = args.bench_size {
            argv.extend(["--size".into(), s.to_string()]);
        }
        if args.bench_reps > 1 {
            argv.extend(["--reps".into(), args.bench_reps.to_string()]);
        }
        // Counted instructions: one vCPU runs the benchmark, so that its
        // count alone (`_local_insns`) leaves the other's work out.
        if args.insn_plugin.is_some() {
            argv.extend(["--pin-cpu".into(), "0".into()]);
        }
        plan.push(Entry {
            name: format!("bench.{name}"),
            // The listed timeout, setup included, scaled by --reps.
            timeout: Duration::from_secs(timeout * slow * u64::from(args.bench_reps)),
            format: Format::Ktap,
            cwd: "/tmp".into(),
            argv,
        });
    }
    Ok(plan)
}

/// `bench --compare-base`: the same benchmarks on the base kernel, then on
/// the patched one, in one invocation, with a table of both and the ratio.
fn compare(ctx: &Ctx, b: &BenchArgs) -> Result<bool> {
    let mut runs = Vec::new();
    let mut ok = true;
    let plugin = insn_plugin(ctx, b)?;
    for base_only in [true, false] {
        let args = vm_args(b, base_only, plugin.clone());
        let p = prepare(ctx, &args)?;
        let r = run_prepared(ctx, &args, &p)?;
        println!(
            "{} kernel: {}",
            if base_only { "base" } else { "patched" },
            r.counts
        );
        ok &= r.counts.ok();
        runs.push(r.metrics);
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

/// A run's metrics: each one's value, the median of its repetitions
/// inside the boot (`--reps`), and for those repeated, the spread of the
/// repetitions ((max - min) / median, in percent).
#[derive(Default)]
pub struct Recorded {
    pub metrics: Vec<Metric>,
    pub rep_spreads: Vec<Metric>,
    /// With a profile: by function, the repetitions folded into their
    /// median.
    pub profile: super::profile::Profiles,
}

/// Folds the repetitions of each metric of one run (the same bench and
/// name printed again) into their median, in the order of the first.
pub fn fold_reps(raw: Vec<Metric>) -> (Vec<super::insn::Spread>, Recorded) {
    let rows = super::insn::spreads(std::slice::from_ref(&raw));
    let metrics = rows
        .iter()
        .map(|r| (r.bench.clone(), r.metric.clone(), r.median()))
        .collect();
    let rep_spreads = rows
        .iter()
        .filter(|r| r.values.len() > 1)
        .map(|r| (r.bench.clone(), r.metric.clone(), r.spread_pct()))
        .collect();
    (
        rows,
        Recorded {
            metrics,
            rep_spreads,
            profile: Default::default(),
        },
    )
}

/// After a run: prints the metrics of its KTAP log and writes them to
/// `target/bench/<run>.json`, with charts.
pub fn record(
    ctx: &Ctx,
    run_name: &str,
    ktap_log: &Path,
    insn: Option<&Path>,
    prof: Option<&Path>,
    accel: &str,
    release: &str,
) -> Result<Recorded> {
    let ktap = fs::read_to_string(ktap_log).unwrap_or_default();
    let mut raw = metrics(&ktap);
    if let Some(insn) = insn {
        let counts = fs::read_to_string(insn).unwrap_or_default();
        raw.extend(super::insn::metrics(&ktap, &counts)?);
    }
    let (rows, mut rec) = fold_reps(raw);
    if let Some(prof) = prof {
        let text = fs::read_to_string(prof)
            .map_err(|e| anyhow::anyhow!("{}: {e} (the plugin's profile)", prof.display()))?;
        let p = super::profile::of_run(&ktap, &text)?;
        super::profile::report(
            &super::profile::rows(&p),
            "this boot's repetitions",
            &ctx.target
                .join("bench")
                .join(format!("{run_name}-profile.json")),
        )?;
        rec.profile = super::profile::fold(&p);
    }
    let repeated = !rec.rep_spreads.is_empty();
    if repeated {
        println!(
            "{:<14} {:<44} {:>14} {:>5} {:>9}",
            "BENCH", "METRIC", "MEDIAN", "REPS", "SPREAD"
        );
    } else {
        println!("{:<14} {:<28} {:>12}", "BENCH", "METRIC", "VALUE");
    }
    for r in &rows {
        if repeated {
            // A metric measured once (the syscall counts) has no spread.
            let spread = if r.values.len() > 1 {
                format!("{:>8.2}%", r.spread_pct())
            } else {
                format!("{:>9}", "-")
            };
            println!(
                "{:<14} {:<44} {:>14.4} {:>5} {spread}",
                r.bench,
                r.metric,
                r.median(),
                r.values.len(),
            );
        } else {
            println!("{:<14} {:<28} {:>12.4}", r.bench, r.metric, r.median());
        }
    }
    let json: Vec<_> = rows
        .iter()
        .map(|r| {
            let mut j =
                serde_json::json!({"bench": r.bench, "metric": r.metric, "value": r.median()});
            if r.values.len() > 1 {
                j["repetitions"] = serde_json::json!(r.values);
                j["rep_spread_pct"] = serde_json::json!(r.spread_pct());
            }
            j
        })
        .collect();
    let out = ctx.target.join("bench").join(format!("{run_name}.json"));
    fs::create_dir_all(out.parent().unwrap())?;
    fs::write(
        &out,
        serde_json::to_string_pretty(
            &serde_json::json!({"accelerator": accel, "kernel": release, "metrics": json}),
        )?,
    )?;
    eprintln!("    metrics: {}", out.display());
    render_charts(ctx, &out);
    Ok(rec)
}

/// PNG charts of a results file, into `target/bench/charts/`.
fn render_charts(ctx: &Ctx, json: &Path) {
    let out = ctx.target.join("bench").join("charts");
    // Debian's python3, which python3-matplotlib (installed by `deps`)
    // belongs to, whatever python3 comes first on PATH.
    let py = if Path::new("/usr/bin/python3").exists() {
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
fn metrics(ktap: &str) -> Vec<Metric> {
    diag_triples(ktap, "# bench: ")
}

/// `<prefix><word> <word> <value>` diagnostic lines of a KTAP log, at any
/// nesting, in order; lines whose value does not parse are skipped.
pub fn diag_triples<T: std::str::FromStr>(ktap: &str, prefix: &str) -> Vec<(String, String, T)> {
    ktap.lines()
        .filter_map(|l| l.trim_start().strip_prefix(prefix))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_benchmarks() {
        let l = list_bench(
            "tcx_ops\t600\t100\tonce\nsock_destroy\t1500\t100\trepeats\nold\t60\nbad\tx\t1\n",
        );
        assert_eq!(
            l,
            [
                ListedBench {
                    name: "tcx_ops".into(),
                    timeout: 600,
                    repeats: false
                },
                ListedBench {
                    name: "sock_destroy".into(),
                    timeout: 1500,
                    repeats: true
                },
                // An older guest binary without the column: measures once.
                ListedBench {
                    name: "old".into(),
                    timeout: 60,
                    repeats: false
                },
            ]
        );
    }

    #[test]
    fn reps_are_odd() {
        assert_eq!(odd_reps("1"), Ok(1));
        assert_eq!(odd_reps("9"), Ok(9));
        for bad in ["0", "2", "11", "x"] {
            assert!(odd_reps(bad).is_err(), "{bad}");
        }
        assert!(odd_reps("4")
            .unwrap_err()
            .contains("odd number from 1 to 9"));
    }

    #[test]
    fn reps_only_for_benchmarks_that_repeat() {
        let l = list_bench("tcx_ops\t600\t100\tonce\nsock_destroy\t1500\t100\trepeats\n");
        check_reps(&l, 1).unwrap();
        check_reps(&l[1..], 3).unwrap();
        let e = check_reps(&l, 3).unwrap_err().to_string();
        assert!(
            e.contains("tcx_ops cannot repeat inside a boot") && e.contains("(sock_destroy)"),
            "{e}"
        );
    }

    #[test]
    fn repetitions_fold_into_their_median() {
        let m = |n: &str, v: f64| ("sd".to_string(), n.to_string(), v);
        // One event in one of three spans does not move the result.
        let (rows, rec) = fold_reps(vec![
            m("a_insns", 100.0),
            m("b_insns", 7.0),
            m("a_insns", 130.0),
            m("a_insns", 101.0),
            m("speedup_x", 2.0),
        ]);
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rec.metrics,
            [m("a_insns", 101.0), m("b_insns", 7.0), m("speedup_x", 2.0)]
        );
        assert_eq!(rec.rep_spreads.len(), 1);
        let (b, n, pct) = &rec.rep_spreads[0];
        assert_eq!((b.as_str(), n.as_str()), ("sd", "a_insns"));
        assert!((pct - 30.0 / 101.0 * 100.0).abs() < 1e-9, "{pct}");
    }
}
