//! Links: create netkit and veth pairs, get/dump/decode, change, delete.

use std::os::fd::{AsRawFd, BorrowedFd};

use nk_sys::uapi;

use crate::error::{Error, Result};
use crate::netkit::{NetkitMode, NetkitPolicy, NetkitScrub};
use crate::wire::{self, get_str, get_u16, get_u32, get_u8, Attrs, MsgBuilder};
use crate::RtSocket;

/// `IFNAMSIZ - 1`.
pub const IFNAME_MAX: usize = 15;
/// `ETH_MIN_MTU` and `ETH_MAX_MTU`.
pub const MTU_RANGE: std::ops::RangeInclusive<u32> = 68..=65535;
/// Generic `IFLA_HEADROOM` / `IFLA_TAILROOM` (dump-only), from the patched
/// headers; upstream numbers them the same.
pub const IFLA_HEADROOM: u16 = uapi::IFLA_HEADROOM as u16;
/// See [`IFLA_HEADROOM`].
pub const IFLA_TAILROOM: u16 = uapi::IFLA_TAILROOM as u16;
/// `IFLA_NETKIT_HEADROOM` / `IFLA_NETKIT_TAILROOM`.
pub const IFLA_NETKIT_HEADROOM: u16 = uapi::IFLA_NETKIT_HEADROOM as u16;
/// See [`IFLA_NETKIT_HEADROOM`].
pub const IFLA_NETKIT_TAILROOM: u16 = uapi::IFLA_NETKIT_TAILROOM as u16;

/// `IFLA_NETKIT_SYNC`: the settings the primary owns for the pair, a bit
/// mask given at creation (both series' part 1: mainline 0005, 6.12 0007).
/// A kernel without it ignores it, as netkit's attributes are parsed
/// liberally.
pub const IFLA_NETKIT_SYNC: u16 = uapi::IFLA_NETKIT_SYNC as u16;

/// The bits of [`IFLA_NETKIT_SYNC`] (`enum netkit_sync`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetkitSync(pub u32);

impl NetkitSync {
    /// `NETKIT_SYNC_MTU`: the peer's MTU follows the primary's.
    pub const MTU: u32 = uapi::NETKIT_SYNC_MTU;
    /// `NETKIT_SYNC_GSO`: the peer's GSO/GRO limits follow the primary's.
    pub const GSO: u32 = uapi::NETKIT_SYNC_GSO;
    const NAMES: [(u32, &'static str); 2] = [(Self::MTU, "mtu"), (Self::GSO, "gso")];

    /// The names of the bits set, and `0x..` for bits without a name.
    pub fn names(self) -> Vec<String> {
        let mut v: Vec<String> = Self::NAMES
            .iter()
            .filter(|(b, _)| self.0 & b != 0)
            .map(|(_, n)| (*n).to_string())
            .collect();
        let known = Self::NAMES.iter().fold(0, |a, (b, _)| a | b);
        if self.0 & !known != 0 {
            v.push(format!("{:#x}", self.0 & !known));
        }
        v
    }
}

impl std::str::FromStr for NetkitSync {
    type Err = Error;
    /// `mtu`, `gso`, `mtu,gso` or `none`.
    fn from_str(s: &str) -> Result<NetkitSync> {
        if s == "none" {
            return Ok(NetkitSync(0));
        }
        let mut bits = 0;
        for part in s.split(',') {
            match Self::NAMES.iter().find(|(_, n)| *n == part) {
                Some((b, _)) => bits |= b,
                None => {
                    return Err(Error::Invalid {
                        what: "sync setting",
                        why: format!(
                            "{part:?}: expected mtu, gso, a comma-separated list of them, or none"
                        ),
                    })
                }
            }
        }
        Ok(NetkitSync(bits))
    }
}

impl std::fmt::Display for NetkitSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.names();
        if n.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&n.join(","))
        }
    }
}

/// As iproute2 prints flags in JSON: an array of names.
impl serde::Serialize for NetkitSync {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.names())
    }
}

// The series must keep upstream's numbers (userspace built against newer
// headers must agree with it); fail the build if a rebase moves them.
const _: () = assert!(IFLA_HEADROOM == 68 && IFLA_TAILROOM == 69);
const _: () =
    assert!(uapi::IFLA_MAX_PACING_OFFLOAD_HORIZON == 66 && uapi::IFLA_NETNS_IMMUTABLE == 67);
const _: () = assert!(IFLA_NETKIT_HEADROOM == 8 && IFLA_NETKIT_TAILROOM == 9);
// Mainline's number; the 6.12 series keeps it (10 is reserved there).
const _: () = assert!(IFLA_NETKIT_SYNC == 11);

/// A 6-byte Ethernet address; serialized as `02:00:00:00:00:01`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl serde::Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A hardware address of any length as iproute2's JSON prints it:
/// colon-separated hex bytes.
/// A link-layer address as the kernel reports it (`IFLA_ADDRESS`): six
/// bytes for Ethernet-like devices, none or all-zero for L3 ones, other
/// lengths elsewhere (IPoIB's 20). Shown and serialized as colon-separated
/// hex, as iproute2 shows it; [`HwAddr::mac`] gives the [`Mac`] that
/// changes take.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct HwAddr(pub Vec<u8>);

impl HwAddr {
    /// The address as a [`Mac`], if it is six bytes long.
    pub fn mac(&self) -> Option<Mac> {
        <[u8; 6]>::try_from(self.0.as_slice()).ok().map(Mac)
    }

    /// Whether every byte is zero (an L3 device's).
    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|b| *b == 0)
    }
}

