//! bpf_mprog attachment for tcx and netkit: links or plain program
//! attachments, positioned by typed anchors, guarded by revisions.
//! The raw flag bits never leave this module.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use nk_sys::uapi;

use crate::attr;
use crate::error::{Error, Result};
use crate::fd::{owned, LinkFd, ProgFd};
use crate::sys;

/// tcx direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Direction {
    /// `BPF_TCX_INGRESS`
    Ingress,
    /// `BPF_TCX_EGRESS`
    Egress,
}

/// Which netkit device's program list (both are addressed through the
/// primary's ifindex).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum NetkitSide {
    /// `BPF_NETKIT_PRIMARY`: runs on what the primary transmits.
    Primary,
    /// `BPF_NETKIT_PEER`: runs on what the peer transmits.
    Peer,
}

/// Where programs attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum AttachPoint {
    /// tcx on `ifindex`.
    Tcx {
        /// Device.
        ifindex: u32,
        /// Direction.
        dir: Direction,
    },
    /// netkit; `ifindex` must be the primary's.
    Netkit {
        /// The primary device.
        ifindex: u32,
        /// Which list.
        side: NetkitSide,
    },
}

impl AttachPoint {
    pub(crate) fn ifindex(self) -> u32 {
        match self {
            AttachPoint::Tcx { ifindex, .. } | AttachPoint::Netkit { ifindex, .. } => ifindex,
        }
    }

    /// The uapi attach type.
    pub fn attach_type(self) -> u32 {
        match self {
            AttachPoint::Tcx {
                dir: Direction::Ingress,
                ..
            } => uapi::BPF_TCX_INGRESS,
            AttachPoint::Tcx {
                dir: Direction::Egress,
                ..
            } => uapi::BPF_TCX_EGRESS,
            AttachPoint::Netkit {
                side: NetkitSide::Primary,
                ..
            } => uapi::BPF_NETKIT_PRIMARY,
            AttachPoint::Netkit {
                side: NetkitSide::Peer,
                ..
            } => uapi::BPF_NETKIT_PEER,
        }
    }
}

impl std::fmt::Display for AttachPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttachPoint::Tcx { ifindex, dir } => {
                write!(
                    f,
                    "tcx {} ifindex {ifindex}",
                    if *dir == Direction::Ingress {
                        "ingress"
                    } else {
                        "egress"
                    }
                )
            }
            AttachPoint::Netkit { ifindex, side } => {
                write!(
                    f,
                    "netkit {} ifindex {ifindex}",
                    if *side == NetkitSide::Primary {
                        "primary"
                    } else {
                        "peer"
                    }
                )
            }
        }
    }
}

