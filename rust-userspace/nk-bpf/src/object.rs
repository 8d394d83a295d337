//! ELF objects, opened and relocated (CO-RE, maps, BTF) by libbpf through
//! libbpf-sys, in stages as libbpf's and aya's loaders do: [`Object::open`]
//! parses the file, [`OpenObject`] sets global variables, autoload and
//! maps, [`OpenObject::load`] creates the maps and runs the verifier. Only
//! loading uses libbpf; programs and maps come out as owned fds for the
//! raw-syscall API.
//!
//! What libbpf prints while an object is opened and loaded (its warnings,
//! and the verifier's log of a program that fails) is captured into
//! [`Error::Load`]'s `log`, not printed. Outside those calls libbpf's
//! warnings go to stderr, as its default printer sends them.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
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

/// An opened object, not loaded yet: no map exists and no program was
/// verified. Configure it, then [`OpenObject::load`] it; dropped, it
/// closes without loading.
#[derive(Debug)]
pub struct OpenObject {
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

thread_local! {
    /// libbpf's output on this thread while it is captured.
    static CAPTURE: RefCell<Option<String>> = const { RefCell::new(None) };
}

extern "C" {
    // glibc and musl; the va_list is libbpf's, passed on once.
    fn vasprintf(
        strp: *mut *mut c_char,
        fmt: *const c_char,
        ap: *mut libbpf_sys::__va_list_tag,
    ) -> c_int;
}

/// libbpf's print callback: into the capture of this thread when one is
/// running, else warnings and info to stderr (libbpf's default).
unsafe extern "C" fn print(
    level: libbpf_sys::libbpf_print_level,
    fmt: *const c_char,
    ap: *mut libbpf_sys::__va_list_tag,
) -> c_int {
    let capturing = CAPTURE
        .try_with(|c| c.try_borrow().map(|c| c.is_some()).unwrap_or(false))
        .unwrap_or(false);
    // libbpf's default printer drops DEBUG; so do the capture and stderr.
    if level > libbpf_sys::LIBBPF_INFO {
        return 0;
    }
    let mut p: *mut c_char = std::ptr::null_mut();
    // SAFETY: fmt and ap are libbpf's format and argument list for this
    // one call; vasprintf allocates the result, freed below.
    let n = unsafe { vasprintf(&mut p, fmt, ap) };
    if n < 0 || p.is_null() {
        return 0;
    }
    // SAFETY: vasprintf wrote a NUL-terminated string at p.
    let s = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    // SAFETY: p came from vasprintf's malloc and is freed once.
    unsafe { libc::free(p.cast()) };
    let captured = capturing
        && CAPTURE
            .try_with(|c| match c.try_borrow_mut() {
                Ok(mut c) => c.as_mut().map(|buf| buf.push_str(&s)).is_some(),
                Err(_) => false,
            })
            .unwrap_or(false);
    if !captured {
        let _ = std::io::Write::write_all(&mut std::io::stderr(), s.as_bytes());
    }
    n
}

/// Runs `f` with libbpf's output on this thread captured; returns what it
/// printed with `f`'s result.
fn captured<T>(f: impl FnOnce() -> T) -> (T, String) {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        // SAFETY: `print` has the signature libbpf expects and is valid for
        // the life of the process.
        unsafe { libbpf_sys::libbpf_set_print(Some(print)) };
    });
    let outer = CAPTURE.with(|c| c.borrow_mut().replace(String::new()));
    let r = f();
    let log = CAPTURE
        .with(|c| std::mem::replace(&mut *c.borrow_mut(), outer))
        .unwrap_or_default();
    (r, log)
}

fn cstring(what: &'static str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::Invalid {
        what,
        why: format!("{s:?} contains NUL"),
    })
}

impl Object {
    /// Opens and loads `path`: [`Object::open`] then [`OpenObject::load`].
    ///
    /// # Errors
    /// The file cannot be opened or parsed, or a program fails to load
    /// ([`Error::Load`], with the verifier's log).
    pub fn load(path: &Path) -> Result<Object> {
        Object::open(path)?.load()
    }

