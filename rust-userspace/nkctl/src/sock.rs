//! `nkctl sock destroy`: destroy the TCP/UDP sockets connected to a backend,
//! in every netns (or one), the way Cilium's socket-LB must when a backend
//! goes away.
//!
//! - `--method bpf` (default): one `BPF_PROG_RUN` of
//!   `bpf/nk_sock_destroy.bpf.c`, which walks every netns with the series'
//!   open-coded netns iterator and the sockets of each with the TCP/UDP
//!   socket iterators, destroying the matches with
//!   `bpf_iter_{tcp,udp}_sock_abort()`.
//! - `--method diag`: today's way, the baseline: enter each netns that
//!   user space can find (`/run/netns/*`, `/proc/*/ns/net`), dump its
//!   sockets with `SOCK_DIAG_BY_FAMILY` and send one `SOCK_DESTROY` per
//!   match.
//!
//! Both match the same sockets: full TCP sockets (not TIME_WAIT or
//! NEW_SYN_RECV) and UDP sockets of the backend's family whose remote
//! address and port are the backend's.

use std::collections::BTreeMap;
use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nk_bpf::Object;
use nk_netlink::diag::{addr_words, sockaddr, DiagSocket, Proto, TCP_FULL_STATES};
use nk_netlink::wire::{bytes_of, read_pod};
use nk_netlink::NetnsFd;
use nk_sys::{syscall, Syscall};

use crate::cli::Error;

/// Which protocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProtoArg {
    /// TCP only.
    Tcp,
    /// UDP only.
    Udp,
    /// TCP and UDP.
    All,
}

impl ProtoArg {
    fn protos(self) -> &'static [Proto] {
        match self {
            ProtoArg::Tcp => &[Proto::Tcp],
            ProtoArg::Udp => &[Proto::Udp],
            ProtoArg::All => &[Proto::Tcp, Proto::Udp],
        }
    }
}

/// How to find and destroy the sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// One BPF program run over every netns (needs the kernel series).
    Bpf,
    /// Enter each netns; SOCK_DIAG dump and SOCK_DESTROY per socket.
    Diag,
}

/// `nkctl sock destroy` arguments.
#[derive(clap::Args, Debug)]
pub struct SockDestroy {
    /// The backend the sockets are connected to (ADDR:PORT, [V6]:PORT).
    #[arg(long)]
    pub backend: SocketAddr,
    /// Protocols to look at.
    #[arg(long, value_enum, default_value = "all")]
    pub proto: ProtoArg,
    /// `all`, or one netns file (/run/netns/NAME, /proc/PID/ns/net).
    #[arg(long, default_value = "all")]
    pub netns: String,
    /// How to find and destroy them.
    #[arg(long, value_enum, default_value = "bpf")]
    pub method: Method,
    /// List the sockets without destroying them.
    #[arg(long)]
    pub dry_run: bool,
    /// The BPF object (bpf/nk_sock_destroy.bpf.c built by `cargo xtask`).
    #[arg(long, env = "NK_SOCK_DESTROY_OBJ", value_name = "FILE")]
    pub obj: Option<PathBuf>,
    /// Keep the loaded program and its maps pinned in this bpffs directory
    /// and reuse them on later runs (no load, no verification), as an
    /// agent that keeps the program loaded would. `rm -r DIR` to reload.
    #[arg(long, value_name = "DIR")]
    pub pin: Option<PathBuf>,
}

/// One matching socket.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct FoundSock {
    /// Its netns (nsfs inode).
    pub netns_ino: u64,
    /// `tcp` or `udp`.
    pub proto: &'static str,
    /// Local address.
    pub local: SocketAddr,
    /// Remote address (the backend).
    pub remote: SocketAddr,
    /// TCP state number (UDP: 1 connected).
    pub state: u8,
    /// The errno of a destroy that failed; None when it was destroyed (or,
    /// in a dry run, found).
    pub errno: Option<i32>,
}

/// A socket address as integers that order as `SocketAddr` does: IPv4
/// before IPv6, then address, port, and for IPv6 flow info and scope.
type AddrKey = (u8, u128, u16, u32, u32);

fn addr_key(a: &SocketAddr) -> AddrKey {
    match a {
        SocketAddr::V4(v) => (0, u128::from(u32::from(*v.ip())), v.port(), 0, 0),
        SocketAddr::V6(v) => (1, u128::from(*v.ip()), v.port(), v.flowinfo(), v.scope_id()),
    }
}

impl FoundSock {
    /// The derived order as integers (`tcp` < `udp` as their names are):
    /// comparing two keys takes a few instructions where comparing two
    /// FoundSocks calls memcmp for the protocol and matches two enums.
    fn order_key(&self) -> (u64, bool, AddrKey, AddrKey, u8, Option<i32>) {
        (
            self.netns_ino,
            self.proto != "tcp",
            addr_key(&self.local),
            addr_key(&self.remote),
            self.state,
            self.errno,
        )
    }
}

