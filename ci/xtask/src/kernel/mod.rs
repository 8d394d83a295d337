//! `cargo xtask kernel`: base tree, series, config, incremental build.

pub mod base;
pub mod bases;
pub mod config;
pub mod lock;
pub mod series;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

pub use bases::BaseName;
pub use config::Profile;

use crate::progress::{log_path, run_logged, Stage};
use crate::Ctx;

/// Which tree and which series: the options every command that applies
/// the series shares.
#[derive(Clone, Debug, clap::Args)]
pub struct Source {
    /// The base: Debian's linux-source of this version, with the series
    /// of patches/<base>/ (7.3: patches/mainline/). Default: 7.3;
    /// `cargo xtask test` without it runs on every maintained base.
    #[arg(long, value_enum)]
    pub base: Option<BaseName>,
    /// A kernel tree to use as the base instead of Debian's package; its
    /// series is chosen by the tree's VERSION.PATCHLEVEL, or by --series.
    #[arg(long, value_name = "DIR")]
    pub kernel_src: Option<PathBuf>,
    /// The series to apply: a directory under patches/ (mainline, 6.12).
    #[arg(long, value_name = "NAME")]
    pub series: Option<String>,
}

impl Source {
    /// Debian's package of `base`, with its own series.
    pub fn of(base: BaseName) -> Source {
        Source {
            base: Some(base),
            kernel_src: None,
            series: None,
        }
    }

    /// The base asked for, or mainline.
    pub fn base(&self) -> BaseName {
        self.base.unwrap_or(BaseName::Mainline)
    }
}

/// Which kernel to build.
#[derive(Clone, Debug, clap::Args)]
pub struct KernelArgs {
    /// Kernel profile (config fragments from kconfigs/).
    #[arg(long, value_enum, default_value = "vm")]
    pub profile: Profile,
    #[command(flatten)]
    pub src: Source,
    /// Build the unpatched base instead of base + patches/series.
    #[arg(long)]
    pub base_only: bool,
    /// Stop after applying the series and checking the config (no build).
    #[arg(long)]
    pub config_only: bool,
}

/// A built kernel and the artefacts built from its tree.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Kernel {
    pub profile: Profile,
    /// The series applied (a directory under patches/).
    pub series: String,
    /// `major.minor` of the base, `profile`, `-base` for the unpatched
    /// tree: `7.3-vm`, `6.12-debug-base`. Names logs, `target/kernel/`,
    /// `target/bpf/` and the upstream test_progs log, so that the bases
    /// never share one.
    pub id: String,
    pub base_only: bool,
    /// `make kernelrelease`, e.g. 6.12.117.
    pub release: String,
    pub origin: String,
    pub patches: usize,
    pub tree: PathBuf,
    pub build: PathBuf,
    pub bzimage: PathBuf,
    pub vmlinux: PathBuf,
    /// `headers_install` output (`<build>/usr/include`).
    pub headers: PathBuf,
    pub bpftool: PathBuf,
    /// libbpf headers installed by the bpftool build (`bpf/bpf_helpers.h`).
    pub libbpf_include: PathBuf,
}

pub fn jobs() -> String {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .to_string()
}

/// `make` in `tree` with the out-of-tree build dir, ccache and fixed
/// build identity (so ccache hits survive across builds).
pub fn make(tree: &Path, build: &Path) -> Command {
    let mut c = Command::new("make");
    c.arg("-C")
        .arg(tree)
        .arg(format!("O={}", build.display()))
        .arg(format!("-j{}", jobs()));
    c.env("KBUILD_BUILD_USER", "nkdev")
        .env("KBUILD_BUILD_HOST", "nkdev");
    c.env("KBUILD_BUILD_TIMESTAMP", "nkdev");
    // An empty LOCALVERSION keeps setlocalversion from appending "+" for
    // a git tree that is not at a release tag.
    c.arg("LOCALVERSION=");
    if which("ccache") {
        c.arg("CC=ccache gcc").arg("HOSTCC=ccache gcc");
        // Trees of different bases live side by side in the cache; let
        // them share ccache hits.
        if let Some(cache) = build.ancestors().nth(3) {
            c.env("CCACHE_BASEDIR", cache).env("CCACHE_NOHASHDIR", "1");
        }
    }
    c
}

pub fn which(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
}

/// A hash of everything that decides the build's output: the tree's
/// commit, its uncommitted changes and the config.
fn build_stamp(tree: &Path, build: &Path) -> Result<String> {
    let mut h = Sha256::new();
    h.update(base::git_out(tree, &["rev-parse", "HEAD"])?);
    h.update(base::git_out(tree, &["status", "--porcelain"])?);
    let diff = base::git(tree).args(["diff", "HEAD"]).output()?.stdout;
    h.update(diff);
    h.update(fs::read(build.join(".config")).unwrap_or_default());
    Ok(base::hex(&h.finalize()))
}

