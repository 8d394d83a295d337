//! Replays the checked-in capture through the fake kernel (see the
//! module above). Regenerate it with `cargo xtask golden`.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::path::PathBuf;
use std::rc::Rc;

use nk_sys::{uapi, Syscall};

use super::pcap::{self, Frame};
use super::{Env, Manifest, COVERED, STEPS};
use crate::wire::{self, Attrs};

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden")
}

fn load() -> (Manifest, Vec<Frame>) {
    let dir = golden_dir();
    let read = |name: &str| {
        std::fs::read(dir.join(name)).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; capture it with `cargo xtask golden`",
                dir.join(name).display()
            )
        })
    };
    let m: Manifest =
        serde_json::from_slice(&read("rtnetlink.json")).expect("rtnetlink.json parses");
    let frames = pcap::parse(&read("rtnetlink.pcap")).expect("rtnetlink.pcap parses");
    let names: Vec<String> = STEPS.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(
        m.steps, names,
        "the capture was made by another version of the script: run `cargo xtask golden`"
    );
    (m, frames)
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

struct Tape {
    frames: Vec<Frame>,
    pos: usize,
    step: String,
    error: Option<String>,
}

impl Tape {
    fn fail(&mut self, why: String) -> std::io::Result<i64> {
        let at = format!("step {}, frame {}: {why}", self.step, self.pos);
        self.error.get_or_insert(at);
        Err(std::io::Error::from_raw_os_error(libc::EIO))
    }

    fn call(&mut self, c: &mut Syscall<'_>) -> std::io::Result<i64> {
        match c {
            Syscall::Socket { .. } => {
                let f = std::fs::File::open("/dev/null")?;
                Ok(i64::from(OwnedFd::from(f).into_raw_fd()))
            }
            Syscall::SetSockOpt { .. } | Syscall::BindNetlink { .. } => Ok(0),
            Syscall::Send { buf, .. } => {
                let Some(f) = self.frames.get(self.pos) else {
                    return self.fail("a request after the end of the capture".into());
                };
                if !f.to_kernel {
                    return self.fail("a request where the capture has a reply".into());
                }
                if **buf != *f.data {
                    let at = buf
                        .iter()
                        .zip(&f.data)
                        .position(|(a, b)| a != b)
                        .unwrap_or(buf.len().min(f.data.len()));
                    let why = format!(
                        "request differs from the capture at byte {at}\n  sent:     {}\n  captured: {}",
                        hex(buf),
                        hex(&f.data)
                    );
                    return self.fail(why);
                }
                self.pos += 1;
                Ok(buf.len() as i64)
            }
            Syscall::Recv { buf, .. } => {
                let Some(f) = self.frames.get(self.pos) else {
                    return self.fail("a read after the end of the capture".into());
                };
                if f.to_kernel {
                    return self.fail("a read where the capture has the next request".into());
                }
                let n = f.data.len().min(buf.len());
                buf[..n].copy_from_slice(&f.data[..n]);
                self.pos += 1;
                Ok(n as i64)
            }
            other => {
                let why = format!("unexpected {other:?}");
                self.fail(why)
            }
        }
    }
}

/// A file at exactly fd number `n`, standing in for the capture's netns fd.
fn fd_at(n: i32) -> OwnedFd {
    let f = std::fs::File::open("/dev/null").expect("open /dev/null");
    // SAFETY: f is an open fd we own; F_DUPFD_CLOEXEC returns a new fd (or
    // -1) and touches no memory.
    let d = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_DUPFD_CLOEXEC, n) };
    assert!(
        d >= 0,
        "F_DUPFD_CLOEXEC: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: d is the new descriptor fcntl just returned; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(d) };
    assert_eq!(
        d, n,
        "fd {n} is taken; the replay needs it for IFLA_NET_NS_FD"
    );
    fd
}

#[test]
fn replay_matches_the_kernel_capture() {
    let (m, frames) = load();
    let total = frames.len();
    let tape = Rc::new(RefCell::new(Tape {
        frames,
        pos: 0,
        step: String::new(),
        error: None,
    }));
    let ns = fd_at(m.peer_ns_fd);
    let env = Env {
        peer_ns: ns.as_fd(),
        m: &m,
    };
    let r = {
        let t = tape.clone();
        let _g = nk_sys::fake::install(move |c| t.borrow_mut().call(c));
        super::run(&env, |name| tape.borrow_mut().step = name.to_string())
    };
    let t = tape.borrow();
    if let Some(e) = &t.error {
        panic!("replay: {e}\n(if the library's wire format changed on purpose, recapture with `cargo xtask golden`)");
    }
    r.unwrap_or_else(|e| panic!("replay: {e}"));
    assert_eq!(t.pos, total, "the script left captured frames unread");
}