impl std::ops::Deref for HwAddr {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Display for HwAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl serde::Serialize for HwAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `IFF_*` names in iproute2's order (`print_link_flags()`); RUNNING is
/// left out as iproute2 does, LOWER_UP says it.
const IFF_NAMES: [(u32, &str); 17] = [
    (libc::IFF_LOOPBACK as u32, "LOOPBACK"),
    (libc::IFF_BROADCAST as u32, "BROADCAST"),
    (libc::IFF_POINTOPOINT as u32, "POINTOPOINT"),
    (libc::IFF_MULTICAST as u32, "MULTICAST"),
    (libc::IFF_NOARP as u32, "NOARP"),
    (libc::IFF_ALLMULTI as u32, "ALLMULTI"),
    (libc::IFF_PROMISC as u32, "PROMISC"),
    (libc::IFF_MASTER as u32, "MASTER"),
    (libc::IFF_SLAVE as u32, "SLAVE"),
    (libc::IFF_DEBUG as u32, "DEBUG"),
    (libc::IFF_DYNAMIC as u32, "DYNAMIC"),
    (libc::IFF_AUTOMEDIA as u32, "AUTOMEDIA"),
    (libc::IFF_PORTSEL as u32, "PORTSEL"),
    (libc::IFF_NOTRAILERS as u32, "NOTRAILERS"),
    (libc::IFF_UP as u32, "UP"),
    (libc::IFF_LOWER_UP as u32, "LOWER_UP"),
    (libc::IFF_DORMANT as u32, "DORMANT"),
];

/// The names of `flags`' bits, iproute2's way; bits without a name as
/// `0x..`.
pub fn iff_names(flags: u32) -> Vec<String> {
    let mut v: Vec<String> = IFF_NAMES
        .iter()
        .filter(|(b, _)| flags & b != 0)
        .map(|(_, n)| (*n).to_string())
        .collect();
    let known = IFF_NAMES
        .iter()
        .fold(libc::IFF_RUNNING as u32, |a, (b, _)| a | b);
    if flags & !known != 0 {
        v.push(format!("{:#x}", flags & !known));
    }
    v
}

fn serialize_iff<S: serde::Serializer>(flags: &u32, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(iff_names(*flags))
}

impl std::str::FromStr for Mac {
    type Err = Error;
    fn from_str(s: &str) -> Result<Mac> {
        let bad = |why: &str| Error::Invalid {
            what: "MAC address",
            why: format!("{s:?}: {why}"),
        };
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 {
            return Err(bad(
                "expected six colon-separated hex bytes, e.g. 02:00:00:00:00:01",
            ));
        }
        let mut m = [0u8; 6];
        for (i, p) in parts.iter().enumerate() {
            if p.len() != 2 {
                return Err(bad("each byte must be two hex digits"));
            }
            m[i] = u8::from_str_radix(p, 16).map_err(|_| bad("not hexadecimal"))?;
        }
        Ok(Mac(m))
    }
}

impl std::fmt::Display for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl Mac {
    /// A unicast, non-zero address is the only kind a device may take.
    pub fn check_unicast(&self) -> Result<()> {
        if self.0 == [0; 6] {
            return Err(Error::Invalid {
                what: "MAC address",
                why: format!("{self} is all zeros"),
            });
        }
        if self.0[0] & 1 != 0 {
            return Err(Error::Invalid {
                what: "MAC address",
                why: format!("{self} is a multicast address"),
            });
        }
        Ok(())
    }
}

/// Checks an interface name the way the kernel's `dev_valid_name()` does.
pub fn check_ifname(name: &str) -> Result<()> {
    let bad = |why: String| Error::Invalid {
        what: "interface name",
        why,
    };
    if name.is_empty() {
        return Err(bad("empty".into()));
    }
    if name.len() > IFNAME_MAX {
        return Err(bad(format!(
            "{name:?} is {} bytes; the limit is {IFNAME_MAX}",
            name.len()
        )));
    }
    if name == "."
        || name == ".."
        || name.contains(['/', ':'])
        || name.chars().any(char::is_whitespace)
    {
        return Err(bad(format!(
            "{name:?} contains '/', ':' or whitespace, or is . or .."
        )));
    }
    Ok(())
}

/// Checks an MTU against the Ethernet range.
pub fn check_mtu(mtu: u32) -> Result<()> {
    if !MTU_RANGE.contains(&mtu) {
        return Err(Error::Invalid {
            what: "MTU",
            why: format!(
                "{mtu} is outside {}..={}",
                MTU_RANGE.start(),
                MTU_RANGE.end()
            ),
        });
    }
    Ok(())
}

/// Where to put a device: a netns by fd or by a process's pid.
#[derive(Clone, Copy, Debug)]
pub enum NetnsRef<'a> {
    /// `IFLA_NET_NS_FD`
    Fd(BorrowedFd<'a>),
    /// `IFLA_NET_NS_PID`
    Pid(u32),
}

fn put_netns(m: &mut MsgBuilder, ns: NetnsRef<'_>) {
    match ns {
        NetnsRef::Fd(fd) => m.u32(uapi::IFLA_NET_NS_FD as u16, fd.as_raw_fd() as u32),
        NetnsRef::Pid(pid) => m.u32(uapi::IFLA_NET_NS_PID as u16, pid),
    };
}

/// The peer of a pair, described as a full link message.
#[derive(Clone, Debug, Default)]
pub struct PeerSpec<'a> {
    /// Name (kernel picks one if unset).
    pub name: Option<String>,
    /// MAC address (netkit: L2 only).
    pub mac: Option<Mac>,
    /// The netns to create the peer in.
    pub netns: Option<NetnsRef<'a>>,
    /// MTU.
    pub mtu: Option<u32>,
    /// `IFLA_NUM_RX_QUEUES`: how many rx queues it can have (netkit: the
    /// room for queues leased from a physical device, 7.3).
    pub num_rx_queues: Option<u32>,
}

/// `IFLA_NETKIT_PAIRING` (7.3; 6.12 reserves the number) and its
/// `NETKIT_DEVICE_SINGLE`: one device without a peer.
pub const IFLA_NETKIT_PAIRING: u16 = uapi::IFLA_NETKIT_PAIRING as u16;
/// `NETKIT_DEVICE_SINGLE` of `enum netkit_pairing` (mainline's
/// if_link.h; `NETKIT_DEVICE_PAIR` is 0).
pub const NETKIT_DEVICE_SINGLE: u32 = 1;
const _: () = assert!(IFLA_NETKIT_PAIRING == 10);
/// `NETKIT_NUM_RX_QUEUES_MAX` of drivers/net/netkit.c (7.3): more is a
/// bare EOPNOTSUPP.
pub const NETKIT_NUM_RX_QUEUES_MAX: u32 = 1024;