/// Prepares the tree and builds the kernel, headers and bpftool.
pub fn build(ctx: &Ctx, args: &KernelArgs) -> Result<Kernel> {
    let base = base::prepare(ctx, args.src.base(), args.src.kernel_src.as_deref())?;
    let series_name = series::choose(ctx, &args.src, &base)?;
    let series = series::Series::load(&ctx.root.join("patches").join(&series_name))?;
    let (tree, patches) = if args.base_only {
        (base.tree.clone(), 0)
    } else {
        (series::apply(ctx, &base, &series)?, series.patches.len())
    };
    let dir_name = format!(
        "{}{}",
        args.profile.name(),
        if args.base_only { "-base" } else { "" }
    );
    let build = ctx.cache.join("build").join(&base.key).join(&dir_name);
    fs::create_dir_all(&build)?;
    let head = base::git_out(&tree, &["rev-parse", "HEAD"])?;
    let series_adds = if args.base_only {
        config::series_symbols(&series.patches)?
    } else {
        Default::default()
    };
    config::configure(
        ctx,
        &tree,
        &build,
        args.profile,
        &base.version,
        &head,
        &series_adds,
    )?;

    let mm = base
        .version
        .split('.')
        .take(2)
        .collect::<Vec<_>>()
        .join(".");
    let id = format!("{mm}-{dir_name}");
    let k = Kernel {
        profile: args.profile,
        series: series_name.clone(),
        id: id.clone(),
        base_only: args.base_only,
        release: String::new(),
        origin: base.origin.clone(),
        patches,
        bzimage: build.join("arch/x86/boot/bzImage"),
        vmlinux: build.join("vmlinux"),
        headers: build.join("usr/include"),
        bpftool: build.join("tools/bpftool/bpftool"),
        libbpf_include: build.join("tools/bpftool/libbpf/include"),
        tree: tree.clone(),
        build: build.clone(),
    };
    if args.config_only {
        eprintln!(
            "    config for {dir_name} checked: {}",
            build.join(".config").display()
        );
        return Ok(k);
    }
    let stamp_file = build.join(".nkdev-build-stamp");
    let stamp = build_stamp(&tree, &build)?;
    let outputs = [
        &k.bzimage,
        &k.vmlinux,
        &k.bpftool,
        &k.headers.join("linux/bpf.h"),
    ];
    let up_to_date = fs::read_to_string(&stamp_file).ok().as_deref() == Some(stamp.as_str())
        && outputs.iter().all(|p| p.exists());
    let log = log_path(&ctx.target, &format!("kernel-build-{id}"));
    if up_to_date {
        eprintln!(
            "==> kernel: {dir_name} is up to date ({})",
            k.bzimage.display()
        );
    } else {
        let _ = fs::remove_file(&stamp_file);
        let _ = fs::remove_file(&log);
        let stage = Stage::new(format!(
            "kernel: building {dir_name} ({}, {} patch(es) of patches/{series_name}) with -j{}{}; log: {}",
            base.origin,
            patches,
            jobs(),
            if which("ccache") { " and ccache" } else { "" },
            log.display()
        ));
        run_logged("make bzImage", make(&tree, &build).arg("bzImage"), &log)?;
        run_logged(
            "make headers_install",
            make(&tree, &build).arg("headers_install"),
            &log,
        )?;
        let out = build.join("tools/bpftool");
        fs::create_dir_all(&out)?;
        let mut bt = Command::new("make");
        bt.arg("-C")
            .arg(tree.join("tools/bpf/bpftool"))
            .arg(format!("OUTPUT={}/", out.display()))
            .arg(format!("-j{}", jobs()))
            .env_remove("O");
        run_logged("make bpftool", &mut bt, &log)?;
        // bpftool's build installs libbpf's headers under its OUTPUT.
        if !k.libbpf_include.join("bpf/bpf_helpers.h").exists() {
            anyhow::bail!(
                "bpftool build did not install libbpf headers at {}",
                k.libbpf_include.display()
            );
        }
        fs::write(&stamp_file, stamp)?;
        stage.done("built");
    }
    let out = make(&tree, &build)
        .args(["-s", "kernelrelease"])
        .output()
        .context("make kernelrelease")?;
    let release = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // Convenience link: target/kernel/<profile> -> the build directory.
    let link = ctx.target.join("kernel").join(&id);
    fs::create_dir_all(link.parent().unwrap())?;
    let _ = fs::remove_file(&link);
    let _ = std::os::unix::fs::symlink(&build, &link);
    eprintln!(
        "    kernel {release} [{id}] from {}: {}",
        base.origin,
        k.bzimage.display()
    );
    Ok(Kernel { release, ..k })
}
