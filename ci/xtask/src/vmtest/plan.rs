//! The test plan of a `vmtest` run: nk-selftests' cases, the reduced
//! upstream test_progs, and entries for listed upstream tests the tree
//! lacks.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nk_init::plan::{Entry, Format};

use super::{Prepared, VmtestArgs};
use crate::{upstream, Ctx};

/// Matches a test name against a filter: `*` globs, otherwise substring.
pub fn matches(name: &str, pat: &str) -> bool {
    if !pat.contains('*') {
        return name.contains(pat);
    }
    let parts: Vec<&str> = pat.split('*').collect();
    let mut rest = name;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(p) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            let Some(at) = rest.find(p) else { return false };
            rest = &rest[at + p.len()..];
        }
    }
    true
}

fn selected(args: &VmtestArgs, name: &str) -> bool {
    args.filter.is_empty() || args.filter.iter().any(|p| matches(name, p))
}

/// `nk-selftests --list`: one `name<TAB>timeout` per line (run on the host,
/// unprivileged).
fn selftest_cases(bin: &Path) -> Result<Vec<(String, Option<u64>)>> {
    let out = Command::new(bin)
        .arg("--list")
        .output()
        .with_context(|| format!("running {} --list", bin.display()))?;
    if !out.status.success() {
        bail!(
            "{} --list failed: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (n, t) = l.split_once('\t').unwrap_or((l, ""));
            (n.to_string(), t.parse().ok())
        })
        .collect())
}

/// The suites of `selftests/upstream/kunit.list`.
fn kunit_suites(text: &str) -> Result<Vec<String>> {
    let mut v = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if !line.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("kunit.list:{}: bad suite name {line:?}", n + 1);
        }
        v.push(line.to_string());
    }
    Ok(v)
}

/// A built-in KUnit suite ran at boot; the test prints the KTAP it left
/// in debugfs. A kernel without the suite is a skip that says so.
fn kunit_entry(name: String, suite: &str) -> Entry {
    let results = format!("/sys/kernel/debug/kunit/{suite}/results");
    Entry {
        name,
        timeout: Duration::from_secs(30),
        format: Format::Ktap,
        cwd: PathBuf::from("/"),
        argv: vec![
            "/bin/sh".into(),
            "-c".into(),
            format!(
                "if [ -r {results} ]; then cat {results}; \
                 else echo 'KTAP version 1'; \
                 echo '1..0 # SKIP KUnit suite {suite} is not in this kernel (no {results})'; fi"
            ),
        ],
    }
}

/// The selftests and upstream tests `args` selects.
pub fn tests(ctx: &Ctx, args: &VmtestArgs, p: &Prepared, slow: u64) -> Result<Vec<Entry>> {
    let Prepared { k, bins, bpf_dir } = p;
    let mut plan = Vec::new();
    for (case, t) in selftest_cases(&bins.selftests)? {
        let name = format!("nk.{case}");
        if selected(args, &name) {
            plan.push(Entry {
                name,
                timeout: Duration::from_secs(t.unwrap_or(args.test_timeout) * slow),
                format: Format::Ktap,
                cwd: "/tmp".into(),
                argv: vec![
                    bins.selftests.display().to_string(),
                    "--bpf-dir".into(),
                    bpf_dir.display().to_string(),
                    "--nkctl".into(),
                    bins.nkctl.display().to_string(),
                    "--run".into(),
                    case,
                ],
            });
        }
    }
    for suite in kunit_suites(&fs::read_to_string(
        ctx.root.join("selftests/upstream/kunit.list"),
    )?)? {
        let name = format!("kunit.{suite}");
        if selected(args, &name) {
            plan.push(kunit_entry(name, &suite));
        }
    }
    let list = upstream::parse_list(&fs::read_to_string(
        ctx.root.join("selftests/upstream/bpf.list"),
    )?)?;
    if !list
        .iter()
        .any(|t| selected(args, &format!("upstream.bpf.{}", t.name)))
    {
        return Ok(plan);
    }
    let Some(tp) = upstream::build(ctx, k)? else {
        return Ok(plan);
    };
    for t in tp
        .tests
        .iter()
        .filter(|t| selected(args, &format!("upstream.bpf.{t}")))
    {
        plan.push(Entry {
            name: format!("upstream.bpf.{t}"),
            timeout: Duration::from_secs(args.test_timeout.max(300) * slow),
            format: Format::TestProgs,
            cwd: tp.dir.clone(),
            argv: vec![
                tp.dir.join("test_progs").display().to_string(),
                "-t".into(),
                t.clone(),
            ],
        });
    }
    // Not built, not run: a skip with that reason, which fails the run
    // unless selftests/expected-skips lists it (the base lacks the tests
    // the series adds).
    for t in tp
        .missing
        .iter()
        .filter(|t| selected(args, &format!("upstream.bpf.{t}")))
    {
        plan.push(Entry {
            name: format!("upstream.bpf.{t}"),
            timeout: Duration::from_secs(30),
            format: Format::Raw,
            cwd: PathBuf::from("/"),
            argv: vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("echo 'SKIP: prog_tests/{t}.c is not in this kernel tree'; exit 4"),
            ],
        });
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::{kunit_entry, kunit_suites, matches};

    #[test]
    fn filters() {
        assert!(matches("nk.netkit_l2", "netkit"));
        assert!(matches("nk.netkit_l2", "nk.*l2"));
        assert!(matches("upstream.bpf.tc_netkit", "upstream.*"));
        assert!(!matches("nk.tcx_order", "nk.*l2"));
        assert!(matches("abc", "*"));
        assert!(!matches("abc", "b*"));
    }

    #[test]
    fn kunit_list_and_entries() {
        let suites = kunit_suites("# c\nbpf_kfunc_flags\n\n  other # x\n").unwrap();
        assert_eq!(suites, ["bpf_kfunc_flags", "other"]);
        let err = kunit_suites("ok\nbad/name\n").unwrap_err().to_string();
        assert!(err.contains("kunit.list:2"), "{err}");
        let e = kunit_entry("kunit.s".into(), "s");
        let script = &e.argv[2];
        assert!(
            script.contains("cat /sys/kernel/debug/kunit/s/results"),
            "{script}"
        );
        assert!(script.contains("1..0 # SKIP KUnit suite s is not in this kernel"));
        assert!(
            !script.contains('\t') && !script.contains('\n'),
            "one plan line"
        );
    }
}
