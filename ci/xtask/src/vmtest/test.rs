//! `cargo xtask test`: the unprivileged unit tests, the hygiene checks,
//! then, for every maintained base (or the one `--base` names), on one
//! build of kernel, userspace and BPF objects: the runner self-test and
//! the test plan (`--repeat N` times). The bindings are checked against
//! the headers of the base they are generated from (6.12).

use anyhow::{Context, Result};
use ktap::Outcome;
use std::collections::BTreeMap;
use xshell::cmd;

use super::{prepare, run_prepared, Counts, Prepared, VmtestArgs};
use crate::kernel::BaseName;
use crate::progress::Stage;
use crate::Ctx;

pub fn test(ctx: &Ctx, args: &VmtestArgs) -> Result<bool> {
    // The workspace's unit tests already link libbpf (libelf, zlib): on a
    // fresh machine the packages come first.
    crate::deps::ensure(&ctx.target)?;
    let stage = Stage::new("test: cargo test --workspace (unprivileged unit tests)");
    let sh = xshell::Shell::new()?;
    sh.change_dir(&ctx.root);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    cmd!(sh, "{cargo} test --workspace --quiet")
        .quiet()
        .run()
        .context("unit tests failed")?;
    stage.done("unit tests passed");
    crate::hygiene::run(ctx)?;
    let bases: Vec<BaseName> = match (args.kernel.src.base, &args.kernel.src.kernel_src) {
        (Some(b), _) => vec![b],
        // A tree of its own: its own base only.
        (None, Some(_)) => vec![args.kernel.src.base()],
        (None, None) => BaseName::ALL.to_vec(),
    };
    let mut total = Counts::default();
    for base in bases {
        let mut a = args.clone();
        a.kernel.src.base = Some(base);
        eprintln!("==> test: base {}", base.version());
        // Kernel, userspace and BPF objects are built once for every VM run.
        let p = prepare(ctx, &a)?;
        if base == BINDINGS_BASE && a.kernel.src.kernel_src.is_none() {
            // Generated files are up to date with the patched kernel's headers.
            crate::bindings::run(&ctx.root, &p.k.headers, true)?;
        }
        let selftest = VmtestArgs {
            runner_selftest: true,
            bench: None,
            filter: vec![],
            ..a.clone()
        };
        let s = run_prepared(ctx, &selftest, &p)?.counts;
        println!("runner self-test ({}): {s}", base.version());
        let r = repeat(ctx, &a, &p)?;
        println!("plan ({}): {r}", base.version());
        total = total + s + r;
    }
    total.print();
    Ok(total.ok())
}

/// The base whose headers `cargo xtask bindings` generates nk-uapi from.
pub const BINDINGS_BASE: BaseName = BaseName::Lts612;

/// What failed in one run: its failed or timed-out tests, and the run
/// itself when a splat came before the first test or it was aborted,
/// which fail the run without failing any test.
pub fn run_failures(r: &crate::vm::report::VmReport) -> Vec<String> {
    let mut v: Vec<String> = r
        .tests
        .iter()
        .filter(|t| matches!(t.outcome, Outcome::Fail | Outcome::Timeout(_)))
        .map(|t| t.name.clone())
        .collect();
    if !r.boot_splats.is_empty() {
        v.push("boot (splat before the first test)".into());
    }
    if r.aborted.is_some() {
        v.push("run aborted".into());
    }
    v
}

/// Runs the plan `args.repeat` times, each in a fresh VM, and prints each
/// test that failed at least once with its failure rate.
pub fn repeat(ctx: &Ctx, args: &VmtestArgs, p: &Prepared) -> Result<Counts> {
    let n = args.repeat;
    let mut total = Counts::default();
    // test -> (failed runs, first failing run's directory)
    let mut failures: BTreeMap<String, (u32, String)> = BTreeMap::new();
    let mut names = Vec::new();
    for i in 1..=n {
        if n > 1 {
            eprintln!("==> repeat {i}/{n}");
        }
        let r = run_prepared(ctx, args, p)?;
        if n > 1 {
            println!("run {i}/{n}: {}", r.counts);
        }
        total = total + r.counts;
        for t in &r.report.tests {
            if i == 1 {
                names.push(t.name.clone());
            }
        }
        for what in run_failures(&r.report) {
            let e = failures
                .entry(what)
                .or_insert((0, r.dir.display().to_string()));
            e.0 += 1;
        }
    }
    if n > 1 {
        println!("failure rate over {n} runs of {} tests:", names.len());
        if failures.is_empty() {
            println!("  none failed");
        }
        for (name, (k, dir)) in &failures {
            println!(
                "  {name}: failed {k}/{n} ({:.0}%), first in {dir}",
                100.0 * f64::from(*k) / f64::from(n)
            );
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::run_failures;
    use crate::vm::report::VmReport;

    /// A boot splat or an abort is a failure of the run even when every
    /// test that ran passed: the repeat table must not say "none failed".
    #[test]
    fn boot_splat_and_abort_count_as_failures() {
        let mut r = VmReport::empty();
        assert!(run_failures(&r).is_empty());
        r.aborted = Some("the VM exited before nk-init started".into());
        assert_eq!(run_failures(&r), ["run aborted"]);
        r.aborted = None;
        r.boot_splats.push(crate::vm::report::Splat {
            kind: "KASAN".into(),
            first_line: "BUG: KASAN: wild-memory-access".into(),
            context: vec![],
        });
        assert_eq!(run_failures(&r), ["boot (splat before the first test)"]);
    }
}
