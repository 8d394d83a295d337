//! Golden netlink traffic: one script of requests that covers every
//! attribute nk-netlink encodes or decodes, run twice.
//!
//! - **Captured** against a real kernel: `cargo xtask golden` boots the
//!   patched kernel, starts `tcpdump -i nlmon0` in a fresh netns, runs
//!   [`STEPS`] there (nk-selftests `--golden-capture`) and checks every
//!   expectation against the kernel. The pcap and a [`Manifest`] (kernel
//!   release, tcpdump version, the fds, pids and sockets the script used)
//!   are checked in under `rust-userspace/nk-netlink/golden/`.
//! - **Replayed** unprivileged by `cargo test`: the same steps run over a
//!   fake kernel (nk-sys's fake) that requires each request to equal the
//!   captured one byte for byte and answers with the captured replies, so
//!   every decoder reads bytes a real kernel wrote and every expectation
//!   is checked again. A second test requires every attribute type the
//!   library encodes or decodes to appear in the capture.
//!
//! Each step checks its values against what it asked for (a netkit
//! created with policy `blackhole` dumps back `blackhole`), which makes
//! the encode → kernel → decode round trip per attribute and per enum
//! value explicit.

pub mod pcap;
#[cfg(test)]
mod replay;

use std::net::{IpAddr, SocketAddr};
use std::os::fd::BorrowedFd;

use nk_sys::uapi;

use crate::diag::{DiagSocket, Proto, TCP_FULL_STATES};
use crate::wire::MsgBuilder;
use crate::{
    Error, HwAddr, LinkChange, LinkInfo, Mac, NetkitMode, NetkitPolicy, NetkitScrub, NetkitSpec,
    NetkitSync, NetnsRef, RtSocket,
};

/// The checked-in capture's provenance and the values the script used
/// that a replay cannot make up (fd and pid numbers, socket addresses).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// How the capture was made.
    pub how: String,
    /// `uname -r` of the kernel that answered.
    pub kernel: String,
    /// `/proc/version`.
    pub kernel_version: String,
    /// The tree it was built from (`cargo xtask golden` fills it in from
    /// the run's summary: base tarball and number of patches applied).
    #[serde(default)]
    pub tree: String,
    /// `tcpdump --version`, first line.
    pub tcpdump: String,
    /// Step names in order: a replay of another script version fails
    /// with a message saying to recapture.
    pub steps: Vec<String>,
    /// The fd number of the peer netns (the script passes it in
    /// `IFLA_NET_NS_FD`; the replay dups a file to the same number).
    pub peer_ns_fd: i32,
    /// A pid in the peer netns (`IFLA_NET_NS_PID`).
    pub peer_pid: u32,
    /// A TCP listener in the capture netns.
    pub tcp_listener: SocketAddr,
    /// A TCP client connected to it.
    pub tcp_client: SocketAddr,
    /// An unconnected UDP socket.
    pub udp: SocketAddr,
    /// Every netlink socket the script opened, in order, with the calls
    /// that set it up. The capture holds only what crossed the socket;
    /// these were observed in nk-sys while the script ran, and the replay
    /// requires the same calls (dropping `NETLINK_EXT_ACK` fails it).
    pub sockets: Vec<SocketSetup>,
}

/// A netlink socket of the script: its protocol and setup calls.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SocketSetup {
    /// `NETLINK_ROUTE`, `NETLINK_SOCK_DIAG`...
    pub protocol: i32,
    /// setsockopt and bind, in the order made.
    pub calls: Vec<SetupCall>,
}

/// A call that configures a socket rather than talking through it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SetupCall {
    /// `setsockopt(fd, level, name, value)`.
    Setsockopt {
        /// `SOL_NETLINK`, `SOL_SOCKET`.
        level: i32,
        /// Option name.
        name: i32,
        /// Option value bytes, as hex.
        value: String,
    },
    /// `bind(fd, {AF_NETLINK, groups})`.
    Bind {
        /// Multicast groups.
        groups: u32,
    },
}

