//! KTAP version 1 (`Documentation/dev-tools/ktap.rst`): a lenient parser
//! for what kernel selftests print, and a small writer for our own tests.
//!
//! The parser never fails: lines it does not understand are kept as
//! diagnostics, so that a crashed or truncated test still yields what it
//! reported before it died.
#![warn(missing_docs)]

use std::fmt::Write as _;

/// The outcome of one test line.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Outcome {
    /// `ok N name`
    Pass,
    /// `not ok N name`
    Fail,
    /// `ok N name # SKIP reason` (a skip is never a pass)
    Skip(String),
    /// `not ok N name # TIMEOUT ...`
    Timeout(String),
    /// `ok N name # TODO ...` / `not ok N name # XFAIL ...`
    Todo(String),
}

/// One test result, with its nested subtests and diagnostics.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TestResult {
    /// Test number as printed.
    pub number: u32,
    /// Test name.
    pub name: String,
    /// Outcome, from the result line and its directive.
    pub outcome: Outcome,
    /// `#` lines printed before the result line at this level.
    pub diagnostics: Vec<String>,
    /// Subtests (indented by 2 more spaces, printed before this line).
    pub subtests: Vec<TestResult>,
    /// The plan (`1..N`) the subtests declared, if they printed one.
    pub subtest_plan: Option<u32>,
}

/// A parsed KTAP document (or one nesting level of one).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Document {
    /// The plan `1..N`, if printed.
    pub plan: Option<u32>,
    /// `1..0 # SKIP reason`: the whole document was skipped.
    pub skip_all: Option<String>,
    /// Results in order.
    pub results: Vec<TestResult>,
    /// Diagnostics not followed by any result line at this level.
    pub trailing: Vec<String>,
}

impl Document {
    /// Counts (passed, failed, skipped) over the leaves of the tree:
    /// a result with subtests counts its subtests instead of itself.
    pub fn leaf_counts(&self) -> (u32, u32, u32) {
        fn walk(r: &[TestResult], c: &mut (u32, u32, u32)) {
            for t in r {
                if t.subtests.is_empty() {
                    match t.outcome {
                        Outcome::Pass | Outcome::Todo(_) => c.0 += 1,
                        Outcome::Fail | Outcome::Timeout(_) => c.1 += 1,
                        Outcome::Skip(_) => c.2 += 1,
                    }
                } else {
                    walk(&t.subtests, c);
                }
            }
        }
        let mut c = (0, 0, 0);
        walk(&self.results, &mut c);
        c
    }
}

/// How deep subtests may nest. Deeper lines are kept as diagnostics, so
/// that hostile or broken output cannot make the parser recurse without
/// bound (kselftests nest two or three levels).
pub const MAX_DEPTH: usize = 16;

impl Document {
    /// Every level whose declared plan (`1..N`) differs from the number
    /// of results it printed: a loop that stopped short, or a test that
    /// died between two subtests. `1..0 # SKIP` plans are not checked.
    pub fn plan_mismatches(&self) -> Vec<String> {
        fn level(path: &str, plan: Option<u32>, rs: &[TestResult], out: &mut Vec<String>) {
            if let Some(n) = plan {
                if n as usize != rs.len() {
                    let at = if path.is_empty() { "top level" } else { path };
                    out.push(format!(
                        "{at}: plan 1..{n} but {} result(s) reported",
                        rs.len()
                    ));
                }
            }
            for r in rs {
                if !r.subtests.is_empty() || r.subtest_plan.is_some() {
                    let p = if path.is_empty() {
                        r.name.clone()
                    } else {
                        format!("{path}/{}", r.name)
                    };
                    level(&p, r.subtest_plan, &r.subtests, out);
                }
            }
        }
        let mut out = Vec::new();
        let plan = if self.skip_all.is_some() {
            None
        } else {
            self.plan
        };
        level("", plan, &self.results, &mut out);
        out
    }

    /// The document as KTAP text at `depth` (2 spaces a level): what
    /// [`parse`] reads back into the same results.
    pub fn write(&self, depth: usize) -> String {
        let mut w = Writer {
            out: String::new(),
            indent: depth,
        };
        w.line("KTAP version 1");
        w.line(&format!(
            "1..{}",
            self.plan.unwrap_or(self.results.len() as u32)
        ));
        w.results(&self.results);
        for d in &self.trailing {
            w.diag(d);
        }
        w.take()
    }
}

