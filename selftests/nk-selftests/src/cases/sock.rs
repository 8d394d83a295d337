//! `nkctl sock destroy`: the BPF method (the series' netns and socket
//! iterators) and the SOCK_DIAG baseline find exactly the same sockets and
//! destroy exactly those; a single netns can be picked; bad input, a
//! missing capability and pins of another object version are refused. Pods are named netns (so the diag method can reach them), each
//! with TCP and UDP clients of two backends, the accepted sockets and a
//! listener.

use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::process::Command;

use nk_netlink::NetnsFd;

use crate::env;
use crate::harness::{Reporter, Stop, TResult};
use crate::{check, check_eq, Ctx};

pub const VICTIM: &str = "127.0.0.2:8080";
pub const OTHER: &str = "127.0.0.3:8080";
const CLIENTS: usize = 2;

/// One Pod: a named netns and its sockets.
pub struct Pod {
    pub name: String,
    pub ino: u64,
    pub victims_tcp: Vec<TcpStream>,
    pub victims_udp: Vec<UdpSocket>,
    others_tcp: Vec<TcpStream>,
    others_udp: Vec<UdpSocket>,
    accepted: Vec<TcpStream>,
    listeners: Vec<TcpListener>,
    servers_udp: Vec<UdpSocket>,
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = NetnsFd::delete_named(&self.name);
    }
}

/// tcpi_state, the first byte of struct tcp_info.
fn tcp_state(fd: RawFd) -> u8 {
    let mut b = [0u8; 8];
    let mut len = b.len() as libc::socklen_t;
    // SAFETY: b and len are live; the kernel copies at most len bytes.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            b.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if r != 0 {
        return 0xff;
    }
    b[0]
}

const TCP_ESTABLISHED: u8 = 1;
const TCP_CLOSE: u8 = 7;

impl Pod {
    /// Creates `name` (like `ip netns add`) with lo up and its sockets.
    pub fn new(name: &str, clients: usize, bystanders: usize) -> Result<Pod, Stop> {
        let fd = env::named_netns(name)?;
        let ino = std::fs::metadata(format!("/run/netns/{name}"))
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))?;
        let mut pod = Pod {
            name: name.to_string(),
            ino,
            victims_tcp: vec![],
            victims_udp: vec![],
            others_tcp: vec![],
            others_udp: vec![],
            accepted: vec![],
            listeners: vec![],
            servers_udp: vec![],
        };
        fd.run(|| -> TResult {
            for (backend, n, victim) in [(VICTIM, clients, true), (OTHER, bystanders, false)] {
                let l = TcpListener::bind(backend)?;
                let u = UdpSocket::bind(backend)?;
                for _ in 0..n {
                    let c = TcpStream::connect(backend)?;
                    pod.accepted.push(l.accept()?.0);
                    let d = UdpSocket::bind("127.0.0.1:0")?;
                    d.connect(backend)?;
                    if victim {
                        pod.victims_tcp.push(c);
                        pod.victims_udp.push(d);
                    } else {
                        pod.others_tcp.push(c);
                        pod.others_udp.push(d);
                    }
                }
                pod.listeners.push(l);
                pod.servers_udp.push(u);
            }
            // Listening on the victim's address, other port: not connected to it.
            pod.listeners.push(TcpListener::bind("127.0.0.2:9090")?);
            Ok(())
        })??;
        Ok(pod)
    }

    /// (netns, proto, local, remote) of the sockets connected to VICTIM.
    pub fn expected(&self) -> Result<BTreeSet<(u64, String, String, String)>, Stop> {
        let tcp = self.victims_tcp.iter().map(|c| ("tcp", c.local_addr()));
        let udp = self.victims_udp.iter().map(|c| ("udp", c.local_addr()));
        tcp.chain(udp)
            .map(|(proto, local)| Ok((self.ino, proto.into(), local?.to_string(), VICTIM.into())))
            .collect()
    }

    fn check_destroyed(&self, yes: bool) -> TResult {
        let what = if yes { "destroyed" } else { "left alone" };
        for c in &self.victims_tcp {
            let (err, st) = (env::so_error(c.as_raw_fd()), tcp_state(c.as_raw_fd()));
            if yes {
                check!(
                    err == libc::ECONNABORTED && st == TCP_CLOSE,
                    "{}: tcp client should be {what}: SO_ERROR {err}, state {st}",
                    self.name
                );
            } else {
                check!(
                    err == 0 && st == TCP_ESTABLISHED,
                    "{}: tcp client should be {what}: SO_ERROR {err}, state {st}",
                    self.name
                );
            }
        }
        for c in &self.victims_udp {
            let err = env::so_error(c.as_raw_fd());
            let want = if yes { libc::ECONNABORTED } else { 0 };
            check!(
                err == want,
                "{}: udp client should be {what}: SO_ERROR {err}",
                self.name
            );
        }
        Ok(())
    }

    /// Every socket not connected to VICTIM is as it was.
    fn check_bystanders(&self) -> TResult {
        for c in &self.others_tcp {
            let (err, st) = (env::so_error(c.as_raw_fd()), tcp_state(c.as_raw_fd()));
            check!(
                err == 0 && st == TCP_ESTABLISHED,
                "{}: bystander tcp client touched: SO_ERROR {err}, state {st}",
                self.name
            );
        }
        for c in self.others_udp.iter().chain(&self.servers_udp) {
            let err = env::so_error(c.as_raw_fd());
            check!(
                err == 0,
                "{}: bystander udp socket touched: SO_ERROR {err}",
                self.name
            );
        }
        for l in &self.listeners {
            let st = tcp_state(l.as_raw_fd());
            check!(
                st == 10,
                "{}: listener no longer listening: state {st}",
                self.name
            );
        }
        Ok(())
    }
}

