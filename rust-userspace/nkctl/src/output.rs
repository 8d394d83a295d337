//! Tables for people, JSON for machines.

use std::fmt::Write as _;

use nk_bpf::{AttachPoint, QueryResult};
use nk_netlink::LinkInfo;

pub fn json<T: serde::Serialize>(v: &T) -> Result<String, serde_json::Error> {
    Ok(serde_json::to_string_pretty(v)? + "\n")
}

/// An error as `--json` prints it: `{"error": {...}}` (docs/nkctl-json.md).
#[derive(serde::Serialize, Debug, Default)]
pub struct ErrorJson {
    /// The error's fields.
    pub error: ErrorFields,
}

/// What `{"error": ...}` holds; absent fields are omitted.
#[derive(serde::Serialize, Debug, Default)]
pub struct ErrorFields {
    /// What failed, as nkctl prints it on stderr.
    pub message: String,
    /// `usage`, `failed`, `partial` or `kernel`: which exit code nkctl
    /// exits with (README, "nkctl's exit codes").
    pub kind: &'static str,
    /// The exit code.
    pub exit: i32,
    /// The request the kernel refused, e.g. `RTM_NEWLINK netkit nk0` or
    /// `BPF_LINK_CREATE tcx ingress ifindex 3`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// The bpf command that failed (`BPF_LINK_CREATE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bpf_cmd: Option<&'static str>,
    /// The errno.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno: Option<i32>,
    /// The errno's name (`EEXIST`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errname: Option<&'static str>,
    /// The kernel's extack message (netlink).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extack: Option<String>,
    /// What the errno means for this request (bpf).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// libbpf's output while loading, with the verifier's log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

impl ErrorJson {
    /// A usage error (clap's).
    pub fn usage(message: &str) -> ErrorJson {
        ErrorJson {
            error: ErrorFields {
                message: message.into(),
                kind: "usage",
                exit: exit::USAGE,
                ..Default::default()
            },
        }
    }

    /// An error of a command, with what the libraries' errors carry.
    pub fn of(e: &(dyn std::error::Error + 'static)) -> ErrorJson {
        let code = exit_code(e);
        let errno = errno_of(e);
        let mut f = ErrorFields {
            message: e.to_string(),
            kind: if code == exit::KERNEL {
                "kernel"
            } else {
                "failed"
            },
            exit: code,
            errno,
            errname: errno.and_then(errname),
            ..Default::default()
        };
        if let Some(n) = e.downcast_ref::<nk_netlink::Error>() {
            f.request = n.request().map(String::from);
            f.extack = n.extack().map(String::from);
        }
        if let Some(b) = e.downcast_ref::<nk_bpf::Error>() {
            f.request = b.request().map(String::from);
            f.bpf_cmd = b.cmd().and_then(nk_bpf::error::cmd_name);
            f.hint = b.hint().map(String::from);
            f.log = b.log().filter(|l| !l.is_empty()).map(String::from);
        }
        ErrorJson { error: f }
    }

    /// The JSON text: never fails, every field is a string or a number.
    pub fn render(&self) -> String {
        json(self).unwrap_or_else(|_| "{\"error\": {\"message\": \"unprintable error\"}}\n".into())
    }
}

/// `nkctl feature`: one line per feature.
pub fn features_table(f: &nk_bpf::Features) -> String {
    let yes = |b: bool| if b { "yes" } else { "no" };
    let rows = [
        ("tcx", f.tcx),
        ("netkit links", f.netkit_links),
        ("expected_revision", f.expected_revision),
        ("socket iterator kfuncs", f.sock_iter_kfuncs),
        ("socket abort kfuncs", f.sock_iter_abort),
        ("netns iterator kfuncs", f.netns_iter_kfuncs),
    ];
    rows.iter()
        .map(|(n, b)| format!("{n:<24} {}\n", yes(*b)))
        .collect()
}

/// The name of an errno the kernel returns from rtnetlink, bpf() and
/// sock_diag (`EEXIST`), as iproute2 and bpftool users read them.
pub fn errname(errno: i32) -> Option<&'static str> {
    Some(match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::EMFILE => "EMFILE",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::ERANGE => "ERANGE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ENOLINK => "ENOLINK",
        libc::EPROTO => "EPROTO",
        libc::EMSGSIZE => "EMSGSIZE",
        libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ENETDOWN => "ENETDOWN",
        libc::ENOBUFS => "ENOBUFS",
        libc::ENOTCONN => "ENOTCONN",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EALREADY => "EALREADY",
        libc::ESTALE => "ESTALE",
        libc::ECANCELED => "ECANCELED",
        // The kernel's internal ENOTSUPP leaks out of bpf(2).
        524 => "ENOTSUPP",
        _ => return None,
    })
}

