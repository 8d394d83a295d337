//! `cargo xtask series check`: what the netdev CI (NIPA) and the bpf
//! maintainers check on a posted series, run offline, per patch.
//!
//! The series is applied to the base in the `patched` worktree (one commit
//! per patch, as `cargo xtask kernel` does), then every commit is checked
//! out in turn and built incrementally in the `vm` profile's build
//! directory. The tip is checked out again at the end, so the build
//! directory is left warm for `vmtest`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};

use super::rules::{self, Commit};
use crate::kernel;
use crate::kernel::base::{git, git_out, BASE_BRANCH};
use crate::progress::{log_path, print_tail, run_logged, Stage};
use crate::Ctx;

/// NIPA's checkpatch ignore list (netdev/nipa tests/patch/checkpatch).
pub const CHECKPATCH_IGNORE: &str =
    "COMMIT_LOG_LONG_LINE,MACRO_ARG_REUSE,ALLOC_SIZEOF_STRUCT,NO_AUTHOR_SIGN_OFF,GIT_COMMIT_ID,CAMELCASE";

#[derive(Clone, Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub src: crate::kernel::Source,
    /// Check from patch N on (1-based); earlier patches are built as the
    /// starting point but not reported.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub from: usize,
    /// Parallel make jobs (default: the number of CPUs).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Skip the build, W=1 and kdoc checks (reported as not run).
    #[arg(long)]
    pub no_build: bool,
}

/// The outcome of one check.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", content = "detail", rename_all = "lowercase")]
pub enum Status {
    Pass(String),
    Fail(String),
    /// Could not run; never counted as passed.
    Skip(String),
}

impl Status {
    fn from_findings(f: rules::Findings, ok: &str) -> Status {
        if f.is_empty() {
            Status::Pass(ok.into())
        } else {
            Status::Fail(f.join("; "))
        }
    }
    fn word(&self) -> &'static str {
        match self {
            Status::Pass(_) => "ok",
            Status::Fail(_) => "FAIL",
            Status::Skip(_) => "skip",
        }
    }
    fn detail(&self) -> &str {
        match self {
            Status::Pass(d) | Status::Fail(d) | Status::Skip(d) => d,
        }
    }
}

/// One row of the report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Row {
    /// 1-based patch number, 0 for checks on the whole series.
    pub patch: usize,
    pub subject: String,
    pub check: &'static str,
    #[serde(flatten)]
    pub status: Status,
}

