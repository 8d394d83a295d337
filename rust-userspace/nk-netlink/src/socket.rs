//! A NETLINK_ROUTE socket with extended acks and strict checking, and the
//! request/ack/dump loop.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nk_sys::{syscall, uapi, Syscall};

use crate::error::{Error, Result};
use crate::wire::{self, Attrs, MsgBuilder};

const SOL_NETLINK: i32 = 270;

/// An rtnetlink socket. Every request waits for the kernel's answer, so
/// errors are reported on the request that caused them.
#[derive(Debug)]
pub struct RtSocket {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl AsFd for RtSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn sys<'a>(call: &'static str, request: &'a str) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Sys {
        call,
        request: request.to_string(),
        source,
    }
}

impl RtSocket {
    /// Opens a socket in the caller's current netns, with
    /// `NETLINK_EXT_ACK` and `NETLINK_GET_STRICT_CHK` on.
    ///
    /// ```no_run
    /// # fn main() -> nk_netlink::Result<()> {
    /// let mut rt = nk_netlink::RtSocket::open()?;
    /// for l in rt.link_dump()? {
    ///     println!("{}: {}", l.index, l.name);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// `socket`, `setsockopt` or `bind` failures.
    pub fn open() -> Result<Self> {
        Self::open_protocol(libc::NETLINK_ROUTE, "opening the rtnetlink socket")
    }

    /// Opens a netlink socket of another family (`NETLINK_SOCK_DIAG`) with
    /// the same options; `what` names it in errors.
    ///
    /// # Errors
    /// As [`RtSocket::open`].
    pub fn open_protocol(protocol: i32, what: &'static str) -> Result<Self> {
        let fd = nk_sys::socket(libc::AF_NETLINK, libc::SOCK_RAW, protocol)
            .map_err(sys("socket", what))?;
        for opt in [
            uapi::NETLINK_EXT_ACK,
            uapi::NETLINK_GET_STRICT_CHK,
            uapi::NETLINK_CAP_ACK,
        ] {
            syscall(Syscall::SetSockOpt {
                fd: fd.as_fd(),
                level: SOL_NETLINK,
                name: opt as i32,
                val: &1i32.to_ne_bytes(),
            })
            .map_err(sys("setsockopt", what))?;
        }
        syscall(Syscall::SetSockOpt {
            fd: fd.as_fd(),
            level: libc::SOL_SOCKET,
            name: libc::SO_RCVBUF,
            val: &(1i32 << 20).to_ne_bytes(),
        })
        .map_err(sys("setsockopt", what))?;
        syscall(Syscall::BindNetlink {
            fd: fd.as_fd(),
            groups: 0,
        })
        .map_err(sys("bind", what))?;
        Ok(RtSocket {
            fd,
            seq: 1,
            buf: vec![0; 64 * 1024],
        })
    }

