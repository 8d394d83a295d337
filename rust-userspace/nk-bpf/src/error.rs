//! Errors that name the bpf command and what it was for.

use std::io;

/// A failed bpf operation.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `bpf()` failed.
    #[error("{op}: {source}{}", hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
    Bpf {
        /// The command (`BPF_LINK_CREATE`); [`cmd_name`] names it.
        cmd: u32,
        /// The command and its target, e.g. `BPF_LINK_CREATE tcx ingress ifindex 3`.
        op: String,
        /// errno.
        #[source]
        source: io::Error,
        /// What the errno means here.
        hint: Option<String>,
    },
    /// The running kernel lacks what the request needs (it answered
    /// EINVAL, and its BTF says why): see [`crate::Features`].
    #[error("{op}: this kernel has no {feature}")]
    Unsupported {
        /// The command and its target.
        op: String,
        /// What is missing, e.g. `tcx (Linux 6.6)`.
        feature: &'static str,
    },
    /// Opening or loading an ELF object failed.
    #[error("loading {path}: {why}{}", if log.is_empty() { String::new() } else { format!("\n{}", log_tail(log)) })]
    Load {
        /// The object file.
        path: String,
        /// What failed.
        why: String,
        /// What libbpf printed while opening and loading it, with the
        /// verifier's log of a program that failed: captured, not
        /// printed. The message shows its last lines.
        log: String,
    },
    /// Bad input, rejected before any syscall.
    #[error("invalid {what}: {why}")]
    Invalid {
        /// The argument.
        what: &'static str,
        /// Why.
        why: String,
    },
    /// A file operation (pin paths, iterator reads).
    #[error("{what}: {source}")]
    Io {
        /// What was done.
        what: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The bpf command of a failed `bpf()` call.
    pub fn cmd(&self) -> Option<u32> {
        match self {
            Error::Bpf { cmd, .. } => Some(*cmd),
            _ => None,
        }
    }

    /// The bpf command and its target, for a failed `bpf()`.
    pub fn request(&self) -> Option<&str> {
        match self {
            Error::Bpf { op, .. } | Error::Unsupported { op, .. } => Some(op),
            _ => None,
        }
    }

    /// What the errno means for this command, where it is not what its
    /// text says.
    pub fn hint(&self) -> Option<&str> {
        match self {
            Error::Bpf { hint, .. } => hint.as_deref(),
            _ => None,
        }
    }

    /// libbpf's log of a failed load, with the verifier's.
    pub fn log(&self) -> Option<&str> {
        match self {
            Error::Load { log, .. } => Some(log),
            _ => None,
        }
    }

    /// The errno, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Bpf { source, .. } | Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// The uapi name of a bpf command nk-bpf issues.
pub fn cmd_name(cmd: u32) -> Option<&'static str> {
    use nk_sys::uapi;
    Some(match cmd {
        uapi::BPF_MAP_LOOKUP_ELEM => "BPF_MAP_LOOKUP_ELEM",
        uapi::BPF_MAP_UPDATE_ELEM => "BPF_MAP_UPDATE_ELEM",
        uapi::BPF_MAP_LOOKUP_BATCH => "BPF_MAP_LOOKUP_BATCH",
        uapi::BPF_OBJ_PIN => "BPF_OBJ_PIN",
        uapi::BPF_OBJ_GET => "BPF_OBJ_GET",
        uapi::BPF_PROG_ATTACH => "BPF_PROG_ATTACH",
        uapi::BPF_PROG_DETACH => "BPF_PROG_DETACH",
        uapi::BPF_PROG_TEST_RUN => "BPF_PROG_RUN",
        uapi::BPF_PROG_GET_FD_BY_ID => "BPF_PROG_GET_FD_BY_ID",
        uapi::BPF_OBJ_GET_INFO_BY_FD => "BPF_OBJ_GET_INFO_BY_FD",
        uapi::BPF_PROG_QUERY => "BPF_PROG_QUERY",
        uapi::BPF_RAW_TRACEPOINT_OPEN => "BPF_RAW_TRACEPOINT_OPEN",
        uapi::BPF_LINK_CREATE => "BPF_LINK_CREATE",
        uapi::BPF_LINK_UPDATE => "BPF_LINK_UPDATE",
        uapi::BPF_LINK_DETACH => "BPF_LINK_DETACH",
        uapi::BPF_ITER_CREATE => "BPF_ITER_CREATE",
        _ => return None,
    })
}

/// The last lines of a load log, where the verifier says why it refused.
fn log_tail(log: &str) -> String {
    // 7.3's verifier explains a refusal over ~20 lines before its summary.
    const LINES: usize = 40;
    let lines: Vec<&str> = log.trim_end().lines().collect();
    let skip = lines.len().saturating_sub(LINES);
    let mut s = if skip > 0 {
        format!("[... {skip} lines of the load log above]\n")
    } else {
        String::new()
    };
    s.push_str(&lines[skip..].join("\n"));
    s
}

/// Result alias.
pub type Result<T> = std::result::Result<T, Error>;
