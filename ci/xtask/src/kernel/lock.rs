//! One xtask at a time per cached base.
//!
//! Everything under `$NKDEV_CACHE/trees/<key>/` and `build/<key>/` is
//! shared state: `series check` checks out every patch of the `patched`
//! worktree and rebuilds the `vm` build directory in place, and `vmtest`
//! boots the image it built from there for as long as it runs. Two xtasks
//! on one base would each see the other's half-built kernel. So the first
//! command to use a base takes an exclusive `flock(2)` on
//! `trees/<key>.lock` and holds it until it exits; a second one says who
//! holds it and waits. The kernel drops the lock when the holder dies,
//! however it dies, so a killed run leaves nothing to clean up.
//!
//! To run two commands on one base side by side, give one of them a cache
//! of its own (`NKDEV_CACHE=DIR`).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};

/// The locks this process holds, open until it exits.
static HELD: Mutex<Vec<(PathBuf, File)>> = Mutex::new(Vec::new());

/// Takes (or, if another xtask holds it, waits for) the lock of the cache
/// directory `dir` (`trees/<key>`), for the rest of this process.
pub fn hold(dir: &Path) -> Result<()> {
    let path = lock_path(dir);
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    if held.iter().any(|(p, _)| *p == path) {
        return Ok(());
    }
    let mut f = open(&path)?;
    if let Some(holder) = try_lock(&f)? {
        eprintln!(
            "==> cache: {} is in use by {holder}; waiting for it to finish (or run this one with NKDEV_CACHE=DIR)",
            dir.display()
        );
        flock(&f, libc::LOCK_EX).with_context(|| format!("flock {}", path.display()))?;
        eprintln!("    cache: {} is free", dir.display());
    }
    // Who holds it, for the next one to wait.
    f.set_len(0)?;
    f.rewind()?;
    write!(f, "pid {} ({})", std::process::id(), command_line())?;
    held.push((path, f));
    Ok(())
}

fn lock_path(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    dir.with_file_name(name)
}

fn open(path: &Path) -> Result<File> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("opening the cache lock {}", path.display()))
}

/// `None` if the lock is now ours, else who holds it.
fn try_lock(f: &File) -> Result<Option<String>> {
    match flock(f, libc::LOCK_EX | libc::LOCK_NB) {
        Ok(()) => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => {
            let mut who = String::new();
            let _ = (&*f).read_to_string(&mut who);
            let who = who.trim();
            Ok(Some(if who.is_empty() {
                "another xtask".to_string()
            } else {
                who.to_string()
            }))
        }
        Err(e) => Err(e).context("flock"),
    }
}

fn flock(f: &File, op: libc::c_int) -> std::io::Result<()> {
    loop {
        // SAFETY: flock(2) takes a file descriptor and an operation and
        // touches no memory of ours; `f` keeps the descriptor open for the
        // call.
        let r = unsafe { libc::flock(f.as_raw_fd(), op) };
        if r == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("cargo xtask {}", args.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_and_named() {
        let dir = std::env::temp_dir().join(format!("nkdev-lock-{}", std::process::id()));
        let tree = dir.join("trees").join("deb-0123");
        let _ = fs::remove_dir_all(&dir);
        hold(&tree).unwrap();
        // Held twice by one process: no deadlock.
        hold(&tree).unwrap();
        let path = lock_path(&tree);
        assert_eq!(path, dir.join("trees").join("deb-0123.lock"));
        // flock(2) locks belong to the open file: a second open is a
        // second holder, as another process would be.
        let other = open(&path).unwrap();
        let who = try_lock(&other).unwrap().expect("the lock is held");
        assert!(
            who.starts_with(&format!("pid {} (cargo xtask", std::process::id())),
            "{who}"
        );
        // Another base's lock is independent.
        let free = open(&lock_path(&dir.join("trees").join("deb-4567"))).unwrap();
        assert_eq!(try_lock(&free).unwrap(), None);
        let _ = fs::remove_dir_all(&dir);
    }
}
