//! Generic netlink: a family's id from the controller (`nlctrl`), and
//! requests to a family, with the same acks, extack and dump handling as
//! rtnetlink ([`RtSocket`]).
//!
//! A generic netlink message is a `struct genlmsghdr` (command, version),
//! then the family's own fixed header, if it has one (OVS's
//! `struct ovs_header`), then attributes.

use nk_sys::uapi;

use crate::error::{Error, Result};
use crate::socket::RtSocket;
use crate::wire::{self, read_pod, Attrs, MsgBuilder, Pod};

crate::pod!(uapi::genlmsghdr {
    cmd,
    version,
    reserved
});

const GENL_HDRLEN: usize = std::mem::size_of::<uapi::genlmsghdr>();

/// A generic netlink family, as the controller describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Family {
    /// Its name, e.g. `ovs_datapath`.
    pub name: String,
    /// The id its messages are sent with (the `nlmsg_type`).
    pub id: u16,
    /// The version it speaks.
    pub version: u32,
    /// The size of its fixed header after `struct genlmsghdr`.
    pub hdrsize: u32,
    /// Its multicast groups: name and id.
    pub groups: Vec<(String, u32)>,
    /// The commands it implements (`CTRL_ATTR_OPS`).
    pub ops: Vec<u32>,
}

/// One message from a family: its command, its fixed header and its
/// attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenlMsg {
    /// `genlmsghdr.cmd`.
    pub cmd: u8,
    /// The family's fixed header (`hdrsize` bytes).
    pub header: Vec<u8>,
    /// The attributes after it.
    pub attrs: Vec<u8>,
}

impl GenlMsg {
    /// The attributes, parsed.
    pub fn attrs(&self) -> Attrs<'_> {
        Attrs::new(&self.attrs)
    }

    /// The fixed header as `T`, when it is exactly that size.
    pub fn header<T: Pod>(&self) -> Option<T> {
        (self.header.len() == std::mem::size_of::<T>())
            .then(|| read_pod(&self.header))
            .flatten()
    }
}

/// A `NETLINK_GENERIC` socket.
#[derive(Debug)]
pub struct GenlSocket {
    sock: RtSocket,
}

impl GenlSocket {
    /// Opens a generic netlink socket in the caller's current netns.
    ///
    /// ```no_run
    /// # fn main() -> nk_netlink::Result<()> {
    /// let mut genl = nk_netlink::genl::GenlSocket::open()?;
    /// let f = genl.family("ovs_datapath")?;
    /// println!("{} is family {} version {}", f.name, f.id, f.version);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// `socket`, `setsockopt` or `bind` failures.
    pub fn open() -> Result<Self> {
        Ok(GenlSocket {
            sock: RtSocket::open_protocol(
                libc::NETLINK_GENERIC,
                "opening the generic netlink socket",
            )?,
        })
    }

    /// Looks a family up by name (`CTRL_CMD_GETFAMILY`).
    ///
    /// # Errors
    /// ENOENT when the kernel has no such family (its code is not built
    /// in, or its module is not loaded): the error says so.
    pub fn family(&mut self, name: &str) -> Result<Family> {
        let request = format!("CTRL_CMD_GETFAMILY {name}");
        let mut m = msg(
            uapi::GENL_ID_CTRL as u16,
            uapi::CTRL_CMD_GETFAMILY as u8,
            1,
            uapi::NLM_F_ACK as u16,
        );
        m.str(uapi::CTRL_ATTR_FAMILY_NAME as u16, name);
        let replies = match self.sock.request(&m, &request) {
            Err(Error::Kernel { source, extack, .. })
                if source.raw_os_error() == Some(libc::ENOENT) =>
            {
                return Err(Error::Kernel {
                    request: format!(
                        "{request}: the kernel has no generic netlink family {name:?} \
                         (not built in, or its module is not loaded)"
                    ),
                    source,
                    extack,
                })
            }
            r => r?,
        };
        let reply = replies.first().ok_or_else(|| Error::Malformed {
            request: request.clone(),
            why: "no reply before the ack".into(),
        })?;
        parse_family(reply, &request)
    }

