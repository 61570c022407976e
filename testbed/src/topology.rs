//! The demo topology: a home link with the home agent, a correspondent
//! on its own link, two access networks and one router joining them, the
//! addresses on them, and the SA pairs the nodes start with. [`build`] puts
//! it into a [`Sim`]; the demo and the scenario tests run on it.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use common::ike::{Identity, IkeConfig, Mobility, PeerAuth, PeerConfig};
use common::io::ike_file::{correspondent_child, home_children};
use common::ipsec::{
    Action, AddressPair, Algorithm, EspCipher, EspKeyring, Ipsec, Lifetime, Mode, Prefix, SaKeys,
    SaPairSpec, Selector,
};
use common::keylog::{esp_row_for, KeyTable};
use common::node::{Cn, CnConfig, Correspondent, Ha, HaConfig, Mn, MnConfig, RouteOptimisation};
use common::time::{Duration, Instant};
use common::wire::MhType;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::sim::{LinkId, LinkParams, NodeId, Role, Sim};

pub const HOME_PREFIX: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0);
pub const HA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
pub const HOA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x100);
pub const ACCESS_A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0);
pub const CN_PREFIX: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 0);
pub const CN: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 1);
pub const ACCESS_B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 4, 0, 0, 0, 0, 0);

/// Which SA pair the mobile node and the correspondent share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CnSa {
    None,
    /// BU and BA only: the suitable pair of §2 (and CN-5.5's default).
    Signalling,
    /// Everything between the home address and the correspondent.
    All,
}

/// How the mobile node and the home agent get their SAs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keying {
    /// Static keys, installed at the start.
    Static,
    /// IKEv2 with a pre-shared key (RFC 4877): a transport-mode CHILD_SA
    /// for BU and BA with home-address selectors, and with `payload` a
    /// tunnel-mode one for what goes through the home agent; the IKE SA
    /// follows the care-of address by `mobility`.
    Ike { mobility: Mobility, payload: bool },
}

/// What to build.
#[derive(Debug, Clone)]
pub struct Setup {
    pub seed: u64,
    pub mode: RouteOptimisation,
    pub cn_sa: CnSa,
    pub keying: Keying,
    pub home_delay: Duration,
    pub cn_delay: Duration,
    pub access_delay: Duration,
    pub mn: MnConfig,
    pub cn: CnConfig,
    pub ha: HaConfig,
    /// Hard lifetime of every SA.
    pub sa_lifetime: Duration,
}

impl Setup {
    pub fn new(seed: u64, mode: RouteOptimisation) -> Self {
        let mut mn = MnConfig::new(HOA, HA, seed ^ 1);
        mn.correspondents = vec![Correspondent { address: CN, mode }];
        let mut ha = HaConfig::new(HA, vec![HOA], seed ^ 2);
        ha.home_prefix = HOME_PREFIX;
        let cn_sa = match mode {
            RouteOptimisation::Ipsec => CnSa::Signalling,
            RouteOptimisation::Triangular => CnSa::All,
            _ => CnSa::None,
        };
        Setup {
            seed,
            mode,
            cn_sa,
            keying: Keying::Static,
            home_delay: Duration::from_millis(30),
            cn_delay: Duration::from_millis(20),
            access_delay: Duration::from_micros(200),
            mn,
            cn: CnConfig::new(CN, seed ^ 3),
            ha,
            sa_lifetime: Duration::from_secs(3600),
        }
    }

    /// Round trips from the link delays: MN↔CN, MN↔HA, and MN→HA→CN→HA→MN.
    pub fn rtts(&self) -> (Duration, Duration, Duration) {
        let mn_cn = (self.access_delay + self.cn_delay) * 2;
        let mn_ha = (self.access_delay + self.home_delay) * 2;
        let via_ha = mn_ha + (self.home_delay + self.cn_delay) * 2;
        (mn_cn, mn_ha, via_ha)
    }
}

