//! The output of the kernel's `test_progs`, read line by line: its
//! top-level results become KTAP subtests, its subtests (`#5/3 a/b:SKIP`)
//! subtests of those, and its closing `Summary:` line is the plan they are
//! checked against. A skipped subtest is therefore seen, and checked
//! against selftests/expected-skips, like any other skip.
//!
//! After a failure test_progs prints `All error logs:` and then the log
//! of every failed test again, result line included; those repeats are
//! not new results (counting them made an 11-test run report 12).

use ktap::Outcome;

/// A test_progs result line: `#12      name:OK` -> (12, name, outcome).
/// Subtest lines (`#12/3 ...`) are not top-level results and give None.
pub fn result_line(line: &str) -> Option<(u32, String, Outcome)> {
    let rest = line.strip_prefix('#')?;
    let (num, rest) = rest.split_once(char::is_whitespace)?;
    let n: u32 = num.parse().ok()?;
    // `name:OK (SKIP: 1/31)`: the count of skipped subtests, which are
    // results of their own.
    let rest = rest.trim();
    let rest = match rest.rsplit_once(" (SKIP: ") {
        Some((r, tail)) if tail.ends_with(')') => r,
        _ => rest,
    };
    let (name, verdict) = rest.rsplit_once(':')?;
    let outcome = match verdict.trim() {
        "OK" => Outcome::Pass,
        "FAIL" => Outcome::Fail,
        "SKIP" => Outcome::Skip("skipped by test_progs".into()),
        _ => return None,
    };
    Some((n, name.trim().to_string(), outcome))
}

/// A test_progs subtest line: `#12/3    name/sub:SKIP` -> (12, 3, sub,
/// outcome). Top-level lines give None.
pub fn subtest_line(line: &str) -> Option<(u32, u32, String, Outcome)> {
    let rest = line.strip_prefix('#')?;
    let (num, rest) = rest.split_once(char::is_whitespace)?;
    let (n, m) = num.split_once('/')?;
    let (n, m): (u32, u32) = (n.parse().ok()?, m.parse().ok()?);
    let (name, verdict) = rest.trim().rsplit_once(':')?;
    let outcome = match verdict.trim() {
        "OK" => Outcome::Pass,
        "FAIL" => Outcome::Fail,
        "SKIP" => Outcome::Skip("skipped by test_progs".into()),
        _ => return None,
    };
    let sub = name.trim().split_once('/').map_or(name.trim(), |(_, s)| s);
    Some((n, m, sub.to_string(), outcome))
}

/// What a test printed as the reason of a skip: `func:SKIP:reason`.
fn skip_reason(line: &str) -> Option<&str> {
    let (_, why) = line.split_once(":SKIP:")?;
    let why = why.trim();
    (!why.is_empty()).then_some(why)
}

/// `Summary: 5/12 PASSED, 1 SKIPPED, 0 FAILED` -> (5, 12, 1, 0): tests
/// passed, subtests passed, skips (tests and subtests), tests failed.
/// 7.x prints failures as tests/subtests too (`1/0 FAILED`).
pub fn summary_line(line: &str) -> Option<(u32, u32, u32, u32)> {
    let rest = line.trim().strip_prefix("Summary: ")?;
    let (mut passed, mut sub_passed, mut skipped, mut failed) = (None, None, None, None);
    for part in rest.split(", ") {
        let (count, word) = part.trim().split_once(' ')?;
        let (n, sub) = match count.split_once('/') {
            Some((n, sub)) => (n.parse().ok()?, Some(sub.parse::<u32>().ok()?)),
            None => (count.parse().ok()?, None),
        };
        match word {
            "PASSED" => {
                passed = Some(n);
                sub_passed = sub;
            }
            "SKIPPED" => skipped = Some(n),
            "FAILED" => failed = Some(n),
            _ => return None,
        }
    }
    Some((passed?, sub_passed?, skipped?, failed?))
}

