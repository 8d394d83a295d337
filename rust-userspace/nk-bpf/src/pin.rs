//! Pinning in bpffs: an object pinned at a path outlives the process.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nk_sys::uapi;

use crate::attr;
use crate::error::{Error, Result};
use crate::fd::{owned, LinkFd};
use crate::sys;

const BPF_FS_MAGIC: i64 = 0xcafe4a11;

fn cpath(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| Error::Invalid {
        what: "pin path",
        why: format!("{} contains NUL", path.display()),
    })
}

/// Checks that `path`'s directory is on a bpf filesystem, so that a
/// missing bpffs is reported as such and not as a bare EPERM.
///
/// ```
/// // The directory of the path is looked at: /sys/fs/bpf is bpffs where it
/// // is mounted, /tmp is not.
/// assert!(nk_bpf::pin::check_bpffs("/tmp/x".as_ref()).is_err());
/// ```
///
/// # Errors
/// [`Error::Invalid`] naming the directory.
pub fn check_bpffs(path: &Path) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let c = cpath(dir)?;
    // SAFETY: statfs is plain old data; zeroed is valid.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid path and st a valid out-buffer.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(Error::Invalid {
            what: "pin path",
            why: format!("{}: {}", dir.display(), std::io::Error::last_os_error()),
        });
    }
    if st.f_type as i64 != BPF_FS_MAGIC {
        return Err(Error::Invalid {
            what: "pin path",
            why: format!(
                "{} is not on a bpf filesystem (mount -t bpf bpf /sys/fs/bpf)",
                dir.display()
            ),
        });
    }
    Ok(())
}

/// Pins `fd` (a program, map or link) at `path`.
///
/// ```no_run
/// # fn main() -> nk_bpf::Result<()> {
/// let obj = nk_bpf::Object::load("prog.bpf.o".as_ref())?;
/// nk_bpf::pin::pin(obj.map("counters")?, "/sys/fs/bpf/counters".as_ref())?;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// Not on bpffs, the path exists, or the kernel's errno.
pub fn pin(fd: impl AsFd, path: &Path) -> Result<()> {
    check_bpffs(path)?;
    let c = cpath(path)?;
    let mut a = attr::obj(&c, fd.as_fd().as_raw_fd() as u32);
    // SAFETY: pathname points at c, a NUL-terminated path alive for the call.
    unsafe {
        sys::bpf(uapi::BPF_OBJ_PIN, &mut a, || {
            format!("BPF_OBJ_PIN {}", path.display())
        })
    }
    .map(drop)
}

/// Opens the object pinned at `path`.
///
/// ```no_run
/// # fn main() -> nk_bpf::Result<()> {
/// let map = nk_bpf::MapFd::from_owned(nk_bpf::pin::get("/sys/fs/bpf/counters".as_ref())?);
/// println!("{}", map.get_u64(0)?);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// Nothing pinned there, or the kernel's errno.
pub fn get(path: &Path) -> Result<OwnedFd> {
    let c = cpath(path)?;
    let mut a = attr::obj(&c, 0);
    // SAFETY: pathname points at c, a NUL-terminated path alive for the call.
    let fd = unsafe {
        sys::bpf(uapi::BPF_OBJ_GET, &mut a, || {
            format!("BPF_OBJ_GET {}", path.display())
        })
    }?;
    Ok(owned(fd))
}

/// Opens the link pinned at `path`, refusing a pinned program or map
/// (`BPF_OBJ_GET_INFO_BY_FD` would read its info as a link's).
///
/// ```no_run
/// # fn main() -> nk_bpf::Result<()> {
/// let link = nk_bpf::pin::get_link("/sys/fs/bpf/eth0-ingress".as_ref())?;
/// println!("{:?}", link.info()?);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// Nothing pinned there, or not a link.
pub fn get_link(path: &Path) -> Result<LinkFd> {
    let fd = get(path)?;
    // Each bpf object's fd is an anon inode named after its kind.
    let proc = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let kind = std::fs::read_link(&proc).map_err(|source| Error::Io {
        what: format!("reading {proc} for {}", path.display()),
        source,
    })?;
    if kind.as_os_str() != "anon_inode:bpf-link" {
        return Err(Error::Invalid {
            what: "pinned link",
            why: format!("{} is a {}, not a BPF link", path.display(), kind.display()),
        });
    }
    Ok(LinkFd::from_owned(fd))
}

/// Removes a pin (the object goes when its last reference does).
///
/// ```no_run
/// # fn main() -> nk_bpf::Result<()> {
/// nk_bpf::pin::unpin("/sys/fs/bpf/counters".as_ref())?;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// The path does not exist or is not removable.
pub fn unpin(path: &Path) -> Result<()> {
    std::fs::remove_file(path).map_err(|source| Error::Io {
        what: format!("unpin {}", path.display()),
        source,
    })
}
