//! `cargo xtask bench`: benchmarks in the VM, side by side in one run,
//! and `--compare-base`, the same benchmarks on the base kernel first.

use std::fs;
use std::path::Path;
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
}

/// A benchmark metric: (bench, metric, value).
pub type Metric = (String, String, f64);

/// Runs the benchmarks and prints their metrics.
pub fn run(ctx: &Ctx, b: &BenchArgs) -> Result<bool> {
    if b.compare_base {
        return compare(ctx, b);
    }
    let args = vm_args(b, b.kernel.base_only);
    let p = prepare(ctx, &args)?;
    let r = run_prepared(ctx, &args, &p)?;
    r.counts.print();
    Ok(r.counts.ok())
}

/// The VM run of `bench` on the base (`base_only`) or the patched kernel.
fn vm_args(b: &BenchArgs, base_only: bool) -> VmtestArgs {
    let mut kernel = b.kernel.clone();
    kernel.base_only = base_only;
    VmtestArgs {
        test_timeout: 900,
        bench: Some(b.names.clone()),
        bench_size: b.size,
        ..VmtestArgs::defaults(kernel, b.kvm)
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
    for base_only in [true, false] {
        let args = vm_args(b, base_only);
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
    accel: &str,
    release: &str,
) -> Result<Vec<Metric>> {
    let metrics = metrics(&fs::read_to_string(ktap_log).unwrap_or_default());
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