/// Checks the series; returns true when nothing failed.
pub fn run(ctx: &Ctx, a: &CheckArgs) -> Result<bool> {
    let started = Instant::now();
    crate::deps::ensure(&ctx.target)?;
    let k = super::applied(ctx, &a.src)?;
    let tree = k.tree.clone();
    let tip = git_out(&tree, &["rev-parse", "HEAD"])?;
    let shas: Vec<String> = git_out(
        &tree,
        &["rev-list", "--reverse", &format!("{BASE_BRANCH}..HEAD")],
    )?
    .lines()
    .map(str::to_string)
    .collect();
    let commits: Vec<Commit> = shas
        .iter()
        .map(|s| commit(&tree, s))
        .collect::<Result<_>>()?;
    let mut rows = series_rows(ctx, &k.series, &commits);
    if commits.is_empty() {
        eprintln!("    the series is empty: nothing to check per patch");
    }
    let from = a.from.max(1);
    // Return to the tip whatever happens, so `patched` matches its stamp.
    let _restore = Restore {
        tree: tree.clone(),
        tip: tip.clone(),
    };
    let jobs = a.jobs.map(|j| j.to_string());
    let mut clang = ClangBuild::default();
    let mut built_parent = false;
    for (i, c) in commits.iter().enumerate() {
        let n = i + 1;
        if n < from {
            continue;
        }
        let stage = Stage::new(format!(
            "series check: patch {n}/{} {}",
            commits.len(),
            c.subject
        ));
        let mut push = |check: &'static str, status: Status| {
            rows.push(Row {
                patch: n,
                subject: c.subject.clone(),
                check,
                status,
            })
        };
        let diff = git_out(&tree, &["show", "--format=", "--no-color", &c.sha])?;
        push(
            "subject",
            Status::from_findings(
                rules::subject(c, &commits),
                "subsys: summary, <= 75, unique, has a body",
            ),
        );
        push(
            "signoff",
            Status::from_findings(rules::signoff(c), "author signed off"),
        );
        push(
            "identity",
            Status::from_findings(rules::identity(c), "a person's name and address"),
        );
        push("fixes", fixes_status(&tree, c));
        push(
            "inline",
            Status::from_findings(
                rules::inline_rules(&diff),
                "no inline in .c; static inline in headers",
            ),
        );
        push("checkpatch", checkpatch(&tree, &c.sha));
        let touched = touched_files(&tree, &c.sha)?;
        push("selftests", selftest_lists(&tree, &c.sha, &touched)?);
        if a.no_build {
            for check in ["build", "W=1", "build_clang", "kdoc"] {
                push(check, Status::Skip("--no-build".into()));
            }
        } else {
            // Start from the parent, built: the baseline for W=1 and kdoc.
            let parent = format!("{}^", c.sha);
            checkout(&tree, &parent)?;
            if !built_parent {
                let st = build(
                    ctx,
                    &k.tree,
                    &k.build,
                    jobs.as_deref(),
                    &format!("series-check-{}-{}", k.id, n - 1),
                );
                if let Status::Fail(e) = &st {
                    push(
                        "build",
                        Status::Fail(format!("the parent of this patch does not build: {e}")),
                    );
                    stage.done("parent does not build");
                    continue;
                }
            }
            let c_files = compiled_c_files(&k.build, &touched);
            let w1_before = w1_warnings(ctx, &k, &c_files, jobs.as_deref());
            let clang_before = clang.warnings(ctx, &k, &c_files);
            let kdoc_before = kdoc(&tree, &touched);
            checkout(&tree, &c.sha)?;
            let st = build(
                ctx,
                &k.tree,
                &k.build,
                jobs.as_deref(),
                &format!("series-check-{}-{n}", k.id),
            );
            let ok = matches!(st, Status::Pass(_));
            built_parent = ok;
            push("build", st);
            if ok {
                let c_files = compiled_c_files(&k.build, &touched);
                let w1_after = w1_warnings(ctx, &k, &c_files, jobs.as_deref());
                push(
                    "W=1",
                    new_warnings(w1_before, w1_after, &c_files, "W=1 warnings"),
                );
                push(
                    "build_clang",
                    match (clang_before, clang.warnings(ctx, &k, &c_files)) {
                        (Ok(before), Ok(after)) => {
                            new_warnings(before, after, &c_files, "clang warnings")
                        }
                        (Err(e), _) | (_, Err(e)) => Status::Skip(e),
                    },
                );
                let kdoc_after = kdoc(&tree, &touched);
                let kdoc_files: Vec<String> = touched
                    .iter()
                    .filter(|f| f.ends_with(".c") || f.ends_with(".h"))
                    .cloned()
                    .collect();
                push(
                    "kdoc",
                    new_warnings(kdoc_before, kdoc_after, &kdoc_files, "kernel-doc warnings"),
                );
            } else {
                push("W=1", Status::Skip("the patch does not build".into()));
                push(
                    "build_clang",
                    Status::Skip("the patch does not build".into()),
                );
                push("kdoc", Status::Skip("the patch does not build".into()));
            }
        }
        checkout(&tree, &c.sha)?;
        push("ynl", ynl(&tree, &touched));
        push("recipients", recipients(&tree, &c.sha));
        let mine: Vec<&Row> = rows.iter().filter(|r| r.patch == n).collect();
        let failed: Vec<&str> = mine
            .iter()
            .filter(|r| matches!(r.status, Status::Fail(_)))
            .map(|r| r.check)
            .collect();
        stage.done(&if failed.is_empty() {
            format!("{} checks passed or not run", mine.len())
        } else {
            format!("failed: {}", failed.join(", "))
        });
        // A run stopped halfway still leaves what it found.
        let _ = write_partial(ctx, &k.series, &rows);
    }
    drop(_restore);
    report(ctx, &k.series, &rows, started)
}

/// Puts the `patched` worktree back at the series' tip.
struct Restore {
    tree: PathBuf,
    tip: String,
}

impl Drop for Restore {
    fn drop(&mut self) {
        if let Err(e) = checkout(&self.tree, &self.tip) {
            eprintln!("warning: could not check out the series' tip again: {e:#}");
        }
    }
}

fn checkout(tree: &Path, rev: &str) -> Result<()> {
    git_out(tree, &["checkout", "-q", "--detach", rev]).map(|_| ())
}

