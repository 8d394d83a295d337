//! The maintained bases, where their source comes from, and which series
//! applies to each.
//!
//! | base   | source                                             | series              |
//! |--------|----------------------------------------------------|---------------------|
//! | `7.3`  | `linux-source-7.3` from trixie-backports            | `patches/mainline/` |
//! | `6.12` | `linux-source-6.12` from the host's bookworm sources | `patches/6.12/`     |
//!
//! The 7.3 package comes from a newer Debian release than the host's, so
//! it is fetched through a private apt configuration in the cache
//! (`Dir::Etc::sourcelist`, `Dir::Etc::sourceparts`, `Dir::State::Lists`,
//! `Dir::Cache`), with `apt-get download`, and unpacked with `dpkg-deb -x`
//! into the cache: the host's apt sources never name trixie, and nothing
//! from trixie is installed on the host. The mirror is the one the host's
//! own apt sources use for Debian.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::progress::{log_path, run_logged, Stage};
use crate::Ctx;

/// A maintained base.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum BaseName {
    /// Mainline: the newest kernel Debian packages (trixie-backports).
    #[value(name = "7.3")]
    #[serde(rename = "7.3")]
    Mainline,
    /// The 6.12 LTS kernel of bookworm: the backport.
    #[value(name = "6.12")]
    #[serde(rename = "6.12")]
    Lts612,
}

impl BaseName {
    pub const ALL: [BaseName; 2] = [BaseName::Mainline, BaseName::Lts612];

    /// `major.minor`.
    pub fn version(self) -> &'static str {
        match self {
            BaseName::Mainline => "7.3",
            BaseName::Lts612 => "6.12",
        }
    }

    /// The directory of its series under `patches/`.
    pub fn series(self) -> &'static str {
        match self {
            BaseName::Mainline => "mainline",
            BaseName::Lts612 => "6.12",
        }
    }

    /// Debian's source package.
    pub fn package(self) -> String {
        format!("linux-source-{}", self.version())
    }

    /// The base whose series fits a tree of `version` (`7.3.4`).
    pub fn for_version(version: &str) -> Option<BaseName> {
        let mm: Vec<&str> = version.split('.').take(2).collect();
        let mm = mm.join(".");
        BaseName::ALL.into_iter().find(|b| b.version() == mm)
    }

    /// The source tarball, fetched first if it is not there yet.
    pub fn tarball(self, ctx: &Ctx) -> Result<PathBuf> {
        match self {
            // `cargo xtask deps` installs linux-source-6.12 from the host's
            // own sources.
            BaseName::Lts612 => Ok(PathBuf::from("/usr/src/linux-source-6.12.tar.xz")),
            BaseName::Mainline => fetch_backport(ctx, self, "trixie-backports"),
        }
    }
}

/// The Debian mirror of the host's apt sources (deb822 `URIs:` or
/// one-line `deb URI suite ...`), for the suites of Debian proper.
pub fn host_mirror(sources: &[(String, String)]) -> Option<String> {
    for (name, text) in sources {
        let deb822 = name.ends_with(".sources");
        let mut uris: Vec<String> = Vec::new();
        let mut suites = String::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with('#') {
                continue;
            }
            if deb822 {
                if let Some(u) = line.strip_prefix("URIs:") {
                    uris = u.split_whitespace().map(String::from).collect();
                } else if let Some(s) = line.strip_prefix("Suites:") {
                    suites = s.to_string();
                } else if line.is_empty() {
                    if let Some(u) = debian_uri(&uris, &suites) {
                        return Some(u);
                    }
                    uris.clear();
                    suites.clear();
                }
            } else if let Some(rest) = line.strip_prefix("deb ") {
                let f: Vec<&str> = rest
                    .split_whitespace()
                    .filter(|w| !w.starts_with('['))
                    .collect();
                if let (Some(u), Some(s)) = (f.first(), f.get(1)) {
                    if let Some(u) = debian_uri(&[u.to_string()], s) {
                        return Some(u);
                    }
                }
            }
        }
        if deb822 {
            if let Some(u) = debian_uri(&uris, &suites) {
                return Some(u);
            }
        }
    }
    None
}

/// A URI serving Debian's main archive: its suites are Debian release
/// names, not `*-security`, and its path ends in `/debian`.
fn debian_uri(uris: &[String], suites: &str) -> Option<String> {
    let debian_suite = suites.split_whitespace().any(|s| {
        !s.ends_with("-security")
            && ["bookworm", "trixie", "sid", "unstable", "stable", "testing"]
                .iter()
                .any(|r| s == *r || s.starts_with(&format!("{r}-")))
    });
    if !debian_suite {
        return None;
    }
    uris.iter()
        .find(|u| u.trim_end_matches('/').ends_with("/debian"))
        .map(|u| u.trim_end_matches('/').to_string())
}

fn read_host_sources() -> Vec<(String, String)> {
    let mut v = Vec::new();
    if let Ok(t) = fs::read_to_string("/etc/apt/sources.list") {
        v.push(("sources.list".into(), t));
    }
    if let Ok(rd) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut names: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        names.sort();
        for p in names {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            if n.ends_with(".list") || n.ends_with(".sources") {
                if let Ok(t) = fs::read_to_string(&p) {
                    v.push((n, t));
                }
            }
        }
    }
    v
}

/// The options that make apt use only the private configuration in `dir`.
pub fn private_apt_options(dir: &Path) -> Vec<String> {
    [
        ("Dir::Etc::sourcelist", dir.join("sources.list")),
        ("Dir::Etc::sourceparts", dir.join("sources.list.d")),
        ("Dir::State::Lists", dir.join("lists")),
        ("Dir::Cache", dir.join("cache")),
        ("Dir::State::status", PathBuf::from("/dev/null")),
    ]
    .iter()
    .flat_map(|(k, v)| ["-o".to_string(), format!("{k}={}", v.display())])
    .collect()
}

