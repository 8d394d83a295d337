//! Turning a VM run into per-test results: the guest's KTAP, the host's
//! watchdog verdicts and the console's splats, merged.

use std::fmt::Write as _;
use std::time::Duration;

use ktap::{Document, Outcome, TestResult};
use nk_init::plan::Entry;

/// A kernel report seen on the console.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Splat {
    pub kind: String,
    pub first_line: String,
    pub context: Vec<String>,
}

/// What the host saw while the VM ran.
pub struct LiveFacts {
    pub booted: Option<Duration>,
    pub first_test: Option<Duration>,
    pub guest_uptime: Option<f64>,
    /// Online CPUs nk-init saw.
    pub guest_cpus: Option<u32>,
    pub running: Option<usize>,
    pub durations: Vec<Option<Duration>>,
    pub splats: Vec<(Option<usize>, Splat)>,
}

/// One top-level test.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TestReport {
    pub name: String,
    pub outcome: Outcome,
    pub seconds: Option<f64>,
    pub splats: Vec<Splat>,
    pub diagnostics: Vec<String>,
    pub subtests: Vec<TestResult>,
    /// The plan the test's own KTAP declared for its subtests.
    pub subtest_plan: Option<u32>,
}

/// A whole VM run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct VmReport {
    pub tests: Vec<TestReport>,
    /// Why the run ended early, if it did.
    pub aborted: Option<String>,
    /// Splats printed before the first test (boot).
    pub boot_splats: Vec<Splat>,
    pub wall_seconds: f64,
    /// qemu start to nk-init's first line, host clock.
    pub boot_seconds: Option<f64>,
    /// qemu start to the first test starting, host clock.
    pub first_test_seconds: Option<f64>,
    /// Guest uptime when nk-init started.
    pub guest_uptime_at_init: Option<f64>,
    /// CPUs the guest kernel brought up.
    pub guest_cpus: Option<u32>,
}

impl VmReport {
    /// A report of no run (`--list`).
    pub fn empty() -> VmReport {
        VmReport {
            tests: vec![],
            aborted: None,
            boot_splats: vec![],
            wall_seconds: 0.0,
            boot_seconds: None,
            first_test_seconds: None,
            guest_uptime_at_init: None,
            guest_cpus: None,
        }
    }

    /// The merged result as KTAP version 1.
    pub fn to_ktap(&self) -> String {
        let mut s = String::new();
        let boot = !self.boot_splats.is_empty();
        let _ = writeln!(
            s,
            "KTAP version 1\n1..{}",
            self.tests.len() + usize::from(boot)
        );
        if let Some(a) = &self.aborted {
            let _ = writeln!(s, "# aborted: {a}");
        }
        let mut n = 0;
        if boot {
            n += 1;
            for sp in &self.boot_splats {
                let _ = writeln!(s, "# {}: {}", sp.kind, sp.first_line);
            }
            let _ = writeln!(s, "not ok {n} boot");
        }
        for t in &self.tests {
            n += 1;
            let mut w = ktap::Writer::default();
            w.results(&[TestResult {
                number: n,
                name: t.name.clone(),
                outcome: t.outcome.clone(),
                diagnostics: t
                    .diagnostics
                    .iter()
                    .cloned()
                    .chain(
                        t.splats
                            .iter()
                            .map(|sp| format!("kernel {}: {}", sp.kind, sp.first_line)),
                    )
                    .collect(),
                subtests: t.subtests.clone(),
                subtest_plan: t.subtest_plan,
            }]);
            s.push_str(&w.take());
        }
        s
    }
}

pub fn build(
    plan: &[Entry],
    doc: &Document,
    live: LiveFacts,
    aborted: Option<String>,
    host_timeout: Option<usize>,
    wall: Duration,
) -> VmReport {
    let mut tests = Vec::new();
    let mut boot_splats = Vec::new();
    let mut per_test: Vec<Vec<Splat>> = vec![Vec::new(); plan.len()];
    for (owner, s) in live.splats {
        match owner {
            Some(i) if i < plan.len() => per_test[i].push(s),
            _ => boot_splats.push(s),
        }
    }
    for (i, e) in plan.iter().enumerate() {
        let guest = doc.results.iter().find(|r| r.number as usize == i + 1);
        let (mut outcome, mut diagnostics, subtests) = match guest {
            Some(r) => (r.outcome.clone(), r.diagnostics.clone(), r.subtests.clone()),
            None if host_timeout == Some(i) => (
                Outcome::Timeout(format!(
                    "host watchdog: no result after {}s",
                    e.timeout.as_secs()
                )),
                vec![],
                vec![],
            ),
            None if live.running == Some(i) => (
                Outcome::Fail,
                vec![aborted.clone().unwrap_or_else(|| "no result".into())],
                vec![],
            ),
            None => (
                Outcome::Skip(format!(
                    "not run: {}",
                    aborted
                        .as_deref()
                        .unwrap_or("the VM ended before this test started")
                )),
                vec![],
                vec![],
            ),
        };
        // Keep what the test printed (nested subtests keep their own).
        if let Some(r) = guest {
            diagnostics = r.diagnostics.clone();
        }
        let splats = std::mem::take(&mut per_test[i]);
        if !splats.is_empty() && !matches!(outcome, Outcome::Timeout(_)) {
            outcome = Outcome::Fail;
        }
        tests.push(TestReport {
            name: e.name.clone(),
            outcome,
            seconds: live
                .durations
                .get(i)
                .copied()
                .flatten()
                .map(|d| d.as_secs_f64()),
            splats,
            diagnostics,
            subtests,
            subtest_plan: guest.and_then(|r| r.subtest_plan),
        });
    }
    VmReport {
        tests,
        aborted,
        boot_splats,
        wall_seconds: wall.as_secs_f64(),
        boot_seconds: live.booted.map(|d| d.as_secs_f64()),
        first_test_seconds: live.first_test.map(|d| d.as_secs_f64()),
        guest_uptime_at_init: live.guest_uptime,
        guest_cpus: live.guest_cpus,
    }
}

