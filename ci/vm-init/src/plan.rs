//! The test plan the host hands to the guest: one test per line,
//! tab-separated: `name  timeout_secs  format  cwd  argv0  argv1 ...`.
//! The host writes it (xtask `vm::plan`), the init reads it.

use std::path::PathBuf;
use std::time::Duration;

/// How a test reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The test prints KTAP; it is nested as subtests.
    Ktap,
    /// Free text; kept as diagnostics, exit code decides.
    Raw,
    /// The kernel's test_progs: `#N name:OK|SKIP|FAIL` lines become
    /// subtests; the exit code and any FAIL decide.
    TestProgs,
}

/// One test to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub timeout: Duration,
    pub format: Format,
    pub cwd: PathBuf,
    pub argv: Vec<String>,
}

/// Parses the plan. Errors name the line.
pub fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let mut v = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 5 {
            return Err(format!(
                "plan line {}: expected at least 5 tab-separated fields",
                n + 1
            ));
        }
        let timeout = f[1]
            .parse::<u64>()
            .map_err(|_| format!("plan line {}: bad timeout {:?}", n + 1, f[1]))?;
        let format = match f[2] {
            "ktap" => Format::Ktap,
            "raw" => Format::Raw,
            "testprogs" => Format::TestProgs,
            o => return Err(format!("plan line {}: unknown format {o:?}", n + 1)),
        };
        v.push(Entry {
            name: f[0].to_string(),
            timeout: Duration::from_secs(timeout),
            format,
            cwd: PathBuf::from(f[3]),
            argv: f[4..].iter().map(|s| s.to_string()).collect(),
        });
    }
    Ok(v)
}

/// Formats one plan line (used by the host side).
pub fn format_entry(e: &Entry) -> String {
    let fmt = match e.format {
        Format::Ktap => "ktap",
        Format::Raw => "raw",
        Format::TestProgs => "testprogs",
    };
    let mut f = vec![
        e.name.clone(),
        e.timeout.as_secs().to_string(),
        fmt.to_string(),
        e.cwd.display().to_string(),
    ];
    f.extend(e.argv.iter().cloned());
    f.join("\t")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let e = Entry {
            name: "netkit_l2".into(),
            timeout: Duration::from_secs(30),
            format: Format::Ktap,
            cwd: "/tmp".into(),
            argv: vec!["/x/nk-selftests".into(), "--run".into(), "netkit_l2".into()],
        };
        assert_eq!(parse(&format_entry(&e)).unwrap(), vec![e]);
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(
            parse("# c\na\t1\n").unwrap_err(),
            "plan line 2: expected at least 5 tab-separated fields"
        );
        assert!(parse("a\tx\tktap\t/\tb")
            .unwrap_err()
            .contains("bad timeout"));
    }
}