/// A link to build; every link is captured.
#[derive(Debug, Clone)]
pub struct LinkSpec {
    pub name: String,
    pub prefix: Ipv6Addr,
    pub params: LinkParams,
}

/// A correspondent to build: its link (an index into
/// [`Network::links`]), its engine, and the pair it shares with the
/// mobile node.
#[derive(Debug, Clone)]
pub struct CnSpec {
    pub name: String,
    pub link: usize,
    pub config: CnConfig,
    pub sa: CnSa,
}

/// Any network of the demo's kind: links, one router on all of them, a
/// home agent, correspondents and one mobile node. [`build_network`]
/// puts it into a [`Sim`]; [`Setup::network`] is the demo's.
#[derive(Debug, Clone)]
pub struct Network {
    pub seed: u64,
    pub links: Vec<LinkSpec>,
    pub ra_interval: Duration,
    pub ha_link: usize,
    pub ha: HaConfig,
    pub cns: Vec<CnSpec>,
    /// The link of each of the mobile node's interfaces, by interface
    /// number (one per link it visits); it starts on the first.
    pub mn_links: Vec<usize>,
    pub mn: MnConfig,
    pub keying: Keying,
    /// Hard lifetime of every SA.
    pub sa_lifetime: Duration,
}

/// Where [`build_network`] put each part of a [`Network`] (the same
/// order: `links[i]` is `Network::links[i]`).
#[derive(Debug, Clone)]
pub struct Layout {
    pub links: Vec<LinkId>,
    pub router: NodeId,
    pub ha: NodeId,
    pub cns: Vec<NodeId>,
    pub mn: NodeId,
    /// The link of each of the mobile node's interfaces.
    pub mn_links: Vec<LinkId>,
}

#[derive(Clone)]
pub struct Topology {
    pub sim: Sim,
    pub router: NodeId,
    pub mn: NodeId,
    pub ha: NodeId,
    pub cn: NodeId,
    pub home: LinkId,
    pub cn_link: LinkId,
    pub access_a: LinkId,
    pub access_b: LinkId,
    /// Every SA key of the run, to open captured ESP (`decode_with`).
    pub keyring: EspKeyring,
    /// What was built, and where.
    pub network: Network,
    pub layout: Layout,
}

/// The mobile node's interfaces: one per link it visits, as in the real
/// demo, where each is a veth whose carrier goes up and down.
pub const MN_HOME_IFACE: u8 = 0;
pub const MN_ACCESS_A_IFACE: u8 = 1;
pub const MN_ACCESS_B_IFACE: u8 = 2;

impl Topology {
    /// The mobile node's interface on `link`.
    pub fn mn_iface(&self, link: LinkId) -> Option<u8> {
        self.layout.mn_iface(link)
    }

    /// See [`Layout::move_mn`].
    pub fn move_mn(&mut self, at: Instant, to: Option<LinkId>) {
        self.layout.move_mn(&mut self.sim, at, to);
    }
}

impl Layout {
    /// The mobile node's interface on `link`.
    pub fn mn_iface(&self, link: LinkId) -> Option<u8> {
        let i = self.mn_links.iter().position(|l| *l == link)?;
        u8::try_from(i).ok()
    }

    /// At `at`, the mobile node loses carrier on every link but `to`, and
    /// gains it on `to` (break before make); `None`: on none.
    pub fn move_mn(&self, sim: &mut Sim, at: Instant, to: Option<LinkId>) {
        for (i, link) in self.mn_links.iter().enumerate() {
            if Some(*link) != to {
                sim.move_at(at, self.mn, i as u8, None);
            }
        }
        if let Some(i) = to.and_then(|l| self.mn_iface(l)) {
            sim.move_at(at, self.mn, i, to);
        }
    }
}

