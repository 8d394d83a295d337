//! Kernel configuration: tinyconfig + the profile's `kconfigs/*.config`
//! fragments, merged with `merge_config.sh` and settled with
//! `olddefconfig`. Every option a fragment asks for must survive; Kconfig
//! drops options with unmet dependencies silently, so nkdev checks.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::progress::{log_path, run_logged, Stage};
use crate::Ctx;

/// A kernel profile: which fragments it merges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Profile {
    /// Small and fast: BPF, netkit, veth, vxlan, 9p/virtio.
    Vm,
    /// `vm` plus KASAN, lockdep, PROVE_RCU, DEBUG_NET and refcount trackers.
    Debug,
}

impl Profile {
    pub fn name(self) -> &'static str {
        match self {
            Profile::Vm => "vm",
            Profile::Debug => "debug",
        }
    }

    /// Fragments used by this profile on a base of `version`
    /// (`major.minor`), in merge order: each `kconfigs/NAME.config`, then
    /// `kconfigs/<version>/NAME.config` where that exists, for symbols
    /// one base has and the other does not (CONFIG_PROC_SYSCTL is gone in
    /// 7.3).
    pub fn fragments(self, kconfigs: &Path, version: &str) -> Vec<PathBuf> {
        let mut names = vec!["vm", "bpf", "net"];
        if self == Profile::Debug {
            names.push("debug");
        }
        let mut v = Vec::new();
        for n in names {
            v.push(kconfigs.join(format!("{n}.config")));
            let own = kconfigs.join(version).join(format!("{n}.config"));
            if own.is_file() {
                v.push(own);
            }
        }
        v
    }

    /// Guest memory: KASAN needs room for its shadow.
    pub fn guest_mem_mb(self) -> u32 {
        match self {
            Profile::Vm => 1024,
            Profile::Debug => 2048,
        }
    }
}

/// What a fragment asks for: `Some(value)` or `None` for "is not set".
pub type Requests = BTreeMap<String, (Option<String>, String)>;

/// Parses fragments into option -> (value, where requested).
pub fn parse_fragments(frags: &[PathBuf]) -> Result<Requests> {
    let mut req = Requests::new();
    for f in frags {
        let text = fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            let at = format!("{}:{}", f.file_name().unwrap().to_string_lossy(), n + 1);
            if let Some(rest) = line.strip_prefix("# CONFIG_") {
                if let Some(sym) = rest.strip_suffix(" is not set") {
                    req.insert(format!("CONFIG_{sym}"), (None, at));
                }
            } else if line.starts_with("CONFIG_") {
                let Some((k, v)) = line.split_once('=') else {
                    bail!("{at}: malformed line {line:?}");
                };
                req.insert(k.to_string(), (Some(v.to_string()), at));
            } else if !line.is_empty() && !line.starts_with('#') {
                bail!("{at}: not a Kconfig line: {line:?}");
            }
        }
    }
    Ok(req)
}

/// Parses a `.config` into option -> value (options that are not set are absent).
pub fn parse_dotconfig(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| l.starts_with("CONFIG_"))
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// Options that did not survive: (option, requested, got, where).
pub fn dropped(req: &Requests, got: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, (want, at)) in req {
        let have = got.get(k);
        let ok = match (want, have) {
            (None, None) => true,
            (None, Some(v)) => v == "n",
            (Some(w), Some(h)) => w == h,
            (Some(w), None) => w == "n",
        };
        if !ok {
            out.push(format!(
                "{k}: requested {} ({at}), got {}",
                want.as_deref().unwrap_or("not set"),
                have.map(String::as_str).unwrap_or("not set")
            ));
        }
    }
    out
}

/// The Kconfig symbols that `patches` add (`+config NAME` and
/// `+menuconfig NAME` lines), as `CONFIG_NAME`.
pub fn series_symbols(patches: &[PathBuf]) -> Result<BTreeSet<String>> {
    let mut syms = BTreeSet::new();
    for p in patches {
        let text = fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        syms.extend(symbols_added(&text));
    }
    Ok(syms)
}

