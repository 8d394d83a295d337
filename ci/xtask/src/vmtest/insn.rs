//! `cargo xtask bench --measure insn`: guest instruction counts from the
//! TCG plugin of `ci/insn-plugin`, which do not move with the host's load
//! as wall time under TCG does.
//!
//! The guest's benchmarks mark what they measure (`bench/insn.rs` of
//! nk-selftests): each span prints `# insn-mark: <bench> <label> <ops>`
//! after its end, and the plugin writes one `insn mark=N ...` line per
//! span to `insn.txt` in the run directory. The n-th mark pairs with the
//! plugin's mark=n.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::bench::Metric;
use crate::progress::{log_path, run_logged, Stage};
use crate::Ctx;

/// Kernel functions whose entries are counted per operation, when the
/// kernel has them: pskb_expand_head() is the reallocation that a missing
/// headroom costs (vxlan_headroom).
pub const FUNCS: &[&str] = &["pskb_expand_head"];

/// Builds the plugin (a crate of its own, outside the workspace); its path.
pub fn build_plugin(ctx: &Ctx) -> Result<PathBuf> {
    let manifest = ctx.root.join("ci/insn-plugin/Cargo.toml");
    let target = ctx.target.join("insn-plugin");
    let stage = Stage::new("insn: building the TCG plugin (ci/insn-plugin)");
    let log = log_path(&ctx.target, "insn-plugin-build");
    run_logged(
        "cargo build (nk-insn-plugin)",
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "--manifest-path"])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target),
        &log,
    )?;
    stage.done("built");
    let so = target.join("release/libnk_insn_plugin.so");
    if !so.is_file() {
        bail!("{}: not built (log: {})", so.display(), log.display());
    }
    Ok(so)
}

/// The `-plugin` argument: the plugin, its output file, and the entry
/// addresses of [`FUNCS`] from the kernel's System.map. With `profile`
/// (`--by-function`: the symbols file to write, the profile's output), the
/// plugin also charges kernel instructions to functions.
pub fn plugin_arg(
    so: &Path,
    out: &Path,
    system_map: &Path,
    profile: Option<(&Path, &Path)>,
) -> Result<String> {
    let map = fs::read_to_string(system_map)
        .with_context(|| format!("reading {}", system_map.display()))?;
    let mut arg = format!("{},out={}", so.display(), out.display());
    for (name, addr) in func_addrs(&map, FUNCS) {
        arg.push_str(&format!(",func={name}@0x{addr:x}"));
    }
    let mut paths = vec![so, out];
    if let Some((syms, prof)) = profile {
        fs::write(syms, super::profile::syms_file(&map)?)
            .with_context(|| format!("writing {}", syms.display()))?;
        arg.push_str(&format!(",syms={},prof={}", syms.display(), prof.display()));
        paths.extend([syms, prof]);
    }
    for p in paths {
        if p.display().to_string().contains(',') {
            bail!("{}: a -plugin path may not contain a comma", p.display());
        }
    }
    Ok(arg)
}

/// The text-symbol addresses of `names` in a System.map.
pub fn func_addrs<'a>(map: &str, names: &[&'a str]) -> Vec<(&'a str, u64)> {
    names
        .iter()
        .filter_map(|n| {
            map.lines().find_map(|l| {
                let mut f = l.split_whitespace();
                let addr = f.next()?;
                let kind = f.next()?;
                let sym = f.next()?;
                (sym == *n && matches!(kind, "T" | "t"))
                    .then(|| u64::from_str_radix(addr, 16).ok())
                    .flatten()
                    .map(|a| (*n, a))
            })
        })
        .collect()
}

/// One plugin line: `insn mark=N user=U kernel=K total=T ... func.X=C`.
#[derive(Debug, Default, PartialEq)]
pub struct Count {
    pub mark: u64,
    /// The vCPU that ran the stop marker.
    pub vcpu: Option<usize>,
    pub user: u64,
    pub kernel: u64,
    /// Each vCPU's (user, kernel).
    pub cpus: Vec<(u64, u64)>,
    pub funcs: Vec<(String, u64)>,
}

impl Count {
    /// What the marking vCPU alone executed (the benchmark is pinned to
    /// it with --pin-cpu): no other vCPU's unrelated work.
    pub fn local(&self) -> Option<u64> {
        self.cpus.get(self.vcpu?).map(|(u, k)| u + k)
    }
}

