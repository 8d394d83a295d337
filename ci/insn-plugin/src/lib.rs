//! nk-insn-plugin: a QEMU TCG plugin that counts the guest instructions
//! executed between two markers that the guest program emits, per vCPU
//! and split into user and kernel, plus the entries of chosen kernel
//! functions. Instruction counts do not depend on how loaded the host
//! is, where wall time under TCG does (issue 16).
//!
//! - Counting: each translation block adds its instruction count to its
//!   vCPU's user or kernel counter with an inline op (no callback, no
//!   lock on the hot path). A block is user or kernel by its address.
//! - Markers: `xchg %bx,%bx` starts, `xchg %cx,%cx` stops (see
//!   [`count::START`]); both are no-ops on real CPUs and under KVM. At a
//!   start the plugin snapshots every vCPU's counters; at a stop it
//!   appends the difference, one line per start/stop pair, to `out=`.
//!   The guest labels its marks in its own output; the host pairs them
//!   in order.
//! - `func=NAME@0xADDR` counts executions of the instruction at that
//!   address: the entries of a kernel function (addresses from
//!   System.map; nkdev's kernels have no KASLR).
//!
//! - `syms=PATH,prof=PATH`: a profile. Each kernel block also adds its
//!   instructions to the counter of the text symbol it starts in (one
//!   inline op more per block; the symbol is looked up once, at
//!   translation), and each stop appends `prof mark=N NAME=COUNT ...` to
//!   the prof file: where the kernel instructions of the span went.
//!
//! Counts are per translation block, so a block cut short by an
//! exception counts whole; interrupts (timer ticks, 9p) arrive in host
//! time and are counted too. That is the spread the benchmark reports.

pub mod count;

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::fs::File;
use std::io::Write;
use std::sync::Mutex;

use count::{Marker, Slot, Syms, MAX_FUNCS};
use qemu_plugin_sys as sys;

/// The plugin API version this plugin is built for (QEMU 10.0 speaks 4).
#[no_mangle]
pub static qemu_plugin_version: c_int = 4;

struct State {
    score: *mut sys::qemu_plugin_scoreboard,
    funcs: Vec<(String, u64)>,
    out: Option<File>,
    start: Option<Vec<Slot>>,
    marks: u64,
    prof: Option<Profile>,
}

/// The profile: one u64 per symbol and vCPU, in a scoreboard of its own.
struct Profile {
    score: *mut sys::qemu_plugin_scoreboard,
    syms: Syms,
    out: File,
    start: Option<Vec<Vec<u64>>>,
}

impl Profile {
    /// Every vCPU's per-symbol counters now.
    fn snapshot(&self) -> Vec<Vec<u64>> {
        // SAFETY: a plain query of QEMU's vCPU count.
        let n = unsafe { sys::qemu_plugin_num_vcpus() }.max(0) as c_uint;
        let len = self.syms.names.len();
        (0..n)
            .map(|i| {
                // SAFETY: the scoreboard's entries are `len` u64s (made so
                // at install) and i < the number of vCPUs; aligned u64
                // reads of counters other vCPUs add to see either value.
                unsafe {
                    let p = sys::qemu_plugin_scoreboard_find(self.score, i) as *const u64;
                    (0..len)
                        .map(|k| std::ptr::read_volatile(p.add(k)))
                        .collect()
                }
            })
            .collect()
    }
}

// SAFETY: the scoreboard pointer is created once at install and never
// freed while QEMU runs the plugin; QEMU allows it to be used from any
// vCPU thread, and all access to State goes through the mutex.
unsafe impl Send for State {}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn entry(score: *mut sys::qemu_plugin_scoreboard, offset: usize) -> sys::qemu_plugin_u64 {
    sys::qemu_plugin_u64 { score, offset }
}

const USER: usize = std::mem::offset_of!(Slot, user);
const KERNEL: usize = std::mem::offset_of!(Slot, kernel);
const FUNCS: usize = std::mem::offset_of!(Slot, funcs);

