//! Preparing the series for the netdev/bpf lists: `cargo xtask series
//! check|export|import`. The checks NIPA and the bpf maintainers run,
//! offline; `format-patch` output for posting; and the way back from a
//! developer's kernel tree into patches/.

pub mod check;
pub mod export;
pub mod rules;

use anyhow::Result;

use crate::kernel::{self, Kernel, KernelArgs, Profile, Source};
use crate::Ctx;

/// The base with the series applied (one commit per patch) and the `vm`
/// profile's configured build directory, without building.
pub fn applied(ctx: &Ctx, src: &Source) -> Result<Kernel> {
    kernel::build(
        ctx,
        &KernelArgs {
            profile: Profile::Vm,
            src: src.clone(),
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
