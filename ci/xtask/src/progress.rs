//! Long-running steps: stage banners, elapsed time, full logs under
//! `target/logs/`, and the log's tail on failure.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How often a running step prints a "still running" line.
const TICK: Duration = Duration::from_secs(20);

/// A named stage; prints its banner on creation and its elapsed time when
/// finished.
pub struct Stage {
    name: String,
    start: Instant,
}

impl Stage {
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        eprintln!("==> {name}");
        Stage {
            name,
            start: Instant::now(),
        }
    }

    pub fn done(self, what: &str) -> Duration {
        let e = self.start.elapsed();
        eprintln!("    {} {what} in {:.1}s", self.name, e.as_secs_f64());
        e
    }
}

/// Runs `cmd` with stdout and stderr appended to `log`. While it runs, a
/// line with the elapsed time and the log's last line is printed every
/// [`TICK`]. On failure the log's tail and its path are printed and an
/// error naming `what` is returned.
pub fn run_logged(what: &str, cmd: &mut Command, log: &Path) -> Result<()> {
    if let Some(dir) = log.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut f = OpenOptions::new().create(true).append(true).open(log)?;
    writeln!(f, "\n### nkdev: {what}\n### {cmd:?}")?;
    let f2 = f.try_clone()?;
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(f))
        .stderr(Stdio::from(f2))
        .spawn()
        .with_context(|| format!("{what}: cannot start {:?}", cmd.get_program()))?;
    let mut next_tick = TICK;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        std::thread::sleep(Duration::from_millis(100));
        if start.elapsed() >= next_tick {
            next_tick += TICK;
            let last = last_line(log).unwrap_or_default();
            eprintln!(
                "    ... {what}: {:>4}s  {}",
                start.elapsed().as_secs(),
                trim(&last, 90)
            );
        }
    };
    if !status.success() {
        print_tail(log, 40);
        bail!("{what} failed ({status}); full log: {}", log.display());
    }
    Ok(())
}

fn trim(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n).collect::<String>() + "…"
    }
}

/// The last non-empty line of a file, read from its end.
pub fn last_line(path: &Path) -> Option<String> {
    let tail = read_tail(path, 4096)?;
    tail.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|s| s.to_string())
}

fn read_tail(path: &Path, bytes: u64) -> Option<String> {
    let mut f = File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(bytes))).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// Prints the last `n` lines of `path` to stderr, followed by its path.
pub fn print_tail(path: &Path, n: usize) {
    let Some(text) = read_tail(path, 64 * 1024) else {
        eprintln!("    (no log at {})", path.display());
        return;
    };
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(n);
    eprintln!(
        "---- last {} lines of {} ----",
        lines.len() - from,
        path.display()
    );
    for l in &lines[from..] {
        eprintln!("{l}");
    }
    eprintln!("---- end of {} ----", path.display());
}

/// A log path under `target/logs/`.
/// `target/logs/<name>.log`. The directory is created here, so that a
/// step that writes its log itself (not through [`run_logged`]) works on
/// a fresh target directory too.
pub fn log_path(target: &Path, name: &str) -> PathBuf {
    let dir = target.join("logs");
    let _ = std::fs::create_dir_all(&dir);
    dir.join(format!("{name}.log"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A step that writes its log with fs::write, on a target directory
    /// nothing has used yet, finds the directory there.
    #[test]
    fn a_log_path_can_be_written_on_a_fresh_target() {
        let t = std::env::temp_dir().join(format!("nkdev-logs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        let log = log_path(&t, "kernel-apply-deb-0123");
        std::fs::write(&log, "x").unwrap();
        assert_eq!(log, t.join("logs").join("kernel-apply-deb-0123.log"));
        std::fs::remove_dir_all(&t).unwrap();
    }
}