/// A program or link that an anchor is relative to.
#[derive(Clone, Copy, Debug)]
pub enum Relative<'a> {
    /// A program by fd.
    ProgFd(BorrowedFd<'a>),
    /// A program by id.
    ProgId(u32),
    /// A link by fd.
    LinkFd(BorrowedFd<'a>),
    /// A link by id.
    LinkId(u32),
}

/// Where in the list a new program goes.
#[derive(Clone, Copy, Debug, Default)]
pub enum Anchor<'a> {
    /// Before every other program.
    First,
    /// After every other program (the kernel's default).
    #[default]
    Last,
    /// Immediately before this program or link.
    Before(Relative<'a>),
    /// Immediately after this program or link.
    After(Relative<'a>),
}

/// (flags, relative fd or id) for an anchor.
pub(crate) fn encode(anchor: Anchor<'_>) -> (u32, u32) {
    let rel = |r: Relative<'_>| match r {
        Relative::ProgFd(fd) => (0, fd.as_raw_fd() as u32),
        Relative::ProgId(id) => (uapi::BPF_F_ID, id),
        Relative::LinkFd(fd) => (uapi::BPF_F_LINK, fd.as_raw_fd() as u32),
        Relative::LinkId(id) => (uapi::BPF_F_LINK | uapi::BPF_F_ID, id),
    };
    match anchor {
        Anchor::First => (uapi::BPF_F_BEFORE, 0),
        Anchor::Last => (0, 0),
        Anchor::Before(r) => {
            let (f, v) = rel(r);
            (uapi::BPF_F_BEFORE | f, v)
        }
        Anchor::After(r) => {
            let (f, v) = rel(r);
            (uapi::BPF_F_AFTER | f, v)
        }
    }
}

/// Attaches `prog` at `at` as a link, positioned by `anchor`; with
/// `expected_revision`, only if the list is still at that revision.
///
/// ```no_run
/// # fn main() -> nk_bpf::Result<()> {
/// use nk_bpf::{mprog, Anchor, AttachPoint, Direction, Object};
/// let obj = Object::load("prog.bpf.o".as_ref())?;
/// let at = AttachPoint::Tcx { ifindex: 3, dir: Direction::Ingress };
/// // First in the list, only if nobody changed it since revision 7.
/// let link = mprog::link_create(&obj.prog("from_netdev")?, at, Anchor::First, Some(7))?;
/// nk_bpf::pin::pin(&link, "/sys/fs/bpf/eth0-ingress".as_ref())?;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// ESTALE for a stale revision, ERANGE for an anchor not in the list, and
/// the kernel's other errnos, each naming the attach point.
pub fn link_create(
    prog: &ProgFd,
    at: AttachPoint,
    anchor: Anchor<'_>,
    expected_revision: Option<u64>,
) -> Result<LinkFd> {
    let mut a = attr::link_create(prog.as_fd(), at, anchor, expected_revision);
    // SAFETY: the attr holds fds, an attach type and flags; no pointers.
    let fd = unsafe {
        sys::bpf(uapi::BPF_LINK_CREATE, &mut a, || {
            format!("BPF_LINK_CREATE {at}")
        })
    }
    .map_err(|e| crate::features::unsupported(e, at))?;
    Ok(LinkFd::from_owned(owned(fd)))
}

/// Attaches `prog` without a link (`BPF_PROG_ATTACH`). With `replace`, it
/// takes that program's place (`BPF_F_REPLACE`).
///
/// ```no_run
/// # fn main() -> nk_bpf::Result<()> {
/// use nk_bpf::{mprog, Anchor, AttachPoint, NetkitSide, ProgFd};
/// let prog = ProgFd::from_id(42)?;
/// let at = AttachPoint::Netkit { ifindex: 5, side: NetkitSide::Peer };
/// mprog::prog_attach(&prog, at, Anchor::Last, None, None)?;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// As [`link_create`].
pub fn prog_attach(
    prog: &ProgFd,
    at: AttachPoint,
    anchor: Anchor<'_>,
    replace: Option<&ProgFd>,
    expected_revision: Option<u64>,
) -> Result<()> {
    if replace.is_some() && !matches!(anchor, Anchor::Last) {
        return Err(Error::Invalid {
            what: "anchor",
            why: "replace takes the old program's place; give no anchor".into(),
        });
    }
    let mut a = attr::prog_attach(
        prog.as_fd(),
        at,
        anchor,
        replace.map(|r| r.as_fd()),
        expected_revision,
    );
    // SAFETY: the attr holds fds, ids, flags and a revision; no pointers.
    unsafe {
        sys::bpf(uapi::BPF_PROG_ATTACH, &mut a, || {
            format!("BPF_PROG_ATTACH {at}")
        })
    }
    .map(drop)
    .map_err(|e| crate::features::unsupported(e, at))
}

/// Detaches a program attached with [`prog_attach`].
///
/// ```no_run
/// # fn main() -> nk_bpf::Result<()> {
/// use nk_bpf::{mprog, AttachPoint, Direction, ProgFd};
/// let at = AttachPoint::Tcx { ifindex: 3, dir: Direction::Egress };
/// let q = mprog::query(at)?;
/// mprog::prog_detach(&ProgFd::from_id(q.prog_ids[0])?, at, Some(q.revision))?;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// ENOENT when it is not attached there, ESTALE for a stale revision.
pub fn prog_detach(prog: &ProgFd, at: AttachPoint, expected_revision: Option<u64>) -> Result<()> {
    let mut a = attr::prog_attach(prog.as_fd(), at, Anchor::Last, None, expected_revision);
    // SAFETY: the attr holds fds, flags and a revision; no pointers.
    unsafe {
        sys::bpf(uapi::BPF_PROG_DETACH, &mut a, || {
            format!("BPF_PROG_DETACH {at}")
        })
    }
    .map(drop)
}

/// What `BPF_PROG_QUERY` returned, in list order.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueryResult {
    /// The list's revision (bumped by every change).
    pub revision: u64,
    /// Program ids, first to last.
    pub prog_ids: Vec<u32>,
    /// Link ids (0 where the program was attached without a link).
    pub link_ids: Vec<u32>,
}