impl SetupCall {
    /// The socket a setup call is made on, and the call; `None` for every
    /// other syscall.
    pub fn of(c: &nk_sys::Syscall<'_>) -> Option<(i32, SetupCall)> {
        use std::os::fd::AsRawFd;
        match c {
            nk_sys::Syscall::SetSockOpt {
                fd,
                level,
                name,
                val,
            } => Some((
                fd.as_raw_fd(),
                SetupCall::Setsockopt {
                    level: *level,
                    name: *name,
                    value: val.iter().map(|b| format!("{b:02x}")).collect(),
                },
            )),
            nk_sys::Syscall::BindNetlink { fd, groups } => {
                Some((fd.as_raw_fd(), SetupCall::Bind { groups: *groups }))
            }
            _ => None,
        }
    }
}

/// What a step sees of the world around it.
pub struct Env<'a> {
    /// Another netns, by fd.
    pub peer_ns: BorrowedFd<'a>,
    /// See [`Manifest`].
    pub m: &'a Manifest,
}

/// A step's verdict: what did not match, in words.
pub type Check = std::result::Result<(), String>;

/// The socket a run uses; sock_diag steps open their own.
pub struct Session {
    /// The rtnetlink socket of the capture netns.
    pub rt: RtSocket,
}

/// A step of the script.
pub type StepFn = fn(&mut Session, &Env<'_>) -> Check;

fn eq<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Check {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, want {want:?}"))
    }
}

fn ok<T>(what: &str, r: crate::Result<T>) -> std::result::Result<T, String> {
    r.map_err(|e| format!("{what}: {e}"))
}

/// The request must fail with `errno`, and with `extack` as the kernel's
/// message (`None`: the kernel gives none).
fn fails<T: std::fmt::Debug>(
    what: &str,
    r: crate::Result<T>,
    errno: i32,
    extack: Option<&str>,
) -> Check {
    match r {
        Ok(v) => Err(format!("{what}: succeeded ({v:?}), want errno {errno}")),
        Err(e @ Error::Kernel { .. }) => {
            eq(&format!("{what}: errno"), e.errno(), Some(errno))?;
            eq(&format!("{what}: extack"), e.extack(), extack)
        }
        Err(e) => Err(format!("{what}: {e}, want the kernel's errno {errno}")),
    }
}

/// The request must fail with `errno`, whatever the kernel's message
/// (the capture records it; replay compares the bytes).
fn fails_errno<T: std::fmt::Debug>(what: &str, r: crate::Result<T>, errno: i32) -> Check {
    match r {
        Ok(v) => Err(format!("{what}: succeeded ({v:?}), want errno {errno}")),
        Err(e @ Error::Kernel { .. }) => eq(&format!("{what}: errno"), e.errno(), Some(errno)),
        Err(e) => Err(format!("{what}: {e}, want the kernel's errno {errno}")),
    }
}

fn get(s: &mut Session, name: &str) -> std::result::Result<LinkInfo, String> {
    ok(&format!("link_get {name}"), s.rt.link_get(name))
}

fn mac(s: &str) -> Mac {
    s.parse().expect("valid MAC in the script")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("valid address in the script")
}

fn set(s: &mut Session, name: &str, c: &LinkChange<'_>) -> Check {
    let idx = get(s, name)?.index;
    ok(&format!("link_set {name}"), s.rt.link_set(idx, c))
}

fn lo(s: &mut Session, _: &Env<'_>) -> Check {
    let l = get(s, "lo")?;
    eq("lo index", l.index, 1)?;
    eq("lo mtu", l.mtu, Some(65536))?;
    eq("lo is up (the harness brought it up)", l.is_up(), true)?;
    eq("lo address", l.address, Some(HwAddr(vec![0; 6])))?;
    eq("lo kind", l.kind, None)?;
    eq("lo min_mtu", l.min_mtu, Some(0))?;
    eq("lo max_mtu", l.max_mtu, Some(0))?;
    let st = l.stats.ok_or("lo: no IFLA_STATS64")?;
    eq("lo: rx == tx packets", st.rx_packets, st.tx_packets)
}

