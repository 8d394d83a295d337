//! The one place where nkdev's userspace enters the kernel.
//!
//! Every `bpf(2)`, netlink socket call, `setns(2)`/`unshare(2)` and
//! `ioctl(2)` of `nk-netlink`, `nk-bpf` and `nkctl` goes through
//! [`syscall`]. With the `fake` feature (or in this crate's tests) a test
//! can install a fake kernel for the current thread with
//! [`fake::install`], so the wrappers are unit-tested without root.
//!
//! A test build fails closed: a call made on a thread with no fake
//! installed panics, naming the call, instead of reaching the real
//! kernel. Unit tests run as root in CI, where a call that slipped
//! through would change the machine and pass for the wrong reason.
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

pub use nk_uapi as uapi;

/// The `attr` of a bpf() call. The kernel follows the pointers stored in
/// it (log buffers, key and value buffers, id arrays, paths) and writes
/// through some of them, so a safe caller must not be able to hand over
/// arbitrary ones: making a `BpfAttr` is `unsafe`, and the typed wrappers
/// of nk-bpf are where that promise is kept.
///
/// ```compile_fail,E0133
/// let mut a = nk_sys::uapi::bpf_attr::default();
/// // Safe code cannot make one: the kernel would follow a's pointers.
/// let _ = nk_sys::BpfAttr::new(&mut a);
/// ```
pub struct BpfAttr<'a>(&'a mut uapi::bpf_attr);

impl<'a> BpfAttr<'a> {
    /// Wraps `attr` for [`Syscall::Bpf`].
    ///
    /// # Safety
    ///
    /// For the command it is passed with, every pointer stored in `attr`
    /// must be null or point to memory that stays valid for the call and
    /// is at least as large as the kernel will read or write through it
    /// for that command (a lookup's value buffer holds the map's value
    /// size, per CPU for per-CPU maps; an id array holds the count given
    /// with it; a path is NUL-terminated), and writable where the kernel
    /// writes.
    pub unsafe fn new(attr: &'a mut uapi::bpf_attr) -> Self {
        BpfAttr(attr)
    }

    /// The attr itself, for fakes that answer the call (reading or
    /// writing the union is safe; the pointers in it are not followed).
    pub fn get_mut(&mut self) -> &mut uapi::bpf_attr {
        self.0
    }
}

/// A syscall nkdev makes, with its arguments.
pub enum Syscall<'a> {
    /// `bpf(cmd, attr, sizeof(*attr))`
    Bpf {
        /// `BPF_*` command.
        cmd: u32,
        /// The attribute union, read and written by the kernel, and the
        /// buffers its pointers name: only [`BpfAttr::new`], which is
        /// `unsafe`, makes one.
        attr: BpfAttr<'a>,
    },
    /// `socket(domain, ty | SOCK_CLOEXEC, proto)`
    Socket {
        /// Address family.
        domain: i32,
        /// Socket type.
        ty: i32,
        /// Protocol.
        proto: i32,
    },
    /// `setsockopt(fd, level, name, val)`
    SetSockOpt {
        /// The socket.
        fd: BorrowedFd<'a>,
        /// `SOL_*`
        level: i32,
        /// Option name.
        name: i32,
        /// Option value bytes.
        val: &'a [u8],
    },
    /// `bind(fd, sockaddr_nl)` for netlink sockets.
    BindNetlink {
        /// The socket.
        fd: BorrowedFd<'a>,
        /// Multicast groups bitmask.
        groups: u32,
    },
    /// `send(fd, buf, 0)`
    Send {
        /// The socket.
        fd: BorrowedFd<'a>,
        /// Bytes to send.
        buf: &'a [u8],
    },
    /// `recv(fd, buf, flags)`
    Recv {
        /// The socket.
        fd: BorrowedFd<'a>,
        /// Receive buffer.
        buf: &'a mut [u8],
        /// `MSG_*` flags.
        flags: i32,
    },
    /// `setns(fd, nstype)`
    Setns {
        /// A namespace fd.
        fd: BorrowedFd<'a>,
        /// `CLONE_NEW*` or 0.
        nstype: i32,
    },
    /// `unshare(flags)`
    Unshare {
        /// `CLONE_*` flags.
        flags: i32,
    },
    /// `ioctl(fd, NS_GET_NSTYPE)`: the `CLONE_NEW*` type of a namespace fd.
    NsGetType {
        /// A file that should be a namespace (nsfs).
        fd: BorrowedFd<'a>,
    },
}