    /// Opens and parses `path` without loading anything into the kernel.
    ///
    /// ```no_run
    /// # fn main() -> nk_bpf::Result<()> {
    /// let mut o = nk_bpf::Object::open("nk_e2e.bpf.o".as_ref())?;
    /// o.set_autoload("nk_from_pod_veth", false)?;
    /// let o = o.load()?;
    /// let prog = o.prog("nk_from_pod_netkit")?;
    /// # drop(prog);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// No such file, or libbpf cannot parse it ([`Error::Load`]).
    pub fn open(path: &Path) -> Result<OpenObject> {
        let p = path.display().to_string();
        let load_err = |why: String, log: String| Error::Load {
            path: p.clone(),
            why,
            log,
        };
        if !path.is_file() {
            return Err(load_err("no such file".into(), String::new()));
        }
        let c = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| load_err("path contains NUL".into(), String::new()))?;
        // SAFETY: c is a valid C string; NULL opts means defaults.
        let (obj, log) =
            captured(|| unsafe { libbpf_sys::bpf_object__open_file(c.as_ptr(), std::ptr::null()) });
        if obj.is_null() {
            return Err(load_err(
                format!("open: {}", std::io::Error::last_os_error()),
                log,
            ));
        }
        Ok(OpenObject { obj, path: p })
    }

    /// An owned fd for the program whose C function is `name`.
    ///
    /// # Errors
    /// No such program in the object, or it was not loaded (autoload off).
    pub fn prog(&self, name: &str) -> Result<ProgFd> {
        let p = find_prog(self.obj, &self.path, name)?;
        // SAFETY: p is a program of our loaded object.
        let fd = unsafe { libbpf_sys::bpf_program__fd(p) };
        if fd < 0 {
            return Err(Error::Load {
                path: self.path.clone(),
                why: format!("program {name:?} was not loaded (autoload off)"),
                log: String::new(),
            });
        }
        Ok(ProgFd::from_owned(dup(fd, "program fd")?))
    }

    /// An owned fd for the map `name`.
    ///
    /// # Errors
    /// No such map in the object.
    pub fn map(&self, name: &str) -> Result<MapFd> {
        let m = find_map(self.obj, &self.path, name)?;
        // SAFETY: m is a map of our loaded object.
        let fd = unsafe { libbpf_sys::bpf_map__fd(m) };
        Ok(MapFd::from_owned(dup(fd, "map fd")?))
    }

    /// Names of the object's programs.
    pub fn prog_names(&self) -> Vec<String> {
        prog_names(self.obj)
    }
}

fn find_prog(
    obj: *mut libbpf_sys::bpf_object,
    path: &str,
    name: &str,
) -> Result<*mut libbpf_sys::bpf_program> {
    let c = cstring("program name", name)?;
    // SAFETY: obj is a valid object for the caller's lifetime; c is a C string.
    let p = unsafe { libbpf_sys::bpf_object__find_program_by_name(obj, c.as_ptr()) };
    if p.is_null() {
        return Err(Error::Load {
            path: path.into(),
            why: format!("no program {name:?} (has: {})", prog_names(obj).join(", ")),
            log: String::new(),
        });
    }
    Ok(p)
}

fn find_map(
    obj: *mut libbpf_sys::bpf_object,
    path: &str,
    name: &str,
) -> Result<*mut libbpf_sys::bpf_map> {
    let c = cstring("map name", name)?;
    // SAFETY: obj is valid; c is a valid C string.
    let m = unsafe { libbpf_sys::bpf_object__find_map_by_name(obj, c.as_ptr()) };
    if m.is_null() {
        return Err(Error::Load {
            path: path.into(),
            why: format!("no map {name:?}"),
            log: String::new(),
        });
    }
    Ok(m)
}

fn prog_names(obj: *mut libbpf_sys::bpf_object) -> Vec<String> {
    let mut v = Vec::new();
    // SAFETY: iterating the programs of a valid object; NULL starts.
    let mut p = unsafe { libbpf_sys::bpf_object__next_program(obj, std::ptr::null_mut()) };
    while !p.is_null() {
        // SAFETY: p is a valid program; its name is a C string owned by libbpf.
        let n = unsafe { CStr::from_ptr(libbpf_sys::bpf_program__name(p)) };
        v.push(n.to_string_lossy().into_owned());
        // SAFETY: as above.
        p = unsafe { libbpf_sys::bpf_object__next_program(obj, p) };
    }
    v
}

