//! Network namespaces as owned fds: create (anonymous or named like
//! `ip netns add`), open, and enter with a guard that returns on drop.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nk_sys::{syscall, Syscall};

use crate::error::{Error, Result};

/// Where `ip netns` keeps named namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// An open network namespace.
#[derive(Debug)]
pub struct NetnsFd(OwnedFd);

impl AsFd for NetnsFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

fn io_err(call: &'static str, request: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Sys {
        call,
        request,
        source,
    }
}

impl NetnsFd {
    /// The calling thread's current netns.
    ///
    /// # Errors
    /// Opening `/proc/thread-self/ns/net`.
    pub fn current() -> Result<Self> {
        Self::open(Path::new("/proc/thread-self/ns/net"))
    }

    /// Opens a netns file (`/run/netns/NAME`, `/proc/PID/ns/net`).
    ///
    /// # Errors
    /// The file cannot be opened.
    pub fn open(path: &Path) -> Result<Self> {
        let f = File::open(path).map_err(io_err("open", format!("netns {}", path.display())))?;
        Ok(NetnsFd(f.into()))
    }

    /// Opens a named netns (`ip netns` style).
    ///
    /// ```no_run
    /// # fn main() -> nk_netlink::Result<()> {
    /// let pod = nk_netlink::NetnsFd::named("pod0")?;
    /// let links = pod.run(|| nk_netlink::RtSocket::open()?.link_dump())??;
    /// # let _ = links;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// No such netns.
    pub fn named(name: &str) -> Result<Self> {
        Self::open(&Path::new(NETNS_RUN_DIR).join(name))
    }

    /// Creates a new, anonymous netns. The caller's thread stays where it
    /// is: the namespace is made on a helper thread.
    ///
    /// # Errors
    /// `unshare(CLONE_NEWNET)` fails (needs CAP_SYS_ADMIN).
    pub fn create() -> Result<Self> {
        std::thread::spawn(|| {
            syscall(Syscall::Unshare {
                flags: libc::CLONE_NEWNET,
            })
            .map_err(io_err("unshare", "creating a netns".into()))?;
            NetnsFd::current()
        })
        .join()
        .expect("netns helper thread panicked")
    }

    /// Creates a netns and binds it at `/run/netns/NAME`, as `ip netns add`
    /// does, so that iproute2 and other tools see it.
    ///
    /// ```no_run
    /// # fn main() -> nk_netlink::Result<()> {
    /// let pod = nk_netlink::NetnsFd::create_named("pod0")?;
    /// # drop(pod);
    /// nk_netlink::NetnsFd::delete_named("pod0")?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// The name is bad, exists already, or the bind mount fails.
    pub fn create_named(name: &str) -> Result<Self> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(Error::Invalid {
                what: "netns name",
                why: format!("{name:?}"),
            });
        }
        let dir = Path::new(NETNS_RUN_DIR);
        std::fs::create_dir_all(dir).map_err(io_err("mkdir", NETNS_RUN_DIR.into()))?;
        let path = dir.join(name);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err("create", format!("netns file {}", path.display())))?;
        let ns = match Self::create() {
            Ok(ns) => ns,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        };
        let src = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&ns.0));
        if let Err(e) = bind_mount(Path::new(&src), &path) {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(ns)
    }

    /// Removes a named netns (`ip netns del`). The namespace itself lives on
    /// while anything holds it.
    ///
    /// # Errors
    /// Unmount or unlink fails.
    pub fn delete_named(name: &str) -> Result<()> {
        let path: PathBuf = Path::new(NETNS_RUN_DIR).join(name);
        let c = CString::new(path.as_os_str().as_encoded_bytes()).expect("no NUL in path");
        // SAFETY: c is a valid NUL-terminated path.
        let r = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(io_err("umount2", format!("netns {name}"))(e));
            }
        }
        std::fs::remove_file(&path).map_err(io_err("unlink", format!("netns {name}")))
    }

    /// Moves the calling thread into this netns until the guard drops.
    ///
    /// # Errors
    /// `setns` fails.
    pub fn enter(&self) -> Result<NetnsGuard> {
        let back = NetnsFd::current()?;
        syscall(Syscall::Setns {
            fd: self.0.as_fd(),
            nstype: libc::CLONE_NEWNET,
        })
        .map_err(io_err("setns", "entering a netns".into()))?;
        Ok(NetnsGuard {
            back,
            _thread: std::marker::PhantomData,
        })
    }

    /// Runs `f` inside this netns on the calling thread, then returns.
    ///
    /// ```no_run
    /// # fn main() -> nk_netlink::Result<()> {
    /// let pod = nk_netlink::NetnsFd::named("pod0")?;
    /// // The closure runs on a thread that entered pod0; the caller's is untouched.
    /// let lo = pod.run(|| nk_netlink::RtSocket::open()?.link_get("lo"))??;
    /// # let _ = lo;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// Entering fails; `f`'s own result is passed through.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        let _g = self.enter()?;
        Ok(f())
    }
}

/// Returns the thread to its previous netns when dropped.
///
/// A netns is a property of a thread, so the guard must be dropped on the
/// thread that entered: it is neither `Send` nor `Sync`.
///
/// ```compile_fail,E0277
/// fn send<T: Send>() {}
/// send::<nk_netlink::netns::NetnsGuard>();
/// ```
#[derive(Debug)]
pub struct NetnsGuard {
    back: NetnsFd,
    /// `*const ()` makes the guard `!Send` and `!Sync`.
    _thread: std::marker::PhantomData<*const ()>,
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let r = syscall(Syscall::Setns {
            fd: self.back.0.as_fd(),
            nstype: libc::CLONE_NEWNET,
        });
        // Staying in the wrong netns would silently misdirect every later
        // request of this thread; that is worse than stopping.
        r.expect("setns back to the original netns failed");
    }
}

fn bind_mount(src: &Path, dst: &Path) -> Result<()> {
    let s = CString::new(src.as_os_str().as_encoded_bytes()).expect("no NUL");
    let d = CString::new(dst.as_os_str().as_encoded_bytes()).expect("no NUL");
    // SAFETY: both are valid NUL-terminated paths; no fs type or data.
    let r = unsafe {
        libc::mount(
            s.as_ptr(),
            d.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(io_err(
            "mount",
            format!("bind {} on {}", src.display(), dst.display()),
        )(std::io::Error::last_os_error()));
    }
    Ok(())
}
