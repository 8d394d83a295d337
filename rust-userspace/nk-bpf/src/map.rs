//! Map element access (`BPF_MAP_LOOKUP_ELEM` / `BPF_MAP_UPDATE_ELEM`).

use std::os::fd::{AsFd, AsRawFd};

use nk_sys::uapi;

use crate::error::Result;
use crate::fd::MapFd;
use crate::sys;

impl MapFd {
    /// Reads the value at `key` into `value` (which must be the map's
    /// value size).
    ///
    /// # Errors
    /// ENOENT for a missing key, and the kernel's other errnos.
    pub fn lookup(&self, key: &[u8], value: &mut [u8]) -> Result<()> {
        let mut a = sys::attr();
        a.__bindgen_anon_2 = uapi::bpf_attr__bindgen_ty_2 {
            map_fd: self.as_fd().as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            __bindgen_anon_1: uapi::bpf_attr__bindgen_ty_2__bindgen_ty_1 {
                value: value.as_mut_ptr() as u64,
            },
            flags: 0,
        };
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
        a.__bindgen_anon_2 = uapi::bpf_attr__bindgen_ty_2 {
            map_fd: self.as_fd().as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            __bindgen_anon_1: uapi::bpf_attr__bindgen_ty_2__bindgen_ty_1 {
                value: value.as_ptr() as u64,
            },
            flags: uapi::BPF_ANY as u64,
        };
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
