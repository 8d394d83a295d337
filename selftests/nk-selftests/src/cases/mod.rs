//! The cases, grouped by feature.
pub mod e2e;
pub mod netkit;
pub mod redirect;
pub mod sock;
pub mod tcx;
pub mod tools;
