//! The `ike:` section of a configuration file: one schema for IKEv2 in
//! the three daemons and in `testbed ike`. Who we are, how we sign, how
//! SAs follow our addresses, and our peers with their CHILD_SAs.
//!
//! Scalars are checked as they are read ([`Checked`]), so a bad selector,
//! address or transform is reported at its own line and column, like a
//! mistyped key. [`IkeFile::build`] checks the rest (key files, names used
//! twice, what the reader's [`Role`] allows) and names the field, and
//! fills in the CHILD_SAs a daemon's peers need when the file gives none:
//! RFC 4877's pair between a home address and its home agent
//! ([`home_children`]), and draft-dupont-mipv6-cn-ipsec §5's child between
//! a home address and a correspondent ([`correspondent_child`]).
//! Commented examples: config/mn-ike.yaml, config/ha-ike.yaml,
//! config/cn-ike.yaml, testbed/examples/ike-peer.yaml.

use std::fmt;
use std::fs;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use super::daemon::FieldError;
use crate::ike::crypto::{ed25519_private_from_pem, ed25519_public_from_pem, Encr};
use crate::ike::{
    ChildConfig, Identity, IkeConfig, Mobility, NatTraversal, PeerAuth, PeerConfig, TsSpec,
    IKE_PORT,
};
use crate::ipsec::{Lifetime, Mode, PortRange, Prefix};
use crate::node::RouteOptimisation;
use crate::time::Duration;
use crate::wire::mh::MhType;

/// A scalar checked as it is read, kept as written (what a reload
/// compares) beside its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked<T> {
    pub text: String,
    pub value: T,
}

/// How a [`Checked`] scalar reads.
pub trait Scalar: Sized {
    /// What a wrong type is told was expected.
    const EXPECTING: &'static str;
    fn parse(s: &str) -> Result<Self, String>;
}

