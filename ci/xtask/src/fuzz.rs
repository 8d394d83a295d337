//! `cargo xtask fuzz`: runs every cargo-fuzz target of
//! `rust-userspace/fuzz` (decoders of kernel bytes and the KTAP parser)
//! for a fixed time budget. Not part of `cargo xtask test`: fuzzing is a
//! check you run, with a budget you choose.
//!
//! The machine has one stable toolchain, so cargo fuzz runs with
//! RUSTC_BOOTSTRAP=1 and without a sanitizer (the decoders are safe Rust;
//! panics, aborts, leaks of time and OOMs are what it finds).

use std::process::Command;

use anyhow::{bail, Context, Result};
use xshell::cmd;

use crate::progress::{last_line, log_path, Stage};
use crate::Ctx;

#[derive(Clone, Debug, clap::Args)]
pub struct FuzzArgs {
    /// Seconds per target.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Targets to run (default: all).
    pub targets: Vec<String>,
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

pub fn run(ctx: &Ctx, args: &FuzzArgs) -> Result<bool> {
    let dir = ctx.root.join("rust-userspace/fuzz");
    let sh = xshell::Shell::new()?;
    let cargo = cargo();
    if cmd!(sh, "{cargo} fuzz --version")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_err()
    {
        let s = Stage::new("fuzz: installing cargo-fuzz from crates.io");
        cmd!(sh, "{cargo} install cargo-fuzz --locked")
            .run()
            .context("cargo install cargo-fuzz failed")?;
        s.done("installed");
    }
    let all: Vec<String> = cmd!(sh, "{cargo} fuzz list --fuzz-dir {dir}")
        .quiet()
        .read()
        .context("cargo fuzz list")?
        .lines()
        .map(String::from)
        .collect();
    let targets = if args.targets.is_empty() {
        all.clone()
    } else {
        args.targets.clone()
    };
    if let Some(t) = targets.iter().find(|t| !all.contains(t)) {
        bail!("no fuzz target {t:?}; there are: {}", all.join(", "));
    }
    let (mut passed, mut failed) = (0, 0);
    for t in &targets {
        let log = log_path(&ctx.target, &format!("fuzz-{t}"));
        let _ = std::fs::remove_file(&log);
        let stage = Stage::new(format!(
            "fuzz: {t} for {} s; log: {}",
            args.seconds,
            log.display()
        ));
        let mut c = Command::new(&cargo);
        c.current_dir(&ctx.root)
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["fuzz", "run", "--sanitizer", "none", "--fuzz-dir"])
            .arg(&dir)
            .arg(t)
            .arg("--")
            .arg(format!("-max_total_time={}", args.seconds));
        match crate::progress::run_logged(&format!("fuzz {t}"), &mut c, &log) {
            Ok(()) => {
                let done = std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .lines()
                    .rev()
                    .find(|l| l.starts_with("Done "))
                    .unwrap_or("")
                    .to_string();
                stage.done(&format!("clean ({done})"));
                println!("ok       fuzz.{t}: {done}");
                passed += 1;
            }
            Err(e) => {
                println!(
                    "FAIL     fuzz.{t}: {e}; last: {}",
                    last_line(&log).unwrap_or_default()
                );
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed, 0 skipped");
    Ok(failed == 0)
}
