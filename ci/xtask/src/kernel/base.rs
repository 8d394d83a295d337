//! The base kernel tree: Debian's `linux-source-6.12` tarball (default) or
//! any kernel tree given by path, committed once into a git repository in
//! the cache so that the series can be applied with `git am`.
//!
//! Cache layout (`$NKDEV_CACHE`, default `~/.cache/nkdev`):
//! ```text
//! trees/<key>/base      pristine tree, branch nkdev-base (used by --base-only)
//! trees/<key>/patched   git worktree of base with patches/series applied
//! build/<key>/<profile>[-base]   out-of-tree build directories
//! ```
//! `<key>` is `deb-<sha256 of the tarball>`, `git-<HEAD>` or `dir-<path hash>`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use super::bases::BaseName;
use crate::progress::{run_logged, Stage};
use crate::Ctx;

/// The git identity used for commits nkdev makes in its own cache trees.
pub const GIT_IDENT: [(&str, &str); 4] = [
    ("GIT_AUTHOR_NAME", "nkdev"),
    ("GIT_AUTHOR_EMAIL", "nkdev@localhost"),
    ("GIT_COMMITTER_NAME", "nkdev"),
    ("GIT_COMMITTER_EMAIL", "nkdev@localhost"),
];

pub const BASE_BRANCH: &str = "nkdev-base";

/// A prepared base tree.
pub struct Base {
    /// Cache key, also the name of the cache directories.
    pub key: String,
    /// The pristine tree (a git repository at [`BASE_BRANCH`]).
    pub tree: PathBuf,
    /// Human-readable origin ("linux-source-6.12 tarball", a path).
    pub origin: String,
    /// `VERSION.PATCHLEVEL.SUBLEVEL` of the tree.
    pub version: String,
}

impl Base {
    pub fn dir(&self, ctx: &Ctx) -> PathBuf {
        ctx.cache.join("trees").join(&self.key)
    }
}

pub fn git(dir: &Path) -> Command {
    let mut c = Command::new("git");
    c.arg("-C").arg(dir).envs(GIT_IDENT);
    c
}

