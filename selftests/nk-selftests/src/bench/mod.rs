//! Benchmarks run inside the VM by `cargo xtask bench`. Each prints
//! `# bench: <name> <metric> <value>` lines that the host collects, and
//! KTAP results for its leak checks. Side by side in one run, so ratios
//! are meaningful even though absolute numbers are emulated (TCG).

pub mod insn;
pub mod sock;

use std::fs;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use nk_bpf::{mprog, Anchor, AttachPoint, Direction, Object};
use nk_netlink::{NetkitMode, NetkitSpec};

use crate::env::{self, Ns};
use crate::harness::{Reporter, Stop, TResult};
use crate::{check, check_eq, Ctx};

fn metric(bench: &str, name: &str, v: f64) {
    println!("# bench: {bench} {name} {v:.4}");
}

fn fds() -> usize {
    fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn link_count(ns: &Ns) -> Result<usize, Stop> {
    Ok(ns.rt()?.link_dump()?.len())
}

/// 1000 netkit pairs created and deleted in a netns: nkctl's library (one
/// process, one socket) against iproute2 6.15 (see below for why creation
/// is one `ip` per pair).
pub fn netkit_pairs(_: &Ctx, r: &mut Reporter, n: usize) {
    r.sub("nkctl_vs_ip_batch", || -> TResult {
        env::require_root()?;
        let ns = Ns::new()?;
        let base_links = link_count(&ns)?;
        let fd0 = fds();
        let t = Instant::now();
        let mut s = ns.rt()?;
        let mut idx = Vec::with_capacity(n);
        for i in 0..n {
            s.netkit_add(&NetkitSpec::new(
                &format!("nkb{i}"),
                &format!("nkp{i}"),
                NetkitMode::L3,
            ))?;
        }
        let created = t.elapsed().as_secs_f64();
        for l in s.link_dump()? {
            if l.name.starts_with("nkb") {
                idx.push(l.index);
            }
        }
        check_eq!(idx.len(), n, "pairs created");
        let t2 = Instant::now();
        for i in idx {
            s.link_del(i)?;
        }
        let deleted = t2.elapsed().as_secs_f64();
        drop(s);
        check_eq!(fds(), fd0, "no fd leaked");
        check_eq!(link_count(&ns)?, base_links, "no device left");
        metric("netkit_pairs", "nkctl_create_s", created);
        metric("netkit_pairs", "nkctl_delete_s", deleted);

        let ns2 = Ns::new()?;
        // iproute2 6.15's netkit option parser keeps its state ("mode",
        // "peer") across -batch lines, so a batch creates one pair and then
        // fails with `duplicate "peer"`. Creation therefore runs one `ip`
        // process per pair, as a script would; deletion uses -batch.
        let t = Instant::now();
        for i in 0..n {
            let (a, b) = (format!("nkb{i}"), format!("nkp{i}"));
            let args = [
                "link",
                "add",
                a.as_str(),
                "type",
                "netkit",
                "peer",
                "name",
                b.as_str(),
            ];
            let st = ns2.run(|| Command::new("ip").args(args).status())??;
            check!(st.success(), "ip link add {a}: {st}");
        }
        let ip_created = t.elapsed().as_secs_f64();
        let del: String = (0..n).map(|i| format!("link del nkb{i}\n")).collect();
        let t = Instant::now();
        let mut c = ns2.run(|| {
            Command::new("ip")
                .args(["-batch", "-"])
                .stdin(Stdio::piped())
                .spawn()
        })??;
        c.stdin.take().unwrap().write_all(del.as_bytes())?;
        let st = c.wait()?;
        check!(st.success(), "ip -batch (link del) failed: {st}");
        let ip_deleted = t.elapsed().as_secs_f64();
        check_eq!(link_count(&ns2)?, base_links, "ip -batch left no device");
        metric("netkit_pairs", "ip_per_pair_create_s", ip_created);
        metric("netkit_pairs", "ip_batch_delete_s", ip_deleted);
        metric("netkit_pairs", "create_speedup_vs_ip", ip_created / created);
        metric("netkit_pairs", "delete_speedup_vs_ip", ip_deleted / deleted);
        Ok(())
    });
}

/// A fresh netns, tcx ingress of its lo, and a loaded program for it.
fn lo_ingress_setup(ctx: &Ctx) -> Result<(Ns, AttachPoint, nk_bpf::ProgFd), Stop> {
    let ns = Ns::new()?;
    let at = AttachPoint::Tcx {
        ifindex: env::ifindex(&ns, "lo")?,
        dir: Direction::Ingress,
    };
    let obj = Object::load(&env::bpf_obj(&ctx.bpf_dir, "nk_tcx_order.bpf.o")?)?;
    let prog = obj.prog("nk_order_1")?;
    Ok((ns, at, prog))
}

/// tcx attach + detach cycles on one device: nk-bpf links in one process
/// against one bpftool process per attach and per detach (the way a
/// script uses it; bpftool has no batch mode for tcx).
pub fn tcx_attach(ctx: &Ctx, r: &mut Reporter, n: usize) {
    r.sub("nkctl_vs_bpftool", || -> TResult {
        env::require_root()?;
        let (ns, at, prog) = lo_ingress_setup(ctx)?;
        let fd0 = fds();
        let t = Instant::now();
        let span = insn::span("tcx_attach", "nk_bpf_cycle");
        for _ in 0..n {
            let l = ns.run(|| mprog::link_create(&prog, at, Anchor::Last, None))??;
            l.detach()?;
        }
        span.end(n as u64);
        let ours = t.elapsed().as_secs_f64();
        check_eq!(fds(), fd0, "no fd leaked");
        check!(
            ns.run(|| mprog::query(at))??.prog_ids.is_empty(),
            "nothing left attached"
        );
        metric("tcx_attach", "nk_bpf_cycles_s", ours);

        let pin = format!("/sys/fs/bpf/nkdev-bench-{}", std::process::id());
        nk_bpf::pin::pin(&prog, std::path::Path::new(&pin))?;
        // bpftool and its libraries from tmpfs: exec'd from the 9p root,
        // every open() of them waits on the host, and under -icount that
        // wait lets a host-time-dependent number of timer ticks run.
        let bpftool = LocalExe::new("bpftool")?;
        let m = n.min(200);
        let t = Instant::now();
        let span = insn::span("tcx_attach", "bpftool_cycle");
        let r = (|| -> TResult {
            for _ in 0..m {
                for args in [
                    vec![
                        "net",
                        "attach",
                        "tcx_ingress",
                        "pinned",
                        pin.as_str(),
                        "dev",
                        "lo",
                    ],
                    vec!["net", "detach", "tcx_ingress", "dev", "lo"],
                ] {
                    let st = ns.run(|| bpftool.command().args(&args).status())??;
                    check!(st.success(), "bpftool {args:?}: {st}");
                }
            }
            Ok(())
        })();
        span.end(m as u64);
        let bt = t.elapsed().as_secs_f64();
        nk_bpf::pin::unpin(std::path::Path::new(&pin))?;
        r?;
        metric(
            "tcx_attach",
            "bpftool_cycles_s_per_1000",
            bt * 1000.0 / m as f64,
        );
        metric(
            "tcx_attach",
            "speedup_vs_bpftool",
            (bt * 1000.0 / m as f64) / (ours * 1000.0 / n as f64),
        );
        Ok(())
    });
}

/// A dynamically linked program copied, with its loader and libraries,
/// into a tmpfs directory, and run from there, so that running it reads
/// nothing from the 9p root. Removed on drop.
pub(crate) struct LocalExe {
    pub(crate) dir: std::path::PathBuf,
    name: String,
    loader: Option<String>,
}

impl LocalExe {
    fn new(prog: &str) -> Result<LocalExe, Stop> {
        let path = std::env::var("PATH").unwrap_or_default();
        let bin = path
            .split(':')
            .map(|d| std::path::Path::new(d).join(prog))
            .find(|p| p.is_file())
            .ok_or_else(|| Stop::Fail(format!("{prog} not found in PATH {path:?}")))?;
        LocalExe::from_path(&bin)
    }

    /// The program at `bin`, copied (with its loader and libraries, if it
    /// is dynamically linked).
    pub(crate) fn from_path(bin: &std::path::Path) -> Result<LocalExe, Stop> {
        let prog = bin
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Stop::Fail(format!("{}: no file name", bin.display())))?;
        let prog = prog.as_str();
        let dir = std::path::PathBuf::from(format!("/tmp/nk-local-{prog}-{}", std::process::id()));
        fs::create_dir_all(&dir)?;
        let mut exe = LocalExe {
            dir,
            name: prog.into(),
            loader: None,
        };
        fs::copy(bin, exe.dir.join(prog))?;
        // The loader lists what it would map: `name => /path (0x...)`, and
        // itself as `/lib64/ld-linux-x86-64.so.2 (0x...)`.
        let ld = "/lib64/ld-linux-x86-64.so.2";
        let out = Command::new(ld).arg("--list").arg(bin).output()?;
        if out.status.success() {
            for l in String::from_utf8_lossy(&out.stdout).lines() {
                let lib = match l.split_once("=> ") {
                    Some((_, rest)) => rest.split(" (").next().unwrap_or_default(),
                    None => l.trim().split(" (").next().unwrap_or_default(),
                };
                let lib = std::path::Path::new(lib.trim());
                if lib.is_absolute() && lib.is_file() {
                    let name = lib.file_name().unwrap_or_default();
                    fs::copy(lib, exe.dir.join(name))?;
                }
            }
            // A static(-pie) binary lists no loader: run it directly.
            let ld = "ld-linux-x86-64.so.2";
            if exe.dir.join(ld).is_file() {
                exe.loader = Some(ld.into());
            }
        }
        Ok(exe)
    }

    pub(crate) fn command(&self) -> Command {
        match &self.loader {
            Some(ld) => {
                let mut c = Command::new(self.dir.join(ld));
                c.arg("--library-path")
                    .arg(&self.dir)
                    .arg(self.dir.join(&self.name));
                c
            }
            None => Command::new(self.dir.join(&self.name)),
        }
    }
}

