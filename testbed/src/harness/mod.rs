//! Real processes for interop tests: network namespaces, veth pairs,
//! processes and captures in them ([`netns`]), and strongSwan's charon as
//! an IKEv2 peer ([`strongswan`]).

pub mod netns;
pub mod strongswan;
