//! The VM runner: boots one qemu for a plan of tests, follows the console
//! and KTAP logs live, enforces the host-side watchdog, attributes kernel
//! splats to tests, and turns it all into a report.

pub mod qemu;
pub mod report;
pub mod splat;

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use nk_init::plan::Entry;

pub use qemu::{Accel, KvmMode, VmSpec};
pub use report::{Splat, VmReport};

/// Extra time the host allows beyond a test's own timeout before it kills
/// qemu (the guest init kills the test itself at its timeout; this is
/// the backstop for a stuck kernel).
const HOST_GRACE: Duration = Duration::from_secs(20);

/// Lines of console kept after a splat's first line.
const SPLAT_CONTEXT: usize = 40;

/// Follows a growing file, yielding complete lines.
struct Tail {
    path: std::path::PathBuf,
    off: u64,
    partial: String,
}

impl Tail {
    fn new(path: &Path) -> Self {
        Tail {
            path: path.to_path_buf(),
            off: 0,
            partial: String::new(),
        }
    }

    fn lines(&mut self, flush: bool) -> Vec<String> {
        let mut buf = Vec::new();
        if let Ok(mut f) = File::open(&self.path) {
            if f.seek(SeekFrom::Start(self.off)).is_ok() {
                let _ = f.read_to_end(&mut buf);
            }
        }
        self.off += buf.len() as u64;
        self.partial
            .push_str(&String::from_utf8_lossy(&buf).replace('\r', ""));
        let mut out = Vec::new();
        while let Some(i) = self.partial.find('\n') {
            out.push(self.partial[..i].to_string());
            self.partial.drain(..=i);
        }
        if flush && !self.partial.is_empty() {
            out.push(std::mem::take(&mut self.partial));
        }
        out
    }
}

/// Live state of a run.
#[derive(Default)]
struct Live {
    booted: Option<Duration>,
    first_test: Option<Duration>,
    guest_uptime: Option<f64>,
    guest_cpus: Option<u32>,
    running: Option<(usize, Instant)>,
    durations: Vec<Option<Duration>>,
    con_test: Option<usize>,
    con_last: Option<usize>,
    splats: Vec<(Option<usize>, Splat)>,
    exit_marker: bool,
    panic: Option<String>,
    /// Console lines since the last splat started (markers reset it high).
    since_splat: usize,
}

fn marker(line: &str, prefix: &str) -> Option<usize> {
    let rest = line.strip_prefix(prefix)?;
    rest.split_whitespace()
        .next()?
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .map(|n| n - 1)
}

impl Live {
    fn console_line(&mut self, line: &str) {
        let l = splat::strip_time(line);
        if let Some(i) = marker(l, "nkdev: begin ") {
            self.con_test = Some(i);
            self.since_splat = usize::MAX / 2;
            return;
        }
        if let Some(i) = marker(l, "nkdev: end ") {
            self.con_test = None;
            self.con_last = Some(i);
            self.since_splat = usize::MAX / 2;
            return;
        }
        self.since_splat = self.since_splat.saturating_add(1);
        if l.starts_with("Kernel panic - not syncing") {
            self.panic.get_or_insert_with(|| l.to_string());
        }
        if let Some(kind) = splat::classify(line) {
            // A report inside another one's context (e.g. the "cut here"
            // line before a WARNING) extends it rather than adding one.
            if self.since_splat <= 3 {
                if let Some((_, s)) = self.splats.last_mut() {
                    s.context.push(l.to_string());
                    return;
                }
            }
            self.since_splat = 0;
            let owner = self.con_test.or(self.con_last);
            self.splats.push((
                owner,
                Splat {
                    kind: kind.to_string(),
                    first_line: l.to_string(),
                    context: vec![],
                },
            ));
            return;
        }
        let keep = self.since_splat <= SPLAT_CONTEXT;
        if let Some((_, s)) = self.splats.last_mut() {
            if keep {
                s.context.push(l.to_string());
            }
        }
    }

    fn ktap_line(&mut self, line: &str, t0: Instant) {
        if let Some(up) = line.strip_prefix("# nkdev: boot ") {
            self.booted = Some(t0.elapsed());
            self.guest_uptime = up.trim().parse().ok();
        } else if let Some(n) = line.strip_prefix("# nkdev: cpus ") {
            self.guest_cpus = n.trim().parse().ok();
        } else if let Some(i) = marker(line, "# nkdev: begin ") {
            self.first_test.get_or_insert(t0.elapsed());
            self.running = Some((i, Instant::now()));
        } else if line.starts_with("# nkdev: exit") {
            self.exit_marker = true;
        } else if let Some((_, n, _, _)) = ktap::parse_result_line(line) {
            if let Some((i, start)) = self.running.take() {
                if i + 1 == n as usize && i < self.durations.len() {
                    self.durations[i] = Some(start.elapsed());
                }
            }
        }
    }
}

/// Limits for one VM run.
pub struct Limits {
    /// From qemu start to the init's first KTAP line.
    pub boot: Duration,
    /// The whole run.
    pub run: Duration,
    /// Host seconds per guest second the watchdog allows a test: 1, or
    /// more under `-icount`, where the guest's clock runs slower than the
    /// host's and a test's timeout (guest time) is reached later.
    pub guest_slowdown: u32,
}