/// Every netkit attribute, peer in another netns by fd, both MACs.
fn netkit_l2_all(s: &mut Session, env: &Env<'_>) -> Check {
    let mut n = NetkitSpec::new("nk0", "nk0p", NetkitMode::L2);
    n.policy = Some(NetkitPolicy::Pass);
    n.peer_policy = Some(NetkitPolicy::Drop);
    n.scrub = Some(NetkitScrub::None);
    n.peer_scrub = Some(NetkitScrub::Default);
    n.headroom = Some(64);
    n.tailroom = Some(32);
    n.mac = Some(mac("02:00:00:00:00:01"));
    n.mtu = Some(1400);
    n.peer.mac = Some(mac("02:00:00:00:00:02"));
    n.peer.mtu = Some(1300);
    n.peer.netns = Some(NetnsRef::Fd(env.peer_ns));
    // Kernels without the mainline series ignore it and do not dump it.
    n.sync = Some(NetkitSync(NetkitSync::MTU));
    ok("netkit_add nk0", s.rt.netkit_add(&n))?;
    let l = get(s, "nk0")?;
    eq("kind", l.kind.as_deref(), Some("netkit"))?;
    eq("mtu", l.mtu, Some(1400))?;
    eq("address", l.address, Some(HwAddr(vec![2, 0, 0, 0, 0, 1])))?;
    eq("generic headroom", l.headroom, Some(64))?;
    eq("generic tailroom", l.tailroom, Some(32))?;
    eq("has a peer ifindex", l.link.is_some(), true)?;
    eq("peer netns id", l.link_netnsid, Some(0))?;
    let k = l.netkit.ok_or("no netkit info")?;
    eq("primary", k.primary, true)?;
    eq("mode", k.mode, Some(NetkitMode::L2))?;
    eq("policy", k.policy, Some(NetkitPolicy::Pass))?;
    eq("peer_policy", k.peer_policy, Some(NetkitPolicy::Drop))?;
    eq("scrub", k.scrub, Some(NetkitScrub::None))?;
    eq("peer_scrub", k.peer_scrub, Some(NetkitScrub::Default))?;
    eq("netkit headroom", k.headroom, Some(64))?;
    eq("netkit tailroom", k.tailroom, Some(32))?;
    if let Some(sync) = k.sync {
        eq("sync", sync, NetkitSync(NetkitSync::MTU))?;
    }
    eq("unknown values", k.unknown, vec![])
}

/// L3 with the other value of every enum; the peer's netns by pid.
fn netkit_l3_by_pid(s: &mut Session, env: &Env<'_>) -> Check {
    let mut n = NetkitSpec::new("nk1", "nk1p", NetkitMode::L3);
    n.policy = Some(NetkitPolicy::Drop);
    n.peer_policy = Some(NetkitPolicy::Pass);
    n.scrub = Some(NetkitScrub::Default);
    n.peer_scrub = Some(NetkitScrub::None);
    n.peer.netns = Some(NetnsRef::Pid(env.m.peer_pid));
    ok("netkit_add nk1", s.rt.netkit_add(&n))?;
    let l = get(s, "nk1")?;
    eq("mtu", l.mtu, Some(1500))?;
    eq("peer netns id", l.link_netnsid, Some(0))?;
    let k = l.netkit.ok_or("no netkit info")?;
    eq("mode", k.mode, Some(NetkitMode::L3))?;
    eq("policy", k.policy, Some(NetkitPolicy::Drop))?;
    eq("peer_policy", k.peer_policy, Some(NetkitPolicy::Pass))?;
    eq("scrub", k.scrub, Some(NetkitScrub::Default))?;
    eq("peer_scrub", k.peer_scrub, Some(NetkitScrub::None))?;
    eq("netkit headroom", k.headroom, Some(0))?;
    eq("netkit tailroom", k.tailroom, Some(0))
}

