//! fentry/fexit programs (`SEC("fentry/<func>")`): the kernel function was
//! fixed at load time (libbpf resolved its BTF id), so attaching needs only
//! the program.

use std::os::fd::AsFd;

use nk_sys::uapi;

use crate::attr;
use crate::error::Result;
use crate::fd::{owned, LinkFd, ProgFd};
use crate::sys;

/// Which end of the function the program runs at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trace {
    /// On entry.
    Fentry,
    /// On return.
    Fexit,
}

/// Attaches a loaded fentry/fexit program; it runs until the link closes.
///
/// ```no_run
/// # fn main() -> nk_bpf::Result<()> {
/// use nk_bpf::tracing::{attach, Trace};
/// let obj = nk_bpf::Object::load("nk_realloc.bpf.o".as_ref())?;
/// let _link = attach(&obj.prog("nk_count_expand")?, Trace::Fentry)?;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// The kernel's errno (EINVAL if `t` is not the program's attach type).
pub fn attach(prog: &ProgFd, t: Trace) -> Result<LinkFd> {
    let mut a = attr::link_create_prog(
        prog.as_fd(),
        match t {
            Trace::Fentry => uapi::BPF_TRACE_FENTRY,
            Trace::Fexit => uapi::BPF_TRACE_FEXIT,
        },
    );
    // SAFETY: the attr holds fds, an attach type and flags; no pointers.
    let fd = unsafe {
        sys::bpf(uapi::BPF_LINK_CREATE, &mut a, || {
            format!("BPF_LINK_CREATE {t:?}")
        })
    }?;
    Ok(LinkFd::from_owned(owned(fd)))
}
