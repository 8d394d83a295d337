//! Addresses: add, delete and dump (`ip addr`). Routes and neighbours
//! are in `route.rs` and `neigh.rs`.

use std::net::IpAddr;

use nk_sys::uapi;

use crate::error::{Error, Result};
use crate::wire::{self, MsgBuilder};
use crate::RtSocket;

pub(crate) fn family(a: &IpAddr) -> u8 {
    match a {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    }
}

pub(crate) fn octets(a: &IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

pub(crate) fn check_prefix(a: &IpAddr, prefix: u8) -> Result<()> {
    let max = if a.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(Error::Invalid {
            what: "prefix length",
            why: format!("/{prefix} is longer than {max} for {a}"),
        });
    }
    Ok(())
}

/// Parses `ADDR/PREFIX`.
///
/// ```
/// let (ip, prefix) = nk_netlink::addr::parse_cidr("10.0.0.1/24").unwrap();
/// assert_eq!((ip.to_string(), prefix), ("10.0.0.1".into(), 24));
/// assert!(nk_netlink::addr::parse_cidr("10.0.0.1/33").is_err());
/// ```
///
/// # Errors
/// [`Error::Invalid`] naming what is wrong.
pub fn parse_cidr(s: &str) -> Result<(IpAddr, u8)> {
    let (a, p) = s.split_once('/').ok_or_else(|| Error::Invalid {
        what: "address",
        why: format!("{s:?} needs a prefix length, e.g. 10.0.0.1/24"),
    })?;
    let addr: IpAddr = a.parse().map_err(|_| Error::Invalid {
        what: "address",
        why: format!("{a:?}"),
    })?;
    let prefix: u8 = p.parse().map_err(|_| Error::Invalid {
        what: "prefix length",
        why: format!("{p:?}"),
    })?;
    check_prefix(&addr, prefix)?;
    Ok((addr, prefix))
}

impl RtSocket {
    /// Adds `addr/prefix` to device `index`.
    ///
    /// ```no_run
    /// # fn main() -> nk_netlink::Result<()> {
    /// let mut rt = nk_netlink::RtSocket::open()?;
    /// let i = rt.link_get("lxc0")?.index;
    /// rt.addr_add(i, "10.0.0.1".parse().unwrap(), 24)?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// The kernel's errno and extack.
    pub fn addr_add(&mut self, index: u32, addr: IpAddr, prefix: u8) -> Result<()> {
        check_prefix(&addr, prefix)?;
        let mut m = MsgBuilder::new(
            uapi::RTM_NEWADDR as u16,
            (uapi::NLM_F_REQUEST | uapi::NLM_F_ACK | uapi::NLM_F_CREATE | uapi::NLM_F_EXCL) as u16,
        );
        m.push(&uapi::ifaddrmsg {
            ifa_family: family(&addr),
            ifa_prefixlen: prefix,
            ifa_index: index,
            ..Default::default()
        });
        m.attr(uapi::IFA_LOCAL as u16, &octets(&addr));
        m.attr(uapi::IFA_ADDRESS as u16, &octets(&addr));
        self.request(&m, &format!("RTM_NEWADDR {addr}/{prefix} ifindex {index}"))
            .map(drop)
    }

    /// Removes `addr/prefix` from device `index`.
    ///
    /// ```no_run
    /// # fn main() -> nk_netlink::Result<()> {
    /// let mut rt = nk_netlink::RtSocket::open()?;
    /// let i = rt.link_get("lxc0")?.index;
    /// rt.addr_del(i, "10.0.0.1".parse().unwrap(), 24)?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// The kernel's errno and extack (EADDRNOTAVAIL: not there).
    pub fn addr_del(&mut self, index: u32, addr: IpAddr, prefix: u8) -> Result<()> {
        check_prefix(&addr, prefix)?;
        let mut m = MsgBuilder::new(
            uapi::RTM_DELADDR as u16,
            (uapi::NLM_F_REQUEST | uapi::NLM_F_ACK) as u16,
        );
        m.push(&uapi::ifaddrmsg {
            ifa_family: family(&addr),
            ifa_prefixlen: prefix,
            ifa_index: index,
            ..Default::default()
        });
        m.attr(uapi::IFA_LOCAL as u16, &octets(&addr));
        m.attr(uapi::IFA_ADDRESS as u16, &octets(&addr));
        self.request(&m, &format!("RTM_DELADDR {addr}/{prefix} ifindex {index}"))
            .map(drop)
    }

