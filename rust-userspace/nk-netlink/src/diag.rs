//! `NETLINK_SOCK_DIAG` for TCP and UDP sockets: dump the sockets of the
//! current netns (`SOCK_DIAG_BY_FAMILY`) and destroy one (`SOCK_DESTROY`,
//! needs `CONFIG_INET_DIAG_DESTROY`). This is how Cilium destroys sockets
//! of a terminated backend today, one netns at a time; nkctl keeps it as
//! the baseline for the BPF socket iterators.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use nk_sys::uapi;

use crate::error::{Error, Result};
use crate::socket::RtSocket;
use crate::wire::{read_pod, MsgBuilder};

/// Transport protocol of a diag socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    fn ipproto(self) -> u8 {
        match self {
            Proto::Tcp => libc::IPPROTO_TCP as u8,
            Proto::Udp => libc::IPPROTO_UDP as u8,
        }
    }

    /// `tcp` or `udp`.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// TCP states the BPF socket iterator returns: every full socket, so all
/// but TIME_WAIT (6) and NEW_SYN_RECV (12), which are mini sockets.
pub const TCP_FULL_STATES: u32 = !((1 << 6) | (1 << 12));

/// One socket from a dump.
#[derive(Clone, Copy, Debug)]
pub struct DiagSock {
    /// Its protocol.
    pub proto: Proto,
    /// `AF_INET` or `AF_INET6`.
    pub family: u8,
    /// TCP state number (UDP: 1 connected, 7 unconnected).
    pub state: u8,
    /// Local address.
    pub src: SocketAddr,
    /// Remote address.
    pub dst: SocketAddr,
    /// The socket cookie.
    pub cookie: u64,
    /// The id as the kernel sent it, for `SOCK_DESTROY`.
    pub id: uapi::inet_diag_sockid,
}