/// Installs a transport-mode pair between `a` and `b` on both sides, with
/// a protect policy for `selector` (from `a`'s side) on each.
#[allow(clippy::too_many_arguments, reason = "both ends of one pair")]
pub fn transport_pair(
    rng: &mut ChaCha20Rng,
    (keyring, keylog): (&mut EspKeyring, &mut Vec<(KeyTable, String)>),
    (ia, a): (&mut Ipsec, Ipv6Addr),
    (ib, b): (&mut Ipsec, Ipv6Addr),
    selector: Selector,
    spi: u32,
    lifetime: Duration,
) {
    let alg = Algorithm::Aes128Gcm16;
    let mut key = || {
        let mut k = vec![0u8; alg.key_len()];
        rng.fill_bytes(&mut k);
        k
    };
    let (ab, ba) = (key(), key());
    for (s, k) in [(spi, &ab), (spi + 1, &ba)] {
        if let Ok(c) = EspCipher::new(alg, k) {
            keyring.add(s, c);
        }
        keylog.extend(esp_row_for(true, s, alg, k).map(|r| (KeyTable::Esp, r)));
    }
    let mirrored = Selector {
        local: selector.remote,
        remote: selector.local,
        local_ports: selector.remote_ports,
        remote_ports: selector.local_ports,
        ..selector.clone()
    };
    let lifetime = Lifetime {
        hard_time: Some(lifetime),
        ..Lifetime::default()
    };
    for (ipsec, local, peer, sel, inbound, outbound) in [
        (ia, a, b, selector, (spi + 1, ba.clone()), (spi, ab.clone())),
        (ib, b, a, mirrored, (spi, ab), (spi + 1, ba)),
    ] {
        let mut spec = SaPairSpec::new(
            AddressPair {
                local: IpAddr::V6(local),
                peer: IpAddr::V6(peer),
            },
            Mode::Transport,
            alg,
            sel.clone(),
            SaKeys {
                spi: inbound.0,
                key: inbound.1,
            },
            SaKeys {
                spi: outbound.0,
                key: outbound.1,
            },
        );
        spec.lifetime = lifetime;
        // The SPIs are the run's own, distinct by construction.
        let _ = ipsec.add_protected_pair(Instant::ZERO, &spec);
    }
}

pub fn host(a: Ipv6Addr) -> Prefix {
    Prefix::host(IpAddr::V6(a))
}

pub const MN_ID: &str = "mn.example.org";
pub const HA_ID: &str = "ha.example.org";
pub const CN_ID: &str = "cn.example.org";
/// The demo's pre-shared key between the mobile node and the home agent.
pub const PSK: &[u8] = b"mip6 demo pre-shared key";

/// The IKE configurations of the mobile node and the home agent
/// (RFC 4877): the MN initiates with both children, the HA answers for
/// its home prefix, each child's selectors mirrored (the children the
/// daemons' `ike:` sections build, `common::io::ike_file`: BU and BA in
/// transport mode, the payload in the tunnel).
pub fn ike_configs(seed: u64, mobility: Mobility, payload: bool) -> (IkeConfig, IkeConfig) {
    let mut mn = IkeConfig::new(Identity::Fqdn(MN_ID.into()), seed ^ 0x696b_656d);
    mn.mobility = mobility;
    mn.peers.push(PeerConfig {
        name: "ha".into(),
        id: Identity::Fqdn(HA_ID.into()),
        auth: PeerAuth::Psk(PSK.to_vec()),
        addresses: vec![SocketAddr::new(IpAddr::V6(HA), common::ike::IKE_PORT)],
        children: home_children(HOA, HA, true, payload),
        local: None,
    });
    let mut ha = IkeConfig::new(Identity::Fqdn(HA_ID.into()), seed ^ 0x696b_6568);
    ha.mobility = mobility;
    // The signalling SA's home-address selector, with IKE on a care-of
    // address (RFC 4877 §4.4): the peer's child config pins its address.
    ha.proxy_policy.push(Prefix {
        addr: IpAddr::V6(HOME_PREFIX),
        len: 64,
    });
    ha.peers.push(PeerConfig {
        name: "mn".into(),
        id: Identity::Fqdn(MN_ID.into()),
        auth: PeerAuth::Psk(PSK.to_vec()),
        addresses: vec![],
        children: home_children(HOA, HA, false, payload),
        local: None,
    });
    (mn, ha)
}