fn symbols_added(patch: &str) -> impl Iterator<Item = String> + '_ {
    patch.lines().filter_map(|l| {
        let l = l.strip_prefix('+')?;
        let name = l
            .strip_prefix("config ")
            .or_else(|| l.strip_prefix("menuconfig "))?
            .trim();
        (!name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
            .then(|| format!("CONFIG_{name}"))
    })
}

/// Splits `lost` (from [`dropped`]) into what is an error and what is
/// expected: options the series adds (`series_adds`) that this tree's
/// Kconfig does not know at all (olddefconfig wrote neither `NAME=` nor
/// `# NAME is not set`), as on a base built without the series.
pub fn split_unknown_series_symbols(
    lost: Vec<String>,
    series_adds: &BTreeSet<String>,
    dotconfig: &str,
) -> (Vec<String>, Vec<String>) {
    lost.into_iter().partition(|l| {
        let sym = l.split(':').next().unwrap_or_default();
        let known = dotconfig.lines().any(|d| {
            d.strip_prefix(sym).is_some_and(|r| r.starts_with('='))
                || d == format!("# {sym} is not set")
        });
        !series_adds.contains(sym) || known
    })
}

/// Writes `<build>/.config` for `profile` unless it is already current.
/// Returns true when the config changed. `series_adds` are the symbols
/// of a series that is not applied (`--base-only`): options for them are
/// expected to be missing.
pub fn configure(
    ctx: &Ctx,
    tree: &Path,
    build: &Path,
    profile: Profile,
    version: &str,
    tree_head: &str,
    series_adds: &BTreeSet<String>,
) -> Result<bool> {
    let mm = version.split('.').take(2).collect::<Vec<_>>().join(".");
    let frags = profile.fragments(&ctx.root.join("kconfigs"), &mm);
    let mut key = format!("{tree_head}\n");
    for f in &frags {
        key.push_str(&fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?);
    }
    let key = super::base::hex(&<sha2::Sha256 as sha2::Digest>::digest(key.as_bytes()));
    let key_file = build.join(".nkdev-config-key");
    if build.join(".config").exists()
        && fs::read_to_string(&key_file).ok().as_deref() == Some(key.as_str())
    {
        return Ok(false);
    }
    let stage = Stage::new(format!(
        "kernel: configuring profile {} (tinyconfig + {} fragments)",
        profile.name(),
        frags.len()
    ));
    let scratch = build.join(".nkdev-kconfig");
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch)?;
    let log = log_path(
        &ctx.target,
        &format!(
            "kernel-config-{mm}-{}",
            build.file_name().unwrap_or_default().to_string_lossy()
        ),
    );
    let _ = fs::remove_file(&log);
    let make = |args: &[&str]| {
        let mut c = Command::new("make");
        c.arg("-C")
            .arg(tree)
            .arg(format!("O={}", scratch.display()))
            .args(args);
        c
    };
    run_logged("make tinyconfig", &mut make(&["tinyconfig"]), &log)?;
    let mut merge = Command::new(tree.join("scripts/kconfig/merge_config.sh"));
    merge
        .current_dir(tree)
        .arg("-m")
        .arg("-O")
        .arg(&scratch)
        .arg(scratch.join(".config"))
        .args(&frags);
    run_logged("merge_config.sh", &mut merge, &log)?;
    run_logged("make olddefconfig", &mut make(&["olddefconfig"]), &log)?;
    let text = fs::read_to_string(scratch.join(".config"))?;
    let got = parse_dotconfig(&text);
    let (lost, absent) =
        split_unknown_series_symbols(dropped(&parse_fragments(&frags)?, &got), series_adds, &text);
    for a in &absent {
        eprintln!("    not in the base (the series adds it): {a}");
    }
    if !lost.is_empty() {
        bail!(
            "{} config option(s) requested by kconfigs/ were dropped by olddefconfig \
             (usually an unmet dependency; look the symbol up with `make menuconfig`, key /):\n    {}",
            lost.len(),
            lost.join("\n    ")
        );
    }
    let new = fs::read(scratch.join(".config"))?;
    let changed = fs::read(build.join(".config")).ok().as_deref() != Some(&new[..]);
    if changed {
        fs::write(build.join(".config"), &new)?;
    }
    fs::write(&key_file, key)?;
    let _ = fs::remove_dir_all(&scratch);
    stage.done(if changed {
        "config written"
    } else {
        "config unchanged"
    });
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_of_series_symbols_are_expected_to_be_missing_on_the_base() {
        let patch = "+config BPF_KFUNC_KUNIT_TEST\n+\tbool \"x\"\n config BPF_LSM\n+menuconfig NEW_MENU\n+config  \n";
        let adds: BTreeSet<String> = symbols_added(patch).collect();
        assert_eq!(
            adds.iter().map(String::as_str).collect::<Vec<_>>(),
            ["CONFIG_BPF_KFUNC_KUNIT_TEST", "CONFIG_NEW_MENU"]
        );
        let lost = vec![
            "CONFIG_BPF_KFUNC_KUNIT_TEST: requested y (bpf.config:3), got not set".to_string(),
            "CONFIG_NEW_MENU: requested y (bpf.config:4), got not set".to_string(),
            "CONFIG_KUNIT: requested y (bpf.config:1), got not set".to_string(),
        ];
        // NEW_MENU is known to this tree (an unmet dependency): still an
        // error, as is KUNIT, which the series does not add.
        let dotconfig = "CONFIG_BPF=y\n# CONFIG_NEW_MENU is not set\n";
        let (errors, absent) = split_unknown_series_symbols(lost, &adds, dotconfig);
        assert_eq!(absent.len(), 1);
        assert!(absent[0].starts_with("CONFIG_BPF_KFUNC_KUNIT_TEST:"));
        assert_eq!(errors.len(), 2);
        assert!(errors[0].starts_with("CONFIG_NEW_MENU:"));
    }

    #[test]
    fn dropped_options_are_reported_with_their_origin() {
        let dir = std::env::temp_dir().join(format!("nkdev-cfg-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let f = dir.join("a.config");
        fs::write(&f, "# comment\nCONFIG_NET_SCH_INGRESS=y\n# CONFIG_SLUB_TINY is not set\nCONFIG_NR_CPUS=8\n").unwrap();
        let req = parse_fragments(&[f]).unwrap();
        let got = parse_dotconfig(
            "CONFIG_SLUB_TINY=y\nCONFIG_NR_CPUS=8\n# CONFIG_NET_SCH_INGRESS is not set\n",
        );
        let lost = dropped(&req, &got);
        assert_eq!(
            lost,
            [
                "CONFIG_NET_SCH_INGRESS: requested y (a.config:2), got not set",
                "CONFIG_SLUB_TINY: requested not set (a.config:3), got y",
            ]
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn malformed_fragment_lines_are_rejected() {
        let dir = std::env::temp_dir().join(format!("nkdev-cfg2-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let f = dir.join("b.config");
        fs::write(&f, "NET_SCHED=y\n").unwrap();
        let err = parse_fragments(&[f]).unwrap_err().to_string();
        assert!(err.contains("b.config:1: not a Kconfig line"), "{err}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn shipped_fragments_parse() {
        let k = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../kconfigs");
        for p in [Profile::Vm, Profile::Debug] {
            for b in crate::kernel::BaseName::ALL {
                let req = parse_fragments(&p.fragments(&k, b.version())).unwrap();
                assert!(req.contains_key("CONFIG_NETKIT"));
            }
        }
        // 7.3 has no CONFIG_PROC_SYSCTL (it became CONFIG_SYSCTL): each
        // base asks for its own symbol.
        let asks = |v, sym| {
            parse_fragments(&Profile::Vm.fragments(&k, v))
                .unwrap()
                .contains_key(sym)
        };
        assert!(asks("6.12", "CONFIG_PROC_SYSCTL") && !asks("7.3", "CONFIG_PROC_SYSCTL"));
        assert!(asks("7.3", "CONFIG_SYSCTL"));
    }
}
