//! `patches/series`: one patch file per line, applied in order with
//! `git am` onto the pristine base, so that every patch is a commit. A
//! line may name, after the file, the tree the patch is posted to (`bpf`,
//! `bpf-next`, `net`, `net-next`); `series export` splits by it.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use super::base::{git, git_out, hex, Base, BASE_BRANCH};
use crate::progress::{log_path, Stage};
use crate::Ctx;

/// The trees a patch can be posted to, as a series line names them.
pub fn tree_names() -> String {
    use crate::submit::export::Tree;
    Tree::ALL.map(Tree::name).join(", ")
}

/// The ordered list of patch files.
pub struct Series {
    /// `patches/<name>/`.
    pub dir: PathBuf,
    pub patches: Vec<PathBuf>,
    /// The tree each patch names, if it names one.
    pub trees: Vec<Option<String>>,
}

impl Series {
    /// Reads `patches/series`. Blank lines and `#` comments are ignored;
    /// a missing file or an empty list is an empty series.
    pub fn load(patches_dir: &Path) -> Result<Series> {
        let path = patches_dir.join("series");
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let mut patches = Vec::new();
        let mut trees = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let file = words.next().unwrap_or_default();
            let tree = words.next().map(str::to_string);
            if let Some(extra) = words.next() {
                bail!(
                    "{}:{}: {extra:?} after the tree: a line is `PATCH [TREE]`",
                    path.display(),
                    n + 1
                );
            }
            if let Some(t) = &tree {
                if crate::submit::export::Tree::from_name(t).is_none() {
                    bail!(
                        "{}:{}: unknown tree {t:?} for {file}: one of {}",
                        path.display(),
                        n + 1,
                        tree_names()
                    );
                }
            }
            let p = patches_dir.join(file);
            if !p.is_file() {
                bail!("{}:{}: patch {file} does not exist", path.display(), n + 1);
            }
            patches.push(p);
            trees.push(tree);
        }
        Ok(Series {
            dir: patches_dir.to_path_buf(),
            patches,
            trees,
        })
    }

    /// A hash of the list and of every patch's content.
    pub fn hash(&self) -> Result<String> {
        let mut h = Sha256::new();
        for p in &self.patches {
            h.update(p.file_name().unwrap().as_encoded_bytes());
            h.update([0]);
            h.update(fs::read(p)?);
        }
        Ok(hex(&h.finalize()))
    }
}

