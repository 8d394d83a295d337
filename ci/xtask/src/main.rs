//! nkdev's one entry point: `cargo xtask <command>`.
//!
//! | command    | what it does |
//! |------------|--------------|
//! | `deps`     | check/install host prerequisites (apt, bookworm-backports) |
//! | `kernel`   | base tree + patches/series (git am) + kconfigs + incremental build |
//! | `vmtest`   | kernel, BPF objects, selftests, reduced test_progs; boot qemu; KTAP |
//! | `test`     | `cargo test` (unprivileged), clippy and the MSRV build, then `vmtest` |
//! | `fuzz`     | cargo-fuzz targets for a fixed budget |
//! | `bench`    | benchmarks in the VM; `--compare-base` runs base and patched |
//! | `bindings` | regenerate / check the uapi bindings |
//! | `series`   | `check` / `export` / `import` the series for the lists |

mod bindings;
mod bpf;
mod deps;
mod fuzz;
mod golden;
mod hygiene;
mod kernel;
mod progress;
mod submit;
mod tidy;
mod toolchain;
mod upstream;
mod vm;
mod vmtest;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Paths every command needs.
pub struct Ctx {
    /// The workspace root.
    pub root: PathBuf,
    /// `target/` (logs, VM runs, BPF objects).
    pub target: PathBuf,
    /// Kernel trees and builds: `$NKDEV_CACHE` or `~/.cache/nkdev`.
    pub cache: PathBuf,
}

impl Ctx {
    fn new() -> Ctx {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .canonicalize()
            .expect("workspace root");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let cache = std::env::var_os("NKDEV_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let home = std::env::var_os("XDG_CACHE_HOME")
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                    .unwrap_or_else(|| PathBuf::from("/tmp"));
                home.join("nkdev")
            });
        Ctx {
            root,
            target,
            cache,
        }
    }
}

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "nkdev: build, boot and test the tcx/netkit kernel series"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check host prerequisites; as root, install the missing ones.
    Deps,
    /// Apply patches/series to the base, configure and build the kernel.
    Kernel(kernel::KernelArgs),
    /// Build everything, boot the kernel in qemu and run the selftests.
    Vmtest(vmtest::VmtestArgs),
    /// Unit tests (unprivileged), then vmtest.
    Test(vmtest::VmtestArgs),
    /// Benchmarks in the VM (nkctl vs iproute2/bpftool), side by side in one run.
    Bench(vmtest::BenchArgs),
    /// Fuzz the decoders of kernel bytes and the KTAP parser for a fixed budget.
    Fuzz(fuzz::FuzzArgs),
    /// Prepare the series for the lists: check, export, import.
    #[command(subcommand)]
    Series(submit::SeriesCmd),
    /// Recapture nk-netlink's golden netlink traffic in the VM (nlmon + tcpdump).
    Golden(golden::GoldenArgs),
    /// Regenerate the uapi bindings from the patched kernel's headers.
    Bindings {
        /// Fail if the checked-in bindings differ instead of rewriting them.
        #[arg(long)]
        check: bool,
        /// Use this headers_install include dir instead of building the kernel.
        #[arg(long, value_name = "DIR")]
        include: Option<PathBuf>,
    },
}

fn main() {
    let cli = Cli::parse();
    let ctx = Ctx::new();
    let r: Result<bool> = match cli.cmd {
        Cmd::Deps => deps::ensure(&ctx.target).map(|_| {
            eprintln!("all prerequisites are installed");
            true
        }),
        Cmd::Kernel(a) => deps::ensure(&ctx.target)
            .and_then(|_| kernel::build(&ctx, &a))
            .map(|_| true),
        Cmd::Vmtest(a) => vmtest::run(&ctx, &a),
        Cmd::Test(a) => vmtest::test(&ctx, &a),
        Cmd::Fuzz(a) => fuzz::run(&ctx, &a),
        Cmd::Bench(a) => vmtest::bench(&ctx, &a),
        Cmd::Series(c) => submit::run(&ctx, &c),
        Cmd::Golden(a) => golden::run(&ctx, &a),
        Cmd::Bindings { check, include } => (|| {
            let include = match include {
                Some(i) => i,
                None => {
                    deps::ensure(&ctx.target)?;
                    let args = kernel::KernelArgs {
                        profile: kernel::Profile::Vm,
                        src: kernel::Source::of(vmtest::BINDINGS_BASE),
                        base_only: false,
                        config_only: false,
                    };
                    kernel::build(&ctx, &args)?.headers
                }
            };
            bindings::run(&ctx.root, &include, check).map(|_| true)
        })(),
    };
    match r {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    /// clap checks a command line's definition only when that command is
    /// parsed: two flags of one name in a subcommand (`bench --profile`
    /// next to the kernel's `--profile`) passed every other test.
    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
