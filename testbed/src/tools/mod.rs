//! The packet tools: what the stack thinks of a packet ([`decode`]), pcap
//! files ([`pcap`]) and the reference packet set ([`samples`]).

use std::io;
use std::path::{Path, PathBuf};

pub mod decode;
pub mod pcap;
pub mod samples;

/// What went wrong reading or writing packets.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// I/O on a stream.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// `source`, on the file or directory `path`.
    #[error("{}: {source}", .path.display())]
    File {
        /// The file or directory.
        path: PathBuf,
        #[source]
        source: Box<Error>,
    },
    /// The input is not a pcap file we can read.
    #[error("not a pcap file: {0}")]
    NotPcap(String),
    /// A packet longer than a pcap record length can say.
    #[error("packet too large for pcap ({0} bytes)")]
    PacketTooLarge(usize),
    /// A timestamp (microseconds) past what pcap's 32-bit seconds hold.
    #[error("timestamp beyond 2106 ({0} µs)")]
    TimestampTooLate(u64),
    /// A packet given as hex is not hex.
    #[error("bad hex: {0}")]
    Hex(#[from] hex::FromHexError),
}

impl Error {
    /// This error, on the file or directory `path`.
    pub fn in_file(self, path: &Path) -> Error {
        Error::File {
            path: path.to_path_buf(),
            source: Box::new(self),
        }
    }
}