/// A netkit pair to create.
#[derive(Clone, Debug)]
pub struct NetkitSpec<'a> {
    /// Primary device name.
    pub name: String,
    /// L2 or L3.
    pub mode: NetkitMode,
    /// Primary's default verdict.
    pub policy: Option<NetkitPolicy>,
    /// Peer's default verdict.
    pub peer_policy: Option<NetkitPolicy>,
    /// Primary's scrub mode.
    pub scrub: Option<NetkitScrub>,
    /// Peer's scrub mode.
    pub peer_scrub: Option<NetkitScrub>,
    /// `IFLA_NETKIT_HEADROOM` (needs a kernel with the attribute).
    pub headroom: Option<u16>,
    /// `IFLA_NETKIT_TAILROOM` (needs a kernel with the attribute).
    pub tailroom: Option<u16>,
    /// [`IFLA_NETKIT_SYNC`] (needs a kernel with the attribute).
    pub sync: Option<NetkitSync>,
    /// Primary's MAC (L2 only).
    pub mac: Option<Mac>,
    /// Primary's MTU.
    pub mtu: Option<u32>,
    /// Primary's `IFLA_NUM_RX_QUEUES`.
    pub num_rx_queues: Option<u32>,
    /// Single mode (`IFLA_NETKIT_PAIRING` = `NETKIT_DEVICE_SINGLE`, 7.3):
    /// one device and no peer; `peer` must be empty.
    pub single: bool,
    /// The peer.
    pub peer: PeerSpec<'a>,
}

impl<'a> NetkitSpec<'a> {
    /// A pair with kernel defaults for everything but the names and mode.
    pub fn new(name: &str, peer: &str, mode: NetkitMode) -> Self {
        NetkitSpec {
            name: name.into(),
            mode,
            policy: None,
            peer_policy: None,
            scrub: None,
            peer_scrub: None,
            headroom: None,
            tailroom: None,
            sync: None,
            mac: None,
            mtu: None,
            num_rx_queues: None,
            single: false,
            peer: PeerSpec {
                name: Some(peer.into()),
                ..Default::default()
            },
        }
    }

    /// A single-mode device (7.3): no peer.
    ///
    /// ```
    /// use nk_netlink::{NetkitMode, NetkitSpec};
    /// let mut spec = NetkitSpec::single("nks0", NetkitMode::L3);
    /// spec.num_rx_queues = Some(4);
    /// spec.validate().unwrap();
    /// ```
    pub fn single(name: &str, mode: NetkitMode) -> Self {
        NetkitSpec {
            single: true,
            peer: PeerSpec::default(),
            ..NetkitSpec::new(name, "", mode)
        }
    }

    /// Checks the spec before anything is sent.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the bad field.
    pub fn validate(&self) -> Result<()> {
        check_ifname(&self.name)?;
        if self.single {
            let p = &self.peer;
            let peer_set = p.name.is_some()
                || p.mac.is_some()
                || p.netns.is_some()
                || p.mtu.is_some()
                || p.num_rx_queues.is_some()
                || self.peer_policy.is_some()
                || self.peer_scrub.is_some();
            if peer_set {
                return Err(Error::Invalid {
                    what: "netkit single mode",
                    why: "a single device has no peer: give no peer settings".into(),
                });
            }
            // The kernel refuses these for a single device, some with a
            // bare EOPNOTSUPP: name them here.
            let refused = [
                (self.sync.is_some(), "sync (there is no peer to own)"),
                (self.scrub.is_some(), "scrub"),
                (
                    self.policy.is_some_and(|p| p != NetkitPolicy::Pass),
                    "a policy other than forward",
                ),
            ];
            if let Some((_, what)) = refused.iter().find(|(set, _)| *set) {
                return Err(Error::Invalid {
                    what: "netkit single mode",
                    why: format!("a single device takes no {what}"),
                });
            }
        }
        for q in [self.num_rx_queues, self.peer.num_rx_queues]
            .into_iter()
            .flatten()
        {
            if q == 0 || q > NETKIT_NUM_RX_QUEUES_MAX {
                return Err(Error::Invalid {
                    what: "rx queue count",
                    why: format!(
                        "{q}: a netkit device has 1 to {NETKIT_NUM_RX_QUEUES_MAX} rx queues"
                    ),
                });
            }
        }
        if let Some(p) = &self.peer.name {
            check_ifname(p)?;
        }
        for m in [self.mac, self.peer.mac].into_iter().flatten() {
            if self.mode == NetkitMode::L3 {
                return Err(Error::Invalid {
                    what: "MAC address",
                    why: format!("{m}: netkit in l3 mode has no L2 address (use --mode l2)"),
                });
            }
            m.check_unicast()?;
        }
        for m in [self.mtu, self.peer.mtu].into_iter().flatten() {
            check_mtu(m)?;
        }
        Ok(())
    }

    /// The `RTM_NEWLINK` request.
    ///
    /// ```
    /// use nk_netlink::{NetkitMode, NetkitSpec};
    /// let spec = NetkitSpec::new("nk0", "nk1", NetkitMode::L2);
    /// spec.validate().unwrap();
    /// // The RTM_NEWLINK request, as the kernel will see it (sequence 1).
    /// let bytes = spec.message().finish(1);
    /// assert_eq!(u16::from_ne_bytes([bytes[4], bytes[5]]), 16); // RTM_NEWLINK
    /// ```
    pub fn message(&self) -> MsgBuilder {
        let mut m = MsgBuilder::new(
            uapi::RTM_NEWLINK as u16,
            (uapi::NLM_F_REQUEST | uapi::NLM_F_ACK | uapi::NLM_F_CREATE | uapi::NLM_F_EXCL) as u16,
        );
        m.push(&uapi::ifinfomsg::default());
        m.str(uapi::IFLA_IFNAME as u16, &self.name);
        if let Some(mac) = self.mac {
            m.attr(uapi::IFLA_ADDRESS as u16, &mac.0);
        }
        if let Some(mtu) = self.mtu {
            m.u32(uapi::IFLA_MTU as u16, mtu);
        }
        if let Some(q) = self.num_rx_queues {
            m.u32(uapi::IFLA_NUM_RX_QUEUES as u16, q);
        }
        m.begin_nest(uapi::IFLA_LINKINFO as u16);
        m.str(uapi::IFLA_INFO_KIND as u16, "netkit");
        m.begin_nest(uapi::IFLA_INFO_DATA as u16);
        if self.single {
            m.u32(IFLA_NETKIT_PAIRING, NETKIT_DEVICE_SINGLE);
        } else {
            m.begin_nest(uapi::IFLA_NETKIT_PEER_INFO as u16);
            m.push(&uapi::ifinfomsg::default());
            if let Some(n) = &self.peer.name {
                m.str(uapi::IFLA_IFNAME as u16, n);
            }
            if let Some(mac) = self.peer.mac {
                m.attr(uapi::IFLA_ADDRESS as u16, &mac.0);
            }
            if let Some(mtu) = self.peer.mtu {
                m.u32(uapi::IFLA_MTU as u16, mtu);
            }
            if let Some(q) = self.peer.num_rx_queues {
                m.u32(uapi::IFLA_NUM_RX_QUEUES as u16, q);
            }
            if let Some(ns) = self.peer.netns {
                put_netns(&mut m, ns);
            }
            m.end_nest();
        }
        m.u32(uapi::IFLA_NETKIT_MODE as u16, self.mode.to_raw());
        if let Some(p) = self.policy {
            m.u32(uapi::IFLA_NETKIT_POLICY as u16, p.to_raw());
        }
        if let Some(p) = self.peer_policy {
            m.u32(uapi::IFLA_NETKIT_PEER_POLICY as u16, p.to_raw());
        }
        if let Some(s) = self.scrub {
            m.u32(uapi::IFLA_NETKIT_SCRUB as u16, s.to_raw());
        }
        if let Some(s) = self.peer_scrub {
            m.u32(uapi::IFLA_NETKIT_PEER_SCRUB as u16, s.to_raw());
        }
        if let Some(h) = self.headroom {
            m.u16(IFLA_NETKIT_HEADROOM, h);
        }
        if let Some(t) = self.tailroom {
            m.u16(IFLA_NETKIT_TAILROOM, t);
        }
        if let Some(s) = self.sync {
            m.u32(IFLA_NETKIT_SYNC, s.0);
        }
        m.end_nest().end_nest();
        m
    }
}

