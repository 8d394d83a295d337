//! `nkctl sock destroy` at scale: 10,000 sockets connected to a deleted
//! backend, spread over N netns (default 100), among bystanders that must
//! survive; the BPF iterator method against the SOCK_DIAG method, side by
//! side in one VM run. Wall time is one nkctl process (start, load,
//! destroy, report) as an operator would run it; syscalls are counted with
//! `strace -f -c` in separate runs (ptrace slows those down, so their time
//! is not used). Also reported: how both grow with the number of netns and
//! of bystanders.

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Instant;

use nk_netlink::NetnsFd;

use crate::cases::sock::{OTHER, VICTIM};
use crate::env;
use crate::harness::{Reporter, Stop, TResult};
use crate::{check, check_eq, Ctx};

const VICTIMS: usize = 10_000;
const BYSTANDERS: usize = 100_000;
/// The largest round: 200k bystanders plus the victims, the most this
/// bench's 3 GiB guest holds with room to spare (issue 13 asks for at
/// least 200k sockets).
const MANY_BYSTANDERS: usize = 200_000;

struct Netns {
    name: String,
    fd: NetnsFd,
    listener: TcpListener,
    victims: Vec<TcpStream>,
    victims_udp: Vec<UdpSocket>,
    accepted: Vec<TcpStream>,
    bystanders: Vec<UdpSocket>,
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = NetnsFd::delete_named(&self.name);
    }
}

fn raise_nofile() -> TResult {
    let rl = libc::rlimit {
        rlim_cur: 600_000,
        rlim_max: 600_000,
    };
    // SAFETY: rl is a valid rlimit.
    let r = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) };
    check!(
        r == 0,
        "setrlimit(RLIMIT_NOFILE): {}",
        std::io::Error::last_os_error()
    );
    Ok(())
}

fn make_netns(i: usize, bystanders: usize) -> Result<Netns, Stop> {
    let name = format!("nkbsd-{}-{i}", std::process::id());
    let fd = env::named_netns(&name)?;
    let (listener, by) = fd.run(|| -> Result<(TcpListener, Vec<UdpSocket>), Stop> {
        let l = TcpListener::bind(VICTIM)?;
        let mut by = Vec::with_capacity(bystanders);
        for _ in 0..bystanders {
            let u = UdpSocket::bind("127.0.0.1:0")?;
            u.connect(OTHER)?;
            by.push(u);
        }
        Ok((l, by))
    })??;
    Ok(Netns {
        name,
        fd,
        listener,
        victims: vec![],
        victims_udp: vec![],
        accepted: vec![],
        bystanders: by,
    })
}

/// (Re)creates the sockets connected to VICTIM: half TCP, half UDP. The
/// old ones are all closed first, so that the RCU callbacks and timers
/// their closing leaves are a whole re-arm ahead of the next span.
fn arm(nss: &mut [Netns], per_ns: usize) -> TResult {
    for ns in nss.iter_mut() {
        ns.victims.clear();
        ns.victims_udp.clear();
        ns.accepted.clear();
    }
    for ns in nss.iter_mut() {
        let (l, fd) = (&ns.listener, &ns.fd);
        let (v, u, a) = fd.run(|| -> Result<_, Stop> {
            let (mut v, mut u, mut a) = (vec![], vec![], vec![]);
            for i in 0..per_ns {
                if i % 2 == 0 {
                    v.push(TcpStream::connect(VICTIM)?);
                    a.push(l.accept()?.0);
                } else {
                    let s = UdpSocket::bind("127.0.0.1:0")?;
                    s.connect(VICTIM)?;
                    u.push(s);
                }
            }
            Ok((v, u, a))
        })??;
        ns.victims = v;
        ns.victims_udp = u;
        ns.accepted = a;
    }
    // Idle before the span: the deferred work of the closes and connects
    // (RCU callbacks, delayed ACKs, kworkers) runs now, not inside it.
    // Under -icount,sleep=off an idle guest skips to its next timer, so
    // this costs the host next to nothing.
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Then the slab allocator starts every span from the same state; the
    // second idle lets the RCU callbacks of the flushed sheaves run.
    shrink_slabs()?;
    std::thread::sleep(std::time::Duration::from_millis(100));
    Ok(())
}

