//! What an IKE node is told: who it is, whom it talks to, and which of the
//! address-management extensions it runs.

use core::fmt;
use core::net::{IpAddr, SocketAddr};
use core::ops::RangeInclusive;

use super::crypto::Encr;
use crate::ipsec::{Lifetime, Mode, PortRange, Prefix};
use crate::time::Duration;
use crate::wire::ike::Identification;
use crate::wire::{CodePoints, IpProtocol};

/// An IKE identity. Addresses are deliberately not representable: peer
/// addresses change and are never identities (REQ AM-2.1c, CN-5.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    Fqdn(String),
    Rfc822(String),
}

impl Identity {
    pub fn payload(&self) -> Identification {
        match self {
            Identity::Fqdn(s) => Identification {
                id_type: Identification::FQDN,
                data: s.as_bytes().to_vec(),
            },
            Identity::Rfc822(s) => Identification {
                id_type: Identification::RFC822_ADDR,
                data: s.as_bytes().to_vec(),
            },
        }
    }

    /// `None` for every type that is not a name, addresses included.
    pub fn from_payload(id: &Identification) -> Option<Identity> {
        let s = String::from_utf8(id.data.clone()).ok()?;
        match id.id_type {
            Identification::FQDN => Some(Identity::Fqdn(s)),
            Identification::RFC822_ADDR => Some(Identity::Rfc822(s)),
            _ => None,
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Fqdn(s) | Identity::Rfc822(s) => f.write_str(s),
        }
    }
}

/// How a peer authenticates, and how we authenticate to it.
#[derive(Clone)]
pub enum PeerAuth {
    /// The same secret on both sides.
    Psk(Vec<u8>),
    /// The peer's raw Ed25519 key; we sign with [`IkeConfig::signing_key`].
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl fmt::Debug for PeerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAuth::Psk(_) => f.write_str("Psk(<secret>)"),
            PeerAuth::Ed25519(k) => write!(f, "Ed25519({})", crate::wire::hex(k.as_bytes())),
        }
    }
}

/// One side of a CHILD_SA's traffic selectors.
///
/// One `TsSpec` is one traffic selector, so only a contiguous port or
/// MH-type range is representable; a set that is not one range (say BRR,
/// BU and BA) would be one selector per range in TSi/TSr, narrowed one by
/// one, with the union of their types installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TsSpec {
    /// `None` is strongSwan's "dynamic": the IKE address in use.
    pub prefix: Option<Prefix>,
    /// IP protocol, 0 for any.
    pub protocol: u8,
    /// The selector's 16-bit port range (RFC 7296 §3.13.1): ports for
    /// TCP, UDP and the like; for the Mobility Header the MH type in the
    /// high octet (RFC 4301 §4.4.1.1), see [`TsSpec::mh_types`]. ANY for
    /// protocols without ports.
    pub ports: PortRange,
}

impl TsSpec {
    pub const DYNAMIC: TsSpec = TsSpec {
        prefix: None,
        protocol: 0,
        ports: PortRange::ANY,
    };

    pub fn prefix(p: Prefix) -> Self {
        TsSpec {
            prefix: Some(p),
            ..Self::DYNAMIC
        }
    }

    /// Only the Mobility Header, of the types `types`: type `t` is the
    /// port range `t << 8 ..= t << 8 | 0xff`, so BU and BA (5..=6) are
    /// 0x0500..=0x06ff.
    pub fn mh_types(self, types: RangeInclusive<u8>) -> Self {
        TsSpec {
            protocol: IpProtocol::Mobility.into(),
            ports: PortRange {
                low: u16::from(*types.start()) << 8,
                high: u16::from(*types.end()) << 8 | 0xff,
            },
            ..self
        }
    }
}

#[derive(Debug, Clone)]
pub struct ChildConfig {
    pub name: String,
    pub mode: Mode,
    pub local_ts: TsSpec,
    pub remote_ts: TsSpec,
    /// In order of preference.
    pub proposals: Vec<Encr>,
    /// Perfect forward secrecy: our CREATE_CHILD_SA requests carry an
    /// X25519 KE, and a peer's must too. Without it we still answer a
    /// peer that asks for PFS with it.
    pub pfs: bool,
    /// Soft limits start a rekey; hard limits end the SA.
    pub lifetime: Lifetime,
    /// Our outer tunnel address when it differs from the IKE address
    /// (draft-arora-ipsecme-ikev2-alt-tunnel-addresses).
    pub tunnel_address: Option<IpAddr>,
}