fn say(s: &str) {
    if let Ok(c) = CString::new(format!("{s}\n")) {
        // SAFETY: c is a valid NUL-terminated string for the call.
        unsafe { sys::qemu_plugin_outs(c.as_ptr()) };
    }
}

/// Every vCPU's counters now.
fn snapshot(score: *mut sys::qemu_plugin_scoreboard) -> Vec<Slot> {
    // SAFETY: a plain query of QEMU's vCPU count.
    let n = unsafe { sys::qemu_plugin_num_vcpus() }.max(0) as c_uint;
    (0..n)
        .map(|i| {
            // SAFETY: score is the live scoreboard of Slot-sized entries
            // and i < the number of vCPUs; other vCPUs may be adding to
            // their slot concurrently, and an aligned u64 read sees
            // either value.
            unsafe {
                let p = sys::qemu_plugin_scoreboard_find(score, i) as *const Slot;
                std::ptr::read_volatile(p)
            }
        })
        .collect()
}

unsafe extern "C" fn on_mark(vcpu: c_uint, udata: *mut c_void) {
    let kind = if udata.is_null() {
        Marker::Start
    } else {
        Marker::Stop
    };
    let Ok(mut g) = STATE.lock() else { return };
    let Some(st) = g.as_mut() else { return };
    let now = snapshot(st.score);
    if let Some(p) = st.prof.as_mut() {
        let pnow = p.snapshot();
        match kind {
            Marker::Start => p.start = Some(pnow),
            Marker::Stop => {
                let line = match p.start.take() {
                    Some(start) => {
                        let d: Vec<Vec<u64>> = pnow
                            .iter()
                            .enumerate()
                            .map(|(i, c)| match start.get(i) {
                                Some(s) => {
                                    c.iter().zip(s).map(|(a, b)| a.wrapping_sub(*b)).collect()
                                }
                                None => c.clone(),
                            })
                            .collect();
                        count::profile_line(st.marks, &p.syms, &d)
                    }
                    None => format!("prof mark={} error=stop-without-start", st.marks),
                };
                let _ = writeln!(p.out, "{line}");
                let _ = p.out.flush();
            }
        }
    }
    match kind {
        Marker::Start => st.start = Some(now),
        Marker::Stop => {
            let line = match st.start.take() {
                Some(start) => {
                    let d: Vec<Slot> = now
                        .iter()
                        .enumerate()
                        .map(|(i, s)| s.delta(start.get(i).unwrap_or(&Slot::default())))
                        .collect();
                    count::report(st.marks, vcpu, &d, &st.funcs)
                }
                None => format!("insn mark={} error=stop-without-start", st.marks),
            };
            st.marks += 1;
            match st.out.as_mut() {
                Some(f) => {
                    let _ = writeln!(f, "{line}");
                    let _ = f.flush();
                }
                None => say(&line),
            }
        }
    }
}

