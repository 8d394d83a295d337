//! `nk-selftests --golden-capture DIR`: records nk-netlink's golden
//! traffic (see `nk_netlink::golden`) with `tcpdump -i nlmon0` while the
//! script runs against this kernel, and writes `rtnetlink.pcap` and
//! `rtnetlink.json` into DIR. `cargo xtask golden` runs it in the VM.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nk_netlink::golden::{self, Env, Manifest};
use nk_netlink::NetnsFd;

use crate::env;
use crate::harness::{Reporter, Stop, TResult};

/// The peer netns fd is moved to this number (or the next free one), so
/// that a replay can stand a file in at the same number.
const PEER_NS_FD: i32 = 1000;

fn sh(args: &[&str]) -> TResult {
    let out = Command::new(args[0]).args(&args[1..]).output()?;
    if !out.status.success() {
        return Err(Stop::Fail(format!(
            "{}: {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Kills and reaps a helper process however the capture ends.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn first_line(cmd: &str, arg: &str) -> Result<String, Stop> {
    let out = Command::new(cmd).arg(arg).output()?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    Ok(text.lines().next().unwrap_or_default().trim().to_string())
}

fn capture(out: &Path) -> TResult {
    env::require_root()?;
    // Everything below happens in a fresh netns: lo is ifindex 1 and the
    // only traffic nlmon sees is the script's.
    let here = NetnsFd::create()?;
    let _inside = here.enter()?;
    sh(&["ip", "link", "set", "lo", "up"])?;
    sh(&["ip", "link", "add", "nlmon0", "type", "nlmon"])?;
    sh(&["ip", "link", "set", "nlmon0", "up"])?;

    let peer = NetnsFd::create()?;
    // SAFETY: peer's fd is open; F_DUPFD_CLOEXEC returns a new fd or -1.
    let d = unsafe { libc::fcntl(peer.as_fd().as_raw_fd(), libc::F_DUPFD_CLOEXEC, PEER_NS_FD) };
    if d < 0 {
        return Err(Stop::Fail(format!(
            "F_DUPFD_CLOEXEC: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: d is the descriptor fcntl just returned, owned by nobody else.
    let peer_fd = unsafe { OwnedFd::from_raw_fd(d) };
    let sleeper = Reap(peer.run(|| {
        Command::new("sleep")
            .arg("600")
            .stdin(Stdio::null())
            .spawn()
    })??);

    let listener = TcpListener::bind("127.0.0.1:0")?;
    let client = TcpStream::connect(listener.local_addr()?)?;
    let (_accepted, _) = listener.accept()?;
    let udp = UdpSocket::bind("127.0.0.1:0")?;

    // tcpdump writes to tmpfs with a 32 MiB ring: writing each packet over
    // 9p under TCG is slow enough for the kernel to drop some.
    let pcap = Path::new("/tmp/nkdev-golden.pcap");
    let mut tcpdump = Reap(
        Command::new("tcpdump")
            .args([
                "-i",
                "nlmon0",
                "-s",
                "0",
                "-B",
                "32768",
                "-U",
                "--immediate-mode",
            ])
            .args(["-Z", "root", "-w"])
            .arg(pcap)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?,
    );
    let mut err = BufReader::new(tcpdump.0.stderr.take().expect("piped"));
    let mut line = String::new();
    while !line.contains("listening on") {
        line.clear();
        if err.read_line(&mut line)? == 0 {
            return Err(Stop::Fail("tcpdump exited before listening".into()));
        }
    }

    let m = Manifest {
        how: "nk-selftests --golden-capture (cargo xtask golden): nk_netlink::golden::STEPS \
              run in a fresh netns of the nkdev VM while `tcpdump -i nlmon0 -s 0 -U` recorded \
              every NETLINK_ROUTE and NETLINK_SOCK_DIAG skb"
            .into(),
        kernel: first_line("uname", "-r")?,
        kernel_version: std::fs::read_to_string("/proc/version")?.trim().to_string(),
        tree: String::new(),
        tcpdump: first_line("tcpdump", "--version")?,
        steps: golden::STEPS.iter().map(|(n, _)| n.to_string()).collect(),
        peer_ns_fd: d,
        peer_pid: sleeper.0.id(),
        tcp_listener: listener.local_addr()?,
        tcp_client: client.local_addr()?,
        udp: udp.local_addr()?,
    };
    let env = Env {
        peer_ns: peer_fd.as_fd(),
        m: &m,
    };
    let r = golden::run(&env, |name| println!("# step {name}"));
    // Let tcpdump write the last skbs, then stop it the way ^C does.
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on our own child's pid; no memory involved.
    unsafe { libc::kill(tcpdump.0.id() as i32, libc::SIGINT) };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest)?;
    let st = tcpdump.0.wait()?;
    r.map_err(Stop::Fail)?;
    println!("# tcpdump: {}", rest.trim().replace('\n', "; "));
    crate::check!(st.success(), "tcpdump: {st}: {rest}");
    crate::check!(
        rest.lines()
            .any(|l| l.trim() == "0 packets dropped by kernel"),
        "tcpdump dropped packets: {rest}"
    );
    let bytes = std::fs::read(pcap)?;
    std::fs::write(out.join("rtnetlink.pcap"), &bytes)?;
    let frames = golden::pcap::parse(&bytes).map_err(Stop::Fail)?;
    println!(
        "# {} frames: {} requests, {} to userspace",
        frames.len(),
        frames.iter().filter(|f| f.to_kernel).count(),
        frames.iter().filter(|f| !f.to_kernel).count()
    );
    std::fs::write(
        out.join("rtnetlink.json"),
        serde_json::to_string_pretty(&m)? + "\n",
    )?;
    drop(sleeper);
    Ok(())
}

/// Runs the capture as one KTAP test; the exit code is the harness's.
pub fn main(out: &Path) -> i32 {
    let mut r = Reporter::new(1);
    r.sub("golden_capture", || capture(out));
    r.exit_code()
}
