//! Host prerequisites: checks that the tools nkdev needs are present and,
//! when run as root on Debian, installs the missing ones with apt
//! (including bookworm-backports for qemu, iproute2 and bpftool).
//! As non-root it prints the exact command to run instead.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::progress::{log_path, run_logged, Stage};

/// A tool nkdev runs, and the Debian package that provides it.
struct Tool {
    bin: &'static str,
    pkg: &'static str,
    backports: bool,
}

const TOOLS: &[Tool] = &[
    Tool {
        bin: "gcc",
        pkg: "build-essential",
        backports: false,
    },
    Tool {
        bin: "make",
        pkg: "build-essential",
        backports: false,
    },
    Tool {
        bin: "flex",
        pkg: "flex",
        backports: false,
    },
    Tool {
        bin: "bison",
        pkg: "bison",
        backports: false,
    },
    Tool {
        bin: "bc",
        pkg: "bc",
        backports: false,
    },
    Tool {
        bin: "pahole",
        pkg: "dwarves",
        backports: false,
    },
    Tool {
        bin: "rsync",
        pkg: "rsync",
        backports: false,
    },
    Tool {
        bin: "cpio",
        pkg: "cpio",
        backports: false,
    },
    Tool {
        bin: "ccache",
        pkg: "ccache",
        backports: false,
    },
    Tool {
        bin: "git",
        pkg: "git",
        backports: false,
    },
    Tool {
        bin: "perl",
        pkg: "perl",
        backports: false,
    },
    Tool {
        bin: "python3",
        pkg: "python3",
        backports: false,
    },
    Tool {
        bin: "xz",
        pkg: "xz-utils",
        backports: false,
    },
    // BPF objects and the reduced test_progs (bpf.rs, LLVM_VERSION).
    Tool {
        bin: "clang-19",
        pkg: "clang-19",
        backports: false,
    },
    Tool {
        bin: "llvm-strip-19",
        pkg: "llvm-19",
        backports: false,
    },
    Tool {
        bin: "ld.lld-19",
        pkg: "lld-19",
        backports: false,
    },
    Tool {
        bin: "pkg-config",
        pkg: "pkg-config",
        backports: false,
    },
    Tool {
        bin: "qemu-system-x86_64",
        pkg: "qemu-system-x86",
        backports: true,
    },
    Tool {
        bin: "ip",
        pkg: "iproute2",
        backports: true,
    },
    Tool {
        bin: "bpftool",
        pkg: "bpftool",
        backports: true,
    },
    // Upstream selftests (tc_redirect) ping through the topologies.
    Tool {
        bin: "ping",
        pkg: "iputils-ping",
        backports: false,
    },
    // `cargo xtask golden` records netlink traffic on nlmon0.
    Tool {
        bin: "tcpdump",
        pkg: "tcpdump",
        backports: false,
    },
    // The sock_destroy benchmark counts syscalls with `strace -c`.
    Tool {
        bin: "strace",
        pkg: "strace",
        backports: false,
    },
];

/// Packages that provide headers or libraries, checked by a file they own.
const LIBS: &[(&str, &str)] = &[
    ("/usr/include/libelf.h", "libelf-dev"),
    ("/usr/include/openssl/ssl.h", "libssl-dev"),
    ("/usr/include/zlib.h", "zlib1g-dev"),
    ("/usr/include/zstd.h", "libzstd-dev"),
    ("/usr/include/sys/capability.h", "libcap-dev"),
    ("/usr/lib/llvm-14/lib/libclang.so", "libclang-14-dev"),
    ("/usr/src/linux-source-6.12.tar.xz", "linux-source-6.12"),
    // What Debian's rustc-web and cargo-web (the MSRV toolchain that
    // `cargo xtask test` unpacks into the cache, see toolchain.rs) link.
    ("/usr/lib/x86_64-linux-gnu/libLLVM.so.19.1", "libllvm19"),
    ("/usr/lib/x86_64-linux-gnu/libpcre.so.3", "libpcre3"),
    (
        "/usr/lib/x86_64-linux-gnu/libhttp_parser.so.2.9",
        "libhttp-parser2.9",
    ),
    ("/usr/lib/x86_64-linux-gnu/libssh2.so.1", "libssh2-1"),
    // `bench` renders its comparisons as PNG charts.
    (
        "/usr/lib/python3/dist-packages/matplotlib/__init__.py",
        "python3-matplotlib",
    ),
];

/// A tool, the arguments that print its version, the text before the
/// version, and the minimum (major, minor).
type MinVersion = (
    &'static str,
    &'static [&'static str],
    &'static str,
    (u32, u32),
);

/// Minimum versions for tools whose old bookworm builds lack netkit/tcx.
const MIN_VERSIONS: &[MinVersion] = &[
    ("ip", &["-V"], "iproute2-", (6, 6)),
    ("bpftool", &["version"], "bpftool v", (7, 3)),
    ("qemu-system-x86_64", &["--version"], "version ", (8, 0)),
];

