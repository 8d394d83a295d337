//! Link events: an rtnetlink socket subscribed to `RTNLGRP_LINK`, as an
//! agent watches its devices come, change and go (`ip monitor link`).
//!
//! The kernel drops notifications when the socket's buffer is full and
//! says so with ENOBUFS on the next read: that is [`LinkEvent::Lost`], after
//! which the only safe state is a fresh [`crate::RtSocket::link_dump`].

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nk_sys::{syscall, uapi, Syscall};

use crate::error::{Error, Result};
use crate::link::LinkInfo;
use crate::wire;

/// What happened to a device.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// `RTM_NEWLINK`: a device appeared or changed (flags, MTU, name,
    /// netns).
    New(LinkInfo),
    /// `RTM_DELLINK`: a device went (or left this netns).
    Del(LinkInfo),
    /// The kernel dropped events (ENOBUFS): dump the links again.
    Lost,
}

/// A socket subscribed to link events of its netns.
#[derive(Debug)]
pub struct LinkEvents {
    fd: OwnedFd,
    buf: Vec<u8>,
    pending: VecDeque<LinkEvent>,
}

impl AsFd for LinkEvents {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

const WHAT: &str = "RTNLGRP_LINK subscription";

fn sys(call: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Sys {
        call,
        request: WHAT.into(),
        source,
    }
}

impl LinkEvents {
    /// Subscribes to the link events of the caller's current netns.
    ///
    /// ```no_run
    /// use nk_netlink::events::{LinkEvent, LinkEvents};
    /// let mut ev = LinkEvents::subscribe()?;
    /// while let Some(e) = ev.next_timeout(std::time::Duration::from_secs(1))? {
    ///     match e {
    ///         LinkEvent::New(l) => println!("{} is {}", l.name, if l.is_up() { "up" } else { "down" }),
    ///         LinkEvent::Del(l) => println!("{} is gone", l.name),
    ///         _ => println!("events lost: dump again"),
    ///     }
    /// }
    /// # Ok::<(), nk_netlink::Error>(())
    /// ```
    ///
    /// # Errors
    /// `socket`, `setsockopt` or `bind` failures.
    pub fn subscribe() -> Result<LinkEvents> {
        let fd = nk_sys::socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)
            .map_err(sys("socket"))?;
        syscall(Syscall::SetSockOpt {
            fd: fd.as_fd(),
            level: libc::SOL_SOCKET,
            name: libc::SO_RCVBUF,
            val: &(1i32 << 20).to_ne_bytes(),
        })
        .map_err(sys("setsockopt"))?;
        syscall(Syscall::BindNetlink {
            fd: fd.as_fd(),
            groups: 1 << (uapi::RTNLGRP_LINK - 1),
        })
        .map_err(sys("bind"))?;
        Ok(LinkEvents {
            fd,
            buf: vec![0; 64 * 1024],
            pending: VecDeque::new(),
        })
    }

    /// The next event, waiting for it.
    ///
    /// ```no_run
    /// # fn main() -> nk_netlink::Result<()> {
    /// use nk_netlink::{LinkEvent, LinkEvents};
    /// let mut ev = LinkEvents::subscribe()?;
    /// if let LinkEvent::Lost = ev.next_event()? {
    ///     // Dump the links again: the kernel dropped notifications.
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// `recv` fails, or a notification is malformed.
    pub fn next_event(&mut self) -> Result<LinkEvent> {
        self.set_timeout(None)?;
        loop {
            if let Some(e) = self.read()? {
                return Ok(e);
            }
        }
    }

    /// The next event, or `None` when none came within `timeout`.
    ///
    /// ```no_run
    /// # fn main() -> nk_netlink::Result<()> {
    /// let mut ev = nk_netlink::LinkEvents::subscribe()?;
    /// let e = ev.next_timeout(std::time::Duration::from_millis(100))?;
    /// # let _ = e;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`LinkEvents::next_event`].
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<LinkEvent>> {
        if let Some(e) = self.pending.pop_front() {
            return Ok(Some(e));
        }
        self.set_timeout(Some(timeout))?;
        self.read()
    }

    fn set_timeout(&self, t: Option<Duration>) -> Result<()> {
        // {0, 0} blocks for ever: that is None. A zero or sub-microsecond
        // timeout becomes 1 us, a huge one the largest timeval.
        let tv = match t {
            None => libc::timeval {
                tv_sec: 0,
                tv_usec: 0,
            },
            Some(t) => libc::timeval {
                tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
                tv_usec: if t.as_secs() == 0 {
                    t.subsec_micros().max(1)
                } else {
                    t.subsec_micros()
                } as libc::suseconds_t,
            },
        };
        // SAFETY: timeval is plain data; its bytes are what SO_RCVTIMEO
        // takes.
        let val = unsafe {
            std::slice::from_raw_parts(
                (&tv as *const libc::timeval).cast::<u8>(),
                std::mem::size_of::<libc::timeval>(),
            )
        };
        syscall(Syscall::SetSockOpt {
            fd: self.fd.as_fd(),
            level: libc::SOL_SOCKET,
            name: libc::SO_RCVTIMEO,
            val,
        })
        .map_err(sys("setsockopt"))
        .map(drop)
    }

