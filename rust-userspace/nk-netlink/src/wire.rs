//! Netlink wire format: message building with nested attributes, and
//! attribute parsing. Everything is 4-byte aligned (NLMSG_ALIGN/NLA_ALIGN).

use nk_sys::uapi;

use crate::{Error, Result};

/// Rounds up to the netlink alignment of 4 bytes.
pub const fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// Size of `struct nlmsghdr`.
pub const NLMSG_HDRLEN: usize = std::mem::size_of::<uapi::nlmsghdr>();
/// Size of `struct nlattr`.
pub const NLA_HDRLEN: usize = 4;
/// `NLA_F_NESTED`.
pub const NLA_F_NESTED: u16 = 1 << 15;
const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | (1 << 14));

/// Plain-old-data structs that may be copied to and from the wire.
///
/// # Safety
/// Implementors must be `repr(C)`, every byte pattern must be a valid
/// value, and no byte may be padding (uninitialised on the way out).
/// Implement it with [`pod!`](crate::pod), which proves the last at
/// compile time.
pub unsafe trait Pod: Copy + Default {}

/// Types a [`Pod`] struct's fields may have: integers, arrays of them and
/// structs that are [`Pod`] themselves (through [`pod!`](crate::pod)).
/// Never `bool`, references, pointers or enums, whose byte patterns are
/// not all valid.
///
/// # Safety
/// Every byte pattern of the type is a valid value, and it has no padding.
pub unsafe trait PodField {}
macro_rules! pod_field {
    ($($t:ty),*) => { $(
        // SAFETY: an integer: any bits are a value, no padding.
        unsafe impl PodField for $t {}
    )* };
}
pod_field!(u8, u16, u32, u64, i8, i16, i32, i64);
// SAFETY: an array of PodField elements has no gaps between them.
unsafe impl<F: PodField, const N: usize> PodField for [F; N] {}

/// The size of a field's type, from a projection (for [`pod!`](crate::pod)).
#[doc(hidden)]
pub const fn field_size<T, F: PodField>(_: fn(&T) -> &F) -> usize {
    std::mem::size_of::<F>()
}

/// Implements [`Pod`] for a `repr(C)` struct after checking at compile
/// time that the fields listed are exactly its fields (a struct pattern:
/// one missing is E0027, one repeated E0025), that each is a
/// [`PodField`], and that their sizes add up to the struct's: a struct
/// with padding does not build, and gets an explicit padding field instead
/// (bindgen's `explicit_padding`).
///
/// ```compile_fail,E0080
/// #[repr(C)]
/// #[derive(Clone, Copy, Default)]
/// struct Padded { a: u8, b: u32 }
/// nk_netlink::pod!(Padded { a, b });
/// ```
///
/// ```compile_fail,E0025
/// #[repr(C)]
/// #[derive(Clone, Copy, Default)]
/// struct Two { a: u32, b: u8 }
/// nk_netlink::pod!(Two { a, a });
/// ```
///
/// ```compile_fail,E0277
/// #[repr(C)]
/// #[derive(Clone, Copy, Default)]
/// struct Flag { on: bool }
/// nk_netlink::pod!(Flag { on });
/// ```
///
/// ```
/// #[repr(C)]
/// #[derive(Clone, Copy, Default)]
/// struct Spelled { a: u8, pad: [u8; 3], b: u32 }
/// nk_netlink::pod!(Spelled { a, pad, b });
/// ```
#[macro_export]
macro_rules! pod {
    ($t:path { $($f:ident),+ $(,)? }) => {
        const _: () = {
            // Exactly these fields, each once.
            #[allow(dead_code)]
            fn fields_are_exactly(v: &$t) {
                let $t { $($f: _),+ } = v;
            }
            assert!(
                ::std::mem::size_of::<$t>() == 0 $(+ $crate::wire::field_size(|v: &$t| &v.$f))+,
                concat!(stringify!($t), ": padding between or after its fields")
            );
        };
        // SAFETY: repr(C), its fields are exactly the ones listed, each a
        // PodField (any bits valid, no padding inside), and the assertion
        // above proves that they cover every byte: no padding, and any
        // byte pattern is a valid value.
        unsafe impl $crate::wire::Pod for $t {}
        // SAFETY: as above; usable as a field of another Pod struct.
        unsafe impl $crate::wire::PodField for $t {}
    };
}

