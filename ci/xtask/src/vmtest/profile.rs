//! `cargo xtask bench --measure insn --by-function`: where a span's kernel
//! instructions went, by kernel function, so that a count that moves
//! between runs can be traced to the code that moved it.
//!
//! The plugin charges each kernel block to the text symbol it starts in
//! and writes one `prof mark=N NAME=COUNT ...` line per span to
//! `prof.txt` (see ci/insn-plugin). Marks pair with the guest's
//! `# insn-mark:` lines as the counts of `insn.rs` do. A function that
//! did not run in a span counts 0 there, so that medians and spreads
//! compare like with like.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// The bucket of kernel addresses past the image (`_end`): the BPF JIT's
/// program packs and trampolines, and modules, which System.map does not
/// name. Without it they would be charged to the image's last function.
pub const BEYOND: &str = "(beyond_the_image:bpf_jit,modules)";

/// The kernel's text symbols (`T`/`t`/`W`/`w`) of a System.map, as the
/// plugin's `syms=` file: `ADDR NAME` per line, and `_end` as [`BEYOND`].
pub fn syms_file(system_map: &str) -> Result<String> {
    let mut out = String::new();
    let mut end = None;
    for l in system_map.lines() {
        let mut f = l.split_whitespace();
        let (Some(addr), Some(kind), Some(name)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if matches!(kind, "T" | "t" | "W" | "w") {
            out.push_str(addr);
            out.push(' ');
            out.push_str(name);
            out.push('\n');
        } else if name == "_end" {
            end = Some(addr);
        }
    }
    if out.is_empty() {
        bail!("System.map has no text symbol: a profile needs them");
    }
    let Some(end) = end else {
        bail!("System.map has no _end: the profile could not tell the BPF JIT's code from the image's last function");
    };
    out.push_str(&format!("{end} {BEYOND}\n"));
    Ok(out)
}

/// One span's profile: its mark number and (function, instructions).
pub type Span = (u64, Vec<(String, u64)>);

pub fn parse(text: &str) -> Result<Vec<Span>> {
    let mut v = Vec::new();
    for (n, l) in text.lines().enumerate() {
        let Some(rest) = l.strip_prefix("prof ") else {
            continue;
        };
        let mut mark = None;
        let mut funcs = Vec::new();
        for kv in rest.split_whitespace() {
            let (k, val) = kv
                .split_once('=')
                .with_context(|| format!("prof.txt:{}: {kv:?} is not NAME=COUNT", n + 1))?;
            match k {
                "mark" if mark.is_none() => {
                    mark = Some(
                        val.parse()
                            .with_context(|| format!("prof.txt:{}: bad mark={val}", n + 1))?,
                    )
                }
                "error" => bail!("prof.txt:{}: the plugin reported {val}", n + 1),
                _ => funcs.push((
                    k.to_string(),
                    val.parse()
                        .with_context(|| format!("prof.txt:{}: bad {k}={val}", n + 1))?,
                )),
            }
        }
        let Some(mark) = mark else {
            bail!("prof.txt:{}: no mark= in {l:?}", n + 1);
        };
        v.push((mark, funcs));
    }
    Ok(v)
}

/// Per (bench, label): each occurrence (a repetition, or a run) as
/// function -> kernel instructions per operation.
pub type Profiles = BTreeMap<(String, String), Vec<BTreeMap<String, f64>>>;

/// The spans of one boot, paired with the guest's marks; marks without
/// operations are left out, as in the instruction metrics.
pub fn of_run(ktap: &str, prof: &str) -> Result<Profiles> {
    let marks = super::insn::parse_marks(ktap);
    let spans = parse(prof)?;
    if marks.len() != spans.len() {
        bail!(
            "{} marks in the guest's output but {} profile lines from the plugin: they cannot be paired",
            marks.len(),
            spans.len()
        );
    }
    let mut out = Profiles::new();
    for (i, ((bench, label, ops), (mark, funcs))) in marks.iter().zip(spans).enumerate() {
        if mark != i as u64 {
            bail!("the plugin's profile line {i} is numbered mark={mark}");
        }
        if *ops == 0 {
            continue;
        }
        let per: BTreeMap<String, f64> = funcs
            .into_iter()
            .map(|(f, n)| (f, n as f64 / *ops as f64))
            .collect();
        out.entry((bench.clone(), label.clone()))
            .or_default()
            .push(per);
    }
    Ok(out)
}

/// One function of one label over its occurrences (absent ones as 0).
#[derive(Debug, PartialEq)]
pub struct Row {
    pub bench: String,
    pub label: String,
    pub func: String,
    pub values: Vec<f64>,
}

impl Row {
    pub fn median(&self) -> f64 {
        super::insn::median(&self.values)
    }

    /// max - min, in instructions per operation; 0 for no values.
    pub fn range(&self) -> f64 {
        let (min, max) = self
            .values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        if self.values.is_empty() {
            0.0
        } else {
            max - min
        }
    }
}

/// Every function of every label, over the occurrences, zero-filled.
pub fn rows(p: &Profiles) -> Vec<Row> {
    let mut out = Vec::new();
    for ((bench, label), occ) in p {
        let funcs: BTreeSet<&String> = occ.iter().flat_map(|m| m.keys()).collect();
        for f in funcs {
            out.push(Row {
                bench: bench.clone(),
                label: label.clone(),
                func: f.clone(),
                values: occ
                    .iter()
                    .map(|m| m.get(f).copied().unwrap_or(0.0))
                    .collect(),
            });
        }
    }
    out
}

/// A boot's repetitions folded into their median: one occurrence per
/// label, as a run contributes to the spread over runs.
pub fn fold(p: &Profiles) -> Profiles {
    let mut out = Profiles::new();
    for r in rows(p) {
        let e = out.entry((r.bench.clone(), r.label.clone())).or_default();
        if e.is_empty() {
            e.push(BTreeMap::new());
        }
        e[0].insert(r.func.clone(), r.median());
    }
    out
}

/// The `n` functions of each label whose count moved most (by range).
pub fn movers(rows: &[Row], n: usize) -> Vec<&Row> {
    let mut by: BTreeMap<(&str, &str), Vec<&Row>> = BTreeMap::new();
    for r in rows {
        by.entry((&r.bench, &r.label)).or_default().push(r);
    }
    let mut out = Vec::new();
    for (_, mut v) in by {
        v.sort_by(|a, b| b.range().total_cmp(&a.range()).then(a.func.cmp(&b.func)));
        out.extend(v.into_iter().take(n));
    }
    out
}

/// Prints the movers, and writes every row to `path` (JSON).
pub fn report(rows: &[Row], over: &str, path: &Path) -> Result<()> {
    println!(
        "{:<16} {:<28} {:<32} {:>12} {:>12}   (kernel instructions per operation, over {over})",
        "BENCH", "LABEL", "FUNCTION", "MEDIAN", "RANGE"
    );
    for r in movers(rows, 8) {
        println!(
            "{:<16} {:<28} {:<32} {:>12.2} {:>12.2}",
            r.bench,
            r.label,
            r.func,
            r.median(),
            r.range()
        );
    }
    let json: Vec<_> = rows
        .iter()
        .map(|r| {
            serde_json::json!({"bench": r.bench, "label": r.label, "function": r.func,
                "values": r.values, "median": r.median(), "range": r.range()})
        })
        .collect();
    if let Some(d) = path.parent() {
        fs::create_dir_all(d)?;
    }
    fs::write(path, serde_json::to_string_pretty(&json)?)?;
    eprintln!("    profile ({over}): {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syms_file_keeps_text_symbols() {
        let map = "ffffffff81000000 T _stext\nffffffff81000100 t helper\nffffffff82000000 D data\nffffffff81000200 W weak\nbroken\nffffffff83000000 B _end\n";
        assert_eq!(
            syms_file(map).unwrap(),
            format!("ffffffff81000000 _stext\nffffffff81000100 helper\nffffffff81000200 weak\nffffffff83000000 {BEYOND}\n")
        );
        assert!(syms_file("ffffffff82000000 D data\n")
            .unwrap_err()
            .to_string()
            .contains("no text symbol"));
        assert!(syms_file("ffffffff81000000 T _stext\n")
            .unwrap_err()
            .to_string()
            .contains("no _end"));
    }

    #[test]
    fn parses_the_plugin_lines() {
        let p = parse("prof mark=0 a=10 b=2\nnoise\nprof mark=1\n").unwrap();
        assert_eq!(
            p,
            [
                (0, vec![("a".to_string(), 10), ("b".to_string(), 2)]),
                (1, vec![])
            ]
        );
        assert!(parse("prof a=1\n")
            .unwrap_err()
            .to_string()
            .contains("no mark"));
        assert!(parse("prof mark=0 a=x\n")
            .unwrap_err()
            .to_string()
            .contains("bad a=x"));
        assert!(parse("prof mark=0 error=stop-without-start\n")
            .unwrap_err()
            .to_string()
            .contains("stop-without-start"));
    }

    #[test]
    fn pairs_with_marks_zero_fills_and_folds() {
        let ktap = "# insn-mark: sd pinned 10\n# insn-mark: sd pinned 10\n# insn-mark: sd pinned 10\n# insn-mark: sd aborted 0\n";
        let prof = "prof mark=0 a=100 slab=30\nprof mark=1 a=100\nprof mark=2 a=110 slab=20\nprof mark=3 a=1\n";
        let p = of_run(ktap, prof).unwrap();
        let r = rows(&p);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].func, "a");
        assert_eq!(r[0].values, [10.0, 10.0, 11.0]);
        assert_eq!(r[1].values, [3.0, 0.0, 2.0]);
        assert_eq!(r[1].range(), 3.0);
        let f = rows(&fold(&p));
        assert_eq!(f[0].values, [10.0]);
        assert_eq!(f[1].values, [2.0]);
        let m = movers(&r, 1);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].func, "slab");
        assert!(of_run(ktap, "prof mark=0\n")
            .unwrap_err()
            .to_string()
            .contains("cannot be paired"));
        assert!(of_run("# insn-mark: sd x 1\n", "prof mark=5\n")
            .unwrap_err()
            .to_string()
            .contains("numbered mark=5"));
    }
}