fn query_once(at: AttachPoint, progs: &mut [u32], links: &mut [u32]) -> Result<(u32, u64)> {
    let mut a = attr::prog_query(
        at,
        if progs.is_empty() {
            0
        } else {
            progs.as_mut_ptr() as u64
        },
        if links.is_empty() {
            0
        } else {
            links.as_mut_ptr() as u64
        },
        progs.len() as u32,
    );
    // SAFETY: prog_ids and link_ids, when set, point at arrays of
    // `count` u32s that outlive the call; the kernel writes at most `count`.
    unsafe {
        sys::bpf(uapi::BPF_PROG_QUERY, &mut a, || {
            format!("BPF_PROG_QUERY {at}")
        })
    }?;
    // SAFETY: the kernel wrote query.count and revision; both are plain
    // integers in a union member we initialised.
    let (count, rev) = unsafe { (a.query.__bindgen_anon_2.count, a.query.revision) };
    Ok((count, rev))
}

/// Lists the programs at `at`, in order, with the revision.
///
/// ```no_run
/// # fn main() -> nk_bpf::Result<()> {
/// use nk_bpf::{mprog, AttachPoint, Direction};
/// let q = mprog::query(AttachPoint::Tcx { ifindex: 1, dir: Direction::Ingress })?;
/// println!("revision {}: programs {:?}", q.revision, q.prog_ids);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// The kernel's errno (ENODEV for a missing device, EINVAL for netkit on
/// a non-netkit device).
pub fn query(at: AttachPoint) -> Result<QueryResult> {
    for _ in 0..4 {
        let (n, _) = query_once(at, &mut [], &mut [])?;
        let mut progs = vec![0u32; n as usize];
        let mut links = vec![0u32; n as usize];
        if n == 0 {
            let (_, revision) = query_once(at, &mut [], &mut [])?;
            return Ok(QueryResult {
                revision,
                ..Default::default()
            });
        }
        match query_once(at, &mut progs, &mut links) {
            Ok((m, revision)) if m == n => {
                return Ok(QueryResult {
                    revision,
                    prog_ids: progs,
                    link_ids: links,
                })
            }
            // The list grew between the two calls: ask again.
            Ok(_) => continue,
            Err(e) if e.errno() == Some(libc::ENOSPC) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::Invalid {
        what: "query",
        why: format!("{at} kept changing while it was read"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(a: &uapi::bpf_attr) -> String {
        // SAFETY: bpf_attr is plain old data; we read exactly its size.
        let b = unsafe {
            std::slice::from_raw_parts(
                (a as *const uapi::bpf_attr).cast::<u8>(),
                std::mem::size_of::<uapi::bpf_attr>(),
            )
        };
        let used = b.iter().rposition(|&x| x != 0).map(|i| i + 1).unwrap_or(0);
        b[..used.div_ceil(8) * 8]
            .chunks(8)
            .map(|c| c.iter().map(|x| format!("{x:02x}")).collect::<String>())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn tcx7(dir: Direction) -> AttachPoint {
        AttachPoint::Tcx { ifindex: 7, dir }
    }

    fn nk9(side: NetkitSide) -> AttachPoint {
        AttachPoint::Netkit { ifindex: 9, side }
    }

    fn fake_fd(n: i32) -> BorrowedFd<'static> {
        // SAFETY: only the number is read, for encoding; never used as an fd.
        unsafe { BorrowedFd::borrow_raw(n) }
    }

    #[test]
    fn link_create_attr_snapshots() {
        let at = tcx7(Direction::Ingress);
        let nk = nk9(NetkitSide::Peer);
        let cases = [
            (
                "last",
                attr::link_create(fake_fd(3), at, Anchor::Last, None),
            ),
            (
                "first",
                attr::link_create(fake_fd(3), at, Anchor::First, Some(5)),
            ),
            (
                "before_prog_fd",
                attr::link_create(
                    fake_fd(3),
                    at,
                    Anchor::Before(Relative::ProgFd(fake_fd(4))),
                    None,
                ),
            ),
            (
                "after_prog_id",
                attr::link_create(fake_fd(3), at, Anchor::After(Relative::ProgId(42)), None),
            ),
            (
                "before_link_fd",
                attr::link_create(
                    fake_fd(3),
                    nk,
                    Anchor::Before(Relative::LinkFd(fake_fd(6))),
                    Some(2),
                ),
            ),
            (
                "after_link_id",
                attr::link_create(fake_fd(3), nk, Anchor::After(Relative::LinkId(77)), None),
            ),
        ];
        let text: String = cases
            .iter()
            .map(|(n, a)| format!("{n}: {}\n", bytes(a)))
            .collect();
        insta::assert_snapshot!(text);
    }

    #[test]
    fn prog_attach_attr_snapshots() {
        let at = tcx7(Direction::Egress);
        let nk = nk9(NetkitSide::Primary);
        let cases = [
            (
                "replace",
                attr::prog_attach(fake_fd(3), at, Anchor::Last, Some(fake_fd(8)), None),
            ),
            (
                "first_rev",
                attr::prog_attach(fake_fd(3), at, Anchor::First, None, Some(3)),
            ),
            (
                "before_prog_fd",
                attr::prog_attach(
                    fake_fd(3),
                    nk,
                    Anchor::Before(Relative::ProgFd(fake_fd(4))),
                    None,
                    None,
                ),
            ),
            (
                "after_prog_id",
                attr::prog_attach(
                    fake_fd(3),
                    nk,
                    Anchor::After(Relative::ProgId(42)),
                    None,
                    Some(7),
                ),
            ),
            (
                "before_link_id",
                attr::prog_attach(
                    fake_fd(3),
                    at,
                    Anchor::Before(Relative::LinkId(77)),
                    None,
                    None,
                ),
            ),
        ];
        let text: String = cases
            .iter()
            .map(|(n, a)| format!("{n}: {}\n", bytes(a)))
            .collect();
        insta::assert_snapshot!(text);
    }

    /// The attrs of every bpf() call `f` makes, pointers masked (they
    /// differ per run), as `cmd: bytes` lines.
    fn recorded_attrs(f: impl FnOnce()) -> String {
        let seen = std::rc::Rc::new(std::cell::RefCell::new(String::new()));
        {
            let s = seen.clone();
            let _g = nk_sys::fake::install(move |call| {
                if let nk_sys::Syscall::Bpf { cmd, attr } = call {
                    let mut a = *attr.get_mut();
                    if *cmd == uapi::BPF_PROG_QUERY {
                        // SAFETY: the query member is what query() set.
                        let q = unsafe { &mut a.query };
                        for p in [&mut q.prog_ids, &mut q.link_ids] {
                            if *p != 0 {
                                *p = 0x5050_5050_5050_5050;
                            }
                        }
                    }
                    s.borrow_mut().push_str(&format!("{cmd}: {}\n", bytes(&a)));
                }
                Ok(0)
            });
            f();
        }
        let out = seen.borrow().clone();
        out
    }

    #[test]
    fn detach_and_query_attr_snapshots() {
        let prog = ProgFd::from_owned(std::fs::File::open("/dev/null").unwrap().into());
        let raw = prog.as_fd().as_raw_fd();
        let text = recorded_attrs(|| {
            let at = tcx7(Direction::Ingress);
            prog_detach(&prog, at, Some(4)).unwrap();
            let nk = nk9(NetkitSide::Peer);
            // The fake reports an empty list: count, then revision.
            assert_eq!(query(nk).unwrap(), QueryResult::default());
        });
        // The fd number differs per run: name it.
        let fd = format!("{:02x}000000", raw);
        insta::assert_snapshot!(text.replace(&fd, "FD______"));
    }

    /// Leaves a recognisable pattern in the stack below the caller.
    #[inline(never)]
    fn poison_stack() {
        poison_stack_with(0xaa);
    }

    #[inline(never)]
    fn poison_stack_with(x: u8) {
        let mut b = [x; 8192];
        std::hint::black_box(&mut b);
    }

    #[test]
    fn attrs_do_not_depend_on_the_stack() {
        // Padding inside the attr (tcx: between relative_fd and
        // expected_revision) once carried stack bytes: the kernel ignored
        // them, but the encoding must not depend on what ran before.
        let at = tcx7(Direction::Ingress);
        let nk = nk9(NetkitSide::Peer);
        let enc = |x: u8| {
            let mut out = Vec::new();
            for p in [at, nk] {
                poison_stack_with(x);
                out.push(bytes(&attr::link_create(
                    fake_fd(3),
                    p,
                    Anchor::After(Relative::LinkId(77)),
                    Some(2),
                )));
                poison_stack_with(x);
                out.push(bytes(&attr::prog_attach(
                    fake_fd(3),
                    p,
                    Anchor::Before(Relative::ProgId(5)),
                    None,
                    Some(2),
                )));
            }
            out
        };
        assert_eq!(enc(0xaa), enc(0x55));
        assert_eq!(enc(0xaa), enc(0x00));
    }

    fn unused_bytes_are_zero(a: &uapi::bpf_attr, used: usize) -> bool {
        // SAFETY: bpf_attr is plain old data; we read exactly its size.
        let b = unsafe {
            std::slice::from_raw_parts(
                (a as *const uapi::bpf_attr).cast::<u8>(),
                std::mem::size_of::<uapi::bpf_attr>(),
            )
        };
        b[used..].iter().all(|x| *x == 0)
    }

    #[test]
    fn attrs_leave_unused_bytes_zero_even_on_a_dirty_stack() {
        // The kernel rejects non-zero bytes past a command's last field
        // with EINVAL; union literals and padded struct copies leak stack
        // garbage there (both bugs were seen against a real kernel).
        for _ in 0..4 {
            poison_stack();
            let at = nk9(NetkitSide::Peer);
            let a = attr::link_create(fake_fd(3), at, Anchor::After(Relative::LinkId(77)), Some(2));
            assert!(unused_bytes_are_zero(&a, 32), "link_create");
            poison_stack();
            let a = attr::prog_attach(fake_fd(3), at, Anchor::First, Some(fake_fd(4)), Some(1));
            assert!(unused_bytes_are_zero(&a, 32), "prog_attach");
            poison_stack();
            let c = std::ffi::CString::new("/sys/fs/bpf/x").unwrap();
            let a = crate::attr::obj(&c, 0);
            assert!(unused_bytes_are_zero(&a, 8), "obj");
        }
    }

    #[test]
    fn stale_revision_error_says_so() {
        let _g = nk_sys::fake::install(|_| Err(std::io::Error::from_raw_os_error(libc::ESTALE)));
        let at = AttachPoint::Tcx {
            ifindex: 1,
            dir: Direction::Ingress,
        };
        let prog = ProgFd::from_owned(std::fs::File::open("/dev/null").unwrap().into());
        let e = link_create(&prog, at, Anchor::Last, Some(1)).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ESTALE));
        let msg = e.to_string();
        assert!(
            msg.contains("BPF_LINK_CREATE tcx ingress ifindex 1"),
            "{msg}"
        );
        assert!(msg.contains("expected_revision does not match"), "{msg}");
    }

    #[test]
    fn query_reads_order_and_revision_from_the_kernel() {
        let _g = nk_sys::fake::install(|call| {
            if let nk_sys::Syscall::Bpf { cmd, attr } = call {
                assert_eq!(*cmd, uapi::BPF_PROG_QUERY);
                // SAFETY: the query member is what query() initialised.
                let q = unsafe { &mut attr.get_mut().query };
                // SAFETY: reading the count the caller set.
                let cap = unsafe { q.__bindgen_anon_2.count };
                q.__bindgen_anon_2 = uapi::bpf_attr__bindgen_ty_10__bindgen_ty_2 { count: 2 };
                q.revision = 9;
                if cap >= 2 {
                    // SAFETY: query() passed buffers of `cap` u32s.
                    unsafe {
                        let p = q.prog_ids as *mut u32;
                        *p = 11;
                        *p.add(1) = 10;
                        let l = q.link_ids as *mut u32;
                        *l = 0;
                        *l.add(1) = 5;
                    }
                }
                Ok(0)
            } else {
                panic!("unexpected {call:?}")
            }
        });
        let r = query(AttachPoint::Tcx {
            ifindex: 1,
            dir: Direction::Ingress,
        })
        .unwrap();
        assert_eq!(
            r,
            QueryResult {
                revision: 9,
                prog_ids: vec![11, 10],
                link_ids: vec![0, 5]
            }
        );
    }
}
