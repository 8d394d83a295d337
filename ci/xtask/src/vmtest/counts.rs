//! The closing line of a run: top-level tests and their subtests.

use ktap::{Document, Outcome};

use crate::vm::VmReport;

/// Passed, failed and skipped counts of a run, top level and leaves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Leaf subtests (a test without subtests counts as none).
    pub sub_passed: usize,
    pub sub_failed: usize,
    pub sub_skipped: usize,
}

impl Counts {
    pub fn ok(&self) -> bool {
        self.failed == 0
    }

    /// Counts a finished report: an aborted run, or splats during boot,
    /// are one more failure even when every reported test passed.
    pub fn of(report: &VmReport) -> Counts {
        let mut c = Counts::default();
        for t in &report.tests {
            match t.outcome {
                Outcome::Pass | Outcome::Todo(_) => c.passed += 1,
                Outcome::Fail | Outcome::Timeout(_) => c.failed += 1,
                Outcome::Skip(_) => c.skipped += 1,
            }
            let (p, f, s) = Document {
                results: t.subtests.clone(),
                ..Default::default()
            }
            .leaf_counts();
            c.sub_passed += p as usize;
            c.sub_failed += f as usize;
            c.sub_skipped += s as usize;
        }
        let boot_failed = !report.boot_splats.is_empty()
            || (report.aborted.is_some() && report.boot_seconds.is_none());
        if boot_failed || (report.aborted.is_some() && c.failed == 0) {
            c.failed += 1;
        }
        c
    }

    /// `subtests: 212 ok, 0 failed, 0 skipped`, printed before the
    /// closing line (which stays the plain `N passed, N failed, N skipped`).
    pub fn subtest_line(&self) -> String {
        format!(
            "subtests: {} ok, {} failed, {} skipped",
            self.sub_passed, self.sub_failed, self.sub_skipped
        )
    }

    /// Prints the subtest line, then the closing line.
    pub fn print(&self) {
        println!("{}", self.subtest_line());
        println!("{self}");
    }
}

impl std::ops::Add for Counts {
    type Output = Counts;
    fn add(self, o: Counts) -> Counts {
        Counts {
            passed: self.passed + o.passed,
            failed: self.failed + o.failed,
            skipped: self.skipped + o.skipped,
            sub_passed: self.sub_passed + o.sub_passed,
            sub_failed: self.sub_failed + o.sub_failed,
            sub_skipped: self.sub_skipped + o.sub_skipped,
        }
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )
    }
}
