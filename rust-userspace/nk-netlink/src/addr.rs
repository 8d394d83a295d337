//! Addresses, routes and neighbours: what an endpoint needs to carry IP.

use std::net::IpAddr;

use nk_sys::uapi;

use crate::error::{Error, Result};
use crate::link::Mac;
use crate::wire::MsgBuilder;
use crate::RtSocket;

fn family(a: &IpAddr) -> u8 {
    match a {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    }
}

fn octets(a: &IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

fn check_prefix(a: &IpAddr, prefix: u8) -> Result<()> {
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

    /// Adds a route to `dst/prefix` out of device `oif`, optionally via a
    /// gateway (`onlink`, as Cilium's endpoint routes are).
    ///
    /// # Errors
    /// The kernel's errno and extack.
    pub fn route_add(
        &mut self,
        dst: IpAddr,
        prefix: u8,
        oif: u32,
        via: Option<IpAddr>,
    ) -> Result<()> {
        check_prefix(&dst, prefix)?;
        let mut m = MsgBuilder::new(
            uapi::RTM_NEWROUTE as u16,
            (uapi::NLM_F_REQUEST | uapi::NLM_F_ACK | uapi::NLM_F_CREATE | uapi::NLM_F_EXCL) as u16,
        );
        m.push(&uapi::rtmsg {
            rtm_family: family(&dst),
            rtm_dst_len: prefix,
            rtm_table: uapi::RT_TABLE_MAIN as u8,
            rtm_protocol: uapi::RTPROT_STATIC as u8,
            rtm_scope: if via.is_some() {
                uapi::RT_SCOPE_UNIVERSE
            } else {
                uapi::RT_SCOPE_LINK
            } as u8,
            rtm_type: uapi::RTN_UNICAST as u8,
            rtm_flags: if via.is_some() {
                uapi::RTNH_F_ONLINK
            } else {
                0
            },
            ..Default::default()
        });
        m.attr(uapi::RTA_DST as u16, &octets(&dst));
        m.u32(uapi::RTA_OIF as u16, oif);
        if let Some(g) = via {
            m.attr(uapi::RTA_GATEWAY as u16, &octets(&g));
        }
        self.request(&m, &format!("RTM_NEWROUTE {dst}/{prefix} oif {oif}"))
            .map(drop)
    }

    /// Adds a permanent neighbour entry `ip -> mac` on device `index`.
    ///
    /// # Errors
    /// The kernel's errno and extack.
    pub fn neigh_add(&mut self, index: u32, ip: IpAddr, mac: Mac) -> Result<()> {
        let mut m = MsgBuilder::new(
            uapi::RTM_NEWNEIGH as u16,
            (uapi::NLM_F_REQUEST | uapi::NLM_F_ACK | uapi::NLM_F_CREATE | uapi::NLM_F_REPLACE)
                as u16,
        );
        m.push(&uapi::ndmsg {
            ndm_family: family(&ip),
            ndm_ifindex: index as i32,
            ndm_state: uapi::NUD_PERMANENT as u16,
            ..Default::default()
        });
        m.attr(uapi::NDA_DST as u16, &octets(&ip));
        m.attr(uapi::NDA_LLADDR as u16, &mac.0);
        self.request(
            &m,
            &format!("RTM_NEWNEIGH {ip} lladdr {mac} ifindex {index}"),
        )
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr() {
        assert_eq!(
            parse_cidr("10.0.0.1/24").unwrap(),
            ("10.0.0.1".parse().unwrap(), 24)
        );
        assert!(parse_cidr("10.0.0.1")
            .unwrap_err()
            .to_string()
            .contains("needs a prefix length"));
        assert!(parse_cidr("10.0.0.1/33")
            .unwrap_err()
            .to_string()
            .contains("longer than 32"));
        assert!(parse_cidr("fd00::1/128").is_ok());
    }
}