    fn send(&mut self, msg: &MsgBuilder, request: &str) -> Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let bytes = msg.try_finish(self.seq)?;
        syscall(Syscall::Send {
            fd: self.fd.as_fd(),
            buf: &bytes,
        })
        .map_err(sys("send", request))?;
        Ok(self.seq)
    }

    /// Sends `msg` (which must carry `NLM_F_ACK`) and waits for the ack.
    /// With `NLM_F_ECHO`, replies before the ack are returned.
    ///
    /// # Errors
    /// The kernel's errno and extack text, named by `request`.
    pub fn request(&mut self, msg: &MsgBuilder, request: &str) -> Result<Vec<Vec<u8>>> {
        let seq = self.send(msg, request)?;
        self.collect(seq, request, false)
    }

    /// Sends a dump request and returns every message's payload.
    ///
    /// # Errors
    /// As [`RtSocket::request`].
    pub fn dump(&mut self, msg: &MsgBuilder, request: &str) -> Result<Vec<Vec<u8>>> {
        let seq = self.send(msg, request)?;
        self.collect(seq, request, true)
    }

    fn collect(&mut self, seq: u32, request: &str, dump: bool) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        loop {
            // MSG_TRUNC: recv() returns the datagram's length even when
            // the buffer was shorter, so a cut reply is seen, not parsed.
            let n = syscall(Syscall::Recv {
                fd: self.fd.as_fd(),
                buf: &mut self.buf,
                flags: libc::MSG_TRUNC,
            })
            .map_err(sys("recv", request))? as usize;
            if n == 0 {
                return Err(Error::Malformed {
                    request: request.into(),
                    why: "empty read".into(),
                });
            }
            if n > self.buf.len() {
                return Err(Error::Malformed {
                    request: request.into(),
                    why: format!(
                        "a {n}-byte reply did not fit the {}-byte buffer (MSG_TRUNC)",
                        self.buf.len()
                    ),
                });
            }
            for (h, payload) in wire::messages(&self.buf[..n]) {
                if h.nlmsg_seq != seq {
                    continue;
                }
                if h.nlmsg_flags as u32 & uapi::NLM_F_DUMP_INTR != 0 {
                    return Err(Error::Interrupted {
                        request: request.into(),
                    });
                }
                match h.nlmsg_type as u32 {
                    uapi::NLMSG_ERROR => {
                        let errno = i32::from_ne_bytes(
                            payload
                                .get(..4)
                                .and_then(|b| b.try_into().ok())
                                .ok_or_else(|| Error::Malformed {
                                    request: request.into(),
                                    why: "short NLMSG_ERROR".into(),
                                })?,
                        );
                        if errno == 0 {
                            // With NETLINK_CAP_ACK the ack carries only the header.
                            if !dump {
                                return Ok(out);
                            }
                            continue;
                        }
                        return Err(Error::Kernel {
                            request: request.into(),
                            source: std::io::Error::from_raw_os_error(-errno),
                            extack: extack_msg(&h, payload),
                        });
                    }
                    uapi::NLMSG_DONE => {
                        let errno = payload
                            .get(..4)
                            .map(|b| i32::from_ne_bytes(b.try_into().unwrap()))
                            .unwrap_or(0);
                        if errno < 0 {
                            return Err(Error::Kernel {
                                request: request.into(),
                                source: std::io::Error::from_raw_os_error(-errno),
                                extack: None,
                            });
                        }
                        return Ok(out);
                    }
                    _ => out.push(payload.to_vec()),
                }
            }
        }
    }
}

