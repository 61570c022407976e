//! The packet tools: what the stack thinks of a packet ([`decode`]), pcap
//! files ([`pcap`]) and the reference packet set ([`samples`]).

pub mod decode;
pub mod pcap;
pub mod samples;
