//! The typed edge of the chokepoint: `bpf()` with an error naming the op.

use nk_sys::{syscall, uapi, Syscall};

use crate::error::{Error, Result};

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
    syscall(Syscall::Bpf { cmd, attr }).map_err(|source| Error::Bpf {
        cmd,
        op: op(),
        hint: source
            .raw_os_error()
            .and_then(|e| hint(cmd, e))
            .map(String::from),
        source,
    })
}

/// What an errno means for a bpf command, where that is not what the
/// errno's own text says. Keyed on both: EPERM of BPF_LINK_UPDATE is a
/// wrong old program, not a missing capability.
pub fn hint(cmd: u32, errno: i32) -> Option<&'static str> {
    Some(match (cmd, errno) {
        (_, libc::ESTALE) => "expected_revision does not match the current revision",
        (uapi::BPF_LINK_UPDATE, libc::EPERM) => {
            "the link's program is not the one given as the old program"
        }
        (uapi::BPF_LINK_UPDATE, libc::EINVAL) => {
            "the new program's type or attach type differs from the link's"
        }
        (uapi::BPF_LINK_UPDATE | uapi::BPF_LINK_DETACH, libc::ENOLINK) => {
            "the link is defunct: its device or netns is gone"
        }
        (_, libc::EPERM) => "needs CAP_BPF/CAP_NET_ADMIN",
        (uapi::BPF_PROG_DETACH, libc::ENOENT) => "the program is not attached there",
        (_, libc::EEXIST) => "the program is already attached there",
        (_, libc::ERANGE) => "the anchor's program or link is not attached there",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_issued_has_a_name() {
        for cmd in [
            uapi::BPF_LINK_CREATE,
            uapi::BPF_LINK_UPDATE,
            uapi::BPF_PROG_QUERY,
            uapi::BPF_OBJ_GET_INFO_BY_FD,
        ] {
            assert!(crate::error::cmd_name(cmd).is_some_and(|n| n.starts_with("BPF_")));
        }
        let _g = nk_sys::fake::install(|_| Err(std::io::Error::from_raw_os_error(libc::EPERM)));
        let mut a = uapi::bpf_attr::default();
        // SAFETY: the fake answers; nothing reads or writes the attr.
        let e =
            unsafe { bpf(uapi::BPF_LINK_UPDATE, &mut a, || "BPF_LINK_UPDATE".into()) }.unwrap_err();
        assert_eq!(e.cmd(), Some(uapi::BPF_LINK_UPDATE));
        assert_eq!(e.errno(), Some(libc::EPERM));
    }

    #[test]
    fn hints_depend_on_the_command() {
        assert_eq!(
            hint(uapi::BPF_LINK_UPDATE, libc::EPERM),
            Some("the link's program is not the one given as the old program")
        );
        assert_eq!(
            hint(uapi::BPF_LINK_CREATE, libc::EPERM),
            Some("needs CAP_BPF/CAP_NET_ADMIN")
        );
        assert_eq!(
            hint(uapi::BPF_PROG_DETACH, libc::ENOENT),
            Some("the program is not attached there")
        );
        assert_eq!(hint(uapi::BPF_OBJ_GET, libc::ENOENT), None);
        assert!(hint(uapi::BPF_LINK_DETACH, libc::ENOLINK).is_some());
    }
}