/// Kernel defaults, both ends here: the peer's view of the pair.
fn netkit_defaults_peer(s: &mut Session, _: &Env<'_>) -> Check {
    // Defaults but for the sync, which the next step's MTU and GSO
    // changes rely on with the mainline series (the 6.12 series syncs
    // always and ignores the attribute).
    let mut n = NetkitSpec::new("nk2", "nk2p", NetkitMode::L2);
    n.sync = Some(NetkitSync(NetkitSync::MTU | NetkitSync::GSO));
    ok("netkit_add nk2", s.rt.netkit_add(&n))?;
    let a = get(s, "nk2")?;
    let b = get(s, "nk2p")?;
    eq("peer's link is the primary", b.link, Some(a.index))?;
    eq("primary's link is the peer", a.link, Some(b.index))?;
    eq("same netns: no netns id", b.link_netnsid, None)?;
    eq("peer mtu follows primary", b.mtu, Some(1500))?;
    let k = b.netkit.ok_or("no netkit info on the peer")?;
    eq("peer is not primary", k.primary, false)?;
    eq("mode", k.mode, Some(NetkitMode::L2))?;
    eq("default policy", k.policy, Some(NetkitPolicy::Pass))?;
    eq("default scrub", k.scrub, Some(NetkitScrub::Default))
}

fn by_index_and_dump(s: &mut Session, _: &Env<'_>) -> Check {
    let a = get(s, "nk2")?;
    let b = ok("link_get_index", s.rt.link_get_index(a.index))?;
    eq("by index", b.name.as_str(), "nk2")?;
    let all = ok("link_dump", s.rt.link_dump())?;
    let names: Vec<&str> = all.iter().map(|l| l.name.as_str()).collect();
    eq(
        "dump",
        names,
        // ifindex order: sit0 comes with every netns (CONFIG_IPV6_SIT),
        // and netkit registers the peer before the primary.
        vec!["lo", "sit0", "nlmon0", "nk0", "nk1", "nk2p", "nk2"],
    )?;
    eq(
        "dump decodes like get",
        all.iter()
            .find(|l| l.name == "nk2")
            .map(|l| l.netkit.clone()),
        Some(a.netkit),
    )
}

fn change_mtu_mac_gso(s: &mut Session, _: &Env<'_>) -> Check {
    set(
        s,
        "nk2",
        &LinkChange {
            mtu: Some(1280),
            mac: Some(mac("02:00:00:00:00:22")),
            // Above the peer's 64k request: the pair takes the larger one.
            gso_max_size: Some(196608),
            gso_ipv4_max_size: Some(131072),
            // BIG TCP sets the GRO limits with the GSO ones.
            gro_max_size: Some(196608),
            gro_ipv4_max_size: Some(131072),
            ..Default::default()
        },
    )?;
    let a = get(s, "nk2")?;
    eq("gro_max_size", a.gro_max_size, Some(196608))?;
    eq("gro_ipv4_max_size", a.gro_ipv4_max_size, Some(131072))?;
    eq("mtu", a.mtu, Some(1280))?;
    eq("mac", a.address, Some(HwAddr(vec![2, 0, 0, 0, 0, 0x22])))?;
    eq("gso_max_size", a.gso_max_size, Some(196608))?;
    eq("gso_ipv4_max_size", a.gso_ipv4_max_size, Some(131072))?;
    let b = get(s, "nk2p")?;
    eq("peer mtu follows", b.mtu, Some(1280))?;
    eq("peer gso_max_size follows", b.gso_max_size, Some(196608))?;
    eq("tso_max_size", b.tso_max_size, a.tso_max_size)
}

fn change_room_and_updown(s: &mut Session, _: &Env<'_>) -> Check {
    set(
        s,
        "nk2",
        &LinkChange {
            netkit_headroom: Some(128),
            netkit_tailroom: Some(16),
            up: Some(true),
            ..Default::default()
        },
    )?;
    let a = get(s, "nk2")?;
    eq("up", a.is_up(), true)?;
    eq("generic headroom", a.headroom, Some(128))?;
    let k = a.netkit.ok_or("no netkit info")?;
    eq("netkit headroom", k.headroom, Some(128))?;
    eq("netkit tailroom", k.tailroom, Some(16))?;
    set(
        s,
        "nk2",
        &LinkChange {
            up: Some(false),
            ..Default::default()
        },
    )?;
    eq("down", get(s, "nk2")?.is_up(), false)
}

