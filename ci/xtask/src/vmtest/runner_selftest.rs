//! `cargo xtask vmtest --runner-selftest`: the runner tested on itself. A
//! plan whose tests pass, skip (listed and not), fail, hang, report short,
//! print a splat, leak a device, leave a daemon behind and panic the
//! kernel; each must come out of the whole pipeline (nk-init, the host's
//! watchdog and splat scan, the expected-skip policy) as what it is.

use std::time::Duration;

use ktap::Outcome;
use nk_init::plan::{Entry, Format};

use super::skips;
use crate::vm::report::TestReport;
use crate::vm::VmReport;

/// What a case must be reported as, and what must be said about it.
struct Case {
    name: &'static str,
    format: Format,
    sh: &'static str,
    timeout: u64,
    want: &'static str,
    check: fn(&TestReport, &VmReport) -> bool,
}

fn any(_: &TestReport, _: &VmReport) -> bool {
    true
}

fn says(t: &TestReport, what: &str) -> bool {
    t.diagnostics.iter().any(|d| d.contains(what))
}

/// The runner self-test's own expected skips: only `runner.skip`.
pub const EXPECTED_SKIPS: &str = "* * * runner.skip a listed skip stays a skip\n";

const CASES: &[Case] = &[
    Case {
        name: "runner.pass",
        format: Format::Raw,
        sh: "true",
        timeout: 10,
        want: "pass",
        check: any,
    },
    Case {
        name: "runner.skip",
        format: Format::Raw,
        sh: "echo 'SKIP: demonstration'; exit 4",
        timeout: 10,
        want: "skip",
        check: any,
    },
    Case {
        name: "runner.unexpected_skip",
        format: Format::Raw,
        sh: "echo 'SKIP: a skip nobody listed'; exit 4",
        timeout: 10,
        want: "fail",
        check: |t, _| says(t, "unexpected skip"),
    },
    Case {
        name: "runner.subtest_skip",
        format: Format::Ktap,
        sh: "printf 'KTAP version 1\\n1..2\\nok 1 runs\\nok 2 skips # SKIP not listed\\n'",
        timeout: 10,
        want: "fail",
        check: |t, _| says(t, "runner.subtest_skip/skips: not listed"),
    },
    Case {
        name: "runner.short_plan",
        format: Format::Ktap,
        sh: "printf 'KTAP version 1\\n1..3\\nok 1 a\\nok 2 b\\n'",
        timeout: 10,
        want: "fail",
        check: |t, _| says(t, "plan 1..3 but 2 result(s) reported"),
    },
    Case {
        name: "runner.test_progs_error_log",
        format: Format::TestProgs,
        sh: "printf '#1/1     a/x:OK\\n#1       a:OK\\n#2       b:FAIL\\n\\nAll error logs:\\n#2       b:FAIL\\nSummary: 1/1 PASSED, 0 SKIPPED, 1 FAILED\\n'; exit 1",
        timeout: 10,
        want: "fail",
        check: |t, _| t.subtests.len() == 2,
    },
    Case {
        name: "runner.test_progs_subtest_skip",
        format: Format::TestProgs,
        sh: "printf '#1/1     a/x:OK\\nt_y:SKIP:not listed either\\n#1/2     a/y:SKIP\\n#1       a:OK (SKIP: 1/2)\\nSummary: 1/1 PASSED, 1 SKIPPED, 0 FAILED\\n'",
        timeout: 10,
        want: "fail",
        check: |t, _| says(t, "runner.test_progs_subtest_skip/a/y: not listed either"),
    },
    Case {
        name: "runner.test_progs_no_summary",
        format: Format::TestProgs,
        sh: "printf '#1       a:OK\\n'",
        timeout: 10,
        want: "fail",
        check: |t, _| says(t, "no Summary line"),
    },
    Case {
        name: "runner.fail",
        format: Format::Raw,
        sh: "echo failing on purpose; exit 1",
        timeout: 10,
        want: "fail",
        check: any,
    },
    Case {
        name: "runner.hang",
        format: Format::Raw,
        sh: "sleep 600",
        timeout: 3,
        want: "timeout",
        check: any,
    },
    Case {
        name: "runner.splat",
        format: Format::Raw,
        sh: "echo '<4>WARNING: CPU: 0 PID: 1 at nkdev/runner-selftest: injected' > /dev/kmsg",
        timeout: 10,
        want: "fail",
        check: |t, _| t.splats.iter().any(|s| s.kind == "WARNING"),
    },
    Case {
        name: "runner.leak",
        format: Format::Raw,
        sh: "ip link add nkleak0 type dummy",
        timeout: 10,
        want: "fail",
        check: |t, _| says(t, "leaked network device"),
    },
    // A daemon in its own session holds the test's output pipe: nk-init
    // must neither wait for it nor let it outlive the test.
    Case {
        name: "runner.daemon",
        format: Format::Raw,
        sh: "setsid sleep 600 & echo started",
        timeout: 10,
        want: "fail",
        check: |t, _| says(t, "leaked process"),
    },
    Case {
        name: "runner.after_daemon",
        format: Format::Raw,
        sh: "! pgrep -x sleep",
        timeout: 10,
        want: "pass",
        check: any,
    },
    Case {
        name: "runner.panic",
        format: Format::Raw,
        sh: "echo c > /proc/sysrq-trigger; sleep 30",
        timeout: 60,
        want: "fail",
        check: |_, r| r.aborted.as_deref().is_some_and(|a| a.contains("panic")),
    },
    Case {
        name: "runner.after_panic",
        format: Format::Raw,
        sh: "true",
        timeout: 10,
        want: "fail",
        check: |t, _| says(t, "not run"),
    },
];

pub fn plan() -> Vec<Entry> {
    CASES
        .iter()
        .map(|c| Entry {
            name: c.name.to_string(),
            timeout: Duration::from_secs(c.timeout),
            format: c.format,
            cwd: "/".into(),
            argv: vec!["/bin/sh".into(), "-c".into(), c.sh.to_string()],
        })
        .collect()
}

/// The skip policy the self-test runs under.
pub fn expected_skips() -> Vec<skips::Expected> {
    skips::parse(EXPECTED_SKIPS).expect("the runner self-test's list parses")
}

/// Compares the report (after the skip policy) with what each case must
/// produce; returns (as expected, not as expected).
pub fn check(report: &VmReport) -> (usize, usize) {
    let mut passed = 0;
    for (i, c) in CASES.iter().enumerate() {
        let Some(got) = report.tests.get(i) else {
            println!("FAILED runner self-test {}: no result", c.name);
            continue;
        };
        let kind = match &got.outcome {
            Outcome::Pass | Outcome::Todo(_) => "pass",
            Outcome::Fail => "fail",
            Outcome::Skip(_) => "skip",
            Outcome::Timeout(_) => "timeout",
        };
        let good = kind == c.want && (c.check)(got, report);
        passed += usize::from(good);
        println!(
            "{} runner self-test {}: reported {kind}, expected {}{}",
            if good { "ok    " } else { "FAILED" },
            c.name,
            c.want,
            if good || kind != c.want {
                ""
            } else {
                " with its diagnostic"
            }
        );
    }
    (passed, CASES.len() - passed)
}
