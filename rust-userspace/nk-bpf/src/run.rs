//! `BPF_PROG_RUN` (a.k.a. test_run), for `SEC("syscall")` programs and
//! for running skb programs on a packet.

use std::os::fd::{AsFd, AsRawFd};

use nk_sys::uapi;

use crate::error::Result;
use crate::fd::ProgFd;
use crate::sys;

/// What a run returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunOutput {
    /// The program's return value.
    pub retval: u32,
    /// The context after the run (for syscall programs: the args struct).
    pub ctx_out: Vec<u8>,
    /// Output data (packet programs).
    pub data_out: Vec<u8>,
}

/// Runs `prog` once with `ctx` as its context (syscall programs) and
/// optional packet `data`.
///
/// # Errors
/// The kernel's errno.
pub fn run(prog: &ProgFd, ctx: &mut [u8], data: &[u8]) -> Result<RunOutput> {
    let mut data_out = vec![0u8; if data.is_empty() { 0 } else { data.len() + 256 }];
    let mut a = sys::attr();
    // The test struct has tail padding that the kernel requires to be
    // zero: write fields into the zeroed attr instead of assigning a
    // struct value, which could copy garbage padding.
    // SAFETY: `a` is zeroed, and every bit pattern is a valid `test`
    // member (plain integers), so borrowing it mutably is sound.
    let t = unsafe { &mut a.test };
    t.prog_fd = prog.as_fd().as_raw_fd() as u32;
    t.data_size_in = data.len() as u32;
    t.data_in = if data.is_empty() {
        0
    } else {
        data.as_ptr() as u64
    };
    t.data_size_out = data_out.len() as u32;
    t.data_out = if data_out.is_empty() {
        0
    } else {
        data_out.as_mut_ptr() as u64
    };
    t.ctx_size_in = ctx.len() as u32;
    t.ctx_in = if ctx.is_empty() {
        0
    } else {
        ctx.as_mut_ptr() as u64
    };
    // SAFETY: data_in/data_out/ctx_in point at the caller's slices with
    // their lengths in the size fields (null when empty); the kernel writes
    // at most data_size_out bytes to data_out.
    unsafe { sys::bpf(uapi::BPF_PROG_TEST_RUN, &mut a, || "BPF_PROG_RUN".into()) }?;
    // SAFETY: the kernel filled the test member we initialised.
    let t = unsafe { a.test };
    data_out.truncate(t.data_size_out as usize);
    Ok(RunOutput {
        retval: t.retval,
        ctx_out: ctx.to_vec(),
        data_out,
    })
}