    /// Every address of this netns, or of device `index`.
    ///
    /// ```no_run
    /// # fn main() -> nk_netlink::Result<()> {
    /// for a in nk_netlink::RtSocket::open()?.addr_dump(None)? {
    ///     println!("{} {}/{}", a.index, a.addr, a.prefix);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// The kernel's errno; a malformed answer.
    pub fn addr_dump(&mut self, index: Option<u32>) -> Result<Vec<AddrInfo>> {
        let mut m = MsgBuilder::new(
            uapi::RTM_GETADDR as u16,
            (uapi::NLM_F_REQUEST | uapi::NLM_F_DUMP) as u16,
        );
        // With NETLINK_GET_STRICT_CHK the kernel filters on ifa_index.
        m.push(&uapi::ifaddrmsg {
            ifa_index: index.unwrap_or(0),
            ..Default::default()
        });
        let mut v = Vec::new();
        for p in self.dump(&m, "RTM_GETADDR dump")? {
            let a = AddrInfo::decode(&p)?;
            if index.is_none_or(|i| i == a.index) {
                v.push(a);
            }
        }
        Ok(v)
    }
}

/// An address as `RTM_GETADDR` reports it.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AddrInfo {
    /// The device.
    pub index: u32,
    /// The address (`IFA_LOCAL`, else `IFA_ADDRESS`).
    pub addr: IpAddr,
    /// Its prefix length.
    pub prefix: u8,
    /// `RT_SCOPE_*`.
    pub scope: u8,
    /// The address flags (`IFA_FLAGS`, which holds all 32 bits).
    pub flags: u32,
}

impl AddrInfo {
    /// Decodes an `RTM_NEWADDR` payload.
    ///
    /// # Errors
    /// [`Error::Malformed`] when the header is short or no address came.
    pub fn decode(p: &[u8]) -> Result<AddrInfo> {
        let bad = |why: &str| Error::Malformed {
            request: "RTM_GETADDR".into(),
            why: why.into(),
        };
        let h: uapi::ifaddrmsg = wire::read_pod(p).ok_or_else(|| bad("short ifaddrmsg"))?;
        let (mut local, mut address, mut flags) = (None, None, u32::from(h.ifa_flags));
        let hdr = wire::align(std::mem::size_of::<uapi::ifaddrmsg>());
        for (t, v) in wire::Attrs::new(p.get(hdr..).unwrap_or_default()) {
            match u32::from(t) {
                uapi::IFA_LOCAL => local = ip_of(h.ifa_family, v),
                uapi::IFA_ADDRESS => address = ip_of(h.ifa_family, v),
                uapi::IFA_FLAGS => flags = wire::get_u32(v).unwrap_or(flags),
                _ => {}
            }
        }
        Ok(AddrInfo {
            index: h.ifa_index,
            addr: local
                .or(address)
                .ok_or_else(|| bad("no IFA_LOCAL or IFA_ADDRESS"))?,
            prefix: h.ifa_prefixlen,
            scope: h.ifa_scope,
            flags,
        })
    }
}

/// An address attribute of `family`, if it has that family's length.
pub(crate) fn ip_of(family: u8, v: &[u8]) -> Option<IpAddr> {
    match (i32::from(family), v.len()) {
        (libc::AF_INET, 4) => Some(IpAddr::from(<[u8; 4]>::try_from(v).ok()?)),
        (libc::AF_INET6, 16) => Some(IpAddr::from(<[u8; 16]>::try_from(v).ok()?)),
        _ => None,
    }
}