/// The extack message from an NLMSG_ERROR payload (`struct nlmsgerr`,
/// then the echoed request, which `NETLINK_CAP_ACK` trims to its header,
/// then TLVs when `NLM_F_ACK_TLVS` is set).
pub fn extack_msg(h: &uapi::nlmsghdr, payload: &[u8]) -> Option<String> {
    if h.nlmsg_flags as u32 & uapi::NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let mut off = 4 + wire::NLMSG_HDRLEN;
    if h.nlmsg_flags as u32 & uapi::NLM_F_CAPPED == 0 {
        let inner_len = payload
            .get(4..8)
            .map(|b| u32::from_ne_bytes(b.try_into().unwrap()) as usize)?;
        off = 4 + wire::align(inner_len);
    }
    Attrs::new(payload.get(off..)?)
        .find(|(t, _)| *t as u32 == uapi::NLMSGERR_ATTR_MSG)
        .and_then(|(_, p)| wire::get_str(p))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::os::fd::IntoRawFd;
    use std::rc::Rc;

    use super::*;

    /// A fake kernel for one socket: answers each recv() with what
    /// `reply(seq, buf)` writes and returns; counts the sends.
    fn fake(
        reply: impl Fn(u32, &mut [u8]) -> i64 + 'static,
    ) -> (nk_sys::fake::Guard, Rc<RefCell<u32>>) {
        let sends = Rc::new(RefCell::new(0));
        let seq = Rc::new(RefCell::new(0u32));
        let s2 = sends.clone();
        let g = nk_sys::fake::install(move |c| match c {
            Syscall::Socket { .. } => {
                let f = std::fs::File::open("/dev/null")?;
                Ok(i64::from(OwnedFd::from(f).into_raw_fd()))
            }
            Syscall::SetSockOpt { .. } | Syscall::BindNetlink { .. } => Ok(0),
            Syscall::Send { buf, .. } => {
                *s2.borrow_mut() += 1;
                *seq.borrow_mut() = u32::from_ne_bytes(buf[8..12].try_into().unwrap());
                Ok(buf.len() as i64)
            }
            Syscall::Recv { buf, flags, .. } => {
                assert_ne!(*flags & libc::MSG_TRUNC, 0, "recv without MSG_TRUNC");
                Ok(reply(*seq.borrow(), buf))
            }
            other => panic!("unexpected {other:?}"),
        });
        (g, sends)
    }

    /// A netlink message header of `ty` with `flags` and `seq`, no payload.
    fn hdr(buf: &mut [u8], ty: u16, flags: u16, seq: u32) -> i64 {
        let h = uapi::nlmsghdr {
            nlmsg_len: wire::NLMSG_HDRLEN as u32 + 4,
            nlmsg_type: ty,
            nlmsg_flags: flags,
            nlmsg_seq: seq,
            nlmsg_pid: 0,
        };
        buf[..wire::NLMSG_HDRLEN].copy_from_slice(wire::bytes_of(&h));
        buf[wire::NLMSG_HDRLEN..wire::NLMSG_HDRLEN + 4].fill(0);
        (wire::NLMSG_HDRLEN + 4) as i64
    }

    fn getlink_dump() -> MsgBuilder {
        MsgBuilder::new(
            uapi::RTM_GETLINK as u16,
            (uapi::NLM_F_REQUEST | uapi::NLM_F_DUMP) as u16,
        )
    }

    #[test]
    fn a_truncated_reply_is_an_error() {
        // The kernel's datagram was longer than the buffer: recv() with
        // MSG_TRUNC says so by returning its real length.
        let (_g, _) = fake(|_, buf| buf.len() as i64 + 100);
        let mut s = RtSocket::open().unwrap();
        let e = s
            .dump(&getlink_dump(), "RTM_GETLINK dump")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("did not fit the 65536-byte buffer (MSG_TRUNC)"),
            "{e}"
        );
    }

    #[test]
    fn an_interrupted_dump_is_an_error() {
        let (_g, _) = fake(|seq, buf| {
            hdr(
                buf,
                uapi::RTM_NEWLINK as u16,
                (uapi::NLM_F_MULTI | uapi::NLM_F_DUMP_INTR) as u16,
                seq,
            )
        });
        let mut s = RtSocket::open().unwrap();
        let e = s.dump(&getlink_dump(), "RTM_GETLINK dump").unwrap_err();
        assert!(matches!(e, Error::Interrupted { .. }), "{e}");
        assert!(e.to_string().contains("NLM_F_DUMP_INTR"), "{e}");
    }

    #[test]
    fn an_oversized_attribute_is_refused_before_sending() {
        let (_g, sends) = fake(|seq, buf| hdr(buf, uapi::NLMSG_DONE as u16, 0, seq));
        let mut s = RtSocket::open().unwrap();
        let mut m = getlink_dump();
        m.attr(3, &vec![0; 70_000]);
        let e = s.dump(&m, "RTM_GETLINK dump").unwrap_err();
        assert!(matches!(e, Error::Invalid { .. }), "{e}");
        assert_eq!(*sends.borrow(), 0, "nothing may reach the kernel");
        // The same request without it goes out, and a clean end is Ok.
        assert!(s
            .dump(&getlink_dump(), "RTM_GETLINK dump")
            .unwrap()
            .is_empty());
        assert_eq!(*sends.borrow(), 1);
    }
}
