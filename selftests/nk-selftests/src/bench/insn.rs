//! Marks for `cargo xtask bench --measure insn`: the QEMU plugin of
//! `ci/insn-plugin` counts the guest instructions (every vCPU, user and
//! kernel) between a span's start and its end. Without the plugin, and
//! under KVM, both marks are no-op instructions.
//!
//! After its end marker a span prints `# insn-mark: <bench> <label>
//! <ops>`; the host pairs the n-th such line with the plugin's n-th
//! count and reports instructions per operation. Spans do not nest, and
//! nothing between the marks is printed, so that the count is the
//! operation's alone.

/// Counting runs from here until [`Span::end`] or [`Span::stop`] (or the
/// drop).
pub struct Span {
    bench: &'static str,
    label: String,
    ops: u64,
    stopped: bool,
}

/// A span whose counting stopped, waiting for its number of operations
/// (known only after parsing what the measured process printed).
pub struct Stopped(Span);

impl Stopped {
    pub fn ops(mut self, ops: u64) {
        self.0.ops = ops;
    }
}

pub fn span(bench: &'static str, label: impl Into<String>) -> Span {
    // SAFETY: `xchg bx, bx` exchanges a register with itself: no memory,
    // no flags, no other register. It is the plugin's start marker.
    unsafe { std::arch::asm!("xchg bx, bx", options(nomem, nostack, preserves_flags)) };
    Span {
        bench,
        label: label.into(),
        ops: 0,
        stopped: false,
    }
}

fn stop_marker() {
    // SAFETY: as in span(); `xchg cx, cx` is the stop marker.
    unsafe { std::arch::asm!("xchg cx, cx", options(nomem, nostack, preserves_flags)) };
}

impl Span {
    /// Ends the span: `ops` operations (packets, sockets, cycles) ran in it.
    pub fn end(mut self, ops: u64) {
        self.ops = ops;
    }

    /// Stops counting now; the operations are given to the result.
    pub fn stop(mut self) -> Stopped {
        stop_marker();
        self.stopped = true;
        Stopped(self)
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        if !self.stopped {
            stop_marker();
        }
        // A span dropped without end() (an early error) still pairs with
        // the plugin's count, with 0 operations: the host skips it.
        println!("# insn-mark: {} {} {}", self.bench, self.label, self.ops);
    }
}

/// Runs this process, and the threads and processes it starts, on `cpu`
/// only (`--pin-cpu`, which `bench --measure insn` passes): the plugin
/// then also reports what that vCPU alone executed, without the other
/// vCPU's unrelated work.
pub fn pin_to_cpu(cpu: usize) -> std::io::Result<()> {
    // SAFETY: set is a plain bit set, zeroed and then filled by the libc
    // macros for one CPU number below CPU_SETSIZE.
    let r = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
