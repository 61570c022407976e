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
}

/// The mobile node's interfaces: one per link it visits, as in the real
/// demo, where each is a veth whose carrier goes up and down.
pub const MN_HOME_IFACE: u8 = 0;
pub const MN_ACCESS_A_IFACE: u8 = 1;
pub const MN_ACCESS_B_IFACE: u8 = 2;

impl Topology {
    /// The mobile node's interface on `link`.
    pub fn mn_iface(&self, link: LinkId) -> Option<u8> {
        [
            (self.home, MN_HOME_IFACE),
            (self.access_a, MN_ACCESS_A_IFACE),
            (self.access_b, MN_ACCESS_B_IFACE),
        ]
        .into_iter()
        .find(|(l, _)| *l == link)
        .map(|(_, i)| i)
    }

    /// At `at`, the mobile node loses carrier on every link but `to`, and
    /// gains it on `to` (break before make); `None`: on none.
    pub fn move_mn(&mut self, at: Instant, to: Option<LinkId>) {
        for link in [self.home, self.access_a, self.access_b] {
            if Some(link) != to {
                if let Some(i) = self.mn_iface(link) {
                    self.sim.move_at(at, self.mn, i, None);
                }
            }
        }
        if let Some(i) = to.and_then(|l| self.mn_iface(l)) {
            self.sim.move_at(at, self.mn, i, to);
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

pub fn build(setup: &Setup) -> Topology {
    let mut sim = Sim::new(setup.seed);
    let mut keys = ChaCha20Rng::seed_from_u64(setup.seed ^ 0x6b65_7973);
    let mut keyring = EspKeyring::default();
    let bu_ba = [MhType::BindingUpdate.into(), MhType::BindingAck.into()];
    let (mut mn_ipsec, mut ha_ipsec, mut cn_ipsec) =
        (Ipsec::default(), Ipsec::default(), Ipsec::default());
    for i in [&mut mn_ipsec, &mut ha_ipsec, &mut cn_ipsec] {
        i.spd.fallback = Action::Bypass;
    }
    let (mut mn_cfg, mut ha_cfg) = (setup.mn.clone(), setup.ha.clone());
    match setup.keying {
        // RFC 3776: BU and BA between the home address and the home agent.
        Keying::Static => transport_pair(
            &mut keys,
            (&mut keyring, &mut sim.keylog),
            (&mut mn_ipsec, HOA),
            (&mut ha_ipsec, HA),
            Selector::mobility(host(HOA), host(HA), &bu_ba),
            0x100,
            setup.sa_lifetime,
        ),
        // Either side's own IKE configuration, if the setup has one, wins.
        Keying::Ike { mobility, payload } => {
            let (mn, ha) = ike_configs(setup.seed, mobility, payload);
            mn_cfg.ike.get_or_insert(mn);
            ha_cfg.ike.get_or_insert(ha);
        }
    }
    let mut cn_cfg = setup.cn.clone();
    let cn_selector = match setup.cn_sa {
        CnSa::None => None,
        CnSa::Signalling => Some(Selector::mobility(host(HOA), host(CN), &bu_ba)),
        CnSa::All => Some(Selector::between(host(HOA), host(CN))),
    };
    if let (Keying::Ike { .. }, Some(_)) = (setup.keying, &cn_selector) {
        let (peer, cn) = cn_ike(setup.seed, setup.cn_sa == CnSa::Signalling);
        if let Some(ike) = mn_cfg.ike.as_mut() {
            if !ike.peers.iter().any(|p| p.addresses == peer.addresses) {
                ike.peers.push(peer);
            }
        }
        cn_cfg.ike.get_or_insert(cn);
    } else if let Some(sel) = cn_selector {
        transport_pair(
            &mut keys,
            (&mut keyring, &mut sim.keylog),
            (&mut mn_ipsec, HOA),
            (&mut cn_ipsec, CN),
            sel,
            0x200,
            setup.sa_lifetime,
        );
    }
    let home = sim.add_link("home", HOME_PREFIX, LinkParams::delay(setup.home_delay));
    let cn_link = sim.add_link("cn", CN_PREFIX, LinkParams::delay(setup.cn_delay));
    let access_a = sim.add_link("access-a", ACCESS_A, LinkParams::delay(setup.access_delay));
    let access_b = sim.add_link("access-b", ACCESS_B, LinkParams::delay(setup.access_delay));
    for l in [home, cn_link, access_a, access_b] {
        sim.capture(l);
    }
    let router = sim.add_router(
        "router",
        &[home, cn_link, access_a, access_b],
        Duration::from_secs(1),
    );
    let ha = Ha::new(ha_cfg, ha_ipsec);
    let ha = sim.add_host("ha", Role::Ha(Box::new(ha)), &[Some(home)]);
    let cn = Cn::new(cn_cfg, cn_ipsec, Instant::ZERO);
    let cn = sim.add_host("cn", Role::Cn(Box::new(cn)), &[Some(cn_link)]);
    let mn = Mn::new(mn_cfg, mn_ipsec);
    let mn = sim.add_host("mn", Role::Mn(Box::new(mn)), &[Some(home), None, None]);
    Topology {
        sim,
        router,
        mn,
        ha,
        cn,
        home,
        cn_link,
        access_a,
        access_b,
        keyring,
    }
}
