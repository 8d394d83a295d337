//! The kernel's own BPF selftests (`tools/testing/selftests/bpf`), built as
//! a reduced `test_progs` that holds only the `prog_tests/` listed in
//! `selftests/upstream/bpf.list` and the `progs/` their skeletons need.
//!
//! The reduction is a staging directory next to the real one
//! (`tools/testing/selftests/nkdev-bpf`, ignored by git) with symlinks to
//! every file of `bpf/` except `prog_tests/*.c` and `progs/*.c`, of which
//! only the chosen ones are linked. The upstream Makefile then builds
//! unchanged; the skeleton lists that need newer clang or kernel modules
//! are emptied on its command line.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::kernel::Kernel;
use crate::progress::{log_path, run_logged, Stage};
use crate::Ctx;

/// A chosen upstream test and the extra progs it needs beyond its skeletons.
#[derive(Debug, PartialEq, Eq)]
pub struct UpstreamTest {
    pub name: String,
    pub extra_progs: Vec<String>,
}

/// Parses `bpf.list`: `name` or `name: extra.c other.c`, `#` comments.
pub fn parse_list(text: &str) -> Result<Vec<UpstreamTest>> {
    let mut v = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (name, extra) = line.split_once(':').unwrap_or((line, ""));
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("bpf.list:{}: bad test name {name:?}", n + 1);
        }
        v.push(UpstreamTest {
            name: name.to_string(),
            extra_progs: extra.split_whitespace().map(String::from).collect(),
        });
    }
    Ok(v)
}

/// The `progs/*.c` a prog_tests file needs, from its `#include "X.skel.h"`.
pub fn skeleton_progs(src: &str) -> Vec<String> {
    src.lines()
        .filter_map(|l| {
            let l = l.trim();
            let inc = l.strip_prefix("#include \"")?.strip_suffix('"')?;
            let stem = inc.strip_suffix(".skel.h")?;
            Some(format!("{stem}.c"))
        })
        .collect()
}

/// The built runner.
pub struct TestProgs {
    /// Directory holding `test_progs` and its `.bpf.o` files (the cwd).
    pub dir: PathBuf,
    pub tests: Vec<String>,
    /// Listed tests this tree does not have (on the base, the ones the
    /// series adds): reported as skipped, with that reason.
    pub missing: Vec<String>,
}

pub fn build(ctx: &Ctx, k: &Kernel) -> Result<Option<TestProgs>> {
    let list_path = ctx.root.join("selftests/upstream/bpf.list");
    let tests = parse_list(
        &fs::read_to_string(&list_path)
            .with_context(|| format!("reading {}", list_path.display()))?,
    )?;
    if tests.is_empty() {
        return Ok(None);
    }
    let real = k.tree.join("tools/testing/selftests/bpf");
    let staging = k.tree.join("tools/testing/selftests/nkdev-bpf");
    let (tests, missing): (Vec<_>, Vec<_>) = tests.into_iter().partition(|t| {
        real.join("prog_tests")
            .join(format!("{}.c", t.name))
            .exists()
    });
    let missing: Vec<String> = missing.into_iter().map(|t| t.name).collect();
    if tests.is_empty() {
        return Ok(Some(TestProgs {
            dir: k.build.join("selftests/bpf"),
            tests: Vec::new(),
            missing,
        }));
    }
    let mut progs = BTreeSet::new();
    for t in &tests {
        let p = real.join("prog_tests").join(format!("{}.c", t.name));
        let src = fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        progs.extend(skeleton_progs(&src));
        progs.extend(t.extra_progs.iter().cloned());
    }
    for p in &progs {
        if !real.join("progs").join(p).exists() {
            bail!("progs/{p} (needed by the tests in bpf.list) is not in this tree");
        }
    }
    exclude_from_git(&k.tree, "tools/testing/selftests/nkdev-bpf/")?;
    stage_dir(&real, &staging, &tests, &progs)?;
    let out = k.build.join("selftests/bpf");
    fs::create_dir_all(&out)?;
    // The Makefile reads uapi headers from $(OUTPUT)/../usr/include.
    let usr = k.build.join("selftests/usr");
    if !usr.exists() {
        symlink(k.build.join("usr"), &usr)?;
    }
    // The kernel's build stamp covers the tree's commit and local changes
    // (so prog_tests/ and progs/ too); with the list it decides whether
    // test_progs can be out of date.
    let stamp_file = out.join(".nkdev-stamp");
    let stamp = format!(
        "{}\n{}\nllvm {}",
        fs::read_to_string(k.build.join(".nkdev-build-stamp")).unwrap_or_default(),
        fs::read_to_string(&list_path).unwrap_or_default(),
        crate::bpf::LLVM_VERSION
    );
    let names: Vec<String> = tests.iter().map(|t| t.name.clone()).collect();
    if out.join("test_progs").exists()
        && staging.join("prog_tests/tests.h").exists()
        && fs::read_to_string(&stamp_file).ok().as_deref() == Some(stamp.as_str())
    {
        eprintln!("==> upstream: test_progs is up to date ({})", out.display());
        return Ok(Some(TestProgs {
            dir: out,
            tests: names,
            missing,
        }));
    }
    // make does not know that another compiler makes other objects.
    let built_with = |text: &str| text.lines().last().map(str::to_string);
    let old = fs::read_to_string(&stamp_file).unwrap_or_default();
    if !old.is_empty() && built_with(&old) != built_with(&stamp) {
        let _ = fs::remove_dir_all(&out);
        fs::create_dir_all(&out)?;
    }
    let _ = fs::remove_file(&stamp_file);
    let log = log_path(&ctx.target, &format!("upstream-test_progs-{}", k.id));
    let stage = Stage::new(format!(
        "upstream: building reduced test_progs ({} tests, {} progs); log: {}",
        tests.len(),
        progs.len(),
        log.display()
    ));
    let mut c = Command::new("make");
    c.arg("-C")
        .arg(&staging)
        .arg(format!(
            "-j{}",
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        ))
        .arg(format!("OUTPUT={}", out.display()))
        .arg(format!("O={}", k.build.display()))
        .arg(format!("VMLINUX_BTF={}", k.vmlinux.display()))
        .arg(format!("CLANG={}", crate::bpf::llvm("clang")))
        .arg(format!("LLC={}", crate::bpf::llvm("llc")))
        .arg(format!("LLVM_STRIP={}", crate::bpf::llvm("llvm-strip")))
        .arg(format!("LLVM_OBJCOPY={}", crate::bpf::llvm("llvm-objcopy")))
        .args([
            "LSKELS=",
            "LSKELS_EXTRA=",
            // 7.x: light skeletons signed at build time (fentry_test, ...),
            // and libarena, which only the libarena tests use and whose
            // arena spin lock needs a newer LLVM than bookworm's 19.
            "LSKELS_SIGNED=",
            "LIBARENA_SKEL=",
            "LIBARENA_ASAN_SKEL=",
            "LINKED_SKELS=",
            "TRUNNER_EXTRA_FILES=",
        ])
        .arg(out.join("test_progs"));
    run_logged("make test_progs", &mut c, &log)?;
    fs::write(&stamp_file, stamp)?;
    stage.done("built");
    Ok(Some(TestProgs {
        dir: out,
        tests: names,
        missing,
    }))
}

