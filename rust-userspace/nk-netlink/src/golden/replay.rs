//! Replays the checked-in capture through the fake kernel (see the
//! module above). Regenerate it with `cargo xtask golden`.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::path::PathBuf;
use std::rc::Rc;

use nk_sys::{uapi, Syscall};

use super::pcap::{self, Frame};
use super::{Env, Manifest, SetupCall, SocketSetup, COVERED, STEPS};
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
        serde_json::from_slice(&read("rtnetlink.json")).unwrap_or_else(|e| {
        panic!("rtnetlink.json: {e}; the manifest is from another version of the capture: run `cargo xtask golden`")
    });
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
    /// The step that sent or read each frame.
    owner: Vec<String>,
    /// Netlink family of each socket the script opened, by fd.
    families: std::collections::HashMap<i32, u16>,
    /// The sockets the capture's script opened, with their setup calls.
    want_sockets: Vec<SocketSetup>,
    /// Index into `want_sockets` of each open fd, and how many of that
    /// socket's setup calls have been made.
    sockets: std::collections::HashMap<i32, (usize, usize)>,
    opened: usize,
    error: Option<String>,
}

impl Tape {
    fn fail(&mut self, why: String) -> std::io::Result<i64> {
        let step = if self.step.is_empty() {
            "(before the first, opening the session)"
        } else {
            &self.step
        };
        let at = format!("step {step}, frame {}: {why}", self.pos);
        self.error.get_or_insert(at);
        Err(std::io::Error::from_raw_os_error(libc::EIO))
    }

    /// The next captured frame, which must go the way of the call (to the
    /// kernel for a send) on a socket of the family it was captured on.
    fn next_frame(&self, fd: i32, send: bool) -> Result<Frame, String> {
        let (what, other) = if send {
            ("a request", "a reply")
        } else {
            ("a read", "the next request")
        };
        let Some(f) = self.frames.get(self.pos) else {
            return Err(format!("{what} after the end of the capture"));
        };
        if f.to_kernel != send {
            return Err(format!("{what} where the capture has {other}"));
        }
        let family = self.families.get(&fd).copied();
        if family != Some(f.family) {
            return Err(format!(
                "{what} on a netlink socket of family {family:?}, captured on family {}",
                f.family
            ));
        }
        Ok(f.clone())
    }