impl std::fmt::Debug for Syscall<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Syscall::Bpf { cmd, .. } => write!(f, "bpf(cmd {cmd})"),
            Syscall::Socket { domain, ty, proto } => write!(f, "socket({domain}, {ty}, {proto})"),
            Syscall::SetSockOpt { level, name, .. } => {
                write!(f, "setsockopt(level {level}, name {name})")
            }
            Syscall::BindNetlink { groups, .. } => write!(f, "bind(netlink, groups {groups:#x})"),
            Syscall::Send { buf, .. } => write!(f, "send({} bytes)", buf.len()),
            Syscall::Recv { buf, .. } => write!(f, "recv({} byte buffer)", buf.len()),
            Syscall::Setns { nstype, .. } => write!(f, "setns({nstype:#x})"),
            Syscall::Unshare { flags } => write!(f, "unshare({flags:#x})"),
            Syscall::NsGetType { .. } => write!(f, "ioctl(NS_GET_NSTYPE)"),
        }
    }
}

impl Syscall<'_> {
    /// The syscall's name, for error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Syscall::Bpf { .. } => "bpf",
            Syscall::Socket { .. } => "socket",
            Syscall::SetSockOpt { .. } => "setsockopt",
            Syscall::BindNetlink { .. } => "bind",
            Syscall::Send { .. } => "send",
            Syscall::Recv { .. } => "recv",
            Syscall::Setns { .. } => "setns",
            Syscall::Unshare { .. } => "unshare",
            Syscall::NsGetType { .. } => "ioctl",
        }
    }
}

/// Makes the call. Returns the syscall's non-negative result.
///
/// In builds with the `fake` feature (tests) the fake installed on this
/// thread answers, and with none installed the call panics.
///
/// # Errors
/// The `errno` of a failed call, as [`io::Error`].
///
/// # Panics
/// In a `fake` build, when no fake is installed on this thread.
pub fn syscall(call: Syscall<'_>) -> io::Result<i64> {
    #[cfg(any(test, feature = "fake"))]
    {
        let mut call = call;
        match fake::dispatch(&mut call) {
            Some(r) => r,
            None => panic!(
                "nk-sys: {call:?} reached the real kernel in a test build; \
                 install a fake with nk_sys::fake::install (unit tests never touch the kernel)"
            ),
        }
    }
    #[cfg(not(any(test, feature = "fake")))]
    {
        let mut call = call;
        let r = real(&mut call);
        #[cfg(feature = "trace")]
        trace::observe(&call, &r);
        r
    }
}

/// `ioctl(NS_GET_NSTYPE)` request number (`_IO(0xb7, 0x3)`).
pub const NS_GET_NSTYPE: u64 = 0xb703;

fn cvt(r: i64) -> io::Result<i64> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

#[cfg_attr(any(test, feature = "fake"), allow(dead_code))]
fn real(call: &mut Syscall<'_>) -> io::Result<i64> {
    match call {
        Syscall::Bpf { cmd, attr } => {
            // SAFETY: attr is a live, writable bpf_attr whose size we pass,
            // and BpfAttr::new's contract makes every pointer stored in it
            // valid for what the kernel does with it for cmd.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_bpf,
                    *cmd as libc::c_long,
                    std::ptr::from_mut::<uapi::bpf_attr>(attr.get_mut()),
                    std::mem::size_of::<uapi::bpf_attr>(),
                )
            };
            cvt(r)
        }
        Syscall::Socket { domain, ty, proto } => {
            // SAFETY: socket(2) takes no pointers.
            cvt(unsafe { libc::socket(*domain, *ty | libc::SOCK_CLOEXEC, *proto) } as i64)
        }
        Syscall::SetSockOpt {
            fd,
            level,
            name,
            val,
        } => {
            // SAFETY: val is a live slice of the length we pass.
            let r = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    *level,
                    *name,
                    val.as_ptr().cast(),
                    val.len() as libc::socklen_t,
                )
            };
            cvt(r as i64)
        }
        Syscall::BindNetlink { fd, groups } => {
            // SAFETY: sockaddr_nl is plain old data; zeroed is valid.
            let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
            sa.nl_family = libc::AF_NETLINK as u16;
            sa.nl_groups = *groups;
            // SAFETY: sa is a valid sockaddr_nl of the size we pass.
            let r = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sa as *const libc::sockaddr_nl).cast(),
                    std::mem::size_of::<libc::sockaddr_nl>() as u32,
                )
            };
            cvt(r as i64)
        }
        Syscall::Send { fd, buf } => {
            // SAFETY: buf is a live slice of the length we pass.
            cvt(unsafe { libc::send(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), 0) } as i64)
        }
        Syscall::Recv { fd, buf, flags } => {
            // SAFETY: buf is a live, writable slice of the length we pass.
            cvt(
                unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), *flags) }
                    as i64,
            )
        }
        Syscall::Setns { fd, nstype } => {
            // SAFETY: setns(2) takes no pointers.
            cvt(unsafe { libc::setns(fd.as_raw_fd(), *nstype) } as i64)
        }
        Syscall::Unshare { flags } => {
            // SAFETY: unshare(2) takes no pointers.
            cvt(unsafe { libc::unshare(*flags) } as i64)
        }
        Syscall::NsGetType { fd } => {
            // SAFETY: NS_GET_NSTYPE takes no argument pointer; on a file
            // that is not a namespace the kernel returns ENOTTY.
            cvt(unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE as _) } as i64)
        }
    }
}

