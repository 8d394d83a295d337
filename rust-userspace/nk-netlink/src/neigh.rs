//! Neighbours: add, delete and dump (`ip neigh`): the static entries an
//! L2 endpoint gets.

use std::net::IpAddr;

use nk_sys::uapi;

use crate::addr::{family, ip_of, octets};
use crate::error::{Error, Result};
use crate::link::Mac;
use crate::wire::{self, MsgBuilder};
use crate::RtSocket;

impl RtSocket {
    /// Adds a permanent neighbour entry `ip -> mac` on device `index`.
    ///
    /// ```no_run
    /// # fn main() -> nk_netlink::Result<()> {
    /// use nk_netlink::{Mac, RtSocket};
    /// let mut rt = RtSocket::open()?;
    /// let i = rt.link_get("lxc0")?.index;
    /// rt.neigh_add(i, "10.0.1.5".parse().unwrap(), Mac([2, 0, 0, 0, 0, 5]))?;
    /// # Ok(())
    /// # }
    /// ```
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

    /// Deletes the neighbour entry for `ip` on device `index`.
    ///
    /// ```no_run
    /// # fn main() -> nk_netlink::Result<()> {
    /// let mut rt = nk_netlink::RtSocket::open()?;
    /// let i = rt.link_get("lxc0")?.index;
    /// rt.neigh_del(i, "10.0.1.5".parse().unwrap())?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// The kernel's errno and extack (ENOENT: no such entry).
    pub fn neigh_del(&mut self, index: u32, ip: IpAddr) -> Result<()> {
        let mut m = MsgBuilder::new(
            uapi::RTM_DELNEIGH as u16,
            (uapi::NLM_F_REQUEST | uapi::NLM_F_ACK) as u16,
        );
        m.push(&uapi::ndmsg {
            ndm_family: family(&ip),
            ndm_ifindex: index as i32,
            ..Default::default()
        });
        m.attr(uapi::NDA_DST as u16, &octets(&ip));
        self.request(&m, &format!("RTM_DELNEIGH {ip} ifindex {index}"))
            .map(drop)
    }

    /// Every neighbour entry of this netns, or of device `index`.
    ///
    /// ```no_run
    /// # fn main() -> nk_netlink::Result<()> {
    /// for n in nk_netlink::RtSocket::open()?.neigh_dump(None)? {
    ///     println!("{} {:?} state {:#x}", n.ip, n.mac, n.state);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// The kernel's errno; a malformed answer.
    pub fn neigh_dump(&mut self, index: Option<u32>) -> Result<Vec<NeighInfo>> {
        let mut m = MsgBuilder::new(
            uapi::RTM_GETNEIGH as u16,
            (uapi::NLM_F_REQUEST | uapi::NLM_F_DUMP) as u16,
        );
        // Under NETLINK_GET_STRICT_CHK the header must be all zero; the
        // kernel filters on an NDA_IFINDEX attribute.
        m.push(&uapi::ndmsg::default());
        if let Some(i) = index {
            m.u32(uapi::NDA_IFINDEX as u16, i);
        }
        let mut v = Vec::new();
        for p in self.dump(&m, "RTM_GETNEIGH dump")? {
            let n = NeighInfo::decode(&p)?;
            // Entries without an address (proxy, multicast) are not ours.
            if let Some(n) = n.filter(|n| index.is_none_or(|i| i == n.index)) {
                v.push(n);
            }
        }
        Ok(v)
    }
}

/// A neighbour entry as `RTM_GETNEIGH` reports it.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NeighInfo {
    /// The device.
    pub index: u32,
    /// The neighbour's address.
    pub ip: IpAddr,
    /// Its link-layer address, when resolved.
    pub mac: Option<Mac>,
    /// `NUD_*`.
    pub state: u16,
}

impl NeighInfo {
    /// Decodes an `RTM_NEWNEIGH` payload; `None` for an entry with no
    /// address.
    ///
    /// # Errors
    /// [`Error::Malformed`] when the header is short.
    pub fn decode(p: &[u8]) -> Result<Option<NeighInfo>> {
        let h: uapi::ndmsg = wire::read_pod(p).ok_or_else(|| Error::Malformed {
            request: "RTM_GETNEIGH".into(),
            why: "short ndmsg".into(),
        })?;
        let (mut ip, mut mac) = (None, None);
        let hdr = wire::align(std::mem::size_of::<uapi::ndmsg>());
        for (t, v) in wire::Attrs::new(p.get(hdr..).unwrap_or_default()) {
            match u32::from(t) {
                uapi::NDA_DST => ip = ip_of(h.ndm_family, v),
                uapi::NDA_LLADDR => mac = <[u8; 6]>::try_from(v).ok().map(Mac),
                _ => {}
            }
        }
        Ok(ip.map(|ip| NeighInfo {
            index: h.ndm_ifindex as u32,
            ip,
            mac,
            state: h.ndm_state,
        }))
    }
}
