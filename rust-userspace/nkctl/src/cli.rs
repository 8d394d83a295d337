//! Argument parsing and the commands.

use std::os::fd::AsFd;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use nk_bpf::{
    mprog, pin, Anchor, AttachPoint, Direction, LinkFd, NetkitSide, Object, ProgFd, Relative,
};
use nk_netlink::{
    LinkChange, Mac, NetkitMode, NetkitPolicy, NetkitScrub, NetkitSpec, NetkitSync, NetnsFd,
    NetnsRef, RtSocket,
};

use crate::output;

/// Errors shown to the user: each already names the request, errno and
/// the kernel's extack text.
pub type Error = Box<dyn std::error::Error>;

#[derive(Parser)]
#[command(
    name = "nkctl",
    version,
    about = "netkit devices and tcx/netkit BPF programs, by raw rtnetlink and bpf(2)"
)]
pub struct Cli {
    /// Machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// netkit links.
    #[command(subcommand)]
    Link(LinkCmd),
    /// tcx and netkit programs.
    #[command(subcommand)]
    Prog(ProgCmd),
    /// Pod-like endpoints (veth, netkit, netkit-l2), as Cilium sets them up.
    #[command(subcommand)]
    Endpoint(EndpointCmd),
    /// Sockets: destroy the ones connected to a backend, in every netns.
    #[command(subcommand)]
    Sock(SockCmd),
    /// What the running kernel supports, from its BTF (as `bpftool
    /// feature probe kernel`, for what nkctl drives).
    Feature,
}

#[derive(Subcommand)]
pub enum SockCmd {
    /// Destroy (or list, with --dry-run) the TCP/UDP sockets connected to a backend.
    Destroy(crate::sock::SockDestroy),
}

#[derive(Subcommand)]
pub enum EndpointCmd {
    /// Create the pair, move the Pod side into its netns, address and route it.
    Add(crate::endpoint::EndpointAdd),
    /// Remove an endpoint (its pinned programs, the pair, optionally the netns).
    Del(crate::endpoint::EndpointDel),
}

#[derive(Subcommand)]
pub enum LinkCmd {
    /// Create a netkit pair.
    Add(LinkAdd),
    /// Show links (all, or one by name).
    Show {
        /// Device name.
        name: Option<String>,
    },
    /// Change a device.
    Set(LinkSet),
    /// Delete a device (and its peer).
    Del {
        /// Device name.
        name: String,
    },
}

#[derive(Args)]
pub struct LinkAdd {
    /// Primary device name.
    pub name: String,
    /// Peer device name.
    #[arg(long)]
    pub peer: String,
    /// l2 (Ethernet) or l3 (IP only, no ARP).
    #[arg(long, default_value = "l3")]
    pub mode: NetkitMode,
    /// Primary's default verdict without programs: forward or blackhole.
    #[arg(long)]
    pub policy: Option<NetkitPolicy>,
    /// Peer's default verdict.
    #[arg(long)]
    pub peer_policy: Option<NetkitPolicy>,
    /// Primary's scrub: none or default.
    #[arg(long)]
    pub scrub: Option<NetkitScrub>,
    /// Peer's scrub.
    #[arg(long)]
    pub peer_scrub: Option<NetkitScrub>,
    /// Needed headroom for both devices (IFLA_NETKIT_HEADROOM).
    #[arg(long)]
    pub headroom: Option<u16>,
    /// Needed tailroom for both devices (IFLA_NETKIT_TAILROOM).
    #[arg(long)]
    pub tailroom: Option<u16>,
    /// Settings the primary owns for the pair (IFLA_NETKIT_SYNC): mtu, gso,
    /// both (mtu,gso) or none. Kernels without the attribute ignore it.
    #[arg(long, value_name = "mtu,gso")]
    pub sync: Option<NetkitSync>,
    /// Primary's MAC (l2 only).
    #[arg(long)]
    pub mac: Option<Mac>,
    /// Peer's MAC (l2 only).
    #[arg(long)]
    pub peer_mac: Option<Mac>,
    /// MTU for the primary.
    #[arg(long)]
    pub mtu: Option<u32>,
    /// MTU for the peer.
    #[arg(long)]
    pub peer_mtu: Option<u32>,
    /// Create the peer in this netns: a name under /run/netns, or a path.
    #[arg(long, conflicts_with = "peer_netns_pid")]
    pub peer_netns: Option<String>,
    /// Create the peer in the netns of this process.
    #[arg(long)]
    pub peer_netns_pid: Option<u32>,
}

