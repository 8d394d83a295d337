//! BPF objects from `bpf/*.bpf.c`: clang-14 `-target bpf`, with vmlinux.h
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

fn mtime(p: &Path) -> Option<SystemTime> {
    fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Builds vmlinux.h and every `bpf/*.bpf.c`; returns the output directory.
pub fn build(ctx: &Ctx, k: &Kernel) -> Result<PathBuf> {
    let out = ctx.target.join("bpf").join(k.build.file_name().unwrap());
    fs::create_dir_all(&out)?;
    let log = log_path(&ctx.target, "bpf");
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
    for s in &srcs {
        let name = s
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(".bpf.c", ".bpf.o");
        let obj = out.join(&name);
        if mtime(&obj).is_some() && mtime(&obj) >= mtime(s) && mtime(&obj) >= newest_dep {
            continue;
        }
        stage.get_or_insert_with(|| {
            Stage::new(format!(
                "bpf: compiling bpf/*.bpf.c with clang-14 into {}",
                out.display()
            ))
        });
        let mut c = Command::new("clang-14");
        c.args([
            "-g",
            "-O2",
            "-target",
            "bpf",
            "-mcpu=v3",
            "-D__TARGET_ARCH_x86",
            "-Wall",
            "-Werror",
        ])
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