/// Where a global variable lives: its section's map, offset and size, from
/// the object's BTF (the DATASEC of `.rodata`, `.data` or `.bss`).
fn find_global(
    obj: *mut libbpf_sys::bpf_object,
    name: &str,
) -> Option<(*mut libbpf_sys::bpf_map, usize, usize)> {
    // SAFETY: obj is a valid opened object; its BTF (or NULL) lives as
    // long as it does.
    let btf = unsafe { libbpf_sys::bpf_object__btf(obj) };
    if btf.is_null() {
        return None;
    }
    let mut m = std::ptr::null_mut();
    loop {
        // SAFETY: iterating the maps of a valid object; NULL starts.
        m = unsafe { libbpf_sys::bpf_object__next_map(obj, m) };
        if m.is_null() {
            return None;
        }
        // SAFETY: m is a map of obj.
        if !unsafe { libbpf_sys::bpf_map__is_internal(m) } {
            continue;
        }
        // The map's name is "<obj prefix>.rodata"; its DATASEC's is
        // ".rodata".
        // SAFETY: m is valid; its name is a C string owned by libbpf.
        let mname = unsafe { CStr::from_ptr(libbpf_sys::bpf_map__name(m)) }.to_string_lossy();
        let Some(sec) = [".rodata", ".data", ".bss"]
            .into_iter()
            .find(|s| mname.ends_with(s))
        else {
            continue;
        };
        let csec = CString::new(sec).ok()?;
        // SAFETY: btf is valid; csec is a C string.
        let id = unsafe {
            libbpf_sys::btf__find_by_name_kind(btf, csec.as_ptr(), libbpf_sys::BTF_KIND_DATASEC)
        };
        if id <= 0 {
            continue;
        }
        // SAFETY: id is a type of btf; the result is valid while btf is.
        let t = unsafe { libbpf_sys::btf__type_by_id(btf, id as u32) };
        if t.is_null() {
            continue;
        }
        // SAFETY: t points at a btf_type.
        let vlen = (unsafe { (*t).info } & 0xffff) as usize;
        // SAFETY: a DATASEC's btf_type is followed by vlen btf_var_secinfo
        // records in libbpf's memory.
        let infos = unsafe {
            std::slice::from_raw_parts(t.add(1).cast::<libbpf_sys::btf_var_secinfo>(), vlen)
        };
        for vi in infos {
            // SAFETY: vi.type_ is a VAR type of btf.
            let var = unsafe { libbpf_sys::btf__type_by_id(btf, vi.type_) };
            if var.is_null() {
                continue;
            }
            // SAFETY: var is a btf_type of btf.
            let np = unsafe { libbpf_sys::btf__name_by_offset(btf, (*var).name_off) };
            if np.is_null() {
                continue;
            }
            // SAFETY: a non-null name is a C string in btf's string table.
            let vname = unsafe { CStr::from_ptr(np) };
            if vname.to_bytes() == name.as_bytes() {
                return Some((m, vi.offset as usize, vi.size as usize));
            }
        }
    }
}

impl OpenObject {
    /// Sets the global variable `name` (a `const volatile` of `.rodata`,
    /// or of `.data`/`.bss`) to `value` before load, as a skeleton's
    /// `rodata->name = ...` does. The verifier sees `.rodata` values as
    /// constants.
    ///
    /// # Errors
    /// No such variable in the object's BTF, or `value` is not its size.
    pub fn set_global(&mut self, name: &str, value: &[u8]) -> Result<()> {
        let Some((m, off, size)) = find_global(self.obj, name) else {
            return Err(Error::Invalid {
                what: "global variable",
                why: format!("{}: no {name:?} in .rodata, .data or .bss", self.path),
            });
        };
        if value.len() != size {
            return Err(Error::Invalid {
                what: "global variable",
                why: format!("{name} is {size} bytes, the value {}", value.len()),
            });
        }
        let mut len: libbpf_sys::size_t = 0;
        // SAFETY: m is an internal map of our opened object; libbpf returns
        // its initial value buffer and writes its size to len.
        let data = unsafe { libbpf_sys::bpf_map__initial_value(m, &mut len) };
        if data.is_null() || off.checked_add(size).is_none_or(|end| end as u64 > len) {
            return Err(Error::Invalid {
                what: "global variable",
                why: format!("{name}: its section's data has {len} bytes"),
            });
        }
        // SAFETY: off + size <= len, the buffer's size, and value is size
        // bytes that do not overlap libbpf's buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(value.as_ptr(), data.cast::<u8>().add(off), size);
        }
        Ok(())
    }

    /// Whether `load` loads the program `prog` (default: every program).
    ///
    /// # Errors
    /// No such program.
    pub fn set_autoload(&mut self, prog: &str, on: bool) -> Result<()> {
        let p = find_prog(self.obj, &self.path, prog)?;
        // SAFETY: p is a program of our opened, not yet loaded, object.
        let r = unsafe { libbpf_sys::bpf_program__set_autoload(p, on) };
        if r < 0 {
            return Err(Error::Invalid {
                what: "autoload",
                why: format!("{prog}: {}", std::io::Error::from_raw_os_error(-r)),
            });
        }
        Ok(())
    }

    /// Uses the existing map `fd` for the object's map `name` instead of
    /// creating one (an agent's restart keeps its state). libbpf checks
    /// that its type and sizes match at load.
    ///
    /// # Errors
    /// No such map, or libbpf refuses the fd.
    pub fn reuse_map(&mut self, name: &str, fd: &MapFd) -> Result<()> {
        use std::os::fd::{AsFd, AsRawFd};
        let m = find_map(self.obj, &self.path, name)?;
        // SAFETY: m is a map of our opened object; libbpf dups the fd.
        let r = unsafe { libbpf_sys::bpf_map__reuse_fd(m, fd.as_fd().as_raw_fd()) };
        if r < 0 {
            return Err(Error::Load {
                path: self.path.clone(),
                why: format!(
                    "reuse map {name}: {}",
                    std::io::Error::from_raw_os_error(-r)
                ),
                log: String::new(),
            });
        }
        Ok(())
    }

    /// Pins the map `name` at `path`: at load, a map already pinned there
    /// is reused if it is compatible (a load error if not), else the new
    /// map is pinned there.
    ///
    /// # Errors
    /// No such map, or a path libbpf refuses.
    pub fn pin_map(&mut self, name: &str, path: &Path) -> Result<()> {
        let m = find_map(self.obj, &self.path, name)?;
        let c = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| Error::Invalid {
            what: "pin path",
            why: format!("{} contains NUL", path.display()),
        })?;
        // SAFETY: m is a map of our opened object; c is a C string libbpf copies.
        let r = unsafe { libbpf_sys::bpf_map__set_pin_path(m, c.as_ptr()) };
        if r < 0 {
            return Err(Error::Io {
                what: format!("pin path {} for map {name}", path.display()),
                source: std::io::Error::from_raw_os_error(-r),
            });
        }
        Ok(())
    }

    /// Names of the object's programs.
    pub fn prog_names(&self) -> Vec<String> {
        prog_names(self.obj)
    }

    /// Creates the maps and loads the programs whose autoload is on.
    ///
    /// # Errors
    /// [`Error::Load`], whose `log` holds what libbpf printed, with the
    /// verifier's log of the program that failed.
    pub fn load(self) -> Result<Object> {
        let mut this = std::mem::ManuallyDrop::new(self);
        let (obj, path) = (this.obj, std::mem::take(&mut this.path));
        // Owned from here: closed on error as on success.
        let o = Object { obj, path };
        // SAFETY: o.obj is a valid opened object, loaded once.
        let (r, log) = captured(|| unsafe { libbpf_sys::bpf_object__load(o.obj) });
        if r < 0 {
            return Err(Error::Load {
                path: o.path.clone(),
                why: format!("load: {}", std::io::Error::from_raw_os_error(-r)),
                log,
            });
        }
        Ok(o)
    }
}