/// netkit's attributes as dumped by the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct NetkitInfo {
    /// This device is the primary.
    pub primary: bool,
    /// Mode (None if the kernel sent a number we do not know; see `unknown`).
    pub mode: Option<NetkitMode>,
    /// Primary's default verdict.
    pub policy: Option<NetkitPolicy>,
    /// Peer's default verdict.
    pub peer_policy: Option<NetkitPolicy>,
    /// Primary's scrub.
    pub scrub: Option<NetkitScrub>,
    /// Peer's scrub.
    pub peer_scrub: Option<NetkitScrub>,
    /// `IFLA_NETKIT_HEADROOM`, if dumped.
    pub headroom: Option<u16>,
    /// `IFLA_NETKIT_TAILROOM`, if dumped.
    pub tailroom: Option<u16>,
    /// [`IFLA_NETKIT_SYNC`], if dumped (kernels with the mainline series).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync: Option<NetkitSync>,
    /// `IFLA_NETKIT_PAIRING`, if dumped (7.3): true for a single device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub single: Option<bool>,
    /// Numbers that did not convert: (attribute, value).
    pub unknown: Vec<(u16, u32)>,
}

/// Interface statistics (`IFLA_STATS64`), the fields the tests use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// rx_packets
    pub rx_packets: u64,
    /// tx_packets
    pub tx_packets: u64,
    /// rx_bytes
    pub rx_bytes: u64,
    /// tx_bytes
    pub tx_bytes: u64,
    /// rx_dropped
    pub rx_dropped: u64,
    /// tx_dropped
    pub tx_dropped: u64,
}

/// A decoded `RTM_NEWLINK`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinkInfo {
    /// ifindex.
    pub index: u32,
    /// Name.
    pub name: String,
    /// `IFF_*` flags (serialized by name, as iproute2's JSON has them).
    #[serde(serialize_with = "serialize_iff")]
    pub flags: u32,
    /// MTU.
    pub mtu: Option<u32>,
    /// `min_mtu` / `max_mtu`.
    pub min_mtu: Option<u32>,
    /// See `min_mtu`.
    pub max_mtu: Option<u32>,
    /// L2 address (empty or all-zero for L3 devices).
    pub address: Option<HwAddr>,
    /// `IFLA_INFO_KIND`.
    pub kind: Option<String>,
    /// netkit's own attributes.
    pub netkit: Option<NetkitInfo>,
    /// `IFLA_LINK`: the peer's ifindex for pairs.
    pub link: Option<u32>,
    /// `IFLA_LINK_NETNSID`.
    pub link_netnsid: Option<i32>,
    /// Generic `IFLA_HEADROOM` (patched kernels).
    pub headroom: Option<u16>,
    /// Generic `IFLA_TAILROOM` (patched kernels).
    pub tailroom: Option<u16>,
    /// `IFLA_GSO_MAX_SIZE`.
    pub gso_max_size: Option<u32>,
    /// `IFLA_GSO_IPV4_MAX_SIZE`.
    pub gso_ipv4_max_size: Option<u32>,
    /// `IFLA_TSO_MAX_SIZE`.
    pub tso_max_size: Option<u32>,
    /// `IFLA_GRO_MAX_SIZE`.
    pub gro_max_size: Option<u32>,
    /// `IFLA_GRO_IPV4_MAX_SIZE`.
    pub gro_ipv4_max_size: Option<u32>,
    /// `IFLA_STATS64`.
    pub stats: Option<Stats>,
}

impl LinkInfo {
    /// `IFF_UP` is set.
    pub fn is_up(&self) -> bool {
        self.flags & libc::IFF_UP as u32 != 0
    }