/// A socket address from the kernel's layout: `family`, four address
/// words in network order (IPv4 in the first), and a host-order port.
/// inet_diag and nkctl's BPF records both use it.
pub fn sockaddr(family: u8, words: [u32; 4], port: u16) -> SocketAddr {
    let ip = if family == libc::AF_INET as u8 {
        IpAddr::V4(Ipv4Addr::from(u32::from_be(words[0])))
    } else {
        let mut b = [0u8; 16];
        for (i, w) in words.iter().enumerate() {
            b[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
        }
        IpAddr::V6(Ipv6Addr::from(b))
    };
    SocketAddr::new(ip, port)
}

/// The four network-order address words of `ip` (IPv4 in the first).
pub fn addr_words(ip: IpAddr) -> [u32; 4] {
    let mut w = [0u32; 4];
    match ip {
        IpAddr::V4(v4) => w[0] = u32::from_ne_bytes(v4.octets()),
        IpAddr::V6(v6) => {
            let o = v6.octets();
            for (i, x) in w.iter_mut().enumerate() {
                *x = u32::from_ne_bytes([o[i * 4], o[i * 4 + 1], o[i * 4 + 2], o[i * 4 + 3]]);
            }
        }
    }
    w
}

/// Decodes one `inet_diag_msg` payload (kernel bytes; fuzzed).
pub fn decode(proto: Proto, payload: &[u8]) -> Option<DiagSock> {
    let m: uapi::inet_diag_msg = read_pod(payload)?;
    if m.idiag_family != libc::AF_INET as u8 && m.idiag_family != libc::AF_INET6 as u8 {
        return None;
    }
    let id = m.id;
    Some(DiagSock {
        proto,
        family: m.idiag_family,
        state: m.idiag_state,
        src: sockaddr(m.idiag_family, id.idiag_src, u16::from_be(id.idiag_sport)),
        dst: sockaddr(m.idiag_family, id.idiag_dst, u16::from_be(id.idiag_dport)),
        cookie: u64::from(id.idiag_cookie[0]) | (u64::from(id.idiag_cookie[1]) << 32),
        id,
    })
}

/// The request that dumps `proto` sockets of `family` in `states`.
pub fn dump_request(family: u8, proto: Proto, states: u32) -> MsgBuilder {
    let req = uapi::inet_diag_req_v2 {
        sdiag_family: family,
        sdiag_protocol: proto.ipproto(),
        idiag_states: states,
        ..Default::default()
    };
    let mut m = MsgBuilder::new(
        uapi::SOCK_DIAG_BY_FAMILY as u16,
        (uapi::NLM_F_REQUEST | uapi::NLM_F_DUMP) as u16,
    );
    m.push(&req);
    m
}

/// The request that destroys `s` (matched by address, port and cookie).
pub fn destroy_request(s: &DiagSock) -> MsgBuilder {
    let req = uapi::inet_diag_req_v2 {
        sdiag_family: s.family,
        sdiag_protocol: s.proto.ipproto(),
        idiag_states: u32::MAX,
        id: s.id,
        ..Default::default()
    };
    let mut m = MsgBuilder::new(
        uapi::SOCK_DESTROY as u16,
        (uapi::NLM_F_REQUEST | uapi::NLM_F_ACK) as u16,
    );
    m.push(&req);
    m
}

/// A `NETLINK_SOCK_DIAG` socket in the caller's current netns.
#[derive(Debug)]
pub struct DiagSocket(RtSocket);

impl DiagSocket {
    /// Opens it.
    ///
    /// # Errors
    /// `socket`/`setsockopt`/`bind` failures.
    pub fn open() -> Result<Self> {
        Ok(DiagSocket(RtSocket::open_protocol(
            libc::NETLINK_SOCK_DIAG,
            "opening the sock_diag socket",
        )?))
    }

    /// Dumps the `proto` sockets of `family` in `states` (a bit per TCP
    /// state number).
    ///
    /// ```no_run
    /// # fn main() -> nk_netlink::Result<()> {
    /// use nk_netlink::diag::{DiagSocket, Proto, TCP_FULL_STATES};
    /// let mut d = DiagSocket::open()?;
    /// for s in d.dump(libc::AF_INET as u8, Proto::Tcp, TCP_FULL_STATES)? {
    ///     println!("{} -> {}", s.src, s.dst);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// The kernel's errno (ENOENT: no diag handler for the protocol).
    pub fn dump(&mut self, family: u8, proto: Proto, states: u32) -> Result<Vec<DiagSock>> {
        let what = format!("SOCK_DIAG_BY_FAMILY {} dump", proto.name());
        let msgs = self.0.dump(&dump_request(family, proto, states), &what)?;
        msgs.iter()
            .map(|p| {
                decode(proto, p).ok_or_else(|| Error::Malformed {
                    request: what.clone(),
                    why: format!("undecodable inet_diag_msg ({} bytes)", p.len()),
                })
            })
            .collect()
    }

    /// Destroys one socket from a dump.
    ///
    /// ```no_run
    /// # fn main() -> nk_netlink::Result<()> {
    /// use nk_netlink::diag::{DiagSocket, Proto, TCP_FULL_STATES};
    /// let mut d = DiagSocket::open()?;
    /// let backend: std::net::SocketAddr = "10.0.0.2:8080".parse().unwrap();
    /// for s in d.dump(libc::AF_INET as u8, Proto::Tcp, TCP_FULL_STATES)? {
    ///     if s.dst == backend {
    ///         d.destroy(&s)?;
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// The kernel's errno: ENOENT when it is gone, EOPNOTSUPP without
    /// `CONFIG_INET_DIAG_DESTROY`.
    pub fn destroy(&mut self, s: &DiagSock) -> Result<()> {
        let what = format!("SOCK_DESTROY {} {} -> {}", s.proto.name(), s.src, s.dst);
        self.0.request(&destroy_request(s), &what).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::bytes_of;

    fn msg(family: u8, src: [u32; 4], dst: [u32; 4]) -> uapi::inet_diag_msg {
        uapi::inet_diag_msg {
            idiag_family: family,
            idiag_state: 1,
            id: uapi::inet_diag_sockid {
                idiag_sport: 40000u16.to_be(),
                idiag_dport: 8080u16.to_be(),
                idiag_src: src,
                idiag_dst: dst,
                idiag_if: 0,
                idiag_cookie: [0x1234, 0x1],
            },
            ..Default::default()
        }
    }

    #[test]
    fn decodes_v4_and_v6() {
        let v4 = msg(
            libc::AF_INET as u8,
            [u32::from(Ipv4Addr::new(10, 0, 0, 1)).to_be(), 0, 0, 0],
            [u32::from(Ipv4Addr::new(10, 0, 0, 2)).to_be(), 0, 0, 0],
        );
        let s = decode(Proto::Tcp, bytes_of(&v4)).unwrap();
        assert_eq!(s.src, "10.0.0.1:40000".parse().unwrap());
        assert_eq!(s.dst, "10.0.0.2:8080".parse().unwrap());
        assert_eq!(s.cookie, 0x1_0000_1234);

        let ip: Ipv6Addr = "fd00::2".parse().unwrap();
        let o = ip.octets();
        let w = |i: usize| u32::from_ne_bytes(o[i * 4..i * 4 + 4].try_into().unwrap());
        let v6 = msg(libc::AF_INET6 as u8, [0; 4], [w(0), w(1), w(2), w(3)]);
        let s = decode(Proto::Udp, bytes_of(&v6)).unwrap();
        assert_eq!(s.dst, "[fd00::2]:8080".parse().unwrap());
    }

    #[test]
    fn sockaddr_round_trip() {
        for s in ["10.0.0.2:80", "[fd00::2]:443"] {
            let a: SocketAddr = s.parse().unwrap();
            let family = if a.is_ipv4() {
                libc::AF_INET
            } else {
                libc::AF_INET6
            } as u8;
            assert_eq!(sockaddr(family, addr_words(a.ip()), a.port()), a);
        }
    }

    #[test]
    fn rejects_short_and_foreign() {
        let v4 = msg(libc::AF_INET as u8, [0; 4], [0; 4]);
        let b = bytes_of(&v4);
        assert!(decode(Proto::Tcp, &b[..b.len() - 1]).is_none());
        let unix = msg(libc::AF_UNIX as u8, [0; 4], [0; 4]);
        assert!(decode(Proto::Tcp, bytes_of(&unix)).is_none());
    }

    /// Wire bytes of the requests, as the kernel's inet_diag parses them
    /// (struct layout from include/uapi/linux/inet_diag.h).
    #[test]
    fn request_bytes() {
        let b = dump_request(libc::AF_INET as u8, Proto::Udp, u32::MAX).finish(7);
        // nlmsghdr: len 72, type 20, flags REQUEST|DUMP (0x301), seq 7
        assert_eq!(
            &b[..16],
            &[72, 0, 0, 0, 20, 0, 0x01, 0x03, 7, 0, 0, 0, 0, 0, 0, 0]
        );
        // family 2, protocol 17, ext 0, pad 0, states all
        assert_eq!(&b[16..24], &[2, 17, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(b.len(), 72);

        let v4 = msg(libc::AF_INET as u8, [1, 0, 0, 0], [2, 0, 0, 0]);
        let s = decode(Proto::Tcp, bytes_of(&v4)).unwrap();
        let d = destroy_request(&s).finish(8);
        // type SOCK_DESTROY (21), flags REQUEST|ACK (0x5)
        assert_eq!(&d[4..8], &[21, 0, 5, 0]);
        assert_eq!(&d[16..18], &[2, 6]);
        // the id (ports, addresses, cookie) goes back unchanged
        assert_eq!(&d[24..72], bytes_of(&s.id));
    }
}
