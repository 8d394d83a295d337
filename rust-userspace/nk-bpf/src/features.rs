//! What the running kernel supports, from its BTF
//! (`/sys/kernel/btf/vmlinux`), as cilium/ebpf's `features` package tells
//! an agent before it relies on something: an attach type is a value of
//! `enum bpf_attach_type`, a kfunc is a `FUNC` of that name. Reading BTF
//! needs no privilege and loads nothing.

use std::collections::HashSet;
use std::path::Path;

use crate::error::{Error, Result};

/// Where the running kernel's BTF is.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// What the kernel supports of what nk-bpf drives.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Features {
    /// tcx links and attachments (`BPF_TCX_INGRESS`, Linux 6.6).
    pub tcx: bool,
    /// netkit links (`BPF_NETKIT_PRIMARY`, Linux 6.7).
    pub netkit_links: bool,
    /// `expected_revision` on attach, detach and query: it came with
    /// bpf_mprog, as tcx did.
    pub expected_revision: bool,
    /// The socket iterator kfuncs of nkdev's series
    /// (`bpf_iter_tcp_sock_new`, `bpf_iter_udp_sock_new`).
    pub sock_iter_kfuncs: bool,
    /// Their abort kfuncs (`bpf_iter_tcp_sock_abort`,
    /// `bpf_iter_udp_sock_abort`).
    pub sock_iter_abort: bool,
    /// The netns iterator kfuncs (`bpf_iter_net_new`).
    pub netns_iter_kfuncs: bool,
}

impl Features {
    /// The features of the running kernel.
    ///
    /// ```no_run
    /// let f = nk_bpf::Features::probe()?;
    /// if !f.tcx {
    ///     eprintln!("no tcx: falling back to clsact");
    /// }
    /// # Ok::<(), nk_bpf::Error>(())
    /// ```
    ///
    /// # Errors
    /// The kernel has no BTF (`CONFIG_DEBUG_INFO_BTF`), or it is
    /// malformed.
    pub fn probe() -> Result<Features> {
        Features::from_file(Path::new(VMLINUX_BTF))
    }

    /// The features a BTF file describes.
    ///
    /// # Errors
    /// The file cannot be read, or is not BTF.
    pub fn from_file(path: &Path) -> Result<Features> {
        let b = std::fs::read(path).map_err(|source| Error::Io {
            what: format!(
                "reading {} (a kernel without CONFIG_DEBUG_INFO_BTF has none)",
                path.display()
            ),
            source,
        })?;
        Features::from_btf(&b).map_err(|why| Error::Invalid {
            what: "kernel BTF",
            why: format!("{}: {why}", path.display()),
        })
    }

    /// The features raw BTF describes.
    ///
    /// # Errors
    /// What is malformed.
    pub fn from_btf(b: &[u8]) -> std::result::Result<Features, String> {
        let names = Names::parse(b)?;
        let func = |n: &str| names.funcs.contains(n);
        let at = |n: &str| names.enumerators.contains(n);
        Ok(Features {
            tcx: at("BPF_TCX_INGRESS"),
            netkit_links: at("BPF_NETKIT_PRIMARY"),
            expected_revision: at("BPF_TCX_INGRESS"),
            sock_iter_kfuncs: func("bpf_iter_tcp_sock_new") && func("bpf_iter_udp_sock_new"),
            sock_iter_abort: func("bpf_iter_tcp_sock_abort") && func("bpf_iter_udp_sock_abort"),
            netns_iter_kfuncs: func("bpf_iter_net_new"),
        })
    }

    /// The feature `at` needs, if this kernel lacks it: what turns a bare
    /// EINVAL of an attach into [`Error::Unsupported`].
    pub fn missing_for(&self, at: crate::AttachPoint) -> Option<&'static str> {
        match at {
            crate::AttachPoint::Tcx { .. } if !self.tcx => Some("tcx (Linux 6.6)"),
            crate::AttachPoint::Netkit { .. } if !self.netkit_links => {
                Some("netkit links (Linux 6.7)")
            }
            _ => None,
        }
    }
}

/// The running kernel's features, probed once per process; `None` if its
/// BTF cannot be read. Unit tests never probe the host's kernel.
fn cached() -> Option<Features> {
    if cfg!(test) {
        return None;
    }
    static PROBED: std::sync::OnceLock<Option<Features>> = std::sync::OnceLock::new();
    *PROBED.get_or_init(|| Features::probe().ok())
}