pub fn parse_counts(text: &str) -> Result<Vec<Count>> {
    let mut v = Vec::new();
    for (n, l) in text.lines().enumerate() {
        let Some(rest) = l.strip_prefix("insn ") else {
            continue;
        };
        let mut c = Count::default();
        let mut have_mark = false;
        for kv in rest.split_whitespace() {
            let Some((k, val)) = kv.split_once('=') else {
                continue;
            };
            let num = || -> Result<u64> {
                val.parse()
                    .with_context(|| format!("insn.txt:{}: bad {k}={val}", n + 1))
            };
            match k {
                "mark" => {
                    c.mark = num()?;
                    have_mark = true;
                }
                "user" => c.user = num()?,
                "vcpu" => c.vcpu = Some(num()? as usize),
                "kernel" => c.kernel = num()?,
                "error" => bail!("insn.txt:{}: the plugin reported {val}", n + 1),
                _ => {
                    if let Some(f) = k.strip_prefix("func.") {
                        c.funcs.push((f.to_string(), num()?));
                    } else if let Some(i) = k.strip_prefix("cpu").and_then(|i| i.parse().ok()) {
                        let (u, kern) = val
                            .split_once('/')
                            .and_then(|(u, kk)| Some((u.parse().ok()?, kk.parse().ok()?)))
                            .with_context(|| format!("insn.txt:{}: bad {k}={val}", n + 1))?;
                        let i: usize = i;
                        if c.cpus.len() <= i {
                            c.cpus.resize(i + 1, (0, 0));
                        }
                        c.cpus[i] = (u, kern);
                    }
                }
            }
        }
        if !have_mark {
            bail!("insn.txt:{}: no mark= in {l:?}", n + 1);
        }
        v.push(c);
    }
    Ok(v)
}

/// The guest's `# insn-mark: <bench> <label> <ops>` lines, in order.
pub fn parse_marks(ktap: &str) -> Vec<(String, String, u64)> {
    super::bench::diag_triples(ktap, "# insn-mark: ")
}

/// Instructions per operation for each mark with operations:
/// `<label>_insns` (all), `<label>_kernel_insns`, `<label>_user_insns`,
/// `<label>_local_insns` (the benchmark's vCPU, only where the guest had
/// more than one) and `<label>_<func>_calls`, each per operation. A
/// function's calls are reported for every mark of a benchmark where one
/// of its marks counted a call, and not at all where none did: a column of
/// zeros says nothing, but `room96` next to `room0` must show its 0.
pub fn metrics(ktap: &str, counts: &str) -> Result<Vec<Metric>> {
    let marks = parse_marks(ktap);
    let counts = parse_counts(counts)?;
    if marks.len() != counts.len() {
        bail!(
            "{} marks in the guest's output but {} counts from the plugin: they cannot be paired",
            marks.len(),
            counts.len()
        );
    }
    let called: std::collections::BTreeSet<(&str, &str)> = marks
        .iter()
        .zip(&counts)
        .filter(|((_, _, ops), _)| *ops > 0)
        .flat_map(|((bench, ..), c)| {
            c.funcs
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(move |(f, _)| (bench.as_str(), f.as_str()))
        })
        .collect();
    let mut out = Vec::new();
    for (i, ((bench, label, ops), c)) in marks.iter().zip(&counts).enumerate() {
        if c.mark != i as u64 {
            bail!("the plugin's count {i} is numbered mark={}", c.mark);
        }
        if *ops == 0 {
            continue;
        }
        let per = |v: u64| v as f64 / *ops as f64;
        out.push((
            bench.clone(),
            format!("{label}_insns"),
            per(c.user + c.kernel),
        ));
        out.push((
            bench.clone(),
            format!("{label}_kernel_insns"),
            per(c.kernel),
        ));
        out.push((bench.clone(), format!("{label}_user_insns"), per(c.user)));
        if let Some(l) = c.local().filter(|_| c.cpus.len() > 1) {
            out.push((bench.clone(), format!("{label}_local_insns"), per(l)));
        }
        for (f, n) in &c.funcs {
            if called.contains(&(bench.as_str(), f.as_str())) {
                out.push((bench.clone(), format!("{label}_{f}_calls"), per(*n)));
            }
        }
    }
    Ok(out)
}

/// Across runs: each metric's median, minimum, maximum and spread
/// ((max - min) / median), in the order of the first run.
pub struct Spread {
    pub bench: String,
    pub metric: String,
    pub values: Vec<f64>,
}

/// The median of `v` (the mean of the middle two for an even count); 0
/// for none.
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

impl Spread {
    pub fn median(&self) -> f64 {
        median(&self.values)
    }

    pub fn min(&self) -> f64 {
        self.values.iter().copied().fold(f64::INFINITY, f64::min)
    }

    pub fn max(&self) -> f64 {
        self.values
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max)
    }

    /// (max - min) / median, in percent; 0 for a zero median.
    pub fn spread_pct(&self) -> f64 {
        let m = self.median();
        if m == 0.0 {
            0.0
        } else {
            (self.max() - self.min()) / m * 100.0
        }
    }
}

