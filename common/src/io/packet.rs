//! AF_PACKET sockets: whole IPv6 packets (or whole Ethernet frames) on one
//! link, with the kernel's IPv6 off there.
//!
//! Packet taps run before the kernel's IPv6 input, which then drops
//! everything on a link with `disable_ipv6=1`; so a [`PacketSocket`] on such
//! a link sees Home Address options, type 2 routing headers, Binding
//! Updates and Neighbour Discovery while the kernel answers nothing. The
//! kernel's IPv6 output drops too, so sending also goes through AF_PACKET.
//!
//! Two framings ([`Framing`]):
//! - **`Ip`**: `SOCK_DGRAM` + `ETH_P_IPV6` for receiving: exactly the IPv6
//!   packets, with the source MAC and the packet type; sending prepends the
//!   Ethernet header (destination MAC given, the link's own MAC as source,
//!   EtherType 0x86dd) and writes it through a second, `SOCK_RAW` socket
//!   bound to the same link with protocol 0 (so it receives nothing).
//! - **`Ethernet`**: one `SOCK_RAW` socket with `ETH_P_ALL` or `ETH_P_IPV6`:
//!   whole frames both ways, for a software switch or router.
//!
//! What arrives besides the frames for us: broadcast, multicast and (on a
//! veth, a bridge or a promiscuous NIC) frames for other MACs, each marked
//! with its [`PacketKind`]; the engine filters. The kernel's copies of
//! outgoing frames (of every sender on the host, including the `Ip`
//! framing's own send socket) reach only `ETH_P_ALL` sockets — its transmit
//! taps are the protocol-less ones — so only `Ethernet { ipv6_only: false }`
//! would see them; they are not delivered unless [`PacketConfig::outgoing`]
//! asks for them (for captures): `PACKET_IGNORE_OUTGOING` (Linux 4.20)
//! where the kernel has it, else [`PacketSocket::recv`] skips them.
//!
//! **Offload trap.** TCP that a *kernel* sends over a veth reaches AF_PACKET
//! with partial checksums (`TP_STATUS_CSUMNOTREADY`) and as GSO frames of up
//! to ~64 kB on a 1500-byte MTU. Frames that are forwarded (or whose
//! checksums are checked) then look corrupt or too big. Switch transmit
//! offload off on the *sending* side (`ethtool -K <veth> tx off`, which
//! also disables TSO/GSO on it); real NICs need the same. Receive buffers
//! shorter than such a frame come back with [`Received::truncated`] set.
//!
//! Real NICs filter by MAC: join the multicast MACs the engine needs
//! ([`PacketSocket::add_multicast`], e.g. 33:33:ff:xx:xx:xx for a
//! solicited-node group, [`crate::wire::MacAddr::ipv6_multicast`]) or ask for all of them
//! ([`PacketConfig::all_multicast`]). A veth floods everything anyway.
//! Promiscuous mode is never switched on.
//!
//! The socket options this needs and `nix` lacks (`PACKET_ADD_MEMBERSHIP`,
//! `PACKET_DROP_MEMBERSHIP`, `PACKET_IGNORE_OUTGOING`, `PACKET_STATISTICS`)
//! are declared with
//! `nix`'s own `sockopt_impl!`; the `sockaddr_ll` to bind to comes from
//! `getifaddrs` (its `AF_PACKET` entry for the link), since `nix` has no
//! safe constructor for one. No `unsafe` here.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    bind, getsockopt, recvmmsg, recvmsg, send, sendmmsg, sendmsg, setsockopt, socket, sockopt,
    AddressFamily, LinkAddr, MsgFlags, MultiHeaders, SockFlag, SockProtocol, SockType,
};
use nix::{getsockopt_impl, setsockopt_impl, sockopt_impl};
use tokio::io::unix::AsyncFd;

sockopt_impl!(
    /// `PACKET_ADD_MEMBERSHIP`: join a multicast MAC, or all of them.
    PacketAddMembership,
    SetOnly,
    libc::SOL_PACKET,
    libc::PACKET_ADD_MEMBERSHIP,
    libc::packet_mreq
);
sockopt_impl!(
    /// `PACKET_DROP_MEMBERSHIP`: leave what `PacketAddMembership` joined.
    PacketDropMembership,
    SetOnly,
    libc::SOL_PACKET,
    libc::PACKET_DROP_MEMBERSHIP,
    libc::packet_mreq
);
sockopt_impl!(
    /// `PACKET_IGNORE_OUTGOING` (Linux 4.20): no copies of outgoing frames.
    PacketIgnoreOutgoing,
    SetOnly,
    libc::SOL_PACKET,
    libc::PACKET_IGNORE_OUTGOING,
    bool
);