fn commit(tree: &Path, sha: &str) -> Result<Commit> {
    let out = git_out(
        tree,
        &["log", "-1", "--format=%H%x00%an%x00%ae%x00%s%x00%b", sha],
    )?;
    let mut it = out.splitn(5, '\0');
    let mut next = || it.next().unwrap_or_default().to_string();
    Ok(Commit {
        sha: next(),
        author_name: next(),
        author_email: next(),
        subject: next(),
        body: next(),
    })
}

fn touched_files(tree: &Path, sha: &str) -> Result<Vec<String>> {
    Ok(git_out(
        tree,
        &["diff-tree", "--no-commit-id", "--name-only", "-r", sha],
    )?
    .lines()
    .map(str::to_string)
    .collect())
}

/// Whole-series checks (patch 0).
/// The series-wide rows: size and cover letter, per target tree as
/// `series export` sends them (the series file names each patch's tree;
/// a tree's cover letter is `cover-letter.<tree>`, or `cover-letter`),
/// or for the whole series when no patch names a tree.
fn series_rows(ctx: &Ctx, series: &str, commits: &[Commit]) -> Vec<Row> {
    let dir = ctx.root.join("patches").join(series);
    let trees = crate::kernel::series::Series::load(&dir)
        .map(|s| s.trees)
        .unwrap_or_default();
    let mut groups: Vec<(Option<String>, usize)> = Vec::new();
    if trees.len() == commits.len() && trees.iter().any(Option::is_some) {
        for t in &trees {
            match groups.iter_mut().find(|(g, _)| g == t) {
                Some((_, n)) => *n += 1,
                None => groups.push((t.clone(), 1)),
            }
        }
    } else {
        groups.push((None, commits.len()));
    }
    let mut rows = Vec::new();
    for (tree, n) in &groups {
        let n = *n;
        let what = tree.as_deref().map_or(String::new(), |t| format!("{t}: "));
        rows.push(Row {
            patch: 0,
            subject: "(series)".into(),
            check: "size",
            status: if n > rules::MAX_PATCHES {
                Status::Fail(format!(
                    "{what}{n} patches; netdev takes at most {}: split the series",
                    rules::MAX_PATCHES
                ))
            } else {
                Status::Pass(format!("{what}{n} patch(es)"))
            },
        });
        let own = tree
            .as_deref()
            .map(|t| dir.join(format!("cover-letter.{t}")))
            .filter(|p| p.is_file());
        let cover = own.unwrap_or_else(|| dir.join("cover-letter"));
        let status = if n <= 1 {
            Status::Pass(format!("{what}single patch: no cover letter needed"))
        } else {
            match fs::read_to_string(&cover) {
                Ok(t) => {
                    let (subject, body) = super::export::split_cover(&t);
                    if subject.trim().is_empty() || body.trim().is_empty() {
                        Status::Fail(format!(
                            "{} needs a subject line and a body",
                            cover.display()
                        ))
                    } else {
                        Status::Pass(format!("{what}{}: {subject}", cover.display()))
                    }
                }
                Err(_) => Status::Fail(format!(
                    "{what}{n} patches but no {}: a series of more than one patch needs a cover letter",
                    cover.display()
                )),
            }
        };
        rows.push(Row {
            patch: 0,
            subject: "(series)".into(),
            check: "cover-letter",
            status,
        });
    }
    rows
}

fn fixes_status(tree: &Path, c: &Commit) -> Status {
    let (mut f, tags) = rules::fixes(c);
    if tags.is_empty() && f.is_empty() {
        return Status::Pass("no Fixes: tag".into());
    }
    let mut unverified = Vec::new();
    for t in &tags {
        let known = git(tree)
            .args(["cat-file", "-e", &format!("{}^{{commit}}", t.sha)])
            .output()
            .is_ok_and(|o| o.status.success());
        if !known {
            unverified.push(t.sha.clone());
            continue;
        }
        let subj = git_out(tree, &["log", "-1", "--format=%s", &t.sha]).unwrap_or_default();
        if subj != t.subject {
            f.push(format!(
                "Fixes: {} names (\"{}\") but that commit is (\"{subj}\")",
                t.sha, t.subject
            ));
        }
    }
    if !f.is_empty() {
        return Status::Fail(f.join("; "));
    }
    if unverified.is_empty() {
        Status::Pass("well formed; subjects match the tree's history".into())
    } else {
        Status::Pass(format!(
            "well formed; {} not in this tree's history (no upstream history in the base), subject not verified",
            unverified.join(", ")
        ))
    }
}

