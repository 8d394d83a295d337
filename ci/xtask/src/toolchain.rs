//! The MSRV toolchain. The machine's Rust comes from rustup, which
//! reaches no other toolchain here; Debian packages Rust as `rustc-web`
//! and `cargo-web` in more than one version. The one whose version is the
//! workspace's `rust-version` is fetched with `apt-get download` and
//! unpacked with `dpkg-deb -x` into `$NKDEV_CACHE/toolchains/`, so it is
//! never installed over the host's packages. Its shared libraries (LLVM,
//! pcre, ...) are ordinary bookworm packages that `deps` installs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::progress::{log_path, run_logged, Stage};
use crate::Ctx;

/// `rust-version` of the workspace's Cargo.toml (`1.85`).
pub fn msrv(root: &Path) -> Result<String> {
    let text = fs::read_to_string(root.join("Cargo.toml"))?;
    text.lines()
        .find_map(|l| {
            let v = l.trim().strip_prefix("rust-version")?.trim_start();
            Some(v.strip_prefix('=')?.trim().trim_matches('"').to_string())
        })
        .context("Cargo.toml declares no rust-version")
}

/// An unpacked toolchain: `bin/cargo`, `bin/rustc` and the directory its
/// `librustc_driver` lives in.
pub struct Toolchain {
    pub version: String,
    pub cargo: PathBuf,
    pub rustc: PathBuf,
    pub lib: PathBuf,
}

impl Toolchain {
    /// A cargo command that builds with this toolchain.
    pub fn cargo(&self) -> Command {
        let mut c = Command::new(&self.cargo);
        c.env("RUSTC", &self.rustc)
            .env("RUSTDOC", self.rustc.with_file_name("rustdoc"))
            .env("LD_LIBRARY_PATH", &self.lib)
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("CARGO");
        c
    }
}

/// The Debian version of `pkg` whose upstream version is `want`.x.
fn debian_version(pkg: &str, want: &str) -> Result<String> {
    let sh = xshell::Shell::new()?;
    let text = xshell::cmd!(sh, "apt-cache madison {pkg}")
        .quiet()
        .read()
        .context("apt-cache madison")?;
    text.lines()
        .filter_map(|l| l.split('|').nth(1).map(str::trim))
        .find(|v| v.starts_with(&format!("{want}.")))
        .map(String::from)
        .with_context(|| {
            format!(
                "Debian has no {pkg} {want}.x (apt-cache madison {pkg} lists: {}); \
                 set rust-version to one it has, or run apt-get update",
                text.lines()
                    .filter_map(|l| l.split('|').nth(1))
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// Fetches and unpacks the toolchain for the workspace's MSRV (cached).
pub fn ensure_msrv(ctx: &Ctx) -> Result<Toolchain> {
    let version = msrv(&ctx.root)?;
    let dir = ctx.cache.join("toolchains").join(format!("rust-{version}"));
    let tc = Toolchain {
        cargo: dir.join("usr/bin/cargo"),
        rustc: dir.join("usr/bin/rustc"),
        lib: dir.join("usr/lib/x86_64-linux-gnu"),
        version: version.clone(),
    };
    if dir.join(".complete").exists() {
        return Ok(tc);
    }
    let deb = debian_version("rustc-web", &version)?;
    let stage = Stage::new(format!(
        "toolchain: Rust {version} from Debian's rustc-web {deb} (apt-get download, dpkg-deb -x)"
    ));
    let dl = ctx.cache.join("toolchains").join("debs");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dl)?;
    let log = log_path(&ctx.target, "toolchain");
    let std_pkg = format!("libstd-rust-web-{version}");
    let pkgs: Vec<String> = ["rustc-web", "cargo-web", "libstd-rust-web-dev", &std_pkg]
        .iter()
        .map(|p| format!("{p}={deb}"))
        .collect();
    run_logged(
        "apt-get download",
        Command::new("apt-get")
            .current_dir(&dl)
            .arg("download")
            .args(&pkgs),
        &log,
    )
    .with_context(|| format!("downloading {}", pkgs.join(" ")))?;
    for e in fs::read_dir(&dl)?.flatten() {
        let p = e.path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".deb") || !name.contains(&deb.replace(':', "%3a")) {
            continue;
        }
        run_logged(
            "dpkg-deb -x",
            Command::new("dpkg-deb").arg("-x").arg(&p).arg(&dir),
            &log,
        )?;
    }
    let out = tc
        .cargo()
        .arg("--version")
        .output()
        .with_context(|| format!("running {}", tc.cargo.display()))?;
    if !out.status.success() {
        bail!(
            "{} does not run: {} (its libraries come from `cargo xtask deps`)",
            tc.cargo.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    fs::write(dir.join(".complete"), &deb)?;
    stage.done("unpacked");
    Ok(tc)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_workspace_declares_its_msrv() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let v = super::msrv(&root).unwrap();
        assert!(v.split('.').all(|p| p.parse::<u32>().is_ok()), "{v}");
    }
}