impl Drop for OpenObject {
    fn drop(&mut self) {
        // SAFETY: obj came from bpf_object__open_file and is closed once
        // (load() takes it without running this).
        unsafe { libbpf_sys::bpf_object__close(self.obj) };
    }
}

impl Drop for Object {
    fn drop(&mut self) {
        // SAFETY: obj came from bpf_object__open_file and is closed once.
        unsafe { libbpf_sys::bpf_object__close(self.obj) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_a_load_error() {
        let e = Object::open(Path::new("/nonexistent/x.bpf.o")).unwrap_err();
        assert!(matches!(e, Error::Load { .. }), "{e}");
        assert!(
            e.to_string().contains("/nonexistent/x.bpf.o: no such file"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_elf_is_refused_with_libbpf_output_captured() {
        let dir = std::env::temp_dir().join(format!("nk-bpf-open-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("garbage.bpf.o");
        std::fs::write(&f, b"not an ELF file at all").unwrap();
        let e = Object::open(&f).unwrap_err();
        let _ = std::fs::remove_dir_all(&dir);
        let Error::Load { log, .. } = &e else {
            panic!("{e}")
        };
        // libbpf says why; it is in the error, not on stderr.
        assert!(log.contains("elf"), "{log:?}");
        assert!(
            e.to_string()
                .contains(log.trim_end().lines().last().unwrap()),
            "{e}"
        );
    }

    #[test]
    fn capture_nests_and_restores() {
        let ((), outer) = captured(|| {
            CAPTURE.with(|c| c.borrow_mut().as_mut().unwrap().push('a'));
            let ((), inner) = captured(|| {
                CAPTURE.with(|c| c.borrow_mut().as_mut().unwrap().push('b'));
            });
            assert_eq!(inner, "b");
        });
        assert_eq!(outer, "a");
        assert!(CAPTURE.with(|c| c.borrow().is_none()));
    }

    #[test]
    fn log_tail_keeps_the_verifiers_last_lines() {
        let log: String = (0..50).map(|i| format!("line {i}\n")).collect();
        let e = Error::Load {
            path: "x.o".into(),
            why: "load: Permission denied".into(),
            log,
        };
        let s = e.to_string();
        assert!(
            s.starts_with("loading x.o: load: Permission denied\n[... 10 lines"),
            "{s}"
        );
        assert!(s.ends_with("line 49"), "{s}");
        assert!(!s.contains("line 9\n"), "{s}");
    }
}