sockopt_impl!(
    /// `PACKET_STATISTICS`: the frames the socket took and those the
    /// kernel dropped for a full receive queue, since the last read (a
    /// read resets both).
    PacketStatistics,
    GetOnly,
    libc::SOL_PACKET,
    libc::PACKET_STATISTICS,
    libc::tpacket_stats
);

/// EtherType of IPv6.
pub const ETH_P_IPV6: u16 = 0x86dd;
/// Length of an Ethernet header (no VLAN tag).
pub const ETHERNET_HEADER_LEN: usize = 14;

/// What goes through a [`PacketSocket`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Whole IPv6 packets; the Ethernet header is the kernel's on receive
    /// and ours on send.
    Ip,
    /// Whole Ethernet frames; `ipv6_only` picks `ETH_P_IPV6` instead of
    /// `ETH_P_ALL` (which also brings ARP, IPv4 and everything else).
    Ethernet { ipv6_only: bool },
}

/// `sll_pkttype`: who a received frame was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// To our MAC.
    Host,
    Broadcast,
    Multicast,
    /// To another MAC (veth, bridge, promiscuous NIC).
    OtherHost,
    /// A copy of a frame sent from this host; only with
    /// [`PacketConfig::outgoing`].
    Outgoing,
    /// Anything else (`PACKET_LOOPBACK`, `PACKET_USER`, ...).
    Other(u8),
}

impl From<u8> for PacketKind {
    fn from(t: u8) -> PacketKind {
        match t {
            libc::PACKET_HOST => PacketKind::Host,
            libc::PACKET_BROADCAST => PacketKind::Broadcast,
            libc::PACKET_MULTICAST => PacketKind::Multicast,
            libc::PACKET_OTHERHOST => PacketKind::OtherHost,
            libc::PACKET_OUTGOING => PacketKind::Outgoing,
            t => PacketKind::Other(t),
        }
    }
}

/// One received packet (or frame), at the start of the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Bytes written into the buffer.
    pub len: usize,
    /// The sender's MAC.
    pub src: [u8; 6],
    pub kind: PacketKind,
    /// The packet was longer than the buffer and was cut to `len`.
    pub truncated: bool,
}

/// Buffers for [`PacketSocket::recv_batch`], reused from call to call.
/// (The kernel's headers are made for each call: `nix`'s are not `Send`,
/// and a reader task holds its batch across awaits.)
pub struct RecvBatch {
    bufs: Vec<Vec<u8>>,
    /// Which buffer each kept packet is in, and what it is.
    received: Vec<(usize, Received)>,
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("size", &self.bufs.len())
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

impl RecvBatch {
    /// Room for `size` packets of up to `buffer` bytes each.
    pub fn new(size: usize, buffer: usize) -> RecvBatch {
        RecvBatch {
            bufs: vec![vec![0; buffer]; size.max(1)],
            received: Vec::with_capacity(size),
        }
    }

    /// The packets of the last [`PacketSocket::recv_batch`], in order.
    pub fn packets(&self) -> impl Iterator<Item = (Received, &[u8])> {
        self.received
            .iter()
            .map(|(i, r)| (*r, &self.bufs[*i][..r.len]))
    }
}

/// Frames [`PacketSocket::try_send_batch`] hands the kernel at once.
pub const SEND_BATCH: usize = 64;

/// What [`PacketSocket::try_send_batch`] did.
#[derive(Debug, Default)]
pub struct Sent {
    pub sent: usize,
    /// Not sent: the socket's buffer was full.
    pub full: usize,
    /// Not sent: an error, the last of them in `error`.
    pub failed: usize,
    pub error: Option<io::Error>,
}

/// How to open a [`PacketSocket`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketConfig {
    pub framing: Framing,
    /// `SO_RCVBUF` in bytes (`SO_RCVBUFFORCE` first, which needs
    /// CAP_NET_ADMIN and ignores `net.core.rmem_max`); `None` keeps the
    /// kernel's default.
    pub recv_buffer: Option<usize>,
    /// `SO_SNDBUF` likewise (`SO_SNDBUFFORCE` first).
    pub send_buffer: Option<usize>,
    /// `PACKET_MR_ALLMULTI`: every multicast frame the NIC sees.
    pub all_multicast: bool,
    /// Deliver the kernel's copies of outgoing frames too, as
    /// [`PacketKind::Outgoing`] (for captures; only an `ETH_P_ALL` socket
    /// gets any). Off: they are ignored.
    pub outgoing: bool,
}

