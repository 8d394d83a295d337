//! `series export` (git format-patch for the lists, with a cover letter,
//! base information and the tree's subject prefix) and `series import`
//! (refresh patches/ from a developer's kernel tree).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::rules;
use crate::kernel::base::{git_out, BASE_BRANCH};
use crate::Ctx;

/// The tree a series is posted for: it becomes the subject prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Tree {
    BpfNext,
    NetNext,
    Bpf,
    Net,
}

impl Tree {
    pub const ALL: [Tree; 4] = [Tree::Bpf, Tree::BpfNext, Tree::Net, Tree::NetNext];

    pub fn from_name(n: &str) -> Option<Tree> {
        Tree::ALL.into_iter().find(|t| t.name() == n)
    }

    pub fn name(self) -> &'static str {
        match self {
            Tree::BpfNext => "bpf-next",
            Tree::NetNext => "net-next",
            Tree::Bpf => "bpf",
            Tree::Net => "net",
        }
    }
}

#[derive(Clone, Debug, clap::Args)]
pub struct ExportArgs {
    /// Directory to write the patches to (created; must be empty).
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// The tree the whole series is for, as in `[PATCH bpf-next v2 1/7]`.
    /// Without it, each patch goes to the tree its `series` line names,
    /// one directory per tree (DIR/net-next/, DIR/bpf/, ...), each series
    /// rebuilt on the base alone.
    #[arg(long, value_enum)]
    pub tree: Option<Tree>,
    /// Version of the posting. v1 carries no version in the subject, as
    /// netdev and bpf expect.
    #[arg(long, default_value_t = 1)]
    pub version: u32,
    #[command(flatten)]
    pub src: crate::kernel::Source,
}

#[derive(Clone, Debug, clap::Args)]
pub struct ImportArgs {
    /// The series to replace: a directory under patches/.
    #[arg(long, value_name = "NAME", default_value = "mainline")]
    pub series: String,
    /// The developer's kernel git tree.
    #[arg(long, value_name = "KERNEL_GIT_DIR")]
    pub from: PathBuf,
    /// The commits to import, BASE..HEAD.
    #[arg(value_name = "BASE..HEAD")]
    pub range: String,
}

/// Options for `git format-patch` that export and the round-trip test share.
#[derive(Clone, Debug)]
pub struct ExportOpts {
    pub tree: Tree,
    pub version: u32,
}

/// Splits patches/cover-letter into its subject line and the rest.
pub fn split_cover(text: &str) -> (String, String) {
    let mut lines = text.lines();
    let subject = lines.next().unwrap_or("").trim().to_string();
    let rest = lines.collect::<Vec<_>>().join("\n");
    (subject, rest.trim().to_string())
}

/// The cover letter's body for version `v`: the text, with the
/// `Changes in vK:` sections for K <= v only (newest first, as written).
pub fn cover_body(body: &str, v: u32) -> String {
    let mut out = Vec::new();
    let mut keep = true;
    for l in body.lines() {
        if let Some(rest) = l.trim().strip_prefix("Changes in v") {
            let k: u32 = rest
                .trim_end_matches(':')
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            keep = k <= v;
        }
        if keep {
            out.push(l);
        }
    }
    out.join("\n").trim_end().to_string()
}

/// `git format-patch` as both import and export run it: the same options
/// on both sides are what makes the round trip exact.
fn format_patch(repo: &Path) -> Command {
    let mut c = Command::new("git");
    c.arg("-C").arg(repo).args([
        "-c",
        "core.abbrev=12",
        "format-patch",
        "-q",
        "--zero-commit",
        "--no-signature",
    ]);
    c
}