pod!(uapi::ifinfomsg {
    ifi_family,
    __ifi_pad,
    ifi_type,
    ifi_index,
    ifi_flags,
    ifi_change
});
pod!(uapi::ifaddrmsg {
    ifa_family,
    ifa_prefixlen,
    ifa_flags,
    ifa_scope,
    ifa_index
});
pod!(uapi::rtmsg {
    rtm_family,
    rtm_dst_len,
    rtm_src_len,
    rtm_tos,
    rtm_table,
    rtm_protocol,
    rtm_scope,
    rtm_type,
    rtm_flags
});
pod!(uapi::ndmsg {
    ndm_family,
    ndm_pad1,
    ndm_pad2,
    ndm_ifindex,
    ndm_state,
    ndm_flags,
    ndm_type
});
pod!(uapi::nlmsghdr {
    nlmsg_len,
    nlmsg_type,
    nlmsg_flags,
    nlmsg_seq,
    nlmsg_pid
});
pod!(uapi::rtnl_link_stats64 {
    rx_packets,
    tx_packets,
    rx_bytes,
    tx_bytes,
    rx_errors,
    tx_errors,
    rx_dropped,
    tx_dropped,
    multicast,
    collisions,
    rx_length_errors,
    rx_over_errors,
    rx_crc_errors,
    rx_frame_errors,
    rx_fifo_errors,
    rx_missed_errors,
    tx_aborted_errors,
    tx_carrier_errors,
    tx_fifo_errors,
    tx_heartbeat_errors,
    tx_window_errors,
    rx_compressed,
    tx_compressed,
    rx_nohandler,
    rx_otherhost_dropped
});
pod!(uapi::inet_diag_req_v2 {
    sdiag_family,
    sdiag_protocol,
    idiag_ext,
    pad,
    idiag_states,
    id
});
pod!(uapi::inet_diag_msg {
    idiag_family,
    idiag_state,
    idiag_timer,
    idiag_retrans,
    id,
    idiag_expires,
    idiag_rqueue,
    idiag_wqueue,
    idiag_uid,
    idiag_inode
});
pod!(uapi::inet_diag_sockid {
    idiag_sport,
    idiag_dport,
    idiag_src,
    idiag_dst,
    idiag_if,
    idiag_cookie
});

/// The bytes of a Pod value.
pub fn bytes_of<T: Pod>(v: &T) -> &[u8] {
    // SAFETY: T is Pod (repr(C), any byte pattern valid); the slice covers
    // exactly the value and lives as long as the borrow.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>()) }
}

/// Reads a Pod value from the start of `b`, if long enough.
pub fn read_pod<T: Pod>(b: &[u8]) -> Option<T> {
    if b.len() < std::mem::size_of::<T>() {
        return None;
    }
    let mut v = T::default();
    // SAFETY: v is a valid T, we copy exactly size_of::<T>() bytes into it
    // from a slice at least that long, and any byte pattern is a valid T.
    unsafe {
        std::ptr::copy_nonoverlapping(
            b.as_ptr(),
            (&mut v as *mut T).cast::<u8>(),
            std::mem::size_of::<T>(),
        );
    }
    Some(v)
}

/// Builds one netlink message.
#[derive(Debug, Clone)]
pub struct MsgBuilder {
    buf: Vec<u8>,
    nests: Vec<usize>,
    /// The first attribute or nest too long for its u16 length, if any:
    /// [`MsgBuilder::try_finish`] refuses the message instead of sending
    /// a truncated length.
    too_long: Option<String>,
}

impl MsgBuilder {
    /// Starts a message of `ty` with `flags` (seq and pid are set at send).
    pub fn new(ty: u16, flags: u16) -> Self {
        let hdr = uapi::nlmsghdr {
            nlmsg_len: 0,
            nlmsg_type: ty,
            nlmsg_flags: flags,
            nlmsg_seq: 0,
            nlmsg_pid: 0,
        };
        let mut b = MsgBuilder {
            buf: Vec::with_capacity(256),
            nests: Vec::new(),
            too_long: None,
        };
        b.buf.extend_from_slice(bytes_of(&hdr));
        b
    }