impl PacketConfig {
    pub fn new(framing: Framing) -> PacketConfig {
        PacketConfig {
            framing,
            recv_buffer: Some(4 << 20),
            send_buffer: Some(1 << 20),
            all_multicast: false,
            outgoing: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    #[error("no interface with ifindex {ifindex} (getifaddrs lists no AF_PACKET entry for it)")]
    NoSuchInterface { ifindex: u32 },
    #[error("{iface}: {syscall}: {source}")]
    Syscall {
        /// `name (ifindex N)`.
        iface: String,
        /// The call and what it was for, e.g. `setsockopt(PACKET_ADD_MEMBERSHIP)`.
        syscall: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{iface}: an AF_PACKET socket has to be opened inside a Tokio runtime")]
    NoRuntime { iface: String },
}

/// An AF_PACKET socket bound to one link. See the module doc.
#[derive(Debug)]
pub struct PacketSocket {
    /// Receives; in `Ethernet` framing it also sends.
    rx: AsyncFd<OwnedFd>,
    /// `Ip` framing's sender: `SOCK_RAW`, protocol 0, bound to the link.
    tx: Option<AsyncFd<OwnedFd>>,
    framing: Framing,
    ifindex: u32,
    name: String,
    mac: [u8; 6],
    outgoing: bool,
    kernel_ignores_outgoing: bool,
}

/// The `AF_PACKET` address of a link, from `getifaddrs`: family, ifindex,
/// hardware type and the link's own MAC, protocol 0 (so `bind` keeps the
/// socket's protocol).
fn link_address(ifindex: u32) -> Result<(String, LinkAddr), PacketError> {
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| PacketError::Syscall {
        iface: format!("ifindex {ifindex}"),
        syscall: "getifaddrs",
        source: e.into(),
    })?;
    for a in addrs {
        let Some(link) = a.address.as_ref().and_then(|s| s.as_link_addr()) else {
            continue;
        };
        if u32::try_from(link.ifindex()) == Ok(ifindex) {
            return Ok((a.interface_name, *link));
        }
    }
    Err(PacketError::NoSuchInterface { ifindex })
}

impl PacketSocket {
    /// Opens and binds the socket(s) for link `ifindex`. Must run inside a
    /// Tokio runtime (the sockets register with its reactor).
    pub fn open(ifindex: u32, config: &PacketConfig) -> Result<PacketSocket, PacketError> {
        let (name, link) = link_address(ifindex)?;
        let iface = format!("{name} (ifindex {ifindex})");
        let err = |syscall: &'static str| {
            let iface = iface.clone();
            move |e: Errno| PacketError::Syscall {
                iface,
                syscall,
                source: e.into(),
            }
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(PacketError::NoRuntime { iface });
        }
        let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
        let (ty, protocol) = match config.framing {
            Framing::Ip => (SockType::Datagram, SockProtocol::EthIpv6),
            Framing::Ethernet { ipv6_only: true } => (SockType::Raw, SockProtocol::EthIpv6),
            Framing::Ethernet { ipv6_only: false } => (SockType::Raw, SockProtocol::EthAll),
        };
        let rx =
            socket(AddressFamily::Packet, ty, flags, protocol).map_err(err("socket(AF_PACKET)"))?;
        let kernel_ignores_outgoing = !config.outgoing
            && match setsockopt(&rx, PacketIgnoreOutgoing, &true) {
                Ok(()) => true,
                // Older kernels: recv filters instead.
                Err(Errno::ENOPROTOOPT | Errno::EINVAL) => false,
                Err(e) => return Err(err("setsockopt(PACKET_IGNORE_OUTGOING)")(e)),
            };
        set_buffers(&rx, config, &iface)?;
        bind(rx.as_raw_fd(), &link).map_err(err("bind"))?;
        // The socket saw every link between socket() and bind(): drop that.
        drain(&rx);
        let tx = match config.framing {
            Framing::Ip => {
                let tx = socket(AddressFamily::Packet, SockType::Raw, flags, None)
                    .map_err(err("socket(AF_PACKET, SOCK_RAW, 0) for sending"))?;
                set_buffers(&tx, config, &iface)?;
                bind(tx.as_raw_fd(), &link).map_err(err("bind (send socket)"))?;
                Some(tx)
            }
            Framing::Ethernet { .. } => None,
        };
        let register = |fd: OwnedFd| {
            register(fd).map_err(|source| PacketError::Syscall {
                iface: iface.clone(),
                syscall: "epoll_ctl (registering with Tokio)",
                source,
            })
        };
        let socket = PacketSocket {
            rx: register(rx)?,
            tx: tx.map(register).transpose()?,
            framing: config.framing,
            ifindex,
            mac: link.addr().unwrap_or_default(),
            name,
            outgoing: config.outgoing,
            kernel_ignores_outgoing,
        };
        if config.all_multicast {
            socket.membership(true, libc::PACKET_MR_ALLMULTI, [0; 6])?;
        }
        Ok(socket)
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The link's name when the socket was opened.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The link's own MAC (the source of what the `Ip` framing sends).
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Whether the kernel took `PACKET_IGNORE_OUTGOING` (else `recv`
    /// filters outgoing copies itself).
    pub fn kernel_ignores_outgoing(&self) -> bool {
        self.kernel_ignores_outgoing
    }

    /// `SO_RCVBUF` as the kernel reports it (twice what was asked: it
    /// counts its bookkeeping too).
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        Ok(getsockopt(self.rx.get_ref(), sockopt::RcvBuf)?)
    }

    /// Frames the kernel dropped since the last call because the receive
    /// queue was full (`PACKET_STATISTICS`, which the call resets).
    pub fn take_queue_drops(&self) -> io::Result<u64> {
        Ok(getsockopt(self.rx.get_ref(), PacketStatistics)?
            .tp_drops
            .into())
    }

    /// `SO_SNDBUF` of the socket that sends.
    pub fn send_buffer_size(&self) -> io::Result<usize> {
        Ok(getsockopt(self.sender().get_ref(), sockopt::SndBuf)?)
    }

    fn iface(&self) -> String {
        format!("{} (ifindex {})", self.name, self.ifindex)
    }

    fn sender(&self) -> &AsyncFd<OwnedFd> {
        self.tx.as_ref().unwrap_or(&self.rx)
    }

    fn membership(&self, add: bool, kind: i32, mac: [u8; 6]) -> Result<(), PacketError> {
        let mut address = [0u8; 8];
        address[..6].copy_from_slice(&mac);
        let mreq = libc::packet_mreq {
            mr_ifindex: i32::try_from(self.ifindex).unwrap_or(i32::MAX),
            mr_type: u16::try_from(kind).unwrap_or(u16::MAX),
            mr_alen: if kind == libc::PACKET_MR_MULTICAST {
                6
            } else {
                0
            },
            mr_address: address,
        };
        let (result, syscall) = if add {
            (
                setsockopt(self.rx.get_ref(), PacketAddMembership, &mreq),
                "setsockopt(PACKET_ADD_MEMBERSHIP)",
            )
        } else {
            (
                setsockopt(self.rx.get_ref(), PacketDropMembership, &mreq),
                "setsockopt(PACKET_DROP_MEMBERSHIP)",
            )
        };
        result.map_err(|e| PacketError::Syscall {
            iface: self.iface(),
            syscall,
            source: e.into(),
        })
    }

    /// Joins a multicast MAC (`PACKET_MR_MULTICAST`): the NIC's filter lets
    /// it in for as long as this socket is open.
    pub fn add_multicast(&self, mac: [u8; 6]) -> Result<(), PacketError> {
        self.membership(true, libc::PACKET_MR_MULTICAST, mac)
    }

    /// Leaves a multicast MAC joined with [`PacketSocket::add_multicast`].
    pub fn drop_multicast(&self, mac: [u8; 6]) -> Result<(), PacketError> {
        self.membership(false, libc::PACKET_MR_MULTICAST, mac)
    }

    /// `PACKET_MR_ALLMULTI` on or off (see [`PacketConfig::all_multicast`]).
    pub fn set_all_multicast(&self, on: bool) -> Result<(), PacketError> {
        self.membership(on, libc::PACKET_MR_ALLMULTI, [0; 6])
    }

    /// Waits for the next packet (or frame) and writes it to `buf`.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        loop {
            let mut guard = self.rx.readable().await?;
            match guard.try_io(|fd| self.recv_one(fd.get_ref(), buf)) {
                Ok(Ok(Some(r))) => return Ok(r),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => {}
            }
        }
    }