/// The correspondent's side of IKE with the mobile node over its home
/// address (draft-dupont-mipv6-cn-ipsec §5) with name identities
/// (CN-5.3), and the mobile node's peer for it, pinned to the home
/// address (CN-5.1): one transport-mode CHILD_SA between the home address
/// and the correspondent, for BU and BA only (`signalling`, CN-5.5's
/// default with a pre-shared key) or for everything between the two.
pub fn cn_ike(seed: u64, signalling: bool) -> (PeerConfig, IkeConfig) {
    let peer = PeerConfig {
        name: "cn".into(),
        id: Identity::Fqdn(CN_ID.into()),
        auth: PeerAuth::Psk(PSK.to_vec()),
        addresses: vec![SocketAddr::new(IpAddr::V6(CN), common::ike::IKE_PORT)],
        children: vec![correspondent_child(HOA, CN, signalling)],
        local: Some(IpAddr::V6(HOA)),
    };
    let mut cn = IkeConfig::new(Identity::Fqdn(CN_ID.into()), seed ^ 0x696b_6563);
    cn.peers.push(PeerConfig {
        name: "mn".into(),
        id: Identity::Fqdn(MN_ID.into()),
        auth: PeerAuth::Psk(PSK.to_vec()),
        addresses: vec![],
        children: vec![correspondent_child(CN, HOA, signalling)],
        local: None,
    });
    (peer, cn)
}

impl Setup {
    /// The demo's network: the home link (the home agent's, and where the
    /// mobile node starts), the correspondent's link, access A and B.
    pub fn network(&self) -> Network {
        let link = |name: &str, prefix, delay| LinkSpec {
            name: name.into(),
            prefix,
            params: LinkParams::delay(delay),
        };
        Network {
            seed: self.seed,
            links: vec![
                link("home", HOME_PREFIX, self.home_delay),
                link("cn", CN_PREFIX, self.cn_delay),
                link("access-a", ACCESS_A, self.access_delay),
                link("access-b", ACCESS_B, self.access_delay),
            ],
            ra_interval: Duration::from_secs(1),
            ha_link: 0,
            ha: self.ha.clone(),
            cns: vec![CnSpec {
                name: "cn".into(),
                link: 1,
                config: self.cn.clone(),
                sa: self.cn_sa,
            }],
            mn_links: vec![0, 2, 3],
            mn: self.mn.clone(),
            keying: self.keying,
            sa_lifetime: self.sa_lifetime,
        }
    }
}

pub fn build(setup: &Setup) -> Topology {
    let network = setup.network();
    let (sim, layout, keyring) = build_network(&network);
    Topology {
        sim,
        router: layout.router,
        mn: layout.mn,
        ha: layout.ha,
        cn: layout.cns[0],
        home: layout.links[0],
        cn_link: layout.links[1],
        access_a: layout.links[2],
        access_b: layout.links[3],
        keyring,
        network,
        layout,
    }
}

/// Draws every static key of a run, in [`build_network`]'s order.
fn key_rng(net: &Network) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(net.seed ^ 0x6b65_7973)
}

/// IPsec that lets through what no policy covers.
fn bypassing_ipsec() -> Ipsec {
    let mut i = Ipsec::default();
    i.spd.fallback = Action::Bypass;
    i
}

