//! ELF objects, opened and relocated (CO-RE, maps, BTF) by libbpf through
//! libbpf-sys. Only loading uses libbpf; programs and maps come out as
//! owned fds for the raw-syscall API.

use std::ffi::{CStr, CString};
use std::path::Path;

use crate::error::{Error, Result};
use crate::fd::{MapFd, ProgFd};

/// A loaded object. Dropping it closes libbpf's handles; fds taken out
/// with [`Object::prog`] and [`Object::map`] stay valid.
#[derive(Debug)]
pub struct Object {
    obj: *mut libbpf_sys::bpf_object,
    path: String,
}

fn dup(fd: i32, what: &str) -> Result<std::os::fd::OwnedFd> {
    // SAFETY: fcntl F_DUPFD_CLOEXEC takes no pointers; a bad fd gives EBADF.
    let n = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if n < 0 {
        return Err(Error::Io {
            what: format!("dup {what}"),
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: fcntl returned a new descriptor that we own.
    Ok(unsafe { nk_sys::owned_fd(n as i64) })
}

impl Object {
    /// Opens and loads `path` (the verifier runs here; libbpf prints its
    /// log to stderr on failure).
    ///
    /// # Errors
    /// The file cannot be opened or parsed, or a program fails to load.
    pub fn load(path: &Path) -> Result<Object> {
        let p = path.display().to_string();
        if !path.is_file() {
            return Err(Error::Load {
                path: p,
                why: "no such file".into(),
            });
        }
        let c = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| Error::Load {
            path: p.clone(),
            why: "path contains NUL".into(),
        })?;
        // SAFETY: c is a valid C string; NULL opts means defaults.
        let obj = unsafe { libbpf_sys::bpf_object__open_file(c.as_ptr(), std::ptr::null()) };
        if obj.is_null() {
            return Err(Error::Load {
                path: p,
                why: format!("open: {}", std::io::Error::last_os_error()),
            });
        }
        let o = Object { obj, path: p };
        // SAFETY: o.obj is a valid object from bpf_object__open_file.
        let r = unsafe { libbpf_sys::bpf_object__load(o.obj) };
        if r < 0 {
            return Err(Error::Load {
                path: o.path.clone(),
                why: format!(
                    "load: {} (verifier log above)",
                    std::io::Error::from_raw_os_error(-r)
                ),
            });
        }
        Ok(o)
    }

    /// An owned fd for the program whose C function is `name`.
    ///
    /// # Errors
    /// No such program in the object.
    pub fn prog(&self, name: &str) -> Result<ProgFd> {
        let c = CString::new(name).map_err(|_| Error::Invalid {
            what: "program name",
            why: name.into(),
        })?;
        // SAFETY: self.obj is valid for our lifetime; c is a valid C string.
        let p = unsafe { libbpf_sys::bpf_object__find_program_by_name(self.obj, c.as_ptr()) };
        if p.is_null() {
            return Err(Error::Load {
                path: self.path.clone(),
                why: format!(
                    "no program {name:?} (has: {})",
                    self.prog_names().join(", ")
                ),
            });
        }
        // SAFETY: p is a program of our loaded object.
        let fd = unsafe { libbpf_sys::bpf_program__fd(p) };
        Ok(ProgFd::from_owned(dup(fd, "program fd")?))
    }

    /// An owned fd for the map `name`.
    ///
    /// # Errors
    /// No such map in the object.
    pub fn map(&self, name: &str) -> Result<MapFd> {
        let c = CString::new(name).map_err(|_| Error::Invalid {
            what: "map name",
            why: name.into(),
        })?;
        // SAFETY: self.obj is valid; c is a valid C string.
        let m = unsafe { libbpf_sys::bpf_object__find_map_by_name(self.obj, c.as_ptr()) };
        if m.is_null() {
            return Err(Error::Load {
                path: self.path.clone(),
                why: format!("no map {name:?}"),
            });
        }
        // SAFETY: m is a map of our loaded object.
        let fd = unsafe { libbpf_sys::bpf_map__fd(m) };
        Ok(MapFd::from_owned(dup(fd, "map fd")?))
    }

    /// Names of the object's programs.
    pub fn prog_names(&self) -> Vec<String> {
        let mut v = Vec::new();
        // SAFETY: iterating the programs of a valid object; NULL starts.
        let mut p = unsafe { libbpf_sys::bpf_object__next_program(self.obj, std::ptr::null_mut()) };
        while !p.is_null() {
            // SAFETY: p is a valid program; its name is a C string owned by libbpf.
            let n = unsafe { CStr::from_ptr(libbpf_sys::bpf_program__name(p)) };
            v.push(n.to_string_lossy().into_owned());
            // SAFETY: as above.
            p = unsafe { libbpf_sys::bpf_object__next_program(self.obj, p) };
        }
        v
    }
}

impl Drop for Object {
    fn drop(&mut self) {
        // SAFETY: obj came from bpf_object__open_file and is closed once.
        unsafe { libbpf_sys::bpf_object__close(self.obj) };
    }
}