unsafe extern "C" fn on_tb_trans(_id: sys::qemu_plugin_id_t, tb: *mut sys::qemu_plugin_tb) {
    let Ok(g) = STATE.lock() else { return };
    let Some(st) = g.as_ref() else { return };
    // SAFETY: tb is the handle QEMU passed to this translation callback,
    // valid until it returns; so are the instruction handles taken from it.
    unsafe {
        let n = sys::qemu_plugin_tb_n_insns(tb);
        let va = sys::qemu_plugin_tb_vaddr(tb);
        let at = if count::is_kernel(va) { KERNEL } else { USER };
        sys::qemu_plugin_register_vcpu_tb_exec_inline_per_vcpu(
            tb,
            sys::qemu_plugin_op::QEMU_PLUGIN_INLINE_ADD_U64,
            entry(st.score, at),
            n as u64,
        );
        if let (Some(p), true) = (st.prof.as_ref(), at == KERNEL) {
            sys::qemu_plugin_register_vcpu_tb_exec_inline_per_vcpu(
                tb,
                sys::qemu_plugin_op::QEMU_PLUGIN_INLINE_ADD_U64,
                entry(p.score, 8 * p.syms.index(va)),
                n as u64,
            );
        }
        for i in 0..n {
            let insn = sys::qemu_plugin_tb_get_insn(tb, i);
            let va = sys::qemu_plugin_insn_vaddr(insn);
            for (k, (_, addr)) in st.funcs.iter().enumerate() {
                if *addr == va {
                    sys::qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu(
                        insn,
                        sys::qemu_plugin_op::QEMU_PLUGIN_INLINE_ADD_U64,
                        entry(st.score, FUNCS + 8 * k),
                        1,
                    );
                }
            }
            if count::is_kernel(va) || sys::qemu_plugin_insn_size(insn) != count::START.len() {
                continue;
            }
            let mut bytes = [0u8; 3];
            let got = sys::qemu_plugin_insn_data(insn, bytes.as_mut_ptr().cast(), bytes.len());
            if let (3, Some(m)) = (got, count::marker(&bytes)) {
                // The marker kind rides in the user data pointer.
                let udata = if m == Marker::Stop { 1usize } else { 0 } as *mut c_void;
                sys::qemu_plugin_register_vcpu_insn_exec_cb(
                    insn,
                    Some(on_mark),
                    sys::qemu_plugin_cb_flags::QEMU_PLUGIN_CB_NO_REGS,
                    udata,
                );
            }
        }
    }
}

/// # Safety
///
/// Called by QEMU once, with `argv` holding `argc` valid C strings.
#[no_mangle]
pub unsafe extern "C" fn qemu_plugin_install(
    id: sys::qemu_plugin_id_t,
    _info: *const sys::qemu_info_t,
    argc: c_int,
    argv: *mut *mut c_char,
) -> c_int {
    let args: Vec<String> = (0..argc.max(0) as usize)
        .map(|i| {
            // SAFETY: QEMU passes argc valid NUL-terminated strings.
            unsafe { CStr::from_ptr(*argv.add(i)) }
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let a = match count::parse_args(args.iter().map(String::as_str)) {
        Ok(a) => a,
        Err(e) => {
            say(&e);
            return -1;
        }
    };
    let open = |key: &str, p: &str| match File::options().create(true).append(true).open(p) {
        Ok(f) => Some(f),
        Err(e) => {
            say(&format!("nk-insn-plugin: cannot open {key}={p}: {e}"));
            None
        }
    };
    let out = match &a.out {
        Some(p) => match open("out", p) {
            Some(f) => Some(f),
            None => return -1,
        },
        None => None,
    };
    let prof = match (&a.syms, &a.prof) {
        (Some(sp), Some(pp)) => {
            let syms = match std::fs::read_to_string(sp)
                .map_err(|e| format!("nk-insn-plugin: cannot read syms={sp}: {e}"))
                .and_then(|t| Syms::parse(&t))
            {
                Ok(s) => s,
                Err(e) => {
                    say(&e);
                    return -1;
                }
            };
            let Some(out) = open("prof", pp) else {
                return -1;
            };
            // SAFETY: allocates a zeroed scoreboard with one u64 per
            // symbol in each vCPU's entry.
            let score = unsafe { sys::qemu_plugin_scoreboard_new(8 * syms.names.len()) };
            Some(Profile {
                score,
                syms,
                out,
                start: None,
            })
        }
        _ => None,
    };
    debug_assert!(a.funcs.len() <= MAX_FUNCS);
    // SAFETY: allocates a zeroed scoreboard of Slot-sized entries, one per
    // vCPU, which QEMU grows as vCPUs come up.
    let score = unsafe { sys::qemu_plugin_scoreboard_new(std::mem::size_of::<Slot>()) };
    *STATE.lock().unwrap_or_else(|e| e.into_inner()) = Some(State {
        score,
        funcs: a.funcs,
        out,
        start: None,
        marks: 0,
        prof,
    });
    // SAFETY: registers a callback with the signature QEMU expects.
    unsafe { sys::qemu_plugin_register_vcpu_tb_trans_cb(id, Some(on_tb_trans)) };
    0
}
