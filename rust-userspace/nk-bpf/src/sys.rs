//! The typed edge of the chokepoint: `bpf()` with an error naming the op.

use nk_sys::{syscall, uapi, Syscall};

use crate::error::{Error, Result};

/// A zeroed `bpf_attr`, as the kernel requires for unused fields.
pub fn attr() -> uapi::bpf_attr {
    uapi::bpf_attr::default()
}

/// Calls `bpf(cmd, attr)`; on failure names `op` and explains common errnos.
///
/// # Safety
///
/// As [`nk_sys::BpfAttr::new`]: every pointer stored in `attr` is null or
/// valid, for the duration of the call, for what the kernel reads and
/// writes through it for `cmd`.
pub unsafe fn bpf(cmd: u32, attr: &mut uapi::bpf_attr, op: impl FnOnce() -> String) -> Result<i64> {
    // SAFETY: this function's own contract.
    let attr = unsafe { nk_sys::BpfAttr::new(attr) };
    syscall(Syscall::Bpf { cmd, attr }).map_err(|source| {
        let hint = match source.raw_os_error() {
            Some(libc::ESTALE) => {
                Some("expected_revision does not match the current revision".to_string())
            }
            Some(libc::EPERM) => Some("needs CAP_BPF/CAP_NET_ADMIN".to_string()),
            Some(libc::ENOENT) if cmd == uapi::BPF_PROG_DETACH => {
                Some("the program is not attached there".to_string())
            }
            Some(libc::EEXIST) => Some("the program is already attached there".to_string()),
            Some(libc::ERANGE) => {
                Some("the anchor's program or link is not attached there".to_string())
            }
            _ => None,
        };
        Error::Bpf {
            op: op(),
            source,
            hint,
        }
    })
}