/// Whether `tree` carries upstream history (a real kernel checkout) or
/// only the nkdev base commit and the series (Debian's tarball).
fn has_upstream_history(tree: &Path) -> bool {
    Command::new("git")
        .current_dir(tree)
        .args(["rev-list", "--count", "--max-count=1000", "HEAD"])
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<u32>()
                .ok()
        })
        .is_some_and(|n| n >= 1000)
}

fn checkpatch(tree: &Path, sha: &str) -> Status {
    // Without upstream history checkpatch cannot know any commit a
    // Fixes: tag names; the `fixes` check reports those as unverified.
    let ignore = if has_upstream_history(tree) {
        CHECKPATCH_IGNORE.to_string()
    } else {
        format!("{CHECKPATCH_IGNORE},UNKNOWN_COMMIT_ID")
    };
    let out = Command::new("perl")
        .current_dir(tree)
        .args([
            "scripts/checkpatch.pl",
            "--strict",
            "--max-line-length=80",
            "--show-types",
            &format!("--ignore={ignore}"),
            "-g",
            sha,
        ])
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => return Status::Skip(format!("cannot run scripts/checkpatch.pl: {e}")),
    };
    checkpatch_verdict(
        &String::from_utf8_lossy(&out.stdout),
        &String::from_utf8_lossy(&out.stderr),
    )
}

/// The verdict from checkpatch's output: only a clean total passes; no
/// total at all means it did not run properly, which is not a pass.
fn checkpatch_verdict(text: &str, stderr: &str) -> Status {
    let total = text
        .lines()
        .find(|l| l.starts_with("total:"))
        .unwrap_or("")
        .to_string();
    if total.is_empty() {
        return Status::Skip(format!("checkpatch printed no total: {}", stderr.trim()));
    }
    if total.starts_with("total: 0 errors, 0 warnings, 0 checks") {
        return Status::Pass(total);
    }
    let problems: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("ERROR:") || l.starts_with("WARNING:") || l.starts_with("CHECK:"))
        .collect();
    Status::Fail(format!("{total}: {}", problems.join(" | ")))
}

/// New selftest files are listed in their directory's Makefile (and the
/// binaries in .gitignore), and the lists the patch touches stay sorted.
fn selftest_lists(tree: &Path, sha: &str, touched: &[String]) -> Result<Status> {
    let added: Vec<String> = git_out(
        tree,
        &[
            "diff-tree",
            "--no-commit-id",
            "--name-only",
            "--diff-filter=A",
            "-r",
            sha,
        ],
    )?
    .lines()
    .filter(|f| f.starts_with("tools/testing/selftests/"))
    .map(str::to_string)
    .collect();
    let show =
        |path: &str| -> Option<String> { git_out(tree, &["show", &format!("{sha}:{path}")]).ok() };
    let mut f = Vec::new();
    let mut notes = Vec::new();
    for file in &added {
        let rel = file.trim_start_matches("tools/testing/selftests/");
        let (dir, name) = match rel.rsplit_once('/') {
            Some(x) => x,
            None => continue,
        };
        if dir.starts_with("bpf/prog_tests") || dir.starts_with("bpf/progs") {
            notes.push(format!("{name}: found by selftests/bpf's wildcards"));
            continue;
        }
        let top = dir.split('/').next().unwrap_or(dir);
        let mk_path = format!("tools/testing/selftests/{top}/Makefile");
        let stem = name.rsplit_once('.').map_or(name, |x| x.0);
        match show(&mk_path) {
            Some(mk) if mk.contains(name) || mk.contains(stem) => {}
            Some(_) => f.push(format!("{file} is not listed in {mk_path}")),
            None => f.push(format!("{file}: no {mk_path}")),
        }
        if name.ends_with(".c") {
            let gi = show(&format!("tools/testing/selftests/{top}/.gitignore")).unwrap_or_default();
            if !rules::list_lines(&gi)
                .iter()
                .any(|l| l.trim_start_matches('/') == stem)
            {
                f.push(format!(
                    "binary {stem} of {file} is not in selftests/{top}/.gitignore"
                ));
            }
        }
    }
    for t in touched
        .iter()
        .filter(|t| t.starts_with("tools/testing/selftests/"))
    {
        let base = t.rsplit('/').next().unwrap_or(t);
        let Some(text) = show(t) else { continue };
        let unsorted = |text: &str| match base {
            "Makefile" => [
                "TEST_PROGS",
                "TEST_GEN_PROGS",
                "TEST_GEN_FILES",
                "TEST_FILES",
            ]
            .iter()
            .find_map(|v| {
                rules::first_unsorted(&rules::makefile_list(text, v)).map(|p| (v.to_string(), p))
            }),
            ".gitignore" | "config" => {
                rules::first_unsorted(&rules::list_lines(text)).map(|p| (base.to_string(), p))
            }
            _ => None,
        };
        // Only what the patch makes unsorted: a base whose list is already
        // out of order there (7.3's selftests config) is not the patch's.
        let before = git_out(tree, &["show", &format!("{sha}^:{t}")])
            .ok()
            .and_then(|b| unsorted(&b));
        if let Some((what, (a, b))) = unsorted(&text) {
            if before.as_ref() != Some(&(what.clone(), (a.clone(), b.clone()))) {
                f.push(format!("{t}: {what} is not sorted ({a} before {b})"));
            }
        }
    }
    if !f.is_empty() {
        return Ok(Status::Fail(f.join("; ")));
    }
    Ok(Status::Pass(if added.is_empty() {
        "no new selftest files".into()
    } else if notes.is_empty() {
        format!("{} new file(s) listed", added.len())
    } else {
        notes.join("; ")
    }))
}