/// Sorts a report's sockets in their derived order. They arrive in hash
/// bucket order, as good as random, and a sort of random input makes a
/// varying number of comparisons: cheap ones keep that small (issue 16's
/// instruction counts saw it).
fn sort_sockets(socks: &mut [FoundSock]) {
    socks.sort_by_cached_key(FoundSock::order_key);
}

/// Per-netns result.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct NetnsCount {
    /// nsfs inode of the netns.
    pub ino: u64,
    /// `ip netns` name, "init", or None.
    pub name: Option<String>,
    /// TCP sockets found (and destroyed unless dry run).
    pub tcp: u32,
    /// UDP sockets found.
    pub udp: u32,
    /// Destroy failures.
    pub errors: u32,
}

/// What a run did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    /// The method.
    pub method: Method,
    /// Nothing was destroyed.
    pub dry_run: bool,
    /// The backend.
    pub backend: SocketAddr,
    /// Namespaces looked at.
    pub netns_walked: u32,
    /// Sockets looked at (bpf: every socket of the walked netns; diag:
    /// the ones the dumps returned).
    pub socks_walked: u64,
    /// Namespaces with matches (and, with --netns PATH, that one).
    pub netns: Vec<NetnsCount>,
    /// The matching sockets.
    pub sockets: Vec<FoundSock>,
    /// Matches the bpf method saw but could not list (map full).
    pub unlisted: u32,
    /// The errno that stopped a walk before its end (the kernel could not
    /// allocate, say): sockets may have been missed.
    pub walk_errno: Option<i32>,
    /// Where the time went (not in the table output).
    pub phases: Phases,
}

/// Seconds per phase, and what the verifier did (bpf method).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Phases {
    /// bpf: open, verify and load the object; diag: find the netns.
    pub setup_s: f64,
    /// bpf: the BPF_PROG_RUN; diag: enter, dump and destroy in each netns.
    pub run_s: f64,
    /// bpf: reading the result maps.
    pub read_s: f64,
    /// bpf: instructions the verifier processed.
    pub verified_insns: u32,
}

impl Report {
    /// Total matches.
    pub fn total(&self) -> u32 {
        self.netns.iter().map(|n| n.tcp + n.udp).sum()
    }

    /// Destroys that failed.
    pub fn errors(&self) -> u32 {
        self.netns.iter().map(|n| n.errors).sum()
    }

    /// Why the run did not do all it was asked to, if it did not: failed
    /// destroys, or a walk that stopped early. `nkctl` exits non-zero then,
    /// after the report.
    pub fn failure(&self) -> Option<String> {
        let mut why = Vec::new();
        if let Some(e) = self.walk_errno {
            why.push(format!(
                "the socket walk stopped early ({}): sockets may have been missed",
                errno_text(e)
            ));
        }
        let n = self.errors();
        if n > 0 {
            let first = self.sockets.iter().find_map(|s| s.errno);
            why.push(format!(
                "{n} of {} destroys failed{}",
                n + self.total(),
                first.map_or(String::new(), |e| format!(
                    ", the first with {}",
                    errno_text(e)
                ))
            ));
        }
        (!why.is_empty()).then(|| why.join("; "))
    }
}

/// `EPERM (Operation not permitted)`, and what it means here.
pub fn errno_text(e: i32) -> String {
    let io = std::io::Error::from_raw_os_error(e).to_string();
    let msg = io.split(" (os error").next().unwrap_or(&io).to_string();
    let name = match e {
        libc::EPERM => "EPERM",
        libc::ENOMEM => "ENOMEM",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EINVAL => "EINVAL",
        libc::EACCES => "EACCES",
        _ => "",
    };
    let hint = if e == libc::EPERM {
        ": needs CAP_NET_ADMIN over the socket's netns"
    } else {
        ""
    };
    if name.is_empty() {
        format!("errno {e} ({msg}){hint}")
    } else {
        format!("{name} ({msg}){hint}")
    }
}

/// Capabilities (`CAP_*` numbers) that `--method bpf` needs: loading
/// (CAP_BPF), reading the sockets' fields (CAP_PERFMON), and destroying
/// them or walking every netns (CAP_NET_ADMIN; the kernel also refuses to
/// load a program that destroys sockets without it).
const BPF_CAPS: [(u32, &str); 3] = [(39, "CAP_BPF"), (38, "CAP_PERFMON"), (12, "CAP_NET_ADMIN")];
/// `--method diag`: SOCK_DESTROY and entering other netns.
const DIAG_CAPS: [(u32, &str); 2] = [(12, "CAP_NET_ADMIN"), (21, "CAP_SYS_ADMIN")];