/// nkctl's exit codes (README, "nkctl's exit codes").
pub mod exit {
    /// Everything asked was done.
    pub const OK: i32 = 0;
    /// The command failed: bad input nkctl found itself, or a syscall
    /// around the request failed.
    pub const FAILED: i32 = 1;
    /// The command line is wrong (clap's usage errors).
    pub const USAGE: i32 = 2;
    /// The command ran, but part of what it was asked failed (`sock
    /// destroy` with sockets it could not destroy).
    pub const PARTIAL: i32 = 3;
    /// The kernel refused the request: a netlink error answer (with its
    /// extack) or a failed bpf() command.
    pub const KERNEL: i32 = 4;
}

/// The exit code for an error of one of the workspace's libraries.
pub fn exit_code(e: &(dyn std::error::Error + 'static)) -> i32 {
    match e.downcast_ref::<nk_netlink::Error>() {
        Some(nk_netlink::Error::Kernel { .. }) => return exit::KERNEL,
        Some(_) => return exit::FAILED,
        None => {}
    }
    match e.downcast_ref::<nk_bpf::Error>() {
        Some(nk_bpf::Error::Bpf { .. } | nk_bpf::Error::Unsupported { .. }) => exit::KERNEL,
        _ => exit::FAILED,
    }
}

/// The errno carried by one of the workspace's errors, if any.
pub fn errno_of(e: &(dyn std::error::Error + 'static)) -> Option<i32> {
    if let Some(e) = e.downcast_ref::<nk_netlink::Error>() {
        return e.errno();
    }
    if let Some(e) = e.downcast_ref::<nk_bpf::Error>() {
        return e.errno();
    }
    e.downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::raw_os_error)
}

fn mac(a: &Option<nk_netlink::HwAddr>) -> String {
    match a {
        Some(b) if b.len() == 6 && !b.is_zero() => b.to_string(),
        // L3 netkit and other ARP-less devices: no address to show.
        _ => "-".into(),
    }
}

pub fn links_table(links: &[LinkInfo]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>7}  {:<15}  {:<7}  {:<4}  {:<7}  {:<9}  {:<9}  {:>5}  {:>9}  {:<5}  MAC",
        "IFINDEX",
        "NAME",
        "KIND",
        "MODE",
        "ROLE",
        "POLICY",
        "PEER_POL",
        "MTU",
        "HEAD/TAIL",
        "STATE"
    );
    for l in links {
        let nk = l.netkit.as_ref();
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        let _ = writeln!(
            s,
            "{:>7}  {:<15}  {:<7}  {:<4}  {:<7}  {:<9}  {:<9}  {:>5}  {:>9}  {:<5}  {}",
            l.index,
            l.name,
            opt(l.kind.clone()),
            opt(nk.and_then(|n| n.mode).map(|m| m.to_string())),
            nk.map(|n| if n.primary { "primary" } else { "peer" })
                .unwrap_or("-"),
            opt(nk.and_then(|n| n.policy).map(|m| m.to_string())),
            opt(nk.and_then(|n| n.peer_policy).map(|m| m.to_string())),
            l.mtu.map(|m| m.to_string()).unwrap_or_default(),
            // Effective needed head/tailroom (IFLA_HEADROOM/TAILROOM): "-"
            // on kernels that do not dump them.
            match (l.headroom, l.tailroom) {
                (Some(h), Some(t)) => format!("{h}/{t}"),
                _ => "-".into(),
            },
            if l.is_up() { "up" } else { "down" },
            mac(&l.address),
        );
    }
    s
}

#[derive(serde::Serialize)]
pub struct QueryJson<'a> {
    dev: &'a str,
    hook: HookJson<'a>,
    revision: u64,
    programs: Vec<QueryEntry>,
}

#[derive(serde::Serialize)]
struct QueryEntry {
    position: usize,
    prog_id: u32,
    link_id: Option<u32>,
    name: String,
}

