//! The sockets of an IKEv2 node, per local address: UDP 500 and 4500 and a
//! raw IP socket for ESP (protocol 50), each with a reader task that
//! forwards what arrives to the owner's channel; and the few header bytes
//! the ESP data plane adds or reads around a raw socket's payload.

use std::io;
use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::ike::{IKE_PORT, NATT_PORT};
use crate::wire::checksum;

/// IP protocol number of ESP.
const ESP: u8 = 50;
/// Big enough for any datagram.
const BUFFER: usize = 65_536;

/// A socket of an address that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("{what} on {address}: {source}")]
pub struct UdpError {
    pub what: &'static str,
    pub address: IpAddr,
    #[source]
    pub source: io::Error,
}

/// What the sockets received.
#[derive(Debug)]
pub enum Received {
    /// A UDP datagram on our socket `local` (port 500 or 4500).
    Udp {
        local: SocketAddr,
        remote: SocketAddr,
        bytes: Vec<u8>,
    },
    /// An ESP packet (from the ESP header on) sent to `local` in IP.
    Esp {
        local: IpAddr,
        remote: IpAddr,
        bytes: Vec<u8>,
    },
    /// A reader stopped on an error.
    Failed(String),
}

/// The sockets of one local address, for sending; their readers (tokio
/// tasks on duplicates of the same sockets) forward what arrives. Sends
/// are plain non-blocking system calls: tokio's `try_send_to` would
/// refuse until the reactor has first seen a fresh socket writable, and
/// IKE sends right after binding. Dropping this stops the readers and
/// closes the sockets.
pub struct AddressSockets {
    ike: std::net::UdpSocket,
    natt: std::net::UdpSocket,
    /// A raw IP socket for protocol 50, bound to the address. std and tokio
    /// only wrap recvfrom/sendto, which raw sockets share with UDP; the
    /// "port" of a raw socket address is 0.
    pub esp: std::net::UdpSocket,
    readers: Vec<JoinHandle<()>>,
}

impl AddressSockets {
    /// Binds [addr]:500, [addr]:4500 and raw ESP on `addr` and starts
    /// their readers (needs root or CAP_NET_BIND_SERVICE + CAP_NET_RAW).
    /// Call it inside the tokio runtime.
    pub fn bind<T: From<Received> + Send + 'static>(
        addr: IpAddr,
        tx: &mpsc::Sender<T>,
    ) -> Result<AddressSockets, UdpError> {
        let fail = |what: &'static str| {
            move |source| UdpError {
                what,
                address: addr,
                source,
            }
        };
        let udp =
            |port, what| std::net::UdpSocket::bind(SocketAddr::new(addr, port)).map_err(fail(what));
        let esp = raw_esp_socket(addr).map_err(fail("a raw ESP socket"))?;
        let (ike, natt) = (
            udp(IKE_PORT, "UDP port 500")?,
            udp(NATT_PORT, "UDP port 4500")?,
        );
        let reader = |s: &std::net::UdpSocket| -> io::Result<UdpSocket> {
            s.set_nonblocking(true)?;
            UdpSocket::from_std(s.try_clone()?)
        };
        let failed = fail("registering the sockets with the runtime");
        let readers = vec![
            tokio::spawn(read_udp(reader(&ike).map_err(failed)?, tx.clone())),
            tokio::spawn(read_udp(reader(&natt).map_err(failed)?, tx.clone())),
            tokio::spawn(read_esp(reader(&esp).map_err(failed)?, addr, tx.clone())),
        ];
        Ok(AddressSockets {
            ike,
            natt,
            esp,
            readers,
        })
    }

    /// The UDP socket for a local port, if it is one of ours.
    pub fn udp(&self, port: u16) -> Option<&std::net::UdpSocket> {
        match port {
            IKE_PORT => Some(&self.ike),
            NATT_PORT => Some(&self.natt),
            _ => None,
        }
    }
}

impl Drop for AddressSockets {
    fn drop(&mut self) {
        for r in &self.readers {
            r.abort();
        }
    }
}

fn raw_esp_socket(addr: IpAddr) -> io::Result<std::net::UdpSocket> {
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let socket = Socket::new(domain, Type::RAW, Some(Protocol::from(i32::from(ESP))))?;
    socket.bind(&SocketAddr::new(addr, 0).into())?;
    Ok(socket.into())
}