fn build(ctx: &Ctx, tree: &Path, build: &Path, jobs: Option<&str>, log_name: &str) -> Status {
    let log = log_path(&ctx.target, log_name);
    let _ = fs::remove_file(&log);
    let mut cmd = kernel::make(tree, build);
    if let Some(j) = jobs {
        cmd.arg(format!("-j{j}"));
    }
    cmd.arg("bzImage");
    let t = Instant::now();
    match run_logged("make bzImage", &mut cmd, &log) {
        Ok(()) => Status::Pass(format!("bzImage in {:.0}s", t.elapsed().as_secs_f64())),
        Err(e) => Status::Fail(format!("{e:#}; log: {}", log.display())),
    }
}

/// The touched .c files that this config compiles (their .o exists).
fn compiled_c_files(build: &Path, touched: &[String]) -> Vec<String> {
    touched
        .iter()
        .filter(|f| f.ends_with(".c") && !f.starts_with("tools/"))
        .filter(|f| build.join(f.replace(".c", ".o")).exists())
        .cloned()
        .collect()
}

/// Warnings that `make W=1 file.o` prints for each file, normalised.
fn w1_warnings(ctx: &Ctx, k: &kernel::Kernel, files: &[String], jobs: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    for f in files {
        let obj = f.replace(".c", ".o");
        // Force the rebuild: W=1 changes the command line, so kbuild
        // recompiles the object; the next plain build compiles it again.
        let mut cmd = kernel::make(&k.tree, &k.build);
        if let Some(j) = jobs {
            cmd.arg(format!("-j{j}"));
        }
        let o = cmd.arg("W=1").arg(&obj).output();
        let log = log_path(&ctx.target, &format!("series-check-{}-w1", k.id));
        if let Ok(o) = o {
            let text = String::from_utf8_lossy(&o.stderr).into_owned();
            let _ = fs::write(&log, &text);
            out.extend(
                text.lines()
                    .filter(|l| l.contains("warning:"))
                    .map(rules::normalize_warning),
            );
        }
    }
    out
}

/// NIPA's build_clang, for the files a patch touches: the same config
/// built with clang (`LLVM=-19`) in a build directory of its own, next to
/// the gcc one, and the touched files compiled there before and after the
/// patch. NIPA builds the whole tree; compiling what the patch touches is
/// what a new warning can come from, at a fraction of the cost.
#[derive(Default)]
struct ClangBuild {
    /// Set once the directory is configured; the error if it cannot be.
    ready: Option<std::result::Result<PathBuf, String>>,
}

impl ClangBuild {
    fn make(k: &kernel::Kernel, dir: &Path) -> Command {
        let mut c = Command::new("make");
        c.arg("-C")
            .arg(&k.tree)
            .arg(format!("O={}", dir.display()))
            .arg(format!("LLVM=-{}", crate::bpf::LLVM_VERSION))
            .arg("LOCALVERSION=");
        c
    }