#[derive(Args)]
pub struct LinkSet {
    /// Device name.
    pub name: String,
    /// New MTU.
    #[arg(long)]
    pub mtu: Option<u32>,
    /// New MAC.
    #[arg(long)]
    pub mac: Option<Mac>,
    /// Bring it up.
    #[arg(long, conflicts_with = "down")]
    pub up: bool,
    /// Bring it down.
    #[arg(long)]
    pub down: bool,
    /// IFLA_GSO_MAX_SIZE.
    #[arg(long)]
    pub gso_max_size: Option<u32>,
    /// IFLA_GSO_IPV4_MAX_SIZE.
    #[arg(long)]
    pub gso_ipv4_max_size: Option<u32>,
    /// Needed headroom of both netkit devices (IFLA_NETKIT_HEADROOM; on the
    /// primary, at runtime: needs the nkdev kernel series).
    #[arg(long)]
    pub headroom: Option<u16>,
    /// Needed tailroom of both netkit devices (IFLA_NETKIT_TAILROOM).
    #[arg(long)]
    pub tailroom: Option<u16>,
}

/// Attach hooks.
#[derive(Clone, Copy, ValueEnum)]
pub enum Hook {
    /// tcx ingress.
    TcxIngress,
    /// tcx egress.
    TcxEgress,
    /// netkit primary (packets the primary sends to the peer).
    NetkitPrimary,
    /// netkit peer (packets the peer sends).
    NetkitPeer,
}

impl Hook {
    fn at(self, ifindex: u32) -> AttachPoint {
        match self {
            Hook::TcxIngress => AttachPoint::Tcx {
                ifindex,
                dir: Direction::Ingress,
            },
            Hook::TcxEgress => AttachPoint::Tcx {
                ifindex,
                dir: Direction::Egress,
            },
            Hook::NetkitPrimary => AttachPoint::Netkit {
                ifindex,
                side: NetkitSide::Primary,
            },
            Hook::NetkitPeer => AttachPoint::Netkit {
                ifindex,
                side: NetkitSide::Peer,
            },
        }
    }
}

#[derive(Args)]
pub struct Target {
    /// Device (for netkit hooks: the primary).
    #[arg(long)]
    pub dev: String,
    /// Hook.
    #[arg(long, value_enum)]
    pub hook: Hook,
}

#[derive(Args)]
pub struct QueryArgs {
    /// Device (for netkit hooks: the primary).
    #[arg(long)]
    pub dev: String,
    /// Hook; without it, tcx ingress and egress, and for a netkit
    /// primary its two lists too.
    #[arg(long, value_enum)]
    pub hook: Option<Hook>,
}

#[derive(Subcommand)]
pub enum ProgCmd {
    /// Attach a program: from an ELF object, a bpffs pin or by id.
    Attach(ProgAttach),
    /// Detach a program (by pinned link or by program id).
    Detach(ProgDetach),
    /// List a hook's programs in order, with the revision; without
    /// --hook, every hook of the device (as `bpftool net show dev`).
    Query(QueryArgs),
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["obj", "pinned", "prog_id"])))]
pub struct ProgAttach {
    #[command(flatten)]
    pub target: Target,
    /// ELF object built from bpf/ (with --prog).
    #[arg(long, requires = "prog")]
    pub obj: Option<PathBuf>,
    /// Program (C function) name in --obj.
    #[arg(long, requires = "obj")]
    pub prog: Option<String>,
    /// A program pinned in bpffs instead of --obj (bpftool's `pinned`).
    #[arg(long, value_name = "PATH")]
    pub pinned: Option<PathBuf>,
    /// A loaded program by id instead of --obj (bpftool's `id`).
    #[arg(long, value_name = "ID")]
    pub prog_id: Option<u32>,
    /// Before every other program.
    #[arg(long, group = "anchor")]
    pub first: bool,
    /// After every other program (default).
    #[arg(long, group = "anchor")]
    pub last: bool,
    /// Right before REF: prog:ID, link:ID or a pinned link's path.
    #[arg(long, group = "anchor", value_name = "REF")]
    pub before: Option<String>,
    /// Right after REF.
    #[arg(long, group = "anchor", value_name = "REF")]
    pub after: Option<String>,
    /// Take prog:ID's place (program attachment, without --pin).
    #[arg(long, group = "anchor", value_name = "REF", conflicts_with = "pin")]
    pub replace: Option<String>,
    /// Fail with ESTALE unless the hook is at this revision.
    #[arg(long)]
    pub expected_revision: Option<u64>,
    /// Attach as a BPF link pinned here (it outlives nkctl); without it the
    /// program is attached directly.
    #[arg(long)]
    pub pin: Option<PathBuf>,
}