    /// Decodes an `RTM_NEWLINK` payload (ifinfomsg + attributes).
    ///
    /// # Errors
    /// [`Error::Malformed`] when the fixed header is short.
    pub fn decode(p: &[u8]) -> Result<LinkInfo> {
        let ifi: uapi::ifinfomsg = wire::read_pod(p).ok_or_else(|| Error::Malformed {
            request: "RTM_NEWLINK".into(),
            why: "short ifinfomsg".into(),
        })?;
        let mut l = LinkInfo {
            index: ifi.ifi_index as u32,
            flags: ifi.ifi_flags,
            ..Default::default()
        };
        let hdr = wire::align(std::mem::size_of::<uapi::ifinfomsg>());
        for (t, v) in Attrs::new(p.get(hdr..).unwrap_or_default()) {
            match t as u32 {
                uapi::IFLA_IFNAME => l.name = get_str(v).unwrap_or_default(),
                uapi::IFLA_MTU => l.mtu = get_u32(v),
                uapi::IFLA_MIN_MTU => l.min_mtu = get_u32(v),
                uapi::IFLA_MAX_MTU => l.max_mtu = get_u32(v),
                uapi::IFLA_ADDRESS => l.address = Some(HwAddr(v.to_vec())),
                uapi::IFLA_LINK => l.link = get_u32(v),
                uapi::IFLA_LINK_NETNSID => l.link_netnsid = get_u32(v).map(|x| x as i32),
                uapi::IFLA_GSO_MAX_SIZE => l.gso_max_size = get_u32(v),
                uapi::IFLA_GSO_IPV4_MAX_SIZE => l.gso_ipv4_max_size = get_u32(v),
                uapi::IFLA_TSO_MAX_SIZE => l.tso_max_size = get_u32(v),
                uapi::IFLA_GRO_MAX_SIZE => l.gro_max_size = get_u32(v),
                uapi::IFLA_GRO_IPV4_MAX_SIZE => l.gro_ipv4_max_size = get_u32(v),
                uapi::IFLA_STATS64 => l.stats = decode_stats(v),
                uapi::IFLA_LINKINFO => decode_linkinfo(v, &mut l),
                x if x == IFLA_HEADROOM as u32 => l.headroom = get_u16(v),
                x if x == IFLA_TAILROOM as u32 => l.tailroom = get_u16(v),
                _ => {}
            }
        }
        Ok(l)
    }
}

fn decode_stats(v: &[u8]) -> Option<Stats> {
    let s: uapi::rtnl_link_stats64 = wire::read_pod(v)?;
    Some(Stats {
        rx_packets: s.rx_packets,
        tx_packets: s.tx_packets,
        rx_bytes: s.rx_bytes,
        tx_bytes: s.tx_bytes,
        rx_dropped: s.rx_dropped,
        tx_dropped: s.tx_dropped,
    })
}

fn decode_linkinfo(v: &[u8], l: &mut LinkInfo) {
    let mut data = None;
    for (t, p) in Attrs::new(v) {
        match t as u32 {
            uapi::IFLA_INFO_KIND => l.kind = get_str(p),
            uapi::IFLA_INFO_DATA => data = Some(p),
            _ => {}
        }
    }
    if l.kind.as_deref() == Some("netkit") {
        l.netkit = Some(decode_netkit(data.unwrap_or_default()));
    }
}

/// Decodes netkit's `IFLA_INFO_DATA`.
pub fn decode_netkit(data: &[u8]) -> NetkitInfo {
    let mut n = NetkitInfo::default();
    for (t, p) in Attrs::new(data) {
        let val = get_u32(p);
        match (t as u32, val) {
            (uapi::IFLA_NETKIT_PRIMARY, _) => n.primary = get_u8(p) == Some(1),
            (uapi::IFLA_NETKIT_MODE, Some(v)) => match NetkitMode::try_from(v) {
                Ok(m) => n.mode = Some(m),
                Err(v) => n.unknown.push((t, v)),
            },
            (uapi::IFLA_NETKIT_POLICY, Some(v)) => match NetkitPolicy::try_from(v) {
                Ok(m) => n.policy = Some(m),
                Err(v) => n.unknown.push((t, v)),
            },
            (uapi::IFLA_NETKIT_PEER_POLICY, Some(v)) => match NetkitPolicy::try_from(v) {
                Ok(m) => n.peer_policy = Some(m),
                Err(v) => n.unknown.push((t, v)),
            },
            (uapi::IFLA_NETKIT_SCRUB, Some(v)) => match NetkitScrub::try_from(v) {
                Ok(m) => n.scrub = Some(m),
                Err(v) => n.unknown.push((t, v)),
            },
            (uapi::IFLA_NETKIT_PEER_SCRUB, Some(v)) => match NetkitScrub::try_from(v) {
                Ok(m) => n.peer_scrub = Some(m),
                Err(v) => n.unknown.push((t, v)),
            },
            (x, _) if x == IFLA_NETKIT_HEADROOM as u32 => n.headroom = get_u16(p),
            (x, _) if x == IFLA_NETKIT_TAILROOM as u32 => n.tailroom = get_u16(p),
            (x, Some(v)) if x == IFLA_NETKIT_SYNC as u32 => n.sync = Some(NetkitSync(v)),
            (x, Some(v)) if x == IFLA_NETKIT_PAIRING as u32 => {
                n.single = Some(v == NETKIT_DEVICE_SINGLE)
            }
            _ => {}
        }
    }
    n
}

/// Changes to apply with `RTM_NEWLINK` on an existing device.
#[derive(Clone, Debug, Default)]
pub struct LinkChange<'a> {
    /// New MTU.
    pub mtu: Option<u32>,
    /// New MAC.
    pub mac: Option<Mac>,
    /// Bring up (true) or down (false).
    pub up: Option<bool>,
    /// `IFLA_GSO_MAX_SIZE`.
    pub gso_max_size: Option<u32>,
    /// `IFLA_GSO_IPV4_MAX_SIZE`.
    pub gso_ipv4_max_size: Option<u32>,
    /// `IFLA_GRO_MAX_SIZE`: BIG TCP sets it with the GSO limits.
    pub gro_max_size: Option<u32>,
    /// `IFLA_GRO_IPV4_MAX_SIZE`.
    pub gro_ipv4_max_size: Option<u32>,
    /// `IFLA_NETKIT_HEADROOM` through changelink (netkit primary only,
    /// needs the nkdev series: upstream fixes it at creation).
    pub netkit_headroom: Option<u16>,
    /// `IFLA_NETKIT_TAILROOM`, as `netkit_headroom`.
    pub netkit_tailroom: Option<u16>,
    /// Move to this netns.
    pub netns: Option<NetnsRef<'a>>,
    /// New name.
    pub name: Option<String>,
}