    fn dir(&mut self, ctx: &Ctx, k: &kernel::Kernel) -> std::result::Result<PathBuf, String> {
        self.ready
            .get_or_insert_with(|| {
                let clang = crate::bpf::llvm("clang");
                if !kernel::which(&clang) {
                    return Err(format!("{clang} is not installed (`cargo xtask deps`)"));
                }
                let mut name = k.build.file_name().unwrap_or_default().to_os_string();
                name.push("-clang");
                let dir = k.build.with_file_name(name);
                fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                fs::copy(k.build.join(".config"), dir.join(".config"))
                    .map_err(|e| format!("copying the config: {e}"))?;
                let log = log_path(&ctx.target, &format!("series-check-{}-clang-config", k.id));
                let o = Self::make(k, &dir)
                    .arg("olddefconfig")
                    .output()
                    .map_err(|e| format!("make olddefconfig: {e}"))?;
                let _ = fs::write(&log, &o.stderr);
                if !o.status.success() {
                    return Err(format!(
                        "make LLVM=-{} olddefconfig failed; log: {}",
                        crate::bpf::LLVM_VERSION,
                        log.display()
                    ));
                }
                Ok(dir)
            })
            .clone()
    }

    /// Warnings clang prints for each of `files`, normalised.
    fn warnings(
        &mut self,
        ctx: &Ctx,
        k: &kernel::Kernel,
        files: &[String],
    ) -> std::result::Result<Vec<String>, String> {
        if files.is_empty() {
            return Ok(vec![]);
        }
        let dir = self.dir(ctx, k)?;
        let mut out = Vec::new();
        for f in files {
            let obj = f.replace(".c", ".o");
            // Remove the object so that clang compiles it again.
            let _ = fs::remove_file(dir.join(&obj));
            let o = Self::make(k, &dir)
                .arg(format!("-j{}", kernel::jobs()))
                .arg(&obj)
                .output()
                .map_err(|e| format!("make {obj}: {e}"))?;
            let text = String::from_utf8_lossy(&o.stderr).into_owned();
            let _ = fs::write(
                log_path(&ctx.target, &format!("series-check-{}-clang", k.id)),
                &text,
            );
            if !o.status.success() {
                let errs: Vec<&str> = text.lines().filter(|l| l.contains("error:")).collect();
                out.extend(errs.iter().map(|l| rules::normalize_warning(l)));
                if errs.is_empty() {
                    out.push(format!("{obj}: clang build failed"));
                }
            }
            out.extend(
                text.lines()
                    .filter(|l| l.contains("warning:"))
                    .map(rules::normalize_warning),
            );
        }
        Ok(out)
    }
}

/// `scripts/kernel-doc -Wall -none` over the touched C files and headers
/// that exist at the current checkout.
fn kdoc(tree: &Path, touched: &[String]) -> Vec<String> {
    let files: Vec<&String> = touched
        .iter()
        .filter(|f| (f.ends_with(".c") || f.ends_with(".h")) && tree.join(f).exists())
        .collect();
    if files.is_empty() {
        return vec![];
    }
    let o = Command::new("perl")
        .current_dir(tree)
        .arg("scripts/kernel-doc")
        .args(["-Wall", "-none"])
        .args(&files)
        .output();
    match o {
        Ok(o) => String::from_utf8_lossy(&o.stderr)
            .lines()
            .filter(|l| l.contains("warning") || l.contains("error"))
            .map(rules::normalize_warning)
            .collect(),
        Err(_) => vec![],
    }
}

/// Warnings after the patch that were not there before (as a multiset).
fn new_warnings(before: Vec<String>, after: Vec<String>, files: &[String], what: &str) -> Status {
    if files.is_empty() {
        return Status::Pass(format!("no file to check for {what}"));
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for w in before {
        *seen.entry(w).or_default() += 1;
    }
    let mut new = Vec::new();
    for w in after {
        match seen.get_mut(&w) {
            Some(n) if *n > 0 => *n -= 1,
            _ => new.push(w),
        }
    }
    if new.is_empty() {
        Status::Pass(format!("no new {what} in {} file(s)", files.len()))
    } else {
        Status::Fail(format!("{} new {what}: {}", new.len(), new.join(" | ")))
    }
}

/// A change to a YNL spec: the spec validates against its schema, and
/// The tree's YNL command line tool: `tools/net/ynl/pyynl/cli.py` in newer
/// trees (7.3), `tools/net/ynl/cli.py` in older ones (6.12).
fn ynl_cli(tree: &Path) -> &'static str {
    if tree.join("tools/net/ynl/pyynl/cli.py").is_file() {
        "tools/net/ynl/pyynl/cli.py"
    } else {
        "tools/net/ynl/cli.py"
    }
}

