//! BPF objects from `bpf/*.bpf.c`: clang-19 `-target bpf`, with vmlinux.h
//! dumped by the tree's own bpftool from the built kernel's BTF.
//! Outputs go to `target/bpf/<kernel build name>/`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{bail, Context, Result};

use crate::kernel::Kernel;
use crate::progress::{log_path, run_logged, Stage};
use crate::Ctx;

/// The LLVM that builds BPF objects here and in the reduced test_progs:
/// bookworm's clang-19. 7.3's vmlinux.h needs it (the kernel builds with
/// `-fms-extensions`, and its BTF dump declares members by tag alone,
/// which clang-14 refuses).
pub const LLVM_VERSION: &str = "19";

/// `clang-19`, `llvm-strip-19`, ...
pub fn llvm(tool: &str) -> String {
    format!("{tool}-{LLVM_VERSION}")
}

/// Flags every BPF object is built with.
const CFLAGS: &[&str] = &[
    "-g",
    "-O2",
    "-target",
    "bpf",
    "-mcpu=v3",
    "-D__TARGET_ARCH_x86",
    "-fms-extensions",
    "-Wno-microsoft-anon-tag",
    "-Wall",
    "-Werror",
];

fn mtime(p: &Path) -> Option<SystemTime> {
    fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Builds vmlinux.h and every `bpf/*.bpf.c`; returns the output directory.
pub fn build(ctx: &Ctx, k: &Kernel) -> Result<PathBuf> {
    let out = ctx.target.join("bpf").join(&k.id);
    fs::create_dir_all(&out)?;
    let log = log_path(&ctx.target, &format!("bpf-{}", k.id));
    let vmlinux_h = out.join("vmlinux.h");
    if mtime(&vmlinux_h) < mtime(&k.vmlinux) {
        let o = Command::new(&k.bpftool)
            .args(["btf", "dump", "file"])
            .arg(&k.vmlinux)
            .args(["format", "c"])
            .output()
            .context("running the tree's bpftool")?;
        if !o.status.success() {
            bail!(
                "bpftool btf dump failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        fs::write(&vmlinux_h, o.stdout)?;
    }
    let src = ctx.root.join("bpf");
    let mut srcs: Vec<PathBuf> = fs::read_dir(&src)
        .with_context(|| format!("reading {}", src.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".bpf.c"))
        .collect();
    srcs.sort();
    let headers: Vec<PathBuf> = fs::read_dir(&src)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "h"))
        .collect();
    let newest_dep = headers
        .iter()
        .chain([&vmlinux_h])
        .filter_map(|p| mtime(p))
        .max();
    let mut stage = None;
    let vmlinux_text = fs::read_to_string(&vmlinux_h).unwrap_or_default();
    // Another compiler or other flags: every object is out of date.
    let cc = format!("{} {}", llvm("clang"), CFLAGS.join(" "));
    let cc_stamp = out.join(".nkdev-cc");
    if fs::read_to_string(&cc_stamp).ok().as_deref() != Some(cc.as_str()) {
        for e in fs::read_dir(&out)?.flatten() {
            if e.file_name().to_string_lossy().ends_with(".bpf.o") {
                fs::remove_file(e.path())?;
            }
        }
        fs::write(&cc_stamp, &cc)?;
    }
    for s in &srcs {
        let name = s
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(".bpf.c", ".bpf.o");
        let obj = out.join(&name);
        let text = fs::read_to_string(s).with_context(|| format!("reading {}", s.display()))?;
        let missing = missing_btf(&text, &vmlinux_text);
        if !missing.is_empty() {
            // A kernel without the series (--base-only, bench
            // --compare-base): leave no stale object behind, and say why.
            let _ = fs::remove_file(&obj);
            eprintln!(
                "    bpf: skipping {} (this kernel's BTF lacks {})",
                s.file_name().unwrap().to_string_lossy(),
                missing.join(", ")
            );
            continue;
        }
        if mtime(&obj).is_some() && mtime(&obj) >= mtime(s) && mtime(&obj) >= newest_dep {
            continue;
        }
        stage.get_or_insert_with(|| {
            Stage::new(format!(
                "bpf: compiling bpf/*.bpf.c with {} into {}",
                llvm("clang"),
                out.display()
            ))
        });
        let mut c = Command::new(llvm("clang"));
        c.args(CFLAGS)
            .arg("-I")
            .arg(&out)
            .arg("-I")
            .arg(&k.libbpf_include)
            .arg("-I")
            .arg(&src)
            .arg("-c")
            .arg(s)
            .arg("-o")
            .arg(&obj);
        run_logged(
            &format!("clang {}", s.file_name().unwrap().to_string_lossy()),
            &mut c,
            &log,
        )?;
    }
    if let Some(s) = stage {
        s.done("compiled");
    }
    Ok(out)
}

/// The `// nkdev: requires-btf struct X` (or `enum X`) lines of a BPF source whose type is
/// not defined in `vmlinux_h`: programs that use kfuncs of the series say so
/// and are skipped on kernels without it.
pub fn missing_btf(src: &str, vmlinux_h: &str) -> Vec<String> {
    src.lines()
        .filter_map(|l| l.trim().strip_prefix("// nkdev: requires-btf "))
        .map(str::trim)
        .filter(|ty| !vmlinux_h.contains(&format!("{ty} {{")))
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::missing_btf;

    #[test]
    fn requires_btf_lines() {
        let src = "// nkdev: requires-btf struct bpf_iter_net\n// nkdev: requires-btf struct sock\nint x;\n";
        let h = "struct sock {\n\tint a;\n};\n";
        assert_eq!(missing_btf(src, h), ["struct bpf_iter_net"]);
        assert!(missing_btf(src, "struct bpf_iter_net {\n};\nstruct sock {\n};").is_empty());
        assert!(missing_btf("int x;", "").is_empty());
    }
}