impl LinkChange<'_> {
    /// Checks the change before anything is sent.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the bad field.
    pub fn validate(&self) -> Result<()> {
        if let Some(m) = self.mtu {
            check_mtu(m)?;
        }
        if let Some(m) = self.mac {
            m.check_unicast()?;
        }
        if let Some(n) = &self.name {
            check_ifname(n)?;
        }
        Ok(())
    }

    /// The request for device `index`.
    pub fn message(&self, index: u32) -> MsgBuilder {
        let mut m = MsgBuilder::new(
            uapi::RTM_NEWLINK as u16,
            (uapi::NLM_F_REQUEST | uapi::NLM_F_ACK) as u16,
        );
        let mut ifi = uapi::ifinfomsg {
            ifi_index: index as i32,
            ..Default::default()
        };
        if let Some(up) = self.up {
            ifi.ifi_change = libc::IFF_UP as u32;
            ifi.ifi_flags = if up { libc::IFF_UP as u32 } else { 0 };
        }
        m.push(&ifi);
        if let Some(n) = &self.name {
            m.str(uapi::IFLA_IFNAME as u16, n);
        }
        if let Some(mtu) = self.mtu {
            m.u32(uapi::IFLA_MTU as u16, mtu);
        }
        if let Some(mac) = self.mac {
            m.attr(uapi::IFLA_ADDRESS as u16, &mac.0);
        }
        if let Some(g) = self.gso_max_size {
            m.u32(uapi::IFLA_GSO_MAX_SIZE as u16, g);
        }
        if let Some(g) = self.gso_ipv4_max_size {
            m.u32(uapi::IFLA_GSO_IPV4_MAX_SIZE as u16, g);
        }
        if let Some(g) = self.gro_max_size {
            m.u32(uapi::IFLA_GRO_MAX_SIZE as u16, g);
        }
        if let Some(g) = self.gro_ipv4_max_size {
            m.u32(uapi::IFLA_GRO_IPV4_MAX_SIZE as u16, g);
        }
        if self.netkit_headroom.is_some() || self.netkit_tailroom.is_some() {
            m.begin_nest(uapi::IFLA_LINKINFO as u16);
            m.str(uapi::IFLA_INFO_KIND as u16, "netkit");
            m.begin_nest(uapi::IFLA_INFO_DATA as u16);
            if let Some(h) = self.netkit_headroom {
                m.u16(IFLA_NETKIT_HEADROOM, h);
            }
            if let Some(t) = self.netkit_tailroom {
                m.u16(IFLA_NETKIT_TAILROOM, t);
            }
            m.end_nest().end_nest();
        }
        if let Some(ns) = self.netns {
            put_netns(&mut m, ns);
        }
        m
    }
}

impl RtSocket {
    /// Creates a netkit pair.
    ///
    /// ```no_run
    /// # fn main() -> nk_netlink::Result<()> {
    /// use std::os::fd::AsFd;
    /// use nk_netlink::{NetkitMode, NetkitSpec, NetnsFd, NetnsRef, RtSocket};
    /// let pod = NetnsFd::create_named("pod0")?;
    /// let mut spec = NetkitSpec::new("lxc0", "eth0", NetkitMode::L3);
    /// spec.peer.netns = Some(NetnsRef::Fd(pod.as_fd()));
    /// RtSocket::open()?.netkit_add(&spec)?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::Invalid`] before sending; the kernel's errno and extack after.
    pub fn netkit_add(&mut self, spec: &NetkitSpec<'_>) -> Result<()> {
        spec.validate()?;
        self.request(
            &spec.message(),
            &format!("RTM_NEWLINK netkit {}", spec.name),
        )
        .map(drop)
    }

    /// Creates a veth pair, the peer optionally in another netns.
    ///
    /// ```no_run
    /// # fn main() -> nk_netlink::Result<()> {
    /// nk_netlink::RtSocket::open()?.veth_add("veth0", "veth1", None)?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`RtSocket::netkit_add`].
    pub fn veth_add(
        &mut self,
        name: &str,
        peer: &str,
        peer_netns: Option<NetnsRef<'_>>,
    ) -> Result<()> {
        check_ifname(name)?;
        check_ifname(peer)?;
        let mut m = MsgBuilder::new(
            uapi::RTM_NEWLINK as u16,
            (uapi::NLM_F_REQUEST | uapi::NLM_F_ACK | uapi::NLM_F_CREATE | uapi::NLM_F_EXCL) as u16,
        );
        m.push(&uapi::ifinfomsg::default())
            .str(uapi::IFLA_IFNAME as u16, name);
        m.begin_nest(uapi::IFLA_LINKINFO as u16)
            .str(uapi::IFLA_INFO_KIND as u16, "veth");
        m.begin_nest(uapi::IFLA_INFO_DATA as u16)
            .begin_nest(uapi::VETH_INFO_PEER as u16);
        m.push(&uapi::ifinfomsg::default())
            .str(uapi::IFLA_IFNAME as u16, peer);
        if let Some(ns) = peer_netns {
            put_netns(&mut m, ns);
        }
        m.end_nest().end_nest().end_nest();
        self.request(&m, &format!("RTM_NEWLINK veth {name}"))
            .map(drop)
    }

    /// Looks a device up by name.
    ///
    /// ```no_run
    /// # fn main() -> nk_netlink::Result<()> {
    /// let l = nk_netlink::RtSocket::open()?.link_get("lo")?;
    /// assert!(l.is_up());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// ENODEV when there is none, with the kernel's message.
    pub fn link_get(&mut self, name: &str) -> Result<LinkInfo> {
        check_ifname(name)?;
        let mut m = MsgBuilder::new(
            uapi::RTM_GETLINK as u16,
            (uapi::NLM_F_REQUEST | uapi::NLM_F_ACK) as u16,
        );
        m.push(&uapi::ifinfomsg::default())
            .str(uapi::IFLA_IFNAME as u16, name);
        let req = format!("RTM_GETLINK {name}");
        let r = self.request(&m, &req)?;
        let p = r.first().ok_or_else(|| Error::Malformed {
            request: req.clone(),
            why: "no reply".into(),
        })?;
        LinkInfo::decode(p)
    }

    /// Looks a device up by ifindex.
    ///
    /// ```no_run
    /// # fn main() -> nk_netlink::Result<()> {
    /// let lo = nk_netlink::RtSocket::open()?.link_get_index(1)?;
    /// assert_eq!(lo.name, "lo");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// ENODEV when there is none.
    pub fn link_get_index(&mut self, index: u32) -> Result<LinkInfo> {
        let mut m = MsgBuilder::new(
            uapi::RTM_GETLINK as u16,
            (uapi::NLM_F_REQUEST | uapi::NLM_F_ACK) as u16,
        );
        m.push(&uapi::ifinfomsg {
            ifi_index: index as i32,
            ..Default::default()
        });
        let req = format!("RTM_GETLINK ifindex {index}");
        let r = self.request(&m, &req)?;
        let p = r.first().ok_or_else(|| Error::Malformed {
            request: req.clone(),
            why: "no reply".into(),
        })?;
        LinkInfo::decode(p)
    }