/// Shrinks every slab cache (`/sys/kernel/slab/<cache>/shrink`): SLUB
/// flushes its per-CPU sheaves and the node's barn back into the slabs,
/// sorts the partial slabs by how full they are and frees the empty ones.
///
/// Without it, how many of a span's frees find a full sheaf (and go to
/// `__slab_free()`, some 300 instructions each) depended on what the
/// allocator was left holding by the re-arm before it: 0.22 to 0.35 slow
/// frees per destroyed socket, from one repetition to the next, which was
/// all that moved inside one boot in the pinned method's kernel count
/// (the diagnostic run of 2026-12-02 in docs/results.md). It narrows the
/// spreads but does not remove a part that is set per boot (session 13
/// there). Aliases (the symlinks of merged caches) are skipped: each
/// cache is shrunk once.
fn shrink_slabs() -> TResult {
    const DIR: &str = "/sys/kernel/slab";
    let entries = std::fs::read_dir(DIR).map_err(|e| {
        Stop::Fail(format!(
            "{DIR}: {e} (the benchmark needs SLUB's sysfs: CONFIG_SYSFS, not CONFIG_SLUB_TINY)"
        ))
    })?;
    let mut n = 0;
    for e in entries {
        let e = e?;
        if e.file_type()?.is_symlink() {
            continue;
        }
        let p = e.path().join("shrink");
        std::fs::write(&p, "1").map_err(|err| Stop::Fail(format!("{}: {err}", p.display())))?;
        n += 1;
    }
    check!(n > 0, "{DIR}: no slab cache to shrink");
    Ok(())
}

/// Where the `pinned` runs keep the loaded program.
fn pin_dir() -> String {
    format!("/sys/fs/bpf/nkbench-sd-{}", std::process::id())
}

/// Removes the pinned program and maps when dropped.
struct Unpin;

impl Drop for Unpin {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(pin_dir());
    }
}

/// nkctl and its BPF object in tmpfs, for the benchmark's lifetime: run
/// from the 9p root, every exec and open waits on the host, and under
/// `-icount` those waits let a host-dependent number of timer ticks run.
fn local_nkctl(ctx: &Ctx) -> Result<&'static super::LocalExe, Stop> {
    static LOCAL: std::sync::OnceLock<super::LocalExe> = std::sync::OnceLock::new();
    if let Some(l) = LOCAL.get() {
        return Ok(l);
    }
    let nk = ctx
        .nkctl
        .clone()
        .ok_or_else(|| Stop::Fail("--nkctl not given".into()))?;
    let l = super::LocalExe::from_path(&nk)?;
    std::fs::copy(
        ctx.bpf_dir.join("nk_sock_destroy.bpf.o"),
        l.dir.join("nk_sock_destroy.bpf.o"),
    )?;
    Ok(LOCAL.get_or_init(|| l))
}

/// `bpf` (load and verify in every run), `pinned` (`--pin`: loaded by an
/// earlier run and reused, like an agent keeps it) or `diag`.
fn nkctl_cmd(ctx: &Ctx, method: &str) -> Result<Command, Stop> {
    let dir = pin_dir();
    let mut args =
        crate::cases::sock::destroy_argv(if method == "pinned" { "bpf" } else { method }).to_vec();
    if method == "pinned" {
        args.extend(["--pin", &dir]);
    }
    let local = local_nkctl(ctx)?;
    let mut c = local.command();
    c.args(&args).env(
        "NK_SOCK_DESTROY_OBJ",
        local.dir.join("nk_sock_destroy.bpf.o"),
    );
    Ok(c)
}