/// Makes sure the `patched` worktree of `base` holds exactly the base plus
/// the series, one commit per patch. Returns the worktree's path.
/// Which directory of patches/ applies: `--series`, else the one of the
/// tree's version for `--kernel-src`, else the base's.
pub fn choose(ctx: &Ctx, args: &super::Source, base: &Base) -> Result<String> {
    let all: Vec<String> = fs::read_dir(ctx.root.join("patches"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().join("series").is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    if let Some(s) = &args.series {
        if !all.contains(s) {
            bail!(
                "--series {s}: there is no patches/{s}/series (there are: {})",
                all.join(", ")
            );
        }
        return Ok(s.clone());
    }
    if args.kernel_src.is_none() {
        return Ok(args.base().series().to_string());
    }
    match super::BaseName::for_version(&base.version) {
        Some(b) => {
            eprintln!(
                "==> kernel: {} is Linux {}: applying patches/{}/ (--series chooses another)",
                base.origin,
                base.version,
                b.series()
            );
            Ok(b.series().to_string())
        }
        None => bail!(
            "{} is Linux {}, and nkdev keeps series for {}: choose one with --series NAME ({})",
            base.origin,
            base.version,
            super::BaseName::ALL
                .iter()
                .map(|b| b.version())
                .collect::<Vec<_>>()
                .join(" and "),
            all.join(", ")
        ),
    }
}

pub fn apply(ctx: &Ctx, base: &Base, series: &Series) -> Result<PathBuf> {
    let dir = base.dir(ctx);
    let wt = dir.join("patched");
    let stamp_path = dir.join("patched.stamp");
    let want = series.hash()?;
    if !wt.join(".git").exists() {
        let _ = git(&base.tree).args(["worktree", "prune"]).status();
        let st = git(&base.tree)
            .args(["worktree", "add", "-q", "--detach"])
            .arg(&wt)
            .arg(BASE_BRANCH)
            .output()?;
        if !st.status.success() {
            bail!(
                "git worktree add {} failed: {}",
                wt.display(),
                String::from_utf8_lossy(&st.stderr)
            );
        }
        let _ = fs::remove_file(&stamp_path);
    }
    let head = git_out(&wt, &["rev-parse", "HEAD"])?;
    let dirty = git_out(&wt, &["status", "--porcelain"])?;
    let stamp = fs::read_to_string(&stamp_path).unwrap_or_default();
    if stamp == format!("{want} {head}") {
        if !dirty.is_empty() {
            eprintln!(
                "note: {} has local changes; building them on top of the series:\n{}",
                wt.display(),
                indent(&dirty)
            );
        }
        return Ok(wt);
    }
    if !dirty.is_empty() && !stamp.is_empty() {
        bail!(
            "the series changed, but the patched tree {} has local changes that re-applying would discard:\n{}\n\
             Turn them into patches (`cargo xtask series import`) or drop them with `git -C {} reset --hard && git -C {} clean -fd`.",
            wt.display(),
            indent(&dirty),
            wt.display(),
            wt.display()
        );
    }
    let stage = Stage::new(format!(
        "kernel: applying {} patch(es) from {}",
        series.patches.len(),
        series.dir.display()
    ));
    let _ = git(&wt).args(["am", "--abort"]).output();
    reset(&wt)?;
    let log = log_path(&ctx.target, &format!("kernel-apply-{}", base.key));
    for (i, p) in series.patches.iter().enumerate() {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let out = git(&wt).args(["am", "-q", "--keep-cr"]).arg(p).output()?;
        fs::write(&log, [&out.stdout[..], &out.stderr[..]].concat())
            .with_context(|| format!("writing {}", log.display()))?;
        if !out.status.success() {
            let rejects = show_rejects(&wt, p);
            let _ = git(&wt).args(["am", "--abort"]).output();
            reset(&wt)?;
            let _ = fs::remove_file(&stamp_path);
            bail!(
                "patch {}/{} {name} of {} does not apply to the base ({}, Linux {}):\n{}\n{}\n\
                 Rebase the series onto this base, or choose the series that fits it with --series.",
                i + 1,
                series.patches.len(),
                p.parent().map(|d| d.display().to_string()).unwrap_or_default(),
                base.origin,
                base.version,
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .filter(|l| !l.starts_with("hint:"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                rejects
            );
        }
    }
    let head = git_out(&wt, &["rev-parse", "HEAD"])?;
    fs::write(&stamp_path, format!("{want} {head}"))?;
    stage.done("applied");
    Ok(wt)
}

fn reset(wt: &Path) -> Result<()> {
    // `reset --hard` rewrites only the files that differ, so unchanged
    // files keep their mtimes and the incremental build stays incremental.
    git_out(wt, &["reset", "-q", "--hard", BASE_BRANCH])?;
    git_out(wt, &["clean", "-fdq"])?;
    Ok(())
}

/// Applies what it can of a failed patch with `--reject` and returns the
/// rejected hunks, so that the error shows exactly what did not fit.
fn show_rejects(wt: &Path, patch: &Path) -> String {
    let _ = git(wt).args(["apply", "--reject"]).arg(patch).output();
    // Not --exclude-standard: the kernel's .gitignore ignores *.rej.
    let Ok(out) = git_out(wt, &["ls-files", "--others"]) else {
        return String::new();
    };
    let mut s = String::new();
    for f in out.lines().filter(|f| f.ends_with(".rej")) {
        if let Ok(text) = fs::read_to_string(wt.join(f)) {
            s.push_str(&format!("--- rejected hunk(s) in {f}:\n{text}"));
        }
    }
    if s.is_empty() {
        "(no rejected hunk: the patch may not be a git mbox or may touch a missing file)".into()
    } else {
        s
    }
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
