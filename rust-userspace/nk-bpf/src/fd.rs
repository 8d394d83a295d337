//! Owned fd newtypes for programs, links and maps.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nk_sys::uapi;

use crate::attr;
use crate::error::{Error, Result};
use crate::sys;

macro_rules! fd_type {
    ($(#[$m:meta])* $name:ident, $what:literal) => {
        $(#[$m])*
        #[derive(Debug)]
        pub struct $name(OwnedFd);

        impl $name {
            /// Wraps an owned fd.
            pub fn from_owned(fd: OwnedFd) -> Self {
                $name(fd)
            }

            /// Unwraps it.
            pub fn into_owned(self) -> OwnedFd {
                self.0
            }

            /// A second owned handle to the same object.
            ///
            /// # Errors
            /// `dup` fails.
            pub fn try_clone(&self) -> Result<Self> {
                self.0.try_clone().map($name).map_err(|source| Error::Io { what: format!("dup {} fd", $what), source })
            }
        }

        impl AsFd for $name {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.0.as_fd()
            }
        }
    };
}

fd_type!(
    /// A loaded BPF program.
    ProgFd,
    "program"
);
fd_type!(
    /// A BPF link; dropping it detaches unless it is pinned.
    LinkFd,
    "link"
);
fd_type!(
    /// A BPF map.
    MapFd,
    "map"
);

/// Wraps the fd returned by a successful bpf() command.
pub(crate) fn owned(fd: i64) -> OwnedFd {
    // SAFETY: the bpf() call that returned fd succeeded, so fd is a new
    // descriptor that nothing else owns.
    unsafe { nk_sys::owned_fd(fd) }
}

fn info<T: Default>(fd: BorrowedFd<'_>, what: &str) -> Result<T> {
    let mut info = T::default();
    let mut a = attr::obj_get_info(
        fd,
        &mut info as *mut T as u64,
        std::mem::size_of::<T>() as u32,
    );
    // SAFETY: info is a T of info_len bytes, zeroed, so the kernel fills
    // only it and follows none of its (null) array pointers.
    unsafe {
        sys::bpf(uapi::BPF_OBJ_GET_INFO_BY_FD, &mut a, || {
            format!("BPF_OBJ_GET_INFO_BY_FD {what}")
        })
    }?;
    Ok(info)
}

impl ProgFd {
    /// The program's kernel id.
    ///
    /// # Errors
    /// `BPF_OBJ_GET_INFO_BY_FD` fails.
    pub fn id(&self) -> Result<u32> {
        Ok(info::<uapi::bpf_prog_info>(self.as_fd(), "program")?.id)
    }

    /// The program's name as the kernel keeps it (up to 15 bytes).
    ///
    /// # Errors
    /// `BPF_OBJ_GET_INFO_BY_FD` fails.
    pub fn name(&self) -> Result<String> {
        let i = info::<uapi::bpf_prog_info>(self.as_fd(), "program")?;
        let b: Vec<u8> = i
            .name
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        Ok(String::from_utf8_lossy(&b).into_owned())
    }

    /// The program's type (`BPF_PROG_TYPE_*`).
    ///
    /// # Errors
    /// `BPF_OBJ_GET_INFO_BY_FD` fails.
    pub fn prog_type(&self) -> Result<u32> {
        Ok(info::<uapi::bpf_prog_info>(self.as_fd(), "program")?.type_)
    }

    /// How many instructions the verifier processed to load it.
    ///
    /// # Errors
    /// `BPF_OBJ_GET_INFO_BY_FD` fails.
    pub fn verified_insns(&self) -> Result<u32> {
        Ok(info::<uapi::bpf_prog_info>(self.as_fd(), "program")?.verified_insns)
    }

    /// Opens a program by id (`BPF_PROG_GET_FD_BY_ID`).
    ///
    /// ```no_run
    /// # fn main() -> nk_bpf::Result<()> {
    /// let p = nk_bpf::ProgFd::from_id(42)?;
    /// println!("{} ({} verified instructions)", p.name()?, p.verified_insns()?);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// No such program.
    pub fn from_id(id: u32) -> Result<Self> {
        let mut a = attr::prog_get_fd_by_id(id);
        // SAFETY: the attr holds an id and no pointers.
        let fd = unsafe {
            sys::bpf(uapi::BPF_PROG_GET_FD_BY_ID, &mut a, || {
                format!("BPF_PROG_GET_FD_BY_ID {id}")
            })
        }?;
        Ok(ProgFd(owned(fd)))
    }
}

/// What one element of a map is, as the kernel copies it in and out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapLayout {
    /// `BPF_MAP_TYPE_*`.
    pub map_type: u32,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes, as created (one CPU's value for per-CPU maps).
    pub value_size: u32,
    /// Capacity.
    pub max_entries: u32,
}

impl MapLayout {
    /// Whether lookups copy one value per possible CPU.
    pub fn per_cpu(&self) -> bool {
        matches!(
            self.map_type,
            uapi::BPF_MAP_TYPE_PERCPU_HASH
                | uapi::BPF_MAP_TYPE_PERCPU_ARRAY
                | uapi::BPF_MAP_TYPE_LRU_PERCPU_HASH
                | uapi::BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE
        )
    }
}

impl MapFd {
    /// The map's type and element sizes (`BPF_OBJ_GET_INFO_BY_FD`).
    ///
    /// ```no_run
    /// # fn main() -> nk_bpf::Result<()> {
    /// let map = nk_bpf::Object::load("prog.bpf.o".as_ref())?.map("counters")?;
    /// let l = map.layout()?;
    /// println!("{} entries of {} bytes", l.max_entries, l.value_size);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// `BPF_OBJ_GET_INFO_BY_FD` fails.
    pub fn layout(&self) -> Result<MapLayout> {
        let i = info::<uapi::bpf_map_info>(self.as_fd(), "map")?;
        Ok(MapLayout {
            map_type: i.type_,
            key_size: i.key_size,
            value_size: i.value_size,
            max_entries: i.max_entries,
        })
    }
}

/// What a link is and where it is attached (`BPF_OBJ_GET_INFO_BY_FD`),
/// for an agent that restarts and reconciles its pinned links, as
/// cilium/ebpf's `Link.Info()` gives it.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BpfLinkInfo {
    /// The link's kernel id.
    pub id: u32,
    /// The program it runs.
    pub prog_id: u32,
    /// `BPF_LINK_TYPE_*`.
    pub link_type: u32,
    /// Where a tcx or netkit link is attached; `None` for other links and
    /// for a defunct one, whose device is gone (the kernel reports
    /// ifindex 0).
    pub attach: Option<crate::AttachPoint>,
}