pub fn nkctl_json(ctx: &Ctx, args: &[&str]) -> Result<serde_json::Value, Stop> {
    let out = nkctl_raw(ctx, args)?;
    check!(
        out.status.success(),
        "nkctl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    serde_json::from_slice(&out.stdout).map_err(|e| Stop::Fail(format!("nkctl --json output: {e}")))
}

/// `nkctl sock destroy --backend VICTIM --method METHOD --json`.
pub fn destroy_argv(method: &str) -> [&str; 7] {
    [
        "sock",
        "destroy",
        "--backend",
        VICTIM,
        "--method",
        method,
        "--json",
    ]
}

/// `nkctl ARGS` with the sock destroy BPF object in its environment.
pub fn nkctl_cmd(ctx: &Ctx, args: &[&str]) -> Result<Command, Stop> {
    let nk = ctx
        .nkctl
        .clone()
        .ok_or_else(|| Stop::Fail("--nkctl not given".into()))?;
    let obj: PathBuf = ctx.bpf_dir.join("nk_sock_destroy.bpf.o");
    let mut c = Command::new(nk);
    c.args(args).env("NK_SOCK_DESTROY_OBJ", obj);
    Ok(c)
}

/// Removes a bpffs pin directory when dropped.
struct Unpin<'a>(&'a str);

impl Drop for Unpin<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0);
    }
}

fn nkctl_raw(ctx: &Ctx, args: &[&str]) -> Result<std::process::Output, Stop> {
    Ok(nkctl_cmd(ctx, args)?.output()?)
}

type SockSet = BTreeSet<(u64, String, String, String)>;