    /// The next packet if one is queued, else `WouldBlock`.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        loop {
            if let Some(r) = self.recv_one(self.rx.get_ref(), buf)? {
                return Ok(r);
            }
        }
    }

    /// One `recvmsg`; `None` for what is filtered out.
    fn recv_one(&self, fd: &OwnedFd, buf: &mut [u8]) -> io::Result<Option<Received>> {
        let cap = buf.len();
        let mut iov = [IoSliceMut::new(buf)];
        let msg = recvmsg::<LinkAddr>(fd.as_raw_fd(), &mut iov, None, MsgFlags::MSG_TRUNC)?;
        Ok(self.accept(msg.address, msg.bytes, msg.flags, cap))
    }

    /// What a receive call gave, unless it is filtered out.
    fn accept(
        &self,
        from: Option<LinkAddr>,
        bytes: usize,
        flags: MsgFlags,
        cap: usize,
    ) -> Option<Received> {
        let from = from?;
        let kind = PacketKind::from(from.pkttype());
        if (kind == PacketKind::Outgoing && !self.outgoing)
            || u32::try_from(from.ifindex()) != Ok(self.ifindex)
        {
            return None;
        }
        Some(Received {
            len: bytes.min(cap),
            src: from.addr().unwrap_or_default(),
            kind,
            truncated: bytes > cap || flags.contains(MsgFlags::MSG_TRUNC),
        })
    }

    /// Waits for packets (or frames) and takes every one queued, up to the
    /// batch's size, with one `recvmmsg`; returns how many it holds (≥ 1).
    pub async fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        loop {
            let mut guard = self.rx.readable().await?;
            match guard.try_io(|fd| self.recv_many(fd.get_ref(), batch)) {
                Ok(Ok(0)) => {}
                Ok(result) => return result,
                Err(_would_block) => {}
            }
        }
    }

    fn recv_many(&self, fd: &OwnedFd, batch: &mut RecvBatch) -> io::Result<usize> {
        let RecvBatch { bufs, received } = batch;
        received.clear();
        let mut headers = MultiHeaders::<LinkAddr>::preallocate(bufs.len(), None);
        let cap = bufs.first().map_or(0, Vec::len);
        let mut iovs: Vec<[IoSliceMut; 1]> =
            bufs.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
        let results = recvmmsg(
            fd.as_raw_fd(),
            &mut headers,
            iovs.iter_mut(),
            MsgFlags::MSG_TRUNC | MsgFlags::MSG_DONTWAIT,
            None,
        )?;
        for (i, msg) in results.enumerate() {
            if let Some(r) = self.accept(msg.address, msg.bytes, msg.flags, cap) {
                received.push((i, r));
            }
        }
        Ok(received.len())
    }

    /// Sends one packet now, or `WouldBlock`. `Ip` framing: `packet` is an
    /// IPv6 packet and `dst` the next hop's MAC. `Ethernet` framing:
    /// `packet` is a whole frame, whose destination must be `dst`.
    pub fn try_send(&self, packet: &[u8], dst: [u8; 6]) -> io::Result<()> {
        let (sent, want) = match (&self.tx, self.framing) {
            (Some(tx), Framing::Ip) => {
                let mut header = [0u8; ETHERNET_HEADER_LEN];
                header[..6].copy_from_slice(&dst);
                header[6..12].copy_from_slice(&self.mac);
                header[12..].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
                let iov = [IoSlice::new(&header), IoSlice::new(packet)];
                let n = sendmsg::<LinkAddr>(
                    tx.get_ref().as_raw_fd(),
                    &iov,
                    &[],
                    MsgFlags::MSG_DONTWAIT,
                    None,
                )?;
                (n, ETHERNET_HEADER_LEN + packet.len())
            }
            _ => {
                if packet.len() < ETHERNET_HEADER_LEN || packet[..6] != dst {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "an Ethernet frame whose destination is not the MAC given",
                    ));
                }
                let n = send(
                    self.rx.get_ref().as_raw_fd(),
                    packet,
                    MsgFlags::MSG_DONTWAIT,
                )?;
                (n, packet.len())
            }
        };
        if sent == want {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("{}: sent {sent} of {want} bytes", self.iface()),
            ))
        }
    }

    /// Sends `frames` as [`PacketSocket::try_send`] would each, in order,
    /// with a `sendmmsg` per [`SEND_BATCH`]; a frame that fails is counted
    /// and skipped, and once the socket's buffer is full the rest are.
    pub fn try_send_batch(&self, frames: &[(&[u8], [u8; 6])]) -> Sent {
        let mut out = Sent::default();
        let mut start = 0;
        while start < frames.len() {
            let end = frames.len().min(start + SEND_BATCH);
            match self.send_mmsg(&frames[start..end]) {
                Ok(0) => {
                    out.full = frames.len() - start;
                    break;
                }
                Ok(n) => {
                    out.sent += n;
                    start += n;
                }
                Err(e) => {
                    out.failed += 1;
                    out.error = Some(e);
                    start += 1;
                }
            }
        }
        out
    }

    /// One `sendmmsg`: how many went (0: the buffer was full at the
    /// first), or the error of the first.
    fn send_mmsg(&self, frames: &[(&[u8], [u8; 6])]) -> io::Result<usize> {
        let ip = self.framing == Framing::Ip;
        let mut headers = Vec::with_capacity(if ip { frames.len() } else { 0 });
        for (packet, dst) in frames {
            if ip {
                let mut h = [0u8; ETHERNET_HEADER_LEN];
                h[..6].copy_from_slice(dst);
                h[6..12].copy_from_slice(&self.mac);
                h[12..].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
                headers.push(h);
            } else if packet.len() < ETHERNET_HEADER_LEN || packet[..6] != *dst {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "an Ethernet frame whose destination is not the MAC given",
                ));
            }
        }
        let iovs: Vec<Vec<IoSlice>> = frames
            .iter()
            .enumerate()
            .map(|(i, (packet, _))| match headers.get(i) {
                Some(h) => vec![IoSlice::new(h), IoSlice::new(packet)],
                None => vec![IoSlice::new(packet)],
            })
            .collect();
        let fd = self.sender().get_ref().as_raw_fd();
        let addrs = vec![None::<LinkAddr>; frames.len()];
        let mut headers = MultiHeaders::<LinkAddr>::preallocate(frames.len(), None);
        match sendmmsg(
            fd,
            &mut headers,
            iovs.iter(),
            addrs,
            [],
            MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(results) => Ok(results.count()),
            Err(Errno::EAGAIN) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// Sends one packet, waiting while the socket's buffer is full. See
    /// [`PacketSocket::try_send`].
    pub async fn send(&self, packet: &[u8], dst: [u8; 6]) -> io::Result<()> {
        loop {
            let mut guard = self.sender().writable().await?;
            match guard.try_io(|_| self.try_send(packet, dst)) {
                Ok(result) => return result,
                Err(_would_block) => {}
            }
        }
    }
}