impl Drop for LocalExe {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Per operation, nkctl against bpftool: see [`tcx_per_op`].
pub fn tcx_ops(ctx: &Ctx, r: &mut Reporter, n: usize) {
    r.sub("nkctl_vs_bpftool_per_op", || tcx_per_op(ctx, n));
}

/// Runs one process to completion: its wall seconds. (Its peak RSS is
/// not reported: a child spawned by vfork or fork starts with our own
/// high-water mark, which exec carries into ru_maxrss.)
fn timed(cmd: &mut Command) -> Result<f64, Stop> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let t = Instant::now();
    let mut child = cmd.spawn()?;
    let st = child.wait()?;
    let secs = t.elapsed().as_secs_f64();
    if !st.success() {
        // Run it again for the message.
        let out = cmd.stderr(Stdio::piped()).output()?;
        return Err(Stop::Fail(format!(
            "{cmd:?}: {st}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(secs)
}

/// `strace -f -c` of one run of `cmd`: the number of syscalls it made.
fn syscalls(cmd: &Command) -> Result<u64, Stop> {
    let out_file = format!("/tmp/nk-strace-op-{}", std::process::id());
    let out = Command::new("strace")
        .args(["-f", "-c", "-o", &out_file])
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .output()?;
    check!(
        out.status.success(),
        "strace {cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let text = fs::read_to_string(&out_file)?;
    let _ = fs::remove_file(&out_file);
    sock::strace_total(&text).ok_or_else(|| Stop::Fail(format!("no total in:\n{text}")))
}

/// The same tcx operations through each CLI, one process per operation,
/// interleaved so that host noise hits both alike: attach a pinned
/// program (BPF_PROG_ATTACH; bpftool cannot create tcx links), list the
/// hook, detach. Per operation: mean wall time and syscalls.
fn tcx_per_op(ctx: &Ctx, n: usize) -> TResult {
    env::require_root()?;
    let nkctl = ctx
        .nkctl
        .clone()
        .ok_or_else(|| Stop::Skip("needs --nkctl".into()))?;
    let (ns, at, prog) = lo_ingress_setup(ctx)?;
    let id = prog.id()?.to_string();
    let pin = format!("/sys/fs/bpf/nkdev-bench-op-{}", std::process::id());
    nk_bpf::pin::pin(&prog, std::path::Path::new(&pin))?;
    let hook = ["--dev", "lo", "--hook", "tcx-ingress"];
    let ops: [(&str, &str, Vec<&str>); 6] = [
        (
            "attach",
            "nkctl",
            [&["prog", "attach"][..], &hook, &["--pinned", &pin]].concat(),
        ),
        ("query", "nkctl", [&["prog", "query"][..], &hook].concat()),
        (
            "detach",
            "nkctl",
            [&["prog", "detach"][..], &hook, &["--prog-id", &id]].concat(),
        ),
        (
            "attach",
            "bpftool",
            vec!["net", "attach", "tcx_ingress", "pinned", &pin, "dev", "lo"],
        ),
        ("query", "bpftool", vec!["net", "show", "dev", "lo"]),
        (
            "detach",
            "bpftool",
            vec!["net", "detach", "tcx_ingress", "dev", "lo"],
        ),
    ];
    let cmd = |tool: &str, args: &[&str]| {
        let mut c = Command::new(if tool == "nkctl" {
            nkctl.as_os_str()
        } else {
            std::ffi::OsStr::new("bpftool")
        });
        c.args(args);
        c
    };
    let r = ns.run(|| -> TResult {
        let mut secs = [0f64; 6];
        for round in 0..n {
            for (i, (op, tool, args)) in ops.iter().enumerate() {
                secs[i] += timed(&mut cmd(tool, args))?;
                if round == 0 && *op == "attach" {
                    check_eq!(
                        mprog::query(at)?.prog_ids.len(),
                        1,
                        "{tool} attached one program"
                    );
                }
                if round == 0 && *op == "detach" {
                    check!(mprog::query(at)?.prog_ids.is_empty(), "{tool} detached it");
                }
            }
        }
        for (i, (op, tool, args)) in ops.iter().enumerate() {
            metric(
                "tcx_ops",
                &format!("{tool}_{op}_ms"),
                secs[i] * 1000.0 / n as f64,
            );
            // Under ptrace, outside the timed loop; attach before detach.
            metric(
                "tcx_ops",
                &format!("{tool}_{op}_syscalls"),
                syscalls(&cmd(tool, args))? as f64,
            );
        }
        for (i, op) in ["attach", "query", "detach"].iter().enumerate() {
            metric(
                "tcx_ops",
                &format!("{op}_speedup_vs_bpftool"),
                secs[i + 3] / secs[i],
            );
        }
        check!(
            mprog::query(at)?.prog_ids.is_empty(),
            "nothing left attached"
        );
        Ok(())
    });
    nk_bpf::pin::unpin(std::path::Path::new(&pin))?;
    r?
}

/// Sends UDP probes to `dst` with sendmmsg(2) in batches of 64 until `secs`
/// have passed; returns (packets sent, seconds).
fn blast(ns: &Ns, dst: std::net::Ipv4Addr, secs: f64) -> Result<(u64, f64), Stop> {
    let sock = ns.run(|| std::net::UdpSocket::bind("0.0.0.0:0"))??;
    sock.connect((dst, env::PROBE_PORT))?;
    let payload = [0u8; 18];
    let mut iov: Vec<libc::iovec> = (0..64)
        .map(|_| libc::iovec {
            iov_base: payload.as_ptr() as *mut libc::c_void,
            iov_len: payload.len(),
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iov
        .iter_mut()
        .map(|v| {
            // SAFETY: mmsghdr is plain data; all-zero is a valid value
            // (no name, no control data), and the iovec is set below.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
    let t = Instant::now();
    let mut sent = 0u64;
    while t.elapsed().as_secs_f64() < secs {
        // SAFETY: fd is an open UDP socket owned by `sock`; msgs holds 64
        // initialised headers whose iovecs point at `payload`, all of which
        // outlive the call.
        let n = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), msgs.len() as u32, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOBUFS) {
                continue;
            }
            return Err(Stop::Fail(format!("sendmmsg: {e}")));
        }
        sent += n as u64;
    }
    Ok((sent, t.elapsed().as_secs_f64()))
}

/// bpf_redirect_peer packets per second from tcx ingress of a veth into a
/// netkit peer (L3), where a tcx program counts and drops them. Run it on
/// the base and on the patched kernel (`cargo xtask bench --compare-base`):
/// the series replaces ndo_get_peer_dev() with dev->peer.
pub fn redirect_peer_pps(ctx: &Ctx, r: &mut Reporter, secs: usize) {
    r.sub("veth_to_netkit_l3", || -> TResult {
        env::require_root()?;
        let t = env::redirect_topo(NetkitMode::L3)?;
        let (obj, _redirect) = t.attach_redirect(&ctx.bpf_dir)?;
        let cfg = obj.map("cfg")?;
        let nk1 = t.pod.rt()?.link_get("nk1")?.index;
        let sink_at = AttachPoint::Tcx {
            ifindex: nk1,
            dir: Direction::Ingress,
        };
        let _sink = t
            .pod
            .run(|| mprog::link_create(&obj.prog("nk_sink")?, sink_at, Anchor::Last, None))??;
        let span = insn::span("redirect_peer", "delivered_pkt");
        let (sent, elapsed) = blast(&t.src, t.pod_ip, secs as f64)?;
        let redirected = u64::from(cfg.get_u32(1)?);
        let sunk = u64::from(cfg.get_u32(2)?);
        span.end(sunk);
        check!(sunk > 0, "nothing reached nk1 (sent {sent})");
        check!(
            sunk <= redirected && redirected <= sent,
            "sent {sent} >= redirected {redirected} >= sunk {sunk} does not hold"
        );
        metric("redirect_peer", "delivered_pps", sunk as f64 / elapsed);
        metric("redirect_peer", "sent_pps", sent as f64 / elapsed);
        Ok(())
    });
}

/// Streams bytes over one TCP connection from `client` to `server_ip` in
/// `server` for `secs`; returns Gbit/s as the receiver counted them, and
/// the bytes received.
fn tcp_stream(
    client: &Ns,
    server: &Ns,
    server_ip: std::net::Ipv4Addr,
    secs: f64,
) -> Result<(f64, u64), Stop> {
    use std::io::{Read, Write as _};
    let listener = server.run(|| std::net::TcpListener::bind((server_ip, 5201)))??;
    let rx = std::thread::spawn(move || -> std::io::Result<(u64, f64)> {
        let (mut s, _) = listener.accept()?;
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        let t = Instant::now();
        loop {
            let n = s.read(&mut buf)?;
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        Ok((total, t.elapsed().as_secs_f64()))
    });
    let to = std::net::SocketAddr::from((server_ip, 5201));
    let mut s = client
        .run(|| std::net::TcpStream::connect_timeout(&to, std::time::Duration::from_secs(5)))??;
    let buf = vec![0x5au8; 1 << 20];
    let t = Instant::now();
    while t.elapsed().as_secs_f64() < secs {
        s.write_all(&buf)?;
    }
    drop(s);
    let (bytes, elapsed) = rx
        .join()
        .map_err(|_| Stop::Fail("receiver thread panicked".into()))??;
    check!(bytes > 0, "nothing received");
    Ok((bytes as f64 * 8.0 / elapsed / 1e9, bytes))
}

/// The addresses of `two_pods`' Pods.
const POD_IPS: [std::net::Ipv4Addr; 2] = [
    std::net::Ipv4Addr::new(10, 250, 0, 2),
    std::net::Ipv4Addr::new(10, 250, 0, 3),
];

/// Two Pod-like endpoints made with `nkctl endpoint add` in `mode`, with
/// the e2e datapath (`bpf/nk_e2e.bpf.c`, as `nk.e2e_datapath` uses it)
/// forwarding between them: bpf_redirect() from the netkit peer list,
/// bpf_redirect_peer() from a host-side veth. Returns (host, podA, podB).
fn two_pods(
    ctx: &Ctx,
    mode: &str,
    tag: &str,
    sync: Option<&str>,
) -> Result<(Ns, String, String), Stop> {
    let host = Ns::new()?;
    env::addr(&host, "lo", "10.250.255.1/32")?;
    let nk = ctx
        .nkctl
        .clone()
        .ok_or_else(|| Stop::Fail("--nkctl not given".into()))?;
    let obj_path = env::bpf_obj(&ctx.bpf_dir, "nk_e2e.bpf.o")?;
    let obj_s = obj_path.display().to_string();
    let prog = if mode == "veth" {
        "nk_from_pod_veth"
    } else {
        "nk_from_pod_netkit"
    };
    let mut names: Vec<String> = Vec::new();
    let made = (|| -> TResult {
        for (i, ip) in POD_IPS.iter().enumerate() {
            let ns = format!("nkb-{}-{tag}-{i}", std::process::id());
            let dev = format!("ep{i}");
            let ip = format!("{ip}/32");
            let st = host.run(|| {
                let mut c = Command::new(&nk);
                c.args([
                    "endpoint", "add", &dev, "--mode", mode, "--netns", &ns, "--addr", &ip,
                    "--bpf", &obj_s, "--prog", prog,
                ]);
                if let Some(s) = sync {
                    c.args(["--sync", s]);
                }
                c.stdout(Stdio::null()).status()
            })??;
            check!(st.success(), "nkctl endpoint add {dev} --mode {mode}");
            names.push(ns);
        }
        // The agent's part: one object (its maps are the pinned ones the
        // endpoints' objects use) to fill the endpoint map.
        let obj = host.run(|| Object::load(&obj_path))??;
        let eps = obj.map("nk_e2e_eps")?;
        for (i, (ip, ns)) in POD_IPS.iter().zip(&names).enumerate() {
            env::e2e_add_endpoint(&eps, &host, &format!("ep{i}"), ns, *ip)?;
        }
        Ok(())
    })();
    if let Err(e) = made {
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        del_pods(ctx, &host, &refs);
        return Err(e);
    }
    let b = names.pop().unwrap_or_default();
    let a = names.pop().unwrap_or_default();
    Ok((host, a, b))
}

/// Deletes the endpoints `two_pods` made and the e2e datapath's pins.
fn del_pods(ctx: &Ctx, host: &Ns, pods: &[&str]) {
    if let Some(nk) = &ctx.nkctl {
        for (i, ns) in pods.iter().enumerate() {
            let _ = host.run(|| {
                Command::new(nk)
                    .args(["endpoint", "del", &format!("ep{i}"), "--netns", ns])
                    .stdout(Stdio::null())
                    .status()
            });
        }
    }
    env::e2e_remove_pins();
}

/// TCP_STREAM, one flow, `secs` each: same-netns loopback, Pod to Pod over
/// veth, over netkit (both through the e2e datapath's BPF forwarding), and
/// over netkit with BIG TCP (GSO limits 512k set on
/// the host-side primaries only: the series propagates them to the Pods).
pub fn tcp_streams(ctx: &Ctx, r: &mut Reporter, secs: usize) {
    let secs = secs as f64;
    r.sub("loopback", || -> TResult {
        env::require_root()?;
        let ns = Ns::new()?;
        env::up(&ns, "lo")?;
        let span = insn::span("tcp_stream", "loopback_kib");
        let (g, bytes) = tcp_stream(&ns, &ns, std::net::Ipv4Addr::LOCALHOST, secs)?;
        span.end(bytes / 1024);
        metric("tcp_stream", "loopback_gbps", g);
        Ok(())
    });
    for (mode, tag, big) in [
        ("veth", "veth", false),
        ("netkit", "netkit", false),
        ("netkit", "netkit_big_tcp", true),
    ] {
        r.sub(&format!("pod_to_pod_{tag}"), || -> TResult {
            env::require_root()?;
            // BIG TCP on the primaries reaches the Pods only where the
            // primary owns the GSO limits (IFLA_NETKIT_SYNC, opt-in).
            let (host, a, b) = two_pods(ctx, mode, tag, big.then_some("mtu,gso"))?;
            let result = (|| -> TResult {
                if big {
                    let mut s = host.rt()?;
                    for dev in ["ep0", "ep1"] {
                        let idx = s.link_get(dev)?.index;
                        s.link_set(
                            idx,
                            &nk_netlink::LinkChange {
                                gso_max_size: Some(524_280),
                                gso_ipv4_max_size: Some(524_280),
                                ..Default::default()
                            },
                        )?;
                    }
                }
                let pa = Ns {
                    fd: nk_netlink::NetnsFd::named(&a)?,
                };
                let pb = Ns {
                    fd: nk_netlink::NetnsFd::named(&b)?,
                };
                let eth0 = pa.rt()?.link_get("eth0")?;
                // Only the series propagates the primary's GSO limits; an
                // unpatched kernel (no IFLA_HEADROOM either) runs the Pod at
                // 64k, which is what the comparison shows.
                if big && eth0.headroom.is_some() {
                    check_eq!(
                        eth0.gso_ipv4_max_size,
                        Some(524_280),
                        "Pod's eth0 got BIG TCP from the primary"
                    );
                }
                let span = insn::span("tcp_stream", format!("{tag}_kib"));
                let (g, bytes) = tcp_stream(&pa, &pb, POD_IPS[1], secs)?;
                span.end(bytes / 1024);
                metric("tcp_stream", &format!("{tag}_gbps"), g);
                metric(
                    "tcp_stream",
                    &format!("{tag}_pod-gso-max-bytes"),
                    eth0.gso_max_size.unwrap_or(0) as f64,
                );
                Ok(())
            })();
            del_pods(ctx, &host, &[&a, &b]);
            result
        });
    }
}

/// UDP from Pod to Pod, over veth and over netkit, through the e2e
/// datapath as `tcp_stream` uses it: 18-byte datagrams with sendmmsg(2)
/// for `secs`, a thread in the receiving Pod reading them. The span counts
/// per datagram the receiving socket got; drops on the way (the veth
/// backlog, a full socket buffer) are reported as the delivered share.
pub fn udp_pods(ctx: &Ctx, r: &mut Reporter, secs: usize) {
    for mode in ["veth", "netkit"] {
        r.sub(&format!("pod_to_pod_{mode}"), || -> TResult {
            env::require_root()?;
            let (host, a, b) = two_pods(ctx, mode, &format!("udp-{mode}"), None)?;
            let result = (|| -> TResult {
                let pa = Ns {
                    fd: nk_netlink::NetnsFd::named(&a)?,
                };
                let pb = Ns {
                    fd: nk_netlink::NetnsFd::named(&b)?,
                };
                let sink = env::listen(&pb, POD_IPS[1])?;
                // Resolve the datapath's neighbours before counting.
                env::send_probes(&pa, POD_IPS[1], 3)?;
                env::recv_probes(&sink, 3)?;
                sink.set_read_timeout(Some(std::time::Duration::from_millis(200)))?;
                let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                let stop_rx = stop.clone();
                let rx = std::thread::spawn(move || -> u64 {
                    let mut buf = [0u8; 64];
                    let mut n = 0u64;
                    while !stop_rx.load(std::sync::atomic::Ordering::Relaxed) {
                        if sink.recv(&mut buf).is_ok() {
                            n += 1;
                        }
                    }
                    n
                });
                let span = insn::span("udp_pods", format!("{mode}_delivered_pkt"));
                let blasted = blast(&pa, POD_IPS[1], secs as f64);
                // What is still queued is read before the span ends.
                std::thread::sleep(std::time::Duration::from_millis(300));
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                let got = rx
                    .join()
                    .map_err(|_| Stop::Fail("receiver thread panicked".into()))?;
                span.end(got);
                let (sent, elapsed) = blasted?;
                check!(got > 0, "nothing reached the Pod's socket (sent {sent})");
                check!(got <= sent, "received {got} of {sent} sent");
                metric(
                    "udp_pods",
                    &format!("{mode}_delivered-pps"),
                    got as f64 / elapsed,
                );
                metric(
                    "udp_pods",
                    &format!("{mode}_delivered-share"),
                    got as f64 / sent as f64,
                );
                Ok(())
            })();
            del_pods(ctx, &host, &[&a, &b]);
            result
        });
    }
}

/// vxlan over netkit: a Pod (netkit L3 peer) sends UDP to an address behind
/// a vxlan device on the host, which encapsulates towards a remote netns.
/// The Pod's skbs carry the peer's needed_headroom; with 0 every packet is
/// reallocated on the way (pskb_expand_head(), counted by fentry), with the
/// headroom set at runtime from the primary none is. Same VM, same pair,
/// one run after the other.
pub fn vxlan_headroom(ctx: &Ctx, r: &mut Reporter, secs: usize) {
    r.sub("netkit_l3_headroom_0_vs_96", || -> TResult {
        env::require_root()?;
        let host = Ns::new()?;
        let pod = Ns::new()?;
        let remote = Ns::new()?;
        let mut spec = NetkitSpec::new("nk0", "nk1", NetkitMode::L3);
        spec.peer.netns = Some(pod.as_ref());
        host.rt()?.netkit_add(&spec)?;
        host.rt()?.veth_add("u0", "u1", Some(remote.as_ref()))?;
        for (ns, dev) in [
            (&host, "nk0"),
            (&pod, "nk1"),
            (&host, "u0"),
            (&remote, "u1"),
        ] {
            env::up(ns, dev)?;
        }
        env::addr(&pod, "nk1", "10.2.0.2/32")?;
        env::ip(&pod, &["route", "add", "default", "dev", "nk1"])?;
        env::ip(&host, &["route", "add", "10.2.0.2/32", "dev", "nk0"])?;
        env::addr(&host, "u0", "10.9.0.1/24")?;
        env::addr(&remote, "u1", "10.9.0.2/24")?;
        for (ns, name, local, rem, addr) in [
            (&host, "vx0", "10.9.0.1", "10.9.0.2", "10.3.0.1/24"),
            (&remote, "vx1", "10.9.0.2", "10.9.0.1", "10.3.0.2/24"),
        ] {
            env::ip(
                ns,
                &[
                    "link", "add", name, "type", "vxlan", "id", "42", "dstport", "4789", "local",
                    local, "remote", rem,
                ],
            )?;
            env::up(ns, name)?;
            env::addr(ns, name, addr)?;
        }
        host.run(|| fs::write("/proc/sys/net/ipv4/ip_forward", "1"))??;
        remote.run(|| fs::write("/proc/sys/net/ipv4/ip_forward", "1"))??;
        env::ip(&remote, &["route", "add", "10.2.0.0/24", "dev", "vx1"])?;
        let vx_room = host.rt()?.link_get("vx0")?.headroom;
        let Some(vx_room) = vx_room else {
            return Err(Stop::Skip("kernel does not dump IFLA_HEADROOM".into()));
        };
        let dst = std::net::Ipv4Addr::new(10, 3, 0, 2);
        let _sink = env::listen(&remote, dst)?;
        // Warm up ARP over the tunnel before counting.
        env::send_probes(&pod, dst, 3)?;
        std::thread::sleep(std::time::Duration::from_millis(300));

        let obj = Object::load(&env::bpf_obj(&ctx.bpf_dir, "nk_realloc.bpf.o")?)?;
        let counts = obj.map("counts")?;
        let _trace = nk_bpf::tracing::attach(
            &obj.prog("nk_count_expand")?,
            nk_bpf::tracing::Trace::Fentry,
        )?;
        let nk0 = host.rt()?.link_get("nk0")?.index;
        for room in [0u16, 96] {
            host.rt()?.link_set(
                nk0,
                &nk_netlink::LinkChange {
                    netkit_headroom: Some(room),
                    ..Default::default()
                },
            )?;
            let peer = pod.rt()?.link_get("nk1")?;
            check_eq!(peer.headroom, Some(room), "Pod's nk1 headroom");
            let rx0 = remote
                .rt()?
                .link_get("vx1")?
                .stats
                .unwrap_or_default()
                .rx_packets;
            let e0 = counts.get_u64(1)?;
            let span = insn::span("vxlan_headroom", format!("room{room}_sent_pkt"));
            let (sent, elapsed) = blast(&pod, dst, secs as f64)?;
            span.end(sent);
            std::thread::sleep(std::time::Duration::from_millis(200));
            let expands = counts.get_u64(1)? - e0;
            let rx = remote
                .rt()?
                .link_get("vx1")?
                .stats
                .unwrap_or_default()
                .rx_packets
                - rx0;
            check!(rx > 0, "nothing crossed the tunnel with headroom {room}");
            metric(
                "vxlan_headroom",
                &format!("room{room}_reallocs-per-pkt"),
                expands as f64 / sent as f64,
            );
            metric(
                "vxlan_headroom",
                &format!("room{room}_sent-pps"),
                sent as f64 / elapsed,
            );
            metric(
                "vxlan_headroom",
                &format!("room{room}_delivered-pps"),
                rx as f64 / elapsed,
            );
        }
        metric(
            "vxlan_headroom",
            "vxlan_needed-headroom-bytes",
            f64::from(vx_room),
        );
        Ok(())
    });
}