/// `e` as [`Error::Unsupported`] when it is the EINVAL of an attach whose
/// kind the running kernel does not have; else `e`.
pub(crate) fn unsupported(e: Error, at: crate::AttachPoint) -> Error {
    match (&e, cached()) {
        (Error::Bpf { op, source, .. }, Some(f)) if source.raw_os_error() == Some(libc::EINVAL) => {
            match f.missing_for(at) {
                Some(feature) => Error::Unsupported {
                    op: op.clone(),
                    feature,
                },
                None => e,
            }
        }
        _ => e,
    }
}

/// The names BTF holds that [`Features`] asks about: function names
/// (`FUNC`) and enumerators of `enum bpf_attach_type`.
struct Names {
    funcs: HashSet<String>,
    enumerators: HashSet<String>,
}

const BTF_MAGIC: u16 = 0xeb9f;

fn u32_at(b: &[u8], off: usize) -> std::result::Result<u32, String> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| format!("truncated at byte {off}"))
}

impl Names {
    fn parse(b: &[u8]) -> std::result::Result<Names, String> {
        if b.len() < 24 {
            return Err(format!("{} bytes: shorter than a BTF header", b.len()));
        }
        let magic = u16::from_le_bytes([b[0], b[1]]);
        if magic != BTF_MAGIC {
            return Err(format!(
                "magic {magic:#06x}, not {BTF_MAGIC:#06x} (a big-endian BTF is not read here)"
            ));
        }
        let hdr_len = u32_at(b, 4)? as usize;
        if hdr_len < 24 {
            return Err(format!(
                "header length {hdr_len}, shorter than a BTF header"
            ));
        }
        let (type_off, type_len) = (u32_at(b, 8)? as usize, u32_at(b, 12)? as usize);
        let (str_off, str_len) = (u32_at(b, 16)? as usize, u32_at(b, 20)? as usize);
        let section = |off: usize, len: usize| {
            hdr_len
                .checked_add(off)
                .and_then(|start| Some((start, start.checked_add(len)?)))
                .filter(|(_, end)| *end <= b.len())
                .ok_or_else(|| String::from("a section runs past the end"))
        };
        let (types, end) = section(type_off, type_len)?;
        let (strs, strs_end) = section(str_off, str_len)?;
        let table = &b[strs..strs_end];
        let name = |off: u32| -> std::result::Result<&str, String> {
            let rest = table
                .get(off as usize..)
                .ok_or_else(|| format!("name offset {off} is past the string table"))?;
            let n = rest
                .iter()
                .position(|&c| c == 0)
                .ok_or_else(|| format!("string at {off} is not terminated"))?;
            std::str::from_utf8(&rest[..n]).map_err(|e| format!("string at {off}: {e}"))
        };
        let mut n = Names {
            funcs: HashSet::new(),
            enumerators: HashSet::new(),
        };
        let mut p = types;
        while p < end {
            let name_off = u32_at(b, p)?;
            let info = u32_at(b, p + 4)?;
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            p += 12;
            let extra = match kind {
                // INT, VAR, DECL_TAG: one u32.
                1 | 14 | 17 => 4,
                // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT,
                // TYPE_TAG: nothing.
                2 | 7..=12 | 16 | 18 => 0,
                // ARRAY.
                3 => 12,
                // STRUCT, UNION, DATASEC, ENUM64: 12 bytes per member.
                4 | 5 | 15 | 19 => 12 * vlen,
                // ENUM, FUNC_PROTO: 8 bytes per entry.
                6 | 13 => 8 * vlen,
                k => return Err(format!("unknown BTF kind {k} at byte {}", p - 12)),
            };
            if p + extra > end {
                return Err(format!(
                    "type at byte {} runs past the type section",
                    p - 12
                ));
            }
            if kind == 12 {
                n.funcs.insert(name(name_off)?.to_string());
            }
            if kind == 6 && name(name_off)? == "bpf_attach_type" {
                for i in 0..vlen {
                    n.enumerators
                        .insert(name(u32_at(b, p + 8 * i)?)?.to_string());
                }
            }
            p += extra;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob: an INT, a STRUCT with one member, `enum
    /// bpf_attach_type` with `enumerators` and FUNCs named `funcs`.
    fn btf(enumerators: &[&str], funcs: &[&str]) -> Vec<u8> {
        let mut strs = vec![0u8];
        let mut s = |x: &str| {
            let off = strs.len() as u32;
            strs.extend_from_slice(x.as_bytes());
            strs.push(0);
            off
        };
        let mut t: Vec<u8> = Vec::new();
        let w = |t: &mut Vec<u8>, v: u32| t.extend_from_slice(&v.to_le_bytes());
        // INT "int", 4 bytes.
        let int = s("int");
        for v in [int, 1 << 24, 4, 32] {
            w(&mut t, v);
        }
        // STRUCT "sk" with one member.
        let sk = s("sk");
        let m = s("m");
        for v in [sk, (4 << 24) | 1, 4, m, 1, 0] {
            w(&mut t, v);
        }
        // ENUM bpf_attach_type.
        let e = s("bpf_attach_type");
        for v in [e, (6 << 24) | enumerators.len() as u32, 4] {
            w(&mut t, v);
        }
        for (i, en) in enumerators.iter().enumerate() {
            let o = s(en);
            w(&mut t, o);
            w(&mut t, 40 + i as u32);
        }
        // Another enum whose enumerators do not count.
        let other = s("other");
        let decoy = s("BPF_NETKIT_PRIMARY");
        for v in [other, (6 << 24) | 1, 4, decoy, 0] {
            w(&mut t, v);
        }
        for f in funcs {
            let o = s(f);
            for v in [o, 12 << 24, 0] {
                w(&mut t, v);
            }
        }
        let mut b = Vec::new();
        b.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        b.extend_from_slice(&[1, 0]);
        for v in [24u32, 0, t.len() as u32, t.len() as u32, strs.len() as u32] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&t);
        b.extend_from_slice(&strs);
        b
    }

    #[test]
    fn features_from_attach_types_and_kfuncs() {
        let full = btf(
            &["BPF_TCX_INGRESS", "BPF_NETKIT_PRIMARY"],
            &[
                "bpf_iter_tcp_sock_new",
                "bpf_iter_udp_sock_new",
                "bpf_iter_tcp_sock_abort",
                "bpf_iter_udp_sock_abort",
                "bpf_iter_net_new",
            ],
        );
        let f = Features::from_btf(&full).unwrap();
        assert!(f.tcx && f.netkit_links && f.expected_revision);
        assert!(f.sock_iter_kfuncs && f.sock_iter_abort && f.netns_iter_kfuncs);
        // A 6.6 kernel: tcx, no netkit; the decoy enumerator of another
        // enum does not count; one of two kfuncs is not enough.
        let old = btf(&["BPF_TCX_INGRESS"], &["bpf_iter_tcp_sock_new"]);
        let f = Features::from_btf(&old).unwrap();
        assert_eq!(
            f,
            Features {
                tcx: true,
                expected_revision: true,
                ..Default::default()
            }
        );
        let at = crate::AttachPoint::Netkit {
            ifindex: 3,
            side: crate::NetkitSide::Primary,
        };
        assert_eq!(f.missing_for(at), Some("netkit links (Linux 6.7)"));
        let tcx = crate::AttachPoint::Tcx {
            ifindex: 3,
            dir: crate::Direction::Ingress,
        };
        assert_eq!(f.missing_for(tcx), None);
    }

    #[test]
    fn malformed_btf_is_named() {
        let b = btf(&["BPF_TCX_INGRESS"], &[]);
        assert!(Features::from_btf(&b[..10])
            .unwrap_err()
            .contains("shorter than a BTF header"));
        assert!(Features::from_btf(&b[..b.len() - 3])
            .unwrap_err()
            .contains("past the end"));
        let mut bad = b.clone();
        bad[0] = 0;
        assert!(Features::from_btf(&bad).unwrap_err().contains("magic"));
        // A name offset past the string table (the first FUNC's).
        let mut far = btf(&["BPF_TCX_INGRESS"], &["f"]);
        let types_end = 24 + u32_at(&far, 12).unwrap() as usize;
        far[types_end - 12..types_end - 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Features::from_btf(&far)
            .unwrap_err()
            .contains("past the string table"));
        let mut short_hdr = b.clone();
        short_hdr[4] = 8;
        assert!(Features::from_btf(&short_hdr)
            .unwrap_err()
            .contains("header length 8"));
        // An unknown kind in the first type (its info word at 24 + 4).
        let mut k = b.clone();
        k[24 + 7] = 30;
        assert!(Features::from_btf(&k)
            .unwrap_err()
            .contains("unknown BTF kind 30"));
        let e = Features::from_file(Path::new("/nonexistent/vmlinux")).unwrap_err();
        assert!(e.to_string().contains("CONFIG_DEBUG_INFO_BTF"), "{e}");
    }
}