impl<'a> QueryJson<'a> {
    pub fn new(dev: &'a str, at: AttachPoint, q: &QueryResult, names: &[String]) -> Self {
        QueryJson {
            dev,
            hook: HookJson::new(at, dev),
            revision: q.revision,
            programs: q
                .prog_ids
                .iter()
                .enumerate()
                .map(|(i, id)| QueryEntry {
                    position: i,
                    prog_id: *id,
                    link_id: q.link_ids.get(i).copied().filter(|l| *l != 0),
                    name: names.get(i).cloned().unwrap_or_default(),
                })
                .collect(),
        }
    }
}

/// A hook as fields, as bpftool shows them: `{"kind": "tcx",
/// "direction": "ingress", "ifindex": 3, "dev": "eth0"}`, or for netkit
/// `"side": "primary"|"peer"` instead of the direction.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct HookJson<'a> {
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub side: Option<&'static str>,
    pub ifindex: u32,
    pub dev: &'a str,
    /// For the text output.
    #[serde(skip)]
    pub at: AttachPoint,
}

impl<'a> HookJson<'a> {
    pub fn new(at: AttachPoint, dev: &'a str) -> Self {
        let (kind, direction, side, ifindex) = match at {
            AttachPoint::Tcx { ifindex, dir } => (
                "tcx",
                Some(match dir {
                    nk_bpf::Direction::Ingress => "ingress",
                    nk_bpf::Direction::Egress => "egress",
                }),
                None,
                ifindex,
            ),
            AttachPoint::Netkit { ifindex, side } => (
                "netkit",
                None,
                Some(match side {
                    nk_bpf::NetkitSide::Primary => "primary",
                    nk_bpf::NetkitSide::Peer => "peer",
                }),
                ifindex,
            ),
        };
        HookJson {
            kind,
            direction,
            side,
            ifindex,
            dev,
            at,
        }
    }
}

impl std::fmt::Display for HookJson<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.at.fmt(f)
    }
}

/// What `prog detach` did (`--json`): the hook, and the program or the
/// pinned link it took off.
#[derive(serde::Serialize)]
pub struct DetachJson<'a> {
    pub detached: DetachedJson<'a>,
}

#[derive(serde::Serialize)]
pub struct DetachedJson<'a> {
    pub hook: HookJson<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prog_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
}

/// What `link add`/`link set` did (`--json`): the device as `link show`
/// shows it afterwards; `link del`: the device that went.
#[derive(serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkDone<'a> {
    Added(&'a nk_netlink::LinkInfo),
    Changed(&'a nk_netlink::LinkInfo),
    Deleted { name: &'a str, ifindex: u32 },
}

/// What `endpoint del` did (`--json`).
#[derive(serde::Serialize)]
pub struct EndpointDeleted<'a> {
    pub deleted: EndpointRef<'a>,
}

#[derive(serde::Serialize)]
pub struct EndpointRef<'a> {
    pub endpoint: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns: Option<&'a str>,
}

/// What `prog attach` did: the program, its link (when pinned as one),
/// where it ended up and the revision after the attach.
#[derive(serde::Serialize)]
pub struct AttachJson<'a> {
    pub dev: &'a str,
    pub hook: HookJson<'a>,
    pub prog_id: u32,
    pub link_id: Option<u32>,
    pub pin: Option<String>,
    pub position: Option<usize>,
    pub revision: u64,
}

pub fn attach_line(a: &AttachJson<'_>) -> String {
    format!(
        "attached prog {}{} to {} {} at position {}, revision {}{}\n",
        a.prog_id,
        a.link_id
            .map(|l| format!(" (link {l})"))
            .unwrap_or_default(),
        a.dev,
        a.hook,
        a.position
            .map(|p| p.to_string())
            .unwrap_or_else(|| "?".into()),
        a.revision,
        a.pin
            .as_ref()
            .map(|p| format!(", pinned at {p}"))
            .unwrap_or_default(),
    )
}