async fn read_udp<T: From<Received>>(socket: UdpSocket, tx: mpsc::Sender<T>) {
    let mut buf = vec![0; BUFFER];
    let local = match socket.local_addr() {
        Ok(a) => a,
        Err(e) => {
            let _ = tx
                .send(Received::Failed(format!("UDP socket: {e}")).into())
                .await;
            return;
        }
    };
    let input = loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, remote)) => {
                let bytes = buf[..n].to_vec();
                if tx
                    .send(
                        Received::Udp {
                            local,
                            remote,
                            bytes,
                        }
                        .into(),
                    )
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => break Received::Failed(format!("UDP {local}: {e}")),
        }
    };
    let _ = tx.send(input.into()).await;
}

async fn read_esp<T: From<Received>>(socket: UdpSocket, local: IpAddr, tx: mpsc::Sender<T>) {
    let mut buf = vec![0; BUFFER];
    let input = loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, remote)) => {
                // An IPv4 raw socket delivers the IP header too.
                let skip = match local {
                    IpAddr::V4(_) => buf.first().map_or(0, |b| usize::from(b & 0x0f) * 4),
                    IpAddr::V6(_) => 0,
                };
                let bytes = buf.get(skip..n).unwrap_or_default().to_vec();
                let remote = remote.ip();
                if tx
                    .send(
                        Received::Esp {
                            local,
                            remote,
                            bytes,
                        }
                        .into(),
                    )
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => break Received::Failed(format!("raw ESP on {local}: {e}")),
        }
    };
    let _ = tx.send(input.into()).await;
}

/// An IP packet from `src` to `dst` carrying `esp`, for `Ipsec::inbound`
/// (which checks no more of the outer header than this fills in).
pub fn esp_in_ip(src: IpAddr, dst: IpAddr, esp: &[u8]) -> Option<Vec<u8>> {
    const HOP_LIMIT: u8 = 64;
    let mut p = Vec::with_capacity(40 + esp.len());
    match (src, dst) {
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let len = u16::try_from(esp.len()).ok()?.to_be_bytes();
            p.extend_from_slice(&[0x60, 0, 0, 0, len[0], len[1], ESP, HOP_LIMIT]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
        }
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let len = u16::try_from(esp.len() + 20).ok()?.to_be_bytes();
            p.extend_from_slice(&[0x45, 0, len[0], len[1], 0, 0, 0x40, 0, HOP_LIMIT, ESP, 0, 0]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            let c = checksum::finish(checksum::sum(0, &p)).to_be_bytes();
            p[10..12].copy_from_slice(&c);
        }
        _ => return None,
    }
    p.extend_from_slice(esp);
    Some(p)
}

/// The outer addresses and the ESP part of a packet `Ipsec::outbound`
/// sealed; None unless ESP follows the IP header directly (extension
/// headers cannot be sent through a raw or UDP socket as they are).
pub fn split_esp(packet: &[u8]) -> Option<(IpAddr, IpAddr, &[u8])> {
    match packet.first()? >> 4 {
        6 if packet.len() >= 40 && packet[6] == ESP => {
            let src: [u8; 16] = packet[8..24].try_into().ok()?;
            let dst: [u8; 16] = packet[24..40].try_into().ok()?;
            Some((IpAddr::from(src), IpAddr::from(dst), &packet[40..]))
        }
        4 if packet.len() >= 20 && packet[9] == ESP => {
            let header = usize::from(packet[0] & 0x0f) * 4;
            let src: [u8; 4] = packet[12..16].try_into().ok()?;
            let dst: [u8; 4] = packet[16..20].try_into().ok()?;
            Some((IpAddr::from(src), IpAddr::from(dst), packet.get(header..)?))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esp_headers_round_trip() {
        for (s, d) in [
            ("2001:db8:1::a", "2001:db8:1::b"),
            ("192.0.2.1", "192.0.2.2"),
        ] {
            let (s, d): (IpAddr, IpAddr) = (s.parse().unwrap(), d.parse().unwrap());
            let p = esp_in_ip(s, d, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
            assert_eq!(split_esp(&p), Some((s, d, &[1, 2, 3, 4, 5, 6, 7, 8][..])));
        }
        let v4 = esp_in_ip([192, 0, 2, 1].into(), [192, 0, 2, 2].into(), &[0; 8]).unwrap();
        assert_eq!(checksum::finish(checksum::sum(0, &v4[..20])), 0);
        assert_eq!(split_esp(&[0x60; 10]), None);
    }
}