const BACKPORTS_LIST: &str = "/etc/apt/sources.list.d/nkdev-backports.list";
const BACKPORTS_LINE: &str = "deb http://deb.debian.org/debian bookworm-backports main\n";

fn which(bin: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false)
}

fn version_of(bin: &str, args: &[&str], marker: &str) -> Option<(u32, u32)> {
    let out = Command::new(bin).args(args).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let at = text.find(marker)? + marker.len();
    let mut it = text[at..]
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// What is missing: (plain packages, backports packages).
fn missing() -> (Vec<&'static str>, Vec<&'static str>) {
    let mut plain = Vec::new();
    let mut bpo = Vec::new();
    let mut add = |pkg: &'static str, backports: bool| {
        let v = if backports { &mut bpo } else { &mut plain };
        if !v.contains(&pkg) {
            v.push(pkg);
        }
    };
    for t in TOOLS {
        if !which(t.bin) {
            add(t.pkg, t.backports);
        }
    }
    for (file, pkg) in LIBS {
        if !Path::new(file).exists() {
            add(pkg, false);
        }
    }
    for (bin, args, marker, min) in MIN_VERSIONS {
        if which(bin) {
            match version_of(bin, args, marker) {
                Some(v) if v >= *min => {}
                _ => {
                    let t = TOOLS.iter().find(|t| t.bin == *bin).expect("tool listed");
                    add(t.pkg, true);
                }
            }
        }
    }
    (plain, bpo)
}

fn install_commands(plain: &[&str], bpo: &[&str]) -> Vec<String> {
    let mut cmds = Vec::new();
    if !bpo.is_empty() {
        cmds.push(format!(
            "echo '{}' > {BACKPORTS_LIST}",
            BACKPORTS_LINE.trim()
        ));
    }
    cmds.push("apt-get update".to_string());
    if !plain.is_empty() {
        cmds.push(format!(
            "apt-get install -y --no-install-recommends {}",
            plain.join(" ")
        ));
    }
    if !bpo.is_empty() {
        cmds.push(format!(
            "apt-get install -y --no-install-recommends -t bookworm-backports {}",
            bpo.join(" ")
        ));
    }
    cmds
}

/// Ensures every prerequisite is present, installing as root.
pub fn ensure(target: &Path) -> Result<()> {
    let (plain, bpo) = missing();
    if plain.is_empty() && bpo.is_empty() {
        return Ok(());
    }
    let cmds = install_commands(&plain, &bpo);
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 || !Path::new("/usr/bin/apt-get").exists() {
        eprintln!(
            "nkdev needs packages that are not installed: {}",
            [plain.clone(), bpo.clone()].concat().join(" ")
        );
        eprintln!("Run as root:");
        for c in &cmds {
            eprintln!("    {c}");
        }
        bail!("missing prerequisites (see the commands above)");
    }
    let stage = Stage::new(format!(
        "deps: installing {}",
        [plain.clone(), bpo.clone()].concat().join(" ")
    ));
    if !bpo.is_empty() && !Path::new(BACKPORTS_LIST).exists() {
        std::fs::write(BACKPORTS_LIST, BACKPORTS_LINE)
            .with_context(|| format!("writing {BACKPORTS_LIST}"))?;
    }
    let log = log_path(target, "deps");
    run_logged(
        "apt-get update",
        Command::new("apt-get").arg("update"),
        &log,
    )?;
    let apt = |pkgs: &[&str], bpo: bool| -> Result<()> {
        if pkgs.is_empty() {
            return Ok(());
        }
        let mut c = Command::new("apt-get");
        c.env("DEBIAN_FRONTEND", "noninteractive").args([
            "install",
            "-y",
            "--no-install-recommends",
        ]);
        if bpo {
            c.args(["-t", "bookworm-backports"]);
        }
        c.args(pkgs);
        run_logged("apt-get install", &mut c, &log)
    };
    apt(&plain, false)?;
    apt(&bpo, true)?;
    let (plain, bpo) = missing();
    if !plain.is_empty() || !bpo.is_empty() {
        bail!(
            "still missing after install: {} {}",
            plain.join(" "),
            bpo.join(" ")
        );
    }
    stage.done("installed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_commands_use_backports_only_when_needed() {
        let c = install_commands(&["flex"], &[]);
        assert_eq!(
            c,
            [
                "apt-get update",
                "apt-get install -y --no-install-recommends flex"
            ]
        );
        let c = install_commands(&[], &["iproute2"]);
        assert!(c[0].contains("bookworm-backports"));
        assert_eq!(
            c.last().unwrap(),
            "apt-get install -y --no-install-recommends -t bookworm-backports iproute2"
        );
    }
}
