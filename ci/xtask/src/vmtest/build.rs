//! The guest's userspace: nk-init, nk-selftests and nkctl.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::progress::{log_path, run_logged, Stage};
use crate::Ctx;

/// Paths of the userspace binaries the guest runs.
pub struct Bins {
    pub init: PathBuf,
    pub selftests: PathBuf,
    pub nkctl: PathBuf,
}

/// The target triple of the static release build.
const STATIC_TARGET: &str = "x86_64-unknown-linux-gnu";

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// `cargo build --release` of `pkgs`, linked statically for
/// [`STATIC_TARGET`] (glibc, and libelf and zlib from their `.a` files).
/// The target must be explicit so that build scripts and proc macros stay
/// dynamic. Returns the command and the directory the binaries land in.
fn static_build(ctx: &Ctx, pkgs: &[&str], features: &[&str]) -> Result<(Command, PathBuf)> {
    let mut cmd = cargo();
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
        let sh = xshell::Shell::new()?;
        let libdir = xshell::cmd!(sh, "pkg-config --variable=libdir libelf")
            .quiet()
            .read()
            .context("pkg-config --variable=libdir libelf")?;
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
pub fn userspace(ctx: &Ctx, release: bool) -> Result<Bins> {
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
        let mut cmd = cargo();
        cmd.current_dir(&ctx.root)
            .args(["build", "--quiet", "-p", "nk-selftests", "-p", "nkctl"]);
        run_logged("cargo build", &mut cmd, &log)?;
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