    /// Appends a fixed header struct (ifinfomsg, ...), padded.
    pub fn push<T: Pod>(&mut self, v: &T) -> &mut Self {
        self.buf.extend_from_slice(bytes_of(v));
        self.pad();
        self
    }

    /// Appends a fixed header given as bytes (a generic netlink family's
    /// own header, whose size the controller reports), padded.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self.pad();
        self
    }

    fn pad(&mut self) {
        let n = align(self.buf.len());
        self.buf.resize(n, 0);
    }

    /// Appends an attribute with a raw payload. One longer than an
    /// attribute's u16 length can say is not written, and makes
    /// [`MsgBuilder::try_finish`] fail.
    pub fn attr(&mut self, ty: u16, payload: &[u8]) -> &mut Self {
        let Ok(len) = u16::try_from(NLA_HDRLEN + payload.len()) else {
            self.too_long.get_or_insert_with(|| {
                format!(
                    "attribute type {ty} would be {} bytes; a netlink attribute holds at most {}",
                    NLA_HDRLEN + payload.len(),
                    u16::MAX
                )
            });
            return self;
        };
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.pad();
        self
    }

    /// u8 attribute.
    pub fn u8(&mut self, ty: u16, v: u8) -> &mut Self {
        self.attr(ty, &[v])
    }
    /// u16 attribute.
    pub fn u16(&mut self, ty: u16, v: u16) -> &mut Self {
        self.attr(ty, &v.to_ne_bytes())
    }
    /// u32 attribute.
    pub fn u32(&mut self, ty: u16, v: u32) -> &mut Self {
        self.attr(ty, &v.to_ne_bytes())
    }
    /// s32 attribute.
    pub fn i32(&mut self, ty: u16, v: i32) -> &mut Self {
        self.attr(ty, &v.to_ne_bytes())
    }
    /// NUL-terminated string attribute.
    pub fn str(&mut self, ty: u16, s: &str) -> &mut Self {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.attr(ty, &v)
    }

    /// Opens a nested attribute; close it with [`MsgBuilder::end_nest`].
    pub fn begin_nest(&mut self, ty: u16) -> &mut Self {
        self.nests.push(self.buf.len());
        self.attr(ty | NLA_F_NESTED, &[])
    }

    /// Closes the innermost nest, fixing up its length. A nest longer
    /// than its u16 length can say makes [`MsgBuilder::try_finish`] fail.
    pub fn end_nest(&mut self) -> &mut Self {
        let at = self.nests.pop().expect("end_nest without begin_nest");
        match u16::try_from(self.buf.len() - at) {
            Ok(len) => self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes()),
            Err(_) => {
                let ty = u16::from_ne_bytes([self.buf[at + 2], self.buf[at + 3]]) & !NLA_F_NESTED;
                let len = self.buf.len() - at;
                self.too_long.get_or_insert_with(|| {
                    format!(
                        "nested attribute type {ty} would be {len} bytes; a netlink attribute holds at most {}",
                        u16::MAX
                    )
                });
            }
        }
        self
    }

    /// Finishes the message with `seq`, returning its bytes.
    ///
    /// # Errors
    /// [`Error::Invalid`] when an attribute or nest was too long for
    /// netlink's u16 lengths, or the message for its u32 one.
    pub fn try_finish(&self, seq: u32) -> Result<Vec<u8>> {
        assert!(self.nests.is_empty(), "unclosed nested attribute");
        if let Some(why) = &self.too_long {
            return Err(Error::Invalid {
                what: "netlink message",
                why: why.clone(),
            });
        }
        let mut b = self.buf.clone();
        let len = u32::try_from(b.len()).map_err(|_| Error::Invalid {
            what: "netlink message",
            why: format!("{} bytes, above netlink's u32 length", b.len()),
        })?;
        b[0..4].copy_from_slice(&len.to_ne_bytes());
        b[8..12].copy_from_slice(&seq.to_ne_bytes());
        Ok(b)
    }

    /// [`MsgBuilder::try_finish`] for messages known to fit (tests,
    /// fixed-size requests).
    ///
    /// # Panics
    /// If an attribute or nest was too long.
    pub fn finish(&self, seq: u32) -> Vec<u8> {
        match self.try_finish(seq) {
            Ok(b) => b,
            Err(e) => panic!("{e}"),
        }
    }
}

