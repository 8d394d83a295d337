//! `nk-selftests --golden-capture DIR`: records nk-netlink's golden
//! traffic (see `nk_netlink::golden`) with `tcpdump -i nlmon0` while the
//! script runs against this kernel, and writes `rtnetlink.pcap` and
//! `rtnetlink.json` into DIR. `cargo xtask golden` runs it in the VM.

use std::cell::RefCell;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

use nk_netlink::golden::{self, Env, Manifest, SetupCall, SocketSetup};
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

/// The script's surroundings: a fresh netns (this thread stays in it),
/// with lo up and nlmon0; another netns by fd (at [`PEER_NS_FD`]) and by
/// a pid in it; a TCP listener with one connection, and a UDP socket.
struct World {
    _inside: nk_netlink::netns::NetnsGuard,
    _here: NetnsFd,
    peer_fd: OwnedFd,
    sleeper: Reap,
    listener: TcpListener,
    client: TcpStream,
    _accepted: TcpStream,
    udp: UdpSocket,
}

impl World {
    fn new() -> Result<World, Stop> {
        env::require_root()?;
        // lo is ifindex 1 here, and the only netlink traffic is the script's.
        let here = NetnsFd::create()?;
        let inside = here.enter()?;
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
        let (accepted, _) = listener.accept()?;
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        Ok(World {
            _inside: inside,
            _here: here,
            peer_fd,
            sleeper,
            listener,
            client,
            _accepted: accepted,
            udp,
        })
    }

    fn manifest(&self, how: &str, tcpdump: String) -> Result<Manifest, Stop> {
        Ok(Manifest {
            how: how.into(),
            kernel: first_line("uname", "-r")?,
            kernel_version: std::fs::read_to_string("/proc/version")?.trim().to_string(),
            tree: String::new(),
            tcpdump,
            steps: golden::STEPS.iter().map(|(n, _)| n.to_string()).collect(),
            peer_ns_fd: self.peer_fd.as_raw_fd(),
            peer_pid: self.sleeper.0.id(),
            tcp_listener: self.listener.local_addr()?,
            tcp_client: self.client.local_addr()?,
            udp: self.udp.local_addr()?,
            sockets: vec![],
        })
    }
}

/// Runs the script while nk-sys reports every real call, and returns the
/// netlink sockets it opened with their setup calls (for the manifest).
fn run_recording(env: &Env<'_>) -> Result<Vec<SocketSetup>, Stop> {
    let seen: Rc<RefCell<(Vec<SocketSetup>, Vec<i32>)>> = Rc::default();
    let r = {
        let s = seen.clone();
        let _g = nk_sys::trace::install(move |c, r| {
            let mut s = s.borrow_mut();
            let (sockets, fds) = &mut *s;
            match (c, r) {
                (
                    nk_sys::Syscall::Socket {
                        domain: libc::AF_NETLINK,
                        proto,
                        ..
                    },
                    Ok(fd),
                ) => {
                    sockets.push(SocketSetup {
                        protocol: *proto,
                        calls: vec![],
                    });
                    fds.push(*fd as i32);
                }
                (c, Ok(_)) => {
                    if let Some((fd, call)) = SetupCall::of(c) {
                        // The newest socket with this fd number (numbers
                        // are reused once a socket is closed).
                        if let Some(i) = fds.iter().rposition(|f| *f == fd) {
                            sockets[i].calls.push(call);
                        }
                    }
                }
                _ => {}
            }
        });
        golden::run(env, |name| println!("# step {name}"))
    };
    r.map_err(Stop::Fail)?;
    let (sockets, _) = seen.take();
    Ok(sockets)
}

/// `nk.golden_script`: the golden script against this kernel, without
/// capturing: every step's checks of what the kernel answers, on each
/// run, so a kernel change that would alter the capture shows up here.
pub fn script(_: &crate::Ctx, r: &mut Reporter) {
    r.sub("every_step_checks_out", || {
        let w = World::new()?;
        let m = w.manifest("nk.golden_script (no capture)", String::new())?;
        let env = Env {
            peer_ns: w.peer_fd.as_fd(),
            m: &m,
        };
        golden::run(&env, |name| println!("# step {name}")).map_err(Stop::Fail)
    });
}

fn capture(out: &Path) -> TResult {
    let w = World::new()?;

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

    let mut m = w.manifest(
        "nk-selftests --golden-capture (cargo xtask golden): nk_netlink::golden::STEPS \
         run in a fresh netns of the nkdev VM while `tcpdump -i nlmon0 -s 0 -U` recorded \
         every NETLINK_ROUTE and NETLINK_SOCK_DIAG skb",
        first_line("tcpdump", "--version")?,
    )?;
    let env = Env {
        peer_ns: w.peer_fd.as_fd(),
        m: &m,
    };
    let r = run_recording(&env);
    // Let tcpdump write the last skbs, then stop it the way ^C does.
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on our own child's pid; no memory involved.
    unsafe { libc::kill(tcpdump.0.id() as i32, libc::SIGINT) };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest)?;
    let st = tcpdump.0.wait()?;
    m.sockets = r?;
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
    drop(w);
    Ok(())
}

/// Runs the capture as one KTAP test; the exit code is the harness's.
pub fn main(out: &Path) -> i32 {
    let mut r = Reporter::new(1);
    r.sub("golden_capture", || capture(out));
    r.exit_code()
}