/// A new result read from a line.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// A top-level test: number, name, outcome.
    Test(u32, String, Outcome),
    /// A subtest of the test that follows: its number, name and outcome.
    Subtest(u32, String, Outcome),
}

/// What has been read of one test_progs run.
#[derive(Debug, Default)]
pub struct Reader {
    in_error_logs: bool,
    results: Vec<(u32, String, Outcome)>,
    subtests: Vec<(u32, u32, Outcome)>,
    skip_reason: Option<String>,
    summary: Option<(u32, u32, u32, u32)>,
}

impl Reader {
    /// Reads one line; returns it as a new result if it is one.
    pub fn line(&mut self, line: &str) -> Option<Item> {
        if line.trim() == "All error logs:" {
            self.in_error_logs = true;
            return None;
        }
        if let Some(s) = summary_line(line) {
            self.summary = Some(s);
            return None;
        }
        if self.in_error_logs {
            return None;
        }
        if let Some((n, m, name, mut outcome)) = subtest_line(line) {
            if self.subtests.iter().any(|(a, b, _)| (*a, *b) == (n, m)) {
                return None;
            }
            self.give_reason(&mut outcome);
            self.subtests.push((n, m, outcome.clone()));
            return Some(Item::Subtest(m, name, outcome));
        }
        if let Some(why) = skip_reason(line) {
            self.skip_reason = Some(why.to_string());
            return None;
        }
        let (n, name, mut outcome) = result_line(line)?;
        if self.results.iter().any(|(k, _, _)| *k == n) {
            return None;
        }
        self.give_reason(&mut outcome);
        self.results.push((n, name.clone(), outcome.clone()));
        Some(Item::Test(n, name, outcome))
    }

    /// A skip gets the reason its test printed; a reason printed for a
    /// result is not kept for the next one.
    fn give_reason(&mut self, outcome: &mut Outcome) {
        if let (Outcome::Skip(why), Some(r)) = (outcome, self.skip_reason.take()) {
            *why = r;
        }
    }

    /// The results read, in order.
    pub fn results(&self) -> &[(u32, String, Outcome)] {
        &self.results
    }

    /// What is wrong with the run as a whole: no summary (test_progs died
    /// or was killed), nothing run, or a summary that does not count the
    /// results it printed.
    pub fn problems(&self) -> Vec<String> {
        let Some((passed, _, _, failed)) = self.summary else {
            return vec!["test_progs printed no Summary line (it crashed or was killed)".into()];
        };
        let n = self.results.len() as u32;
        if passed + failed == 0 {
            return vec!["test_progs ran no test (no test matched the name)".into()];
        }
        if passed + failed != n {
            return vec![format!(
                "test_progs' Summary counts {} test(s) ({passed} passed, {failed} failed) \
                 but printed {n} result line(s)",
                passed + failed
            )];
        }
        let (_, sub_passed, _, _) = self.summary.unwrap_or_default();
        let ok = self
            .subtests
            .iter()
            .filter(|(_, _, o)| *o == Outcome::Pass)
            .count() as u32;
        if sub_passed != ok {
            return vec![format!(
                "test_progs' Summary counts {sub_passed} passed subtest(s) \
                 but printed {ok} passed subtest line(s)"
            )];
        }
        vec![]
    }