    /// Sends `cmd` to `family` with `header` (the family's fixed header,
    /// `hdrsize` bytes) and the attributes `attrs` adds, and waits for the
    /// ack. Replies that came before it (`NLM_F_ECHO`, or a family that
    /// answers a request with its object) are returned.
    ///
    /// # Errors
    /// A header of the wrong size (nothing is sent), or the kernel's errno
    /// and extack, named by `what`.
    pub fn request(
        &mut self,
        family: &Family,
        cmd: u8,
        header: &[u8],
        flags: u16,
        attrs: impl FnOnce(&mut MsgBuilder),
        what: &str,
    ) -> Result<Vec<GenlMsg>> {
        let m = self.build(family, cmd, header, flags | uapi::NLM_F_ACK as u16, attrs)?;
        let r = self.sock.request(&m, what)?;
        r.iter().map(|p| split(p, family, what)).collect()
    }

    /// Dumps `cmd` of `family` (`NLM_F_DUMP`).
    ///
    /// # Errors
    /// As [`GenlSocket::request`].
    pub fn dump(
        &mut self,
        family: &Family,
        cmd: u8,
        header: &[u8],
        attrs: impl FnOnce(&mut MsgBuilder),
        what: &str,
    ) -> Result<Vec<GenlMsg>> {
        let m = self.build(family, cmd, header, uapi::NLM_F_DUMP as u16, attrs)?;
        let r = self.sock.dump(&m, what)?;
        r.iter().map(|p| split(p, family, what)).collect()
    }

    fn build(
        &self,
        family: &Family,
        cmd: u8,
        header: &[u8],
        flags: u16,
        attrs: impl FnOnce(&mut MsgBuilder),
    ) -> Result<MsgBuilder> {
        if header.len() != family.hdrsize as usize {
            return Err(Error::Invalid {
                what: "generic netlink header",
                why: format!(
                    "family {} takes a {}-byte header, not {} bytes",
                    family.name,
                    family.hdrsize,
                    header.len()
                ),
            });
        }
        let version = u8::try_from(family.version).map_err(|_| Error::Invalid {
            what: "generic netlink version",
            why: format!("family {} has version {}", family.name, family.version),
        })?;
        let mut m = msg(family.id, cmd, version, flags);
        m.bytes(header);
        attrs(&mut m);
        Ok(m)
    }
}

/// A request to family `id`: `struct genlmsghdr`, nothing else yet.
fn msg(id: u16, cmd: u8, version: u8, flags: u16) -> MsgBuilder {
    let mut m = MsgBuilder::new(id, uapi::NLM_F_REQUEST as u16 | flags);
    m.push(&uapi::genlmsghdr {
        cmd,
        version,
        reserved: 0,
    });
    m
}

/// Splits a reply's payload into command, fixed header and attributes.
fn split(p: &[u8], family: &Family, what: &str) -> Result<GenlMsg> {
    let h: uapi::genlmsghdr = read_pod(p).ok_or_else(|| Error::Malformed {
        request: what.into(),
        why: "a reply shorter than struct genlmsghdr".into(),
    })?;
    let hdr_end = GENL_HDRLEN + wire::align(family.hdrsize as usize);
    let header = p
        .get(GENL_HDRLEN..GENL_HDRLEN + family.hdrsize as usize)
        .ok_or_else(|| Error::Malformed {
            request: what.into(),
            why: format!("a reply shorter than {}'s header", family.name),
        })?;
    Ok(GenlMsg {
        cmd: h.cmd,
        header: header.to_vec(),
        attrs: p.get(hdr_end..).unwrap_or_default().to_vec(),
    })
}

