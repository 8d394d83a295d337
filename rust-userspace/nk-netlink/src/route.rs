//! Routes: add, delete and dump (`ip route`), as an endpoint's host side
//! needs them.

use std::net::IpAddr;

use nk_sys::uapi;

use crate::addr::{check_prefix, family, ip_of, octets};
use crate::error::{Error, Result};
use crate::wire::{self, MsgBuilder};
use crate::RtSocket;

impl RtSocket {
    /// Adds a route to `dst/prefix` out of device `oif`, optionally via a
    /// gateway (`onlink`, as Cilium's endpoint routes are).
    ///
    /// ```no_run
    /// # fn main() -> nk_netlink::Result<()> {
    /// let mut rt = nk_netlink::RtSocket::open()?;
    /// let i = rt.link_get("lxc0")?.index;
    /// // The Pod's /32, out of its host-side device.
    /// rt.route_add("10.0.1.5".parse().unwrap(), 32, i, None)?;
    /// # Ok(())
    /// # }
    /// ```
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

    /// Deletes the main table's route to `dst/prefix` out of `oif`, as `ip
    /// route del` does (any scope, type and protocol).
    ///
    /// ```no_run
    /// # fn main() -> nk_netlink::Result<()> {
    /// let mut rt = nk_netlink::RtSocket::open()?;
    /// let i = rt.link_get("lxc0")?.index;
    /// rt.route_del("10.0.1.5".parse().unwrap(), 32, i)?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// The kernel's errno and extack (ESRCH: no such route).
    pub fn route_del(&mut self, dst: IpAddr, prefix: u8, oif: u32) -> Result<()> {
        check_prefix(&dst, prefix)?;
        let mut m = MsgBuilder::new(
            uapi::RTM_DELROUTE as u16,
            (uapi::NLM_F_REQUEST | uapi::NLM_F_ACK) as u16,
        );
        m.push(&uapi::rtmsg {
            rtm_family: family(&dst),
            rtm_dst_len: prefix,
            rtm_table: uapi::RT_TABLE_MAIN as u8,
            rtm_scope: uapi::RT_SCOPE_NOWHERE as u8,
            ..Default::default()
        });
        m.attr(uapi::RTA_DST as u16, &octets(&dst));
        m.u32(uapi::RTA_OIF as u16, oif);
        self.request(&m, &format!("RTM_DELROUTE {dst}/{prefix} oif {oif}"))
            .map(drop)
    }

    /// Every route of `family` (`AF_INET`, `AF_INET6`) in every table.
    ///
    /// ```no_run
    /// # fn main() -> nk_netlink::Result<()> {
    /// let main: Vec<_> = nk_netlink::RtSocket::open()?
    ///     .route_dump(libc::AF_INET as u8)?
    ///     .into_iter()
    ///     .filter(|r| r.table == 254)
    ///     .collect();
    /// # let _ = main;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// The kernel's errno; a malformed answer.
    pub fn route_dump(&mut self, family: u8) -> Result<Vec<RouteInfo>> {
        let mut m = MsgBuilder::new(
            uapi::RTM_GETROUTE as u16,
            (uapi::NLM_F_REQUEST | uapi::NLM_F_DUMP) as u16,
        );
        m.push(&uapi::rtmsg {
            rtm_family: family,
            ..Default::default()
        });
        self.dump(&m, "RTM_GETROUTE dump")?
            .iter()
            .map(|p| RouteInfo::decode(p))
            .collect()
    }
}

/// A route as `RTM_GETROUTE` reports it.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RouteInfo {
    /// `AF_INET` or `AF_INET6`.
    pub family: u8,
    /// The destination; `None` for a default route.
    pub dst: Option<IpAddr>,
    /// Its prefix length.
    pub prefix: u8,
    /// `RTA_OIF`.
    pub oif: Option<u32>,
    /// `RTA_GATEWAY`.
    pub gateway: Option<IpAddr>,
    /// The table (`RTA_TABLE`, which holds all 32 bits): 254 is main.
    pub table: u32,
    /// `RTPROT_*`.
    pub protocol: u8,
    /// `RT_SCOPE_*`.
    pub scope: u8,
    /// `RTN_*`.
    pub kind: u8,
}

impl RouteInfo {
    /// Decodes an `RTM_NEWROUTE` payload.
    ///
    /// # Errors
    /// [`Error::Malformed`] when the header is short.
    pub fn decode(p: &[u8]) -> Result<RouteInfo> {
        let h: uapi::rtmsg = wire::read_pod(p).ok_or_else(|| Error::Malformed {
            request: "RTM_GETROUTE".into(),
            why: "short rtmsg".into(),
        })?;
        let mut r = RouteInfo {
            family: h.rtm_family,
            dst: None,
            prefix: h.rtm_dst_len,
            oif: None,
            gateway: None,
            table: u32::from(h.rtm_table),
            protocol: h.rtm_protocol,
            scope: h.rtm_scope,
            kind: h.rtm_type,
        };
        let hdr = wire::align(std::mem::size_of::<uapi::rtmsg>());
        for (t, v) in wire::Attrs::new(p.get(hdr..).unwrap_or_default()) {
            match u32::from(t) {
                uapi::RTA_DST => r.dst = ip_of(h.rtm_family, v),
                uapi::RTA_OIF => r.oif = wire::get_u32(v),
                uapi::RTA_GATEWAY => r.gateway = ip_of(h.rtm_family, v),
                uapi::RTA_TABLE => r.table = wire::get_u32(v).unwrap_or(r.table),
                _ => {}
            }
        }
        Ok(r)
    }
}
