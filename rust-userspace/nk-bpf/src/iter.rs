//! BPF iterators: a link for an iterator program, and reading it.

use std::io::Read;
use std::os::fd::AsFd;

use nk_sys::uapi;

use crate::attr;
use crate::error::{Error, Result};
use crate::fd::{owned, LinkFd, ProgFd};
use crate::sys;

/// Creates the iterator link for a `SEC("iter/...")` program.
///
/// ```no_run
/// # fn main() -> nk_bpf::Result<()> {
/// let obj = nk_bpf::Object::load("iter.bpf.o".as_ref())?;
/// let link = nk_bpf::iter::link(&obj.prog("dump_tcp")?)?;
/// print!("{}", String::from_utf8_lossy(&nk_bpf::iter::read_all(&link)?));
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// The kernel's errno.
pub fn link(prog: &ProgFd) -> Result<LinkFd> {
    let mut a = attr::link_create_prog(prog.as_fd(), uapi::BPF_TRACE_ITER);
    // SAFETY: the attr holds fds, an attach type and flags; no pointers.
    let fd = unsafe {
        sys::bpf(uapi::BPF_LINK_CREATE, &mut a, || {
            "BPF_LINK_CREATE iter".into()
        })
    }?;
    Ok(LinkFd::from_owned(owned(fd)))
}

/// Runs the iterator once and returns everything it printed.
///
/// ```no_run
/// # fn main() -> nk_bpf::Result<()> {
/// let obj = nk_bpf::Object::load("iter.bpf.o".as_ref())?;
/// let out = nk_bpf::iter::read_all(&nk_bpf::iter::link(&obj.prog("dump_tcp")?)?)?;
/// # let _ = out;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// `BPF_ITER_CREATE` or the read fails.
pub fn read_all(link: &LinkFd) -> Result<Vec<u8>> {
    let mut a = attr::iter_create(link.as_fd());
    // SAFETY: the attr holds an fd and no pointers.
    let fd = unsafe { sys::bpf(uapi::BPF_ITER_CREATE, &mut a, || "BPF_ITER_CREATE".into()) }?;
    let mut f = std::fs::File::from(owned(fd));
    let mut out = Vec::new();
    f.read_to_end(&mut out).map_err(|source| Error::Io {
        what: "reading the iterator".into(),
        source,
    })?;
    Ok(out)
}
