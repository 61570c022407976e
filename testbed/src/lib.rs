//! Testbeds and tools for the Mobile IPv6 stack: packet decoding for people
//! and test oracles, pcap files, and the reference packet set.

pub mod decode;
pub mod demo;
pub mod ike_peer;
pub mod netns;
pub mod pcap;
pub mod samples;
pub mod sim;
pub mod strongswan;
