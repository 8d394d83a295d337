//! Open vSwitch's kernel datapath, through its generic netlink families
//! `ovs_datapath` and `ovs_vport` (as `ovs-dpctl add-dp` and `add-if` do,
//! without ovs-vswitchd): create and delete a datapath, add and remove
//! ports.
//!
//! nkdev uses it to make OVS set a datapath-wide rx headroom on its ports
//! (`ndo_set_rx_headroom`, called under `ovs_mutex` alone) against
//! netkit. Needs `CONFIG_OPENVSWITCH` and `CAP_NET_ADMIN`.

use nk_sys::uapi;

use crate::error::{Error, Result};
use crate::genl::{Family, GenlMsg, GenlSocket};
use crate::wire::{self, bytes_of};

crate::pod!(uapi::ovs_header { dp_ifindex });

/// What kind of port a vport is (`enum ovs_vport_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VportType {
    /// An existing network device, attached as a port.
    Netdev,
    /// A device the datapath creates (`internal`).
    Internal,
}

impl VportType {
    fn raw(self) -> u32 {
        match self {
            VportType::Netdev => uapi::OVS_VPORT_TYPE_NETDEV,
            VportType::Internal => uapi::OVS_VPORT_TYPE_INTERNAL,
        }
    }
}

/// A generic netlink socket with OVS's two families resolved.
#[derive(Debug)]
pub struct Ovs {
    genl: GenlSocket,
    dp: Family,
    vport: Family,
}

fn str_attr(name: &str) -> Result<&str> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(['/', ' ', '\0']) {
        return Err(Error::Invalid {
            what: "OVS name",
            why: format!(
                "{name:?} is not a device name (1 to {} bytes, no '/', space or NUL)",
                libc::IFNAMSIZ - 1
            ),
        });
    }
    Ok(name)
}

impl Ovs {
    /// Opens a generic netlink socket in the current netns and looks up
    /// `ovs_datapath` and `ovs_vport`.
    ///
    /// ```no_run
    /// # fn main() -> nk_netlink::Result<()> {
    /// let mut ovs = nk_netlink::ovs::Ovs::open()?;
    /// let dp = ovs.dp_add("nkdp")?;
    /// ovs.vport_add(dp, "nk0", nk_netlink::ovs::VportType::Netdev)?;
    /// ovs.dp_del("nkdp")?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// The socket fails, or the kernel has no OVS (`CONFIG_OPENVSWITCH`).
    pub fn open() -> Result<Self> {
        let mut genl = GenlSocket::open()?;
        let dp = genl.family(&cstr(uapi::OVS_DATAPATH_FAMILY))?;
        let vport = genl.family(&cstr(uapi::OVS_VPORT_FAMILY))?;
        Ok(Ovs { genl, dp, vport })
    }

    /// One request of `cmd` to the vport or the datapath family, for
    /// datapath `dp` (0: the one the name attribute names) and object
    /// `name`. OVS echoes the object it created or deleted (`NLM_F_ECHO`):
    /// that is returned.
    fn request(
        &mut self,
        vport: bool,
        cmd: u32,
        dp: i32,
        name: &str,
        attrs: impl FnOnce(&mut crate::wire::MsgBuilder),
        what: &str,
    ) -> Result<GenlMsg> {
        let name_attr = if vport {
            uapi::OVS_VPORT_ATTR_NAME
        } else {
            uapi::OVS_DP_ATTR_NAME
        };
        let family = if vport { &self.vport } else { &self.dp };
        let hdr = uapi::ovs_header { dp_ifindex: dp };
        let r = self.genl.request(
            family,
            cmd as u8,
            bytes_of(&hdr),
            uapi::NLM_F_ECHO as u16,
            |m| {
                m.str(name_attr as u16, name);
                attrs(m);
            },
            what,
        )?;
        r.into_iter().next().ok_or_else(|| Error::Malformed {
            request: what.into(),
            why: "nothing echoed before the ack".into(),
        })
    }

    /// Creates datapath `name` (`OVS_DP_CMD_NEW`), which also creates its
    /// internal port of the same name; returns that port's ifindex, the
    /// datapath's `dp_ifindex`, from the echoed reply (so that no second
    /// request can fail between creating it and knowing it). Upcalls go
    /// nowhere (pid 0): packets that miss the (empty) flow table are
    /// dropped.
    ///
    /// # Errors
    /// The kernel's refusal, e.g. EEXIST.
    pub fn dp_add(&mut self, name: &str) -> Result<i32> {
        let name = str_attr(name)?;
        let what = format!("OVS_DP_CMD_NEW {name}");
        let m = self.request(
            false,
            uapi::OVS_DP_CMD_NEW,
            0,
            name,
            |m| {
                m.u32(uapi::OVS_DP_ATTR_UPCALL_PID as u16, 0);
            },
            &what,
        )?;
        m.header::<uapi::ovs_header>()
            .map(|h| h.dp_ifindex)
            .ok_or_else(|| Error::Malformed {
                request: what,
                why: "the echoed datapath has no ovs_header".into(),
            })
    }

    /// Deletes datapath `name` and every port of it (`OVS_DP_CMD_DEL`).
    ///
    /// # Errors
    /// ENODEV when there is none.
    pub fn dp_del(&mut self, name: &str) -> Result<()> {
        let name = str_attr(name)?;
        let what = format!("OVS_DP_CMD_DEL {name}");
        self.request(false, uapi::OVS_DP_CMD_DEL, 0, name, |_| {}, &what)?;
        Ok(())
    }