/// One destroying run: wall seconds, the sockets it reported, and its
/// phases (setup_s, run_s, read_s, verified_insns). With `mark`, the
/// instructions of the nkctl process's run are counted (insn.rs), and
/// not what this process does with its output afterwards.
///
/// nkctl writes its report (pretty JSON, megabytes for 10,000 sockets)
/// and its errors to files in tmpfs, truncated before the span starts,
/// and this process only waits for it. Read through a pipe, the report
/// arrived in as many pieces as the scheduler made of it, each costing
/// this process a wakeup, a poll and a read, and now and then a realloc
/// that copied its buffer: a count that changed from one boot to the
/// next.
fn timed(
    ctx: &Ctx,
    method: &str,
    mark: Option<String>,
) -> Result<(f64, u64, serde_json::Value), Stop> {
    let mut cmd = nkctl_cmd(ctx, method)?;
    let dir = &local_nkctl(ctx)?.dir;
    let (out_path, err_path) = (dir.join("report.json"), dir.join("stderr.txt"));
    // Opened here, not by the spawn inside the span.
    cmd.stdin(std::fs::File::open("/dev/null")?)
        .stdout(std::fs::File::create(&out_path)?)
        .stderr(std::fs::File::create(&err_path)?);
    let t = Instant::now();
    let span = mark.map(|m| super::insn::span("sock_destroy", m));
    let status = cmd.status();
    let stopped = span.map(super::insn::Span::stop);
    let secs = t.elapsed().as_secs_f64();
    drop(cmd);
    let status = status?;
    // With --json, nkctl reports its errors on stdout.
    check!(
        status.success(),
        "nkctl --method {method}: {status}: {} {}",
        std::fs::read_to_string(&err_path)?.trim(),
        std::fs::read_to_string(&out_path)?.trim()
    );
    let out = std::fs::read(&out_path)?;
    let v: serde_json::Value =
        serde_json::from_slice(&out).map_err(|e| Stop::Fail(format!("nkctl json: {e}")))?;
    let n: u64 = v["netns"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| n["tcp"].as_u64().unwrap_or(0) + n["udp"].as_u64().unwrap_or(0))
        .sum();
    if let Some(s) = stopped {
        s.ops(n);
    }
    Ok((secs, n, v["phases"].clone()))
}

