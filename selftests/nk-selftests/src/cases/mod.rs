//! The cases, grouped by feature.
pub mod netkit;
pub mod redirect;
pub mod tcx;
pub mod tools;