/// One line per test, then details for failures.
pub fn print(r: &VmReport) {
    for s in &r.boot_splats {
        eprintln!("FAIL     boot: kernel {}: {}", s.kind, s.first_line);
    }
    for t in &r.tests {
        let secs = t.seconds.map(|s| format!(" ({s:.1}s)")).unwrap_or_default();
        let (tag, why) = match &t.outcome {
            Outcome::Pass => ("ok", String::new()),
            Outcome::Todo(w) => ("todo", format!(": {w}")),
            Outcome::Fail => ("FAIL", String::new()),
            Outcome::Skip(w) => ("SKIP", format!(": {w}")),
            Outcome::Timeout(w) => ("TIMEOUT", format!(": {w}")),
        };
        let (p, f, s) = Document {
            results: t.subtests.clone(),
            ..Default::default()
        }
        .leaf_counts();
        let subs = if t.subtests.is_empty() {
            String::new()
        } else {
            format!(" [{p}/{} subtests ok, {s} skipped]", p + f + s)
        };
        println!("{tag:<8} {}{secs}{subs}{why}", t.name);
    }
    for t in r
        .tests
        .iter()
        .filter(|t| matches!(t.outcome, Outcome::Fail | Outcome::Timeout(_)))
    {
        eprintln!("---- {} ----", t.name);
        for sub in failing_leaves(&t.subtests) {
            eprintln!("  failed: {sub}");
        }
        let tail: Vec<&String> = t.diagnostics.iter().rev().take(25).collect();
        for d in tail.into_iter().rev() {
            eprintln!("  | {d}");
        }
        for s in &t.splats {
            eprintln!("  kernel {}: {}", s.kind, s.first_line);
            for c in s.context.iter().take(15) {
                eprintln!("  | {c}");
            }
        }
    }
    if let Some(a) = &r.aborted {
        eprintln!("run aborted: {a}");
    }
}

fn failing_leaves(rs: &[TestResult]) -> Vec<String> {
    let mut v = Vec::new();
    for r in rs {
        if r.subtests.is_empty() {
            if matches!(r.outcome, Outcome::Fail | Outcome::Timeout(_)) {
                let last = r
                    .diagnostics
                    .last()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default();
                v.push(format!("{}{last}", r.name));
            }
        } else {
            v.extend(
                failing_leaves(&r.subtests)
                    .into_iter()
                    .map(|s| format!("{}/{s}", r.name)),
            );
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str) -> Entry {
        Entry {
            name: name.into(),
            timeout: Duration::from_secs(10),
            format: nk_init::plan::Format::Ktap,
            cwd: "/".into(),
            argv: vec!["x".into()],
        }
    }

    fn facts(splats: Vec<(Option<usize>, Splat)>, running: Option<usize>) -> LiveFacts {
        LiveFacts {
            booted: Some(Duration::from_secs(1)),
            first_test: None,
            guest_uptime: None,
            guest_cpus: None,
            running,
            durations: vec![None; 3],
            splats,
        }
    }

    #[test]
    fn splat_turns_a_pass_into_a_failure_and_unrun_tests_are_skips() {
        let plan = [entry("a"), entry("b"), entry("c")];
        let doc = ktap::parse("KTAP version 1\n1..3\nok 1 a\n");
        let sp = Splat {
            kind: "WARNING".into(),
            first_line: "WARNING: x".into(),
            context: vec![],
        };
        let r = build(
            &plan,
            &doc,
            facts(vec![(Some(0), sp)], Some(1)),
            Some("kernel panic: y".into()),
            None,
            Duration::ZERO,
        );
        assert_eq!(r.tests[0].outcome, Outcome::Fail);
        assert_eq!(r.tests[1].outcome, Outcome::Fail);
        assert_eq!(
            r.tests[2].outcome,
            Outcome::Skip("not run: kernel panic: y".into())
        );
        let c = crate::vmtest::Counts::of(&r);
        assert_eq!((c.passed, c.failed, c.skipped), (0, 2, 1));
    }

    #[test]
    fn host_timeout_is_reported_as_timeout() {
        let plan = [entry("a"), entry("hang")];
        let doc = ktap::parse("KTAP version 1\n1..2\nok 1 a\n");
        let r = build(
            &plan,
            &doc,
            facts(vec![], Some(1)),
            Some("watchdog".into()),
            Some(1),
            Duration::ZERO,
        );
        assert!(matches!(r.tests[1].outcome, Outcome::Timeout(_)));
        insta::assert_snapshot!(r.to_ktap());
    }
}