/// Boots the VM, runs `plan`, and reports. Kills qemu on any exit path.
pub fn run(spec: &VmSpec, plan: &[Entry], run_dir: &Path, limits: &Limits) -> Result<VmReport> {
    let _ = fs::remove_file(spec.console);
    let _ = fs::remove_file(spec.ktap);
    File::create(spec.console)?;
    File::create(spec.ktap)?;
    let t0 = Instant::now();
    let mut q = qemu::Qemu::spawn(qemu::command(spec), &run_dir.join("qemu.log"))?;
    let mut con = Tail::new(spec.console);
    let mut kt = Tail::new(spec.ktap);
    let mut live = Live {
        durations: vec![None; plan.len()],
        since_splat: usize::MAX / 2,
        ..Default::default()
    };
    let mut abort: Option<String> = None;
    let mut host_timeout: Option<usize> = None;
    let mut last_print = None::<usize>;
    loop {
        let exited = q.try_wait()?.is_some();
        for l in con.lines(exited) {
            live.console_line(&l);
        }
        for l in kt.lines(exited) {
            live.ktap_line(&l, t0);
        }
        if let Some((i, _)) = live.running {
            if last_print != Some(i) {
                last_print = Some(i);
                eprintln!(
                    "    [{:>6.1}s] running {}/{} {}",
                    t0.elapsed().as_secs_f64(),
                    i + 1,
                    plan.len(),
                    plan[i].name
                );
            }
        }
        if exited {
            break;
        }
        if live.booted.is_none() && t0.elapsed() > limits.boot {
            abort = Some(format!(
                "the kernel did not reach nk-init within {}s",
                limits.boot.as_secs()
            ));
        } else if let Some((i, start)) = live.running {
            if start.elapsed() > plan[i].timeout * limits.guest_slowdown + HOST_GRACE {
                host_timeout = Some(i);
                abort = Some(format!(
                    "host watchdog: {} gave no result within {}s (+{}s grace); VM killed",
                    plan[i].name,
                    (plan[i].timeout * limits.guest_slowdown).as_secs(),
                    HOST_GRACE.as_secs()
                ));
            }
        }
        if abort.is_none() && t0.elapsed() > limits.run {
            abort = Some(format!(
                "run timeout: {}s elapsed; VM killed",
                limits.run.as_secs()
            ));
            host_timeout = live.running.map(|(i, _)| i);
        }
        if abort.is_some() {
            q.kill();
            // Pick up what was written before the kill.
            for l in con.lines(true) {
                live.console_line(&l);
            }
            for l in kt.lines(true) {
                live.ktap_line(&l, t0);
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    q.kill();
    let wall = t0.elapsed();
    if abort.is_none() && !live.exit_marker {
        // QEMU itself can die (an assertion, a signal): say so, with its
        // last words, rather than blame the guest.
        let qemu_said = fs::read_to_string(run_dir.join("qemu.log"))
            .unwrap_or_default()
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| format!("; qemu.log: {}", l.trim()))
            .unwrap_or_default();
        abort = Some(match &live.panic {
            Some(p) => format!("kernel panic: {p}"),
            None if live.booted.is_none() => {
                format!("the VM exited before nk-init started (see console.log){qemu_said}")
            }
            None => format!("the VM exited before the plan finished (see console.log){qemu_said}"),
        });
    }
    let doc = ktap::parse(&fs::read_to_string(spec.ktap).unwrap_or_default());
    Ok(report::build(
        plan,
        &doc,
        live_into(live),
        abort,
        host_timeout,
        wall,
    ))
}

fn live_into(l: Live) -> report::LiveFacts {
    report::LiveFacts {
        booted: l.booted,
        first_test: l.first_test,
        guest_uptime: l.guest_uptime,
        guest_cpus: l.guest_cpus,
        running: l.running.map(|(i, _)| i),
        durations: l.durations,
        splats: l.splats,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splats_are_attributed_to_the_running_test() {
        let mut l = Live {
            durations: vec![None; 2],
            since_splat: usize::MAX / 2,
            ..Default::default()
        };
        for line in [
            "[    1.0] nkdev: begin 1 a",
            "[    1.1] ok",
            "[    1.2] nkdev: end 1 a",
            "[    1.3] WARNING: CPU: 0 PID: 5 at net/core/dev.c:1 x",
            "[    1.4] Call Trace:",
            "[    1.5] nkdev: begin 2 b",
            "[    1.6] BUG: KASAN: use-after-free in y",
        ] {
            l.console_line(line);
        }
        assert_eq!(l.splats.len(), 2);
        // Printed after test 1 ended (e.g. deferred netns cleanup): test 1.
        assert_eq!(l.splats[0].0, Some(0));
        assert_eq!(l.splats[0].1.kind, "WARNING");
        assert_eq!(l.splats[0].1.context, ["Call Trace:"]);
        assert_eq!(l.splats[1].0, Some(1));
    }
}
