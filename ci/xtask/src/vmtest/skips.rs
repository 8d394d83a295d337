//! Expected skips (`selftests/expected-skips`): a skip that is not listed
//! for the run's base, profile and kernel fails the run, top level or
//! subtest, as libbpf/ci's allow/deny lists and NIPA's expectations do.
//! A test that skips because the kernel lost a feature of the series then
//! fails instead of passing quietly.
//!
//! ```text
//! # base  profile  kernel   test                            reason
//! 6.12    *        base     upstream.bpf.netns_sock_iter    the series adds it
//! ```
//!
//! `base` is the kernel's `major.minor` or `*`; `profile` a profile name
//! or `*`; `kernel` is `patched`, `base` (`--base-only`) or `*`; `test` a
//! name (`*` globs), where `a/b` names subtest `b` of test `a`. The reason
//! is required: it is what a reader of the list needs.

use anyhow::{bail, Result};
use ktap::{Outcome, TestResult};

use crate::vm::VmReport;

/// Which run a list is applied to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunKey {
    /// `major.minor` of the kernel release.
    pub base: String,
    pub profile: String,
    /// `patched` or `base`.
    pub kernel: &'static str,
}

impl RunKey {
    pub fn new(release: &str, profile: &str, base_only: bool) -> RunKey {
        let base = release.split('.').take(2).collect::<Vec<_>>().join(".");
        RunKey {
            base,
            profile: profile.to_string(),
            kernel: if base_only { "base" } else { "patched" },
        }
    }
}

impl std::fmt::Display for RunKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "base {}, profile {}, {} kernel",
            self.base, self.profile, self.kernel
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub base: String,
    pub profile: String,
    pub kernel: String,
    pub test: String,
    pub reason: String,
    /// Line in the file, for messages.
    pub line: usize,
}

impl Expected {
    fn applies(&self, k: &RunKey) -> bool {
        (self.base == "*" || self.base == k.base)
            && (self.profile == "*" || self.profile == k.profile)
            && (self.kernel == "*" || self.kernel == k.kernel)
    }
}

/// Parses the list; errors name the line.
pub fn parse(text: &str) -> Result<Vec<Expected>> {
    let mut v = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let mut f = l.split_whitespace();
        let (Some(base), Some(profile), Some(kernel), Some(test)) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            bail!(
                "expected-skips:{}: want `base profile kernel test reason`",
                i + 1
            );
        };
        let reason = f.collect::<Vec<_>>().join(" ");
        if reason.is_empty() {
            bail!("expected-skips:{}: {test} has no reason", i + 1);
        }
        if !["patched", "base", "*"].contains(&kernel) {
            bail!(
                "expected-skips:{}: kernel {kernel:?} is not patched, base or *",
                i + 1
            );
        }
        v.push(Expected {
            base: base.into(),
            profile: profile.into(),
            kernel: kernel.into(),
            test: test.into(),
            reason,
            line: i + 1,
        });
    }
    Ok(v)
}

/// What applying the list found.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Unexpected skips, `test[/subtest]: reason`.
    pub unexpected: Vec<String>,
    /// Entries for this run that matched no skip (the test now runs:
    /// the entry is stale).
    pub unused: Vec<String>,
}

/// Turns every unexpected skip into a failure of its top-level test, with
/// a diagnostic that says why. Tests that were never run because the VM
/// died are failures too: a skip is never a pass.
pub fn apply(report: &mut VmReport, list: &[Expected], key: &RunKey) -> Verdict {
    let list: Vec<&Expected> = list.iter().filter(|e| e.applies(key)).collect();
    let mut used = vec![false; list.len()];
    let mut v = Verdict::default();
    let mut expected = |name: &str| -> bool {
        let mut any = false;
        for (i, e) in list.iter().enumerate() {
            if glob(name, &e.test) {
                used[i] = true;
                any = true;
            }
        }
        any
    };
    for t in &mut report.tests {
        let mut bad = Vec::new();
        if let Outcome::Skip(why) = &t.outcome {
            if !expected(&t.name) {
                bad.push(format!("{}: {why}", t.name));
            }
        }
        let mut skipped = Vec::new();
        skipped_leaves(&t.subtests, &t.name, &mut skipped);
        for (name, why) in skipped {
            if !expected(&name) {
                bad.push(format!("{name}: {why}"));
            }
        }
        if bad.is_empty() {
            continue;
        }
        for b in &bad {
            t.diagnostics.push(format!(
                "unexpected skip ({key}; not in selftests/expected-skips): {b}"
            ));
        }
        if !matches!(t.outcome, Outcome::Timeout(_)) {
            t.outcome = Outcome::Fail;
        }
        v.unexpected.extend(bad);
    }
    // An entry is stale when its test ran and did not skip; a run that
    // did not include the test at all (a --filter, a benchmark) says
    // nothing about it.
    let ran = |pat: &str| {
        let top = pat.split('/').next().unwrap_or(pat);
        report.tests.iter().any(|t| glob(&t.name, top))
    };
    for (e, u) in list.iter().zip(used) {
        if !u && ran(&e.test) {
            v.unused.push(format!(
                "expected-skips:{}: {} did not skip ({key})",
                e.line, e.test
            ));
        }
    }
    v
}