/// `git format-patch` of `from..head` in `repo` into `out`, with the cover
/// letter filled in when there is more than one patch; `from` is `base`,
/// or `base` plus patches the series needs (another tree's), which
/// format-patch names with `prerequisite-patch-id:` lines after
/// `base-commit:`. Returns the files.
pub fn export_range(
    repo: &Path,
    base: &str,
    from: &str,
    head: &str,
    out: &Path,
    o: &ExportOpts,
    cover: Option<&str>,
) -> Result<Vec<PathBuf>> {
    let n: usize = git_out(repo, &["rev-list", "--count", &format!("{from}..{head}")])?
        .trim()
        .parse()?;
    if n == 0 {
        bail!("the series is empty: nothing to export");
    }
    if out.exists() && fs::read_dir(out)?.next().is_some() {
        bail!(
            "{} is not empty; export writes into an empty directory",
            out.display()
        );
    }
    fs::create_dir_all(out)?;
    let base_sha = git_out(repo, &["rev-parse", base])?.trim().to_string();
    let mut c = format_patch(repo);
    c.args([
        "--thread=shallow",
        &format!("--base={base_sha}"),
        &format!("--subject-prefix=PATCH {}", o.tree.name()),
        "-o",
    ]);
    c.arg(out);
    if o.version > 1 {
        c.arg(format!("--reroll-count={}", o.version));
    }
    if n > 1 {
        c.arg("--cover-letter");
    }
    c.arg(format!("{from}..{head}"));
    let st = c.output()?;
    if !st.status.success() {
        bail!("git format-patch: {}", String::from_utf8_lossy(&st.stderr));
    }
    let mut files: Vec<PathBuf> = fs::read_dir(out)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "patch"))
        .collect();
    files.sort();
    if n > 1 {
        let cover_file = files
            .iter()
            .find(|p| p.to_string_lossy().contains("0000-cover-letter"))
            .context("format-patch wrote no cover letter")?;
        let Some(cover) = cover else {
            bail!("a series of {n} patches needs a cover letter: write patches/cover-letter (subject line, blank line, body)");
        };
        let (subject, body) = split_cover(cover);
        let text = fs::read_to_string(cover_file)?;
        if !text.contains("*** SUBJECT HERE ***") || !text.contains("*** BLURB HERE ***") {
            bail!("unexpected cover letter template from git format-patch");
        }
        let text = text
            .replace("*** SUBJECT HERE ***", &subject)
            .replace("*** BLURB HERE ***", &cover_body(&body, o.version));
        fs::write(cover_file, text)?;
    }
    Ok(files)
}

/// Who posts the series: the user's git identity, as `git var
/// GIT_AUTHOR_IDENT` gives it (GIT_AUTHOR_NAME and GIT_AUTHOR_EMAIL, else
/// user.name and user.email). Never made up: export refuses to run
/// without one, or with one that [`rules::identity`] refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub email: String,
}

const IDENT_FIX: &str = "set git config user.name and user.email (or GIT_AUTHOR_NAME and \
                         GIT_AUTHOR_EMAIL) to your own";

