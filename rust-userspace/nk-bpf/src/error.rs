//! Errors that name the bpf command and what it was for.

use std::io;

/// A failed bpf operation.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `bpf()` failed.
    #[error("{op}: {source}{}", hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
    Bpf {
        /// The command and its target, e.g. `BPF_LINK_CREATE tcx ingress ifindex 3`.
        op: String,
        /// errno.
        #[source]
        source: io::Error,
        /// What the errno means here.
        hint: Option<String>,
    },
    /// Loading an ELF object failed.
    #[error("loading {path}: {why}")]
    Load {
        /// The object file.
        path: String,
        /// What failed (libbpf prints the verifier log to stderr).
        why: String,
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
    /// The errno, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Bpf { source, .. } | Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// Result alias.
pub type Result<T> = std::result::Result<T, Error>;