    /// Whether any test or subtest failed.
    pub fn failed(&self) -> bool {
        self.results.iter().any(|r| r.2 == Outcome::Fail)
            || self.subtests.iter().any(|r| r.2 == Outcome::Fail)
            || self.summary.is_some_and(|s| s.3 > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines() {
        assert_eq!(
            result_line("#6       tc_netkit_pkt_type:OK"),
            Some((6, "tc_netkit_pkt_type".into(), Outcome::Pass))
        );
        assert_eq!(result_line("#7 x:FAIL").map(|r| r.2), Some(Outcome::Fail));
        assert_eq!(
            result_line("#5       netns_sock_iter:OK (SKIP: 1/31)"),
            Some((5, "netns_sock_iter".into(), Outcome::Pass))
        );
        assert_eq!(result_line("#6/1     tc_netkit_pkt_type/l2:OK"), None);
        assert_eq!(result_line("# Summary: 6/0 PASSED"), None);
        assert_eq!(
            subtest_line("#6/1     tc_netkit_pkt_type/l2:OK"),
            Some((6, 1, "l2".into(), Outcome::Pass))
        );
        assert_eq!(subtest_line("#6       tc_netkit_pkt_type:OK"), None);
    }

    #[test]
    fn subtests_are_results_with_their_skip_reason() {
        let mut r = Reader::default();
        let items: Vec<Item> = [
            "#5/1     t/a:OK",
            "test_b:SKIP:no failslab (CONFIG_FAILSLAB)",
            "#5/2     t/b:SKIP",
            "#5/3     t/c:SKIP",
            "#5       t:OK",
            "Summary: 1/1 PASSED, 2 SKIPPED, 0 FAILED",
        ]
        .iter()
        .filter_map(|l| r.line(l))
        .collect();
        assert_eq!(
            items,
            [
                Item::Subtest(1, "a".into(), Outcome::Pass),
                Item::Subtest(
                    2,
                    "b".into(),
                    Outcome::Skip("no failslab (CONFIG_FAILSLAB)".into())
                ),
                Item::Subtest(3, "c".into(), Outcome::Skip("skipped by test_progs".into())),
                Item::Test(5, "t".into(), Outcome::Pass),
            ]
        );
        assert!(r.problems().is_empty(), "{:?}", r.problems());
        assert!(!r.failed());
        // A passed subtest the Summary does not count (or the other way).
        let r = read("#1/1 a/x:OK\n#1 a:OK\nSummary: 1/2 PASSED, 0 SKIPPED, 0 FAILED\n");
        assert!(
            r.problems()[0].contains("2 passed subtest(s)"),
            "{:?}",
            r.problems()
        );
        // A failed subtest fails the run even if its test says OK.
        let r = read("#1/1 a/x:FAIL\n#1 a:OK\nSummary: 1/0 PASSED, 0 SKIPPED, 0 FAILED\n");
        assert!(r.failed());
    }

    fn read(text: &str) -> Reader {
        let mut r = Reader::default();
        for l in text.lines() {
            r.line(l);
        }
        r
    }

    #[test]
    fn error_logs_do_not_repeat_results() {
        let r = read(
            "#1/1 a/x:OK\n#1 a:OK\n#2 b:FAIL\n\nAll error logs:\n#2 b:FAIL\nSummary: 1/1 PASSED, 0 SKIPPED, 1 FAILED\n",
        );
        assert_eq!(r.results().len(), 2);
        assert!(r.problems().is_empty());
        assert!(r.failed());
    }

    #[test]
    fn a_missing_or_disagreeing_summary_is_a_problem() {
        assert!(read("#1 a:OK\n").problems()[0].contains("no Summary line"));
        assert!(
            read("#1 a:OK\nSummary: 2/0 PASSED, 0 SKIPPED, 0 FAILED\n").problems()[0]
                .contains("counts 2 test(s)")
        );
        assert!(
            read("Summary: 0/0 PASSED, 0 SKIPPED, 0 FAILED\n").problems()[0]
                .contains("ran no test")
        );
        assert_eq!(
            summary_line("Summary: 5/12 PASSED, 1 SKIPPED, 0 FAILED"),
            Some((5, 12, 1, 0))
        );
        // 7.x counts failed subtests too.
        assert_eq!(
            summary_line("Summary: 7/0 PASSED, 0 SKIPPED, 1/0 FAILED"),
            Some((7, 0, 0, 1))
        );
        assert_eq!(summary_line("Summary: 7 PASSED"), None);
    }
}