/// Requests the kernel refuses, with the messages it gives.
fn refused(s: &mut Session, _: &Env<'_>) -> Check {
    let raw = |mode: u32, policy: u32| {
        let mut m = MsgBuilder::new(
            uapi::RTM_NEWLINK as u16,
            (uapi::NLM_F_REQUEST | uapi::NLM_F_ACK | uapi::NLM_F_CREATE | uapi::NLM_F_EXCL) as u16,
        );
        m.push(&uapi::ifinfomsg::default());
        m.str(uapi::IFLA_IFNAME as u16, "nkbad");
        m.begin_nest(uapi::IFLA_LINKINFO as u16);
        m.str(uapi::IFLA_INFO_KIND as u16, "netkit");
        m.begin_nest(uapi::IFLA_INFO_DATA as u16);
        m.u32(uapi::IFLA_NETKIT_MODE as u16, mode);
        m.u32(uapi::IFLA_NETKIT_POLICY as u16, policy);
        m.end_nest().end_nest();
        m
    };
    // NETKIT_REDIRECT (7) is a program verdict, not a policy.
    let r = s.rt.request(&raw(uapi::NETKIT_L3, 7), "policy 7");
    fails(
        "policy 7",
        r,
        libc::EINVAL,
        Some("Provided default xmit policy not supported"),
    )?;
    let r = s.rt.request(&raw(2, uapi::NETKIT_PASS as u32), "mode 2");
    // 6.12 checks the mode in netkit's newlink; 7.x refuses it already in
    // the attribute policy (NLA_POLICY_MAX).
    if r.as_ref().err().and_then(Error::errno) == Some(libc::ERANGE) {
        fails("mode 2", r, libc::ERANGE, Some("integer out of range"))?;
    } else {
        fails(
            "mode 2",
            r,
            libc::EINVAL,
            Some("Provided device mode can only be L2 or L3"),
        )?;
    }
    // What NetkitSpec::validate refuses, sent anyway: the kernel agrees.
    let mut n = NetkitSpec::new("nkbad", "nkbadp", NetkitMode::L3);
    n.mac = Some(mac("02:00:00:00:00:03"));
    let r = s.rt.request(&n.message(), "l3 with a MAC");
    fails("l3 with a MAC", r, libc::EOPNOTSUPP, None)?;
    let mut n = NetkitSpec::new("nkbad", "nkbadp", NetkitMode::L3);
    n.mtu = Some(1400);
    n.peer.mtu = Some(1500);
    n.sync = Some(NetkitSync(NetkitSync::MTU));
    fails(
        "peer mtu above the primary's",
        s.rt.netkit_add(&n),
        libc::EINVAL,
        Some("netkit peer MTU cannot exceed the primary's MTU"),
    )?;
    let p = get(s, "nk2p")?.index;
    fails(
        "room set on the peer",
        s.rt.link_set(
            p,
            &LinkChange {
                netkit_headroom: Some(8),
                ..Default::default()
            },
        ),
        libc::EACCES,
        Some("netkit link settings can be changed only through the primary device"),
    )?;
    fails(
        "peer mtu above the primary's, at runtime",
        s.rt.link_set(
            p,
            &LinkChange {
                mtu: Some(9000),
                ..Default::default()
            },
        ),
        libc::EINVAL,
        Some("mtu greater than device maximum"),
    )?;
    fails(
        "no such device",
        s.rt.link_get("nothere0"),
        libc::ENODEV,
        None,
    )
}