impl Ident {
    pub fn from_git(dir: &Path) -> Result<Ident> {
        let o = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["var", "GIT_AUTHOR_IDENT"])
            .output()
            .context("git var GIT_AUTHOR_IDENT")?;
        if !o.status.success() {
            bail!(
                "series export signs the patches as you, and git has no identity for you ({}); {IDENT_FIX}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        Ident::parse(&String::from_utf8_lossy(&o.stdout))
    }

    /// `Name <email> 1700000000 +0000`, checked.
    fn parse(var: &str) -> Result<Ident> {
        let Some((who, _when)) = var.trim().rsplit_once('>') else {
            bail!("git var GIT_AUTHOR_IDENT: unexpected output {var:?}");
        };
        let Some((name, email)) = who.split_once('<') else {
            bail!("git var GIT_AUTHOR_IDENT: unexpected output {var:?}");
        };
        let id = Ident {
            name: name.trim().to_string(),
            email: email.trim().to_string(),
        };
        let why = rules::identity_problems(&id.name, &id.email);
        if !why.is_empty() {
            bail!(
                "series export signs the patches as {}, which is not a person's identity: {}; {IDENT_FIX}",
                id.line(),
                why.join("; ")
            );
        }
        Ok(id)
    }

    fn line(&self) -> String {
        format!("{} <{}>", self.name, self.email)
    }
}

/// A commit's author and message as `ident` posts it. A patch whose
/// author is a placeholder (the identity nkdev's patch files carry) is
/// the poster's: it gets their name, and their Signed-off-by in place of
/// the placeholder's. A patch by someone else (a credited backport)
/// keeps its author and sign-off, and the poster's Signed-off-by is
/// added after the other trailers, once.
pub fn as_posted(name: &str, email: &str, msg: &str, ident: &Ident) -> (String, String, String) {
    let placeholder = !rules::identity_problems(name, email).is_empty();
    let mine = format!("Signed-off-by: {}", ident.line());
    let (name, email, mut msg) = if placeholder {
        let theirs = format!("Signed-off-by: {name} <{email}>");
        let msg = msg
            .lines()
            .map(|l| {
                if l.trim_end() == theirs {
                    mine.as_str()
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        (ident.name.clone(), ident.email.clone(), msg)
    } else {
        (
            name.to_string(),
            email.to_string(),
            msg.trim_end().to_string(),
        )
    };
    if !msg.lines().any(|l| l.trim_end() == mine) {
        let last = msg.trim_end().rsplit("\n\n").next().unwrap_or_default();
        let trailers = !last.is_empty()
            && last.lines().all(|l| {
                l.split_once(": ")
                    .is_some_and(|(k, _)| !k.is_empty() && !k.contains(' '))
            });
        msg = format!(
            "{}{}{mine}",
            msg.trim_end(),
            if trailers { "\n" } else { "\n\n" }
        );
    }
    (name, email, msg.trim_end().to_string() + "\n")
}

/// Rebuilds `shas` (commits of `repo`, in order) on `base` alone, without
/// touching the work tree (a private index, `git apply --cached`,
/// `commit-tree` with each commit's author and message), and returns the
/// new head. A patch that needs one of the commits left out fails with
/// its subject. With `ident`, each commit is as that person posts it
/// ([`as_posted`]), committed by them.
pub fn rebuild_on(
    repo: &Path,
    base: &str,
    shas: &[String],
    tree: &str,
    ident: Option<&Ident>,
) -> Result<String> {
    let index =
        std::env::temp_dir().join(format!("nkdev-export-{}-{tree}.index", std::process::id()));
    let _ = fs::remove_file(&index);
    let git_ix = |args: &[&str]| -> Command {
        let mut c = Command::new("git");
        c.arg("-C")
            .arg(repo)
            .args(args)
            .env("GIT_INDEX_FILE", &index);
        c
    };
    let run = |mut c: Command, what: &str| -> Result<String> {
        let o = c.output()?;
        if !o.status.success() {
            bail!("{what}: {}", String::from_utf8_lossy(&o.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let result = (|| -> Result<String> {
        run(git_ix(&["read-tree", base]), "git read-tree")?;
        let mut head = git_out(repo, &["rev-parse", base])?.trim().to_string();
        for sha in shas {
            // Author, committer and message in one call, NUL-separated.
            let meta = git_out(
                repo,
                &[
                    "log",
                    "-1",
                    "--format=%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B",
                    sha,
                ],
            )?;
            let f: Vec<&str> = meta.splitn(7, '\0').collect();
            let [an, ae, ad, cn, ce, cd, msg] = f[..] else {
                bail!("git log of {sha}: unexpected format");
            };
            let (an, ae, msg, cn, ce) = match ident {
                Some(id) => {
                    let (n, e, m) = as_posted(an, ae, msg, id);
                    (n, e, m, id.name.clone(), id.email.clone())
                }
                None => (
                    an.to_string(),
                    ae.to_string(),
                    msg.to_string(),
                    cn.to_string(),
                    ce.to_string(),
                ),
            };
            let subject = msg.lines().next().unwrap_or_default();
            let diff = Command::new("git")
                .arg("-C")
                .arg(repo)
                .args(["diff", "--binary", &format!("{sha}^"), sha])
                .output()?;
            let mut apply = git_ix(&["apply", "--cached", "-"]);
            apply
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            let mut child = apply.spawn()?;
            std::io::Write::write_all(child.stdin.as_mut().unwrap(), &diff.stdout)?;
            let o = child.wait_with_output()?;
            if !o.status.success() {
                bail!(
                    "\"{}\" (for {tree}) does not apply without the patches of other trees before it:\n{}\n\
                     Reorder the series so that it does not depend on them, or post them to one tree.",
                    subject,
                    String::from_utf8_lossy(&o.stderr).trim()
                );
            }
            let t = run(git_ix(&["write-tree"]), "git write-tree")?;
            let mut c = git_ix(&["commit-tree", &t, "-p", &head]);
            c.env("GIT_AUTHOR_NAME", &an)
                .env("GIT_AUTHOR_EMAIL", &ae)
                .env("GIT_AUTHOR_DATE", ad)
                .env("GIT_COMMITTER_NAME", &cn)
                .env("GIT_COMMITTER_EMAIL", &ce)
                .env("GIT_COMMITTER_DATE", cd)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            let mut child = c.spawn()?;
            std::io::Write::write_all(child.stdin.as_mut().unwrap(), msg.as_bytes())?;
            let o = child.wait_with_output()?;
            if !o.status.success() {
                bail!(
                    "git commit-tree: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
            }
            head = String::from_utf8_lossy(&o.stdout).trim().to_string();
        }
        Ok(head)
    })();
    let _ = fs::remove_file(&index);
    result
}

/// `cargo xtask series export`.
pub fn export(ctx: &Ctx, a: &ExportArgs) -> Result<bool> {
    // First, before the tree is prepared: without it there is nothing to post.
    let ident = Ident::from_git(&ctx.root)?;
    eprintln!("==> export: as {}", ident.line());
    let k = super::applied(ctx, &a.src)?;
    let dir = ctx.root.join("patches").join(&k.series);
    let cover = fs::read_to_string(dir.join("cover-letter")).ok();
    let Some(tree) = a.tree else {
        return export_by_tree(&k.tree, &dir, a, cover.as_deref(), &ident);
    };
    let shas: Vec<String> = git_out(
        &k.tree,
        &["rev-list", "--reverse", &format!("{BASE_BRANCH}..HEAD")],
    )?
    .lines()
    .map(str::to_string)
    .collect();
    let head = rebuild_on(&k.tree, BASE_BRANCH, &shas, tree.name(), Some(&ident))?;
    let files = export_range(
        &k.tree,
        BASE_BRANCH,
        BASE_BRANCH,
        &head,
        &a.to,
        &ExportOpts {
            tree,
            version: a.version,
        },
        cover.as_deref(),
    )?;
    if a.src.kernel_src.is_none() {
        eprintln!(
            "note: the base is Debian's tarball, committed locally; its base-commit id means nothing upstream. \
             Export with --kernel-src <bpf-next checkout> for a base-commit reviewers can use."
        );
    }
    for f in &files {
        println!("{}", f.display());
    }
    Ok(true)
}

/// One series per tree that `series` names, exported into `a.to/<tree>/`.
/// Each is rebuilt on the base alone, but for the -next trees, which take
/// in their tree's fixes (net is merged into net-next, bpf into bpf-next):
/// those are rebuilt on the base plus the fixes, which the export names
/// as prerequisites. The cover letter of a tree is `cover-letter.<tree>`,
/// or `cover-letter` for the one tree with more than one patch.
fn export_by_tree(
    repo: &Path,
    dir: &Path,
    a: &ExportArgs,
    cover: Option<&str>,
    ident: &Ident,
) -> Result<bool> {
    let series = crate::kernel::series::Series::load(dir)?;
    let shas: Vec<String> = git_out(
        repo,
        &["rev-list", "--reverse", &format!("{BASE_BRANCH}..HEAD")],
    )?
    .lines()
    .map(str::to_string)
    .collect();
    if shas.len() != series.patches.len() {
        bail!(
            "the tree has {} commits on the base, the series {} patches: apply it again",
            shas.len(),
            series.patches.len()
        );
    }
    let mut groups: Vec<(Tree, Vec<String>)> = Vec::new();
    for ((p, t), sha) in series.patches.iter().zip(&series.trees).zip(&shas) {
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        let Some(t) = t else {
            bail!(
                "{}/series: {name} names no tree: add one of {} after it, or export the whole series with --tree",
                dir.display(),
                crate::kernel::series::tree_names()
            );
        };
        let tree = Tree::from_name(t).context("tree names are checked by Series::load")?;
        match groups.iter_mut().find(|(g, _)| *g == tree) {
            Some((_, v)) => v.push(sha.clone()),
            None => groups.push((tree, vec![sha.clone()])),
        }
    }
    let multi = groups.iter().filter(|(_, v)| v.len() > 1).count();
    let fixes_of = |t: Tree| match t {
        Tree::NetNext => Some(Tree::Net),
        Tree::BpfNext => Some(Tree::Bpf),
        _ => None,
    };
    for (tree, v) in &groups {
        let own = fs::read_to_string(dir.join(format!("cover-letter.{}", tree.name()))).ok();
        let cover = own.as_deref().or(if multi == 1 { cover } else { None });
        let prereq: Vec<String> = fixes_of(*tree)
            .and_then(|f| groups.iter().find(|(g, _)| *g == f))
            .map(|(_, p)| p.clone())
            .unwrap_or_default();
        let from = if prereq.is_empty() {
            git_out(repo, &["rev-parse", BASE_BRANCH])?
                .trim()
                .to_string()
        } else {
            rebuild_on(repo, BASE_BRANCH, &prereq, tree.name(), Some(ident))?
        };
        let head = rebuild_on(repo, &from, v, tree.name(), Some(ident))?;
        let out = a.to.join(tree.name());
        let files = export_range(
            repo,
            BASE_BRANCH,
            &from,
            &head,
            &out,
            &ExportOpts {
                tree: *tree,
                version: a.version,
            },
            cover,
        )?;
        println!("{} ({} patch(es)):", tree.name(), v.len());
        for f in &files {
            println!("    {}", f.display());
        }
    }
    Ok(true)
}

/// Replaces the patches in `patches_dir` with `range` of `from`, and
/// rewrites `series` (its comment lines are kept). Returns the file names.
pub fn import_into(patches_dir: &Path, from: &Path, range: &str) -> Result<Vec<String>> {
    if !range.contains("..") {
        bail!("{range:?} is not a range: give BASE..HEAD");
    }
    if !from.join(".git").exists() && git_out(from, &["rev-parse", "--git-dir"]).is_err() {
        bail!("{} is not a git tree", from.display());
    }
    let n: usize = git_out(from, &["rev-list", "--count", range])
        .with_context(|| format!("{range} in {}", from.display()))?
        .trim()
        .parse()?;
    if n == 0 {
        bail!("{range} in {} has no commits", from.display());
    }
    let merges = git_out(from, &["rev-list", "--merges", range])?;
    if !merges.trim().is_empty() {
        bail!("{range} contains merge commits; a series must be linear");
    }
    let tmp = patches_dir.join(".import.tmp");
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp)?;
    let st = format_patch(from).arg("-o").arg(&tmp).arg(range).output()?;
    if !st.status.success() {
        let _ = fs::remove_dir_all(&tmp);
        bail!(
            "git format-patch {range}: {}",
            String::from_utf8_lossy(&st.stderr)
        );
    }
    // Only now touch patches/: nothing is half-done on failure.
    for e in fs::read_dir(patches_dir)?.flatten() {
        if e.path().extension().is_some_and(|x| x == "patch") {
            fs::remove_file(e.path())?;
        }
    }
    let mut names: Vec<String> = fs::read_dir(&tmp)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for n in &names {
        fs::rename(tmp.join(n), patches_dir.join(n))?;
    }
    fs::remove_dir_all(&tmp)?;
    let old = fs::read_to_string(patches_dir.join("series")).unwrap_or_default();
    let series = reimported_series(&old, &names);
    for n in &names {
        if series_tree(&series, n).is_none() {
            eprintln!(
                "note: {n} matches no patch of the old series by name or place, so it has \
                 no tree: add one (bpf, bpf-next, net, net-next) to {}",
                patches_dir.join("series").display()
            );
        }
    }
    fs::write(patches_dir.join("series"), series)?;
    Ok(names)
}

/// The tree a series file's line for `name` names, if any.
fn series_tree<'a>(series: &'a str, name: &str) -> Option<&'a str> {
    series
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(name)).then(|| w.next()).flatten()
        })
}

/// A patch file's name without its `NNNN-` number: what stays when a
/// patch is inserted before it.
fn unnumbered(name: &str) -> &str {
    name.trim_start_matches(|c: char| c.is_ascii_digit())
        .trim_start_matches('-')
}

/// The series file after an import: the old header comments, then the new
/// patch files, each with the tree the old line for it named. A patch
/// keeps its tree by its file name, then by its name without the number
/// (a patch was inserted or dropped before it), or, when its subject (and
/// so its name) changed, by its place in a series of the same length.
fn reimported_series(old: &str, names: &[String]) -> String {
    let mut series: String = old
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let entries: Vec<(&str, Option<&str>)> = old
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut w = l.split_whitespace();
            (w.next().unwrap_or_default(), w.next())
        })
        .collect();
    for (i, n) in names.iter().enumerate() {
        let tree = entries
            .iter()
            .find(|(f, _)| f == n)
            .or_else(|| entries.iter().find(|(f, _)| unnumbered(f) == unnumbered(n)))
            .map(|(_, t)| *t)
            .or_else(|| (entries.len() == names.len()).then(|| entries[i].1))
            .flatten();
        series.push_str(n);
        if let Some(t) = tree {
            series.push(' ');
            series.push_str(t);
        }
        series.push('\n');
    }
    series
}

/// `cargo xtask series import`.
pub fn import(ctx: &Ctx, a: &ImportArgs) -> Result<bool> {
    let dir = ctx.root.join("patches").join(&a.series);
    if !dir.join("series").is_file() {
        anyhow::bail!(
            "--series {}: {} has no series file; import into an existing series",
            a.series,
            dir.display()
        );
    }
    let names = import_into(&dir, &a.from, &a.range)?;
    println!(
        "imported {} patch(es) into patches/{}/:",
        names.len(),
        a.series
    );
    for n in names {
        println!("    {n}");
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let st = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=A U Thor", "-c", "user.email=a@example.org"])
            .args(args)
            // Fixed dates: `git am` commits then get the same ids as the
            // developer's, which format-patch puts in the Message-IDs.
            .env("GIT_AUTHOR_DATE", "2026-01-02T03:04:05Z")
            .env("GIT_COMMITTER_DATE", "2026-01-02T03:04:05Z")
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&st.stderr)
        );
    }

    fn commit_file(dir: &Path, path: &str, text: &str, msg: &str) {
        let p = dir.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, text).unwrap();
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-q", "-m", msg]);
    }

    /// The file without its dates: the Date: lines, and the send time
    /// format-patch puts in each Message-ID (`<id.SECONDS.git.email>`),
    /// which differs when the two exports straddle a second.
    fn without_dates(p: &Path) -> String {
        fs::read_to_string(p)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("Date: "))
            .map(|l| match l.split_once(".git.") {
                Some((head, tail))
                    if ["Message-ID:", "In-Reply-To:", "References:"]
                        .iter()
                        .any(|h| l.starts_with(h)) =>
                {
                    let head = head.rsplit_once('.').map_or(head, |(h, _)| h);
                    format!("{head}.T.git.{tail}")
                }
                _ => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A tree's patches are rebuilt on the base without the others', with
    /// their authors and messages; one that needs another tree's patch
    /// is refused by name.
    #[test]
    fn rebuild_on_the_base_alone() {
        let t = std::env::temp_dir().join(format!("nkdev-bytree-{}", std::process::id()));
        let _ = fs::remove_dir_all(&t);
        fs::create_dir_all(&t).unwrap();
        git(&t, &["init", "-q", "-b", "main"]);
        commit_file(&t, "a.c", "a\n", "base");
        git(&t, &["tag", "base"]);
        commit_file(&t, "a.c", "a\nfix\n", "a: fix it\n\nWhy.");
        commit_file(&t, "b.c", "b\n", "b: add\n\nWhy.");
        commit_file(&t, "b.c", "b\nmore\n", "b: more\n\nWhy.");
        commit_file(&t, "a.c", "a\nfix\nuse\n", "a: use the fix\n\nWhy.");
        let shas: Vec<String> = git_out(&t, &["rev-list", "--reverse", "base..main"])
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        let head = rebuild_on(&t, "base", &shas[1..3], "net-next", None).unwrap();
        let log = git_out(&t, &["log", "--format=%an|%s", &format!("base..{head}")]).unwrap();
        assert_eq!(log.trim(), "A U Thor|b: more\nA U Thor|b: add");
        let tree_b = git_out(&t, &["show", &format!("{head}:b.c")]).unwrap();
        assert_eq!(tree_b.trim(), "b\nmore");
        assert_eq!(
            git_out(&t, &["show", &format!("{head}:a.c")])
                .unwrap()
                .trim(),
            "a",
            "the other tree's fix is not in"
        );
        let e = rebuild_on(&t, "base", &shas[3..], "net-next", None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"a: use the fix\" (for net-next) does not apply"),
            "{e}"
        );
        fs::remove_dir_all(&t).unwrap();
    }

    /// The poster's identity replaces the placeholder's, author and
    /// sign-off; a backport keeps its author and gets the poster's
    /// Signed-off-by once; a placeholder poster is refused.
    #[test]
    fn export_signs_as_the_user() {
        let me = Ident::parse("Ada Lovelace <ada@kernel.org> 1796307499 +0000").unwrap();
        let seed = (
            "Seed c5af7c36 maintainers",
            "maintainers@users.noreply.r-seed-c5af7c36.example",
        );
        let msg = "netkit: add b\n\nWhy.\n\nFixes: 0123456789ab (\"netkit: x\")\n\
                   Signed-off-by: Seed c5af7c36 maintainers <maintainers@users.noreply.r-seed-c5af7c36.example>\n";
        let (n, e, m) = as_posted(seed.0, seed.1, msg, &me);
        assert_eq!((n.as_str(), e.as_str()), ("Ada Lovelace", "ada@kernel.org"));
        assert_eq!(
            m,
            "netkit: add b\n\nWhy.\n\nFixes: 0123456789ab (\"netkit: x\")\n\
             Signed-off-by: Ada Lovelace <ada@kernel.org>\n"
        );
        assert!(!m.contains("Seed"), "{m}");
        let bp = "udp: resume by cookie\n\n[ Upstream commit 0123456789ab ]\n\n\
                  Signed-off-by: Jordan Rife <jrife@google.com>\n";
        let (n, _, m) = as_posted("Jordan Rife", "jrife@google.com", bp, &me);
        assert_eq!(n, "Jordan Rife");
        assert!(
            m.ends_with("Signed-off-by: Jordan Rife <jrife@google.com>\nSigned-off-by: Ada Lovelace <ada@kernel.org>\n"),
            "{m}"
        );
        // Once: posting what was posted changes nothing.
        assert_eq!(as_posted("Jordan Rife", "jrife@google.com", &m, &me).2, m);
        // A message without trailers gets its own paragraph.
        let (_, _, m) = as_posted("Jordan Rife", "jrife@google.com", "x: y\n\nWhy.", &me);
        assert_eq!(
            m,
            "x: y\n\nWhy.\n\nSigned-off-by: Ada Lovelace <ada@kernel.org>\n"
        );
        for bad in [
            "Seed c5af7c36 maintainers <maintainers@users.noreply.r-seed-c5af7c36.example> 1 +0000",
            "root <root@localhost> 1 +0000",
            "A U Thor <a@example.org> 1 +0000",
        ] {
            let e = Ident::parse(bad).unwrap_err().to_string();
            assert!(e.contains("is not a person's identity"), "{bad}: {e}");
            assert!(e.contains("git config user.name"), "{bad}: {e}");
        }
    }

    #[test]
    fn cover_letter_changelog_up_to_the_version() {
        let body = "Body.\n\nChanges in v3:\n- c\n\nChanges in v2:\n- b\n";
        assert_eq!(cover_body(body, 2), "Body.\n\nChanges in v2:\n- b");
        assert!(cover_body(body, 3).contains("- c"));
        assert_eq!(split_cover("net: subject\n\nBody\n").0, "net: subject");
    }

    /// A re-import keeps the tree each patch is posted to: by name, by
    /// name without the number when a patch was inserted before it, or by
    /// place when a subject changed; a series of another length keeps
    /// only what matches by name.
    #[test]
    fn reimport_keeps_each_patch_s_tree() {
        let old = "# header\n0001-a.patch bpf\n0002-b.patch net-next\n\n0003-c.patch\n";
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            reimported_series(
                old,
                &names(&["0001-a.patch", "0002-b-renamed.patch", "0003-c.patch"])
            ),
            "# header\n0001-a.patch bpf\n0002-b-renamed.patch net-next\n0003-c.patch\n"
        );
        assert_eq!(
            reimported_series(old, &names(&["0001-a.patch", "0002-new.patch"])),
            "# header\n0001-a.patch bpf\n0002-new.patch\n"
        );
        // A patch split in two: those after it are renumbered.
        let split = reimported_series(
            old,
            &names(&[
                "0001-a.patch",
                "0002-b-first-half.patch",
                "0003-b.patch",
                "0004-c.patch",
            ]),
        );
        assert_eq!(
            split,
            "# header\n0001-a.patch bpf\n0002-b-first-half.patch\n0003-b.patch net-next\n0004-c.patch\n"
        );
        assert_eq!(series_tree(&split, "0003-b.patch"), Some("net-next"));
        assert_eq!(series_tree(&split, "0002-b-first-half.patch"), None);
    }

    /// import, then apply and export, gives what format-patch gives from
    /// the developer's tree directly: byte for byte but for the dates.
    #[test]
    fn import_then_export_round_trips() {
        let t = std::env::temp_dir().join(format!("nkdev-roundtrip-{}", std::process::id()));
        let _ = fs::remove_dir_all(&t);
        let dev = t.join("dev");
        fs::create_dir_all(&dev).unwrap();
        git(&dev, &["init", "-q", "-b", "main"]);
        commit_file(&dev, "drivers/net/netkit.c", "int a;\n", "base");
        git(&dev, &["tag", "base"]);
        commit_file(
            &dev,
            "drivers/net/netkit.c",
            "int a;\nint b;\n",
            "netkit: add b\n\nBecause [reasons], with \"quotes\" and trailing spaces  \n\nSigned-off-by: A U Thor <a@example.org>",
        );
        commit_file(
            &dev,
            "Documentation/networking/netkit.rst",
            "netkit\n======\n",
            "netkit: document it\n\nDocs.\n\nSigned-off-by: A U Thor <a@example.org>",
        );
        let patches = t.join("patches");
        fs::create_dir_all(&patches).unwrap();
        fs::write(patches.join("series"), "# comment kept\nold.patch\n").unwrap();
        fs::write(patches.join("old.patch"), "stale").unwrap();
        let names = import_into(&patches, &dev, "base..main").unwrap();
        assert_eq!(names.len(), 2);
        assert!(!patches.join("old.patch").exists());
        let series = fs::read_to_string(patches.join("series")).unwrap();
        assert!(series.starts_with("# comment kept\n0001-netkit-add-b.patch\n"));

        // Apply onto the base the way `cargo xtask kernel` does, then export.
        let applied = t.join("applied");
        let st = Command::new("git")
            .args(["clone", "-q", "--branch", "base"])
            .arg(&dev)
            .arg(&applied)
            .output()
            .unwrap();
        assert!(st.status.success());
        git(&applied, &["checkout", "-q", "-b", "work"]);
        for n in &names {
            git(
                &applied,
                &["am", "-q", "--keep-cr", patches.join(n).to_str().unwrap()],
            );
        }
        let o = ExportOpts {
            tree: Tree::BpfNext,
            version: 2,
        };
        let cover = "netkit: things\n\nWhy.\n\nChanges in v2:\n- more\n";
        let a = export_range(
            &applied,
            "base",
            "base",
            "HEAD",
            &t.join("a"),
            &o,
            Some(cover),
        )
        .unwrap();
        let b = export_range(&dev, "base", "base", "main", &t.join("b"), &o, Some(cover)).unwrap();
        assert_eq!(a.len(), 3);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.file_name(), y.file_name());
            assert_eq!(without_dates(x), without_dates(y), "{}", x.display());
        }
        let cover_text = fs::read_to_string(&a[0]).unwrap();
        assert!(cover_text.contains("Subject: [PATCH bpf-next v2 0/2] netkit: things"));
        assert!(cover_text.contains("Changes in v2:\n- more"));
        assert!(cover_text.contains("base-commit: "));
        let p1 = fs::read_to_string(&a[1]).unwrap();
        assert!(p1.contains("Subject: [PATCH bpf-next v2 1/2] netkit: add b"));
        // Export refuses a non-empty directory; import refuses a non-range.
        assert!(export_range(&dev, "base", "base", "main", &t.join("b"), &o, Some(cover)).is_err());
        assert!(import_into(&patches, &dev, "main").is_err());
        fs::remove_dir_all(&t).unwrap();
    }
}