impl<'de, T: Scalar> Deserialize<'de> for Checked<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<T: Scalar> Visitor<'_> for V<T> {
            type Value = Checked<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(T::EXPECTING)
            }
            // Failing here, inside the scalar, is what puts the scalar's
            // own position and field in the message.
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Checked<T>, E> {
                T::parse(s)
                    .map(|value| Checked {
                        text: s.to_string(),
                        value,
                    })
                    .map_err(E::custom)
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

impl<T> Serialize for Checked<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl Scalar for Encr {
    const EXPECTING: &'static str = "aes128gcm16, aes256gcm16 or chacha20poly1305";
    fn parse(s: &str) -> Result<Encr, String> {
        Encr::from_keyword(s).ok_or_else(|| format!("unknown {s:?} ({})", Self::EXPECTING))
    }
}

impl Scalar for Prefix {
    const EXPECTING: &'static str = "an address or prefix such as 2001:db8::/32";
    fn parse(s: &str) -> Result<Prefix, String> {
        s.parse()
    }
}

/// `[2001:db8::1]:500`, `192.0.2.1:4500`, or an address alone (port 500).
impl Scalar for SocketAddr {
    const EXPECTING: &'static str = "an address or [address]:port";
    fn parse(s: &str) -> Result<SocketAddr, String> {
        s.parse::<SocketAddr>()
            .or_else(|_| s.parse::<IpAddr>().map(|a| SocketAddr::new(a, IKE_PORT)))
            .map_err(|_| format!("{s:?}: not an address or [address]:port"))
    }
}

/// swanctl's syntax: `2001:db8::/32` or `dynamic` (the IKE address in
/// use), either with `[PROTO]` or `[PROTO/PORTS]` after it: an IP protocol
/// number, then a port or a range `LOW-HIGH`. For the Mobility Header the
/// ports carry the type in their high octet: BU and BA are
/// `[135/1280-1791]`.
impl Scalar for TsSpec {
    const EXPECTING: &'static str =
        "a prefix or dynamic, with [PROTO] or [PROTO/PORTS] after it or not";
    fn parse(s: &str) -> Result<TsSpec, String> {
        let (what, protocol, ports) = match s.strip_suffix(']').and_then(|t| t.split_once('[')) {
            Some((what, inner)) => {
                let (protocol, ports) = inner.split_once('/').unwrap_or((inner, "0-65535"));
                let protocol = protocol
                    .parse::<u8>()
                    .map_err(|_| format!("{s:?}: the protocol in [] must be a number 0-255"))?;
                let ports = port_range(ports).ok_or_else(|| {
                    format!("{s:?}: the ports after / must be N or LOW-HIGH, 0-65535, LOW <= HIGH")
                })?;
                (what, protocol, ports)
            }
            None => (s, 0, PortRange::ANY),
        };
        let prefix = match what {
            "dynamic" => None,
            p => Some(p.parse::<Prefix>()?),
        };
        Ok(TsSpec {
            prefix,
            protocol,
            ports,
        })
    }
}

fn port_range(s: &str) -> Option<PortRange> {
    let (low, high) = s.split_once('-').unwrap_or((s, s));
    let (low, high) = (low.parse().ok()?, high.parse().ok()?);
    (low <= high).then_some(PortRange { low, high })
}

/// An identity's name: never an address (REQ AM-2.1c, CN-5.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(pub String);

impl Scalar for Name {
    const EXPECTING: &'static str = "a name";
    fn parse(s: &str) -> Result<Name, String> {
        if s.is_empty() || s.parse::<IpAddr>().is_ok() {
            return Err(format!("{s:?}: an identity is a name, never an address"));
        }
        Ok(Name(s.to_string()))
    }
}

/// `{ fqdn: NAME }` (ID_FQDN) or `{ email: ADDRESS }` (ID_RFC822_ADDR).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdFile(pub Identity);

impl<'de> Deserialize<'de> for IdFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IdFile;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("{ fqdn: NAME } or { email: ADDRESS }")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<IdFile, A::Error> {
                const KEYS: &[&str] = &["fqdn", "email"];
                let Some(key) = m.next_key::<String>()? else {
                    return Err(de::Error::custom("give one of fqdn and email"));
                };
                let name: Checked<Name> = m.next_value()?;
                let id = match key.as_str() {
                    "fqdn" => Identity::Fqdn(name.value.0),
                    "email" => Identity::Rfc822(name.value.0),
                    other => return Err(de::Error::unknown_field(other, KEYS)),
                };
                if m.next_key::<String>()?.is_some() {
                    return Err(de::Error::custom("give only one of fqdn and email"));
                }
                Ok(IdFile(id))
            }
        }
        d.deserialize_map(V)
    }
}