/// Fetches `base`'s source package from `suite` through a private apt
/// configuration and unpacks it in the cache; returns the tarball.
fn fetch_backport(ctx: &Ctx, base: BaseName, suite: &str) -> Result<PathBuf> {
    let pkg = base.package();
    let unpacked = ctx.cache.join("debs").join(&pkg);
    let tarball = unpacked.join(format!("usr/src/{pkg}.tar.xz"));
    if tarball.exists() && unpacked.join(".complete").exists() {
        return Ok(tarball);
    }
    let apt_dir = ctx.cache.join("apt").join(suite);
    let mirror = host_mirror(&read_host_sources()).context(
        "the host's apt sources name no Debian mirror (a `deb http://.../debian bookworm ...` \
         line or a deb822 URIs: entry); nkdev takes the mirror for newer kernel sources from there",
    )?;
    let opts = private_apt_options(&apt_dir);
    let shown = opts.join(" ");
    let cmds = [
        format!("apt-get {shown} update"),
        format!(
            "cd {} && apt-get {shown} download {pkg}",
            ctx.cache.join("debs").display()
        ),
        format!(
            "dpkg-deb -x {}/{pkg}_*.deb {}",
            ctx.cache.join("debs").display(),
            unpacked.display()
        ),
    ];
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "base {} needs {pkg} from {suite}; as root nkdev fetches it into the cache \
             (the host's apt sources stay as they are). Run as root:",
            base.version()
        );
        eprintln!(
            "    mkdir -p {}/{{lists/partial,cache,sources.list.d}}",
            apt_dir.display()
        );
        eprintln!(
            "    printf 'Types: deb\\nURIs: {mirror}\\nSuites: {suite}\\nComponents: main\\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\\n' > {}/sources.list.d/nkdev.sources",
            apt_dir.display()
        );
        for c in &cmds {
            eprintln!("    {c}");
        }
        bail!("{pkg} is missing (see the commands above)");
    }
    let stage = Stage::new(format!(
        "kernel: fetching {pkg} from {suite} ({mirror}) through a private apt configuration"
    ));
    for d in ["lists/partial", "cache/archives/partial", "sources.list.d"] {
        fs::create_dir_all(apt_dir.join(d))?;
    }
    fs::write(apt_dir.join("sources.list"), "")?;
    fs::write(
        apt_dir.join("sources.list.d/nkdev.sources"),
        format!(
            "Types: deb\nURIs: {mirror}\nSuites: {suite}\nComponents: main\n\
             Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        ),
    )?;
    let log = log_path(&ctx.target, &format!("fetch-{pkg}"));
    let _ = fs::remove_file(&log);
    let why = |what: &str| {
        format!(
            "{pkg} cannot be fetched from {suite} at {mirror} ({what}); \
             the commands nkdev ran were:\n    {}",
            cmds.join("\n    ")
        )
    };
    run_logged(
        "apt-get update (private)",
        Command::new("apt-get").args(&opts).arg("update"),
        &log,
    )
    .with_context(|| why("apt-get update failed"))?;
    let debs = ctx.cache.join("debs");
    fs::create_dir_all(&debs)?;
    for e in fs::read_dir(&debs)?.flatten() {
        if e.file_name()
            .to_string_lossy()
            .starts_with(&format!("{pkg}_"))
        {
            let _ = fs::remove_file(e.path());
        }
    }
    run_logged(
        "apt-get download",
        Command::new("apt-get")
            .current_dir(&debs)
            .args(&opts)
            .args(["download", &pkg]),
        &log,
    )
    .with_context(|| why("apt-get download failed"))?;
    let deb = fs::read_dir(&debs)?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with(&format!("{pkg}_")) && n.ends_with(".deb")
        })
        .with_context(|| why("apt-get download left no .deb"))?;
    let _ = fs::remove_dir_all(&unpacked);
    run_logged(
        "dpkg-deb -x",
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked),
        &log,
    )?;
    if !tarball.exists() {
        bail!(
            "{} holds no {}: the package's layout changed",
            deb.display(),
            tarball.display()
        );
    }
    fs::write(
        unpacked.join(".complete"),
        deb.file_name().unwrap().as_encoded_bytes(),
    )?;
    let _ = fs::remove_file(&deb);
    stage.done(&format!("unpacked {}", tarball.display()));
    Ok(tarball)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mirror_comes_from_the_host_sources() {
        let deb822 = "Types: deb\n# x\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n";
        assert_eq!(
            host_mirror(&[("debian.sources".into(), deb822.into())]).as_deref(),
            Some("http://deb.debian.org/debian")
        );
        let list = "deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\ndeb [arch=amd64] http://mirror.example/debian/ bookworm-backports main\n";
        assert_eq!(
            host_mirror(&[("x.list".into(), list.into())]).as_deref(),
            Some("http://mirror.example/debian")
        );
        let security_only =
            "deb http://security.debian.org/debian-security bookworm-security main\n";
        assert_eq!(
            host_mirror(&[("s.list".into(), security_only.into())]),
            None
        );
    }

    #[test]
    fn bases_by_version() {
        assert_eq!(BaseName::for_version("7.3.4"), Some(BaseName::Mainline));
        assert_eq!(BaseName::for_version("6.12.117"), Some(BaseName::Lts612));
        assert_eq!(BaseName::for_version("6.6.1"), None);
    }

    #[test]
    fn every_base_has_a_series() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for b in BaseName::ALL {
            let dir = root.join("patches").join(b.series());
            assert!(
                dir.join("series").is_file() && dir.join("README").is_file(),
                "{} needs a series and a README",
                dir.display()
            );
        }
    }
}
