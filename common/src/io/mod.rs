//! The device layer: how a node's engine reaches Linux links and its own
//! stack from userspace (feature `io`, Linux only).
//!
//! The kernel-free design: the kernel's IPv6 is switched off on every link
//! a node speaks Mobile IPv6 on (`disable_ipv6=1`, see [`sysctl`]), so it
//! neither drops nor answers what the engines handle themselves (Home
//! Address options, type 2 routing headers, Binding Updates, Neighbour
//! Discovery); the engines see and send whole IPv6 packets on that link
//! through an AF_PACKET socket ([`packet`]), and the node's own transport
//! traffic reaches the kernel's TCP/UDP through a TUN device ([`tun`])
//! carrying the home address, configured over rtnetlink ([`netlink`]). No
//! XFRM, no kernel MIP6, no ip6tnl: everything Mobile IPv6 does lives in the
//! sans-IO engines, and this module only moves bytes, reads the one
//! clock ([`clock`]) and keeps what an engine must not lose in a restart
//! ([`store`]). Namespaces are the test harness's business, never
//! created here.
//!
//! Every piece is small and stands alone, for the driver that owns the
//! engines: it opens what it needs, `select!`s on the futures these types
//! give, and restores what it changed ([`sysctl::Sysctls`],
//! [`tun::Installed`]) on exit. Errors are typed per piece and name the
//! interface, path or syscall that failed; [`Error`] gathers them.

pub mod clock;
pub mod daemon;
pub mod driver;
pub mod ike_file;
pub mod keylog;
pub mod netlink;
pub mod packet;
pub mod store;
pub mod sysctl;
pub mod tun;
pub mod udp;

pub use clock::Clock;
pub use driver::{Driver, DriverError, Reply, Request, Setup, Stack};
pub use keylog::KeyLog;
pub use netlink::{LinkEvent, LinkEvents, LinkInfo, Netlink, NetlinkError};
pub use packet::{
    Framing, PacketConfig, PacketError, PacketKind, PacketSocket, Received, RecvBatch, Sent,
    SEND_BATCH,
};
pub use store::{Store, StoreError};
pub use sysctl::{SysctlError, Sysctls};
pub use tun::{Installed, Tun, TunBatch, TunError, TunQueue};

/// Any error of the device layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Packet(#[from] PacketError),
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error(transparent)]
    Sysctl(#[from] SysctlError),
    #[error(transparent)]
    Tun(#[from] TunError),
}