/// The parser's invariants on any input, for the fuzz target and tests:
/// nesting is bounded, leaf counts add up to the leaves, and the document
/// written back parses to the same results.
///
/// # Errors
/// The invariant that does not hold, in words.
pub fn check_invariants(text: &str) -> Result<(), String> {
    fn depth(rs: &[TestResult]) -> usize {
        rs.iter().map(|r| 1 + depth(&r.subtests)).max().unwrap_or(0)
    }
    fn leaves(rs: &[TestResult]) -> u32 {
        rs.iter()
            .map(|r| {
                if r.subtests.is_empty() {
                    1
                } else {
                    leaves(&r.subtests)
                }
            })
            .sum()
    }
    let doc = parse(text);
    let d = depth(&doc.results);
    if d > MAX_DEPTH + 1 {
        return Err(format!("results nest {d} deep, above {MAX_DEPTH}"));
    }
    let (p, f, s) = doc.leaf_counts();
    if p + f + s != leaves(&doc.results) {
        return Err(format!(
            "leaf counts {p}+{f}+{s} != {} leaves",
            leaves(&doc.results)
        ));
    }
    // The writer states a plan for every level that has results (KTAP
    // wants one), so a level that printed none reads back with its count.
    fn norm(rs: &[TestResult]) -> Vec<TestResult> {
        rs.iter()
            .map(|r| TestResult {
                subtest_plan: match r.subtest_plan {
                    Some(0) if r.subtests.is_empty() => None,
                    None if !r.subtests.is_empty() => Some(r.subtests.len() as u32),
                    p => p,
                },
                subtests: norm(&r.subtests),
                ..r.clone()
            })
            .collect()
    }
    let again = parse(&doc.write(0));
    if norm(&again.results) != norm(&doc.results) {
        return Err("the written document parses to other results".into());
    }
    if again.leaf_counts() != (p, f, s) {
        return Err("the written document counts differently".into());
    }
    Ok(())
}

/// A parsed result line: (ok, number, name, directive keyword and text).
pub type ResultLine = (bool, u32, String, Option<(String, String)>);

