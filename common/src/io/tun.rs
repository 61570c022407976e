//! The TUN device through which a node's own transport traffic reaches the
//! kernel: whole IPv6 packets both ways (no packet-information header),
//! configured over [`netlink`](super::netlink).
//!
//! Offload is on (`IFF_VNET_HDR`, TSO and checksum offload): the kernel's
//! TCP hands the TUN segments of up to 64 kB, one read each, which
//! [`Tun::recv_batch`] splits into packets of the MTU with finished
//! checksums (tun-rs's `recv_multiple`); so the engines still see packets
//! of the MTU, and a bulk sender costs a read per 64 kB instead of per
//! packet (at most [`GSO_MAX_SEGS`] a read: the device's `gso_max_segs`).
//! Writes go in batches ([`TunQueue`]) that tun-rs coalesces (GRO): the
//! segments of one flow that follow each other go up as one packet with
//! a virtio GSO header, the rest with an empty one (no GSO, checksum done).
//! Kernel 6.18 would give a fresh TUN a link-local address and
//! send router solicitations into it: [`Tun::open`] switches address
//! generation off (`IFLA_INET6_ADDR_GEN_MODE` none) and sets
//! `router_solicitations=0`, `accept_ra=0` before bringing it up. tun-rs's
//! own address management (its `address-management` feature) is off: the
//! addresses and routes go on with [`install`], which returns what it added
//! so the driver can take it off again on exit ([`Installed::remove`]).
//!
//! For a mobile node: its home address as a /128 and a default route into
//! the TUN, MTU ≈ 1460. For a correspondent: its address and routes.

use std::io::{self, IoSlice};
use std::net::Ipv6Addr;

use super::netlink::{Ipv6Address, Ipv6Route, Netlink, NetlinkError};
use super::sysctl::{self, SysctlError};

#[derive(Debug, thiserror::Error)]
pub enum TunError {
    #[error("creating TUN {name:?} (open /dev/net/tun, TUNSETIFF, SIOCSIFMTU): {source}")]
    Create {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("TUN {name:?}: {what}: {source}")]
    Device {
        name: String,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("TUN {name:?}: {source}")]
    Netlink {
        name: String,
        #[source]
        source: NetlinkError,
    },
    #[error("TUN {name:?}: {source}")]
    Sysctl {
        name: String,
        #[source]
        source: SysctlError,
    },
    #[error(transparent)]
    Install(NetlinkError),
    #[error("removing what was installed: {} failed, first: {first}", .count)]
    Remove {
        count: usize,
        #[source]
        first: NetlinkError,
    },
}

/// A TUN device, up, with no address of its own. Removed by the kernel
/// when dropped (with the addresses and routes on it).
pub struct Tun {
    dev: tun_rs::AsyncDevice,
    name: String,
    ifindex: u32,
    mtu: u16,
}

impl std::fmt::Debug for Tun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tun")
            .field("name", &self.name)
            .field("ifindex", &self.ifindex)
            .field("mtu", &self.mtu)
            .finish_non_exhaustive()
    }
}

