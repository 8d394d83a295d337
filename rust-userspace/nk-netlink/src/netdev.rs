//! The `netdev` generic netlink family's queues (7.3): lease a physical
//! device's rx queue to a virtual one (`queue-create`, which netkit
//! implements) and read a queue back (`queue-get`), as
//! `ynl --family netdev --do queue-create` does.
//!
//! The numbers are mainline's (`include/uapi/linux/netdev.h` of 7.3):
//! nk-uapi is generated from the patched 6.12 headers, which have neither
//! `queue-create` nor leases. A kernel without them answers
//! `queue-create` with EOPNOTSUPP, which [`Netdev::supports_queue_create`]
//! tells beforehand.

use crate::error::{Error, Result};
use crate::genl::{Family, GenlSocket};
use crate::wire::{self, Attrs};

/// `NETDEV_FAMILY_NAME`.
pub const FAMILY: &str = "netdev";
/// `NETDEV_CMD_QUEUE_GET`.
pub const CMD_QUEUE_GET: u8 = 10;
/// `NETDEV_CMD_QUEUE_CREATE` (7.3).
pub const CMD_QUEUE_CREATE: u8 = 16;
/// `NETDEV_A_QUEUE_ID`.
pub const A_QUEUE_ID: u16 = 1;
/// `NETDEV_A_QUEUE_IFINDEX`.
pub const A_QUEUE_IFINDEX: u16 = 2;
/// `NETDEV_A_QUEUE_TYPE`.
pub const A_QUEUE_TYPE: u16 = 3;
/// `NETDEV_A_QUEUE_LEASE` (7.3).
pub const A_QUEUE_LEASE: u16 = 8;
/// `NETDEV_A_LEASE_IFINDEX` (7.3).
pub const A_LEASE_IFINDEX: u16 = 1;
/// `NETDEV_A_LEASE_QUEUE` (7.3).
pub const A_LEASE_QUEUE: u16 = 2;
/// `NETDEV_A_LEASE_NETNS_ID` (7.3).
pub const A_LEASE_NETNS_ID: u16 = 3;
/// `NETDEV_QUEUE_TYPE_RX`.
pub const QUEUE_TYPE_RX: u32 = 0;

/// The other end of a leased queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The device at the other end.
    pub ifindex: u32,
    /// Its queue.
    pub queue: u32,
    /// Its netns, as an id in the asking netns, when it is another one.
    pub netns_id: Option<i32>,
}

/// An rx queue, as `queue-get` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxQueue {
    /// Its index.
    pub id: u32,
    /// The virtual device it is leased to. The kernel reports a lease on
    /// the physical device's queue (`NETIF_PHYS_TO_VIRT`).
    pub lease: Option<Lease>,
}

/// A generic netlink socket with the `netdev` family resolved.
#[derive(Debug)]
pub struct Netdev {
    genl: GenlSocket,
    family: Family,
}

fn queue_nest(m: &mut crate::wire::MsgBuilder, ty: u16, id: u32) {
    m.begin_nest(ty);
    m.u32(A_QUEUE_ID, id);
    m.u32(A_QUEUE_TYPE, QUEUE_TYPE_RX);
    m.end_nest();
}

fn parse_lease(p: &[u8]) -> Option<Lease> {
    let mut ifindex = None;
    let mut queue = None;
    let mut netns_id = None;
    for (t, v) in Attrs::new(p) {
        match t {
            A_LEASE_IFINDEX => ifindex = wire::get_u32(v),
            A_LEASE_NETNS_ID => netns_id = wire::get_u32(v).map(|x| x as i32),
            A_LEASE_QUEUE => {
                queue = Attrs::new(v)
                    .find(|(t, _)| *t == A_QUEUE_ID)
                    .and_then(|(_, v)| wire::get_u32(v))
            }
            _ => {}
        }
    }
    Some(Lease {
        ifindex: ifindex?,
        queue: queue?,
        netns_id,
    })
}

impl Netdev {
    /// Opens a generic netlink socket in the current netns and looks up
    /// the `netdev` family.
    ///
    /// ```no_run
    /// # fn main() -> nk_netlink::Result<()> {
    /// let mut nd = nk_netlink::netdev::Netdev::open()?;
    /// // Lease rx queue 1 of ifindex 3 (a NIC) to netkit ifindex 7.
    /// let q = nd.queue_create_lease(7, 3, 1)?;
    /// assert_eq!(nd.rx_queue(3, 1)?.lease.map(|l| (l.ifindex, l.queue)), Some((7, q)));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// The socket fails, or the kernel has no `netdev` family.
    pub fn open() -> Result<Self> {
        let mut genl = GenlSocket::open()?;
        let family = genl.family(FAMILY)?;
        Ok(Netdev { genl, family })
    }