    /// One event: queued, or from one recv(); `None` on a timeout.
    fn read(&mut self) -> Result<Option<LinkEvent>> {
        if let Some(e) = self.pending.pop_front() {
            return Ok(Some(e));
        }
        let n = match syscall(Syscall::Recv {
            fd: self.fd.as_fd(),
            buf: &mut self.buf,
            flags: libc::MSG_TRUNC,
        }) {
            Ok(n) => n as usize,
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => return Ok(Some(LinkEvent::Lost)),
            // A timeout; or a signal, which interrupts a recv() with a
            // timeout even under SA_RESTART: the caller asks again.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) => {
                return Ok(None)
            }
            Err(e) => return Err(sys("recv")(e)),
        };
        if n > self.buf.len() {
            // A notification cut short is a lost one.
            return Ok(Some(LinkEvent::Lost));
        }
        for (h, payload) in wire::messages(&self.buf[..n]) {
            let e = match u32::from(h.nlmsg_type) {
                uapi::RTM_NEWLINK => LinkEvent::New(LinkInfo::decode(payload)?),
                uapi::RTM_DELLINK => LinkEvent::Del(LinkInfo::decode(payload)?),
                _ => continue,
            };
            self.pending.push_back(e);
        }
        Ok(self.pending.pop_front())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::MsgBuilder;
    use std::cell::RefCell;
    use std::os::fd::IntoRawFd;
    use std::rc::Rc;

    /// A fake kernel that checks the subscription and answers recv()s
    /// from `answers` in order (bytes, or an errno).
    fn fake(answers: Vec<std::result::Result<Vec<u8>, i32>>) -> nk_sys::fake::Guard {
        let answers = Rc::new(RefCell::new(VecDeque::from(answers)));
        nk_sys::fake::install(move |c| match c {
            Syscall::Socket { domain, proto, .. } => {
                assert_eq!((*domain, *proto), (libc::AF_NETLINK, libc::NETLINK_ROUTE));
                let f = std::fs::File::open("/dev/null")?;
                Ok(i64::from(OwnedFd::from(f).into_raw_fd()))
            }
            Syscall::BindNetlink { groups, .. } => {
                assert_eq!(*groups, 1, "RTMGRP_LINK");
                Ok(0)
            }
            Syscall::SetSockOpt { .. } => Ok(0),
            Syscall::Recv { buf, flags, .. } => {
                assert_ne!(*flags & libc::MSG_TRUNC, 0);
                match answers.borrow_mut().pop_front() {
                    Some(Ok(b)) => {
                        buf[..b.len()].copy_from_slice(&b);
                        Ok(b.len() as i64)
                    }
                    Some(Err(e)) => Err(std::io::Error::from_raw_os_error(e)),
                    None => Err(std::io::Error::from_raw_os_error(libc::EAGAIN)),
                }
            }
            other => panic!("unexpected {other:?}"),
        })
    }

    fn link_msg(ty: u32, index: i32, name: &str) -> Vec<u8> {
        let mut m = MsgBuilder::new(ty as u16, 0);
        m.push(&uapi::ifinfomsg {
            ifi_index: index,
            ifi_flags: libc::IFF_UP as u32,
            ..Default::default()
        })
        .str(uapi::IFLA_IFNAME as u16, name);
        m.finish(0)
    }

    #[test]
    fn new_and_del_notifications_become_events() {
        // Two notifications in one datagram, then a drop, then nothing.
        let mut two = link_msg(uapi::RTM_NEWLINK, 7, "nk0");
        two.extend(link_msg(uapi::RTM_DELLINK, 8, "nk1"));
        let _g = fake(vec![Ok(two), Err(libc::ENOBUFS)]);
        let mut ev = LinkEvents::subscribe().unwrap();
        let t = Duration::from_millis(10);
        let Some(LinkEvent::New(l)) = ev.next_timeout(t).unwrap() else {
            panic!("no RTM_NEWLINK event")
        };
        assert_eq!((l.index, l.name.as_str(), l.is_up()), (7, "nk0", true));
        let Some(LinkEvent::Del(l)) = ev.next_timeout(t).unwrap() else {
            panic!("no RTM_DELLINK event")
        };
        assert_eq!((l.index, l.name.as_str()), (8, "nk1"));
        assert_eq!(ev.next_timeout(t).unwrap(), Some(LinkEvent::Lost));
        assert_eq!(ev.next_timeout(t).unwrap(), None);
    }

    #[test]
    fn a_cut_notification_is_a_lost_one() {
        let _g = nk_sys::fake::install(|c| match c {
            Syscall::Socket { .. } => {
                let f = std::fs::File::open("/dev/null")?;
                Ok(i64::from(OwnedFd::from(f).into_raw_fd()))
            }
            Syscall::BindNetlink { .. } | Syscall::SetSockOpt { .. } => Ok(0),
            // MSG_TRUNC: the datagram's real length, longer than the buffer.
            Syscall::Recv { buf, .. } => Ok(buf.len() as i64 + 100),
            other => panic!("unexpected {other:?}"),
        });
        let mut ev = LinkEvents::subscribe().unwrap();
        assert_eq!(
            ev.next_timeout(Duration::from_millis(1)).unwrap(),
            Some(LinkEvent::Lost)
        );
    }
}
