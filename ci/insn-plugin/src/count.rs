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
/// otherwise), up to [`MAX_FUNCS`] `func=NAME@0xADDR` (kernel functions
/// whose entries are counted), and for a profile, `syms=PATH` (the
/// kernel's text symbols, `ADDR NAME` per line) with `prof=PATH` (where
/// the profile lines go): the kernel instructions between the markers,
/// per function.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Args {
    pub out: Option<String>,
    pub funcs: Vec<(String, u64)>,
    pub syms: Option<String>,
    pub prof: Option<String>,
}

pub fn parse_args<'a>(args: impl IntoIterator<Item = &'a str>) -> Result<Args, String> {
    let mut a = Args::default();
    for arg in args {
        let (k, v) = arg
            .split_once('=')
            .ok_or_else(|| format!("nk-insn-plugin: argument {arg:?} is not key=value"))?;
        match k {
            "out" => a.out = Some(v.to_string()),
            "syms" => a.syms = Some(v.to_string()),
            "prof" => a.prof = Some(v.to_string()),
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
                    "nk-insn-plugin: unknown argument {k:?} (out=, func=, syms=, prof=)"
                ))
            }
        }
    }
    if a.syms.is_some() != a.prof.is_some() {
        return Err("nk-insn-plugin: a profile needs both syms= and prof=".to_string());
    }
    Ok(a)
}

/// The kernel's text symbols, sorted by address: a profile's buckets. A
/// block is charged to the symbol at or below its first address; blocks
/// below the first symbol go to bucket 0, `(below text)`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Syms {
    pub addrs: Vec<u64>,
    pub names: Vec<String>,
}

impl Syms {
    /// Parses `ADDR NAME` lines (hex address, with or without 0x), in any
    /// order; a duplicate address keeps its first name.
    pub fn parse(text: &str) -> Result<Syms, String> {
        let mut v: Vec<(u64, &str)> = Vec::new();
        for (n, l) in text.lines().enumerate() {
            let mut f = l.split_whitespace();
            let (Some(a), Some(name), None) = (f.next(), f.next(), f.next()) else {
                return Err(format!(
                    "nk-insn-plugin: syms line {}: expected ADDR NAME, got {l:?}",
                    n + 1
                ));
            };
            let hex = a.strip_prefix("0x").unwrap_or(a);
            let addr = u64::from_str_radix(hex, 16)
                .map_err(|_| format!("nk-insn-plugin: syms line {}: bad address {a:?}", n + 1))?;
            v.push((addr, name));
        }
        if v.is_empty() {
            return Err("nk-insn-plugin: syms: no symbol".to_string());
        }
        v.sort_by_key(|&(a, _)| a);
        v.dedup_by_key(|&mut (a, _)| a);
        let mut s = Syms {
            addrs: vec![0],
            names: vec!["(below text)".to_string()],
        };
        for (a, n) in v {
            s.addrs.push(a);
            s.names.push(n.to_string());
        }
        Ok(s)
    }

    /// The bucket of an address: the last symbol at or below it.
    pub fn index(&self, addr: u64) -> usize {
        self.addrs.partition_point(|&a| a <= addr).saturating_sub(1)
    }
}

/// One profile line: `prof mark=N NAME=COUNT ...`, the functions that ran
/// between a start and a stop marker, most instructions first (ties by
/// name), summed over the vCPUs.
pub fn profile_line(n: u64, syms: &Syms, per_cpu: &[Vec<u64>]) -> String {
    let mut sum = vec![0u64; syms.names.len()];
    for c in per_cpu {
        for (s, v) in sum.iter_mut().zip(c) {
            *s += v;
        }
    }
    let mut hot: Vec<(u64, &str)> = sum
        .iter()
        .zip(&syms.names)
        .filter(|(c, _)| **c > 0)
        .map(|(c, n)| (*c, n.as_str()))
        .collect();
    hot.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let mut line = format!("prof mark={n}");
    for (c, name) in hot {
        line.push_str(&format!(" {name}={c}"));
    }
    line
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
    fn profile_args_come_in_pairs() {
        let a = parse_args(["syms=/s", "prof=/p"]).unwrap();
        assert_eq!(
            (a.syms.as_deref(), a.prof.as_deref()),
            (Some("/s"), Some("/p"))
        );
        assert!(parse_args(["syms=/s"]).unwrap_err().contains("both"));
        assert!(parse_args(["prof=/p"]).unwrap_err().contains("both"));
    }

    #[test]
    fn syms_bucket_by_the_symbol_below() {
        let s = Syms::parse("ffffffff81000200 b\nffffffff81000100 a\n0xffffffff81000300 c\nffffffff81000300 c_alias\n").unwrap();
        assert_eq!(s.names, ["(below text)", "a", "b", "c"]);
        assert_eq!(s.index(0x1000), 0);
        assert_eq!(s.index(0xffff_ffff_8100_0100), 1);
        assert_eq!(s.index(0xffff_ffff_8100_01ff), 1);
        assert_eq!(s.index(0xffff_ffff_8100_0200), 2);
        assert_eq!(s.index(u64::MAX), 3);
        assert!(Syms::parse("").unwrap_err().contains("no symbol"));
        assert!(Syms::parse("zz a\n").unwrap_err().contains("bad address"));
        assert!(Syms::parse("ff a b\n").unwrap_err().contains("line 1"));
    }

    #[test]
    fn profile_line_sums_vcpus_hottest_first() {
        let s = Syms::parse("10 a\n20 b\n30 c\n").unwrap();
        let line = profile_line(4, &s, &[vec![0, 5, 0, 7], vec![0, 5, 2, 1]]);
        assert_eq!(line, "prof mark=4 a=10 c=8 b=2");
        assert_eq!(profile_line(0, &s, &[vec![0; 4]]), "prof mark=0");
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