/// `ynl-regen.sh -f` leaves the tree clean.
fn ynl(tree: &Path, touched: &[String]) -> Status {
    let specs: Vec<&String> = touched
        .iter()
        .filter(|f| f.starts_with("Documentation/netlink/specs/") && f.ends_with(".yaml"))
        .collect();
    if specs.is_empty() {
        return Status::Pass("no YNL spec changed".into());
    }
    let mut f = Vec::new();
    for s in &specs {
        let o = Command::new("python3")
            .current_dir(tree)
            .arg(ynl_cli(tree))
            .args(["--spec", s, "--list-ops"])
            .output();
        match o {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                let err = String::from_utf8_lossy(&o.stderr);
                if err.contains("No module named") {
                    return Status::Skip(format!("YNL needs python modules: {}", err.trim()));
                }
                f.push(format!(
                    "{s} does not validate: {}",
                    err.lines().last().unwrap_or("")
                ));
            }
            Err(e) => return Status::Skip(format!("cannot run python3: {e}")),
        }
    }
    let regen = Command::new("tools/net/ynl/ynl-regen.sh")
        .current_dir(tree)
        .arg("-f")
        .output();
    match regen {
        Ok(o) if o.status.success() => {
            let dirty = git_out(tree, &["status", "--porcelain"]).unwrap_or_default();
            if !dirty.trim().is_empty() {
                f.push(format!(
                    "ynl-regen.sh -f changed files: {}",
                    dirty.trim().replace('\n', ", ")
                ));
                let _ = git_out(tree, &["checkout", "-q", "--", "."]);
                let _ = git_out(tree, &["clean", "-fdq"]);
            }
        }
        Ok(o) => f.push(format!(
            "ynl-regen.sh -f failed: {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
        )),
        Err(e) => return Status::Skip(format!("cannot run ynl-regen.sh: {e}")),
    }
    Status::from_findings(
        f,
        &format!(
            "{} spec(s) validate; ynl-regen.sh -f leaves the tree clean",
            specs.len()
        ),
    )
}

fn recipients(tree: &Path, sha: &str) -> Status {
    let patch = match git(tree)
        .args(["format-patch", "-1", "--stdout", sha])
        .output()
    {
        Ok(o) => o.stdout,
        Err(e) => return Status::Skip(format!("git format-patch: {e}")),
    };
    let tmp = std::env::temp_dir().join(format!("nkdev-gm-{}.patch", std::process::id()));
    if fs::write(&tmp, &patch).is_err() {
        return Status::Skip("cannot write a temporary patch file".into());
    }
    let o = Command::new("perl")
        .current_dir(tree)
        .args([
            "scripts/get_maintainer.pl",
            "--no-git",
            "--no-git-fallback",
            "--no-rolestats",
            "--separator",
            ", ",
        ])
        .arg(&tmp)
        .output();
    let _ = fs::remove_file(&tmp);
    match o {
        Ok(o) if o.status.success() => {
            let list = String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(", ");
            if list.is_empty() {
                Status::Fail("get_maintainer.pl found no recipient".into())
            } else {
                Status::Pass(list)
            }
        }
        Ok(o) => Status::Skip(format!(
            "get_maintainer.pl failed: {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .next()
                .unwrap_or("")
        )),
        Err(e) => Status::Skip(format!("cannot run get_maintainer.pl: {e}")),
    }
}

/// The rows so far, in `report.partial.json`, which the full report
/// replaces at the end.
fn write_partial(ctx: &Ctx, series: &str, rows: &[Row]) -> Result<()> {
    let dir = ctx.target.join("series-check").join(series);
    fs::create_dir_all(&dir)?;
    fs::write(
        dir.join("report.partial.json"),
        serde_json::to_string_pretty(rows)?,
    )?;
    Ok(())
}