pub fn spreads(runs: &[Vec<Metric>]) -> Vec<Spread> {
    let mut order: Vec<(String, String)> = Vec::new();
    let mut vals: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for run in runs {
        for (b, m, v) in run {
            let k = (b.clone(), m.clone());
            if !vals.contains_key(&k) {
                order.push(k.clone());
            }
            vals.entry(k).or_default().push(*v);
        }
    }
    order
        .into_iter()
        .map(|k| Spread {
            values: vals.remove(&k).unwrap_or_default(),
            bench: k.0,
            metric: k.1,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_pair_with_counts() {
        let ktap = "  # insn-mark: sock_destroy bpf_ns10_by0_socket 1000\n# bench: x y 1\n  # insn-mark: sock_destroy aborted 0\n";
        let counts = "insn mark=0 vcpu=1 user=2000 kernel=8000 total=10000 cpu0=1000/3000 cpu1=1000/5000 func.pskb_expand_head=3\ninsn mark=1 user=1 kernel=1 total=2 cpu0=1/1 func.pskb_expand_head=0\n";
        let m = metrics(ktap, counts).unwrap();
        assert_eq!(
            m,
            [
                (
                    "sock_destroy".into(),
                    "bpf_ns10_by0_socket_insns".into(),
                    10.0
                ),
                (
                    "sock_destroy".into(),
                    "bpf_ns10_by0_socket_kernel_insns".into(),
                    8.0
                ),
                (
                    "sock_destroy".into(),
                    "bpf_ns10_by0_socket_user_insns".into(),
                    2.0
                ),
                (
                    "sock_destroy".into(),
                    "bpf_ns10_by0_socket_local_insns".into(),
                    6.0
                ),
                (
                    "sock_destroy".into(),
                    "bpf_ns10_by0_socket_pskb_expand_head_calls".into(),
                    0.003
                ),
            ]
        );
        // One vCPU: no local count. No call in any mark of the benchmark:
        // no calls metric; one call in one mark: the metric on every mark.
        let two = "  # insn-mark: vx room0 10\n  # insn-mark: vx room96 10\n  # insn-mark: tcx cycle 10\n";
        let counts = "insn mark=0 vcpu=0 user=0 kernel=100 cpu0=0/100 func.pskb_expand_head=10\n\
                      insn mark=1 vcpu=0 user=0 kernel=90 cpu0=0/90 func.pskb_expand_head=0\n\
                      insn mark=2 vcpu=0 user=0 kernel=50 cpu0=0/50 func.pskb_expand_head=0\n";
        let names: Vec<String> = metrics(two, counts)
            .unwrap()
            .into_iter()
            .map(|(b, m, _)| format!("{b}.{m}"))
            .collect();
        assert_eq!(
            names,
            [
                "vx.room0_insns",
                "vx.room0_kernel_insns",
                "vx.room0_user_insns",
                "vx.room0_pskb_expand_head_calls",
                "vx.room96_insns",
                "vx.room96_kernel_insns",
                "vx.room96_user_insns",
                "vx.room96_pskb_expand_head_calls",
                "tcx.cycle_insns",
                "tcx.cycle_kernel_insns",
                "tcx.cycle_user_insns",
            ]
        );
        let short = metrics(ktap, "insn mark=0 user=1 kernel=1\n").unwrap_err();
        assert!(short.to_string().contains("cannot be paired"), "{short}");
        let err = parse_counts("insn mark=0 error=stop-without-start\n").unwrap_err();
        assert!(err.to_string().contains("stop-without-start"));
    }

    #[test]
    fn system_map_addresses() {
        let map = "ffffffff812cb10d T pskb_expand_head\nffffffff81000000 D pskb_expand_head_data\nffffffff81000010 t helper\n";
        assert_eq!(
            func_addrs(map, &["pskb_expand_head", "helper", "missing"]),
            [
                ("pskb_expand_head", 0xffff_ffff_812c_b10d),
                ("helper", 0xffff_ffff_8100_0010)
            ]
        );
    }

    #[test]
    fn spread_of_runs() {
        let run = |v: f64| vec![("b".to_string(), "m".to_string(), v)];
        let s = spreads(&[run(100.0), run(100.4), run(99.8), run(100.1), run(100.0)]);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].median(), 100.0);
        assert!((s[0].spread_pct() - 0.6).abs() < 1e-9);
    }

    #[test]
    fn plugin_arg_with_and_without_a_profile() {
        let dir = std::env::temp_dir().join(format!("nk-insn-arg-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let map = dir.join("System.map");
        fs::write(
            &map,
            "ffffffff81000000 T _stext\nffffffff81a0b0c0 T pskb_expand_head\nffffffff82000000 D x\nffffffff83000000 B _end\n",
        )
        .unwrap();
        let (so, out) = (Path::new("/p/plugin.so"), Path::new("/r/insn.txt"));
        assert_eq!(
            plugin_arg(so, out, &map, None).unwrap(),
            "/p/plugin.so,out=/r/insn.txt,func=pskb_expand_head@0xffffffff81a0b0c0"
        );
        let syms = dir.join("syms.txt");
        let arg = plugin_arg(so, out, &map, Some((&syms, Path::new("/r/prof.txt")))).unwrap();
        assert!(arg.ends_with(&format!(",syms={},prof=/r/prof.txt", syms.display())));
        assert_eq!(
            fs::read_to_string(&syms).unwrap(),
            "ffffffff81000000 _stext\nffffffff81a0b0c0 pskb_expand_head\nffffffff83000000 (beyond_the_image:bpf_jit,modules)\n"
        );
        let err = plugin_arg(so, out, &map, Some((&syms, Path::new("/r/a,b"))))
            .unwrap_err()
            .to_string();
        assert!(err.contains("may not contain a comma"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
