//! The hygiene steps of `cargo xtask test` that are builds rather than
//! tidy tests: clippy with warnings denied (which is what enforces the
//! workspace's `undocumented_unsafe_blocks = "deny"`), and a check of the
//! whole workspace with the declared MSRV toolchain. Formatting, sorted
//! lists and unused dependencies are tidy tests (`tidy.rs`), run by
//! `cargo test`.

use std::process::Command;

use anyhow::Result;

use crate::progress::{log_path, run_logged, Stage};
use crate::{toolchain, Ctx};

pub fn run(ctx: &Ctx) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let stage = Stage::new("hygiene: cargo clippy --workspace --all-targets -- -D warnings");
    run_logged(
        "cargo clippy",
        Command::new(&cargo).current_dir(&ctx.root).args([
            "clippy",
            "--quiet",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]),
        &log_path(&ctx.target, "clippy"),
    )?;
    stage.done("clean");
    // The TCG plugin is a crate of its own (QEMU's plugin API bindings
    // need a newer Rust than the workspace's MSRV): clippy and its tests.
    let manifest = ctx.root.join("ci/insn-plugin/Cargo.toml");
    let target = ctx.target.join("insn-plugin");
    let stage = Stage::new("hygiene: ci/insn-plugin: cargo clippy -D warnings, cargo test");
    for (what, args) in [
        (
            "clippy",
            &["clippy", "--quiet", "--all-targets", "--locked"][..],
        ),
        ("test", &["test", "--quiet", "--locked"][..]),
    ] {
        let mut c = Command::new(&cargo);
        c.current_dir(&ctx.root)
            .args(args)
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target);
        if what == "clippy" {
            c.args(["--", "-D", "warnings"]);
        }
        run_logged(
            &format!("cargo {what} (ci/insn-plugin)"),
            &mut c,
            &log_path(&ctx.target, &format!("insn-plugin-{what}")),
        )?;
    }
    stage.done("clean");
    let tc = toolchain::ensure_msrv(ctx)?;
    let stage = Stage::new(format!(
        "hygiene: cargo check --workspace --all-targets with the MSRV, Rust {}",
        tc.version
    ));
    run_logged(
        "MSRV cargo check",
        tc.cargo()
            .current_dir(&ctx.root)
            .args([
                "check",
                "--quiet",
                "--workspace",
                "--all-targets",
                "--locked",
            ])
            // In the cache, so that a fresh clone (CI) reuses the
            // dependencies this toolchain already built.
            .arg("--target-dir")
            .arg(
                ctx.cache
                    .join("toolchains")
                    .join(format!("target-{}", tc.version)),
            ),
        &log_path(&ctx.target, "msrv"),
    )?;
    stage.done("builds");
    Ok(())
}