/// The mobile node's and the home agent's configurations and IPsec for
/// `net`'s keying: the static pair for BU and BA (the first draws of
/// `keys`), or each side's IKE configuration.
fn home_keying(
    net: &Network,
    keys: &mut ChaCha20Rng,
    log: (&mut EspKeyring, &mut Vec<(KeyTable, String)>),
) -> (MnConfig, Ipsec, HaConfig, Ipsec) {
    let bu_ba = [MhType::BindingUpdate.into(), MhType::BindingAck.into()];
    let (mut mn_ipsec, mut ha_ipsec) = (bypassing_ipsec(), bypassing_ipsec());
    let (mut mn_cfg, mut ha_cfg) = (net.mn.clone(), net.ha.clone());
    let (hoa, ha_addr) = (mn_cfg.home_address, mn_cfg.home_agent);
    match net.keying {
        // RFC 3776: BU and BA between the home address and the home agent.
        Keying::Static => transport_pair(
            keys,
            log,
            (&mut mn_ipsec, hoa),
            (&mut ha_ipsec, ha_addr),
            Selector::mobility(host(hoa), host(ha_addr), &bu_ba),
            0x100,
            net.sa_lifetime,
        ),
        // Either side's own IKE configuration, if the setup has one, wins.
        Keying::Ike { mobility, payload } => {
            let (mn, ha) = ike_configs(net.seed, mobility, payload);
            mn_cfg.ike.get_or_insert(mn);
            ha_cfg.ike.get_or_insert(ha);
        }
    }
    (mn_cfg, mn_ipsec, ha_cfg, ha_ipsec)
}

/// The configuration and IPsec of correspondent `i` of `net`, and the
/// mobile node's side (`mn`): a static pair (the next draws of `keys`),
/// or each side's IKE configuration.
fn correspondent_keying(
    net: &Network,
    i: usize,
    keys: &mut ChaCha20Rng,
    log: (&mut EspKeyring, &mut Vec<(KeyTable, String)>),
    (mn_cfg, mn_ipsec): (&mut MnConfig, &mut Ipsec),
) -> (CnConfig, Ipsec) {
    let spec = &net.cns[i];
    let bu_ba = [MhType::BindingUpdate.into(), MhType::BindingAck.into()];
    let hoa = mn_cfg.home_address;
    let (mut cn_ipsec, mut cn_cfg) = (bypassing_ipsec(), spec.config.clone());
    let cn = cn_cfg.address;
    let selector = match spec.sa {
        CnSa::None => None,
        CnSa::Signalling => Some(Selector::mobility(host(hoa), host(cn), &bu_ba)),
        CnSa::All => Some(Selector::between(host(hoa), host(cn))),
    };
    if let (Keying::Ike { .. }, Some(_)) = (net.keying, &selector) {
        let signalling = spec.sa == CnSa::Signalling;
        let (peer, cn_ike) = cn_ike(net.seed, signalling);
        if let Some(ike) = mn_cfg.ike.as_mut() {
            if !ike.peers.iter().any(|p| p.addresses == peer.addresses) {
                ike.peers.push(peer);
            }
        }
        cn_cfg.ike.get_or_insert(cn_ike);
    } else if let Some(sel) = selector {
        transport_pair(
            keys,
            log,
            (mn_ipsec, hoa),
            (&mut cn_ipsec, cn),
            sel,
            0x200 + 0x100 * i as u32,
            net.sa_lifetime,
        );
    }
    (cn_cfg, cn_ipsec)
}

/// Another boot, other random choices: new seeds for an engine and its
/// IKE.
fn reseed(seed: &mut u64, ike: Option<&mut IkeConfig>, boot: u64) {
    *seed ^= boot.rotate_left(32);
    if let Some(ike) = ike {
        ike.seed[24..].copy_from_slice(&boot.to_le_bytes());
    }
}

/// The home agent of `net` after a restart that lost its state: the
/// same configuration and static keys (fresh sequence numbers and replay
/// windows), no bindings, no IKE SAs; `boot` changes the seeds of its
/// random choices (SPIs, nonces), as a real restart would.
pub fn restarted_home_agent(net: &Network, boot: u64) -> Ha {
    let (mut keyring, mut keylog) = (EspKeyring::default(), vec![]);
    let log = (&mut keyring, &mut keylog);
    let (_, _, mut cfg, ipsec) = home_keying(net, &mut key_rng(net), log);
    reseed(&mut cfg.seed, cfg.ike.as_mut(), boot);
    Ha::new(cfg, ipsec)
}

