//! The cases, grouped by feature.
pub mod e2e;
pub mod features;
pub mod loader;
pub mod netkit;
pub mod netlink;
pub mod redirect;
pub mod room;
pub mod sock;
pub mod tcx;
pub mod tools;
