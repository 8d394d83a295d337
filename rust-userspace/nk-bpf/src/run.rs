//! `BPF_PROG_RUN` (a.k.a. test_run), for `SEC("syscall")` programs and
//! for running skb programs on a packet.

use std::os::fd::AsFd;

use nk_sys::uapi;

use crate::attr;
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
/// ```no_run
/// # fn main() -> nk_bpf::Result<()> {
/// let obj = nk_bpf::Object::load("prog.bpf.o".as_ref())?;
/// // A syscall program with an 8-byte argument struct.
/// let mut args = [0u8; 8];
/// let out = nk_bpf::run::run(&obj.prog("walk")?, &mut args, &[])?;
/// println!("returned {}", out.retval);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// The kernel's errno.
pub fn run(prog: &ProgFd, ctx: &mut [u8], data: &[u8]) -> Result<RunOutput> {
    let mut data_out = vec![0u8; if data.is_empty() { 0 } else { data.len() + 256 }];
    let addr = |p: u64, n: usize| (if n == 0 { 0 } else { p }, n as u32);
    let mut a = attr::prog_test_run(
        prog.as_fd(),
        addr(data.as_ptr() as u64, data.len()),
        addr(data_out.as_mut_ptr() as u64, data_out.len()),
        addr(ctx.as_mut_ptr() as u64, ctx.len()),
    );
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