/// Runs a short git command and returns its trimmed stdout.
pub fn git_out(dir: &Path, args: &[&str]) -> Result<String> {
    let out = git(dir).args(args).output().context("running git")?;
    if !out.status.success() {
        bail!(
            "git {} in {} failed: {}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut f = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex(&h.finalize()))
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The tarball's hash, cached by (size, mtime) so that it is computed once.
fn tarball_key(ctx: &Ctx, tarball: &Path) -> Result<String> {
    let md = fs::metadata(tarball).with_context(|| {
        format!(
            "{} not found: install it with `apt-get install linux-source-6.12` (or run `cargo xtask deps`)",
            tarball.display()
        )
    })?;
    let mtime = md
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let stamp = format!("{} {} {}", tarball.display(), md.len(), mtime);
    let memo = ctx.cache.join("tarball-hashes");
    if let Ok(text) = fs::read_to_string(&memo) {
        for line in text.lines() {
            if let Some((s, h)) = line.rsplit_once('\t') {
                if s == stamp {
                    return Ok(h.to_string());
                }
            }
        }
    }
    let h = sha256_file(tarball)?;
    fs::create_dir_all(&ctx.cache)?;
    let mut text = fs::read_to_string(&memo).unwrap_or_default();
    text.push_str(&format!("{stamp}\t{h}\n"));
    fs::write(&memo, text)?;
    Ok(h)
}

/// Checks that `dir` looks like a kernel source tree.
pub fn check_kernel_tree(dir: &Path) -> Result<()> {
    let mk = fs::read_to_string(dir.join("Makefile")).unwrap_or_default();
    if !mk.lines().any(|l| l.starts_with("VERSION ="))
        || !dir.join("scripts/kconfig/merge_config.sh").exists()
    {
        bail!(
            "{} is not a kernel source tree (no top-level Makefile with VERSION, or no scripts/kconfig/merge_config.sh)",
            dir.display()
        );
    }
    Ok(())
}

/// `VERSION.PATCHLEVEL.SUBLEVEL` from a tree's Makefile.
pub fn makefile_version(dir: &Path) -> Result<String> {
    let mk = fs::read_to_string(dir.join("Makefile"))?;
    let get = |k: &str| {
        mk.lines()
            .find_map(|l| {
                l.strip_prefix(k)
                    .map(|v| v.trim_start_matches([' ', '=']).trim().to_string())
            })
            .unwrap_or_default()
    };
    let extra = get("EXTRAVERSION");
    Ok(format!(
        "{}.{}.{}{}",
        get("VERSION"),
        get("PATCHLEVEL"),
        get("SUBLEVEL"),
        extra
    ))
}

/// Prepares the base tree: unpacks and commits it on first use.
pub fn prepare(ctx: &Ctx, name: BaseName, kernel_src: Option<&Path>) -> Result<Base> {
    let b = prepare_tree(ctx, name, kernel_src)?;
    let version = makefile_version(&b.tree)?;
    Ok(Base { version, ..b })
}

fn prepare_tree(ctx: &Ctx, name: BaseName, kernel_src: Option<&Path>) -> Result<Base> {
    match kernel_src {
        None => from_tarball(ctx, &name.tarball(ctx)?),
        Some(dir) => {
            let dir = dir
                .canonicalize()
                .with_context(|| format!("--kernel-src {}: no such directory", dir.display()))?;
            check_kernel_tree(&dir)?;
            if dir.join(".git").exists() {
                from_git(ctx, &dir)
            } else {
                from_plain_dir(ctx, &dir)
            }
        }
    }
}

fn ready_marker(tree: &Path) -> PathBuf {
    tree.join(".git").join("nkdev-ready")
}

fn from_tarball(ctx: &Ctx, tarball: &Path) -> Result<Base> {
    let h = tarball_key(ctx, tarball)?;
    let key = format!("deb-{}", &h[..16]);
    let base = Base {
        key,
        tree: PathBuf::new(),
        version: String::new(),
        origin: format!("{} (sha256 {})", tarball.display(), &h[..16]),
    };
    super::lock::hold(&base.dir(ctx))?;
    let tree = base.dir(ctx).join("base");
    if ready_marker(&tree).exists() {
        return Ok(Base { tree, ..base });
    }
    let stage = Stage::new(format!(
        "kernel: unpacking {} into the cache",
        tarball.display()
    ));
    let tmp = base.dir(ctx).join("base.tmp");
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp)?;
    let log = crate::progress::log_path(&ctx.target, &format!("kernel-base-{}", base.key));
    run_logged(
        "unpack",
        Command::new("tar")
            .arg("xf")
            .arg(tarball)
            .arg("--strip-components=1")
            .arg("-C")
            .arg(&tmp),
        &log,
    )?;
    check_kernel_tree(&tmp)?;
    let version = makefile_version(&tmp)?;
    commit_tree(
        &tmp,
        &format!("nkdev base: {} ({})", version, tarball.display()),
        &log,
    )?;
    if tree.exists() {
        fs::remove_dir_all(&tree)?;
    }
    fs::rename(&tmp, &tree)?;
    fs::write(ready_marker(&tree), "")?;
    stage.done(&format!("base {version} committed"));
    Ok(Base { tree, ..base })
}

fn commit_tree(dir: &Path, msg: &str, log: &Path) -> Result<()> {
    run_logged(
        "git init",
        git(dir).args(["init", "-q", "-b", BASE_BRANCH]),
        log,
    )?;
    // The kernel's own .gitignore keeps generated files out; the tarball has none.
    run_logged("git add", git(dir).args(["add", "-A", "-f", "."]), log)?;
    run_logged(
        "git commit",
        git(dir).args(["commit", "-q", "--no-verify", "-m", msg]),
        log,
    )?;
    Ok(())
}

fn from_git(ctx: &Ctx, dir: &Path) -> Result<Base> {
    let head = git_out(dir, &["rev-parse", "HEAD"])?;
    let key = format!("git-{}", &head[..12]);
    let base = Base {
        key,
        tree: PathBuf::new(),
        version: String::new(),
        origin: format!("{} at {}", dir.display(), &head[..12]),
    };
    let dirty = git_out(dir, &["status", "--porcelain", "--untracked-files=no"])?;
    if !dirty.is_empty() {
        eprintln!(
            "warning: {} has uncommitted changes; nkdev builds its HEAD ({}) plus patches/series, without them",
            dir.display(),
            &head[..12]
        );
    }
    super::lock::hold(&base.dir(ctx))?;
    let tree = base.dir(ctx).join("base");
    if ready_marker(&tree).exists() {
        return Ok(Base { tree, ..base });
    }
    let stage = Stage::new(format!(
        "kernel: cloning {} at {}",
        dir.display(),
        &head[..12]
    ));
    let _ = fs::remove_dir_all(&tree);
    fs::create_dir_all(tree.parent().unwrap())?;
    let log = crate::progress::log_path(&ctx.target, &format!("kernel-base-{}", base.key));
    run_logged(
        "git clone",
        Command::new("git")
            .args(["clone", "-q", "--shared", "--no-checkout"])
            .arg(dir)
            .arg(&tree),
        &log,
    )?;
    run_logged(
        "git checkout",
        git(&tree).args(["checkout", "-q", "-B", BASE_BRANCH, &head]),
        &log,
    )?;
    fs::write(ready_marker(&tree), "")?;
    stage.done("cloned");
    Ok(Base { tree, ..base })
}

fn from_plain_dir(ctx: &Ctx, dir: &Path) -> Result<Base> {
    let h = hex(&Sha256::digest(dir.as_os_str().as_encoded_bytes()));
    let key = format!("dir-{}", &h[..12]);
    let base = Base {
        key,
        tree: PathBuf::new(),
        version: String::new(),
        origin: dir.display().to_string(),
    };
    super::lock::hold(&base.dir(ctx))?;
    let tree = base.dir(ctx).join("base");
    let log = crate::progress::log_path(&ctx.target, &format!("kernel-base-{}", base.key));
    let stage = Stage::new(format!("kernel: syncing {} into the cache", dir.display()));
    fs::create_dir_all(&tree)?;
    run_logged(
        "rsync",
        Command::new("rsync")
            .args(["-a", "--delete", "--exclude=/.git"])
            .arg(format!("{}/", dir.display()))
            .arg(&tree),
        &log,
    )?;
    if !ready_marker(&tree).exists() {
        commit_tree(&tree, &format!("nkdev base: {}", dir.display()), &log)?;
        fs::write(ready_marker(&tree), "")?;
    } else if !git_out(&tree, &["status", "--porcelain"])?.is_empty() {
        run_logged("git add", git(&tree).args(["add", "-A", "-f", "."]), &log)?;
        run_logged(
            "git commit",
            git(&tree).args([
                "commit",
                "-q",
                "--no-verify",
                "-m",
                &format!("nkdev base: {} (resync)", dir.display()),
            ]),
            &log,
        )?;
    }
    stage.done("synced");
    Ok(Base { tree, ..base })
}