fn parse_family(p: &[u8], request: &str) -> Result<Family> {
    let bad = |why: &str| Error::Malformed {
        request: request.into(),
        why: why.into(),
    };
    let attrs = p.get(GENL_HDRLEN..).ok_or_else(|| bad("short reply"))?;
    let mut f = Family {
        name: String::new(),
        id: 0,
        version: 0,
        hdrsize: 0,
        groups: Vec::new(),
        ops: Vec::new(),
    };
    let mut have_id = false;
    for (t, v) in Attrs::new(attrs) {
        match u32::from(t) {
            uapi::CTRL_ATTR_FAMILY_NAME => f.name = wire::get_str(v).unwrap_or_default(),
            uapi::CTRL_ATTR_FAMILY_ID => {
                f.id = wire::get_u16(v).ok_or_else(|| bad("CTRL_ATTR_FAMILY_ID"))?;
                have_id = true;
            }
            uapi::CTRL_ATTR_VERSION => f.version = wire::get_u32(v).unwrap_or(0),
            uapi::CTRL_ATTR_HDRSIZE => f.hdrsize = wire::get_u32(v).unwrap_or(0),
            uapi::CTRL_ATTR_OPS => {
                for (_, op) in Attrs::new(v) {
                    if let Some(id) = Attrs::new(op)
                        .find(|(t, _)| u32::from(*t) == uapi::CTRL_ATTR_OP_ID)
                        .and_then(|(_, v)| wire::get_u32(v))
                    {
                        f.ops.push(id);
                    }
                }
            }
            uapi::CTRL_ATTR_MCAST_GROUPS => {
                for (_, g) in Attrs::new(v) {
                    let mut name = None;
                    let mut id = None;
                    for (gt, gv) in Attrs::new(g) {
                        match u32::from(gt) {
                            uapi::CTRL_ATTR_MCAST_GRP_NAME => name = wire::get_str(gv),
                            uapi::CTRL_ATTR_MCAST_GRP_ID => id = wire::get_u32(gv),
                            _ => {}
                        }
                    }
                    if let (Some(n), Some(i)) = (name, id) {
                        f.groups.push((n, i));
                    }
                }
            }
            _ => {}
        }
    }
    if !have_id {
        return Err(bad("no CTRL_ATTR_FAMILY_ID"));
    }
    Ok(f)
}

