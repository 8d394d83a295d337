//! Preparing the series for the netdev/bpf lists: `cargo xtask series
//! check|export|import`. The checks NIPA and the bpf maintainers run,
//! offline; `format-patch` output for posting; and the way back from a
//! developer's kernel tree into patches/.

pub mod check;
pub mod export;
pub mod rules;

use std::path::PathBuf;

use anyhow::Result;

use crate::kernel::{self, BaseName, Kernel, KernelArgs, Profile};
use crate::Ctx;

/// Which series, on which base.
#[derive(Clone, Debug, clap::Args)]
pub struct SeriesSel {
    /// The base (see `cargo xtask kernel --help`).
    #[arg(long, value_enum, default_value = "6.12")]
    pub base: BaseName,
    /// A kernel tree to use as the base instead of Debian's package.
    #[arg(long, value_name = "DIR")]
    pub kernel_src: Option<PathBuf>,
    /// The series: a directory under patches/ (default: the base's).
    #[arg(long, value_name = "NAME")]
    pub series: Option<String>,
}

/// The base with the series applied (one commit per patch) and the `vm`
/// profile's configured build directory, without building.
pub fn applied(ctx: &Ctx, sel: &SeriesSel) -> Result<Kernel> {
    kernel::build(
        ctx,
        &KernelArgs {
            profile: Profile::Vm,
            base: sel.base,
            kernel_src: sel.kernel_src.clone(),
            series: sel.series.clone(),
            base_only: false,
            config_only: true,
        },
    )
}

#[derive(Clone, Debug, clap::Subcommand)]
pub enum SeriesCmd {
    /// Per-patch checks: checkpatch, bisectable build with W=1, kdoc,
    /// tags, subject, inline rules, selftest lists, YNL, recipients.
    Check(check::CheckArgs),
    /// Write the series as `git format-patch` output for posting.
    Export(export::ExportArgs),
    /// Refresh patches/ and patches/series from a kernel git tree.
    Import(export::ImportArgs),
}

pub fn run(ctx: &Ctx, c: &SeriesCmd) -> Result<bool> {
    match c {
        SeriesCmd::Check(a) => check::run(ctx, a),
        SeriesCmd::Export(a) => export::export(ctx, a),
        SeriesCmd::Import(a) => export::import(ctx, a),
    }
}