/// Correspondent `i` of `net` restarted at `now`, as
/// [`restarted_home_agent`]; `None` if it has no such correspondent.
pub fn restarted_correspondent(net: &Network, i: usize, boot: u64, now: Instant) -> Option<Cn> {
    let mut keys = key_rng(net);
    let (mut keyring, mut keylog) = (EspKeyring::default(), vec![]);
    let (mut mn, mut mn_ipsec, _, _) = home_keying(net, &mut keys, (&mut keyring, &mut keylog));
    let mut cn = None;
    // The keys of the ones before it come first.
    for j in 0..net.cns.len().min(i + 1) {
        let log = (&mut keyring, &mut keylog);
        cn = Some(correspondent_keying(
            net,
            j,
            &mut keys,
            log,
            (&mut mn, &mut mn_ipsec),
        ));
    }
    let (mut cfg, ipsec) = cn.filter(|_| i < net.cns.len())?;
    reseed(&mut cfg.seed, cfg.ike.as_mut(), boot);
    Some(Cn::new(cfg, ipsec, now))
}

/// Builds `net` in a new simulator: the static SA pairs (or the IKE
/// configurations), the links (each captured), the router, the home
/// agent, the correspondents and the mobile node, in that order, so a
/// seed gives the same run. Returns every static key too, to open
/// captured ESP. Link and correspondent indices must be in range, and IKE
/// runs at the demo's addresses ([`ike_configs`], [`cn_ike`] with the
/// correspondent at [`CN`]); the scenario reader checks both.
pub fn build_network(net: &Network) -> (Sim, Layout, EspKeyring) {
    let mut sim = Sim::new(net.seed);
    let mut keys = key_rng(net);
    let mut keyring = EspKeyring::default();
    let (mut mn_cfg, mut mn_ipsec, ha_cfg, ha_ipsec) =
        home_keying(net, &mut keys, (&mut keyring, &mut sim.keylog));
    let mut cns = vec![];
    for i in 0..net.cns.len() {
        let log = (&mut keyring, &mut sim.keylog);
        let mn = (&mut mn_cfg, &mut mn_ipsec);
        cns.push(correspondent_keying(net, i, &mut keys, log, mn));
    }
    let links: Vec<LinkId> = net
        .links
        .iter()
        .map(|l| sim.add_link(&l.name, l.prefix, l.params))
        .collect();
    for l in &links {
        sim.capture(*l);
    }
    let router = sim.add_router("router", &links, net.ra_interval);
    let ha = Ha::new(ha_cfg, ha_ipsec);
    let ha = sim.add_host("ha", Role::Ha(Box::new(ha)), &[Some(links[net.ha_link])]);
    let cns = net
        .cns
        .iter()
        .zip(cns)
        .map(|(spec, (cfg, ipsec))| {
            let cn = Cn::new(cfg, ipsec, Instant::ZERO);
            sim.add_host(
                &spec.name,
                Role::Cn(Box::new(cn)),
                &[Some(links[spec.link])],
            )
        })
        .collect();
    let mn_links: Vec<LinkId> = net.mn_links.iter().map(|i| links[*i]).collect();
    let start: Vec<Option<LinkId>> = (0..mn_links.len())
        .map(|i| (i == 0).then_some(mn_links[0]))
        .collect();
    let mn = Mn::new(mn_cfg, mn_ipsec);
    let mn = sim.add_host("mn", Role::Mn(Box::new(mn)), &start);
    let layout = Layout {
        links,
        router,
        ha,
        cns,
        mn,
        mn_links,
    };
    (sim, layout, keyring)
}