#[derive(Args)]
pub struct ProgDetach {
    #[command(flatten)]
    pub target: Target,
    /// The pinned link to detach and unpin.
    #[arg(long, group = "what")]
    pub pin: Option<PathBuf>,
    /// The directly attached program to detach.
    #[arg(long, group = "what")]
    pub prog_id: Option<u32>,
    /// Fail with ESTALE unless the hook is at this revision.
    #[arg(long)]
    pub expected_revision: Option<u64>,
}

/// Creates the missing directories above the pin path `p`, as `bpftool
/// prog pin` does, but only inside a bpf filesystem: the nearest existing
/// ancestor must be on one.
fn make_pin_dir(p: &std::path::Path) -> Result<(), Error> {
    let Some(parent) = p.parent() else {
        return Ok(());
    };
    if parent.as_os_str().is_empty() || parent.exists() {
        return Ok(());
    }
    // A relative path's ancestors end at "", the current directory.
    let existing = parent
        .ancestors()
        .map(|a| {
            if a.as_os_str().is_empty() {
                std::path::Path::new(".")
            } else {
                a
            }
        })
        .find(|a| a.exists())
        .unwrap_or(std::path::Path::new("/"));
    // check_bpffs looks at the directory of its argument.
    pin::check_bpffs(&existing.join("x"))?;
    std::fs::create_dir_all(parent)
        .map_err(|e| format!("--pin {}: creating {}: {e}", p.display(), parent.display()).into())
}

/// A parsed anchor reference; keeps any fd it had to open.
enum Ref {
    Prog(u32),
    Link(u32),
    Pinned(LinkFd),
}

fn parse_ref(s: &str) -> Result<Ref, Error> {
    if let Some(id) = s.strip_prefix("prog:") {
        return Ok(Ref::Prog(
            id.parse().map_err(|_| format!("bad program id in {s:?}"))?,
        ));
    }
    if let Some(id) = s.strip_prefix("link:") {
        return Ok(Ref::Link(
            id.parse().map_err(|_| format!("bad link id in {s:?}"))?,
        ));
    }
    if s.starts_with('/') {
        return Ok(Ref::Pinned(LinkFd::from_owned(pin::get(
            std::path::Path::new(s),
        )?)));
    }
    Err(format!("anchor {s:?}: expected prog:ID, link:ID or the path of a pinned link").into())
}

fn relative(r: &Ref) -> Relative<'_> {
    match r {
        Ref::Prog(id) => Relative::ProgId(*id),
        Ref::Link(id) => Relative::LinkId(*id),
        Ref::Pinned(fd) => Relative::LinkFd(fd.as_fd()),
    }
}

fn ifindex(s: &mut RtSocket, dev: &str) -> Result<u32, Error> {
    Ok(s.link_get(dev)?.index)
}

/// What a command printed, and, when it did not do all it was asked to,
/// why (nkctl prints the output, then exits non-zero).
pub struct Done {
    /// The output.
    pub out: String,
    /// Set when the command partly failed.
    pub failed: Option<String>,
}

impl From<String> for Done {
    fn from(out: String) -> Self {
        Done { out, failed: None }
    }
}

/// Runs a command.
///
/// # Errors
/// The command failed before it had anything to report.
pub fn run(cli: Cli) -> Result<Done, Error> {
    match cli.cmd {
        Cmd::Link(c) => link(c, cli.json).map(Done::from),
        Cmd::Feature => {
            let f = nk_bpf::Features::probe()?;
            Ok(Done::from(if cli.json {
                output::json(&f)?
            } else {
                output::features_table(&f)
            }))
        }
        Cmd::Prog(c) => prog(c, cli.json).map(Done::from),
        Cmd::Endpoint(EndpointCmd::Add(a)) => {
            let e = crate::endpoint::add(&a)?;
            Ok(Done::from(if cli.json {
                output::json(&e)?
            } else {
                crate::endpoint::table(&e)
            }))
        }
        Cmd::Endpoint(EndpointCmd::Del(d)) => {
            crate::endpoint::del(&d)?;
            Ok(Done::from(if cli.json {
                output::json(&output::EndpointDeleted {
                    deleted: output::EndpointRef {
                        endpoint: &d.name,
                        netns: d.netns.as_deref(),
                    },
                })?
            } else {
                String::new()
            }))
        }
        Cmd::Sock(SockCmd::Destroy(a)) => {
            let r = crate::sock::destroy(&a)?;
            let out = if cli.json {
                output::json(&r)?
            } else {
                crate::sock::table(&r)
            };
            Ok(Done {
                out,
                failed: r.failure(),
            })
        }
    }
}