fn report(ctx: &Ctx, series: &str, rows: &[Row], started: Instant) -> Result<bool> {
    // One directory per series: `cargo xtask test` checks both bases.
    let dir = ctx.target.join("series-check").join(series);
    fs::create_dir_all(&dir)?;
    println!("{:>5}  {:<12} {:<5}  DETAIL", "PATCH", "CHECK", "");
    let mut last = usize::MAX;
    for r in rows {
        if r.patch != last {
            println!(
                "{}",
                if r.patch == 0 {
                    "-- whole series".to_string()
                } else {
                    format!("-- {}: {}", r.patch, r.subject)
                }
            );
            last = r.patch;
        }
        let detail = r.status.detail();
        let detail = if detail.len() > 200 && !matches!(r.status, Status::Fail(_)) {
            let cut = (0..=200)
                .rev()
                .find(|&i| detail.is_char_boundary(i))
                .unwrap_or(0);
            format!("{}...", &detail[..cut])
        } else {
            detail.to_string()
        };
        println!(
            "{:>5}  {:<12} {:<5}  {detail}",
            r.patch,
            r.check,
            r.status.word()
        );
    }
    // KTAP: one test per row, named patch.check.
    let mut k = format!("KTAP version 1\n1..{}\n", rows.len());
    for (i, r) in rows.iter().enumerate() {
        let name = format!("patch{}.{}", r.patch, r.check.replace('=', ""));
        let line = match &r.status {
            Status::Pass(_) => format!("ok {} {name}", i + 1),
            Status::Fail(d) => format!("not ok {} {name}\n# {}", i + 1, d.replace('\n', " ")),
            Status::Skip(d) => format!("ok {} {name} # SKIP {}", i + 1, d.replace('\n', " ")),
        };
        k.push_str(&line);
        k.push('\n');
    }
    fs::write(dir.join("results.ktap"), k)?;
    fs::write(dir.join("report.json"), serde_json::to_string_pretty(rows)?)
        .context("writing report.json")?;
    let _ = fs::remove_file(dir.join("report.partial.json"));
    let failed = rows
        .iter()
        .filter(|r| matches!(r.status, Status::Fail(_)))
        .count();
    let skipped: Vec<String> = rows
        .iter()
        .filter_map(|r| match &r.status {
            Status::Skip(d) => Some(format!("patch {} {}: {d}", r.patch, r.check)),
            _ => None,
        })
        .collect();
    let passed = rows.len() - failed - skipped.len();
    println!(
        "{passed} passed, {failed} failed, {} not run, in {:.0}s; report: {}",
        skipped.len(),
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    for s in &skipped {
        println!("    not run: {s}");
    }
    if failed > 0 {
        if let Some(r) = rows
            .iter()
            .find(|r| matches!(&r.status, Status::Fail(d) if d.contains("log: ")))
        {
            if let Some(p) = r.status.detail().rsplit("log: ").next() {
                print_tail(Path::new(p.trim()), 40);
            }
        }
    }
    Ok(failed == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ynl_cli_is_found_where_the_tree_keeps_it() {
        let dir = std::env::temp_dir().join(format!("nkdev-ynl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tools/net/ynl")).unwrap();
        assert_eq!(ynl_cli(&dir), "tools/net/ynl/cli.py");
        std::fs::create_dir_all(dir.join("tools/net/ynl/pyynl")).unwrap();
        std::fs::write(dir.join("tools/net/ynl/pyynl/cli.py"), "").unwrap();
        assert_eq!(ynl_cli(&dir), "tools/net/ynl/pyynl/cli.py");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn checkpatch_only_a_clean_total_passes() {
        let clean = "total: 0 errors, 0 warnings, 0 checks, 27 lines checked\n";
        assert!(matches!(checkpatch_verdict(clean, ""), Status::Pass(_)));
        let bad = "WARNING:LONG_LINE: line length of 81 exceeds 80 columns\n#1: FILE: a.c:1:\n\ntotal: 0 errors, 1 warnings, 0 checks, 5 lines checked\n";
        match checkpatch_verdict(bad, "") {
            Status::Fail(d) => assert!(d.contains("LONG_LINE") && d.contains("1 warnings"), "{d}"),
            s => panic!("{s:?}"),
        }
        let check = "CHECK:PARENTHESIS_ALIGNMENT: Alignment should match\ntotal: 0 errors, 0 warnings, 1 checks, 5 lines checked\n";
        assert!(matches!(checkpatch_verdict(check, ""), Status::Fail(_)));
        assert!(matches!(
            checkpatch_verdict("", "Can't open perl script"),
            Status::Skip(_)
        ));
    }

    #[test]
    fn only_new_warnings_fail() {
        let w = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let files = w(&["a.c"]);
        let same = new_warnings(
            w(&["a.c:N: x", "a.c:N: x"]),
            w(&["a.c:N: x", "a.c:N: x"]),
            &files,
            "W=1 warnings",
        );
        assert!(matches!(same, Status::Pass(_)));
        // One more of the same warning is new (a multiset, not a set).
        let more = new_warnings(
            w(&["a.c:N: x"]),
            w(&["a.c:N: x", "a.c:N: x"]),
            &files,
            "W=1 warnings",
        );
        assert!(matches!(more, Status::Fail(d) if d.starts_with("1 new")));
        let fixed = new_warnings(w(&["a.c:N: x"]), vec![], &files, "W=1 warnings");
        assert!(matches!(fixed, Status::Pass(_)));
    }
}