    /// Whether the kernel has `queue-create` (7.3).
    pub fn supports_queue_create(&self) -> bool {
        self.family.ops.contains(&u32::from(CMD_QUEUE_CREATE))
    }

    /// Creates an rx queue on the virtual device `ifindex` that leases
    /// rx queue `lease_queue` of the physical device `lease_ifindex` (in
    /// the same netns); returns the new queue's index. Needs
    /// `CAP_NET_ADMIN`.
    ///
    /// # Errors
    /// The kernel's refusal with its extack: EOPNOTSUPP on a netkit
    /// primary ("netkit can only lease against the peer device"), EINVAL
    /// for a virtual lease device, EBUSY for a queue already leased or in
    /// use by AF_XDP, ERANGE for no such queue.
    pub fn queue_create_lease(
        &mut self,
        ifindex: u32,
        lease_ifindex: u32,
        lease_queue: u32,
    ) -> Result<u32> {
        let what = format!(
            "netdev queue-create on ifindex {ifindex} leasing rx queue {lease_queue} of ifindex {lease_ifindex}"
        );
        if !self.supports_queue_create() {
            return Err(Error::Unsupported {
                what: "netdev queue-create",
                why: "the netdev family has no queue-create (Linux 7.3 has it)".into(),
            });
        }
        let r = self.genl.request(
            &self.family,
            CMD_QUEUE_CREATE,
            &[],
            0,
            |m| {
                m.u32(A_QUEUE_IFINDEX, ifindex);
                m.u32(A_QUEUE_TYPE, QUEUE_TYPE_RX);
                m.begin_nest(A_QUEUE_LEASE);
                m.u32(A_LEASE_IFINDEX, lease_ifindex);
                queue_nest(m, A_LEASE_QUEUE, lease_queue);
                m.end_nest();
            },
            &what,
        )?;
        r.first()
            .and_then(|m| m.attrs().find(|(t, _)| *t == A_QUEUE_ID))
            .and_then(|(_, v)| wire::get_u32(v))
            .ok_or_else(|| Error::Malformed {
                request: what,
                why: "no NETDEV_A_QUEUE_ID in the reply".into(),
            })
    }

    /// Rx queue `id` of `ifindex` (`queue-get`).
    ///
    /// # Errors
    /// The kernel's refusal: ENOENT while the device is down (the kernel
    /// reports the queues of a running device only), EINVAL for no such
    /// queue.
    pub fn rx_queue(&mut self, ifindex: u32, id: u32) -> Result<RxQueue> {
        let what = format!("netdev queue-get rx queue {id} of ifindex {ifindex}");
        let r = self.genl.request(
            &self.family,
            CMD_QUEUE_GET,
            &[],
            0,
            |m| {
                m.u32(A_QUEUE_IFINDEX, ifindex);
                m.u32(A_QUEUE_TYPE, QUEUE_TYPE_RX);
                m.u32(A_QUEUE_ID, id);
            },
            &what,
        )?;
        let m = r.first().ok_or_else(|| Error::Malformed {
            request: what.clone(),
            why: "no queue in the reply".into(),
        })?;
        let mut q = RxQueue {
            id: u32::MAX,
            lease: None,
        };
        for (t, v) in m.attrs() {
            match t {
                A_QUEUE_ID => q.id = wire::get_u32(v).unwrap_or(u32::MAX),
                A_QUEUE_LEASE => {
                    q.lease = Some(parse_lease(v).ok_or_else(|| Error::Malformed {
                        request: what.clone(),
                        why: "a lease without its ifindex or queue".into(),
                    })?)
                }
                _ => {}
            }
        }
        if q.id != id {
            return Err(Error::Malformed {
                request: what,
                why: format!("the reply is for queue {}", q.id),
            });
        }
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::MsgBuilder;

    #[test]
    fn a_lease_nest_is_parsed() {
        let mut m = MsgBuilder::new(0, 0);
        m.u32(A_LEASE_IFINDEX, 7);
        queue_nest(&mut m, A_LEASE_QUEUE, 2);
        m.u32(A_LEASE_NETNS_ID, 1);
        let b = m.finish(1);
        assert_eq!(
            parse_lease(&b[wire::NLMSG_HDRLEN..]),
            Some(Lease {
                ifindex: 7,
                queue: 2,
                netns_id: Some(1)
            })
        );
        // Without its queue it is not a lease.
        let mut m = MsgBuilder::new(0, 0);
        m.u32(A_LEASE_IFINDEX, 7);
        assert_eq!(parse_lease(&m.finish(1)[wire::NLMSG_HDRLEN..]), None);
    }
}