impl Serialize for IdFile {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (key, name) = match &self.0 {
            Identity::Fqdn(n) => ("fqdn", n),
            Identity::Rfc822(n) => ("email", n),
        };
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(key, name)?;
        m.end()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MobilityFile {
    /// RFC 4555.
    #[default]
    Mobike,
    /// draft-smyslov-ipsecme-ikev2-r-mobike.
    RMobike,
    /// draft-dupont-ikev2-addrmgmt.
    Addrmgmt,
    Off,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NatFile {
    /// NAT detection over IPv4 only (REQ AM-2.1d).
    #[default]
    Auto,
    On,
    Off,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeFile {
    #[default]
    Tunnel,
    Transport,
}

/// The `ike:` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IkeFile {
    pub id: IdFile,
    /// PKCS#8 PEM (`openssl genpkey -algorithm ed25519`), relative to the
    /// file; needed by peers that authenticate with `ed25519_pubkey`.
    pub ed25519_key: Option<PathBuf>,
    #[serde(default)]
    pub mobility: MobilityFile,
    /// draft-arora alternate tunnel addresses.
    #[serde(default)]
    pub tunnel_addresses: bool,
    #[serde(default)]
    pub nat_traversal: NatFile,
    /// Check that the peer answers at a new address before moving SAs.
    #[serde(default = "yes")]
    pub return_routability: bool,
    /// IKE SA transforms, preferred first (default: all three).
    pub proposals: Option<Vec<Checked<Encr>>>,
    #[serde(default)]
    pub peers: Vec<PeerFile>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerFile {
    pub name: String,
    pub id: IdFile,
    /// A secret shared with the peer, or...
    pub psk: Option<String>,
    /// ...the peer's SubjectPublicKeyInfo PEM (`openssl pkey -pubout`).
    pub ed25519_pubkey: Option<PathBuf>,
    /// Where the peer is reached, preferred first; an initiator starts at
    /// the first.
    #[serde(default)]
    pub addresses: Vec<Checked<SocketAddr>>,
    /// The first comes with IKE_AUTH, the others by CREATE_CHILD_SA;
    /// without them a daemon builds what its role needs.
    pub children: Option<Vec<ChildFile>>,
    /// A home agent's or correspondent's peer that is a mobile node: its
    /// home address, for the children built for it.
    pub home_address: Option<Ipv6Addr>,
    /// A mobile node's home agent peer: RFC 4877's tunnel-mode child for
    /// what goes through the home agent, beside the one for BU and BA
    /// (default true).
    pub payload: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChildFile {
    pub name: String,
    #[serde(default)]
    pub mode: ModeFile,
    pub local_ts: Checked<TsSpec>,
    pub remote_ts: Checked<TsSpec>,
    pub esp_proposals: Option<Vec<Checked<Encr>>>,
    /// Our outer tunnel address, when it is not the IKE address.
    pub tunnel_address: Option<IpAddr>,
    /// Rekey after this many seconds; the SA expires 10 % later.
    pub lifetime: Option<NonZeroU64>,
    /// X25519 in CREATE_CHILD_SA, ours and the peer's (default false: we
    /// still answer a peer that asks for it).
    pub pfs: Option<bool>,
}

/// Who reads the section: what its peers may say, and what a peer
/// without `children` gets.
#[derive(Debug, Clone, Copy)]
pub enum Role<'a> {
    /// `testbed ike`: children as written.
    Peer,
    /// Peers are the home agent (at its address: RFC 4877's children)
    /// and correspondents (at theirs: pinned to the home address, REQ
    /// CN-5.1, with §5's child when the mode is `ipsec`).
    MobileNode {
        home_address: Ipv6Addr,
        home_agent: Ipv6Addr,
        correspondents: &'a [(Ipv6Addr, RouteOptimisation)],
    },
    /// Peers are mobile nodes it serves, each by its home address.
    HomeAgent {
        address: Ipv6Addr,
        home_prefix: Ipv6Addr,
        mobile_nodes: &'a [Ipv6Addr],
    },
    /// Peers are mobile nodes, each by its home address.
    Correspondent { address: Ipv6Addr },
}

fn host(a: Ipv6Addr) -> Prefix {
    Prefix::host(IpAddr::V6(a))
}

/// The Mobility Header with BU or BA only: what RFC 4877 protects in
/// transport mode (its SPD examples: MH, BU out, BAck in), and what a
/// correspondent needs (REQ CN-5.5); HoTI/HoT go in the tunnel.
fn bu_ba(p: Prefix) -> TsSpec {
    TsSpec::prefix(p).mh_types(u8::from(MhType::BindingUpdate)..=u8::from(MhType::BindingAck))
}

/// RFC 4877's CHILD_SAs between a mobile node's home address and its
/// home agent, from the mobile node's side (`mn_side`) or the agent's:
/// `home-signalling`, transport mode, for BU and BA between the two; with
/// `payload`, `home-payload`, tunnel mode, for everything from the home
/// address.
pub fn home_children(
    home_address: Ipv6Addr,
    agent: Ipv6Addr,
    mn_side: bool,
    payload: bool,
) -> Vec<ChildConfig> {
    let (mn, ha) = (host(home_address), host(agent));
    let swap = |a, b| if mn_side { (a, b) } else { (b, a) };
    let (l, r) = swap(mn, ha);
    let mut c = vec![ChildConfig::new(
        "home-signalling",
        Mode::Transport,
        bu_ba(l),
        bu_ba(r),
    )];
    if payload {
        let (l, r) = swap(mn, Prefix::ANY);
        c.push(ChildConfig::new(
            "home-payload",
            Mode::Tunnel,
            TsSpec::prefix(l),
            TsSpec::prefix(r),
        ));
    }
    c
}

/// The CHILD_SA between a home address and a correspondent, from `local`'s
/// side (draft-dupont-mipv6-cn-ipsec §5): transport mode, for BU and BA
/// only (`signalling`, REQ CN-5.5) or everything.
pub fn correspondent_child(local: Ipv6Addr, remote: Ipv6Addr, signalling: bool) -> ChildConfig {
    let ts = |a| {
        if signalling {
            bu_ba(host(a))
        } else {
            TsSpec::prefix(host(a))
        }
    };
    ChildConfig::new("cn-signalling", Mode::Transport, ts(local), ts(remote))
}

impl IkeFile {
    /// The engine's configuration, for `role`; key files are relative to
    /// `base`. A mistake names its field under `ike.`.
    pub fn build(
        &self,
        role: Role<'_>,
        base: &Path,
        seed: [u8; 32],
    ) -> Result<IkeConfig, FieldError> {
        let mut ike = IkeConfig::new(self.id.0.clone(), 0);
        ike.seed = seed;
        if let Some(key) = &self.ed25519_key {
            let pem = read_key(base, key, "ike.ed25519_key")?;
            let key =
                ed25519_private_from_pem(&pem).map_err(|e| bad_file("ike.ed25519_key", key, e))?;
            ike.signing_key = Some(key);
        }
        ike.mobility = match self.mobility {
            MobilityFile::Mobike => Mobility::Mobike { r_mobike: false },
            MobilityFile::RMobike => Mobility::Mobike { r_mobike: true },
            MobilityFile::Addrmgmt => Mobility::AddrMgmt,
            MobilityFile::Off => Mobility::Off,
        };
        ike.tunnel_addresses = self.tunnel_addresses;
        ike.nat_traversal = match self.nat_traversal {
            NatFile::Auto => NatTraversal::Auto,
            NatFile::On => NatTraversal::On,
            NatFile::Off => NatTraversal::Off,
        };
        ike.return_routability = self.return_routability;
        if let Some(p) = &self.proposals {
            ike.proposals = proposals(p, "ike.proposals")?;
        }
        if let Role::HomeAgent { home_prefix, .. } = role {
            // The signalling child's home-address selector while IKE runs
            // on a care-of address (RFC 4877 §4.4).
            ike.proxy_policy.push(Prefix {
                addr: IpAddr::V6(home_prefix),
                len: 64,
            });
        }
        for (i, p) in self.peers.iter().enumerate() {
            let at = format!("ike.peers[{i}]");
            if self.peers[..i].iter().any(|q| q.name == p.name) {
                return Err(FieldError::new(
                    format!("{at}.name"),
                    Some(p.name.clone()),
                    format!("{:?} is used twice", p.name),
                ));
            }
            let peer = p.build(role, &at, base)?;
            if let (PeerAuth::Ed25519(_), None, Some(key)) =
                (&peer.auth, &ike.signing_key, &p.ed25519_pubkey)
            {
                return Err(FieldError::new(
                    format!("{at}.ed25519_pubkey"),
                    Some(key.display().to_string()),
                    "needs our own ike.ed25519_key to sign with",
                ));
            }
            ike.peers.push(peer);
        }
        Ok(ike)
    }
}

impl PeerFile {
    /// What finds the peer's line, for a mistake in a key it lacks.
    fn needle(&self) -> String {
        format!("name: {}", self.name)
    }

    fn build(&self, role: Role<'_>, at: &str, base: &Path) -> Result<PeerConfig, FieldError> {
        let field = |f: &str| format!("{at}.{f}");
        let auth = match (&self.psk, &self.ed25519_pubkey) {
            (Some(psk), None) if !psk.is_empty() => PeerAuth::Psk(psk.as_bytes().to_vec()),
            (None, Some(key)) => {
                let pem = read_key(base, key, &field("ed25519_pubkey"))?;
                PeerAuth::Ed25519(
                    ed25519_public_from_pem(&pem)
                        .map_err(|e| bad_file(&field("ed25519_pubkey"), key, e))?,
                )
            }
            _ => {
                return Err(FieldError::new(
                    at.to_string(),
                    Some(self.needle()),
                    "give exactly one of psk (not empty) and ed25519_pubkey",
                ))
            }
        };
        let addresses: Vec<SocketAddr> = self.addresses.iter().map(|a| a.value).collect();
        let written = match &self.children {
            Some(list) => {
                let mut children = Vec::new();
                for (i, c) in list.iter().enumerate() {
                    let at = format!("{at}.children[{i}]");
                    if list[..i].iter().any(|d| d.name == c.name) {
                        return Err(FieldError::new(
                            format!("{at}.name"),
                            Some(c.name.clone()),
                            format!("{:?} is used twice", c.name),
                        ));
                    }
                    children.push(c.build(&at)?);
                }
                Some(children)
            }
            None => None,
        };
        let (children, local) = self.for_role(role, at, &addresses, written)?;
        Ok(PeerConfig {
            name: self.name.clone(),
            id: self.id.0.clone(),
            auth,
            addresses,
            children,
            local,
        })
    }

    /// The children and pinned address `role` gives this peer.
    fn for_role(
        &self,
        role: Role<'_>,
        at: &str,
        addresses: &[SocketAddr],
        written: Option<Vec<ChildConfig>>,
    ) -> Result<(Vec<ChildConfig>, Option<IpAddr>), FieldError> {
        let refuse = |f: &str, value: Option<String>, why: &str| {
            Err(FieldError::new(format!("{at}.{f}"), value, why))
        };
        let home = self.home_address.map(|h| h.to_string());
        match role {
            Role::Peer => {
                if self.home_address.is_some() {
                    return refuse("home_address", home, "only a daemon's peers have one");
                }
                if self.payload.is_some() {
                    return refuse(
                        "payload",
                        None,
                        "only a mobile node's home agent peer has one",
                    );
                }
                Ok((written.unwrap_or_default(), None))
            }
            Role::MobileNode {
                home_address,
                home_agent,
                correspondents,
            } => {
                if self.home_address.is_some() {
                    return refuse(
                        "home_address",
                        home,
                        "a mobile node's peers are its home agent and correspondents, at their addresses",
                    );
                }
                let at_ip = |a: Ipv6Addr| addresses.iter().any(|s| s.ip() == IpAddr::V6(a));
                if addresses.is_empty() {
                    return refuse(
                        "addresses",
                        Some(self.needle()),
                        &format!("give the peer's address: the home agent's ({home_agent}) or a correspondent's"),
                    );
                }
                if at_ip(home_agent) {
                    return match (written, self.payload) {
                        (Some(_), Some(_)) => refuse(
                            "payload",
                            None,
                            "only without children (it picks RFC 4877's)",
                        ),
                        (Some(c), None) => Ok((c, None)),
                        (None, payload) => Ok((
                            home_children(home_address, home_agent, true, payload.unwrap_or(true)),
                            None,
                        )),
                    };
                }
                if self.payload.is_some() {
                    return refuse("payload", None, "only the home agent's peer has one");
                }
                let Some((cn, mode)) = correspondents.iter().find(|(c, _)| at_ip(*c)) else {
                    let a = &self.addresses[0].text;
                    return refuse(
                        "addresses",
                        Some(a.clone()),
                        &format!(
                            "{a} is neither the home agent ({home_agent}) nor a correspondent"
                        ),
                    );
                };
                // IKE with a correspondent runs over the home address,
                // which no handoff moves (REQ CN-5.1).
                let pinned = Some(IpAddr::V6(home_address));
                match (written, mode) {
                    (Some(c), _) => Ok((c, pinned)),
                    (None, RouteOptimisation::Ipsec) => Ok((
                        vec![correspondent_child(home_address, *cn, true)],
                        pinned,
                    )),
                    (None, _) => refuse(
                        "children",
                        Some(self.needle()),
                        &format!("give them: only a correspondent with mode ipsec has a default, and {cn} has another"),
                    ),
                }
            }
            Role::HomeAgent {
                address,
                mobile_nodes,
                ..
            } => {
                if let Some(h) = self.home_address {
                    if !mobile_nodes.contains(&h) {
                        return refuse(
                            "home_address",
                            home,
                            &format!("{h} is not one of mobile_nodes"),
                        );
                    }
                }
                self.answering(at, written, |h| home_children(h, address, false, true))
                    .map(|c| (c, None))
            }
            Role::Correspondent { address } => self
                .answering(at, written, |h| vec![correspondent_child(address, h, true)])
                .map(|c| (c, None)),
        }
    }

    /// A responder's peer, a mobile node: children from its home address
    /// or as written.
    fn answering(
        &self,
        at: &str,
        written: Option<Vec<ChildConfig>>,
        built: impl Fn(Ipv6Addr) -> Vec<ChildConfig>,
    ) -> Result<Vec<ChildConfig>, FieldError> {
        let refuse = |f: &str, value: Option<String>, why: &str| {
            Err(FieldError::new(format!("{at}.{f}"), value, why))
        };
        if let Some(a) = self.addresses.first() {
            return refuse(
                "addresses",
                Some(a.text.clone()),
                "a mobile node starts IKE, from wherever it is: give its home_address instead",
            );
        }
        if self.payload.is_some() {
            return refuse(
                "payload",
                None,
                "only a mobile node's home agent peer has one",
            );
        }
        match (self.home_address, written) {
            (Some(h), None) => Ok(built(h)),
            (None, Some(c)) => Ok(c),
            (Some(h), Some(_)) => refuse(
                "children",
                None,
                &format!("give home_address ({h}) or children, not both"),
            ),
            (None, None) => refuse(
                "home_address",
                Some(self.needle()),
                "give the mobile node's home address (or children)",
            ),
        }
    }
}

impl ChildFile {
    fn build(&self, at: &str) -> Result<ChildConfig, FieldError> {
        let mode = match self.mode {
            ModeFile::Tunnel => Mode::Tunnel,
            ModeFile::Transport => Mode::Transport,
        };
        let mut child =
            ChildConfig::new(&self.name, mode, self.local_ts.value, self.remote_ts.value);
        if let Some(p) = &self.esp_proposals {
            child.proposals = proposals(p, &format!("{at}.esp_proposals"))?;
        }
        child.tunnel_address = self.tunnel_address;
        child.pfs = self.pfs.unwrap_or(false);
        if let Some(secs) = self.lifetime {
            let secs = secs.get();
            child.lifetime = Lifetime {
                soft_time: Some(Duration::from_secs(secs)),
                hard_time: Some(Duration::from_secs(secs + (secs / 10).max(1))),
                ..Lifetime::default()
            };
        }
        Ok(child)
    }
}

fn proposals(list: &[Checked<Encr>], at: &str) -> Result<Vec<Encr>, FieldError> {
    if list.is_empty() {
        return Err(FieldError::new(at.to_string(), None, "give at least one"));
    }
    Ok(list.iter().map(|e| e.value).collect())
}

fn read_key(base: &Path, path: &Path, at: &str) -> Result<String, FieldError> {
    let full = base.join(path);
    fs::read_to_string(&full).map_err(|e| {
        FieldError::new(
            at.to_string(),
            Some(path.display().to_string()),
            format!("{}: {e}", full.display()),
        )
    })
}

fn bad_file(at: &str, path: &Path, e: impl fmt::Display) -> FieldError {
    FieldError::new(
        at.to_string(),
        Some(path.display().to_string()),
        format!("{}: {e}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x100);
    const HA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
    const CN: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 1);
    const HOME_PREFIX: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0);

    fn section(peers: &str) -> IkeFile {
        let text = format!("id: {{ fqdn: us.example }}\npeers:\n{peers}");
        serde_yaml_ng::from_str(&text).unwrap()
    }

    fn build(peers: &str, role: Role<'_>) -> Result<IkeConfig, FieldError> {
        section(peers).build(role, Path::new("."), [7; 32])
    }

    fn mobile_node(mode: RouteOptimisation) -> Role<'static> {
        let correspondents: &'static [(Ipv6Addr, RouteOptimisation)] = match mode {
            RouteOptimisation::Ipsec => &[(CN, RouteOptimisation::Ipsec)],
            _ => &[(CN, RouteOptimisation::ReturnRoutability)],
        };
        Role::MobileNode {
            home_address: HOA,
            home_agent: HA,
            correspondents,
        }
    }

    /// (name, transport?, local, remote) of each child, selectors as
    /// swanctl writes them.
    fn children(p: &PeerConfig) -> Vec<(String, bool, String, String)> {
        let ts = |t: &TsSpec| {
            let p = t.prefix.map_or("dynamic".to_string(), |p| p.to_string());
            match (t.protocol, t.ports == PortRange::ANY) {
                (0, _) => p,
                (proto, true) => format!("{p}[{proto}]"),
                (proto, false) => format!("{p}[{proto}/{}-{}]", t.ports.low, t.ports.high),
            }
        };
        p.children
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    c.mode == Mode::Transport,
                    ts(&c.local_ts),
                    ts(&c.remote_ts),
                )
            })
            .collect()
    }

    fn child(name: &str, transport: bool, l: &str, r: &str) -> (String, bool, String, String) {
        (name.into(), transport, l.into(), r.into())
    }

    const HA_PEER: &str =
        "  - { name: ha, id: { fqdn: ha.example }, psk: s, addresses: [2001:db8:1::1] }\n";
    const CN_PEER: &str =
        "  - { name: cn, id: { email: cn@example.org }, psk: t, addresses: [\"[2001:db8:3::1]:500\"] }\n";

    // REQ MIP-HA-IPSEC
    // REQ CN-5.1
    #[test]
    fn a_mobile_node_gets_rfc_4877s_children_and_a_pinned_correspondent() {
        let ike = build(
            &format!("{HA_PEER}{CN_PEER}"),
            mobile_node(RouteOptimisation::Ipsec),
        )
        .unwrap();
        assert_eq!(ike.seed, [7; 32]);
        let (ha, cn) = (&ike.peers[0], &ike.peers[1]);
        assert_eq!(ha.addresses, ["[2001:db8:1::1]:500".parse().unwrap()]);
        assert_eq!(
            ha.local, None,
            "the home agent's SA follows the care-of address"
        );
        assert_eq!(
            children(ha),
            [
                child(
                    "home-signalling",
                    true,
                    "2001:db8:1::100/128[135/1280-1791]",
                    "2001:db8:1::1/128[135/1280-1791]"
                ),
                child("home-payload", false, "2001:db8:1::100/128", "::/0"),
            ]
        );
        assert_eq!(cn.id, Identity::Rfc822("cn@example.org".into()));
        assert_eq!(cn.local, Some(IpAddr::V6(HOA)));
        assert_eq!(
            children(cn),
            [child(
                "cn-signalling",
                true,
                "2001:db8:1::100/128[135/1280-1791]",
                "2001:db8:3::1/128[135/1280-1791]"
            )]
        );
        let no_payload = HA_PEER.replace("psk: s,", "psk: s, payload: false,");
        let ike = build(&no_payload, mobile_node(RouteOptimisation::Ipsec)).unwrap();
        assert_eq!(children(&ike.peers[0]).len(), 1);
    }

    // REQ MIP-HA-IPSEC
    #[test]
    fn a_home_agent_answers_each_mobile_node_for_its_home_address() {
        let role = Role::HomeAgent {
            address: HA,
            home_prefix: HOME_PREFIX,
            mobile_nodes: &[HOA],
        };
        let peer =
            "  - { name: mn, id: { fqdn: mn.example }, psk: s, home_address: 2001:db8:1::100 }\n";
        let ike = build(peer, role).unwrap();
        assert_eq!(ike.proxy_policy, ["2001:db8:1::/64".parse().unwrap()]);
        assert_eq!(
            children(&ike.peers[0]),
            [
                child(
                    "home-signalling",
                    true,
                    "2001:db8:1::1/128[135/1280-1791]",
                    "2001:db8:1::100/128[135/1280-1791]"
                ),
                child("home-payload", false, "::/0", "2001:db8:1::100/128"),
            ]
        );
        let stranger = peer.replace("::100", "::200");
        let e = build(&stranger, role).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.value.as_deref()),
            ("ike.peers[0].home_address", Some("2001:db8:1::200"))
        );
    }

    // REQ CN-5.1
    #[test]
    fn a_correspondent_answers_each_mobile_node_over_its_home_address() {
        let peer =
            "  - { name: mn, id: { fqdn: mn.example }, psk: s, home_address: 2001:db8:1::100 }\n";
        let ike = build(peer, Role::Correspondent { address: CN }).unwrap();
        assert!(ike.proxy_policy.is_empty());
        assert_eq!(
            children(&ike.peers[0]),
            [child(
                "cn-signalling",
                true,
                "2001:db8:3::1/128[135/1280-1791]",
                "2001:db8:1::100/128[135/1280-1791]"
            )]
        );
    }

    #[test]
    fn what_a_role_does_not_allow_names_the_field() {
        let cases: [(&str, Role<'_>, &str, &str); 7] = [
            (
                CN_PEER,
                mobile_node(RouteOptimisation::ReturnRoutability),
                "ike.peers[0].children",
                "only a correspondent with mode ipsec",
            ),
            (
                "  - { name: x, id: { fqdn: x }, psk: s, addresses: [2001:db8:9::1] }\n",
                mobile_node(RouteOptimisation::Ipsec),
                "ike.peers[0].addresses",
                "neither the home agent",
            ),
            (
                "  - { name: x, id: { fqdn: x }, psk: s }\n",
                mobile_node(RouteOptimisation::Ipsec),
                "ike.peers[0].addresses",
                "give the peer's address",
            ),
            (
                &CN_PEER.replace("psk: t,", "psk: t, payload: true,"),
                mobile_node(RouteOptimisation::Ipsec),
                "ike.peers[0].payload",
                "only the home agent's peer",
            ),
            (
                "  - { name: mn, id: { fqdn: mn }, psk: s, addresses: [2001:db8:1::100] }\n",
                Role::Correspondent { address: CN },
                "ike.peers[0].addresses",
                "a mobile node starts IKE",
            ),
            (
                "  - { name: mn, id: { fqdn: mn }, psk: s, home_address: 2001:db8:1::100 }\n",
                Role::Peer,
                "ike.peers[0].home_address",
                "only a daemon's peers",
            ),
            (
                &format!("{HA_PEER}{HA_PEER}"),
                mobile_node(RouteOptimisation::Ipsec),
                "ike.peers[1].name",
                "used twice",
            ),
        ];
        for (peers, role, field, why) in cases {
            let e = build(peers, role).unwrap_err();
            assert_eq!(e.field, field, "{peers}: {e:?}");
            assert!(e.message.contains(why), "{peers}: {e:?}");
        }
    }

    #[test]
    fn a_section_reads_back_as_written() {
        let s = section(&format!("{HA_PEER}{CN_PEER}"));
        let again: IkeFile =
            serde_yaml_ng::from_str(&serde_yaml_ng::to_string(&s).unwrap()).unwrap();
        assert_eq!(again, s);
    }
}