fn rename_and_move(s: &mut Session, env: &Env<'_>) -> Check {
    set(
        s,
        "nk2",
        &LinkChange {
            name: Some("nk2r".into()),
            ..Default::default()
        },
    )?;
    eq("renamed", get(s, "nk2r")?.kind.as_deref(), Some("netkit"))?;
    set(
        s,
        "nk2p",
        &LinkChange {
            netns: Some(NetnsRef::Fd(env.peer_ns)),
            ..Default::default()
        },
    )?;
    fails("moved away", s.rt.link_get("nk2p"), libc::ENODEV, None)?;
    eq(
        "now in another netns",
        get(s, "nk2r")?.link_netnsid,
        Some(0),
    )?;
    set(
        s,
        "nk2r",
        &LinkChange {
            netns: Some(NetnsRef::Pid(env.m.peer_pid)),
            ..Default::default()
        },
    )?;
    fails("moved by pid", s.rt.link_get("nk2r"), libc::ENODEV, None)
}

fn veth_addr_route_neigh(s: &mut Session, env: &Env<'_>) -> Check {
    ok(
        "veth_add",
        s.rt.veth_add("veth0", "veth0p", Some(NetnsRef::Fd(env.peer_ns))),
    )?;
    let v = get(s, "veth0")?;
    eq("kind", v.kind.as_deref(), Some("veth"))?;
    eq("no netkit info", v.netkit, None)?;
    set(
        s,
        "veth0",
        &LinkChange {
            up: Some(true),
            ..Default::default()
        },
    )?;
    ok("addr v4", s.rt.addr_add(v.index, ip("10.1.0.1"), 24))?;
    ok("addr v6", s.rt.addr_add(v.index, ip("fd00::1"), 64))?;
    ok("route", s.rt.route_add(ip("10.2.0.0"), 24, v.index, None))?;
    ok(
        "route via",
        s.rt.route_add(ip("10.3.0.0"), 24, v.index, Some(ip("10.1.0.2"))),
    )?;
    ok("route v6", s.rt.route_add(ip("fd01::"), 64, v.index, None))?;
    ok(
        "neigh",
        s.rt.neigh_add(v.index, ip("10.1.0.2"), mac("02:00:00:00:00:99")),
    )?;
    fails(
        "address twice",
        s.rt.addr_add(v.index, ip("10.1.0.1"), 24),
        libc::EEXIST,
        Some("ipv4: Address already assigned"),
    )?;
    // What was added, dumped back.
    let addrs = ok("addr_dump", s.rt.addr_dump(Some(v.index)))?;
    let mut got: Vec<(String, u8)> = addrs
        .iter()
        .filter(|a| !a.addr.is_ipv6() || !a.addr.to_string().starts_with("fe80"))
        .map(|a| (a.addr.to_string(), a.prefix))
        .collect();
    got.sort();
    eq(
        "addresses",
        got,
        vec![("10.1.0.1".into(), 24), ("fd00::1".into(), 64)],
    )?;
    let routes = ok("route_dump v4", s.rt.route_dump(libc::AF_INET as u8))?;
    let mine = |dst: &str| {
        routes
            .iter()
            .find(|r| r.dst == Some(ip(dst)) && r.table == uapi::RT_TABLE_MAIN)
            .map(|r| (r.prefix, r.oif, r.gateway))
    };
    eq(
        "route 10.2.0.0",
        mine("10.2.0.0"),
        Some((24, Some(v.index), None)),
    )?;
    eq(
        "route 10.3.0.0",
        mine("10.3.0.0"),
        Some((24, Some(v.index), Some(ip("10.1.0.2")))),
    )?;
    let neighs = ok("neigh_dump", s.rt.neigh_dump(Some(v.index)))?;
    let n = neighs
        .iter()
        .find(|n| n.ip == ip("10.1.0.2"))
        .ok_or("no neighbour 10.1.0.2 in the dump")?;
    eq("neigh lladdr", n.mac, Some(mac("02:00:00:00:00:99")))?;
    eq("neigh state", n.state, uapi::NUD_PERMANENT as u16)?;
    // Deleted, they are gone; deleted twice, the kernel says so.
    ok("route_del", s.rt.route_del(ip("10.2.0.0"), 24, v.index))?;
    ok("neigh_del", s.rt.neigh_del(v.index, ip("10.1.0.2")))?;
    ok("addr_del", s.rt.addr_del(v.index, ip("fd00::1"), 64))?;
    let routes = ok("route_dump v4", s.rt.route_dump(libc::AF_INET as u8))?;
    eq(
        "route deleted",
        routes.iter().any(|r| r.dst == Some(ip("10.2.0.0"))),
        false,
    )?;
    let neighs = ok("neigh_dump", s.rt.neigh_dump(Some(v.index)))?;
    eq(
        "neigh deleted",
        neighs.iter().any(|n| n.ip == ip("10.1.0.2")),
        false,
    )?;
    let addrs = ok("addr_dump", s.rt.addr_dump(Some(v.index)))?;
    eq(
        "address deleted",
        addrs.iter().any(|a| a.addr == ip("fd00::1")),
        false,
    )?;
    fails_errno(
        "route deleted twice",
        s.rt.route_del(ip("10.2.0.0"), 24, v.index),
        libc::ESRCH,
    )?;
    fails_errno(
        "neigh deleted twice",
        s.rt.neigh_del(v.index, ip("10.1.0.2")),
        libc::ENOENT,
    )?;
    fails_errno(
        "address deleted twice",
        s.rt.addr_del(v.index, ip("fd00::1"), 64),
        libc::EADDRNOTAVAIL,
    )
}