    fn call(&mut self, c: &mut Syscall<'_>) -> std::io::Result<i64> {
        match c {
            Syscall::Socket { proto, .. } => {
                let Some(want) = self.want_sockets.get(self.opened) else {
                    return self.fail(format!(
                        "socket {} opened, the capture's script opened {}",
                        self.opened + 1,
                        self.want_sockets.len()
                    ));
                };
                if want.protocol != *proto {
                    let why = format!(
                        "socket {} has netlink protocol {proto}, the capture's has {}",
                        self.opened + 1,
                        want.protocol
                    );
                    return self.fail(why);
                }
                let f = std::fs::File::open("/dev/null")?;
                let fd = OwnedFd::from(f).into_raw_fd();
                self.families.insert(fd, *proto as u16);
                self.sockets.insert(fd, (self.opened, 0));
                self.opened += 1;
                Ok(i64::from(fd))
            }
            Syscall::SetSockOpt { .. } | Syscall::BindNetlink { .. } => {
                let (fd, got) = SetupCall::of(c).expect("a setup call");
                let Some(&(i, n)) = self.sockets.get(&fd) else {
                    return self.fail(format!("{got:?} on fd {fd}, which no socket() returned"));
                };
                let want = self.want_sockets[i].calls.get(n).cloned();
                if want.as_ref() != Some(&got) {
                    let why = format!(
                        "setup call {} of socket {}: {got:?}, the capture's script made {want:?}",
                        n + 1,
                        i + 1
                    );
                    return self.fail(why);
                }
                self.sockets.insert(fd, (i, n + 1));
                Ok(0)
            }
            Syscall::Send { fd, buf } => {
                let f = match self.next_frame(fd.as_raw_fd(), true) {
                    Ok(f) => f,
                    Err(why) => return self.fail(why),
                };
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
                self.owner.push(self.step.clone());
                Ok(buf.len() as i64)
            }
            Syscall::Recv { fd, buf, .. } => {
                let f = match self.next_frame(fd.as_raw_fd(), false) {
                    Ok(f) => f,
                    Err(why) => return self.fail(why),
                };
                let n = f.data.len().min(buf.len());
                buf[..n].copy_from_slice(&f.data[..n]);
                self.pos += 1;
                self.owner.push(self.step.clone());
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
    // Make room for fd n if the soft limit is lower (and the hard one allows).
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid rlimit to write into.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0
        && lim.rlim_cur <= n as libc::rlim_t
        && lim.rlim_max > n as libc::rlim_t
    {
        lim.rlim_cur = n as libc::rlim_t + 1;
        // SAFETY: lim is a valid rlimit; raising the soft limit up to the
        // hard one is always allowed.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    }
    let f = std::fs::File::open("/dev/null").expect("open /dev/null");
    // SAFETY: f is an open fd we own; F_DUPFD_CLOEXEC returns a new fd (or
    // -1) and touches no memory.
    let d = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_DUPFD_CLOEXEC, n) };
    assert!(
        d >= 0,
        "F_DUPFD_CLOEXEC to fd {n}: {} (the replay needs RLIMIT_NOFILE above {n})",
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

/// Replays the capture; returns the frames and the step of each.
fn replay() -> (Vec<Frame>, Vec<String>) {
    // Replays share fd number 1000: one at a time.
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let (m, frames) = load();
    let tape = Rc::new(RefCell::new(Tape {
        frames: frames.clone(),
        pos: 0,
        step: String::new(),
        owner: Vec::new(),
        families: Default::default(),
        want_sockets: m.sockets.clone(),
        sockets: Default::default(),
        opened: 0,
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
    assert_eq!(
        t.pos,
        frames.len(),
        "the script left captured frames unread"
    );
    assert_eq!(
        t.opened,
        m.sockets.len(),
        "the script opened fewer sockets than the capture's"
    );
    for (i, n) in t.sockets.values() {
        assert_eq!(
            *n,
            m.sockets[*i].calls.len(),
            "socket {} skipped setup calls the capture's script made: {:?}",
            i + 1,
            &m.sockets[*i].calls[*n..]
        );
    }
    (frames, t.owner.clone())
}

#[test]
fn replay_matches_the_kernel_capture() {
    replay();
}

/// One attribute: nesting depth, context (see `COVERED`), type, payload.
type Attr<'a> = (usize, String, u16, &'a [u8]);

fn put<'a>(depth: usize, ctx: &str, b: &'a [u8], out: &mut Vec<Attr<'a>>) {
    for (t, v) in Attrs::new(b) {
        out.push((depth, ctx.to_string(), t, v));
    }
}

/// The attributes of one message, in order, nests after their parent.
fn walk<'a>(family: u16, h: &uapi::nlmsghdr, p: &'a [u8]) -> Vec<Attr<'a>> {
    let mut out = Vec::new();
    let ifi = wire::align(std::mem::size_of::<uapi::ifinfomsg>());
    match (u32::from(family), u32::from(h.nlmsg_type)) {
        (0, uapi::RTM_NEWLINK | uapi::RTM_GETLINK | uapi::RTM_DELLINK) => {
            for (t, v) in Attrs::new(p.get(ifi..).unwrap_or_default()) {
                out.push((0, "link".into(), t, v));
                if u32::from(t) != uapi::IFLA_LINKINFO {
                    continue;
                }
                let kind = Attrs::new(v)
                    .find(|(t, _)| u32::from(*t) == uapi::IFLA_INFO_KIND)
                    .and_then(|(_, k)| wire::get_str(k))
                    .unwrap_or_default();
                for (t, info) in Attrs::new(v) {
                    out.push((1, "linkinfo".into(), t, info));
                    if u32::from(t) != uapi::IFLA_INFO_DATA {
                        continue;
                    }
                    for (t, data) in Attrs::new(info) {
                        out.push((2, kind.clone(), t, data));
                        let peer = (kind == "netkit"
                            && u32::from(t) == uapi::IFLA_NETKIT_PEER_INFO)
                            || (kind == "veth" && u32::from(t) == uapi::VETH_INFO_PEER);
                        if peer {
                            put(
                                3,
                                &format!("{kind}_peer"),
                                data.get(ifi..).unwrap_or_default(),
                                &mut out,
                            );
                        }
                    }
                }
            }
        }
        (0, uapi::RTM_NEWADDR | uapi::RTM_DELADDR | uapi::RTM_GETADDR) => {
            put(0, "addr", p.get(8..).unwrap_or_default(), &mut out)
        }
        (0, uapi::RTM_NEWROUTE | uapi::RTM_DELROUTE | uapi::RTM_GETROUTE) => {
            put(0, "route", p.get(12..).unwrap_or_default(), &mut out)
        }
        (0, uapi::RTM_NEWNEIGH | uapi::RTM_DELNEIGH | uapi::RTM_GETNEIGH) => {
            put(0, "neigh", p.get(12..).unwrap_or_default(), &mut out)
        }
        (_, uapi::NLMSG_ERROR) if u32::from(h.nlmsg_flags) & uapi::NLM_F_ACK_TLVS != 0 => {
            // Acks are capped (NETLINK_CAP_ACK): errno, then the header.
            put(
                0,
                "error",
                p.get(4 + wire::NLMSG_HDRLEN..).unwrap_or_default(),
                &mut out,
            )
        }
        _ => {}
    }
    out
}

fn msg_name(family: u16, ty: u16) -> String {
    let n = match (u32::from(family), u32::from(ty)) {
        (_, uapi::NLMSG_ERROR) => "NLMSG_ERROR",
        (_, uapi::NLMSG_DONE) => "NLMSG_DONE",
        (0, uapi::RTM_NEWLINK) => "RTM_NEWLINK",
        (0, uapi::RTM_DELLINK) => "RTM_DELLINK",
        (0, uapi::RTM_GETLINK) => "RTM_GETLINK",
        (0, uapi::RTM_NEWADDR) => "RTM_NEWADDR",
        (0, uapi::RTM_NEWROUTE) => "RTM_NEWROUTE",
        (0, uapi::RTM_NEWNEIGH) => "RTM_NEWNEIGH",
        (0, uapi::RTM_DELADDR) => "RTM_DELADDR",
        (0, uapi::RTM_GETADDR) => "RTM_GETADDR",
        (0, uapi::RTM_DELROUTE) => "RTM_DELROUTE",
        (0, uapi::RTM_GETROUTE) => "RTM_GETROUTE",
        (0, uapi::RTM_DELNEIGH) => "RTM_DELNEIGH",
        (0, uapi::RTM_GETNEIGH) => "RTM_GETNEIGH",
        (4, uapi::SOCK_DIAG_BY_FAMILY) => "SOCK_DIAG_BY_FAMILY",
        (4, uapi::SOCK_DESTROY) => "SOCK_DESTROY",
        _ => return format!("type {ty}"),
    };
    n.to_string()
}

/// The capture as text, by step: one line per message and per attribute
/// (names from `COVERED`, payloads in hex, long ones cut), so that a
/// recapture shows up in review as a readable diff.
fn dissect(frames: &[Frame], owner: &[String]) -> String {
    let mut out = String::new();
    let mut step = "";
    for (f, o) in frames.iter().zip(owner) {
        if o != step {
            step = o;
            out.push_str(&format!("== {step}\n"));
        }
        for (h, p) in wire::messages(&f.data) {
            let errno = (u32::from(h.nlmsg_type) == uapi::NLMSG_ERROR)
                .then(|| {
                    p.get(..4)
                        .map(|b| i32::from_ne_bytes(b.try_into().unwrap()))
                })
                .flatten()
                .map(|e| format!(" errno {e}"))
                .unwrap_or_default();
            out.push_str(&format!(
                "{} {}{errno} flags {:#06x} seq {} len {}\n",
                if f.to_kernel { ">" } else { "<" },
                msg_name(f.family, h.nlmsg_type),
                h.nlmsg_flags,
                h.nlmsg_seq,
                h.nlmsg_len
            ));
            for (depth, ctx, t, v) in walk(f.family, &h, p) {
                let name = COVERED
                    .iter()
                    .find(|(c, ty, _)| *c == ctx && *ty == t)
                    .map(|(_, _, n)| n.to_string())
                    .unwrap_or_else(|| format!("{ctx}.{t}"));
                let shown = &v[..v.len().min(24)];
                let more = if v.len() > 24 {
                    format!(" ..({} bytes)", v.len())
                } else {
                    String::new()
                };
                out.push_str(&format!(
                    "  {}{name} {}{more}\n",
                    "  ".repeat(depth),
                    hex(shown)
                ));
            }
        }
    }
    out
}

#[test]
fn capture_dissection_snapshot() {
    let (frames, owner) = replay();
    insta::assert_snapshot!(dissect(&frames, &owner));
}

#[test]
fn capture_covers_every_attribute_we_encode_or_decode() {
    let (_, frames) = load();
    let mut seen = BTreeSet::new();
    for f in &frames {
        for (h, p) in wire::messages(&f.data) {
            for (_, ctx, t, _) in walk(f.family, &h, p) {
                seen.insert((ctx, t));
            }
        }
    }
    let missing: Vec<_> = COVERED
        .iter()
        .filter(|(ctx, t, _)| !seen.contains(&(ctx.to_string(), *t)))
        .map(|(ctx, _, name)| format!("{ctx}/{name}"))
        .collect();
    assert!(
        missing.is_empty(),
        "attributes nk-netlink handles but the capture lacks: {missing:?}"
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

/// Attribute constants the library's source names that the capture need
/// not contain, and why: constants named only in an assert, or attributes
/// the capture's kernel (6.12) does not have.
const NOT_HANDLED: &[(&str, &str)] = &[
    (
        "IFLA_NETKIT_PAIRING",
        "encoded and decoded, but absent from the capture: single mode is 7.3's (6.12 only \
         reserves the number) and the capture is taken on 6.12; nk.netkit_room_lease creates \
         a single device on 7.3 and checks its dump",
    ),
    (
        "IFLA_MAX_PACING_OFFLOAD_HORIZON",
        "named only in link.rs's assert on upstream's numbering",
    ),
    (
        "IFLA_NETNS_IMMUTABLE",
        "named only in link.rs's assert on upstream's numbering",
    ),
];

/// `COVERED` is not a list kept by hand: every attribute constant that the
/// library's code names (`IFLA_*`, `IFA_*`, `RTA_*`, `NDA_*`, `VETH_INFO_*`,
/// `NLMSGERR_ATTR_*`) must be in it, so a new encoder or decoder cannot
/// escape `capture_covers_every_attribute_we_encode_or_decode`.
#[test]
fn covered_lists_every_attribute_the_source_names() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut named = BTreeSet::new();
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        for (i, _) in text.match_indices(|c: char| c.is_ascii_uppercase()) {
            let before = text[..i].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let word: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            let attr = [
                "IFLA_",
                "IFA_",
                "RTA_",
                "NDA_",
                "VETH_INFO_",
                "NLMSGERR_ATTR_",
            ]
            .iter()
            .any(|p| word.starts_with(p) && word.len() > p.len());
            if attr {
                named.insert(word);
            }
        }
    }
    assert!(named.contains("IFLA_NETKIT_MODE"), "the scan finds nothing");
    let missing: Vec<&String> = named
        .iter()
        .filter(|n| !COVERED.iter().any(|(_, _, c)| c == n))
        .filter(|n| !NOT_HANDLED.iter().any(|(x, _)| x == n))
        .collect();
    assert!(
        missing.is_empty(),
        "nk-netlink's source names {missing:?} but golden::COVERED does not list them: \
         add them there and recapture with `cargo xtask golden` if the capture lacks them"
    );
    let stale: Vec<&str> = NOT_HANDLED
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !named.contains(*n))
        .collect();
    assert!(
        stale.is_empty(),
        "NOT_HANDLED lists names the source no longer has: {stale:?}"
    );
}