fn exclude_from_git(tree: &Path, pattern: &str) -> Result<()> {
    let common = crate::kernel::base::git_out(tree, &["rev-parse", "--git-common-dir"])?;
    let common = if Path::new(&common).is_absolute() {
        PathBuf::from(common)
    } else {
        tree.join(common)
    };
    let ex = common.join("info/exclude");
    let text = fs::read_to_string(&ex).unwrap_or_default();
    if !text.lines().any(|l| l == pattern) {
        fs::create_dir_all(ex.parent().unwrap())?;
        fs::write(&ex, format!("{text}{pattern}\n"))?;
    }
    Ok(())
}

/// (Re)creates the staging directory; symlinks only change when the list does,
/// so make's incremental build stays incremental.
fn stage_dir(
    real: &Path,
    staging: &Path,
    tests: &[UpstreamTest],
    progs: &BTreeSet<String>,
) -> Result<()> {
    fs::create_dir_all(staging.join("prog_tests"))?;
    fs::create_dir_all(staging.join("progs"))?;
    let mut want: Vec<(PathBuf, PathBuf)> = Vec::new();
    for e in fs::read_dir(real)?.flatten() {
        let n = e.file_name();
        if n == "prog_tests" || n == "progs" {
            continue;
        }
        want.push((e.path(), staging.join(&n)));
    }
    for sub in ["prog_tests", "progs"] {
        for e in fs::read_dir(real.join(sub))?.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            let keep = if !n.ends_with(".c") {
                n != "tests.h"
            } else if sub == "prog_tests" {
                tests.iter().any(|t| format!("{}.c", t.name) == n)
            } else {
                progs.contains(&n)
            };
            if keep {
                want.push((e.path(), staging.join(sub).join(&n)));
            }
        }
    }
    let wanted: BTreeSet<PathBuf> = want.iter().map(|(_, l)| l.clone()).collect();
    let tests_dir = staging.join("prog_tests");
    let mut tests_changed = false;
    for sub in ["", "prog_tests", "progs"] {
        for e in fs::read_dir(staging.join(sub))?.flatten() {
            let p = e.path();
            let is_link = e.file_type().map(|t| t.is_symlink()).unwrap_or(false);
            if is_link && !wanted.contains(&p) {
                fs::remove_file(&p)?;
                tests_changed |= p.parent() == Some(tests_dir.as_path());
            }
        }
    }
    for (target, link) in want {
        if fs::read_link(&link).ok().as_deref() != Some(target.as_path()) {
            let _ = fs::remove_file(&link);
            symlink(&target, &link)?;
            tests_changed |= link.parent() == Some(tests_dir.as_path());
        }
    }
    // The Makefile regenerates prog_tests/tests.h only when a test file is
    // newer than it; a linked-in test of the tarball is older, so it would
    // never be registered. Drop the header whenever the set changes.
    if tests_changed {
        let _ = fs::remove_file(tests_dir.join("tests.h"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_and_skeletons() {
        let l = parse_list("# c\ntc_netkit\n\ntc_links: extra.c  # why\n").unwrap();
        assert_eq!(
            l[0],
            UpstreamTest {
                name: "tc_netkit".into(),
                extra_progs: vec![]
            }
        );
        assert_eq!(l[1].extra_progs, ["extra.c"]);
        assert!(parse_list("bad-name\n").is_err());
        let s =
            "#include <test_progs.h>\n#include \"test_tc_link.skel.h\"\n#include \"x.lskel.h\"\n";
        assert_eq!(skeleton_progs(s), ["test_tc_link.c"]);
    }
}
