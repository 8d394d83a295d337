//! PID 1 of the nkdev test VM.
//!
//! The guest's root is the host's root, read-only over virtio-9p. This init
//! mounts the pseudo filesystems and tmpfs where tests must write, runs the
//! plan named by `nkdev.plan=` on the kernel command line, and writes KTAP
//! version 1 to the virtio-serial port named `nkdev.ktap`:
//!
//! ```text
//! KTAP version 1
//! 1..N
//! # nkdev: begin 1 NAME          <- the host's watchdog keys on these
//!   ...the test's own KTAP, indented (or `# ` lines for raw output)...
//! ok 1 NAME
//! # nkdev: exit 0
//! ```
//!
//! The same begin/end markers go to /dev/kmsg, so that the host can
//! attribute kernel splats on the console to the test that was running.
//! After each test the init checks for leaked named netns, network
//! devices and bpffs pins, and fails the test that leaked them.
//! When done it reboots, which with qemu's `-no-reboot` ends the VM.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ktap::Outcome;
use nix::mount::{mount, MsFlags};
use nk_init::plan::{self, Entry, Format};
use nk_init::test_progs;

const KTAP_PORT_NAME: &str = "nkdev.ktap";

fn main() {
    let mut con = Console;
    let code = match run(&mut con) {
        Ok(c) => c,
        Err(e) => {
            con.say(&format!("nk-init: fatal: {e}"));
            2
        }
    };
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
    if std::process::id() == 1 {
        let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT);
    }
    std::process::exit(code);
}

/// The kernel console (fd 1 of PID 1).
struct Console;

impl Console {
    fn say(&mut self, s: &str) {
        let _ = writeln!(std::io::stdout(), "{s}");
    }
}

fn kmsg(s: &str) {
    if let Ok(mut f) = OpenOptions::new().write(true).open("/dev/kmsg") {
        let _ = f.write_all(format!("<5>{s}\n").as_bytes());
    }
}

fn mount_fs(
    src: &str,
    target: &str,
    fstype: &str,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), String> {
    let _ = fs::create_dir_all(target);
    mount(Some(src), target, Some(fstype), flags, data)
        .map_err(|e| format!("mount {fstype} on {target}: {e}"))
}

/// Mounts a tmpfs on `t`; host directories in `keep` that lie below `t`
/// are bind-mounted aside first and moved back on top of the tmpfs.
fn tmpfs_keeping(t: &str, keep: &[String]) -> Result<(), String> {
    let inside: Vec<&String> = keep
        .iter()
        .filter(|k| Path::new(k.as_str()).starts_with(t))
        .collect();
    if inside.iter().any(|k| Path::new(k.as_str()) == Path::new(t)) {
        // The host path is the mount point itself: leave it read-only.
        return Ok(());
    }
    let mut held = Vec::new();
    for (i, k) in inside.iter().enumerate() {
        let hold = format!(
            "/dev/.nkdev-hold-{}-{i}",
            t.trim_start_matches('/').replace('/', "-")
        );
        fs::create_dir_all(&hold).map_err(|e| format!("mkdir {hold}: {e}"))?;
        mount(
            Some(k.as_str()),
            hold.as_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| format!("bind {k} aside: {e}"))?;
        held.push((hold, *k));
    }
    mount_fs(
        "tmpfs",
        t,
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    )?;
    for (hold, k) in held {
        fs::create_dir_all(k).map_err(|e| format!("mkdir {k}: {e}"))?;
        mount(
            Some(hold.as_str()),
            k.as_str(),
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .map_err(|e| format!("move {k} back over the tmpfs: {e}"))?;
    }
    Ok(())
}

fn setup_mounts() -> Result<(), String> {
    let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_fs("proc", "/proc", "proc", nosuid, None)?;
    mount_fs("sysfs", "/sys", "sysfs", nosuid, None)?;
    if !Path::new("/dev/null").exists() {
        mount_fs(
            "devtmpfs",
            "/dev",
            "devtmpfs",
            MsFlags::MS_NOSUID,
            Some("mode=0755"),
        )?;
    }
    // Host paths the tests need (workspace, target dir, kernel cache) stay
    // visible even when they sit under a directory that gets a tmpfs.
    let keep: Vec<String> = cmdline_param("nkdev.keep")
        .map(|v| {
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    for t in ["/tmp", "/run", "/var/tmp", "/dev/shm", "/var/log"] {
        tmpfs_keeping(t, &keep)?;
    }
    mount_fs(
        "devpts",
        "/dev/pts",
        "devpts",
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        None,
    )
    .ok();
    mount_fs("bpf", "/sys/fs/bpf", "bpf", nosuid, Some("mode=0700"))?;
    mount_fs("cgroup2", "/sys/fs/cgroup", "cgroup2", nosuid, None)?;
    mount_fs("debugfs", "/sys/kernel/debug", "debugfs", nosuid, None).ok();
    mount_fs("tracefs", "/sys/kernel/tracing", "tracefs", nosuid, None).ok();
    // `ip netns` wants a shared /run/netns.
    let _ = fs::create_dir_all("/run/netns");
    // The one host directory the guest may write (artifacts).
    if cmdline_param("nkdev.out").is_some() {
        mount_fs(
            "nkdev.out",
            nk_init::GUEST_OUT,
            "9p",
            nosuid,
            Some("trans=virtio,version=9p2000.L,msize=1048576"),
        )?;
    }
    Ok(())
}

fn lo_up() {
    // SAFETY: plain socket(2); the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return;
    }
    // SAFETY: ifreq is plain old data; zeroed is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in b"lo\0".iter().enumerate() {
        ifr.ifr_name[i] = *b as libc::c_char;
    }
    // SAFETY: fd is a valid socket and ifr is a valid ifreq for these ioctls.
    unsafe {
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr) == 0 {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr);
        }
        libc::close(fd);
    }
}