/// One destroying run under `strace -f -c`: the number of syscalls.
fn counted(ctx: &Ctx, method: &str) -> Result<u64, Stop> {
    let out_file = format!("/tmp/nk-strace-{method}-{}", std::process::id());
    let c = nkctl_cmd(ctx, method)?;
    let mut s = Command::new("strace");
    s.args(["-f", "-c", "-o", &out_file])
        .arg(c.get_program())
        .args(c.get_args());
    for (k, v) in c.get_envs() {
        if let Some(v) = v {
            s.env(k, v);
        }
    }
    let out = s.output()?;
    check!(
        out.status.success(),
        "strace nkctl --method {method}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let text = std::fs::read_to_string(&out_file)?;
    let _ = std::fs::remove_file(&out_file);
    strace_total(&text).ok_or_else(|| Stop::Fail(format!("no total in strace -c output:\n{text}")))
}

/// The calls column of the `total` line of `strace -c`.
pub fn strace_total(text: &str) -> Option<u64> {
    let l = text
        .lines()
        .rev()
        .find(|l| l.trim_end().ends_with("total"))?;
    l.split_whitespace().nth(3)?.parse().ok()
}

fn check_all_destroyed(nss: &[Netns]) -> TResult {
    for ns in nss {
        for v in &ns.victims {
            check_eq!(
                env::so_error(v.as_raw_fd()),
                libc::ECONNABORTED,
                "{}: tcp victim",
                ns.name
            );
        }
        for v in &ns.victims_udp {
            check_eq!(
                env::so_error(v.as_raw_fd()),
                libc::ECONNABORTED,
                "{}: udp victim",
                ns.name
            );
        }
    }
    Ok(())
}

fn check_bystanders(nss: &[Netns]) -> TResult {
    for ns in nss {
        for b in &ns.bystanders {
            check_eq!(env::so_error(b.as_raw_fd()), 0, "{}: bystander", ns.name);
        }
        check!(ns.listener.local_addr().is_ok(), "{}: listener", ns.name);
    }
    Ok(())
}

/// The median of a round's repetitions (their mean where even).
fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn metric(name: &str, v: f64) {
    println!("# bench: sock_destroy {name} {v:.4}");
}

/// Sets sysctls for as long as it lives, then puts the old values back.
struct Sysctls(Vec<(String, String)>);

impl Sysctls {
    fn set(kv: &[(&str, &str)]) -> Result<Sysctls, Stop> {
        let mut old = Sysctls(Vec::new());
        for (k, v) in kv {
            let path = format!("/proc/sys/{}", k.replace('.', "/"));
            let prev = std::fs::read_to_string(&path)?;
            std::fs::write(&path, v)?;
            old.0.push((path, prev.trim().to_string()));
        }
        Ok(old)
    }
}

impl Drop for Sysctls {
    fn drop(&mut self) {
        for (p, v) in &self.0 {
            let _ = std::fs::write(p, v);
        }
    }
}

/// Where a netns keeps its TCP and UDP sockets.
#[derive(Clone, Copy, PartialEq)]
enum Tables {
    /// The default: every netns shares the global hash tables, so walking
    /// one netns walks every socket of every netns.
    Shared,
    /// `net.ipv4.{tcp_child_ehash_entries,udp_child_hash_entries}` set
    /// when the netns are created: each gets tables of its own.
    PerNetns,
}

/// Builds `n_ns` netns with `by_per_ns` bystanders each, then destroys
/// VICTIMS sockets with each method (re-armed in between), `--reps`
/// times; returns the median wall seconds of (bpf, diag).
fn round(
    ctx: &Ctx,
    n_ns: usize,
    by_per_ns: usize,
    tables: Tables,
    count_syscalls: bool,
) -> Result<(f64, f64), Stop> {
    let t = Instant::now();
    let own = (tables == Tables::PerNetns)
        .then(|| {
            Sysctls::set(&[
                ("net.ipv4.tcp_child_ehash_entries", "1024"),
                ("net.ipv4.udp_child_hash_entries", "1024"),
            ])
        })
        .transpose()?;
    let mut nss = (0..n_ns)
        .map(|i| make_netns(i, by_per_ns))
        .collect::<Result<Vec<_>, _>>()?;
    // The sizes apply when a netns is created; later ones use the default.
    drop(own);
    let per_ns = VICTIMS / n_ns;
    let tag = format!(
        "ns{n_ns}_by{}{}",
        n_ns * by_per_ns,
        if tables == Tables::PerNetns {
            "_own"
        } else {
            ""
        }
    );
    const METHODS: [&str; 3] = ["bpf", "pinned", "diag"];
    let mut secs: [Vec<f64>; 3] = Default::default();
    let mut run: [Vec<f64>; 3] = Default::default();
    let _unpin = Unpin;
    // Load and pin once; the measured `pinned` runs reuse the pins.
    arm(&mut nss, per_ns)?;
    timed(ctx, "pinned", None)?;
    check_all_destroyed(&nss)?;
    // --reps: the methods take turns, so that whatever drifts during
    // the round reaches each of them alike. Every repetition prints the
    // same metrics; the host reports their median, so that one background
    // event (a kworker, an RCU batch) in one span does not move it.
    for _ in 0..ctx.reps.max(1) {
        for (k, method) in METHODS.into_iter().enumerate() {
            arm(&mut nss, per_ns)?;
            let (s, n, phases) = timed(ctx, method, Some(format!("{method}_{tag}_socket")))?;
            check_eq!(
                n,
                (per_ns * n_ns) as u64,
                "{method} {tag}: sockets destroyed"
            );
            check_all_destroyed(&nss)?;
            metric(&format!("{method}_wall_{tag}_s"), s);
            for p in ["setup_s", "run_s"] {
                metric(
                    &format!("{method}_{}_{tag}_s", p.trim_end_matches("_s")),
                    phases[p].as_f64().unwrap_or(0.0),
                );
            }
            if method != "diag" {
                metric(
                    &format!("{method}_verified_{tag}_insns"),
                    phases["verified_insns"].as_f64().unwrap_or(0.0),
                );
            }
            secs[k].push(s);
            run[k].push(phases["run_s"].as_f64().unwrap_or(0.0));
        }
    }
    if count_syscalls {
        for method in METHODS {
            arm(&mut nss, per_ns)?;
            let calls = counted(ctx, method)?;
            check_all_destroyed(&nss)?;
            metric(&format!("{method}_{tag}_syscalls"), calls as f64);
        }
    }
    let secs = secs.map(|v| median(&v));
    let run = run.map(|v| median(&v));
    check_bystanders(&nss)?;
    metric(&format!("wall_speedup_{tag}_x"), secs[2] / secs[0]);
    metric(&format!("pinned_wall_speedup_{tag}_x"), secs[2] / secs[1]);
    metric(&format!("run_speedup_{tag}_x"), run[2] / run[0]);
    eprintln!(
        "# sock_destroy {tag}: bpf {:.3}s pinned {:.3}s diag {:.3}s [round {:.0}s]",
        secs[0],
        secs[1],
        secs[2],
        t.elapsed().as_secs_f64()
    );
    Ok((secs[0], secs[2]))
}

pub fn sock_destroy(ctx: &Ctx, r: &mut Reporter, n_ns: usize) {
    r.sub("bpf_vs_diag", || -> TResult {
        env::require_root()?;
        if !ctx.bpf_dir.join("nk_sock_destroy.bpf.o").exists() {
            return Err(Stop::Skip(
                "nk_sock_destroy.bpf.o not built: this kernel lacks the socket iterator series"
                    .into(),
            ));
        }
        check!(
            n_ns > 0 && VICTIMS % n_ns == 0,
            "--size must divide {VICTIMS}"
        );
        raise_nofile()?;
        // One address layout for every nkctl process, as in every run:
        // randomized, it moves the number of page-table pages and of
        // fault-around windows that cross a 2 MiB boundary.
        let _aslr = Sysctls::set(&[("kernel.randomize_va_space", "0")])?;
        // local_nkctl()'s copies go with the benchmark.
        struct RmLocal;
        impl Drop for RmLocal {
            fn drop(&mut self) {
                let _ =
                    std::fs::remove_dir_all(format!("/tmp/nk-local-nkctl-{}", std::process::id()));
            }
        }
        let _rm = RmLocal;
        // Scaling: few netns, many netns, many netns plus bystanders in
        // the shared tables, and the same with per-netns tables.
        round(ctx, (n_ns / 10).max(1), 0, Tables::Shared, false)?;
        round(ctx, n_ns, 0, Tables::Shared, false)?;
        round(ctx, n_ns, BYSTANDERS / n_ns, Tables::Shared, true)?;
        round(ctx, n_ns, BYSTANDERS / n_ns, Tables::PerNetns, true)?;
        round(ctx, n_ns, MANY_BYSTANDERS / n_ns, Tables::Shared, false)?;
        Ok(())
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn median_of_repetitions() {
        assert_eq!(super::median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(super::median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(super::median(&[7.0]), 7.0);
        assert_eq!(super::median(&[]), 0.0);
    }

    #[test]
    fn strace_total_line() {
        let t = "% time     seconds  usecs/call     calls    errors syscall\n\
                 ------ ----------- ----------- --------- --------- ----------------\n\
                  60.00    0.000600           3       200        10 sendto\n\
                 ------ ----------- ----------- --------- --------- ----------------\n\
                 100.00    0.001000           2       345        12 total\n";
        assert_eq!(super::strace_total(t), Some(345));
        let t2 = "100.00    0.001000           2       345           total\n";
        assert_eq!(super::strace_total(t2), Some(345));
    }
}