fn link(c: LinkCmd, json: bool) -> Result<String, Error> {
    match c {
        LinkCmd::Add(a) => {
            let ns = match &a.peer_netns {
                Some(n) if n.contains('/') => Some(NetnsFd::open(std::path::Path::new(n))?),
                Some(n) => Some(NetnsFd::named(n)?),
                None => None,
            };
            let mut spec = NetkitSpec::new(&a.name, &a.peer, a.mode);
            spec.policy = a.policy;
            spec.peer_policy = a.peer_policy;
            spec.scrub = a.scrub;
            spec.peer_scrub = a.peer_scrub;
            spec.headroom = a.headroom;
            spec.tailroom = a.tailroom;
            spec.sync = a.sync;
            spec.mac = a.mac;
            spec.peer.mac = a.peer_mac;
            spec.mtu = a.mtu;
            spec.peer.mtu = a.peer_mtu;
            spec.peer.netns = match (&ns, a.peer_netns_pid) {
                (Some(fd), _) => Some(NetnsRef::Fd(fd.as_fd())),
                (None, Some(pid)) => Some(NetnsRef::Pid(pid)),
                (None, None) => None,
            };
            spec.validate()?;
            let mut s = RtSocket::open()?;
            s.netkit_add(&spec)?;
            Ok(if json {
                output::json(&output::LinkDone::Added(&s.link_get(&a.name)?))?
            } else {
                String::new()
            })
        }
        LinkCmd::Show { name } => {
            let mut s = RtSocket::open()?;
            let links = match name {
                Some(n) => vec![s.link_get(&n)?],
                None => s.link_dump()?,
            };
            Ok(if json {
                output::json(&links)?
            } else {
                output::links_table(&links)
            })
        }
        LinkCmd::Set(a) => {
            let mut s = RtSocket::open()?;
            let idx = ifindex(&mut s, &a.name)?;
            let up = if a.up {
                Some(true)
            } else if a.down {
                Some(false)
            } else {
                None
            };
            let change = LinkChange {
                mtu: a.mtu,
                mac: a.mac,
                up,
                gso_max_size: a.gso_max_size,
                gso_ipv4_max_size: a.gso_ipv4_max_size,
                netkit_headroom: a.headroom,
                netkit_tailroom: a.tailroom,
                ..Default::default()
            };
            s.link_set(idx, &change)?;
            Ok(if json {
                output::json(&output::LinkDone::Changed(&s.link_get(&a.name)?))?
            } else {
                String::new()
            })
        }
        LinkCmd::Del { name } => {
            let mut s = RtSocket::open()?;
            let idx = ifindex(&mut s, &name)?;
            s.link_del(idx)?;
            Ok(if json {
                output::json(&output::LinkDone::Deleted {
                    name: &name,
                    ifindex: idx,
                })?
            } else {
                String::new()
            })
        }
    }
}