/// Finds `/dev/vportNpM` whose sysfs name is `name`.
fn find_port(name: &str) -> Option<String> {
    for e in fs::read_dir("/sys/class/virtio-ports").ok()?.flatten() {
        if fs::read_to_string(e.path().join("name")).ok()?.trim() == name {
            return Some(format!("/dev/{}", e.file_name().to_string_lossy()));
        }
    }
    None
}

fn cmdline_param(key: &str) -> Option<String> {
    let c = fs::read_to_string("/proc/cmdline").ok()?;
    c.split_whitespace().find_map(|w| {
        w.strip_prefix(key)
            .and_then(|v| v.strip_prefix('='))
            .map(String::from)
    })
}

/// Things that a test must not leave behind.
#[derive(PartialEq, Eq)]
struct Snapshot {
    netns: BTreeSet<String>,
    links: BTreeSet<String>,
    pins: BTreeSet<String>,
}

fn list(dir: &Path, recurse: bool, out: &mut BTreeSet<String>) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            out.insert(e.path().display().to_string());
            if recurse && e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                list(&e.path(), true, out);
            }
        }
    }
}

fn snapshot() -> Snapshot {
    let mut s = Snapshot {
        netns: BTreeSet::new(),
        links: BTreeSet::new(),
        pins: BTreeSet::new(),
    };
    list(Path::new("/run/netns"), false, &mut s.netns);
    list(Path::new("/sys/class/net"), false, &mut s.links);
    list(Path::new("/sys/fs/bpf"), true, &mut s.pins);
    s
}

fn leaks(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let mut v = Vec::new();
    for (what, b, a) in [
        ("named netns", &before.netns, &after.netns),
        (
            "network device in the init netns",
            &before.links,
            &after.links,
        ),
        ("bpffs pin", &before.pins, &after.pins),
    ] {
        for x in a.difference(b) {
            v.push(format!("leaked {what}: {x}"));
        }
    }
    v
}

/// Removes what a test leaked so that the next test starts clean.
fn clean_up(after: &Snapshot, before: &Snapshot) {
    for x in after.netns.difference(&before.netns) {
        let _ = nix::mount::umount2(x.as_str(), nix::mount::MntFlags::MNT_DETACH);
        let _ = fs::remove_file(x);
    }
    let pins: Vec<&String> = after.pins.difference(&before.pins).collect();
    for x in pins.into_iter().rev() {
        let _ = fs::remove_file(x).or_else(|_| fs::remove_dir(x));
    }
    for x in after.links.difference(&before.links) {
        let dev = Path::new(x)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let _ = Command::new("ip")
            .args(["link", "del", &dev])
            .stderr(Stdio::null())
            .status();
    }
}