/// Parses a result line (without indentation): `ok 3 name # SKIP why`.
pub fn parse_result_line(line: &str) -> Option<ResultLine> {
    let (ok, rest) = if let Some(r) = line.strip_prefix("not ok ") {
        (false, r)
    } else if let Some(r) = line.strip_prefix("ok ") {
        (true, r)
    } else {
        return None;
    };
    let (num, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let number: u32 = num.parse().ok()?;
    let rest = rest.trim_start_matches("- ");
    let (name, directive) = match rest.find(" # ") {
        Some(i) => {
            let d = rest[i + 3..].trim();
            let (kw, why) = d.split_once(' ').unwrap_or((d, ""));
            (
                rest[..i].trim().to_string(),
                Some((kw.to_ascii_uppercase(), why.trim().to_string())),
            )
        }
        None => (rest.trim().to_string(), None),
    };
    Some((ok, number, name, directive))
}

fn outcome(ok: bool, directive: Option<(String, String)>) -> Outcome {
    match directive {
        Some((kw, why)) if kw == "SKIP" => Outcome::Skip(why),
        Some((kw, why)) if kw == "TIMEOUT" => Outcome::Timeout(why),
        Some((kw, why)) if kw == "TODO" || kw == "XFAIL" => Outcome::Todo(why),
        _ if ok => Outcome::Pass,
        _ => Outcome::Fail,
    }
}

/// Parses KTAP text. Indentation of 2 spaces per level marks subtests;
/// a tab is taken as one level too, as some kselftests print.
pub fn parse(text: &str) -> Document {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .map(|l| {
            let trimmed = l.trim_start_matches([' ', '\t']);
            let ws = &l[..l.len() - trimmed.len()];
            let depth = ws
                .chars()
                .map(|c| if c == '\t' { 2 } else { 1 })
                .sum::<usize>()
                / 2;
            (depth, trimmed.trim_end())
        })
        .collect();
    let mut pos = 0;
    parse_level(&lines, &mut pos, 0, 0)
}

/// Parses the lines indented by `indent` (in units of two spaces) from
/// `pos` on, `level` blocks deep. A deeper block is one level deeper
/// however far it is indented: kselftest indents by two spaces, KUnit by
/// four.
fn parse_level(lines: &[(usize, &str)], pos: &mut usize, indent: usize, level: usize) -> Document {
    let depth = indent;
    let mut doc = Document::default();
    let mut diags = Vec::new();
    let mut pending_sub: Option<Document> = None;
    while *pos < lines.len() {
        let (d, line) = lines[*pos];
        if line.is_empty() {
            *pos += 1;
            continue;
        }
        if d > depth && level >= MAX_DEPTH {
            *pos += 1;
            diags.push(format!("(nested deeper than {MAX_DEPTH} levels) {line}"));
            continue;
        }
        if d > depth {
            // A nested block: everything deeper belongs to the next result.
            let sub = parse_level(lines, pos, d, level + 1);
            match &mut pending_sub {
                Some(p) => {
                    p.results.extend(sub.results);
                    p.trailing.extend(sub.trailing);
                    p.plan = p.plan.or(sub.plan);
                }
                None => pending_sub = Some(sub),
            }
            continue;
        }
        if d < depth {
            break;
        }
        *pos += 1;
        if line.starts_with("KTAP version") || line.starts_with("TAP version") {
            continue;
        }
        if let Some(p) = line.strip_prefix("1..") {
            let (n, dir) = p.split_once(" # ").unwrap_or((p, ""));
            doc.plan = n.trim().parse().ok();
            if let Some(why) = dir.trim().strip_prefix("SKIP") {
                doc.skip_all = Some(why.trim().to_string());
            }
            continue;
        }
        if let Some((ok, number, name, dir)) = parse_result_line(line) {
            let sub = pending_sub.take().unwrap_or_default();
            let mut diagnostics = std::mem::take(&mut diags);
            diagnostics.extend(sub.trailing);
            doc.results.push(TestResult {
                number,
                name,
                outcome: outcome(ok, dir),
                diagnostics,
                subtests: sub.results,
                subtest_plan: sub.plan,
            });
            continue;
        }
        diags.push(line.trim_start_matches('#').trim().to_string());
    }
    if let Some(sub) = pending_sub {
        // Subtests with no closing result line (a crash): keep them visible.
        diags.extend(sub.trailing);
        doc.results.extend(sub.results);
    }
    doc.trailing = diags;
    doc
}

/// Writes KTAP for a list of cases, nesting by indentation.
#[derive(Debug, Default)]
pub struct Writer {
    out: String,
    indent: usize,
}

impl Writer {
    /// Starts a document (or a nested one when `indent` > 0) with a plan.
    pub fn new(indent: usize, plan: u32) -> Self {
        let mut w = Writer {
            out: String::new(),
            indent,
        };
        w.line("KTAP version 1");
        w.line(&format!("1..{plan}"));
        w
    }

    fn line(&mut self, s: &str) {
        let _ = writeln!(self.out, "{:width$}{s}", "", width = self.indent * 2);
    }

    /// A diagnostic line.
    pub fn diag(&mut self, s: &str) {
        for l in s.lines() {
            self.line(&format!("# {l}"));
        }
    }

    /// A result line.
    pub fn result(&mut self, number: u32, name: &str, outcome: &Outcome) {
        let l = match outcome {
            Outcome::Pass => format!("ok {number} {name}"),
            Outcome::Fail => format!("not ok {number} {name}"),
            Outcome::Skip(why) => format!("ok {number} {name} # SKIP {why}"),
            Outcome::Timeout(why) => format!("not ok {number} {name} # TIMEOUT {why}"),
            Outcome::Todo(why) => format!("ok {number} {name} # TODO {why}"),
        };
        self.line(&l);
    }

    /// Result lines for `rs`, each after its nested subtests (at one
    /// level deeper) and its diagnostics.
    pub fn results(&mut self, rs: &[TestResult]) {
        for r in rs {
            if !r.subtests.is_empty() || r.subtest_plan.is_some_and(|n| n > 0) {
                let mut sub = Writer::new(
                    self.indent + 1,
                    r.subtest_plan.unwrap_or(r.subtests.len() as u32),
                );
                sub.results(&r.subtests);
                self.out.push_str(&sub.take());
            }
            for d in &r.diagnostics {
                self.diag(d);
            }
            self.result(r.number, &r.name, &r.outcome);
        }
    }

    /// Takes what has been written so far.
    pub fn take(&mut self) -> String {
        std::mem::take(&mut self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_document_with_directives() {
        let text = "KTAP version 1\n1..3\n  KTAP version 1\n  1..2\n  # hello\n  ok 1 a\n  not ok 2 b\nnot ok 1 suite\nok 2 skipped # SKIP no netkit\nnot ok 3 hung # TIMEOUT 30s\n";
        let doc = parse(text);
        assert_eq!(doc.plan, Some(3));
        assert_eq!(doc.results.len(), 3);
        assert_eq!(doc.results[0].subtests.len(), 2);
        assert_eq!(doc.results[0].subtests[0].diagnostics, ["hello"]);
        assert_eq!(doc.results[1].outcome, Outcome::Skip("no netkit".into()));
        assert_eq!(doc.results[2].outcome, Outcome::Timeout("30s".into()));
        assert_eq!(doc.leaf_counts(), (1, 2, 1));
    }

    #[test]
    fn writer_round_trips_through_parser() {
        let mut w = Writer::new(0, 4);
        w.diag("setup done");
        w.result(1, "pass", &Outcome::Pass);
        w.result(2, "fail", &Outcome::Fail);
        w.result(3, "skip", &Outcome::Skip("needs root".into()));
        w.result(4, "slow", &Outcome::Timeout("after 5s".into()));
        let text = w.take();
        insta::assert_snapshot!(text);
        let doc = parse(&text);
        let got: Vec<_> = doc
            .results
            .iter()
            .map(|r| (r.number, r.name.as_str(), r.outcome.clone()))
            .collect();
        assert_eq!(
            got,
            [
                (1, "pass", Outcome::Pass),
                (2, "fail", Outcome::Fail),
                (3, "skip", Outcome::Skip("needs root".into())),
                (4, "slow", Outcome::Timeout("after 5s".into())),
            ]
        );
    }

    #[test]
    fn truncated_output_keeps_reported_results() {
        let doc = parse("KTAP version 1\n1..2\n  ok 1 first\n  # then it crashed\n");
        assert_eq!(doc.results.len(), 1);
        assert_eq!(doc.results[0].name, "first");
        assert_eq!(doc.trailing, ["then it crashed"]);
    }

    #[test]
    fn skip_all_plan() {
        let doc = parse("KTAP version 1\n1..0 # SKIP not root\n");
        assert_eq!(doc.skip_all.as_deref(), Some("not root"));
    }

    #[test]
    fn short_plans_are_found_at_every_level() {
        let doc = parse(
            "KTAP version 1\n1..3\n  KTAP version 1\n  1..4\n  ok 1 a\n  ok 2 b\nok 1 loop\nok 2 two\n",
        );
        assert_eq!(
            doc.plan_mismatches(),
            [
                "top level: plan 1..3 but 2 result(s) reported",
                "loop: plan 1..4 but 2 result(s) reported"
            ]
        );
        let full = parse("KTAP version 1\n1..1\n  KTAP version 1\n  1..1\n  ok 1 a\nok 1 t\n");
        assert!(full.plan_mismatches().is_empty());
        assert!(parse("KTAP version 1\n1..0 # SKIP no root\n")
            .plan_mismatches()
            .is_empty());
    }

    #[test]
    fn kunit_four_space_nesting() {
        // /sys/kernel/debug/kunit/<suite>/results of a parameterised case.
        let text = "KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: flags\n    1..1\n        KTAP version 1\n        # Subtest: flags_test\n        ok 1 next\n        not ok 2 next scoped acquire\n        ok 3 new # SKIP no BTF\n    # flags_test: pass:1 fail:1 skip:1 total:3\n    not ok 1 flags_test\nnot ok 1 flags\n";
        let doc = parse(text);
        assert_eq!(doc.results.len(), 1);
        assert_eq!(doc.results[0].name, "flags");
        let case = &doc.results[0].subtests;
        assert_eq!(case.len(), 1);
        assert_eq!(case[0].name, "flags_test");
        let params: Vec<&str> = case[0].subtests.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(params, ["next", "next scoped acquire", "new"]);
        assert_eq!(doc.leaf_counts(), (1, 1, 1));
        assert!(doc.plan_mismatches().is_empty());
    }

    #[test]
    fn nesting_is_bounded() {
        let mut text = String::new();
        for d in 0..200 {
            text.push_str(&format!("{}ok 1 level{d}\n", "  ".repeat(200 - d)));
        }
        let doc = parse(&text);
        fn depth(rs: &[TestResult]) -> usize {
            rs.iter().map(|r| 1 + depth(&r.subtests)).max().unwrap_or(0)
        }
        assert!(depth(&doc.results) <= MAX_DEPTH + 1);
    }

    #[test]
    fn write_reads_back_the_same_results() {
        let text = "KTAP version 1\n1..2\n  KTAP version 1\n  1..2\n  # why\n  ok 1 a\n  ok 2 b # SKIP no x\nok 1 suite\nnot ok 2 c # TIMEOUT 3s\n";
        let doc = parse(text);
        assert_eq!(parse(&doc.write(0)).results, doc.results);
        assert_eq!(doc.write(0), text);
    }

    #[test]
    fn invariants_hold_on_odd_input() {
        for s in [
            "KTAP version 1\n1..2\n  KTAP version 1\n  1..1\n  # d\n  ok 1 a\nok 1 t # SKIP x\n",
            "ok 1 - dash\n# trailing\n",
            "  ok 1 orphan\n    ok 2 deeper\nnot ok 3 top # TIMEOUT 1s\n",
            "\tok 1 tab\nok 1 x # XFAIL y\nnot ok 2 # \n",
            "ok 1 a # b # SKIP c\n1..\n1..0 # SKIP all\n",
        ] {
            check_invariants(s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
        }
    }

    #[test]
    fn garbage_does_not_panic() {
        for s in [
            "ok",
            "ok x",
            "not ok 4294967296 a",
            "\t\t  ok 1 # ",
            "1..",
            "    ok 1 deep\nok 1 top",
        ] {
            let _ = parse(s);
        }
    }
}
