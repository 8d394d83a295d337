//! bpf(2) for nkdev: tcx and netkit attachment through bpf_mprog with
//! typed anchors and revisions, queries, pinning, iterator links and
//! `BPF_PROG_RUN`. ELF objects are opened and relocated with libbpf
//! (libbpf-sys); everything after loading is raw `bpf()` through
//! `nk_sys::syscall`, so it can be tested against a fake kernel.
#![warn(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod attr;
pub mod error;
pub mod fd;
pub mod features;
pub mod iter;
pub mod map;
pub mod mprog;
pub mod object;
pub mod pin;
pub mod run;
mod sys;
pub mod tracing;

pub use error::{Error, Result};
pub use fd::{BpfLinkInfo, LinkFd, MapFd, MapLayout, ProgFd};
pub use features::Features;
pub use mprog::{Anchor, AttachPoint, Direction, NetkitSide, QueryResult, Relative};
pub use object::{Object, OpenObject};