fn run(con: &mut Console) -> Result<i32, String> {
    if std::process::id() == 1 {
        setup_mounts()?;
        let _ = nix::unistd::sethostname("nkdev-vm");
    }
    lo_up();
    let uptime = fs::read_to_string("/proc/uptime").unwrap_or_default();
    let plan_path =
        cmdline_param("nkdev.plan").ok_or("no nkdev.plan= on the kernel command line")?;
    let plan = plan::parse(
        &fs::read_to_string(&plan_path).map_err(|e| format!("reading {plan_path}: {e}"))?,
    )?;
    let port =
        find_port(KTAP_PORT_NAME).ok_or(format!("no virtio-serial port named {KTAP_PORT_NAME}"))?;
    let mut out = OpenOptions::new()
        .write(true)
        .open(&port)
        .map_err(|e| format!("opening {port}: {e}"))?;
    let mut emit = |s: &str| {
        let _ = out.write_all(s.as_bytes());
        let _ = out.flush();
    };
    emit(&format!("KTAP version 1\n1..{}\n", plan.len()));
    emit(&format!(
        "# nkdev: boot {}\n",
        uptime.split_whitespace().next().unwrap_or("?")
    ));
    // The host checks this against the vCPUs it gave qemu.
    emit(&format!(
        "# nkdev: cpus {}\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    ));
    con.say(&format!(
        "nk-init: running {} test(s), KTAP on {port}",
        plan.len()
    ));
    let mut failed = 0;
    for (i, e) in plan.iter().enumerate() {
        let n = i + 1;
        emit(&format!("# nkdev: begin {n} {}\n", e.name));
        kmsg(&format!("nkdev: begin {n} {}", e.name));
        let before = snapshot();
        let mut outcome = run_one(e, &mut emit);
        let after = snapshot();
        let leaked = leaks(&before, &after);
        if !leaked.is_empty() {
            for l in &leaked {
                emit(&format!("  # {l}\n"));
            }
            clean_up(&after, &before);
            if !matches!(outcome, Outcome::Timeout(_)) {
                outcome = Outcome::Fail;
            }
        }
        kmsg(&format!("nkdev: end {n} {}", e.name));
        if matches!(outcome, Outcome::Fail | Outcome::Timeout(_)) {
            failed += 1;
        }
        let mut w = ktap::Writer::default();
        w.result(n as u32, &e.name, &outcome);
        emit(&w.take());
    }
    emit(&format!("# nkdev: exit {}\n", i32::from(failed > 0)));
    Ok(i32::from(failed > 0))
}

fn run_one(e: &Entry, emit: &mut impl FnMut(&str)) -> Outcome {
    let (rd, wr): (OwnedFd, OwnedFd) = match nix::unistd::pipe() {
        Ok(p) => p,
        Err(err) => {
            emit(&format!("  # nk-init: pipe: {err}\n"));
            return Outcome::Fail;
        }
    };
    let wr2 = match wr.try_clone() {
        Ok(w) => w,
        Err(err) => {
            emit(&format!("  # nk-init: dup: {err}\n"));
            return Outcome::Fail;
        }
    };
    let mut cmd = Command::new(&e.argv[0]);
    cmd.args(&e.argv[1..])
        .current_dir(&e.cwd)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("HOME", "/tmp")
        .env("TERM", "dumb")
        .env("NKDEV_IN_VM", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(wr))
        .stderr(Stdio::from(wr2))
        .process_group(0);
    let start = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(err) => {
            emit(&format!("  # nk-init: cannot run {}: {err}\n", e.argv[0]));
            return Outcome::Fail;
        }
    };
    drop(cmd);
    let pgid = child.id() as i32;
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(File::from(rd)).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut captured = String::new();
    let mut timed_out = false;
    let mut tp = test_progs::Reader::default();
    loop {
        let left = e.timeout.saturating_sub(start.elapsed());
        match rx.recv_timeout(left.min(Duration::from_millis(200))) {
            Ok(line) => {
                let shown = match e.format {
                    Format::Ktap => format!("  {line}\n"),
                    Format::Raw => format!("  # {line}\n"),
                    Format::TestProgs => match tp.line(&line) {
                        Some(test_progs::Item::Test(n, name, outcome)) => {
                            let mut w = ktap::Writer::default();
                            w.result(n, &name, &outcome);
                            format!("  # {line}\n  {}", w.take())
                        }
                        // Nested under the test whose result line follows.
                        Some(test_progs::Item::Subtest(n, name, outcome)) => {
                            let mut w = ktap::Writer::default();
                            w.result(n, &name, &outcome);
                            format!("  # {line}\n    {}", w.take())
                        }
                        None => format!("  # {line}\n"),
                    },
                };
                emit(&shown);
                captured.push_str(&line);
                captured.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if start.elapsed() >= e.timeout {
                    timed_out = true;
                    break;
                }
                // The test may have exited while a daemon it started still
                // holds the pipe: stop waiting once it is gone.
                if let Ok(Some(_)) = child.try_wait() {
                    std::thread::sleep(Duration::from_millis(50));
                    while let Ok(line) = rx.try_recv() {
                        emit(&format!("  # {line}\n"));
                    }
                    break;
                }
            }
        }
    }
    // SAFETY: kill(2) on the test's own process group; harmless if gone.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    let status = child.wait();
    // Whatever escaped the process group (setsid, a double fork) would
    // outlive the test and hold its pipe: kill it, and say so.
    let leaked = if std::process::id() == 1 {
        kill_escaped(pgid)
    } else {
        vec![]
    };
    drop(rx);
    // Never block on a reader whose pipe something still holds.
    let deadline = Instant::now() + Duration::from_secs(2);
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if reader.is_finished() {
        let _ = reader.join();
    } else {
        emit("  # nk-init: the test's output pipe is still open after it ended; not waiting for it\n");
    }
    let secs = start.elapsed().as_secs_f64();
    for l in &leaked {
        emit(&format!("  # leaked process: {l} (killed)\n"));
    }
    if timed_out {
        return Outcome::Timeout(format!("killed after {}s", e.timeout.as_secs()));
    }
    let code = match status {
        Ok(s) => s
            .code()
            .unwrap_or(128 + std::os::unix::process::ExitStatusExt::signal(&s).unwrap_or(0)),
        Err(_) => 1,
    };
    emit(&format!(
        "  # nkdev: {} exited {code} after {secs:.2}s\n",
        e.name
    ));
    let (outcome, notes) = decide(e.format, code, &captured);
    for n in &notes {
        emit(&format!("  # {n}\n"));
    }
    if !leaked.is_empty() {
        return Outcome::Fail;
    }
    outcome
}

/// `PF_KTHREAD` in /proc/PID/stat's flags.
const PF_KTHREAD: u64 = 0x0020_0000;

/// Processes other than nk-init and kernel threads that are not in the
/// test's process group (which was just killed and may still be exiting):
/// `PID (comm)` of each; with `zombies`, dead ones not yet reaped too.
fn escaped(pgid: i32, zombies: bool) -> Vec<(i32, String)> {
    let mut v = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return v;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == 1 {
            continue;
        }
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp session tty tpgid flags ...
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let comm = head.split_once(" (").map_or("?", |x| x.1).to_string();
        let f: Vec<&str> = rest.split_whitespace().collect();
        let state = f.first().copied().unwrap_or("?");
        let pgrp: i32 = f.get(2).and_then(|x| x.parse().ok()).unwrap_or(0);
        let flags: u64 = f.get(6).and_then(|x| x.parse().ok()).unwrap_or(0);
        let dead = state == "Z" || state == "X";
        if flags & PF_KTHREAD != 0 || (dead && !zombies) || (pgrp == pgid && !dead) {
            continue;
        }
        v.push((pid, comm));
    }
    v
}