impl BpfLinkInfo {
    fn from_raw(i: &uapi::bpf_link_info) -> BpfLinkInfo {
        use crate::{AttachPoint, Direction, NetkitSide};
        let attach = match i.type_ {
            uapi::BPF_LINK_TYPE_TCX => {
                // SAFETY: the kernel fills the tcx member for tcx links;
                // both members are plain integers, valid for any bits.
                let t = unsafe { i.__bindgen_anon_1.tcx };
                let dir = match t.attach_type {
                    uapi::BPF_TCX_INGRESS => Some(Direction::Ingress),
                    uapi::BPF_TCX_EGRESS => Some(Direction::Egress),
                    _ => None,
                };
                dir.filter(|_| t.ifindex != 0).map(|dir| AttachPoint::Tcx {
                    ifindex: t.ifindex,
                    dir,
                })
            }
            uapi::BPF_LINK_TYPE_NETKIT => {
                // SAFETY: as above, the netkit member for netkit links.
                let n = unsafe { i.__bindgen_anon_1.netkit };
                let side = match n.attach_type {
                    uapi::BPF_NETKIT_PRIMARY => Some(NetkitSide::Primary),
                    uapi::BPF_NETKIT_PEER => Some(NetkitSide::Peer),
                    _ => None,
                };
                side.filter(|_| n.ifindex != 0)
                    .map(|side| AttachPoint::Netkit {
                        ifindex: n.ifindex,
                        side,
                    })
            }
            _ => None,
        };
        BpfLinkInfo {
            id: i.id,
            prog_id: i.prog_id,
            link_type: i.type_,
            attach,
        }
    }
}

impl LinkFd {
    /// The link's id, program, type and, for tcx and netkit links, where
    /// it is attached.
    ///
    /// ```no_run
    /// # fn main() -> nk_bpf::Result<()> {
    /// let pinned = nk_bpf::pin::get("/sys/fs/bpf/cilium/eth0-ingress".as_ref())?;
    /// let link = nk_bpf::LinkFd::from_owned(pinned);
    /// if let Some(at) = link.info()?.attach {
    ///     println!("attached at {at:?}");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// `BPF_OBJ_GET_INFO_BY_FD` fails.
    pub fn info(&self) -> Result<BpfLinkInfo> {
        Ok(BpfLinkInfo::from_raw(&info::<uapi::bpf_link_info>(
            self.as_fd(),
            "link",
        )?))
    }

    /// The link's kernel id.
    ///
    /// # Errors
    /// `BPF_OBJ_GET_INFO_BY_FD` fails.
    pub fn id(&self) -> Result<u32> {
        Ok(info::<uapi::bpf_link_info>(self.as_fd(), "link")?.id)
    }

    /// The id of the program this link runs.
    ///
    /// # Errors
    /// `BPF_OBJ_GET_INFO_BY_FD` fails.
    pub fn prog_id(&self) -> Result<u32> {
        Ok(info::<uapi::bpf_link_info>(self.as_fd(), "link")?.prog_id)
    }