    /// Every device in this socket's netns.
    ///
    /// ```no_run
    /// # fn main() -> nk_netlink::Result<()> {
    /// let names: Vec<String> = nk_netlink::RtSocket::open()?
    ///     .link_dump()?
    ///     .into_iter()
    ///     .map(|l| l.name)
    ///     .collect();
    /// # let _ = names;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// The kernel's errno.
    pub fn link_dump(&mut self) -> Result<Vec<LinkInfo>> {
        let mut m = MsgBuilder::new(
            uapi::RTM_GETLINK as u16,
            (uapi::NLM_F_REQUEST | uapi::NLM_F_DUMP) as u16,
        );
        m.push(&uapi::ifinfomsg::default());
        self.dump(&m, "RTM_GETLINK dump")?
            .iter()
            .map(|p| LinkInfo::decode(p))
            .collect()
    }

    /// Applies `change` to device `index`.
    ///
    /// ```no_run
    /// # fn main() -> nk_netlink::Result<()> {
    /// use nk_netlink::{LinkChange, RtSocket};
    /// let mut rt = RtSocket::open()?;
    /// let i = rt.link_get("lxc0")?.index;
    /// // BIG TCP: GSO and GRO limits together.
    /// rt.link_set(i, &LinkChange {
    ///     gso_max_size: Some(196_608),
    ///     gro_max_size: Some(196_608),
    ///     up: Some(true),
    ///     ..Default::default()
    /// })?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::Invalid`] before sending; the kernel's errno and extack after.
    pub fn link_set(&mut self, index: u32, change: &LinkChange<'_>) -> Result<()> {
        change.validate()?;
        self.request(
            &change.message(index),
            &format!("RTM_NEWLINK ifindex {index}"),
        )
        .map(drop)
    }

