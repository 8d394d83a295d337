//! Map element access (`BPF_MAP_LOOKUP_ELEM` / `BPF_MAP_UPDATE_ELEM`) and
//! whole-map reads (`BPF_MAP_LOOKUP_BATCH`).

use std::os::fd::AsFd;

use nk_sys::uapi;

use crate::attr;
use crate::error::{Error, Result};
use crate::fd::{MapFd, MapLayout};
use crate::sys;

/// The possible CPUs (`/sys/devices/system/cpu/possible`, e.g. `0-7`).
fn possible_cpus() -> Result<usize> {
    let path = "/sys/devices/system/cpu/possible";
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        what: format!("reading {path}"),
        source,
    })?;
    parse_cpu_list(text.trim()).ok_or_else(|| Error::Invalid {
        what: "possible CPU list",
        why: format!("{path}: {text:?}"),
    })
}

/// The number of CPUs in a list such as `0-3,8-11`: one past the highest,
/// since the kernel lays per-CPU values out by CPU number.
fn parse_cpu_list(s: &str) -> Option<usize> {
    let mut max = None;
    for part in s.split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let (lo, hi): (usize, usize) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
        if lo > hi {
            return None;
        }
        max = Some(max.map_or(hi, |m: usize| m.max(hi)));
    }
    max.map(|m| m + 1)
}

/// The bytes the kernel copies for one value of a map with this layout.
fn value_bytes(l: &MapLayout) -> Result<usize> {
    if l.per_cpu() {
        Ok((l.value_size as usize).next_multiple_of(8) * possible_cpus()?)
    } else {
        Ok(l.value_size as usize)
    }
}

/// Checks the buffers of an element access against what the kernel will
/// read and write: it copies exactly the map's key and value sizes, so a
/// shorter buffer would be overrun.
fn check_sizes(map: &MapFd, key: usize, value: usize, op: &str) -> Result<MapLayout> {
    let l = map.layout()?;
    let want = value_bytes(&l)?;
    if key != l.key_size as usize || value != want {
        return Err(Error::Invalid {
            what: "map element buffers",
            why: format!(
                "{op}: the map (type {}) has {}-byte keys and {want}-byte values, \
                 the buffers are {key} and {value} bytes",
                l.map_type, l.key_size
            ),
        });
    }
    Ok(l)
}

/// Fills a `BPF_MAP_LOOKUP_BATCH` attr.
fn batch_attr(
    map: &MapFd,
    in_batch: Option<&[u8]>,
    out_batch: &mut [u8],
    keys: &mut [u8],
    values: &mut [u8],
    count: u32,
) -> uapi::bpf_attr {
    attr::map_batch(
        map.as_fd(),
        in_batch.map_or(0, |b| b.as_ptr() as u64),
        out_batch.as_mut_ptr() as u64,
        keys.as_mut_ptr() as u64,
        values.as_mut_ptr() as u64,
        count,
    )
}

impl MapFd {
    /// Reads up to `max` entries with `BPF_MAP_LOOKUP_BATCH`, a few calls
    /// for the whole map instead of two per element. Returns
    /// `(key, value)` byte pairs in the map's order (index order for
    /// arrays).
    ///
    /// ```no_run
    /// # fn main() -> nk_bpf::Result<()> {
    /// let map = nk_bpf::Object::load("prog.bpf.o".as_ref())?.map("counters")?;
    /// for (k, v) in map.lookup_batch(4, 8, 1024)? {
    ///     println!("{k:?} -> {v:?}");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::Invalid`] when `key_size` and `value_size` are not the
    /// map's (per-CPU maps: the value of every possible CPU); the kernel's
    /// errno (ENOSPC: one hash bucket holds more than `max`).
    pub fn lookup_batch(
        &self,
        key_size: usize,
        value_size: usize,
        max: u32,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        check_sizes(self, key_size, value_size, "BPF_MAP_LOOKUP_BATCH")?;
        // The batch token is a u32 (hash bucket) or a key (array index).
        let tok = key_size.max(8);
        let mut token_in = vec![0u8; tok];
        let mut token_out = vec![0u8; tok];
        let mut out = Vec::new();
        let mut first = true;
        while (out.len() as u32) < max {
            let want = max - out.len() as u32;
            let mut keys = vec![0u8; key_size * want as usize];
            let mut values = vec![0u8; value_size * want as usize];
            let mut a = batch_attr(
                self,
                (!first).then_some(&token_in[..]),
                &mut token_out,
                &mut keys,
                &mut values,
                want,
            );
            // SAFETY: batch_attr() points at keys and values sized for `want`
            // entries of the map's key and value sizes (check_sizes() above),
            // and at token buffers of max(key size, 8) bytes, which holds a
            // hash bucket's u32 or an array's key; all alive until the call
            // returns.
            let r = unsafe {
                sys::bpf(uapi::BPF_MAP_LOOKUP_BATCH, &mut a, || {
                    "BPF_MAP_LOOKUP_BATCH".into()
                })
            };
            // SAFETY: batch is the member we initialised; the kernel
            // wrote the count of copied elements back into it.
            let got = unsafe { a.batch.count } as usize;
            for i in 0..got {
                out.push((
                    keys[i * key_size..(i + 1) * key_size].to_vec(),
                    values[i * value_size..(i + 1) * value_size].to_vec(),
                ));
            }
            match r {
                Ok(_) => {}
                // ENOENT: the map is done (the elements copied are valid).
                Err(crate::Error::Bpf { ref source, .. })
                    if source.raw_os_error() == Some(libc::ENOENT) =>
                {
                    break
                }
                Err(e) => return Err(e),
            }
            token_in.copy_from_slice(&token_out);
            first = false;
        }
        Ok(out)
    }