    /// Adds device `name` to datapath `dp` as a port of type `kind`
    /// (`OVS_VPORT_CMD_NEW`); returns its port number, from the echoed
    /// reply.
    ///
    /// # Errors
    /// The kernel's refusal: ENODEV for no such device, EBUSY for a device
    /// that already has a master.
    pub fn vport_add(&mut self, dp: i32, name: &str, kind: VportType) -> Result<u32> {
        let name = str_attr(name)?;
        let what = format!("OVS_VPORT_CMD_NEW {name} (datapath ifindex {dp})");
        let m = self.request(
            true,
            uapi::OVS_VPORT_CMD_NEW,
            dp,
            name,
            |m| {
                m.u32(uapi::OVS_VPORT_ATTR_TYPE as u16, kind.raw());
                // An array of u32 netlink port ids; 0: no upcalls.
                m.u32(uapi::OVS_VPORT_ATTR_UPCALL_PID as u16, 0);
            },
            &what,
        )?;
        m.attrs()
            .find(|(t, _)| u32::from(*t) == uapi::OVS_VPORT_ATTR_PORT_NO)
            .and_then(|(_, p)| wire::get_u32(p))
            .ok_or_else(|| Error::Malformed {
                request: what,
                why: "the echoed vport has no OVS_VPORT_ATTR_PORT_NO".into(),
            })
    }

    /// Removes the port of device `name` from datapath `dp`
    /// (`OVS_VPORT_CMD_DEL`).
    ///
    /// # Errors
    /// ENODEV when there is no such port.
    pub fn vport_del(&mut self, dp: i32, name: &str) -> Result<()> {
        let name = str_attr(name)?;
        let what = format!("OVS_VPORT_CMD_DEL {name} (datapath ifindex {dp})");
        self.request(true, uapi::OVS_VPORT_CMD_DEL, dp, name, |_| {}, &what)?;
        Ok(())
    }
}

/// A NUL-terminated name from the uapi header.
fn cstr(b: &[u8]) -> String {
    String::from_utf8_lossy(b.strip_suffix(&[0]).unwrap_or(b)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genl::testing::{ack, attr, fake, family, hex, nlmsg};

    /// A fake kernel with OVS's families (ids 30 and 31) that echoes a
    /// NEW request as its object, with dp_ifindex 7 and port number 1.
    fn ovs_kernel() -> (
        nk_sys::fake::Guard,
        std::rc::Rc<std::cell::RefCell<Vec<Vec<u8>>>>,
    ) {
        fake(|req, seq| {
            let ty = u16::from_ne_bytes(req[4..6].try_into().unwrap());
            if u32::from(ty) == uapi::GENL_ID_CTRL {
                let name = if req.windows(9).any(|w| w == b"ovs_vport") {
                    ("ovs_vport", 31, 1)
                } else {
                    ("ovs_datapath", 30, 2)
                };
                return family(seq, name.0, name.1, name.2, 4);
            }
            let mut p = req[wire::NLMSG_HDRLEN..wire::NLMSG_HDRLEN + 4].to_vec();
            p.extend_from_slice(&7i32.to_ne_bytes());
            if ty == 31 {
                attr(
                    &mut p,
                    uapi::OVS_VPORT_ATTR_PORT_NO as u16,
                    &1u32.to_ne_bytes(),
                );
                attr(&mut p, uapi::OVS_VPORT_ATTR_NAME as u16, b"nk0\0");
            }
            let mut out = Vec::new();
            nlmsg(&mut out, ty, 0, seq, &p);
            ack(&mut out, seq, 0);
            out
        })
    }

    #[test]
    fn a_datapath_and_a_port_are_created_with_one_request_each() {
        let (_g, sent) = ovs_kernel();
        let mut ovs = Ovs::open().unwrap();
        assert_eq!(ovs.dp_add("nkdp").unwrap(), 7);
        assert_eq!(ovs.vport_add(7, "nk0", VportType::Netdev).unwrap(), 1);
        let sent = sent.borrow();
        // Two family lookups, then one request each: the echo carries
        // the object, so nothing can fail between creating and knowing it.
        assert_eq!(sent.len(), 4);
        insta::assert_snapshot!(
            "ovs_dp_new_and_vport_new",
            format!("{}\n--\n{}", hex(&sent[2]), hex(&sent[3]))
        );
    }

    #[test]
    fn the_family_names_come_from_the_uapi_header() {
        assert_eq!(cstr(uapi::OVS_DATAPATH_FAMILY), "ovs_datapath");
        assert_eq!(cstr(uapi::OVS_VPORT_FAMILY), "ovs_vport");
        // Upstream's numbers, which every OVS userspace depends on.
        assert_eq!(uapi::OVS_DATAPATH_VERSION, 2);
        assert_eq!(uapi::OVS_VPORT_TYPE_NETDEV, 1);
        assert_eq!(uapi::OVS_VPORT_TYPE_INTERNAL, 2);
    }

    #[test]
    fn a_bad_name_is_refused_before_anything_is_sent() {
        for bad in ["", "a/b", "has space", "sixteen-chars-xx"] {
            let e = str_attr(bad).unwrap_err().to_string();
            assert!(e.contains("is not a device name"), "{bad:?}: {e}");
        }
        assert_eq!(str_attr("nkdp").unwrap(), "nkdp");
    }
}