impl Tun {
    /// Creates TUN `name` with `mtu`, switches IPv6 address generation and
    /// router solicitations off on it, and brings it up. Runs in the
    /// calling thread's namespace, inside a Tokio runtime.
    pub async fn open(name: &str, mtu: u16, netlink: &Netlink) -> Result<Tun, TunError> {
        let named = || name.to_string();
        let dev = tun_rs::DeviceBuilder::new()
            .name(name)
            .mtu(mtu)
            .offload(true)
            .enable(false)
            .build_async()
            .map_err(|source| TunError::Create {
                name: named(),
                source,
            })?;
        let device = |what: &'static str| {
            move |source: io::Error| TunError::Device {
                name: named(),
                what,
                source,
            }
        };
        let name = dev.name().map_err(device("reading its name"))?;
        let ifindex = dev.if_index().map_err(device("if_nametoindex"))?;
        let nl = |source| TunError::Netlink {
            name: name.clone(),
            source,
        };
        netlink.set_addr_gen_mode_none(ifindex).await.map_err(nl)?;
        // No more segments a GSO read than a batch holds.
        netlink
            .set_gso_max_segs(ifindex, GSO_MAX_SEGS as u32)
            .await
            .map_err(nl)?;
        for (key, value) in [("router_solicitations", "0"), ("accept_ra", "0")] {
            // The settings belong to the device and go with it: nothing to
            // restore.
            sysctl::write(&name, key, value).map_err(|source| TunError::Sysctl {
                name: name.clone(),
                source,
            })?;
        }
        netlink.set_link_up(ifindex).await.map_err(nl)?;
        Ok(Tun {
            dev,
            name,
            ifindex,
            mtu,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    pub fn mtu(&self) -> u16 {
        self.mtu
    }

    /// Waits for what the kernel routed into the TUN and returns it as
    /// packets of the MTU (≥ 1) in `batch`. An error with no OS error
    /// code is about one read (a segment that did not split), not the
    /// device.
    pub async fn recv_batch(&self, batch: &mut TunBatch) -> io::Result<usize> {
        let TunBatch {
            original,
            bufs,
            sizes,
            count,
        } = batch;
        *count = self.dev.recv_multiple(original, bufs, sizes, 0).await?;
        for (buf, len) in bufs.iter_mut().zip(sizes.iter()).take(*count) {
            udp_zero_checksum_as_ones(&mut buf[..*len]);
        }
        Ok(*count)
    }

    /// Hands one IPv6 packet to the kernel, as if it arrived on the TUN.
    pub async fn send(&self, packet: &[u8]) -> io::Result<()> {
        let n = self
            .dev
            .send_vectored(&[IoSlice::new(&NO_GSO), IoSlice::new(packet)])
            .await?;
        whole(n, NO_GSO.len() + packet.len())
    }

    /// Writes what `queue` holds and empties it: segments of one TCP or
    /// UDP flow that follow each other go up coalesced (GRO, tun-rs's
    /// `send_multiple`), so the kernel's receive path runs once per up to
    /// 64 kB instead of once per packet. The packets handed over, or the
    /// last write's error (the other writes were still made).
    pub fn try_send_queue(&self, queue: &mut TunQueue) -> io::Result<usize> {
        let n = core::mem::take(&mut queue.len);
        if n == 0 {
            return Ok(0);
        }
        // The device's own, which writes now or says `WouldBlock`.
        let dev: &tun_rs::DeviceImpl = &self.dev;
        dev.send_multiple(&mut queue.gro, &mut queue.bufs[..n], NO_GSO.len())?;
        Ok(n)
    }

    /// A /128 home address on this TUN, `nodad` and marked as a home address.
    pub fn home_address(&self, hoa: Ipv6Addr) -> Ipv6Address {
        let mut a = Ipv6Address::nodad(self.ifindex, hoa, 128);
        a.flags.home = true;
        a
    }

    /// A route for `dst/prefix_len` into this TUN.
    pub fn route(&self, dst: Ipv6Addr, prefix_len: u8) -> Ipv6Route {
        Ipv6Route::device(dst, prefix_len, self.ifindex)
    }
}

/// The virtio header of a packet that is whole: no GSO, its checksum done.
const NO_GSO: [u8; tun_rs::VIRTIO_NET_HDR_LEN] = [0; tun_rs::VIRTIO_NET_HDR_LEN];

/// Packets one read may hold: the TUN's `gso_max_segs`.
pub const GSO_MAX_SEGS: usize = 64;

/// Buffers for [`Tun::recv_batch`], reused from read to read.
/// RFC 768: a UDP checksum that computes to zero goes as all ones; over
/// IPv6 a zero means none, which RFC 8200 §8.1 has receivers discard.
/// tun-rs 2.8 finishes the kernel's offloaded checksums
/// (`gso_none_checksum`) without that step, so one UDP packet in 65 536
/// from the node's stack read as corrupt (`Malformed`). Only a UDP header
/// right after the fixed header is looked at: the kernel's own packets
/// carry no extension headers before UDP.
fn udp_zero_checksum_as_ones(packet: &mut [u8]) {
    const UDP: u8 = 17;
    if packet.len() >= 48 && packet[0] >> 4 == 6 && packet[6] == UDP && packet[46..48] == [0, 0] {
        packet[46..48].copy_from_slice(&[0xff, 0xff]);
    }
}

pub struct TunBatch {
    /// The read: a virtio header and up to 64 kB.
    original: Vec<u8>,
    bufs: Vec<Vec<u8>>,
    sizes: Vec<usize>,
    count: usize,
}

impl std::fmt::Debug for TunBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunBatch")
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl TunBatch {
    /// Room for a read of up to 64 kB: a packet that came whole, or
    /// [`GSO_MAX_SEGS`] packets of up to `mtu`.
    pub fn new(mtu: u16) -> TunBatch {
        const MAX: usize = 65_535;
        let mut bufs = vec![vec![0; MAX]];
        bufs.extend((1..GSO_MAX_SEGS).map(|_| vec![0; usize::from(mtu)]));
        TunBatch {
            original: vec![0; tun_rs::VIRTIO_NET_HDR_LEN + MAX],
            bufs,
            sizes: vec![0; GSO_MAX_SEGS],
            count: 0,
        }
    }

    /// The packets of the last [`Tun::recv_batch`], in order.
    pub fn packets(&self) -> impl Iterator<Item = &[u8]> {
        self.bufs
            .iter()
            .zip(&self.sizes)
            .take(self.count)
            .map(|(b, n)| &b[..*n])
    }
}

/// Packets for the kernel, for [`Tun::try_send_queue`]. Each buffer has
/// room for the virtio header ahead of its packet and for 64 kB of
/// coalesced segments; the buffers are kept for the next writes.
#[derive(Default)]
pub struct TunQueue {
    bufs: Vec<Vec<u8>>,
    len: usize,
    gro: tun_rs::GROTable,
}

impl std::fmt::Debug for TunQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunQueue")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl TunQueue {
    /// Queues a copy of `packet`.
    pub fn push(&mut self, packet: &[u8]) {
        if self.len == self.bufs.len() {
            // tun-rs coalesces into a buffer only within its capacity, and
            // never grows it: room for 64 kB, the header ahead and behind.
            self.bufs
                .push(Vec::with_capacity(65_535 + 2 * NO_GSO.len()));
        }
        let b = &mut self.bufs[self.len];
        b.clear();
        b.extend_from_slice(&NO_GSO);
        b.extend_from_slice(packet);
        self.len += 1;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

fn whole(n: usize, want: usize) -> io::Result<()> {
    if n == want {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("TUN took {n} of {want} bytes"),
        ))
    }
}

/// Addresses and routes that [`install`] added, to take off again.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[must_use = "what was installed stays until removed"]
pub struct Installed {
    pub addresses: Vec<Ipv6Address>,
    pub routes: Vec<Ipv6Route>,
}

/// Adds `addresses`, then `routes` (routes may need the addresses' prefix
/// routes to reach a gateway). All or nothing: after a failure, what was
/// already added is removed again and the error names what failed.
pub async fn install(
    netlink: &Netlink,
    addresses: &[Ipv6Address],
    routes: &[Ipv6Route],
) -> Result<Installed, TunError> {
    let mut done = Installed::default();
    let mut result = Ok(());
    for a in addresses {
        match netlink.add_address(a).await {
            Ok(()) => done.addresses.push(*a),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if result.is_ok() {
        for r in routes {
            match netlink.add_route(r).await {
                Ok(()) => done.routes.push(*r),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
    }
    match result {
        Ok(()) => Ok(done),
        Err(e) => {
            let _ = done.remove(netlink).await;
            Err(TunError::Install(e))
        }
    }
}

impl Installed {
    /// Removes the routes, then the addresses, last added first. Tries
    /// them all; what is already gone (the link was deleted, say) counts as
    /// removed.
    pub async fn remove(self, netlink: &Netlink) -> Result<(), TunError> {
        let mut failed = 0;
        let mut first = None;
        for r in self.routes.iter().rev() {
            if let Err(e) = netlink.del_route(r).await {
                if !e.is_not_found() {
                    failed += 1;
                    first.get_or_insert(e);
                }
            }
        }
        for a in self.addresses.iter().rev() {
            if let Err(e) = netlink.del_address(a).await {
                if !e.is_not_found() {
                    failed += 1;
                    first.get_or_insert(e);
                }
            }
        }
        match first {
            None => Ok(()),
            Some(first) => Err(TunError::Remove {
                count: failed,
                first,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum::{finish, pseudo_header_v6, sum};
    use crate::wire::{CodePoints, PacketRepr};

    #[test]
    fn a_udp_checksum_finished_to_zero_goes_as_all_ones() {
        let src: Ipv6Addr = "2001:db8:1::100".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8:3::1".parse().unwrap();
        let mut p = vec![0u8; 56];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&16u16.to_be_bytes());
        p[6] = 17;
        p[7] = 64;
        p[8..24].copy_from_slice(&src.octets());
        p[24..40].copy_from_slice(&dst.octets());
        p[40..42].copy_from_slice(&40000u16.to_be_bytes());
        p[42..44].copy_from_slice(&5201u16.to_be_bytes());
        p[44..46].copy_from_slice(&16u16.to_be_bytes());
        p[48..54].copy_from_slice(b"abcdef");
        // The last payload word makes the sum all ones: the checksum
        // computes to zero, which is what tun-rs writes.
        let pseudo = pseudo_header_v6(&src, &dst, 17, 16);
        let word = 0xffff - u16::try_from(sum(pseudo, &p[40..])).unwrap();
        p[54..56].copy_from_slice(&word.to_be_bytes());
        assert_eq!(finish(sum(pseudo, &p[40..])), 0);
        let cp = CodePoints::default();
        assert!(PacketRepr::parse(&p, &cp).is_err(), "a zero is no checksum");

        udp_zero_checksum_as_ones(&mut p);
        assert_eq!(p[46..48], [0xff, 0xff]);
        assert!(PacketRepr::parse(&p, &cp).is_ok());
        // Any other checksum, and anything not UDP, is left alone.
        let mut other = p.clone();
        other[46..48].copy_from_slice(&[0x12, 0x34]);
        let before = other.clone();
        udp_zero_checksum_as_ones(&mut other);
        assert_eq!(other, before);
        let mut tcp = p.clone();
        tcp[6] = 6;
        tcp[46..48].copy_from_slice(&[0, 0]);
        let before = tcp.clone();
        udp_zero_checksum_as_ones(&mut tcp);
        assert_eq!(tcp, before);
    }
}