pub fn query_table(dev: &str, at: AttachPoint, q: &QueryResult, names: &[String]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{dev}: {at}, revision {}, {} program(s)",
        q.revision,
        q.prog_ids.len()
    );
    if q.prog_ids.is_empty() {
        return s;
    }
    let _ = writeln!(s, "{:>3}  {:>8}  {:>8}  NAME", "POS", "PROG_ID", "LINK_ID");
    for (i, id) in q.prog_ids.iter().enumerate() {
        let link = q
            .link_ids
            .get(i)
            .copied()
            .filter(|l| *l != 0)
            .map(|l| l.to_string())
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            s,
            "{i:>3}  {id:>8}  {link:>8}  {}",
            names.get(i).map(String::as_str).unwrap_or("")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_tell_the_kernel_from_bad_input() {
        let kernel: crate::cli::Error = Box::new(nk_netlink::Error::Kernel {
            request: "RTM_NEWLINK netkit nk0".into(),
            source: std::io::Error::from_raw_os_error(libc::EEXIST),
            extack: None,
        });
        assert_eq!(exit_code(&*kernel), exit::KERNEL);
        let bpf: crate::cli::Error = Box::new(nk_bpf::Error::Bpf {
            cmd: nk_sys::uapi::BPF_LINK_CREATE,
            op: "BPF_LINK_CREATE".into(),
            source: std::io::Error::from_raw_os_error(libc::EPERM),
            hint: None,
        });
        assert_eq!(exit_code(&*bpf), exit::KERNEL);
        let invalid: crate::cli::Error = Box::new(nk_netlink::Error::Invalid {
            what: "MAC address",
            why: "x".into(),
        });
        assert_eq!(exit_code(&*invalid), exit::FAILED);
        let own: crate::cli::Error = "--sync is a netkit setting".into();
        assert_eq!(exit_code(&*own), exit::FAILED);
        // Distinct, and clap's usage code is its own.
        let codes = [
            exit::OK,
            exit::FAILED,
            exit::USAGE,
            exit::PARTIAL,
            exit::KERNEL,
        ];
        for (i, a) in codes.iter().enumerate() {
            assert!(!codes[i + 1..].contains(a));
        }
        assert_eq!(exit::USAGE, 2);
    }
    use nk_bpf::Direction;
    use nk_netlink::{NetkitInfo, NetkitMode, NetkitPolicy};

    #[test]
    fn errors_are_json() {
        let k: Box<dyn std::error::Error> = Box::new(nk_netlink::Error::Kernel {
            request: "RTM_NEWLINK netkit nk0".into(),
            source: std::io::Error::from_raw_os_error(libc::EEXIST),
            extack: Some("\"quoted\" extack".into()),
        });
        insta::assert_snapshot!("error_json_netlink", ErrorJson::of(&*k).render());
        let b: Box<dyn std::error::Error> = Box::new(nk_bpf::Error::Bpf {
            cmd: nk_sys::uapi::BPF_LINK_UPDATE,
            op: "BPF_LINK_UPDATE".into(),
            source: std::io::Error::from_raw_os_error(libc::EPERM),
            hint: Some("the link's program is not the one given as the old program".into()),
        });
        insta::assert_snapshot!("error_json_bpf", ErrorJson::of(&*b).render());
        insta::assert_snapshot!(
            "error_json_usage",
            ErrorJson::usage("invalid value").render()
        );
        let io: Box<dyn std::error::Error> = Box::new(std::io::Error::from_raw_os_error(2));
        let v: serde_json::Value = serde_json::from_str(&ErrorJson::of(&*io).render()).unwrap();
        assert_eq!(v["error"]["errno"], 2);
        assert_eq!(v["error"]["errname"], "ENOENT");
        assert_eq!(v["error"]["kind"], "failed");
        assert!(v["error"].get("request").is_none());
    }

    #[test]
    fn features_snapshot() {
        let f = nk_bpf::Features::from_btf(&[]).unwrap_or_default();
        insta::assert_snapshot!("features_table", features_table(&f));
        insta::assert_snapshot!("features_json", json(&f).unwrap());
    }

    #[test]
    fn errnames_are_unique() {
        let names: Vec<&str> = (1..600).filter_map(errname).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "{names:?}");
        assert_eq!(errname(libc::EEXIST), Some("EEXIST"));
        assert_eq!(errname(524), Some("ENOTSUPP"));
        assert_eq!(errname(4095), None);
    }

    #[test]
    fn link_table_snapshot() {
        let l3 = LinkInfo {
            index: 5,
            name: "nk0".into(),
            flags: libc::IFF_UP as u32,
            mtu: Some(1500),
            address: Some(nk_netlink::HwAddr(vec![0; 6])),
            kind: Some("netkit".into()),
            netkit: Some(NetkitInfo {
                primary: true,
                mode: Some(NetkitMode::L3),
                policy: Some(NetkitPolicy::Pass),
                peer_policy: Some(NetkitPolicy::Drop),
                ..Default::default()
            }),
            headroom: Some(128),
            tailroom: Some(16),
            ..Default::default()
        };
        let lo = LinkInfo {
            index: 1,
            name: "lo".into(),
            mtu: Some(65536),
            ..Default::default()
        };
        let links = [lo, l3];
        insta::assert_snapshot!(links_table(&links));
        // `nkctl --json link show`: the decoded LinkInfo as is.
        insta::assert_snapshot!("link_json", json(&links).unwrap());
    }

    #[test]
    fn query_table_snapshot() {
        let at = AttachPoint::Tcx {
            ifindex: 3,
            dir: Direction::Ingress,
        };
        let q = QueryResult {
            revision: 4,
            prog_ids: vec![21, 20],
            link_ids: vec![7, 0],
        };
        let names = vec!["nk_order_2".to_string(), "nk_order_1".to_string()];
        insta::assert_snapshot!(query_table("veth0", at, &q, &names));
        insta::assert_snapshot!(json(&QueryJson::new("veth0", at, &q, &names)).unwrap());
    }

    #[test]
    fn commands_that_printed_nothing_print_what_they_did() {
        let at = AttachPoint::Netkit {
            ifindex: 4,
            side: nk_bpf::NetkitSide::Peer,
        };
        let d = DetachJson {
            detached: DetachedJson {
                hook: HookJson::new(at, "nk0"),
                prog_id: Some(21),
                pin: None,
            },
        };
        let v: serde_json::Value = serde_json::from_str(&json(&d).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"detached": {"hook": {"kind": "netkit", "side": "peer",
                "ifindex": 4, "dev": "nk0"}, "prog_id": 21}})
        );
        let del: serde_json::Value = serde_json::from_str(
            &json(&LinkDone::Deleted {
                name: "nk0",
                ifindex: 4,
            })
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            del,
            serde_json::json!({"deleted": {"name": "nk0", "ifindex": 4}})
        );
        let l = nk_netlink::LinkInfo {
            index: 4,
            name: "nk0".into(),
            ..Default::default()
        };
        let added: serde_json::Value =
            serde_json::from_str(&json(&LinkDone::Added(&l)).unwrap()).unwrap();
        assert_eq!(added["added"]["name"], "nk0");
        let ep: serde_json::Value = serde_json::from_str(
            &json(&EndpointDeleted {
                deleted: EndpointRef {
                    endpoint: "lxc0",
                    netns: Some("pod0"),
                },
            })
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            ep,
            serde_json::json!({"deleted": {"endpoint": "lxc0", "netns": "pod0"}})
        );
        // The same outputs, fixed as snapshots with the rest of the schema.
        let changed = json(&LinkDone::Changed(&l)).unwrap();
        insta::assert_snapshot!(
            "what_commands_did_json",
            [json(&d).unwrap(), del.to_string(), changed, ep.to_string()].join("")
        );
    }

    #[test]
    fn query_of_every_hook_json_snapshot() {
        let q = QueryResult {
            revision: 3,
            prog_ids: vec![21],
            link_ids: vec![7],
        };
        let names = vec!["nk_order_1".to_string()];
        let empty = QueryResult {
            revision: 1,
            ..Default::default()
        };
        let hooks = [
            (
                AttachPoint::Tcx {
                    ifindex: 4,
                    dir: Direction::Ingress,
                },
                &empty,
            ),
            (
                AttachPoint::Tcx {
                    ifindex: 4,
                    dir: Direction::Egress,
                },
                &empty,
            ),
            (
                AttachPoint::Netkit {
                    ifindex: 4,
                    side: nk_bpf::NetkitSide::Primary,
                },
                &q,
            ),
            (
                AttachPoint::Netkit {
                    ifindex: 4,
                    side: nk_bpf::NetkitSide::Peer,
                },
                &empty,
            ),
        ];
        let all: Vec<QueryJson<'_>> = hooks
            .iter()
            .map(|(at, q)| QueryJson::new("nk0", *at, q, &names))
            .collect();
        insta::assert_snapshot!(json(&all).unwrap());
    }

    #[test]
    fn attach_output_snapshot() {
        let at = AttachPoint::Tcx {
            ifindex: 3,
            dir: Direction::Egress,
        };
        let linked = AttachJson {
            dev: "veth0",
            hook: HookJson::new(at, "veth0"),
            prog_id: 21,
            link_id: Some(7),
            pin: Some("/sys/fs/bpf/nk/l1".into()),
            position: Some(0),
            revision: 5,
        };
        let plain = AttachJson {
            link_id: None,
            pin: None,
            position: Some(1),
            revision: 6,
            ..linked
        };
        insta::assert_snapshot!(attach_line(&linked) + &attach_line(&plain));
        insta::assert_snapshot!(json(&[&linked, &plain]).unwrap());
    }
}