/// Attribute types per context in one netlink message payload.
fn walk(family: u16, h: &uapi::nlmsghdr, p: &[u8], out: &mut BTreeSet<(String, u16)>) {
    fn put(ctx: &str, b: &[u8], out: &mut BTreeSet<(String, u16)>) {
        for (t, _) in Attrs::new(b) {
            out.insert((ctx.to_string(), t));
        }
    }
    let ifi = wire::align(std::mem::size_of::<uapi::ifinfomsg>());
    match (u32::from(family), u32::from(h.nlmsg_type)) {
        (0, uapi::RTM_NEWLINK | uapi::RTM_GETLINK | uapi::RTM_DELLINK) => {
            let attrs = p.get(ifi..).unwrap_or_default();
            put("link", attrs, out);
            for (t, info) in Attrs::new(attrs) {
                if u32::from(t) != uapi::IFLA_LINKINFO {
                    continue;
                }
                put("linkinfo", info, out);
                let kind = Attrs::new(info)
                    .find(|(t, _)| u32::from(*t) == uapi::IFLA_INFO_KIND)
                    .and_then(|(_, v)| wire::get_str(v))
                    .unwrap_or_default();
                for (t, data) in Attrs::new(info) {
                    if u32::from(t) != uapi::IFLA_INFO_DATA {
                        continue;
                    }
                    put(&kind, data, out);
                    for (_, peer) in Attrs::new(data).filter(|(t, _)| {
                        (kind == "netkit" && u32::from(*t) == uapi::IFLA_NETKIT_PEER_INFO)
                            || (kind == "veth" && u32::from(*t) == uapi::VETH_INFO_PEER)
                    }) {
                        put(
                            &format!("{kind}_peer"),
                            peer.get(ifi..).unwrap_or_default(),
                            out,
                        );
                    }
                }
            }
        }
        (0, uapi::RTM_NEWADDR) => put("addr", p.get(8..).unwrap_or_default(), out),
        (0, uapi::RTM_NEWROUTE) => put("route", p.get(12..).unwrap_or_default(), out),
        (0, uapi::RTM_NEWNEIGH) => put("neigh", p.get(12..).unwrap_or_default(), out),
        (_, uapi::NLMSG_ERROR) if u32::from(h.nlmsg_flags) & uapi::NLM_F_ACK_TLVS != 0 => {
            // Acks are capped (NETLINK_CAP_ACK): errno, then the header.
            put(
                "error",
                p.get(4 + wire::NLMSG_HDRLEN..).unwrap_or_default(),
                out,
            )
        }
        _ => {}
    }
}

#[test]
fn capture_covers_every_attribute_we_encode_or_decode() {
    let (_, frames) = load();
    let mut seen = BTreeSet::new();
    for f in &frames {
        for (h, p) in wire::messages(&f.data) {
            walk(f.family, &h, p, &mut seen);
        }
    }
    let missing: Vec<_> = COVERED
        .iter()
        .filter(|(ctx, t)| !seen.contains(&(ctx.to_string(), *t)))
        .collect();
    assert!(
        missing.is_empty(),
        "attributes nk-netlink handles but the capture lacks (context, type): {missing:?}"
    );
}

#[test]
fn capture_has_the_kernel_and_both_directions() {
    let (m, frames) = load();
    assert!(m.kernel.starts_with("6.12"), "captured on {}", m.kernel);
    assert!(m.tcpdump.starts_with("tcpdump version"), "{}", m.tcpdump);
    assert!(frames.iter().any(|f| f.to_kernel) && frames.iter().any(|f| !f.to_kernel));
    let families: BTreeSet<u16> = frames.iter().map(|f| f.family).collect();
    assert_eq!(
        families,
        BTreeSet::from([libc::NETLINK_ROUTE as u16, libc::NETLINK_SOCK_DIAG as u16])
    );
}