    /// Deletes device `index` (and, for pairs, its peer).
    ///
    /// ```no_run
    /// # fn main() -> nk_netlink::Result<()> {
    /// let mut rt = nk_netlink::RtSocket::open()?;
    /// let i = rt.link_get("lxc0")?.index;
    /// rt.link_del(i)?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// The kernel's errno and extack.
    pub fn link_del(&mut self, index: u32) -> Result<()> {
        let mut m = MsgBuilder::new(
            uapi::RTM_DELLINK as u16,
            (uapi::NLM_F_REQUEST | uapi::NLM_F_ACK) as u16,
        );
        m.push(&uapi::ifinfomsg {
            ifi_index: index as i32,
            ..Default::default()
        });
        self.request(&m, &format!("RTM_DELLINK ifindex {index}"))
            .map(drop)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn json_spells_values_as_iproute2_does() {
        let l = LinkInfo {
            index: 5,
            name: "nk0".into(),
            flags: (libc::IFF_UP | libc::IFF_BROADCAST | libc::IFF_RUNNING | libc::IFF_LOWER_UP)
                as u32
                | 1 << 30,
            address: Some(HwAddr(vec![2, 0, 0, 0, 0, 0xab])),
            netkit: Some(NetkitInfo {
                primary: true,
                mode: Some(crate::NetkitMode::L3),
                policy: Some(crate::NetkitPolicy::Pass),
                peer_policy: Some(crate::NetkitPolicy::Drop),
                scrub: Some(crate::NetkitScrub::Default),
                ..Default::default()
            }),
            ..Default::default()
        };
        let v = serde_json::to_value(&l).unwrap();
        assert_eq!(
            v["flags"],
            serde_json::json!(["BROADCAST", "UP", "LOWER_UP", "0x40000000"])
        );
        assert_eq!(v["address"], "02:00:00:00:00:ab");
        assert_eq!(v["netkit"]["mode"], "l3");
        assert_eq!(v["netkit"]["policy"], "forward");
        assert_eq!(v["netkit"]["peer_policy"], "blackhole");
        assert_eq!(v["netkit"]["scrub"], "default");
        assert_eq!(
            serde_json::to_value(Mac([2, 0, 0, 0, 0, 1])).unwrap(),
            "02:00:00:00:00:01"
        );
    }

    use super::*;

    /// The (type, payload) of the attributes inside IFLA_INFO_DATA.
    fn info_data(m: &MsgBuilder) -> Vec<(u16, Vec<u8>)> {
        let b = m.finish(1);
        let attrs = &b[wire::NLMSG_HDRLEN + std::mem::size_of::<uapi::ifinfomsg>()..];
        let linkinfo = Attrs::new(attrs)
            .find(|(t, _)| u32::from(*t) == uapi::IFLA_LINKINFO)
            .unwrap()
            .1;
        let data = Attrs::new(linkinfo)
            .find(|(t, _)| u32::from(*t) == uapi::IFLA_INFO_DATA)
            .unwrap()
            .1;
        Attrs::new(data).map(|(t, v)| (t, v.to_vec())).collect()
    }

    #[test]
    fn a_single_device_has_no_peer_info() {
        let mut s = NetkitSpec::single("nks0", NetkitMode::L2);
        s.num_rx_queues = Some(3);
        s.validate().unwrap();
        let data = info_data(&s.message());
        assert!(data.contains(&(IFLA_NETKIT_PAIRING, 1u32.to_ne_bytes().to_vec())));
        assert!(
            !data
                .iter()
                .any(|(t, _)| u32::from(*t) == uapi::IFLA_NETKIT_PEER_INFO),
            "single mode must not send IFLA_NETKIT_PEER_INFO: {data:?}"
        );
        // A pair sends the peer and no pairing attribute (the kernel's
        // default, NETKIT_DEVICE_PAIR, works on 6.12 too).
        let p = info_data(&NetkitSpec::new("nk0", "nk1", NetkitMode::L2).message());
        assert!(p.iter().all(|(t, _)| *t != IFLA_NETKIT_PAIRING));
        assert!(p
            .iter()
            .any(|(t, _)| u32::from(*t) == uapi::IFLA_NETKIT_PEER_INFO));
    }

    #[test]
    fn single_mode_refuses_peer_settings_and_zero_queues() {
        let mut s = NetkitSpec::single("nks0", NetkitMode::L3);
        s.peer_policy = Some(crate::NetkitPolicy::Drop);
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("a single device has no peer"), "{e}");
        let mut s = NetkitSpec::single("nks0", NetkitMode::L3);
        s.num_rx_queues = Some(0);
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("a netkit device has 1 to 1024 rx queues"), "{e}");
        let mut s = NetkitSpec::single("nks0", NetkitMode::L3);
        s.sync = Some(NetkitSync(NetkitSync::MTU));
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("takes no sync"), "{e}");
    }

    #[test]
    fn invalid_input_is_rejected_before_sending() {
        let mut s = NetkitSpec::new("nk0", "nk1", NetkitMode::L3);
        s.peer.mac = Some("02:00:00:00:00:01".parse().unwrap());
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("l3 mode has no L2 address"));
        let s = NetkitSpec::new("a-very-long-name0", "nk1", NetkitMode::L2);
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("limit is 15"));
        let mut s = NetkitSpec::new("nk0", "nk1", NetkitMode::L2);
        s.mtu = Some(40);
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("40 is outside 68..=65535"));
        assert!("01:00:5e:00:00:01"
            .parse::<Mac>()
            .unwrap()
            .check_unicast()
            .is_err());
        assert!("00:00:00:00:00:00"
            .parse::<Mac>()
            .unwrap()
            .check_unicast()
            .is_err());
        assert!("zz:00:00:00:00:00".parse::<Mac>().is_err());
        assert!("02:00:00:00:01".parse::<Mac>().is_err());
    }

    #[test]
    fn netkit_request_decodes_back() {
        let mut s = NetkitSpec::new("nk0", "nk1", NetkitMode::L2);
        s.policy = Some(NetkitPolicy::Drop);
        s.peer_policy = Some(NetkitPolicy::Pass);
        s.scrub = Some(NetkitScrub::None);
        s.peer_scrub = Some(NetkitScrub::Default);
        s.headroom = Some(128);
        s.tailroom = Some(32);
        s.sync = Some(NetkitSync(NetkitSync::MTU | NetkitSync::GSO));
        let bytes = s.message().finish(1);
        // The request's IFLA_LINKINFO decodes with the dump decoder, except
        // for IFLA_NETKIT_PRIMARY, which only the kernel reports.
        let l = LinkInfo::decode(&bytes[wire::NLMSG_HDRLEN..]).unwrap();
        assert_eq!(l.name, "nk0");
        let n = l.netkit.unwrap();
        assert_eq!(n.mode, Some(NetkitMode::L2));
        assert_eq!(n.policy, Some(NetkitPolicy::Drop));
        assert_eq!(n.peer_policy, Some(NetkitPolicy::Pass));
        assert_eq!(n.scrub, Some(NetkitScrub::None));
        assert_eq!(n.peer_scrub, Some(NetkitScrub::Default));
        assert_eq!((n.headroom, n.tailroom), (Some(128), Some(32)));
        assert_eq!(n.sync, Some(NetkitSync(3)));
    }

    #[test]
    fn netkit_sync_spelling() {
        let s: NetkitSync = "mtu,gso".parse().unwrap();
        assert_eq!(s, NetkitSync(3));
        assert_eq!(s.to_string(), "mtu,gso");
        assert_eq!("gso".parse::<NetkitSync>().unwrap(), NetkitSync(2));
        assert_eq!("none".parse::<NetkitSync>().unwrap().to_string(), "none");
        let e = "mtu,room".parse::<NetkitSync>().unwrap_err().to_string();
        assert!(e.contains("\"room\": expected mtu, gso"), "{e}");
        assert_eq!(
            serde_json::to_string(&NetkitSync(1 | 8)).unwrap(),
            r#"["mtu","0x8"]"#
        );
    }

    #[test]
    fn netkit_room_change_wire_bytes() {
        let c = LinkChange {
            netkit_headroom: Some(160),
            netkit_tailroom: Some(0),
            ..Default::default()
        };
        let bytes = c.message(7).finish(1);
        // After the 16-byte nlmsghdr and the 16-byte ifinfomsg (index 7):
        // IFLA_LINKINFO(18) { IFLA_INFO_KIND(1) "netkit\0",
        // IFLA_INFO_DATA(2) { IFLA_NETKIT_HEADROOM(8) u16 160,
        // IFLA_NETKIT_TAILROOM(9) u16 0 } }, little endian. nla_len
        // excludes the padding to 4 bytes; nests carry NLA_F_NESTED (0x8000).
        #[rustfmt::skip]
        let attrs: &[u8] = &[
            36, 0, 18, 0x80,
                11, 0, 1, 0, b'n', b'e', b't', b'k', b'i', b't', 0, 0,
                20, 0, 2, 0x80,
                    6, 0, 8, 0, 160, 0, 0, 0,
                    6, 0, 9, 0, 0, 0, 0, 0,
        ];
        assert_eq!(&bytes[32..], attrs);
        assert_eq!(i32::from_ne_bytes(bytes[20..24].try_into().unwrap()), 7);
        let l = LinkInfo::decode(&bytes[wire::NLMSG_HDRLEN..]).unwrap();
        let n = l.netkit.unwrap();
        assert_eq!((n.headroom, n.tailroom), (Some(160), Some(0)));
    }

    #[test]
    fn gro_limits_wire_bytes_and_decode() {
        let c = LinkChange {
            gso_max_size: Some(524_280),
            gro_max_size: Some(524_280),
            gro_ipv4_max_size: Some(196_608),
            ..Default::default()
        };
        let bytes = c.message(3).finish(1);
        // IFLA_GSO_MAX_SIZE(41), IFLA_GRO_MAX_SIZE(58),
        // IFLA_GRO_IPV4_MAX_SIZE(64), each a u32, little endian.
        #[rustfmt::skip]
        let attrs: &[u8] = &[
            8, 0, 41, 0, 0xf8, 0xff, 0x07, 0,
            8, 0, 58, 0, 0xf8, 0xff, 0x07, 0,
            8, 0, 64, 0, 0, 0, 0x03, 0,
        ];
        assert_eq!(&bytes[32..], attrs);
        let l = LinkInfo::decode(&bytes[wire::NLMSG_HDRLEN..]).unwrap();
        assert_eq!(
            (l.gso_max_size, l.gro_max_size, l.gro_ipv4_max_size),
            (Some(524_280), Some(524_280), Some(196_608))
        );
    }
}