fn prog(c: ProgCmd, json: bool) -> Result<String, Error> {
    match c {
        ProgCmd::Query(t) => {
            let link = RtSocket::open()?.link_get(&t.dev)?;
            let hooks = match t.hook {
                Some(h) => vec![h],
                None if link.netkit.as_ref().is_some_and(|n| n.primary) => vec![
                    Hook::TcxIngress,
                    Hook::TcxEgress,
                    Hook::NetkitPrimary,
                    Hook::NetkitPeer,
                ],
                None => vec![Hook::TcxIngress, Hook::TcxEgress],
            };
            let mut tables = Vec::new();
            let mut objs = Vec::new();
            for h in &hooks {
                let at = h.at(link.index);
                let q = mprog::query(at)?;
                let names: Vec<String> = q
                    .prog_ids
                    .iter()
                    .map(|id| {
                        ProgFd::from_id(*id)
                            .and_then(|p| p.name())
                            .unwrap_or_default()
                    })
                    .collect();
                if json {
                    objs.push(output::QueryJson::new(&t.dev, at, &q, &names));
                } else {
                    tables.push(output::query_table(&t.dev, at, &q, &names));
                }
            }
            Ok(match (json, t.hook) {
                // One hook: its object, as before; every hook: an array.
                (true, Some(_)) => output::json(&objs[0])?,
                (true, None) => output::json(&objs)?,
                (false, _) => tables.join("\n"),
            })
        }
        ProgCmd::Attach(a) => {
            if let Some(p) = &a.pin {
                make_pin_dir(p)?;
                pin::check_bpffs(p)?;
                if p.exists() {
                    return Err(format!("pin path {} exists already", p.display()).into());
                }
            }
            let idx = ifindex(&mut RtSocket::open()?, &a.target.dev)?;
            let at = a.target.hook.at(idx);
            let prog = match (&a.obj, &a.prog, &a.pinned, a.prog_id) {
                (Some(o), Some(name), _, _) => Object::load(o)?.prog(name)?,
                (_, _, Some(p), _) => ProgFd::from_owned(pin::get(p)?),
                (_, _, _, Some(id)) => ProgFd::from_id(id)?,
                _ => return Err("give --obj OBJ --prog NAME, --pinned PATH or --prog-id ID".into()),
            };
            let before = a.before.as_deref().map(parse_ref).transpose()?;
            let after = a.after.as_deref().map(parse_ref).transpose()?;
            let anchor = match (a.first, &before, &after) {
                (true, _, _) => Anchor::First,
                (_, Some(r), _) => Anchor::Before(relative(r)),
                (_, _, Some(r)) => Anchor::After(relative(r)),
                _ => Anchor::Last,
            };
            let mut link_id = None;
            match &a.pin {
                Some(p) => {
                    let link = mprog::link_create(&prog, at, anchor, a.expected_revision)?;
                    if let Err(e) = pin::pin(&link, p) {
                        // Dropping the link detaches it: nothing half-done stays.
                        drop(link);
                        return Err(e.into());
                    }
                    link_id = link.id().ok();
                }
                None => {
                    let replace = match a.replace.as_deref().map(parse_ref).transpose()? {
                        Some(Ref::Prog(id)) => Some(ProgFd::from_id(id)?),
                        Some(_) => return Err("--replace takes prog:ID".into()),
                        None => None,
                    };
                    mprog::prog_attach(&prog, at, anchor, replace.as_ref(), a.expected_revision)?;
                }
            }
            // Report where it landed: the query after the attach.
            let prog_id = prog.id()?;
            let q = mprog::query(at)?;
            let out = output::AttachJson {
                dev: &a.target.dev,
                hook: output::HookJson::new(at, &a.target.dev),
                prog_id,
                link_id,
                pin: a.pin.as_ref().map(|p| p.display().to_string()),
                position: q.prog_ids.iter().position(|id| *id == prog_id),
                revision: q.revision,
            };
            Ok(if json {
                output::json(&out)?
            } else {
                output::attach_line(&out)
            })
        }
        ProgCmd::Detach(d) => {
            let at = match (&d.pin, d.prog_id) {
                (Some(p), _) => {
                    if d.expected_revision.is_some() {
                        return Err("--expected-revision applies to --prog-id; a pinned link detaches by itself".into());
                    }
                    // A link, of the hook's kind, attached where the
                    // command says: refused before anything changes. A
                    // defunct link (its device gone) has no attach point
                    // and is only unpinned; its device need not exist.
                    let link = pin::get_link(p)?;
                    let info = link.info()?;
                    let (want, kind) = match d.target.hook {
                        Hook::TcxIngress | Hook::TcxEgress => {
                            (nk_sys::uapi::BPF_LINK_TYPE_TCX, "tcx")
                        }
                        Hook::NetkitPrimary | Hook::NetkitPeer => {
                            (nk_sys::uapi::BPF_LINK_TYPE_NETKIT, "netkit")
                        }
                    };
                    if info.link_type != want {
                        return Err(format!(
                            "{}: a link of type {}, not a {kind} link; nothing detached",
                            p.display(),
                            info.link_type
                        )
                        .into());
                    }
                    let at = match info.attach {
                        Some(a) => {
                            let at = d
                                .target
                                .hook
                                .at(ifindex(&mut RtSocket::open()?, &d.target.dev)?);
                            if a != at {
                                return Err(format!(
                                    "{}: the link is attached at {a}, not at {at} ({}); nothing detached",
                                    p.display(),
                                    d.target.dev,
                                )
                                .into());
                            }
                            at
                        }
                        None => d.target.hook.at(0),
                    };
                    link.detach()?;
                    pin::unpin(p)?;
                    at
                }
                (None, Some(id)) => {
                    let at = d
                        .target
                        .hook
                        .at(ifindex(&mut RtSocket::open()?, &d.target.dev)?);
                    mprog::prog_detach(&ProgFd::from_id(id)?, at, d.expected_revision)?;
                    at
                }
                (None, None) => return Err("give --pin PATH or --prog-id ID".into()),
            };
            Ok(if json {
                output::json(&output::DetachJson {
                    detached: output::DetachedJson {
                        hook: output::HookJson::new(at, &d.target.dev),
                        prog_id: d.prog_id.filter(|_| d.pin.is_none()),
                        pin: d.pin.as_ref().map(|p| p.display().to_string()),
                    },
                })?
            } else {
                String::new()
            })
        }
    }
}