/// Wraps a new fd returned by a successful call. Call it right after the
/// success check, before anything can return early.
///
/// # Safety
/// `fd` must be a valid, open file descriptor that nothing else owns.
pub unsafe fn owned_fd(fd: i64) -> OwnedFd {
    // SAFETY: the caller guarantees fd is open and unowned.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// Opens a socket and returns it owned.
///
/// # Errors
/// `socket(2)`'s errno.
pub fn socket(domain: i32, ty: i32, proto: i32) -> io::Result<OwnedFd> {
    let fd = syscall(Syscall::Socket { domain, ty, proto })?;
    // SAFETY: socket(2) succeeded, so fd is a new descriptor that we own.
    Ok(unsafe { owned_fd(fd) })
}

/// Observing the real calls of the current thread, for a recorder that
/// must know what the kernel was told beyond what it can capture on the
/// wire (the golden capture records each netlink socket's options).
#[cfg(feature = "trace")]
pub mod trace {
    use super::Syscall;
    use std::cell::RefCell;
    use std::io;

    type Observer = Box<dyn FnMut(&Syscall<'_>, &io::Result<i64>)>;

    thread_local! {
        static OBSERVER: RefCell<Option<Observer>> = const { RefCell::new(None) };
    }

    /// Removes the observer when dropped.
    pub struct Guard(());

    impl Drop for Guard {
        fn drop(&mut self) {
            OBSERVER.with(|f| f.borrow_mut().take());
        }
    }

    /// Calls `f` after every real call this thread makes, with its result,
    /// until the guard is dropped.
    pub fn install(f: impl FnMut(&Syscall<'_>, &io::Result<i64>) + 'static) -> Guard {
        OBSERVER.with(|c| *c.borrow_mut() = Some(Box::new(f)));
        Guard(())
    }

    #[cfg_attr(any(test, feature = "fake"), allow(dead_code))]
    pub(crate) fn observe(call: &Syscall<'_>, r: &io::Result<i64>) {
        OBSERVER.with(|c| {
            if let Some(f) = c.borrow_mut().as_mut() {
                f(call, r);
            }
        });
    }
}

/// A thread-local fake kernel for unprivileged tests.
#[cfg(any(test, feature = "fake"))]
pub mod fake {
    use super::Syscall;
    use std::cell::RefCell;
    use std::io;

    type Handler = Box<dyn FnMut(&mut Syscall<'_>) -> io::Result<i64>>;

    thread_local! {
        static FAKE: RefCell<Option<Handler>> = const { RefCell::new(None) };
    }

    /// Removes the fake when dropped.
    pub struct Guard(());

    impl Drop for Guard {
        fn drop(&mut self) {
            FAKE.with(|f| f.borrow_mut().take());
        }
    }

    /// Installs `f` as this thread's kernel until the guard is dropped.
    pub fn install(f: impl FnMut(&mut Syscall<'_>) -> io::Result<i64> + 'static) -> Guard {
        FAKE.with(|c| *c.borrow_mut() = Some(Box::new(f)));
        Guard(())
    }

    pub(crate) fn dispatch(call: &mut Syscall<'_>) -> Option<io::Result<i64>> {
        FAKE.with(|c| c.borrow_mut().as_mut().map(|f| f(call)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_sees_every_call() {
        let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        {
            let s = seen.clone();
            let _g = fake::install(move |c| {
                s.borrow_mut().push(c.name());
                Err(io::Error::from_raw_os_error(libc::EPERM))
            });
            let e = socket(libc::AF_NETLINK, libc::SOCK_RAW, 0).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EPERM));
        }
        assert_eq!(*seen.borrow(), ["socket"]);
    }

    #[test]
    #[should_panic(expected = "socket(1, 2, 0) reached the real kernel in a test build")]
    fn without_a_fake_a_call_fails_closed() {
        let _ = socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0);
    }

    #[test]
    #[should_panic(expected = "reached the real kernel")]
    fn a_dropped_fake_no_longer_answers() {
        drop(fake::install(|_| Ok(0)));
        let _ = syscall(Syscall::Unshare { flags: 0 });
    }
}
