//! What the plugin counts and prints, without QEMU: markers, arguments,
//! per-vCPU counters and the report line. Unit-tested on the host.

/// `xchg %bx,%bx`: start counting (a no-op for the CPU, never emitted by
/// compilers; Bochs uses it as its magic breakpoint).
pub const START: [u8; 3] = [0x66, 0x87, 0xdb];
/// `xchg %cx,%cx`: stop counting and report.
pub const STOP: [u8; 3] = [0x66, 0x87, 0xc9];

/// The most kernel functions whose entries one run counts.
pub const MAX_FUNCS: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    Start,
    Stop,
}

/// The marker an instruction's bytes are, if any.
pub fn marker(bytes: &[u8]) -> Option<Marker> {
    match bytes {
        b if b == START => Some(Marker::Start),
        b if b == STOP => Some(Marker::Stop),
        _ => None,
    }
}

/// x86-64 kernel addresses have the top bit set.
pub fn is_kernel(vaddr: u64) -> bool {
    vaddr >> 63 == 1
}

/// One vCPU's counters, as laid out in the QEMU scoreboard (inline ops
/// add to these fields directly, so the layout is C's).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slot {
    pub user: u64,
    pub kernel: u64,
    pub funcs: [u64; MAX_FUNCS],
}

impl Slot {
    pub fn delta(&self, since: &Slot) -> Slot {
        let mut d = Slot {
            user: self.user.wrapping_sub(since.user),
            kernel: self.kernel.wrapping_sub(since.kernel),
            funcs: [0; MAX_FUNCS],
        };
        for (i, f) in d.funcs.iter_mut().enumerate() {
            *f = self.funcs[i].wrapping_sub(since.funcs[i]);
        }
        d
    }
}

/// The plugin's arguments: `out=PATH` (where reports go; QEMU's log
/// otherwise) and up to [`MAX_FUNCS`] `func=NAME@0xADDR` (kernel functions
/// whose entries are counted).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Args {
    pub out: Option<String>,
    pub funcs: Vec<(String, u64)>,
}

pub fn parse_args<'a>(args: impl IntoIterator<Item = &'a str>) -> Result<Args, String> {
    let mut a = Args::default();
    for arg in args {
        let (k, v) = arg
            .split_once('=')
            .ok_or_else(|| format!("nk-insn-plugin: argument {arg:?} is not key=value"))?;
        match k {
            "out" => a.out = Some(v.to_string()),
            "func" => {
                let (name, addr) = v.split_once('@').ok_or_else(|| {
                    format!("nk-insn-plugin: func={v:?}: expected NAME@0xADDRESS")
                })?;
                let hex = addr.strip_prefix("0x").unwrap_or(addr);
                let addr = u64::from_str_radix(hex, 16)
                    .map_err(|_| format!("nk-insn-plugin: func={v:?}: bad address {addr:?}"))?;
                if a.funcs.len() == MAX_FUNCS {
                    return Err(format!(
                        "nk-insn-plugin: at most {MAX_FUNCS} func= arguments"
                    ));
                }
                a.funcs.push((name.to_string(), addr));
            }
            _ => {
                return Err(format!(
                    "nk-insn-plugin: unknown argument {k:?} (out=, func=)"
                ))
            }
        }
    }
    Ok(a)
}

/// One report line: `insn mark=N vcpu=V user=U kernel=K total=T cpu0=U/K
/// ... func.NAME=C ...`, the counts between a start and a stop marker;
/// V is the vCPU that ran the stop marker.
pub fn report(n: u64, vcpu: u32, per_cpu: &[Slot], funcs: &[(String, u64)]) -> String {
    let mut sum = Slot::default();
    for s in per_cpu {
        sum.user += s.user;
        sum.kernel += s.kernel;
        for (i, f) in sum.funcs.iter_mut().enumerate() {
            *f += s.funcs[i];
        }
    }
    let mut line = format!(
        "insn mark={n} vcpu={vcpu} user={} kernel={} total={}",
        sum.user,
        sum.kernel,
        sum.user + sum.kernel
    );
    for (i, s) in per_cpu.iter().enumerate() {
        line.push_str(&format!(" cpu{i}={}/{}", s.user, s.kernel));
    }
    for (i, (name, _)) in funcs.iter().enumerate() {
        line.push_str(&format!(" func.{name}={}", sum.funcs[i]));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_the_two_xchg_no_ops() {
        assert_eq!(marker(&START), Some(Marker::Start));
        assert_eq!(marker(&STOP), Some(Marker::Stop));
        assert_eq!(marker(&[0x66, 0x87, 0xd2]), None);
        assert_eq!(marker(&[0x90]), None);
        assert!(is_kernel(0xffff_ffff_8100_0000));
        assert!(!is_kernel(0x7fff_0000_1000));
    }

    #[test]
    fn args() {
        let a = parse_args(["out=/tmp/x", "func=pskb_expand_head@0xffffffff81a0b0c0"]).unwrap();
        assert_eq!(a.out.as_deref(), Some("/tmp/x"));
        assert_eq!(
            a.funcs,
            [("pskb_expand_head".to_string(), 0xffff_ffff_81a0_b0c0)]
        );
        assert!(parse_args(["oops"]).unwrap_err().contains("key=value"));
        assert!(parse_args(["func=x@zz"])
            .unwrap_err()
            .contains("bad address"));
        assert!(parse_args(["func=x"])
            .unwrap_err()
            .contains("NAME@0xADDRESS"));
        assert!(parse_args(["verbose=1"])
            .unwrap_err()
            .contains("unknown argument"));
        let many: Vec<String> = (0..=MAX_FUNCS)
            .map(|i| format!("func=f{i}@0x{i:x}"))
            .collect();
        assert!(parse_args(many.iter().map(String::as_str))
            .unwrap_err()
            .contains("at most"));
    }

    #[test]
    fn report_sums_vcpus_and_names_functions() {
        let mut a = Slot {
            user: 10,
            kernel: 100,
            ..Default::default()
        };
        a.funcs[0] = 2;
        let mut b = Slot {
            user: 5,
            kernel: 50,
            ..Default::default()
        };
        b.funcs[0] = 1;
        let funcs = vec![("pskb_expand_head".to_string(), 0)];
        assert_eq!(
            report(3, 1, &[a, b], &funcs),
            "insn mark=3 vcpu=1 user=15 kernel=150 total=165 cpu0=10/100 cpu1=5/50 func.pskb_expand_head=3"
        );
        let later = Slot {
            user: 12,
            kernel: 130,
            ..a
        };
        assert_eq!(later.delta(&a).kernel, 30);
        assert_eq!(later.delta(&a).user, 2);
    }
}