impl ChildConfig {
    pub fn new(name: &str, mode: Mode, local_ts: TsSpec, remote_ts: TsSpec) -> Self {
        ChildConfig {
            name: name.to_string(),
            mode,
            local_ts,
            remote_ts,
            proposals: Encr::ALL.to_vec(),
            pfs: false,
            lifetime: Lifetime::default(),
            tunnel_address: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PeerConfig {
    pub name: String,
    pub id: Identity,
    pub auth: PeerAuth,
    /// Where the peer can be reached, most preferred first (REQ AM-2.2);
    /// an initiator starts with the first.
    pub addresses: Vec<SocketAddr>,
    /// Children set up by IKE_AUTH (the first) and CREATE_CHILD_SA.
    pub children: Vec<ChildConfig>,
    /// Our address for this peer's SAs, usable whatever the local
    /// addresses are and never moved from or announced past: a mobile
    /// node's home address for its correspondents (REQ CN-5.1). `None`:
    /// the local addresses, followed as they change.
    pub local: Option<IpAddr>,
}

/// How an IKE SA follows address changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mobility {
    Off,
    /// RFC 4555; `r_mobike` adds draft-smyslov-ipsecme-ikev2-r-mobike.
    Mobike {
        r_mobike: bool,
    },
    /// draft-dupont-ikev2-addrmgmt: peer address notifications and the
    /// Peer Address Update payload.
    AddrMgmt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatTraversal {
    /// NAT detection over IPv4 only: IPv6 has no NATs, and NAT traversal
    /// opens the transient pseudo-NAT attack (REQ AM-2.1d).
    Auto,
    On,
    Off,
}

#[derive(Debug, Clone)]
pub struct IkeConfig {
    pub id: Identity,
    pub signing_key: Option<ed25519_dalek::SigningKey>,
    pub peers: Vec<PeerConfig>,
    /// IKE SA transforms, in order of preference (PRF HMAC-SHA-256, X25519).
    pub proposals: Vec<Encr>,
    pub mobility: Mobility,
    /// Offer and accept alternate tunnel addresses (TA-3a).
    pub tunnel_addresses: bool,
    pub nat_traversal: NatTraversal,
    /// Check that the peer answers at a new address before moving SAs
    /// there (REQ AM-3.4c, on by default per AM-4; RFC 4555 §3.5).
    pub return_routability: bool,
    /// Addresses a responder may ask us to switch to without having
    /// announced them (REQ RM-4.2d).
    pub switch_policy: Vec<Prefix>,
    /// TSi addresses other than the peer's own that a responder accepts for
    /// transport mode (the proxy case, REQ AM-3.2c); empty by default.
    pub proxy_policy: Vec<Prefix>,
    /// Half-open SAs beyond which IKE_SA_INIT needs a COOKIE.
    pub cookie_threshold: usize,
    pub retransmit_timeout: Duration,
    /// Retransmissions before the peer is declared dead.
    pub retransmit_tries: u32,
    /// How often an established SA's traffic is looked at: packets sent
    /// on its children during one span and nothing protected received in
    /// it or the next ask for a liveness check (RFC 7296 §2.4).
    pub liveness_interval: Duration,
    /// Seeds SPIs, nonces and DH keys: 32 random octets on a real network,
    /// a counter in a simulation.
    pub seed: [u8; 32],
    pub code_points: CodePoints,
}

impl IkeConfig {
    pub fn new(id: Identity, seed: u64) -> Self {
        IkeConfig {
            id,
            signing_key: None,
            peers: Vec::new(),
            proposals: Encr::ALL.to_vec(),
            mobility: Mobility::Mobike { r_mobike: false },
            tunnel_addresses: false,
            nat_traversal: NatTraversal::Auto,
            return_routability: true,
            switch_policy: Vec::new(),
            proxy_policy: Vec::new(),
            cookie_threshold: 64,
            retransmit_timeout: Duration::from_millis(500),
            retransmit_tries: 5,
            liveness_interval: Duration::from_secs(5),
            seed: seed_from(seed),
            code_points: CodePoints::default(),
        }
    }
}

/// A reproducible seed for simulations and tests.
pub fn seed_from(n: u64) -> [u8; 32] {
    let mut s = [0; 32];
    s[..8].copy_from_slice(&n.to_le_bytes());
    s
}
