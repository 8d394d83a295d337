//! Tidy rules, run as ordinary tests (`cargo test -p xtask`), in the
//! manner of rust-analyzer's xtask: formatting, licence headers, sorted
//! lists, documented commands, no stray top-level files.

#![cfg(test)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            if !p.ends_with("target") && !p.file_name().unwrap().to_string_lossy().starts_with('.')
            {
                files(&p, ext, out);
            }
        } else if p.to_string_lossy().ends_with(ext) {
            out.push(p);
        }
    }
}

#[test]
fn rustfmt_is_clean() {
    // The workspace, and the crates outside it (the TCG plugin).
    for manifest in ["Cargo.toml", "ci/insn-plugin/Cargo.toml"] {
        let out = Command::new(env!("CARGO"))
            .current_dir(root())
            .args(["fmt", "--all", "--check", "--manifest-path", manifest])
            .output()
            .expect("cargo fmt runs");
        assert!(
            out.status.success(),
            "cargo fmt --check ({manifest}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn bpf_sources_have_spdx_headers() {
    let mut v = Vec::new();
    files(&root().join("bpf"), ".c", &mut v);
    files(&root().join("bpf"), ".h", &mut v);
    assert!(!v.is_empty());
    for p in v {
        let first = fs::read_to_string(&p)
            .unwrap()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        assert!(
            first.contains("SPDX-License-Identifier:"),
            "{} lacks an SPDX line",
            p.display()
        );
    }
}

#[test]
fn upstream_test_list_is_sorted_and_unique() {
    let text = fs::read_to_string(root().join("selftests/upstream/bpf.list")).unwrap();
    let names: Vec<String> = crate::upstream::parse_list(&text)
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        names, sorted,
        "selftests/upstream/bpf.list must be sorted, without duplicates"
    );
}

#[test]
fn readme_documents_every_xtask_command() {
    use clap::CommandFactory;
    let readme = fs::read_to_string(root().join("README.md")).unwrap();
    for sub in crate::Cli::command().get_subcommands() {
        let cmd = format!("cargo xtask {}", sub.get_name());
        assert!(readme.contains(&cmd), "README.md does not mention `{cmd}`");
    }
}

#[test]
fn no_stray_top_level_files() {
    let allowed = [
        ".cargo",
        ".ci",
        ".git",
        ".gitignore",
        "Cargo.lock",
        "Cargo.toml",
        "README.md",
        "bpf",
        "ci",
        "docs",
        "kconfigs",
        "patches",
        "rust-userspace",
        "rustfmt.toml",
        "selftests",
        "target",
    ];
    for e in fs::read_dir(root()).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        assert!(
            allowed.contains(&n.as_str()),
            "unexpected top-level entry {n:?}: put it where the layout says"
        );
    }
}

#[test]
fn every_patch_in_series_exists_and_every_patch_is_listed() {
    for e in fs::read_dir(root().join("patches")).unwrap().flatten() {
        let dir = e.path();
        assert!(
            dir.join("series").is_file(),
            "{}: patches/ holds one directory per series, each with a series file",
            dir.display()
        );
        let series = crate::kernel::series::Series::load(&dir).unwrap();
        let listed: Vec<PathBuf> = series.patches;
        for e in fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "patch") {
                assert!(
                    listed.contains(&p),
                    "{} is not in {}/series",
                    p.display(),
                    dir.display()
                );
            }
        }
    }
}

/// The BPF records nkctl reads are bindgen output of the header the BPF
/// program includes; this needs only the host's `linux/types.h`, so it
/// runs on every `cargo test` (`NKDEV_BLESS=1` rewrites the file).
#[test]
fn bpf_records_are_generated_from_their_header() {
    let root = root();
    let text = crate::bindings::generate_records(&root, Path::new("/usr/include")).unwrap();
    let p = crate::bindings::records_path(&root);
    if std::env::var_os("NKDEV_BLESS").is_some() {
        fs::write(&p, &text).unwrap();
    }
    assert!(
        fs::read_to_string(&p).unwrap_or_default() == text,
        "{} is out of date with {}: run `cargo xtask bindings` (or NKDEV_BLESS=1 cargo test -p xtask bpf_records)",
        p.display(),
        crate::bindings::RECORDS_HEADER
    );
}

