//! Raw rtnetlink for nkdev: netkit and veth pairs, links, addresses,
//! routes, neighbours and network namespaces; and sock_diag (inet_diag
//! dump and SOCK_DESTROY); generic netlink, with Open vSwitch's datapath
//! and vport families.
//!
//! Every request goes through [`RtSocket`], which turns on
//! `NETLINK_EXT_ACK` and `NETLINK_GET_STRICT_CHK`, so each failure names
//! the request, carries errno and the kernel's extack message.
//! Syscalls go through `nk_sys::syscall`, so tests can fake the kernel.
#![warn(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod addr;
pub mod diag;
pub mod error;
pub mod events;
pub mod genl;
#[cfg(any(test, feature = "golden"))]
pub mod golden;
pub mod link;
pub mod neigh;
pub mod netdev;
pub mod netkit;
pub mod netns;
pub mod ovs;
pub mod route;
pub mod socket;
pub mod wire;

pub use addr::AddrInfo;
pub use error::{Error, Result};
pub use events::{LinkEvent, LinkEvents};
pub use link::{
    HwAddr, LinkChange, LinkInfo, Mac, NetkitInfo, NetkitSpec, NetkitSync, NetnsRef, PeerSpec,
};
pub use neigh::NeighInfo;
pub use netkit::{NetkitMode, NetkitPolicy, NetkitScrub};
pub use netns::NetnsFd;
pub use route::RouteInfo;
pub use socket::RtSocket;
