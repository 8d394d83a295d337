//! A small KTAP harness: a case is a function that reports subtests; a
//! failed check ends its subtest with the reason; a skip says why.

use std::time::Instant;

use ktap::{Outcome, Writer};

/// Why a check stopped a subtest.
#[derive(Debug)]
pub enum Stop {
    /// A check failed.
    Fail(String),
    /// The subtest cannot run here.
    Skip(String),
}

/// What a subtest returns.
pub type TResult = Result<(), Stop>;

impl<E: std::fmt::Display> From<E> for Stop {
    fn from(e: E) -> Self {
        Stop::Fail(e.to_string())
    }
}

/// Fails the subtest unless `cond`.
#[macro_export]
macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::harness::Stop::Fail(format!("{}:{}: {}", file!(), line!(), format!($($fmt)+))));
        }
    };
}

/// Fails the subtest unless `a == b`, printing both.
#[macro_export]
macro_rules! check_eq {
    ($a:expr, $b:expr, $($fmt:tt)+) => {{
        let (a, b) = (&$a, &$b);
        if a != b {
            return Err($crate::harness::Stop::Fail(format!(
                "{}:{}: {}: got {:?}, want {:?}", file!(), line!(), format!($($fmt)+), a, b)));
        }
    }};
}

/// Fails unless `r` is an error with errno `want`.
pub fn expect_errno<T: std::fmt::Debug>(
    r: Result<T, impl ErrnoOf + std::fmt::Display>,
    want: i32,
    what: &str,
) -> TResult {
    match r {
        Ok(v) => Err(Stop::Fail(format!(
            "{what}: succeeded ({v:?}), want errno {want}"
        ))),
        Err(e) if e.errno_of() == Some(want) => Ok(()),
        Err(e) => Err(Stop::Fail(format!("{what}: {e}, want errno {want}"))),
    }
}

/// Errors that carry an errno.
pub trait ErrnoOf {
    /// The errno.
    fn errno_of(&self) -> Option<i32>;
}

impl ErrnoOf for nk_netlink::Error {
    fn errno_of(&self) -> Option<i32> {
        self.errno()
    }
}

impl ErrnoOf for nk_bpf::Error {
    fn errno_of(&self) -> Option<i32> {
        self.errno()
    }
}

/// Runs subtests and prints them as one KTAP document.
pub struct Reporter {
    w: Writer,
    n: u32,
    failed: u32,
    skipped: u32,
    passed: u32,
}

impl Reporter {
    /// Starts a document with `plan` subtests.
    pub fn new(plan: u32) -> Self {
        let mut w = Writer::new(0, plan);
        print!("{}", w.take());
        Reporter {
            w,
            n: 0,
            failed: 0,
            skipped: 0,
            passed: 0,
        }
    }

    /// Runs one subtest.
    pub fn sub(&mut self, name: &str, f: impl FnOnce() -> TResult) {
        self.n += 1;
        let t = Instant::now();
        let mut reason = None;
        let outcome = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(Ok(())) => Outcome::Pass,
            Ok(Err(Stop::Skip(why))) => Outcome::Skip(why),
            Ok(Err(Stop::Fail(why))) => {
                reason = Some(why);
                Outcome::Fail
            }
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
                reason = Some(format!("panicked: {}", msg.unwrap_or_default()));
                Outcome::Fail
            }
        };
        match outcome {
            Outcome::Pass | Outcome::Todo(_) => self.passed += 1,
            Outcome::Skip(_) => self.skipped += 1,
            Outcome::Fail | Outcome::Timeout(_) => self.failed += 1,
        }
        self.w
            .diag(&format!("{name}: {:.3}s", t.elapsed().as_secs_f64()));
        // The reason comes last, right above the result line, where the
        // host's report looks for it.
        if let Some(why) = reason {
            self.w.diag(&why);
        }
        self.w.result(self.n, name, &outcome);
        print!("{}", self.w.take());
    }

    /// kselftest exit code: 1 on any failure, 4 if everything skipped.
    pub fn exit_code(&self) -> i32 {
        if self.failed > 0 {
            1
        } else if self.passed == 0 && self.skipped > 0 {
            4
        } else {
            0
        }
    }
}
