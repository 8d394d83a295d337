//! Shared between the guest init and the host runner: the plan format,
//! and where the guest mounts the host's writable artifact directory.
pub mod plan;
pub mod test_progs;

/// Where nk-init mounts the writable 9p share (`nkdev.out` tag) when the
/// kernel command line has `nkdev.out=1`.
pub const GUEST_OUT: &str = "/run/nkdev-out";
