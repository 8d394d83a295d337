//! Errors that say what was asked, what the kernel answered and why.

use std::io;

/// A failed netlink request or syscall.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel rejected a request: errno plus its extack message.
    #[error("{request}: {source}{}", extack.as_ref().map(|m| format!(" (kernel: {m})")).unwrap_or_default())]
    Kernel {
        /// What was asked, e.g. `RTM_NEWLINK netkit nk0`.
        request: String,
        /// The errno.
        #[source]
        source: io::Error,
        /// `NLMSGERR_ATTR_MSG`, when the kernel gave one.
        extack: Option<String>,
    },
    /// A syscall around the request failed.
    #[error("{call} for {request}: {source}")]
    Sys {
        /// The syscall.
        call: &'static str,
        /// What it was for.
        request: String,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// Input rejected before anything was sent.
    #[error("invalid {what}: {why}")]
    Invalid {
        /// The argument.
        what: &'static str,
        /// Why.
        why: String,
    },
    /// The kernel lacks what the request needs (a command a family does
    /// not implement); nothing was sent.
    #[error("{what}: this kernel does not support it: {why}")]
    Unsupported {
        /// What was asked.
        what: &'static str,
        /// What is missing, and where it exists.
        why: String,
    },
    /// A dump whose table changed while it was read (`NLM_F_DUMP_INTR`):
    /// its results may be inconsistent, so none are returned; ask again.
    #[error("{request}: the dump was interrupted (NLM_F_DUMP_INTR): the table changed while it was read; retry")]
    Interrupted {
        /// What was asked.
        request: String,
    },
    /// The kernel's answer could not be understood.
    #[error("{request}: malformed reply: {why}")]
    Malformed {
        /// What was asked.
        request: String,
        /// What was wrong.
        why: String,
    },
}

impl Error {
    /// The errno, if the kernel or a syscall gave one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Kernel { source, .. } | Error::Sys { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// What was asked, where the error names it.
    pub fn request(&self) -> Option<&str> {
        match self {
            Error::Kernel { request, .. }
            | Error::Sys { request, .. }
            | Error::Interrupted { request }
            | Error::Malformed { request, .. } => Some(request),
            Error::Invalid { .. } | Error::Unsupported { .. } => None,
        }
    }

    /// The kernel's extack message, if any.
    pub fn extack(&self) -> Option<&str> {
        match self {
            Error::Kernel { extack, .. } => extack.as_deref(),
            _ => None,
        }
    }
}

/// Result alias.
pub type Result<T> = std::result::Result<T, Error>;