/// Kills what [`escaped`] finds, waits for it to go, and reaps every
/// orphan nk-init inherited, so that the next test starts with no process
/// but nk-init. Returns what was killed.
fn kill_escaped(pgid: i32) -> Vec<String> {
    let found = escaped(pgid, false);
    for (pid, _) in &found {
        // SAFETY: kill(2) of a process this VM's test left behind.
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        // SAFETY: waitpid(-1, WNOHANG) reaps any exited child of PID 1
        // (orphans are reparented to it); status is a valid out pointer.
        while unsafe {
            let mut st = 0;
            libc::waitpid(-1, &mut st, libc::WNOHANG)
        } > 0
        {}
        if escaped(pgid, true).is_empty() || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    found
        .into_iter()
        .map(|(pid, comm)| format!("pid {pid} ({comm})"))
        .collect()
}

/// Turns exit code and output into an outcome, with notes that say why
/// when the output contradicts the exit code. KTAP failures win over a
/// zero exit; a KTAP test that reports nothing, or fewer results than its
/// plan at any level, fails; 4 is a skip.
fn decide(format: Format, code: i32, output: &str) -> (Outcome, Vec<String>) {
    match format {
        Format::Ktap => decide_ktap(code, output),
        Format::TestProgs => {
            let mut tp = test_progs::Reader::default();
            for l in output.lines() {
                tp.line(l);
            }
            let problems = tp.problems();
            if tp.failed() || !problems.is_empty() || code != 0 {
                return (Outcome::Fail, problems);
            }
            (Outcome::Pass, vec![])
        }
        Format::Raw => (
            match code {
                0 => Outcome::Pass,
                4 => Outcome::Skip(
                    output
                        .lines()
                        .rev()
                        .find_map(|l| {
                            l.split_once("SKIP")
                                .map(|(_, w)| w.trim_start_matches([':', ' ']).to_string())
                        })
                        .unwrap_or_else(|| "exit code 4 (kselftest skip)".into()),
                ),
                _ => Outcome::Fail,
            },
            vec![],
        ),
    }
}

fn decide_ktap(code: i32, output: &str) -> (Outcome, Vec<String>) {
    let doc = ktap::parse(output);
    let (_, failed, _) = doc.leaf_counts();
    let short = doc.plan_mismatches();
    if failed > 0 || (code != 0 && code != 4) || !short.is_empty() {
        return (Outcome::Fail, short);
    }
    if let Some(why) = doc.skip_all {
        return (Outcome::Skip(why), vec![]);
    }
    if doc.results.is_empty() {
        return (
            Outcome::Fail,
            vec!["the test printed no KTAP result".into()],
        );
    }
    if code == 4
        || doc
            .results
            .iter()
            .all(|r| matches!(r.outcome, Outcome::Skip(_)))
    {
        let why = doc
            .results
            .iter()
            .find_map(|r| {
                if let Outcome::Skip(w) = &r.outcome {
                    Some(w.clone())
                } else {
                    None
                }
            })
            .unwrap_or_else(|| "all subtests skipped".into());
        return (Outcome::Skip(why), vec![]);
    }
    (Outcome::Pass, vec![])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ktap_failure_beats_exit_zero() {
        assert_eq!(
            decide(Format::Ktap, 0, "KTAP version 1\n1..1\nnot ok 1 x\n").0,
            Outcome::Fail
        );
    }

    #[test]
    fn ktap_with_no_results_fails() {
        assert_eq!(decide(Format::Ktap, 0, "hello\n").0, Outcome::Fail);
    }

    #[test]
    fn a_short_plan_fails_with_a_note() {
        let (o, notes) = decide(Format::Ktap, 0, "KTAP version 1\n1..3\nok 1 a\nok 2 b\n");
        assert_eq!(o, Outcome::Fail);
        assert_eq!(notes, ["top level: plan 1..3 but 2 result(s) reported"]);
    }

    #[test]
    fn test_progs_needs_its_summary() {
        assert_eq!(decide(Format::TestProgs, 0, "#1 a:OK\n").0, Outcome::Fail);
        assert_eq!(
            decide(
                Format::TestProgs,
                0,
                "#1 a:OK\nSummary: 1/0 PASSED, 0 SKIPPED, 0 FAILED\n"
            )
            .0,
            Outcome::Pass
        );
    }

    #[test]
    fn skip_is_not_a_pass() {
        assert_eq!(
            decide(
                Format::Ktap,
                4,
                "KTAP version 1\n1..1\nok 1 x # SKIP no netkit\n"
            )
            .0,
            Outcome::Skip("no netkit".into())
        );
        assert_eq!(
            decide(Format::Raw, 4, "SKIP: needs root\n").0,
            Outcome::Skip("needs root".into())
        );
    }

    #[test]
    fn leaks_are_named() {
        let a = Snapshot {
            netns: BTreeSet::new(),
            links: BTreeSet::new(),
            pins: BTreeSet::new(),
        };
        let mut b = Snapshot {
            netns: BTreeSet::new(),
            links: BTreeSet::new(),
            pins: BTreeSet::new(),
        };
        b.netns.insert("/run/netns/x".into());
        assert_eq!(leaks(&a, &b), ["leaked named netns: /run/netns/x"]);
    }
}
