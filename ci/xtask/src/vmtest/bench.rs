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
    }
    if b.runs > 1 {
        print_spreads(ctx, b, &runs)?;
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

/// Each metric over the runs: median, min, max, spread; also written to
/// `target/bench/spread.json`.
fn print_spreads(ctx: &Ctx, b: &BenchArgs, runs: &[Vec<Metric>]) -> Result<()> {
    let rows = super::insn::spreads(runs);
    println!(
        "{:<16} {:<44} {:>14} {:>14} {:>14} {:>8}",
        "BENCH", "METRIC", "MEDIAN", "MIN", "MAX", "SPREAD"
    );
    let mut json = Vec::new();
    for r in &rows {
        println!(
            "{:<16} {:<44} {:>14.3} {:>14.3} {:>14.3} {:>7.2}%",
            r.bench,
            r.metric,
            r.median(),
            r.min(),
            r.max(),
            r.spread_pct()
        );
        json.push(serde_json::json!({
            "bench": r.bench, "metric": r.metric, "values": r.values,
            "median": r.median(), "spread_pct": r.spread_pct(),
        }));
    }
    let out = ctx.target.join("bench").join("spread.json");
    fs::create_dir_all(out.parent().unwrap())?;
    fs::write(
        &out,
        serde_json::to_string_pretty(&serde_json::json!({
            "runs": b.runs, "loaded_runs": b.loaded_runs,
            "measure": format!("{:?}", b.measure).to_lowercase(),
            "metrics": json,
        }))?,
    )?;
    eprintln!(
        "    {} runs ({} with the host loaded); spread: {}",
        b.runs,
        b.loaded_runs,
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
        insn_plugin,
        icount,
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
    let mut plan = Vec::new();
    for (name, t) in all
        .into_iter()
        .filter(|(n, _)| names.is_empty() || names.contains(n))
    {
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
        // Counted instructions: one vCPU runs the benchmark, so that its
        // count alone (`_local_insns`) leaves the other's work out.
        if args.insn_plugin.is_some() {
            argv.extend(["--pin-cpu".into(), "0".into()]);
        }
        plan.push(Entry {
            name: format!("bench.{name}"),
            timeout: Duration::from_secs(t * slow),
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

/// After a run: prints the metrics of its KTAP log and writes them to
/// `target/bench/<run>.json`, with charts.
pub fn record(
    ctx: &Ctx,
    run_name: &str,
    ktap_log: &Path,
    insn: Option<&Path>,
    accel: &str,
    release: &str,
) -> Result<Vec<Metric>> {
    let ktap = fs::read_to_string(ktap_log).unwrap_or_default();
    let mut metrics = metrics(&ktap);
    if let Some(insn) = insn {
        let counts = fs::read_to_string(insn).unwrap_or_default();
        metrics.extend(super::insn::metrics(&ktap, &counts)?);
    }
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
            &serde_json::json!({"accelerator": accel, "kernel": release, "metrics": json}),
        )?,
    )?;
    eprintln!("    metrics: {}", out.display());
    render_charts(ctx, &out);
    Ok(metrics)
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