/// A fake kernel for generic netlink unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::cell::RefCell;
    use std::os::fd::{IntoRawFd, OwnedFd};
    use std::rc::Rc;

    use nk_sys::{uapi, Syscall};

    use crate::wire::{self, bytes_of};

    /// Appends one netlink message of `ty` with `payload` to `out`.
    pub fn nlmsg(out: &mut Vec<u8>, ty: u16, flags: u16, seq: u32, payload: &[u8]) {
        let h = uapi::nlmsghdr {
            nlmsg_len: (wire::NLMSG_HDRLEN + payload.len()) as u32,
            nlmsg_type: ty,
            nlmsg_flags: flags,
            nlmsg_seq: seq,
            nlmsg_pid: 0,
        };
        out.extend_from_slice(bytes_of(&h));
        out.extend_from_slice(payload);
        out.resize(wire::align(out.len()), 0);
    }

    pub fn attr(out: &mut Vec<u8>, ty: u16, v: &[u8]) {
        out.extend_from_slice(&((4 + v.len()) as u16).to_ne_bytes());
        out.extend_from_slice(&ty.to_ne_bytes());
        out.extend_from_slice(v);
        out.resize(wire::align(out.len()), 0);
    }

    pub fn ack(out: &mut Vec<u8>, seq: u32, errno: i32) {
        let mut p = errno.to_ne_bytes().to_vec();
        p.extend_from_slice(&[0; wire::NLMSG_HDRLEN]);
        nlmsg(
            out,
            uapi::NLMSG_ERROR as u16,
            uapi::NLM_F_CAPPED as u16,
            seq,
            &p,
        );
    }

    /// A fake kernel: `reply(sent, seq)` gives what the next recv() reads;
    /// the requests sent are kept.
    pub fn fake(
        reply: impl Fn(&[u8], u32) -> Vec<u8> + 'static,
    ) -> (nk_sys::fake::Guard, Rc<RefCell<Vec<Vec<u8>>>>) {
        let sent = Rc::new(RefCell::new(Vec::<Vec<u8>>::new()));
        let s2 = sent.clone();
        let g = nk_sys::fake::install(move |c| match c {
            Syscall::Socket { proto, .. } => {
                assert_eq!(*proto, libc::NETLINK_GENERIC);
                let f = std::fs::File::open("/dev/null")?;
                Ok(i64::from(OwnedFd::from(f).into_raw_fd()))
            }
            Syscall::SetSockOpt { .. } | Syscall::BindNetlink { .. } => Ok(0),
            Syscall::Send { buf, .. } => {
                s2.borrow_mut().push(buf.to_vec());
                Ok(buf.len() as i64)
            }
            Syscall::Recv { buf, .. } => {
                let last = s2.borrow().last().cloned().unwrap();
                let seq = u32::from_ne_bytes(last[8..12].try_into().unwrap());
                let r = reply(&last, seq);
                buf[..r.len()].copy_from_slice(&r);
                Ok(r.len() as i64)
            }
            other => panic!("unexpected {other:?}"),
        });
        (g, sent)
    }

    /// The payload of a controller reply describing family `name` with
    /// `id`, `version` and `hdrsize`; more attributes may be appended.
    pub fn family_payload(name: &str, id: u16, version: u32, hdrsize: u32) -> Vec<u8> {
        let mut p = bytes_of(&uapi::genlmsghdr {
            cmd: uapi::CTRL_CMD_NEWFAMILY as u8,
            version: 2,
            reserved: 0,
        })
        .to_vec();
        let name = format!("{name}\0");
        attr(&mut p, uapi::CTRL_ATTR_FAMILY_NAME as u16, name.as_bytes());
        attr(&mut p, uapi::CTRL_ATTR_FAMILY_ID as u16, &id.to_ne_bytes());
        attr(
            &mut p,
            uapi::CTRL_ATTR_VERSION as u16,
            &version.to_ne_bytes(),
        );
        attr(
            &mut p,
            uapi::CTRL_ATTR_HDRSIZE as u16,
            &hdrsize.to_ne_bytes(),
        );
        p
    }

    /// `payload` as the controller's reply to request `seq`, then the ack.
    pub fn ctrl_reply(seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        nlmsg(&mut out, uapi::GENL_ID_CTRL as u16, 0, seq, payload);
        ack(&mut out, seq, 0);
        out
    }

    /// A controller reply describing a family, then the ack.
    pub fn family(seq: u32, name: &str, id: u16, version: u32, hdrsize: u32) -> Vec<u8> {
        ctrl_reply(seq, &family_payload(name, id, version, hdrsize))
    }

    /// Bytes as hex, 16 a line, for snapshots.
    pub fn hex(b: &[u8]) -> String {
        b.chunks(16)
            .map(|c| {
                c.iter()
                    .map(|x| format!("{x:02x}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{ack, attr, ctrl_reply, fake, family_payload, hex, nlmsg};
    use super::*;

    fn family_reply(seq: u32) -> Vec<u8> {
        let mut p = family_payload("ovs_datapath", 29, 2, 4);
        let mut grp = Vec::new();
        attr(
            &mut grp,
            uapi::CTRL_ATTR_MCAST_GRP_NAME as u16,
            b"ovs_datapath\0",
        );
        attr(
            &mut grp,
            uapi::CTRL_ATTR_MCAST_GRP_ID as u16,
            &7u32.to_ne_bytes(),
        );
        let mut op = Vec::new();
        attr(&mut op, uapi::CTRL_ATTR_OP_ID as u16, &1u32.to_ne_bytes());
        attr(
            &mut op,
            uapi::CTRL_ATTR_OP_FLAGS as u16,
            &0u32.to_ne_bytes(),
        );
        let mut ops = Vec::new();
        attr(&mut ops, 1 | wire::NLA_F_NESTED, &op);
        attr(
            &mut p,
            uapi::CTRL_ATTR_OPS as u16 | wire::NLA_F_NESTED,
            &ops,
        );
        let mut grps = Vec::new();
        attr(&mut grps, 1 | wire::NLA_F_NESTED, &grp);
        attr(
            &mut p,
            uapi::CTRL_ATTR_MCAST_GROUPS as u16 | wire::NLA_F_NESTED,
            &grps,
        );
        ctrl_reply(seq, &p)
    }

    #[test]
    fn a_family_is_resolved_through_the_controller() {
        let (_g, sent) = fake(|_, seq| family_reply(seq));
        let mut s = GenlSocket::open().unwrap();
        let f = s.family("ovs_datapath").unwrap();
        assert_eq!(
            f,
            Family {
                name: "ovs_datapath".into(),
                id: 29,
                version: 2,
                hdrsize: 4,
                groups: vec![("ovs_datapath".into(), 7)],
                ops: vec![1],
            }
        );
        let req = &sent.borrow()[0];
        insta::assert_snapshot!("genl_getfamily", hex(req));
    }

    #[test]
    fn a_missing_family_says_so() {
        let (_g, _) = fake(|_, seq| {
            let mut out = Vec::new();
            ack(&mut out, seq, -libc::ENOENT);
            out
        });
        let mut s = GenlSocket::open().unwrap();
        let e = s.family("ovs_vport").unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENOENT));
        assert!(
            e.to_string()
                .contains("the kernel has no generic netlink family \"ovs_vport\""),
            "{e}"
        );
    }

    #[test]
    fn a_request_carries_the_family_header_and_returns_replies() {
        let (_g, sent) = fake(|req, seq| {
            // Answer with the request's own header and attributes.
            let mut out = Vec::new();
            nlmsg(&mut out, 29, 0, seq, &req[wire::NLMSG_HDRLEN..]);
            ack(&mut out, seq, 0);
            out
        });
        let mut s = GenlSocket::open().unwrap();
        let f = Family {
            name: "ovs_datapath".into(),
            id: 29,
            version: 2,
            hdrsize: 4,
            groups: vec![],
            ops: vec![],
        };
        let r = s
            .request(
                &f,
                3,
                &7i32.to_ne_bytes(),
                0,
                |m| {
                    m.str(1, "dp0");
                },
                "OVS_DP_CMD_GET dp0",
            )
            .unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].cmd, 3);
        assert_eq!(
            r[0].header::<uapi::ovs_header>().map(|h| h.dp_ifindex),
            Some(7)
        );
        assert_eq!(
            r[0].attrs()
                .find(|(t, _)| *t == 1)
                .and_then(|(_, v)| wire::get_str(v)),
            Some("dp0".into())
        );
        let req = sent.borrow()[0].clone();
        let flags = u16::from_ne_bytes(req[6..8].try_into().unwrap());
        assert_eq!(
            u32::from(flags),
            uapi::NLM_F_REQUEST | uapi::NLM_F_ACK,
            "a request waits for its ack"
        );
        assert_eq!(req[wire::NLMSG_HDRLEN + 1], 2, "the family's version");
    }

    #[test]
    fn a_header_of_the_wrong_size_is_refused_before_sending() {
        let (_g, sent) = fake(|_, seq| {
            let mut out = Vec::new();
            ack(&mut out, seq, 0);
            out
        });
        let mut s = GenlSocket::open().unwrap();
        let f = Family {
            name: "ovs_vport".into(),
            id: 30,
            version: 1,
            hdrsize: 4,
            groups: vec![],
            ops: vec![],
        };
        let e = s.request(&f, 1, &[], 0, |_| {}, "x").unwrap_err();
        assert!(
            e.to_string()
                .contains("family ovs_vport takes a 4-byte header, not 0 bytes"),
            "{e}"
        );
        assert!(sent.borrow().is_empty(), "nothing may reach the kernel");
    }
}