fn sock_diag(_: &mut Session, env: &Env<'_>) -> Check {
    let mut d = ok("open sock_diag", DiagSocket::open())?;
    let tcp = ok(
        "dump tcp",
        d.dump(libc::AF_INET as u8, Proto::Tcp, TCP_FULL_STATES),
    )?;
    let mut seen: Vec<(SocketAddr, SocketAddr, u8)> =
        tcp.iter().map(|x| (x.src, x.dst, x.state)).collect();
    seen.sort();
    let (l, c) = (env.m.tcp_listener, env.m.tcp_client);
    let unspec: SocketAddr = "0.0.0.0:0".parse().expect("literal");
    let mut want = vec![(l, unspec, 10), (c, l, 1), (l, c, 1)];
    want.sort();
    eq("tcp sockets (src, dst, state)", seen, want)?;
    let udp = ok(
        "dump udp",
        d.dump(libc::AF_INET as u8, Proto::Udp, u32::MAX),
    )?;
    eq(
        "udp sockets",
        udp.iter().map(|x| (x.src, x.state)).collect::<Vec<_>>(),
        vec![(env.m.udp, 7)],
    )?;
    let client = tcp.iter().find(|x| x.src == c).ok_or("client not dumped")?;
    ok("destroy the client", d.destroy(client))?;
    fails("destroy it again", d.destroy(client), libc::ENOENT, None)?;
    let after = ok(
        "dump tcp again",
        d.dump(libc::AF_INET as u8, Proto::Tcp, TCP_FULL_STATES),
    )?;
    eq(
        "client is gone",
        after.iter().any(|x| x.cookie == client.cookie),
        false,
    )
}

fn delete(s: &mut Session, _: &Env<'_>) -> Check {
    for name in ["nk0", "nk1", "veth0"] {
        let i = get(s, name)?.index;
        ok(&format!("link_del {name}"), s.rt.link_del(i))?;
    }
    let all = ok("link_dump", s.rt.link_dump())?;
    eq(
        "left",
        all.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
        vec!["lo", "sit0", "nlmon0"],
    )
}

/// The script, in order. Renaming or reordering steps means recapturing.
pub const STEPS: &[(&str, StepFn)] = &[
    ("lo", lo),
    ("netkit_l2_every_attribute", netkit_l2_all),
    ("netkit_l3_peer_by_pid", netkit_l3_by_pid),
    ("netkit_defaults_peer_view", netkit_defaults_peer),
    ("get_by_index_and_dump", by_index_and_dump),
    ("change_mtu_mac_gso", change_mtu_mac_gso),
    ("change_room_up_down", change_room_and_updown),
    ("refused_with_extack", refused),
    ("rename_and_move", rename_and_move),
    ("veth_addr_route_neigh", veth_addr_route_neigh),
    ("sock_diag_dump_destroy", sock_diag),
    ("delete", delete),
];

