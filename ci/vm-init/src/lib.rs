//! Shared between the guest init and the host runner: the plan format.
pub mod plan;