/// The capabilities of `need` missing from `CapEff:` of /proc/self/status.
fn missing_caps(status: &str, need: &[(u32, &'static str)]) -> Vec<&'static str> {
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .unwrap_or(0);
    need.iter()
        .filter(|(bit, _)| eff & (1u64 << bit) == 0)
        .map(|(_, name)| *name)
        .collect()
}

/// Refuses to start without the capabilities the method needs: the
/// kernel's errors alone (EPERM from one socket, EACCES from the
/// verifier) would not say which one is missing.
fn check_caps(a: &SockDestroy) -> Result<(), Error> {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let (need, what): (&[(u32, &'static str)], &str) = match a.method {
        Method::Bpf => (&BPF_CAPS, "--method bpf"),
        Method::Diag => (&DIAG_CAPS, "--method diag"),
    };
    let missing = missing_caps(&status, need);
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "sock destroy {what} needs {} (missing from the effective set)",
        missing.join(", ")
    )
    .into())
}

/// Runs the command.
///
/// # Errors
/// Bad input (before any syscall), then the failing syscall with errno.
pub fn destroy(a: &SockDestroy) -> Result<Report, Error> {
    if a.backend.port() == 0 {
        return Err("--backend: port 0 is not a backend port".into());
    }
    let only = match a.netns.as_str() {
        "all" => None,
        p => Some(open_netns(Path::new(p))?),
    };
    // The object is read unless a pinned program serves the run.
    if a.method == Method::Bpf && pinned_dir(a).is_none() {
        object_path(a)?;
    }
    check_caps(a)?;
    let names = netns_names();
    let mut r = match a.method {
        Method::Bpf => by_bpf(a, only.as_ref().map(|(_, ino)| *ino))?,
        Method::Diag => by_diag(a, only)?,
    };
    for n in &mut r.netns {
        n.name = names.get(&n.ino).cloned();
    }
    r.netns
        .sort_by(|x, y| (&x.name, x.ino).cmp(&(&y.name, y.ino)));
    sort_sockets(&mut r.sockets);
    Ok(r)
}

/// Opens a netns file and checks it is one.
fn open_netns(p: &Path) -> Result<(NetnsFd, u64), Error> {
    let ino = fs::metadata(p)
        .map_err(|e| format!("--netns {}: {e}", p.display()))?
        .ino();
    let fd = NetnsFd::open(p)?;
    let ty = syscall(Syscall::NsGetType { fd: fd.as_fd() });
    if ty.ok() != Some(i64::from(libc::CLONE_NEWNET)) {
        return Err(format!("--netns {}: not a network namespace", p.display()).into());
    }
    Ok((fd, ino))
}

/// nsfs inode -> name, for the report: `ip netns` names and "init".
fn netns_names() -> BTreeMap<u64, String> {
    let mut m = BTreeMap::new();
    if let Ok(md) = fs::metadata("/proc/1/ns/net") {
        m.insert(md.ino(), "init".to_string());
    }
    if let Ok(rd) = fs::read_dir(nk_netlink::netns::NETNS_RUN_DIR) {
        for e in rd.flatten() {
            if let Ok(md) = fs::metadata(e.path()) {
                m.entry(md.ino())
                    .or_insert_with(|| e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    m
}

/// Every netns user space can reach: `ip netns` mounts, then the netns of
/// every process; one path per netns (by inode).
pub fn reachable_netns() -> Vec<(PathBuf, u64)> {
    let mut seen = BTreeMap::new();
    let mut dirs: Vec<PathBuf> = fs::read_dir(nk_netlink::netns::NETNS_RUN_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort();
    let mut procs: Vec<PathBuf> = fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .map(|e| e.path().join("ns/net"))
        .collect();
    procs.sort();
    for p in dirs.into_iter().chain(procs) {
        if let Ok(md) = fs::metadata(&p) {
            seen.entry(md.ino()).or_insert(p);
        }
    }
    seen.into_iter().map(|(ino, p)| (p, ino)).collect()
}

fn family(a: &SocketAddr) -> u8 {
    match a.ip() {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    }
}

fn by_diag(a: &SockDestroy, only: Option<(NetnsFd, u64)>) -> Result<Report, Error> {
    let t0 = std::time::Instant::now();
    let targets: Vec<(NetnsFd, u64)> = match only {
        Some(t) => vec![t],
        None => reachable_netns()
            .into_iter()
            // A process may exit between the listing and the open.
            .filter_map(|(p, ino)| NetnsFd::open(&p).ok().map(|fd| (fd, ino)))
            .collect(),
    };
    let mut r = Report {
        method: Method::Diag,
        dry_run: a.dry_run,
        backend: a.backend,
        netns_walked: 0,
        socks_walked: 0,
        netns: Vec::new(),
        sockets: Vec::new(),
        unlisted: 0,
        walk_errno: None,
        phases: Phases::default(),
    };
    r.phases.setup_s = t0.elapsed().as_secs_f64();
    let t1 = std::time::Instant::now();
    let single = targets.len() == 1 && a.netns != "all";
    for (fd, ino) in &targets {
        let _in = fd.enter()?;
        let mut ds = DiagSocket::open()?;
        let mut c = NetnsCount {
            ino: *ino,
            ..Default::default()
        };
        r.netns_walked += 1;
        for &proto in a.proto.protos() {
            let states = match proto {
                Proto::Tcp => TCP_FULL_STATES,
                Proto::Udp => u32::MAX,
            };
            let socks = ds.dump(family(&a.backend), proto, states)?;
            r.socks_walked += socks.len() as u64;
            for s in socks.iter().filter(|s| s.dst == a.backend) {
                let errno = if a.dry_run {
                    None
                } else {
                    match ds.destroy(s) {
                        Ok(()) => None,
                        // Closed since the dump: nothing left to destroy.
                        Err(nk_netlink::Error::Kernel { ref source, .. })
                            if source.raw_os_error() == Some(libc::ENOENT) =>
                        {
                            continue
                        }
                        Err(e) => Some(e.errno().unwrap_or(libc::EIO)),
                    }
                };
                match (errno, proto) {
                    (Some(_), _) => c.errors += 1,
                    (None, Proto::Tcp) => c.tcp += 1,
                    (None, Proto::Udp) => c.udp += 1,
                }
                r.sockets.push(FoundSock {
                    netns_ino: *ino,
                    proto: proto.name(),
                    local: s.src,
                    remote: s.dst,
                    state: s.state,
                    errno,
                });
            }
        }
        if single || c.tcp + c.udp + c.errors > 0 {
            r.netns.push(c);
        }
    }
    r.phases.run_s = t1.elapsed().as_secs_f64();
    Ok(r)
}

/// The records of bpf/nk_sock_destroy.bpf.h, generated from it by bindgen
/// (`cargo xtask bindings`; a tidy test keeps them up to date).
pub use crate::bpf_records::{
    nk_sd_args as SdArgs, nk_sd_sock as SdSock, nk_sd_stats as SdStats,
    NK_SD_MAX_FOUND as SD_MAX_FOUND, NK_SD_TCP, NK_SD_UDP,
};

// bindgen's repr(C) structs of integers, their padding spelled out as
// fields (explicit_padding): pod! checks that at compile time.
nk_netlink::pod!(SdArgs {
    daddr,
    dport,
    family,
    protos,
    dry_run,
    pad,
    netns_ino
});
nk_netlink::pod!(SdSock {
    netns_cookie,
    sk_cookie,
    netns_ino,
    saddr,
    daddr,
    sport,
    dport,
    proto,
    family,
    state,
    err,
    __bindgen_padding_0
});
nk_netlink::pod!(SdStats {
    netns,
    socks,
    found,
    destroyed,
    iter_err
});

/// The BPF_PROG_RUN context for `a`.
pub fn sd_args(a: &SockDestroy, netns_ino: Option<u64>) -> Result<SdArgs, Error> {
    let ino = match netns_ino {
        None => 0,
        Some(i) => u32::try_from(i).map_err(|_| format!("netns inode {i} does not fit u32"))?,
    };
    Ok(SdArgs {
        daddr: addr_words(a.backend.ip()),
        dport: a.backend.port(),
        family: family(&a.backend),
        protos: a.proto.protos().iter().fold(0, |m, p| {
            m | match p {
                Proto::Tcp => NK_SD_TCP as u8,
                Proto::Udp => NK_SD_UDP as u8,
            }
        }),
        dry_run: u8::from(a.dry_run),
        pad: [0; 3],
        netns_ino: ino,
    })
}

/// The program and the maps a run needs, loaded or taken from pins.
struct Loaded {
    _obj: Option<Object>,
    prog: nk_bpf::ProgFd,
    stats: nk_bpf::MapFd,
    found: nk_bpf::MapFd,
    verified_insns: u32,
}

const PINNED: [&str; 3] = ["prog", "nk_sd_stats", "nk_sd_found"];

/// `--obj` (or NK_SOCK_DESTROY_OBJ), checked before anything is loaded.
fn object_path(a: &SockDestroy) -> Result<&Path, Error> {
    let obj = a.obj.as_deref().ok_or(
        "--method bpf needs the BPF object: --obj FILE or NK_SOCK_DESTROY_OBJ \
         (target/bpf/<profile>/nk_sock_destroy.bpf.o)",
    )?;
    if !obj.exists() {
        return Err(format!(
            "--obj {}: no such file (built by `cargo xtask vmtest` from \
             bpf/nk_sock_destroy.bpf.c; skipped on kernels without the series)",
            obj.display()
        )
        .into());
    }
    Ok(obj)
}

/// The pinned program of `--pin DIR` if there is one (the object is not
/// read then), else the object loaded (and pinned with `--pin`).
/// `--pin DIR` when DIR already holds the pinned program.
fn pinned_dir(a: &SockDestroy) -> Option<&Path> {
    a.pin.as_deref().filter(|d| d.join("prog").exists())
}

fn load(a: &SockDestroy) -> Result<Loaded, Error> {
    let pin = a.pin.as_deref();
    if let Some(dir) = pinned_dir(a) {
        let get = |n: &str| nk_bpf::pin::get(&dir.join(n));
        let prog = nk_bpf::ProgFd::from_owned(get("prog")?);
        let stats = nk_bpf::MapFd::from_owned(get("nk_sd_stats")?);
        let found = nk_bpf::MapFd::from_owned(get("nk_sd_found")?);
        check_pinned(dir, &prog, &stats, &found)?;
        return Ok(Loaded {
            _obj: None,
            verified_insns: prog.verified_insns().unwrap_or(0),
            prog,
            stats,
            found,
        });
    }
    if let Some(dir) = pin {
        // Before loading anything: the directory or, if it does not exist
        // yet, its parent must be on bpffs.
        nk_bpf::pin::check_bpffs(&dir.join("prog")).or_else(|_| nk_bpf::pin::check_bpffs(dir))?;
    }
    let obj = object_path(a)?;
    let o = Object::load(obj)?;
    let l = Loaded {
        prog: o.prog("nk_sock_destroy")?,
        stats: o.map("nk_sd_stats")?,
        found: o.map("nk_sd_found")?,
        verified_insns: 0,
        _obj: Some(o),
    };
    if let Some(dir) = pin {
        fs::create_dir_all(dir).map_err(|e| format!("--pin {}: {e}", dir.display()))?;
        let fds = [l.prog.as_fd(), l.stats.as_fd(), l.found.as_fd()];
        for (i, (name, fd)) in PINNED.iter().zip(fds).enumerate() {
            if let Err(e) = nk_bpf::pin::pin(fd, &dir.join(name)) {
                // Leave nothing half-pinned.
                for n in &PINNED[..i] {
                    let _ = nk_bpf::pin::unpin(&dir.join(n));
                }
                return Err(e.into());
            }
        }
    }
    Ok(Loaded {
        verified_insns: l.prog.verified_insns().unwrap_or(0),
        ..l
    })
}

/// The layouts this nkctl reads: pins left by another version of the
/// object (other records) are refused before anything is read from them.
fn expected_layouts() -> [(&'static str, nk_bpf::MapLayout); 2] {
    let array = |value: usize, max: u32| nk_bpf::MapLayout {
        map_type: nk_sys::uapi::BPF_MAP_TYPE_ARRAY,
        key_size: 4,
        value_size: value as u32,
        max_entries: max,
    };
    [
        ("nk_sd_stats", array(std::mem::size_of::<SdStats>(), 1)),
        (
            "nk_sd_found",
            array(std::mem::size_of::<SdSock>(), SD_MAX_FOUND),
        ),
    ]
}

/// What is wrong with a pinned map, if anything.
fn layout_mismatch(
    name: &str,
    got: &nk_bpf::MapLayout,
    want: &nk_bpf::MapLayout,
) -> Option<String> {
    (got != want).then(|| {
        format!(
            "{name} is a map of type {} with {}-byte keys, {}-byte values and {} entries; \
             this nkctl reads type {} with {}-byte keys, {}-byte values and {} entries",
            got.map_type,
            got.key_size,
            got.value_size,
            got.max_entries,
            want.map_type,
            want.key_size,
            want.value_size,
            want.max_entries
        )
    })
}

fn check_pinned(
    dir: &Path,
    prog: &nk_bpf::ProgFd,
    stats: &nk_bpf::MapFd,
    found: &nk_bpf::MapFd,
) -> Result<(), Error> {
    let ty = prog.prog_type()?;
    let mut why = Vec::new();
    if ty != nk_sys::uapi::BPF_PROG_TYPE_SYSCALL {
        why.push(format!("prog is of type {ty}, not a syscall program"));
    }
    for ((name, want), map) in expected_layouts().iter().zip([stats, found]) {
        why.extend(layout_mismatch(name, &map.layout()?, want));
    }
    if why.is_empty() {
        return Ok(());
    }
    Err(format!(
        "--pin {}: {} (pinned by another version of nk_sock_destroy.bpf.o? \
         `rm -r {}` to load this one)",
        dir.display(),
        why.join("; "),
        dir.display()
    )
    .into())
}

fn by_bpf(a: &SockDestroy, netns_ino: Option<u64>) -> Result<Report, Error> {
    let args = sd_args(a, netns_ino)?;
    let t0 = std::time::Instant::now();
    let l = load(a)?;
    let setup_s = t0.elapsed().as_secs_f64();
    let t1 = std::time::Instant::now();
    let mut ctx = bytes_of(&args).to_vec();
    let out = nk_bpf::run::run(&l.prog, &mut ctx, &[])?;
    let run_s = t1.elapsed().as_secs_f64();
    let t2 = std::time::Instant::now();
    if out.retval != 0 {
        return Err(format!(
            "nk_sock_destroy returned {} (stats map missing)",
            out.retval
        )
        .into());
    }
    let mut st = [0u8; std::mem::size_of::<SdStats>()];
    l.stats.lookup(&0u32.to_ne_bytes(), &mut st)?;
    let st: SdStats = read_pod(&st).ok_or("short nk_sd_stats value")?;
    let listed = st.found.min(SD_MAX_FOUND);
    let found = if listed > 0 {
        l.found
            .lookup_batch(4, std::mem::size_of::<SdSock>(), listed)?
    } else {
        Vec::new()
    };
    let mut r = Report {
        method: Method::Bpf,
        dry_run: a.dry_run,
        backend: a.backend,
        netns_walked: st.netns,
        socks_walked: u64::from(st.socks),
        netns: Vec::new(),
        sockets: Vec::new(),
        unlisted: st.found - listed,
        walk_errno: (st.iter_err < 0).then_some(-st.iter_err),
        phases: Phases {
            setup_s,
            run_s,
            read_s: 0.0,
            verified_insns: l.verified_insns,
        },
    };
    let mut per_ns: BTreeMap<u64, NetnsCount> = BTreeMap::new();
    if let Some(ino) = netns_ino {
        per_ns.insert(
            ino,
            NetnsCount {
                ino,
                ..Default::default()
            },
        );
    }
    for (_, v) in found.iter().take(listed as usize) {
        let s: SdSock = read_pod(v).ok_or("short nk_sd_found value")?;
        let ino = u64::from(s.netns_ino);
        let c = per_ns.entry(ino).or_insert_with(|| NetnsCount {
            ino,
            ..Default::default()
        });
        let errno = (s.err != 0).then_some(i32::from(s.err));
        if errno.is_some() {
            c.errors += 1;
        } else if u32::from(s.proto) == NK_SD_TCP {
            c.tcp += 1;
        } else {
            c.udp += 1;
        }
        r.sockets.push(FoundSock {
            errno,
            netns_ino: ino,
            proto: if u32::from(s.proto) == NK_SD_TCP {
                "tcp"
            } else {
                "udp"
            },
            local: sockaddr(s.family, s.saddr, s.sport),
            remote: sockaddr(s.family, s.daddr, s.dport),
            state: s.state,
        });
    }
    r.netns = per_ns.into_values().collect();
    r.phases.read_s = t2.elapsed().as_secs_f64();
    Ok(r)
}

/// `ss`-style name of a TCP state number (include/net/tcp_states.h).
fn state_name(state: u8) -> String {
    let n = match state {
        1 => "ESTAB",
        2 => "SYN-SENT",
        3 => "SYN-RECV",
        4 => "FIN-WAIT-1",
        5 => "FIN-WAIT-2",
        6 => "TIME-WAIT",
        7 => "CLOSE",
        8 => "CLOSE-WAIT",
        9 => "LAST-ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        _ => return state.to_string(),
    };
    n.to_string()
}

fn netns_label(ino: u64, name: &Option<String>) -> String {
    match name {
        Some(n) => n.clone(),
        None => format!("net:[{ino}]"),
    }
}

/// A table of sockets, after a blank line, with `last` as the last column;
/// nothing for no socket.
fn sock_list<'a>(
    r: &Report,
    socks: impl Iterator<Item = &'a FoundSock>,
    last: &str,
    cell: impl Fn(&FoundSock) -> String,
) -> String {
    let names: BTreeMap<u64, Option<String>> =
        r.netns.iter().map(|n| (n.ino, n.name.clone())).collect();
    let mut s = String::new();
    for k in socks {
        if s.is_empty() {
            s += &format!(
                "\n{:<24} {:<5} {:<40} {:<40} {last}\n",
                "NETNS", "PROTO", "LOCAL", "REMOTE"
            );
        }
        let name = names.get(&k.netns_ino).cloned().flatten();
        s += &format!(
            "{:<24} {:<5} {:<40} {:<40} {}\n",
            netns_label(k.netns_ino, &name),
            k.proto,
            k.local.to_string(),
            k.remote.to_string(),
            cell(k)
        );
    }
    s
}

/// The human-readable report.
pub fn table(r: &Report) -> String {
    let mut s = String::new();
    let verb = if r.dry_run {
        "would destroy"
    } else {
        "destroyed"
    };
    if !r.netns.is_empty() {
        s += &format!(
            "{:<24} {:>6} {:>6} {:>6}\n",
            "NETNS", "TCP", "UDP", "ERRORS"
        );
        for n in &r.netns {
            s += &format!(
                "{:<24} {:>6} {:>6} {:>6}\n",
                netns_label(n.ino, &n.name),
                n.tcp,
                n.udp,
                n.errors
            );
        }
    }
    if r.dry_run {
        s += &sock_list(r, r.sockets.iter(), "STATE", |k| state_name(k.state));
    }
    let failed = r.sockets.iter().filter(|k| k.errno.is_some());
    s += &sock_list(r, failed, "ERROR", |k| errno_text(k.errno.unwrap_or(0)));
    let tcp: u32 = r.netns.iter().map(|n| n.tcp).sum();
    let udp: u32 = r.netns.iter().map(|n| n.udp).sum();
    let with = r.netns.iter().filter(|n| n.tcp + n.udp > 0).count();
    s += &format!(
        "{verb} {} sockets to {} (tcp {tcp}, udp {udp}) in {with} of {} netns [{}]\n",
        r.total(),
        r.backend,
        r.netns_walked,
        match r.method {
            Method::Bpf => "bpf",
            Method::Diag => "diag",
        }
    );
    if let Some(why) = r.failure() {
        s += &format!("FAILED: {why}\n");
    }
    if r.unlisted > 0 {
        s += &format!(
            "({} matches not listed: the found map is full)\n",
            r.unlisted
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(backend: &str, proto: ProtoArg, dry: bool) -> SockDestroy {
        SockDestroy {
            backend: backend.parse().unwrap(),
            proto,
            netns: "all".into(),
            method: Method::Bpf,
            dry_run: dry,
            obj: None,
            pin: None,
        }
    }

    #[test]
    fn prog_run_context_bytes() {
        let a = sd_args(
            &args("10.1.2.3:8080", ProtoArg::All, true),
            Some(4026531840),
        )
        .unwrap();
        let b = bytes_of(&a);
        assert_eq!(&b[..4], &[10, 1, 2, 3]);
        assert_eq!(&b[16..24], &[0x90, 0x1f, 2, 3, 1, 0, 0, 0]);
        assert_eq!(&b[24..28], &4026531840u32.to_ne_bytes());
        let a = sd_args(&args("[fd00::1]:53", ProtoArg::Udp, false), None).unwrap();
        let b = bytes_of(&a);
        assert_eq!(b[0], 0xfd);
        assert_eq!(b[15], 1);
        assert_eq!(&b[16..21], &[53, 0, 10, 2, 0]);
    }

    #[test]
    fn bad_input_is_rejected_before_any_syscall() {
        let mut a = args("10.0.0.1:0", ProtoArg::All, false);
        let e = destroy(&a).unwrap_err().to_string();
        assert!(e.contains("port 0"), "{e}");
        a.backend = "10.0.0.1:80".parse().unwrap();
        a.netns = "/nonexistent/ns".into();
        let e = destroy(&a).unwrap_err().to_string();
        assert!(e.starts_with("--netns /nonexistent/ns:"), "{e}");
        a.netns = "all".into();
        a.obj = None;
        let e = destroy(&a).unwrap_err().to_string();
        assert!(e.contains("--obj FILE"), "{e}");
        a.obj = Some("/nonexistent.bpf.o".into());
        let e = destroy(&a).unwrap_err().to_string();
        assert!(e.contains("no such file"), "{e}");
    }

    #[test]
    fn missing_capabilities_are_named() {
        // CAP_NET_ADMIN (12), CAP_SYS_ADMIN (21), CAP_PERFMON (38), CAP_BPF (39)
        let all = "Name:\tnkctl\nCapEff:\t000000c000201000\n";
        assert!(missing_caps(all, &BPF_CAPS).is_empty());
        assert!(missing_caps(all, &DIAG_CAPS).is_empty());
        let bpf_only = "CapEff:\t000000c000000000\n";
        assert_eq!(missing_caps(bpf_only, &BPF_CAPS), ["CAP_NET_ADMIN"]);
        assert_eq!(
            missing_caps(bpf_only, &DIAG_CAPS),
            ["CAP_NET_ADMIN", "CAP_SYS_ADMIN"]
        );
        assert_eq!(missing_caps("", &BPF_CAPS).len(), 3);
    }

    #[test]
    fn pinned_layouts_of_another_version_are_refused() {
        let [(name, want), _] = expected_layouts();
        assert_eq!(layout_mismatch(name, &want, &want), None);
        // An older object's stats record (v1's), 4 bytes shorter: the
        // kernel would have written 4 bytes past a buffer of this
        // version's size the other way round.
        let old = nk_bpf::MapLayout {
            value_size: 16,
            ..want
        };
        let e = layout_mismatch(name, &old, &want).unwrap();
        assert!(e.contains("16-byte values"), "{e}");
        assert!(
            e.contains(&format!("{}-byte values", want.value_size)),
            "{e}"
        );
        assert_eq!(want.value_size, 20);
    }

    fn sock(ino: u64, proto: &'static str, local: &str, errno: Option<i32>) -> FoundSock {
        FoundSock {
            netns_ino: ino,
            proto,
            local: local.parse().unwrap(),
            remote: "10.0.0.2:8080".parse().unwrap(),
            state: 1,
            errno,
        }
    }

    fn failed_report() -> Report {
        let mut r = Report {
            method: Method::Bpf,
            dry_run: false,
            backend: "10.0.0.2:8080".parse().unwrap(),
            netns_walked: 2,
            socks_walked: 10,
            netns: vec![NetnsCount {
                ino: 4026532300,
                name: Some("pod-a".into()),
                tcp: 1,
                udp: 0,
                errors: 1,
            }],
            sockets: vec![
                sock(4026532300, "tcp", "10.0.1.5:40000", None),
                sock(4026532300, "udp", "10.0.1.6:50000", Some(libc::EPERM)),
            ],
            unlisted: 0,
            walk_errno: None,
            phases: Phases::default(),
        };
        r.sockets.sort();
        r
    }

    #[test]
    fn sockets_sort_by_key_as_they_derive() {
        let mut v = Vec::new();
        for ino in [4026532301u64, 4026532300] {
            for proto in ["udp", "tcp"] {
                for local in [
                    "[fe80::1%2]:80",
                    "[::1]:7",
                    "10.0.0.9:1",
                    "10.0.0.10:65535",
                    "9.255.255.255:2",
                    "10.0.0.9:0",
                ] {
                    for errno in [Some(libc::EPERM), None] {
                        let mut s = sock(ino, proto, local, errno);
                        if local.starts_with('[') {
                            s.remote = "[::2]:8080".parse().unwrap();
                        }
                        v.push(s.clone());
                        s.state = 7;
                        v.push(s);
                    }
                }
            }
        }
        // A fixed shuffle (an LCG), then both sorts.
        let mut x = 12345u64;
        for i in (1..v.len()).rev() {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            v.swap(i, (x >> 33) as usize % (i + 1));
        }
        let mut derived = v.clone();
        derived.sort();
        super::sort_sockets(&mut v);
        assert_eq!(v, derived);
    }

    #[test]
    fn failures_are_reported_with_their_errno() {
        let mut r = failed_report();
        let why = r.failure().unwrap();
        assert!(why.contains("1 of 2 destroys failed"), "{why}");
        assert!(
            why.contains("EPERM (Operation not permitted): needs CAP_NET_ADMIN"),
            "{why}"
        );
        r.walk_errno = Some(libc::ENOMEM);
        let why = r.failure().unwrap();
        assert!(
            why.starts_with("the socket walk stopped early (ENOMEM"),
            "{why}"
        );
        insta::assert_snapshot!(table(&r));
        insta::assert_snapshot!(crate::output::json(&r).unwrap());
    }

    #[test]
    fn report_snapshot() {
        let r = Report {
            method: Method::Bpf,
            dry_run: true,
            backend: "10.0.0.2:8080".parse().unwrap(),
            netns_walked: 3,
            socks_walked: 40,
            netns: vec![
                NetnsCount {
                    ino: 4026532300,
                    name: Some("pod-a".into()),
                    tcp: 2,
                    udp: 1,
                    errors: 0,
                },
                NetnsCount {
                    ino: 4026532400,
                    name: None,
                    tcp: 1,
                    udp: 0,
                    errors: 0,
                },
            ],
            sockets: vec![
                sock(4026532300, "tcp", "10.0.1.5:40000", None),
                sock(4026532400, "udp", "10.0.1.6:50000", None),
            ],
            unlisted: 0,
            walk_errno: None,
            phases: Phases {
                setup_s: 0.25,
                run_s: 0.5,
                read_s: 0.125,
                verified_insns: 1234,
            },
        };
        insta::assert_snapshot!(table(&r));
        insta::assert_snapshot!(crate::output::json(&r).unwrap());
    }
}