    /// Reads the value at `key` into `value`.
    ///
    /// ```no_run
    /// # fn main() -> nk_bpf::Result<()> {
    /// let map = nk_bpf::Object::load("prog.bpf.o".as_ref())?.map("counters")?;
    /// let mut v = [0u8; 8];
    /// map.lookup(&0u32.to_ne_bytes(), &mut v)?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::Invalid`] when the buffers are not the map's key and value
    /// sizes (per-CPU maps: the value of every possible CPU), checked
    /// first; ENOENT for a missing key, and the kernel's other errnos.
    pub fn lookup(&self, key: &[u8], value: &mut [u8]) -> Result<()> {
        check_sizes(self, key.len(), value.len(), "BPF_MAP_LOOKUP_ELEM")?;
        let mut a = attr::map_elem(
            self.as_fd(),
            key.as_ptr() as u64,
            value.as_mut_ptr() as u64,
            0,
        );
        // SAFETY: check_sizes() made key and value exactly the map's key
        // and value sizes (per CPU for per-CPU maps), which is what the
        // kernel reads and writes; both outlive the call.
        unsafe {
            sys::bpf(uapi::BPF_MAP_LOOKUP_ELEM, &mut a, || {
                "BPF_MAP_LOOKUP_ELEM".into()
            })
        }
        .map(drop)
    }

    /// Writes `value` at `key` (`BPF_ANY`).
    ///
    /// ```no_run
    /// # fn main() -> nk_bpf::Result<()> {
    /// let map = nk_bpf::Object::load("prog.bpf.o".as_ref())?.map("counters")?;
    /// map.update(&0u32.to_ne_bytes(), &0u64.to_ne_bytes())?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::Invalid`] when the buffers are not the map's key and value
    /// sizes, checked first (the kernel would read past them); the
    /// kernel's errno.
    pub fn update(&self, key: &[u8], value: &[u8]) -> Result<()> {
        check_sizes(self, key.len(), value.len(), "BPF_MAP_UPDATE_ELEM")?;
        let mut a = attr::map_elem(
            self.as_fd(),
            key.as_ptr() as u64,
            value.as_ptr() as u64,
            uapi::BPF_ANY as u64,
        );
        // SAFETY: check_sizes() made key and value exactly the map's key
        // and value sizes, which is what the kernel reads; both outlive the
        // call.
        unsafe {
            sys::bpf(uapi::BPF_MAP_UPDATE_ELEM, &mut a, || {
                "BPF_MAP_UPDATE_ELEM".into()
            })
        }
        .map(drop)
    }

    /// `u32 -> u32` lookup, for array maps of counters.
    ///
    /// ```no_run
    /// # fn main() -> nk_bpf::Result<()> {
    /// let map = nk_bpf::Object::load("prog.bpf.o".as_ref())?.map("cfg")?;
    /// let packets = map.get_u32(1)?;
    /// # let _ = packets;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`MapFd::lookup`].
    pub fn get_u32(&self, key: u32) -> Result<u32> {
        let mut v = [0u8; 4];
        self.lookup(&key.to_ne_bytes(), &mut v)?;
        Ok(u32::from_ne_bytes(v))
    }

    /// `u32 -> u64` lookup, for array maps of 64-bit counters.
    ///
    /// ```no_run
    /// # fn main() -> nk_bpf::Result<()> {
    /// let map = nk_bpf::Object::load("prog.bpf.o".as_ref())?.map("counters")?;
    /// let bytes = map.get_u64(0)?;
    /// # let _ = bytes;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`MapFd::lookup`].
    pub fn get_u64(&self, key: u32) -> Result<u64> {
        let mut v = [0u8; 8];
        self.lookup(&key.to_ne_bytes(), &mut v)?;
        Ok(u64::from_ne_bytes(v))
    }

    /// `u32 -> u32` update.
    ///
    /// ```no_run
    /// # fn main() -> nk_bpf::Result<()> {
    /// let map = nk_bpf::Object::load("prog.bpf.o".as_ref())?.map("cfg")?;
    /// map.set_u32(0, 1)?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`MapFd::update`].
    pub fn set_u32(&self, key: u32, value: u32) -> Result<()> {
        self.update(&key.to_ne_bytes(), &value.to_ne_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_cpu_list;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("0-7"), Some(8));
        assert_eq!(parse_cpu_list("0-3,8-11"), Some(12));
        assert_eq!(parse_cpu_list("0,2"), Some(3));
        assert_eq!(parse_cpu_list(""), None);
        assert_eq!(parse_cpu_list("x-1"), None);
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("0-y"), None);
    }
}