/// The `[dependencies]`-like tables of a Cargo.toml: (table, crate names).
fn manifest_deps(toml: &str) -> Vec<(String, String)> {
    let mut v = Vec::new();
    let mut table = String::new();
    for line in toml.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            table = l.trim_matches(['[', ']']).to_string();
            continue;
        }
        if !table.ends_with("dependencies") || table.starts_with("workspace") {
            continue;
        }
        if let Some((name, _)) = l.split_once('=') {
            let name = name.trim().trim_end_matches(".workspace").trim();
            if !name.is_empty() && !name.starts_with('#') {
                v.push((table.clone(), name.to_string()));
            }
        }
    }
    v
}

/// Every dependency a workspace crate declares is used by its code (what
/// cargo-machete checks): an unused one costs build time and hides what
/// the crate really needs. A dev-dependency that repeats a normal one to
/// turn on a feature (nk-sys `fake`) counts as used.
#[test]
fn no_unused_dependencies() {
    let root = root();
    let ws = fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let mut bad = Vec::new();
    for member in ws
        .split("members = [")
        .nth(1)
        .unwrap()
        .split(']')
        .next()
        .unwrap()
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
    {
        let dir = root.join(member);
        let toml = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        let mut src = Vec::new();
        files(&dir, ".rs", &mut src);
        let code: String = src
            .iter()
            .map(|p| fs::read_to_string(p).unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        let deps = manifest_deps(&toml);
        for (table, name) in &deps {
            let id = name.replace('-', "_");
            let used = code.contains(&format!("{id}::"))
                || code.contains(&format!("use {id}"))
                || code.contains(&format!("{id}!"));
            let repeats_a_normal_dep = table != "dependencies"
                && deps.iter().any(|(t, n)| t == "dependencies" && n == name);
            if !used && !repeats_a_normal_dep {
                bad.push(format!("{member}: [{table}] {name}"));
            }
        }
    }
    assert!(bad.is_empty(), "declared but unused: {bad:?}");
}

/// nk-bpf builds every `bpf_attr` in `attr.rs`, from the zeroed union with
/// fields written in place (issue 15: the rule used to be restated in five
/// files while other sites used struct literals).
#[test]
fn bpf_attr_is_built_in_attr_rs() {
    let src = root().join("rust-userspace/nk-bpf/src");
    let mut rs = Vec::new();
    files(&src, "rs", &mut rs);
    let mut bad = Vec::new();
    for f in rs.iter().filter(|f| !f.ends_with("attr.rs")) {
        let text = std::fs::read_to_string(f).unwrap();
        // Unit tests may build attrs for the fake kernel to answer with.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (n, l) in code.lines().enumerate() {
            let code = l.split("//").next().unwrap_or_default();
            if code.contains("bpf_attr__bindgen_ty") || code.contains("bpf_attr::default()") {
                bad.push(format!("{}:{}: {}", f.display(), n + 1, l.trim()));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "bpf_attr built outside nk-bpf/src/attr.rs:\n{}",
        bad.join("\n")
    );
}

/// Every public entry point of the libraries an agent calls has a doc
/// example that `cargo test --doc` compiles (and runs, where it needs no
/// root): issue 15.
#[test]
fn library_entry_points_have_doc_examples() {
    let files = [
        "nk-bpf/src/mprog.rs",
        "nk-bpf/src/pin.rs",
        "nk-bpf/src/map.rs",
        "nk-bpf/src/iter.rs",
        "nk-bpf/src/run.rs",
        "nk-bpf/src/tracing.rs",
        "nk-bpf/src/features.rs",
        "nk-netlink/src/addr.rs",
        "nk-netlink/src/route.rs",
        "nk-netlink/src/neigh.rs",
        "nk-netlink/src/events.rs",
    ];
    let mut missing = Vec::new();
    for f in files {
        let p = root().join("rust-userspace").join(f);
        let text = fs::read_to_string(&p).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let lines: Vec<&str> = code.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let t = l.trim_start();
            let Some(rest) = t.strip_prefix("pub fn ") else {
                continue;
            };
            let name = rest.split(['(', '<']).next().unwrap_or_default();
            // Snapshot helpers, decoders and the attach-type accessor are
            // not what an agent starts from.
            if name.ends_with("_attr")
                || matches!(
                    name,
                    "attach_type" | "decode" | "from_btf" | "from_file" | "missing_for"
                )
            {
                continue;
            }
            let doc: Vec<&&str> = lines[..i]
                .iter()
                .rev()
                .take_while(|l| {
                    l.trim_start().starts_with("///") || l.trim_start().starts_with("#[")
                })
                .collect();
            if !doc.iter().any(|l| l.contains("```")) {
                missing.push(format!("{f}: {name}"));
            }
        }
    }
    assert!(missing.is_empty(), "no doc example: {missing:?}");
}