fn sockets_of(v: &serde_json::Value) -> SockSet {
    v["sockets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["netns_ino"].as_u64().unwrap_or(0),
                s["proto"].as_str().unwrap_or("").to_string(),
                s["local"].as_str().unwrap_or("").to_string(),
                s["remote"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn pods(tag: &str, n: usize) -> Result<Vec<Pod>, Stop> {
    (0..n)
        .map(|i| {
            Pod::new(
                &format!("nksd-{}-{tag}{i}", std::process::id()),
                CLIENTS,
                CLIENTS,
            )
        })
        .collect()
}

fn expected(pods: &[Pod]) -> Result<SockSet, Stop> {
    let mut all = SockSet::new();
    for p in pods {
        all.extend(p.expected()?);
    }
    Ok(all)
}

pub fn destroy(ctx: &Ctx, r: &mut Reporter) {
    r.sub("bpf_and_diag_find_the_same_sockets", || -> TResult {
        env::require_root()?;
        env::bpf_obj(&ctx.bpf_dir, "nk_sock_destroy.bpf.o")?;
        let pods = pods("s", 5)?;
        let want = expected(&pods)?;
        let base = [
            "sock",
            "destroy",
            "--backend",
            VICTIM,
            "--dry-run",
            "--json",
        ];
        let bpf = nkctl_json(ctx, &[&base[..], &["--method", "bpf"]].concat())?;
        let diag = nkctl_json(ctx, &[&base[..], &["--method", "diag"]].concat())?;
        check_eq!(sockets_of(&bpf), want, "bpf dry run sockets");
        check_eq!(sockets_of(&diag), want, "diag dry run sockets");
        check!(
            bpf["netns_walked"].as_u64() >= Some(pods.len() as u64 + 1),
            "bpf walked {} netns",
            bpf["netns_walked"]
        );
        for p in &pods {
            p.check_destroyed(false)?;
            p.check_bystanders()?;
        }
        Ok(())
    });
    for method in ["bpf", "diag"] {
        r.sub(&format!("destroy_{method}"), || -> TResult {
            env::require_root()?;
            env::bpf_obj(&ctx.bpf_dir, "nk_sock_destroy.bpf.o")?;
            let pods = pods(&method[..1], 4)?;
            // Before: a destroyed UDP socket loses its autobound port.
            let want = expected(&pods)?;
            let v = nkctl_json(ctx, &destroy_argv(method))?;
            check_eq!(sockets_of(&v), want, "{method}: destroyed sockets");
            let per_ns = v["netns"].as_array().cloned().unwrap_or_default();
            for p in &pods {
                let n = per_ns
                    .iter()
                    .find(|n| n["ino"].as_u64() == Some(p.ino))
                    .ok_or_else(|| Stop::Fail(format!("{} missing from the report", p.name)))?;
                check_eq!(n["name"].as_str(), Some(p.name.as_str()), "netns name");
                check_eq!(n["tcp"].as_u64(), Some(CLIENTS as u64), "{}: tcp", p.name);
                check_eq!(n["udp"].as_u64(), Some(CLIENTS as u64), "{}: udp", p.name);
                check_eq!(n["errors"].as_u64(), Some(0), "{}: errors", p.name);
                p.check_destroyed(true)?;
                p.check_bystanders()?;
            }
            // Nothing is left to destroy.
            let again = nkctl_json(ctx, &destroy_argv(method))?;
            check_eq!(sockets_of(&again), SockSet::new(), "{method}: second run");
            Ok(())
        });
    }
    r.sub("pinned_program_is_reused", || -> TResult {
        env::require_root()?;
        env::bpf_obj(&ctx.bpf_dir, "nk_sock_destroy.bpf.o")?;
        let dir = format!("/sys/fs/bpf/nksd-{}", std::process::id());
        let _unpin = Unpin(&dir);
        for round in 0..2 {
            let pods = pods(&format!("p{round}"), 2)?;
            let want = expected(&pods)?;
            let mut args = destroy_argv("bpf").to_vec();
            args.extend(["--pin", &dir]);
            let v = nkctl_json(ctx, &args)?;
            check_eq!(sockets_of(&v), want, "round {round}: destroyed sockets");
            for p in &pods {
                p.check_destroyed(true)?;
            }
            for f in ["prog", "nk_sd_stats", "nk_sd_found"] {
                check!(
                    std::path::Path::new(&dir).join(f).exists(),
                    "round {round}: {dir}/{f} not pinned"
                );
            }
            if round == 1 {
                // Without the object: only the pins can serve this run.
                let mut args = destroy_argv("bpf").to_vec();
                args.extend(["--pin", &dir, "--obj", "/nonexistent.bpf.o"]);
                let v = nkctl_json(ctx, &args)?;
                check_eq!(sockets_of(&v), SockSet::new(), "pinned rerun");
            }
        }
        Ok(())
    });
    r.sub("one_netns_only", || -> TResult {
        env::require_root()?;
        env::bpf_obj(&ctx.bpf_dir, "nk_sock_destroy.bpf.o")?;
        let pods = pods("o", 3)?;
        for (i, method) in ["bpf", "diag"].into_iter().enumerate() {
            let path = format!("/run/netns/{}", pods[i].name);
            let want = pods[i].expected()?;
            let mut args = destroy_argv(method).to_vec();
            args.extend(["--netns", &path]);
            let v = nkctl_json(ctx, &args)?;
            check_eq!(
                v["netns_walked"].as_u64(),
                Some(1),
                "{method}: netns walked"
            );
            check_eq!(
                sockets_of(&v),
                want,
                "{method}: sockets of {}",
                pods[i].name
            );
            pods[i].check_destroyed(true)?;
        }
        pods[2].check_destroyed(false)?;
        for p in &pods {
            p.check_bystanders()?;
        }
        Ok(())
    });
    r.sub("ipv6_backend", || -> TResult {
        env::require_root()?;
        env::bpf_obj(&ctx.bpf_dir, "nk_sock_destroy.bpf.o")?;
        const V6_VICTIM: &str = "[::1]:8081";
        const V6_OTHER: &str = "[::1]:8082";
        let name = format!("nksd-{}-v6", std::process::id());
        let fd = env::named_netns(&name)?;
        struct Del(String);
        impl Drop for Del {
            fn drop(&mut self) {
                let _ = NetnsFd::delete_named(&self.0);
            }
        }
        let _del = Del(name.clone());
        let ino =
            std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(format!("/run/netns/{name}"))?);
        /// Victims (TCP, UDP), bystanders connected to the other backend
        /// (TCP both ends, UDP), and what must stay open meanwhile.
        struct V6 {
            tcp: Vec<TcpStream>,
            udp: Vec<UdpSocket>,
            others_tcp: Vec<TcpStream>,
            others_udp: Vec<UdpSocket>,
            _open: (TcpListener, TcpListener, Vec<TcpStream>),
        }
        let v6 = fd.run(|| -> Result<V6, Stop> {
            let l = TcpListener::bind(V6_VICTIM)?;
            let lo = TcpListener::bind(V6_OTHER)?;
            let (mut tcp, mut udp, mut accepted) = (vec![], vec![], vec![]);
            let (mut others_tcp, mut others_udp) = (vec![], vec![]);
            for _ in 0..CLIENTS {
                tcp.push(TcpStream::connect(V6_VICTIM)?);
                accepted.push(l.accept()?.0);
                others_tcp.push(TcpStream::connect(V6_OTHER)?);
                others_tcp.push(lo.accept()?.0);
                for (v, to) in [(&mut udp, V6_VICTIM), (&mut others_udp, V6_OTHER)] {
                    let u = UdpSocket::bind("[::1]:0")?;
                    u.connect(to)?;
                    v.push(u);
                }
            }
            Ok(V6 {
                tcp,
                udp,
                others_tcp,
                others_udp,
                _open: (l, lo, accepted),
            })
        })??;
        let want: SockSet = v6
            .tcp
            .iter()
            .map(|c| ("tcp", c.local_addr()))
            .chain(v6.udp.iter().map(|c| ("udp", c.local_addr())))
            .map(|(p, a)| Ok((ino, p.to_string(), a?.to_string(), V6_VICTIM.to_string())))
            .collect::<Result<_, Stop>>()?;
        for method in ["bpf", "diag"] {
            let v = nkctl_json(
                ctx,
                &[
                    "sock",
                    "destroy",
                    "--backend",
                    V6_VICTIM,
                    "--method",
                    method,
                    "--dry-run",
                    "--json",
                ],
            )?;
            check_eq!(sockets_of(&v), want, "{method}: IPv6 dry run");
        }
        let v = nkctl_json(ctx, &["sock", "destroy", "--backend", V6_VICTIM, "--json"])?;
        check_eq!(sockets_of(&v), want, "IPv6 destroy");
        for c in &v6.tcp {
            check_eq!(
                env::so_error(c.as_raw_fd()),
                libc::ECONNABORTED,
                "v6 tcp victim"
            );
        }
        for c in &v6.udp {
            check_eq!(
                env::so_error(c.as_raw_fd()),
                libc::ECONNABORTED,
                "v6 udp victim"
            );
        }
        for c in &v6.others_tcp {
            check_eq!(env::so_error(c.as_raw_fd()), 0, "v6 tcp bystander");
        }
        for c in &v6.others_udp {
            check_eq!(env::so_error(c.as_raw_fd()), 0, "v6 udp bystander");
        }
        Ok(())
    });
    r.sub("bad_input_is_refused", || -> TResult {
        env::require_root()?;
        for (args, want) in [
            (
                vec!["--backend", VICTIM, "--netns", "/proc/self/ns/mnt"],
                "not a network namespace",
            ),
            (
                vec!["--backend", VICTIM, "--netns", "/nonexistent"],
                "--netns /nonexistent",
            ),
            (vec!["--backend", "127.0.0.2"], "invalid socket address"),
            (vec!["--backend", "127.0.0.2:0"], "port 0"),
            (
                vec!["--backend", VICTIM, "--pin", "/tmp/nk-not-bpffs"],
                "not on a bpf filesystem",
            ),
        ] {
            let out = nkctl_raw(ctx, &[&["sock", "destroy"][..], &args].concat())?;
            let err = String::from_utf8_lossy(&out.stderr);
            check!(!out.status.success(), "nkctl {args:?} succeeded");
            check!(err.contains(want), "nkctl {args:?}: {err:?} lacks {want:?}");
            // Bad input: clap's usage error (2) or nkctl's own check (1),
            // never the kernel's code (4).
            let code = if want == "invalid socket address" {
                2
            } else {
                1
            };
            check_eq!(out.status.code(), Some(code), "nkctl {args:?}: exit code");
            // With --json, the error is JSON on stdout too.
            let out = nkctl_raw(ctx, &[&["--json", "sock", "destroy"][..], &args].concat())?;
            check!(!out.status.success(), "nkctl --json {args:?} succeeded");
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
                Stop::Fail(format!("nkctl --json {args:?}: stdout is not JSON: {e}"))
            })?;
            let msg = v["error"]["message"].as_str().unwrap_or_default();
            // clap's own refusals carry their kind, not the text.
            check!(
                msg.contains(want) || !msg.is_empty() && want == "invalid socket address",
                "nkctl --json {args:?}: {v} lacks {want:?}"
            );
            check_eq!(
                v["error"]["exit"].as_i64(),
                Some(i64::from(code)),
                "nkctl --json {args:?}: the error's exit field"
            );
        }
        Ok(())
    });
    r.sub("missing_capability_is_named", || -> TResult {
        env::require_root()?;
        env::bpf_obj(&ctx.bpf_dir, "nk_sock_destroy.bpf.o")?;
        let pods = pods("c", 1)?;
        for method in ["bpf", "diag"] {
            let mut c = nkctl_cmd(ctx, &destroy_argv(method))?;
            // SAFETY: the closure runs in the child between fork and exec
            // and only calls prctl(2), which is async-signal-safe.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut c, || {
                    // Out of the bounding set: root's exec does not get it.
                    const CAP_NET_ADMIN: libc::c_ulong = 12; // linux/capability.h
                    if libc::prctl(libc::PR_CAPBSET_DROP, CAP_NET_ADMIN, 0, 0, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let out = c.output()?;
            let err = String::from_utf8_lossy(&out.stderr);
            check!(
                !out.status.success(),
                "{method}: nkctl without CAP_NET_ADMIN succeeded"
            );
            check_eq!(
                out.status.code(),
                Some(1),
                "{method}: a missing capability found before any request"
            );
            check!(
                err.contains("needs CAP_NET_ADMIN")
                    && err.contains("missing from the effective set"),
                "{method}: {err:?} does not name CAP_NET_ADMIN"
            );
            pods[0].check_destroyed(false)?;
        }
        Ok(())
    });
    r.sub("stale_pin_is_refused", || -> TResult {
        env::require_root()?;
        env::bpf_obj(&ctx.bpf_dir, "nk_sock_destroy.bpf.o")?;
        let dir = format!("/sys/fs/bpf/nksd-{}-stale", std::process::id());
        let _unpin = Unpin(&dir);
        let mut args = destroy_argv("bpf").to_vec();
        args.extend(["--dry-run", "--pin", &dir]);
        nkctl_json(ctx, &args)?;
        // The stats record of another version of the object: 16 bytes
        // where this one has 20. Read into this version's buffer, the
        // kernel would write past it the other way round.
        let stats = format!("{dir}/nk_sd_stats");
        std::fs::remove_file(&stats)?;
        let st = Command::new("bpftool")
            .args([
                "map", "create", &stats, "type", "array", "key", "4", "value", "16",
            ])
            .args(["entries", "1", "name", "nk_sd_stats"])
            .status()?;
        check!(st.success(), "bpftool map create: {st}");
        let out = nkctl_raw(ctx, &args)?;
        let err = String::from_utf8_lossy(&out.stderr);
        check!(!out.status.success(), "nkctl with a stale pin succeeded");
        check!(
            err.contains("nk_sd_stats is a map of type 2 with 4-byte keys, 16-byte values")
                && err.contains(&format!("rm -r {dir}")),
            "{err:?} does not describe the stale pin"
        );
        Ok(())
    });
}
