//! The cases, grouped by feature.
pub mod e2e;
pub mod netkit;
pub mod redirect;
pub mod tcx;
pub mod tools;
