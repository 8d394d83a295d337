//! Map element access (`BPF_MAP_LOOKUP_ELEM` / `BPF_MAP_UPDATE_ELEM`) and
//! whole-map reads (`BPF_MAP_LOOKUP_BATCH`).

use std::os::fd::{AsFd, AsRawFd};

use nk_sys::uapi;

use crate::error::Result;
use crate::fd::MapFd;
use crate::sys;

/// Fills a `BPF_MAP_LOOKUP_BATCH` attr.
fn batch_attr(
    map: &MapFd,
    in_batch: Option<&[u8]>,
    out_batch: &mut [u8],
    keys: &mut [u8],
    values: &mut [u8],
    count: u32,
) -> uapi::bpf_attr {
    let mut a = sys::attr();
    a.batch = uapi::bpf_attr__bindgen_ty_3 {
        in_batch: in_batch.map_or(0, |b| b.as_ptr() as u64),
        out_batch: out_batch.as_mut_ptr() as u64,
        keys: keys.as_mut_ptr() as u64,
        values: values.as_mut_ptr() as u64,
        count,
        map_fd: map.as_fd().as_raw_fd() as u32,
        elem_flags: 0,
        flags: 0,
    };
    a
}

impl MapFd {
    /// Reads up to `max` entries with `BPF_MAP_LOOKUP_BATCH`, a few calls
    /// for the whole map instead of two per element. Returns
    /// `(key, value)` byte pairs in the map's order (index order for
    /// arrays).
    ///
    /// # Errors
    /// The kernel's errno (ENOSPC: one hash bucket holds more than `max`).
    pub fn lookup_batch(
        &self,
        key_size: usize,
        value_size: usize,
        max: u32,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
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
            let r = sys::bpf(uapi::BPF_MAP_LOOKUP_BATCH, &mut a, || {
                "BPF_MAP_LOOKUP_BATCH".into()
            });
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

    /// Reads the value at `key` into `value` (which must be the map's
    /// value size).
    ///
    /// # Errors
    /// ENOENT for a missing key, and the kernel's other errnos.
    pub fn lookup(&self, key: &[u8], value: &mut [u8]) -> Result<()> {
        let mut a = sys::attr();
        // Fields in place: a struct literal would copy its padding (after
        // map_fd) from the stack.
        a.__bindgen_anon_2.map_fd = self.as_fd().as_raw_fd() as u32;
        a.__bindgen_anon_2.key = key.as_ptr() as u64;
        a.__bindgen_anon_2.__bindgen_anon_1.value = value.as_mut_ptr() as u64;
        sys::bpf(uapi::BPF_MAP_LOOKUP_ELEM, &mut a, || {
            "BPF_MAP_LOOKUP_ELEM".into()
        })
        .map(drop)
    }

    /// Writes `value` at `key` (`BPF_ANY`).
    ///
    /// # Errors
    /// The kernel's errno.
    pub fn update(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut a = sys::attr();
        // Fields in place: a struct literal would copy its padding (after
        // map_fd) from the stack.
        a.__bindgen_anon_2.map_fd = self.as_fd().as_raw_fd() as u32;
        a.__bindgen_anon_2.key = key.as_ptr() as u64;
        a.__bindgen_anon_2.__bindgen_anon_1.value = value.as_ptr() as u64;
        a.__bindgen_anon_2.flags = uapi::BPF_ANY as u64;
        sys::bpf(uapi::BPF_MAP_UPDATE_ELEM, &mut a, || {
            "BPF_MAP_UPDATE_ELEM".into()
        })
        .map(drop)
    }

    /// `u32 -> u32` lookup, for array maps of counters.
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
    /// # Errors
    /// As [`MapFd::lookup`].
    pub fn get_u64(&self, key: u32) -> Result<u64> {
        let mut v = [0u8; 8];
        self.lookup(&key.to_ne_bytes(), &mut v)?;
        Ok(u64::from_ne_bytes(v))
    }

    /// `u32 -> u32` update.
    ///
    /// # Errors
    /// As [`MapFd::update`].
    pub fn set_u32(&self, key: u32, value: u32) -> Result<()> {
        self.update(&key.to_ne_bytes(), &value.to_ne_bytes())
    }
}