/// Sets the buffer sizes: the FORCE options first (CAP_NET_ADMIN), then
/// the capped ones.
fn set_buffers(fd: &OwnedFd, config: &PacketConfig, iface: &str) -> Result<(), PacketError> {
    let fail = |syscall: &'static str| {
        move |e: Errno| PacketError::Syscall {
            iface: iface.to_string(),
            syscall,
            source: e.into(),
        }
    };
    if let Some(n) = config.recv_buffer {
        if setsockopt(fd, sockopt::RcvBufForce, &n).is_err() {
            setsockopt(fd, sockopt::RcvBuf, &n).map_err(fail("setsockopt(SO_RCVBUF)"))?;
        }
    }
    if let Some(n) = config.send_buffer {
        if setsockopt(fd, sockopt::SndBufForce, &n).is_err() {
            setsockopt(fd, sockopt::SndBuf, &n).map_err(fail("setsockopt(SO_SNDBUF)"))?;
        }
    }
    Ok(())
}

/// Registers a socket with Tokio's reactor.
///
/// Tokio 1.54 deprecated the safe `AsyncFd::new` for the `unsafe`
/// `AsyncFd::register`, whose contract is that the descriptor stays open and
/// the same for the `AsyncFd`'s lifetime: an `OwnedFd` moved into it meets
/// that by construction, so the safe call stays sound here and keeps the
/// crate free of `unsafe`.
#[expect(
    deprecated,
    reason = "sound for an owned descriptor; the replacement is `unsafe`, forbidden in this workspace"
)]
fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    AsyncFd::new(fd)
}

/// Reads and discards what is queued (at most a socket buffer's worth).
fn drain(fd: &OwnedFd) {
    let mut buf = [0u8; 64];
    for _ in 0..100_000 {
        let mut iov = [IoSliceMut::new(&mut buf)];
        if recvmsg::<LinkAddr>(fd.as_raw_fd(), &mut iov, None, MsgFlags::MSG_DONTWAIT).is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_kinds() {
        assert_eq!(PacketKind::from(4), PacketKind::Outgoing);
        assert_eq!(PacketKind::from(9), PacketKind::Other(9));
    }
}
