//! A minimal pcap (libpcap classic format) writer and reader. We write
//! LINKTYPE_RAW (101): each record is an IPv4 or IPv6 packet, which
//! Wireshark and tshark open directly. The reader also accepts
//! LINKTYPE_IPV4/IPV6, Ethernet and Linux cooked captures, so users can
//! decode what tcpdump wrote.

use std::io::{Read, Write};

use super::Error;

const MAGIC_US: u32 = 0xa1b2_c3d4;
const MAGIC_NS: u32 = 0xa1b2_3c4d;
/// Raw IP; the version nibble tells v4 from v6.
pub const LINKTYPE_RAW: u32 = 101;
const LINKTYPE_ETHERNET: u32 = 1;
const LINKTYPE_LINUX_SLL: u32 = 113;
const LINKTYPE_IPV4: u32 = 228;
const LINKTYPE_IPV6: u32 = 229;
const SNAPLEN: u32 = 65535;

/// Writes packets to a pcap stream.
pub struct PcapWriter<W: Write> {
    out: W,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header.
    pub fn new(mut out: W) -> Result<Self, Error> {
        out.write_all(&MAGIC_US.to_le_bytes())?;
        out.write_all(&2u16.to_le_bytes())?;
        out.write_all(&4u16.to_le_bytes())?;
        out.write_all(&0i32.to_le_bytes())?;
        out.write_all(&0u32.to_le_bytes())?;
        out.write_all(&SNAPLEN.to_le_bytes())?;
        out.write_all(&LINKTYPE_RAW.to_le_bytes())?;
        Ok(PcapWriter { out })
    }

    /// Writes one IP packet seen at `micros` microseconds (virtual or real time).
    pub fn write_packet(&mut self, micros: u64, packet: &[u8]) -> Result<(), Error> {
        let len = u32::try_from(packet.len()).map_err(|_| Error::PacketTooLarge(packet.len()))?;
        let secs =
            u32::try_from(micros / 1_000_000).map_err(|_| Error::TimestampTooLate(micros))?;
        self.out.write_all(&secs.to_le_bytes())?;
        self.out
            .write_all(&((micros % 1_000_000) as u32).to_le_bytes())?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(packet)?;
        Ok(())
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Reads every packet of a pcap stream as raw IP packets, with their
/// timestamps in microseconds.
pub fn read_packets(mut input: impl Read) -> Result<Vec<(u64, Vec<u8>)>, Error> {
    let mut data = Vec::new();
    input.read_to_end(&mut data)?;
    let bad = |what: &str| Error::NotPcap(what.to_string());
    if data.len() < 24 {
        return Err(bad("shorter than the global header"));
    }
    let magic_le = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    let magic_be = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
    let (le, nanos) = match (magic_le, magic_be) {
        (MAGIC_US, _) => (true, false),
        (MAGIC_NS, _) => (true, true),
        (_, MAGIC_US) => (false, false),
        (_, MAGIC_NS) => (false, true),
        _ => {
            return Err(bad(
                "unknown magic number (pcapng is not supported; convert with editcap -F pcap)",
            ))
        }
    };
    let u32_at = |at: usize| {
        let b = [data[at], data[at + 1], data[at + 2], data[at + 3]];
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let linktype = u32_at(20) & 0x0fff_ffff;
    let strip: fn(&[u8]) -> Option<&[u8]> = match linktype {
        LINKTYPE_RAW | LINKTYPE_IPV4 | LINKTYPE_IPV6 => |b| Some(b),
        LINKTYPE_ETHERNET => |b| b.get(14..),
        LINKTYPE_LINUX_SLL => |b| b.get(16..),
        other => return Err(bad(&format!("unsupported link type {other}"))),
    };
    let mut out = Vec::new();
    let mut at = 24;
    while at < data.len() {
        if data.len() - at < 16 {
            return Err(bad("truncated record header"));
        }
        let (secs, frac, caplen) = (u32_at(at), u32_at(at + 4), u32_at(at + 8) as usize);
        let body = data
            .get(at + 16..at + 16 + caplen)
            .ok_or_else(|| bad("truncated record"))?;
        let micros =
            u64::from(secs) * 1_000_000 + u64::from(if nanos { frac / 1000 } else { frac });
        out.push((micros, strip(body).unwrap_or_default().to_vec()));
        at += 16 + caplen;
    }
    Ok(out)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn write_then_read() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_packet(1_500_000, &[0x60, 1, 2]).unwrap();
        w.write_packet(2_000_001, &[0x45]).unwrap();
        let bytes = w.into_inner();
        assert_eq!(bytes.len(), 24 + 16 + 3 + 16 + 1);
        assert_eq!(
            read_packets(&bytes[..]).unwrap(),
            vec![(1_500_000, vec![0x60, 1, 2]), (2_000_001, vec![0x45])]
        );
        assert!(read_packets(&bytes[..bytes.len() - 1]).is_err());
        assert!(read_packets(&b"\x0a\x0d\x0d\x0a"[..]).is_err());
    }
}
