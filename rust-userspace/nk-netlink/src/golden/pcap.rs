//! Reads the pcap files tcpdump writes on an `nlmon` device
//! (`LINKTYPE_NETLINK`, 253): a 16-byte cooked header in front of the
//! netlink messages of one skb, whose protocol field is the netlink
//! family. The header does not say which way the skb went: nlmon sets
//! `PACKET_KERNEL`/`PACKET_USER`, but the packet socket sees the skb in
//! `dev_queue_xmit_nit()`, which marks every copy `PACKET_OUTGOING`. The
//! direction is therefore read from the messages: userspace sets
//! `NLM_F_REQUEST` on each request, and the kernel never sets it on what
//! it sends (replies, dump parts, acks, notifications).

/// `LINKTYPE_NETLINK`.
pub const LINKTYPE_NETLINK: u32 = 253;
const NLM_F_REQUEST: u16 = 1;
const COOKED_LEN: usize = 16;

/// One captured skb.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Sent to the kernel (a request); otherwise sent to userspace.
    pub to_kernel: bool,
    /// Netlink family (`NETLINK_ROUTE`, `NETLINK_SOCK_DIAG`, ...).
    pub family: u16,
    /// The netlink messages, as the kernel saw or sent them.
    pub data: Vec<u8>,
}

fn u16_at(b: &[u8], off: usize, le: bool) -> Option<u16> {
    let x: [u8; 2] = b.get(off..off + 2)?.try_into().ok()?;
    Some(if le {
        u16::from_le_bytes(x)
    } else {
        u16::from_be_bytes(x)
    })
}

fn u32_at(b: &[u8], off: usize, le: bool) -> Option<u32> {
    let x: [u8; 4] = b.get(off..off + 4)?.try_into().ok()?;
    Some(if le {
        u32::from_le_bytes(x)
    } else {
        u32::from_be_bytes(x)
    })
}

/// Parses a classic pcap file of an nlmon capture.
///
/// # Errors
/// What is wrong with the file: not pcap, another link type, a truncated
/// record, or a packet too short to hold a netlink message header.
pub fn parse(b: &[u8]) -> Result<Vec<Frame>, String> {
    let le = match b.get(..4) {
        Some([0xd4, 0xc3, 0xb2, 0xa1]) | Some([0x4d, 0x3c, 0xb2, 0xa1]) => true,
        Some([0xa1, 0xb2, 0xc3, 0xd4]) | Some([0xa1, 0xb2, 0x3c, 0x4d]) => false,
        _ => return Err("not a pcap file (bad magic)".into()),
    };
    let linktype = u32_at(b, 20, le).ok_or("short pcap header")?;
    if linktype != LINKTYPE_NETLINK {
        return Err(format!(
            "link type {linktype}, expected {LINKTYPE_NETLINK} (LINKTYPE_NETLINK: capture on an nlmon device)"
        ));
    }
    let mut frames = Vec::new();
    let mut off = 24;
    while off < b.len() {
        let incl = u32_at(b, off + 8, le).ok_or("truncated record header")? as usize;
        let orig = u32_at(b, off + 12, le).ok_or("truncated record header")? as usize;
        let rec = b
            .get(off + 16..off + 16 + incl)
            .ok_or_else(|| format!("record at byte {off} is truncated"))?;
        if incl != orig {
            return Err(format!(
                "record at byte {off} was cut to {incl} of {orig} bytes (capture with -s 0)"
            ));
        }
        // The cooked header is in network byte order, the messages in the
        // capturing host's.
        let family = u16_at(rec, 14, false).ok_or("short cooked header")?;
        let data = &rec[COOKED_LEN.min(rec.len())..];
        let flags = u16_at(data, 6, le).ok_or_else(|| {
            format!(
                "record at byte {off}: {} bytes, no netlink header",
                data.len()
            )
        })?;
        frames.push(Frame {
            to_kernel: flags & NLM_F_REQUEST != 0,
            family,
            data: data.to_vec(),
        });
        off += 16 + incl;
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A netlink header with `flags`, then `body`.
    fn msg(flags: u16, body: &[u8]) -> Vec<u8> {
        let mut m = ((16 + body.len()) as u32).to_le_bytes().to_vec();
        m.extend_from_slice(&16u16.to_le_bytes());
        m.extend_from_slice(&flags.to_le_bytes());
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(body);
        m
    }

    fn file(records: &[(u16, &[u8])]) -> Vec<u8> {
        let mut b = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&65535u32.to_le_bytes());
        b.extend_from_slice(&LINKTYPE_NETLINK.to_le_bytes());
        for (ty, data) in records {
            let len = (COOKED_LEN + data.len()) as u32;
            b.extend_from_slice(&[0; 8]);
            b.extend_from_slice(&len.to_le_bytes());
            b.extend_from_slice(&len.to_le_bytes());
            b.extend_from_slice(&ty.to_be_bytes());
            b.extend_from_slice(&824u16.to_be_bytes());
            b.extend_from_slice(&[0; 10]);
            b.extend_from_slice(&0u16.to_be_bytes());
            b.extend_from_slice(data);
        }
        b
    }

    #[test]
    fn directions_and_errors() {
        let (req, reply) = (msg(5, b"req"), msg(0x100, b"reply"));
        let f = parse(&file(&[(4, &req), (4, &reply)])).unwrap();
        assert_eq!(f.len(), 2);
        assert!(f[0].to_kernel && !f[1].to_kernel);
        assert_eq!(f[1].data, reply);
        assert!(parse(b"nope").unwrap_err().contains("bad magic"));
        assert!(parse(&file(&[(4, b"x")]))
            .unwrap_err()
            .contains("no netlink header"));
        let mut cut = file(&[(4, &req)]);
        cut.truncate(cut.len() - 2);
        assert!(parse(&cut).unwrap_err().contains("truncated"));
    }
}