/// `pat` matches all of `name`: exactly, or with `*` as a wildcard.
fn glob(name: &str, pat: &str) -> bool {
    if pat.contains('*') {
        super::plan::matches(name, pat) && pat.contains('/') == name.contains('/')
    } else {
        name == pat
    }
}

fn skipped_leaves(rs: &[TestResult], path: &str, out: &mut Vec<(String, String)>) {
    for r in rs {
        let name = format!("{path}/{}", r.name);
        if r.subtests.is_empty() {
            if let Outcome::Skip(why) = &r.outcome {
                out.push((name, why.clone()));
            }
        } else {
            skipped_leaves(&r.subtests, &name, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::report::TestReport;

    fn report(tests: Vec<TestReport>) -> VmReport {
        VmReport {
            tests,
            aborted: None,
            boot_splats: vec![],
            wall_seconds: 0.0,
            boot_seconds: Some(1.0),
            first_test_seconds: None,
            guest_uptime_at_init: None,
            guest_cpus: None,
        }
    }

    fn test(name: &str, outcome: Outcome, subtests: Vec<TestResult>) -> TestReport {
        TestReport {
            name: name.into(),
            outcome,
            seconds: None,
            splats: vec![],
            diagnostics: vec![],
            subtest_plan: Some(subtests.len() as u32),
            subtests,
        }
    }

    fn sub(n: u32, name: &str, outcome: Outcome) -> TestResult {
        TestResult {
            number: n,
            name: name.into(),
            outcome,
            diagnostics: vec![],
            subtests: vec![],
            subtest_plan: None,
        }
    }

    const LIST: &str = "# comment\n6.12 * base upstream.bpf.netns_sock_iter not in the base\n* vm patched nk.tools/bpftool_* needs bpftool 7.5\n";

    #[test]
    fn listed_skips_stay_skips_and_others_fail() {
        let list = parse(LIST).unwrap();
        let skip = || Outcome::Skip("x".into());
        let mut r = report(vec![
            test("upstream.bpf.netns_sock_iter", skip(), vec![]),
            test("nk.netkit_runtime", skip(), vec![]),
        ]);
        let v = apply(&mut r, &list, &RunKey::new("6.12.117", "vm", true));
        assert_eq!(r.tests[0].outcome, skip());
        assert_eq!(r.tests[1].outcome, Outcome::Fail);
        assert_eq!(v.unexpected, ["nk.netkit_runtime: x"]);
        // The same skip on the patched kernel is a regression of the series.
        let mut r = report(vec![test("upstream.bpf.netns_sock_iter", skip(), vec![])]);
        let v = apply(&mut r, &list, &RunKey::new("6.12.117", "vm", false));
        assert_eq!(r.tests[0].outcome, Outcome::Fail);
        assert_eq!(v.unexpected.len(), 1);
        assert!(r.tests[0].diagnostics[0].contains("patched kernel"));
    }

    #[test]
    fn a_skipped_subtest_fails_a_passing_test() {
        let list = parse(LIST).unwrap();
        let mut r = report(vec![
            test(
                "nk.tools",
                Outcome::Pass,
                vec![
                    sub(1, "bpftool_net", Outcome::Skip("old bpftool".into())),
                    sub(2, "ip", Outcome::Pass),
                ],
            ),
            test(
                "nk.netkit",
                Outcome::Pass,
                vec![
                    sub(1, "l2", Outcome::Pass),
                    sub(2, "l3", Outcome::Skip("no l3".into())),
                ],
            ),
        ]);
        let v = apply(&mut r, &list, &RunKey::new("7.3.4", "vm", false));
        assert_eq!(r.tests[0].outcome, Outcome::Pass);
        assert_eq!(r.tests[1].outcome, Outcome::Fail);
        assert_eq!(v.unexpected, ["nk.netkit/l3: no l3"]);
        // The 6.12-only entry does not apply to 7.3, so it is not stale.
        assert!(v.unused.is_empty());
    }

    #[test]
    fn stale_entries_are_reported() {
        let list = parse(LIST).unwrap();
        let mut r = report(vec![test(
            "upstream.bpf.netns_sock_iter",
            Outcome::Pass,
            vec![],
        )]);
        let v = apply(&mut r, &list, &RunKey::new("6.12.117", "vm", true));
        assert_eq!(v.unused.len(), 1);
        assert!(v.unused[0].starts_with("expected-skips:2:"));
    }

    #[test]
    fn entries_of_tests_that_did_not_run_are_not_stale() {
        let list = parse(LIST).unwrap();
        let mut r = report(vec![test("bench.tcx_attach", Outcome::Pass, vec![])]);
        let v = apply(&mut r, &list, &RunKey::new("6.12.117", "vm", true));
        assert!(v.unused.is_empty(), "{:?}", v.unused);
    }

    #[test]
    fn bad_lines_are_named() {
        assert!(parse("6.12 vm base x\n")
            .unwrap_err()
            .to_string()
            .contains(":1: x has no reason"));
        assert!(parse("6.12 vm maybe x why\n")
            .unwrap_err()
            .to_string()
            .contains("not patched, base or *"));
    }

    #[test]
    fn the_checked_in_list_parses() {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../selftests/expected-skips"),
        )
        .unwrap();
        parse(&text).unwrap();
    }
}