/// `(context, uapi::NAME as u16, "NAME")`.
macro_rules! covered {
    ($ctx:literal, $name:ident) => {
        ($ctx, uapi::$name as u16, stringify!($name))
    };
}

/// Attribute types (context, type, name) that the library encodes or
/// decodes and the capture must therefore contain. The context is the
/// nest the attribute sits in.
pub const COVERED: &[(&str, u16, &str)] = &[
    covered!("link", IFLA_IFNAME),
    covered!("link", IFLA_ADDRESS),
    covered!("link", IFLA_MTU),
    covered!("link", IFLA_MIN_MTU),
    covered!("link", IFLA_MAX_MTU),
    covered!("link", IFLA_LINK),
    covered!("link", IFLA_LINK_NETNSID),
    covered!("link", IFLA_NET_NS_FD),
    covered!("link", IFLA_NET_NS_PID),
    covered!("link", IFLA_NUM_RX_QUEUES),
    covered!("link", IFLA_GSO_MAX_SIZE),
    covered!("link", IFLA_GSO_IPV4_MAX_SIZE),
    covered!("link", IFLA_TSO_MAX_SIZE),
    covered!("link", IFLA_GRO_MAX_SIZE),
    covered!("link", IFLA_GRO_IPV4_MAX_SIZE),
    covered!("link", IFLA_STATS64),
    covered!("link", IFLA_LINKINFO),
    covered!("link", IFLA_HEADROOM),
    covered!("link", IFLA_TAILROOM),
    covered!("linkinfo", IFLA_INFO_KIND),
    covered!("linkinfo", IFLA_INFO_DATA),
    covered!("netkit", IFLA_NETKIT_PEER_INFO),
    covered!("netkit", IFLA_NETKIT_PRIMARY),
    covered!("netkit", IFLA_NETKIT_MODE),
    covered!("netkit", IFLA_NETKIT_POLICY),
    covered!("netkit", IFLA_NETKIT_PEER_POLICY),
    covered!("netkit", IFLA_NETKIT_SCRUB),
    covered!("netkit", IFLA_NETKIT_PEER_SCRUB),
    covered!("netkit", IFLA_NETKIT_HEADROOM),
    covered!("netkit", IFLA_NETKIT_TAILROOM),
    covered!("netkit", IFLA_NETKIT_SYNC),
    covered!("netkit_peer", IFLA_IFNAME),
    covered!("netkit_peer", IFLA_ADDRESS),
    covered!("netkit_peer", IFLA_MTU),
    covered!("netkit_peer", IFLA_NET_NS_FD),
    covered!("netkit_peer", IFLA_NET_NS_PID),
    covered!("veth", VETH_INFO_PEER),
    covered!("veth_peer", IFLA_IFNAME),
    covered!("veth_peer", IFLA_NET_NS_FD),
    covered!("addr", IFA_LOCAL),
    covered!("addr", IFA_ADDRESS),
    covered!("addr", IFA_FLAGS),
    covered!("route", RTA_DST),
    covered!("route", RTA_OIF),
    covered!("route", RTA_GATEWAY),
    covered!("route", RTA_TABLE),
    covered!("neigh", NDA_DST),
    covered!("neigh", NDA_LLADDR),
    covered!("neigh", NDA_IFINDEX),
    covered!("error", NLMSGERR_ATTR_MSG),
];

/// Runs the script; `on_step` is called before each step with its name.
///
/// # Errors
/// The first step that fails, with what did not match.
pub fn run(env: &Env<'_>, mut on_step: impl FnMut(&str)) -> Result<(), String> {
    let mut s = Session {
        rt: RtSocket::open().map_err(|e| e.to_string())?,
    };
    for (name, f) in STEPS {
        on_step(name);
        f(&mut s, env).map_err(|e| format!("step {name}: {e}"))?;
    }
    Ok(())
}