/// Iterates `(type, payload)` over attributes, masking the flag bits.
/// Stops at the first malformed attribute.
#[derive(Clone)]
pub struct Attrs<'a> {
    b: &'a [u8],
}

impl<'a> Attrs<'a> {
    /// Attributes in `b`.
    pub fn new(b: &'a [u8]) -> Self {
        Attrs { b }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        if self.b.len() < NLA_HDRLEN {
            return None;
        }
        let len = u16::from_ne_bytes([self.b[0], self.b[1]]) as usize;
        let ty = u16::from_ne_bytes([self.b[2], self.b[3]]) & NLA_TYPE_MASK;
        if len < NLA_HDRLEN || len > self.b.len() {
            self.b = &[];
            return None;
        }
        let payload = &self.b[NLA_HDRLEN..len];
        self.b = &self.b[align(len).min(self.b.len())..];
        Some((ty, payload))
    }
}

/// Payload readers; `None` when the payload is too short.
pub fn get_u8(p: &[u8]) -> Option<u8> {
    p.first().copied()
}
/// u16 payload.
pub fn get_u16(p: &[u8]) -> Option<u16> {
    Some(u16::from_ne_bytes(p.get(..2)?.try_into().ok()?))
}
/// u32 payload.
pub fn get_u32(p: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(p.get(..4)?.try_into().ok()?))
}
/// String payload (up to the first NUL).
pub fn get_str(p: &[u8]) -> Option<String> {
    let end = p.iter().position(|&c| c == 0).unwrap_or(p.len());
    std::str::from_utf8(&p[..end]).ok().map(String::from)
}

/// Splits a receive buffer into messages: (header, payload after header).
pub fn messages(b: &[u8]) -> Vec<(uapi::nlmsghdr, &[u8])> {
    let mut out = Vec::new();
    let mut rest = b;
    while let Some(h) = read_pod::<uapi::nlmsghdr>(rest) {
        let len = h.nlmsg_len as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            break;
        }
        out.push((h, &rest[NLMSG_HDRLEN..len]));
        rest = &rest[align(len).min(rest.len())..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_and_nests_over_64k_are_refused_not_truncated() {
        // 65,531 bytes of payload + 4 of header is the largest attribute.
        let mut m = MsgBuilder::new(16, 1);
        m.attr(1, &vec![0; 65_531]);
        assert!(m.try_finish(1).is_ok());
        // One byte more: `as u16` would have written a length of 0.
        let mut m = MsgBuilder::new(16, 1);
        m.attr(1, &vec![0; 65_532]);
        let e = m.try_finish(1).unwrap_err().to_string();
        assert!(e.contains("attribute type 1 would be 65536 bytes"), "{e}");
        // A nest of attributes that each fit but together do not.
        let mut m = MsgBuilder::new(16, 1);
        m.begin_nest(7);
        for _ in 0..3 {
            m.attr(2, &vec![0; 30_000]);
        }
        m.end_nest();
        let e = m.try_finish(1).unwrap_err().to_string();
        assert!(
            e.contains("nested attribute type 7 would be 90016 bytes"),
            "{e}"
        );
    }

    #[test]
    fn nested_lengths_and_padding() {
        let mut m = MsgBuilder::new(16, 1);
        m.begin_nest(18).str(1, "abc").u8(2, 7).end_nest();
        let b = m.finish(42);
        // hdr 16 + nest hdr 4 + ("abc\0": 4+4) + (u8: 4+1 -> 8) = 36
        assert_eq!(b.len(), 36);
        assert_eq!(u32::from_ne_bytes(b[0..4].try_into().unwrap()), 36);
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 42);
        let (ty, nest) = Attrs::new(&b[16..]).next().unwrap();
        assert_eq!(ty, 18);
        let inner: Vec<_> = Attrs::new(nest).collect();
        assert_eq!(inner, [(1, &b"abc\0"[..]), (2, &[7u8][..])]);
    }

    #[test]
    fn malformed_attributes_stop_parsing() {
        assert_eq!(Attrs::new(&[8, 0, 1, 0, 1]).count(), 0);
        assert_eq!(Attrs::new(&[2, 0, 1, 0]).count(), 0);
        assert_eq!(messages(&[0xff; 15]).len(), 0);
    }
}