    /// Detaches the link (`BPF_LINK_DETACH`); the fd stays valid but defunct.
    ///
    /// ```no_run
    /// # fn main() -> nk_bpf::Result<()> {
    /// let link = nk_bpf::LinkFd::from_owned(nk_bpf::pin::get("/sys/fs/bpf/eth0-ingress".as_ref())?);
    /// link.detach()?;
    /// nk_bpf::pin::unpin("/sys/fs/bpf/eth0-ingress".as_ref())?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// The kernel's errno.
    pub fn detach(&self) -> Result<()> {
        let mut a = attr::link_detach(self.0.as_fd());
        // SAFETY: the attr holds an fd and no pointers.
        unsafe { sys::bpf(uapi::BPF_LINK_DETACH, &mut a, || "BPF_LINK_DETACH".into()) }.map(drop)
    }

    /// Swaps the link's program (`BPF_LINK_UPDATE`); with `old`, only if
    /// that is the program it runs now.
    ///
    /// ```no_run
    /// # fn main() -> nk_bpf::Result<()> {
    /// use nk_bpf::{LinkFd, ProgFd};
    /// let link = LinkFd::from_owned(nk_bpf::pin::get("/sys/fs/bpf/eth0-ingress".as_ref())?);
    /// let (old, new) = (ProgFd::from_id(41)?, ProgFd::from_id(42)?);
    /// // Only if the link still runs `old`: EPERM otherwise.
    /// link.update(&new, Some(&old))?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// EPERM/EINVAL when `old` does not match, and the kernel's errno.
    pub fn update(&self, new: &ProgFd, old: Option<&ProgFd>) -> Result<()> {
        let mut a = attr::link_update(self.0.as_fd(), new.as_fd(), old.map(|o| o.as_fd()));
        // SAFETY: the attr holds fds and flags, no pointers.
        unsafe { sys::bpf(uapi::BPF_LINK_UPDATE, &mut a, || "BPF_LINK_UPDATE".into()) }.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake kernel answering BPF_OBJ_GET_INFO_BY_FD with `info`, after
    /// checking that the caller's buffer is as large as what it writes.
    fn with_link_info(info: uapi::bpf_link_info) -> BpfLinkInfo {
        let _g = nk_sys::fake::install(move |call| {
            let nk_sys::Syscall::Bpf { cmd, attr } = call else {
                return Err(std::io::Error::from_raw_os_error(libc::ENOSYS));
            };
            assert_eq!(*cmd, uapi::BPF_OBJ_GET_INFO_BY_FD);
            // SAFETY: the info member is what info() set.
            let a = unsafe { attr.get_mut().info };
            assert_eq!(
                a.info_len as usize,
                std::mem::size_of::<uapi::bpf_link_info>()
            );
            // SAFETY: a.info points at a bpf_link_info of info_len bytes,
            // as the kernel would write it.
            unsafe { *(a.info as *mut uapi::bpf_link_info) = info };
            Ok(0)
        });
        let link = LinkFd::from_owned(std::fs::File::open("/dev/null").unwrap().into());
        link.info().unwrap()
    }

    fn raw(type_: u32, ifindex: u32, attach_type: u32) -> uapi::bpf_link_info {
        let mut i = uapi::bpf_link_info {
            type_,
            id: 12,
            prog_id: 34,
            ..Default::default()
        };
        i.__bindgen_anon_1.tcx = uapi::bpf_link_info__bindgen_ty_1__bindgen_ty_12 {
            ifindex,
            attach_type,
        };
        i
    }

    #[test]
    fn link_info_says_where_tcx_and_netkit_links_are() {
        use crate::{AttachPoint, Direction, NetkitSide};
        let t = with_link_info(raw(uapi::BPF_LINK_TYPE_TCX, 3, uapi::BPF_TCX_EGRESS));
        assert_eq!(
            (t.id, t.prog_id, t.link_type),
            (12, 34, uapi::BPF_LINK_TYPE_TCX)
        );
        assert_eq!(
            t.attach,
            Some(AttachPoint::Tcx {
                ifindex: 3,
                dir: Direction::Egress
            })
        );
        // The netkit member has the tcx member's layout; filled the same way.
        let n = with_link_info(raw(uapi::BPF_LINK_TYPE_NETKIT, 9, uapi::BPF_NETKIT_PEER));
        assert_eq!(
            n.attach,
            Some(AttachPoint::Netkit {
                ifindex: 9,
                side: NetkitSide::Peer
            })
        );
        // Defunct (device gone) and other link types: no attach point.
        let gone = with_link_info(raw(uapi::BPF_LINK_TYPE_TCX, 0, uapi::BPF_TCX_INGRESS));
        assert_eq!(gone.attach, None);
        let iter = with_link_info(raw(uapi::BPF_LINK_TYPE_ITER, 5, 0));
        assert_eq!(iter.attach, None);
    }
}
