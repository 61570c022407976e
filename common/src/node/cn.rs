//! The correspondent node: binding cache, Home Address option validation
//! (draft-dupont-mipv6-cn-ipsec §3), Binding Updates under IPsec (§4) with
//! the care-of address test of Annex A1, and return routability (RFC 6275
//! §5.2, §9) as the baseline.

use core::net::Ipv6Addr;
use hashbrown::HashMap;

use super::cache::{check_seq, BindingCache, CacheEntry, Journal};
use super::cookie::{CookieError, CookieMethod, CookieSecrets};
use super::core::{add_type2, authorised, strip_mobility_headers, Core, Received, Rx};
use super::rr::{self, RrResponder, MAX_NONCE_LIFETIME, MAX_RR_BINDING_LIFETIME};
use super::status::{seconds_until, BindingStatus};
use super::{
    lifetime_units, unicast_routable, units_lifetime, Command, CommandError, Engine, Event, Iface,
    MacAddr, NodeDrop, NodeStats, NodeStatus, Persist, Transmit,
};
use crate::ike::{Ike, IkeConfig};
use crate::ipsec::Ipsec;
use crate::nd::{Dad, Membership, NdEvent, NdIface};
use crate::time::{Duration, Instant};
use crate::wire::mh::{BaFlags, BuFlags, CoaTestCookie, MhMessage, MhOption, MhRepr};
use crate::wire::{BaStatus, CodePoints, ExtHeaderRepr, PacketRepr, UpperRepr};

/// RFC 6275 §9.3.1 status 1: "unknown binding for Home Address option".
pub const BE_UNKNOWN_BINDING: u8 = 1;
/// RFC 6275 §9.3.1 status 2: "unrecognized MH Type value".
pub const BE_UNKNOWN_MH_TYPE: u8 = 2;

/// When the correspondent runs the Annex A1 care-of address test on an
/// IPsec-protected BU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoaTestPolicy {
    /// Never: an Alternate CoA must then be the source or the home address
    /// (REQ CN-4.3).
    Off,
    /// For real alternate care-of addresses only, as the Annex requires.
    AlternateOnly,
    /// For every new care-of address too (the Annex's MAY).
    Always,
}

#[derive(Debug, Clone)]
pub struct CnConfig {
    pub address: Ipv6Addr,
    pub seed: u64,
    pub coa_test: CoaTestPolicy,
    pub cookie_method: CookieMethod,
    /// How often cookie secrets change; a cookie lives at most two of these.
    pub cookie_rotation: Duration,
    /// Keep sending to the old care-of address while a test is pending
    /// (Annex A1's exception to the default).
    pub keep_old_coa: bool,
    /// Accept return-routability BUs (the RFC 6275 baseline).
    pub return_routability: bool,
    /// The longest lifetime granted to an IPsec-protected binding; the SA's
    /// own hard lifetime caps it further (REQ CN-4.7).
    pub max_lifetime: Duration,
    /// Bindings at most: a BU for one more is refused with 130 (RFC 6275
    /// §9.5.2), so no number of mobile nodes can grow the cache past it.
    pub max_bindings: usize,
    /// The interface `address` is on.
    pub iface: u8,
    /// How `address` is checked on its link (RFC 4862 DAD).
    pub dad: Dad,
    /// IKEv2 with mobile nodes over their home addresses
    /// (draft-dupont-mipv6-cn-ipsec §5), next to static keys.
    pub ike: Option<IkeConfig>,
    pub code_points: CodePoints,
}

impl CnConfig {
    pub fn new(address: Ipv6Addr, seed: u64) -> Self {
        CnConfig {
            address,
            seed,
            coa_test: CoaTestPolicy::AlternateOnly,
            cookie_method: CookieMethod::Global,
            cookie_rotation: Duration::from_secs(60),
            keep_old_coa: false,
            return_routability: true,
            max_lifetime: units_lifetime(u16::MAX),
            max_bindings: 1 << 21,
            iface: 0,
            dad: Dad::Standard,
            ike: None,
            code_points: CodePoints::default(),
        }
    }
}

/// A binding cache entry as the correspondent sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// `None` while the entry is disabled for a care-of test: packets go
    /// to the home address (REQ CN-A1.7).
    pub care_of: Option<Ipv6Addr>,
    /// The last accepted sequence number.
    pub seq: Option<u16>,
    pub expires: Instant,
    /// The care-of address under test.
    pub testing: Option<Ipv6Addr>,
    /// Created by an IPsec-protected BU (else by return routability).
    pub ipsec: bool,
}

/// A [`Binding`], with what is rare boxed: a cache of a million entries
/// has two million slots (the map doubles past seven eighths full), so
/// each byte of an entry is paid twice per binding.
#[derive(Clone)]
struct Entry {
    care_of: Option<Ipv6Addr>,
    seq: Option<u16>,
    expires: Instant,
    ipsec: bool,
    /// The nonce indices of the return-routability BU that made it.
    nonces: Option<(u16, u16)>,
    test: Option<Box<CoaTest>>,
}

/// Annex A1's state of an entry.
#[derive(Clone, Default)]
struct CoaTest {
    /// The care-of address under test.
    testing: Option<Ipv6Addr>,
    /// Method 1's; they outlive a test, for the next one.
    secrets: Option<CookieSecrets>,
}

impl Entry {
    fn bound(care_of: Ipv6Addr, seq: u16, expires: Instant, ipsec: bool) -> Self {
        Entry {
            care_of: Some(care_of),
            seq: Some(seq),
            expires,
            ipsec,
            nonces: None,
            test: None,
        }
    }

    fn binding(&self) -> Binding {
        Binding {
            care_of: self.care_of,
            seq: self.seq,
            expires: self.expires,
            testing: self.test.as_ref().and_then(|t| t.testing),
            ipsec: self.ipsec,
        }
    }
}

/// A deleted return-routability binding whose nonces may still be valid:
/// RFC 6275 §9.5.3 holds their combination with the addresses illegal.
#[derive(Clone)]
struct Retired {
    care_of: Ipv6Addr,
    nonces: (u16, u16),
    /// The deletion's sequence number: the BUs made with those nonces
    /// are not newer.
    seq: u16,
    until: Instant,
}

impl CacheEntry for Entry {
    fn seq(&self) -> Option<u16> {
        self.seq
    }

    fn expires(&self) -> Instant {
        self.expires
    }
}

/// How a BU was authorised.
enum Authority {
    Ipsec,
    Rr([u8; 20]),
}

#[derive(Clone)]
pub struct Cn {
    cfg: CnConfig,
    core: Core,
    cache: BindingCache<Entry>,
    cookies: CookieSecrets,
    rr: RrResponder,
    retired: HashMap<Ipv6Addr, Retired>,
    /// IPsec bindings for the store, once [`Engine::restore`] was called.
    journal: Journal,
}

impl Cn {
    pub fn new(cfg: CnConfig, ipsec: Ipsec, now: Instant) -> Self {
        let mut core = Core::new(ipsec, cfg.ike.clone(), cfg.seed, cfg.code_points);
        let cookies = CookieSecrets::new(&mut core.rng, now, cfg.cookie_rotation);
        let rr = RrResponder::new(&mut core.rng, now);
        Cn {
            cfg,
            core,
            cache: BindingCache::default(),
            cookies,
            rr,
            retired: HashMap::new(),
            journal: Journal::default(),
        }
    }

    pub fn binding(&self, home: Ipv6Addr) -> Option<Binding> {
        self.cache.get(home).map(Entry::binding)
    }

    pub fn bindings(&self) -> usize {
        self.cache.len()
    }

    fn outgoing(&mut self, now: Instant, bytes: &[u8]) {
        if let Some(repr) = self.core.parse_local(bytes) {
            self.send_local(now, repr);
        }
    }

    /// A packet of the node's own, route optimised to a bound home address.
    fn send_local(&mut self, now: Instant, mut repr: PacketRepr) {
        let dst = match &repr.ip {
            crate::wire::IpRepr::V6 { header, .. } => header.dst,
            crate::wire::IpRepr::V4(_) => return,
        };
        match self.cache.get(dst).and_then(|e| e.care_of) {
            Some(coa) => {
                add_type2(&mut repr, coa);
                self.core.stats.sent_route_optimised += 1;
            }
            None => self.core.stats.sent_direct += 1,
        }
        self.core.send(now, &repr);
    }

    fn incoming(&mut self, now: Instant, iface: u8, bytes: &[u8]) {
        let mut rx = match self.core.receive(now, iface, bytes) {
            Received::Packet(rx) => rx,
            Received::Foreign(_) => return self.core.drop(NodeDrop::NotForUs),
            Received::Nd | Received::Dropped => return,
        };
        let Some(h) = rx.header().copied() else {
            self.core.drop(NodeDrop::NotForUs);
            return;
        };
        if h.dst != self.cfg.address {
            if !self.core.answer_echo(now, &rx) {
                self.core.drop(NodeDrop::NotForUs);
            }
            return;
        }
        let hao = rx.home_address_option();
        // RFC 6275 §9.3.1, §9.5.1: a home address that is not unicast
        // routable binds nothing and earns no Binding Error (TAHI
        // CN-6-3-2 expects silence for a multicast one).
        if hao.is_some_and(|a| !unicast_routable(a)) {
            self.core.drop(NodeDrop::HaoUnverified);
            return;
        }
        if let UpperRepr::Mobility(mh) = &rx.repr.upper {
            self.mobility(now, &rx, h.src, hao, mh);
            return;
        }
        if let Some(home) = hao {
            // REQ CN-3.1, CN-3.2: a suitable SA or the binding cache vouches
            // for the home address, or the packet goes.
            let by_sa = rx.sa.is_some_and(|sa| {
                self.core
                    .ipsec
                    .check_suitable(sa, home, self.cfg.address)
                    .is_ok()
            });
            let by_cache = self
                .cache
                .get(home)
                .is_some_and(|e| e.care_of == Some(h.src));
            if !(by_sa || by_cache) {
                self.core.drop(NodeDrop::HaoUnverified);
                self.core
                    .binding_error(now, self.cfg.address, h.src, hao, BE_UNKNOWN_BINDING);
                return;
            }
        }
        if self.core.ike_input(now, &rx) {
            return;
        }
        if hao.is_some() {
            strip_mobility_headers(&mut rx.repr);
            self.core.stats.delivered_route_optimised += 1;
            self.core.deliver(rx.repr.to_bytes(&self.cfg.code_points));
        } else {
            self.core.stats.delivered_direct += 1;
            self.core.deliver(rx.bytes);
        }
    }

    fn mobility(
        &mut self,
        now: Instant,
        rx: &Rx,
        src: Ipv6Addr,
        hao: Option<Ipv6Addr>,
        mh: &MhRepr,
    ) {
        let me = self.cfg.address;
        match mh.message {
            MhMessage::HomeTestInit { cookie } if hao.is_none() && self.cfg.return_routability => {
                let nonce_index = self.rr.current_index(&mut self.core.rng, now);
                let token = self.rr.home_token(now, src, nonce_index).unwrap_or(0);
                let msg = MhMessage::HomeTest {
                    nonce_index,
                    cookie,
                    token,
                };
                // HoT goes to the home address, never route optimised (§5.2.5).
                self.core.send_mh(now, me, src, vec![], plain(msg));
            }
            MhMessage::CareOfTestInit { cookie }
                if hao.is_none() && self.cfg.return_routability =>
            {
                let nonce_index = self.rr.current_index(&mut self.core.rng, now);
                let token = self.rr.care_of_token(now, src, nonce_index).unwrap_or(0);
                let msg = MhMessage::CareOfTest {
                    nonce_index,
                    cookie,
                    token,
                };
                self.core.send_mh(now, me, src, vec![], plain(msg));
            }
            MhMessage::BindingUpdate {
                seq,
                flags,
                lifetime,
            } => self.binding_update(now, rx, src, hao, seq, flags, lifetime, &mh.options),
            MhMessage::Unknown { .. } => {
                self.core.drop(NodeDrop::UnknownMhType);
                self.core
                    .binding_error(now, me, src, hao, BE_UNKNOWN_MH_TYPE);
            }
            _ => self.core.drop(NodeDrop::Unsolicited),
        }
    }

    #[allow(clippy::too_many_arguments, reason = "the fields of one BU")]
    fn binding_update(
        &mut self,
        now: Instant,
        rx: &Rx,
        src: Ipv6Addr,
        hao: Option<Ipv6Addr>,
        seq: u16,
        flags: BuFlags,
        lifetime: u16,
        options: &[MhOption],
    ) {
        let me = self.cfg.address;
        let home = hao.unwrap_or(src);
        let alternate = options.iter().find_map(|o| match o {
            MhOption::AlternateCareOfAddress(a) => Some(*a),
            _ => None,
        });
        let care_of = alternate.unwrap_or(src);
        // RFC 6275 §9.5.1: the home address (from the HAO or the source)
        // must be unicast routable, and so must a care-of address to bind;
        // a BU failing that is silently discarded.
        if !unicast_routable(home) {
            self.core.drop(NodeDrop::HaoUnverified);
            return;
        }
        if care_of != home && !unicast_routable(care_of) {
            self.core.drop(NodeDrop::AlternateCoaRefused);
            return;
        }
        let reply = Reply {
            home,
            to: src,
            seq,
            ack: flags.has(BuFlags::A),
        };
        let protected = rx
            .sa
            .is_some_and(|sa| self.core.ipsec.check_suitable(sa, home, me).is_ok());
        // REQ CN-4.1: a correspondent is no home agent.
        if flags.has(BuFlags::H) {
            self.core.drop(NodeDrop::HomeRegistrationNotSupported);
            self.ack(
                now,
                &reply,
                BaStatus::HomeRegistrationNotSupported.into(),
                0,
                vec![],
            );
            return;
        }
        let deregister = lifetime == 0 || care_of == home;
        // REQ CN-4.2: under IPsec, Nonce Indices and Authorization Data are
        // not looked at; the K flag is ignored either way.
        let authority = if protected {
            Authority::Ipsec
        } else if self.cfg.return_routability {
            match self.rr_authority(now, rx, home, care_of, deregister, options) {
                Ok(kbm) => Authority::Rr(kbm),
                Err(Some(status)) => {
                    self.core.drop(NodeDrop::ExpiredNonce);
                    self.ack(now, &reply, status, 0, vec![]);
                    return;
                }
                Err(None) => {
                    self.core.drop(NodeDrop::BadAuthorization);
                    return;
                }
            }
        } else {
            self.core.drop(NodeDrop::Unprotected);
            return;
        };
        let nonces = match authority {
            Authority::Rr(_) => nonce_indices(options),
            Authority::Ipsec => None,
        };
        // RFC 6275 §9.5.4: a BA to an RR BU carries its authorisation,
        // refusals after the nonces checked out included.
        let options = match &authority {
            Authority::Rr(kbm) => Some((*kbm, care_of)),
            Authority::Ipsec => None,
        };
        let last = match (nonces, self.cache.last_seq(home)) {
            (Some(nonces), None) => self.retired_seq(now, home, care_of, nonces),
            (_, last) => last,
        };
        if let Err(last) = check_seq(seq, last) {
            self.core.drop(NodeDrop::SequenceOutOfWindow);
            let r = Reply { seq: last, ..reply };
            self.answer(now, &r, BaStatus::SequenceNumberOutOfWindow, 0, options);
            return;
        }
        if deregister {
            self.retire(now, home, seq);
            self.cache.deregister(home, &mut self.core);
            self.journal.record(Persist::Unbound { home });
            self.answer(now, &reply, BaStatus::Accepted, 0, options);
            return;
        }
        if self.cache.get(home).is_none() && self.cache.len() >= self.cfg.max_bindings {
            self.core.drop(NodeDrop::CacheFull);
            self.answer(now, &reply, BaStatus::InsufficientResources, 0, options);
            return;
        }
        if let Authority::Ipsec = authority {
            // A "real" alternate care-of address is neither the source nor
            // the home address (REQ CN-4.3, CN-4.8, CN-A1.2).
            let real_alternate = alternate.is_some_and(|a| a != src && a != home);
            if real_alternate && self.cfg.coa_test == CoaTestPolicy::Off {
                self.core.drop(NodeDrop::AlternateCoaRefused);
                self.ack(now, &reply, BaStatus::ReasonUnspecified.into(), 0, vec![]);
                return;
            }
            let current = self.cache.get(home).and_then(|e| e.care_of);
            let test = real_alternate
                || (self.cfg.coa_test == CoaTestPolicy::Always && current != Some(care_of));
            if test && !self.coa_test(now, &reply, care_of, options_cookie(options_of(rx))) {
                return;
            }
        }
        let cap = match authority {
            Authority::Rr(_) => MAX_RR_BINDING_LIFETIME,
            Authority::Ipsec => {
                let sa_left = rx
                    .sa
                    .and_then(|sa| self.core.ipsec.sad.get(sa))
                    .and_then(|s| s.hard_deadline())
                    .map(|d| d.saturating_duration_since(now));
                sa_left.map_or(self.cfg.max_lifetime, |l| l.min(self.cfg.max_lifetime))
            }
        };
        let granted = units_lifetime(lifetime).min(cap);
        let granted = units_lifetime(lifetime_units(granted));
        let expires = now + granted;
        // The test is over; method 1's secrets stay for the next.
        let test = self
            .cache
            .get_mut(home)
            .and_then(|e| e.test.take())
            .filter(|t| t.secrets.is_some())
            .map(|mut t| {
                t.testing = None;
                t
            });
        let ipsec = matches!(authority, Authority::Ipsec);
        self.cache.insert(
            home,
            Entry {
                nonces,
                test,
                ..Entry::bound(care_of, seq, expires, ipsec)
            },
        );
        // Return routability's are not kept: Kcn stays off the disk, and
        // after a restart the node's next HAO gets a Binding Error and it
        // runs the test again (RFC 6275 §9.3.3).
        self.journal.record(match authority {
            Authority::Ipsec => Persist::Bound {
                home,
                care_of,
                seq,
                expires,
            },
            Authority::Rr(_) => Persist::Unbound { home },
        });
        self.core.event(Event::BindingCached {
            home,
            care_of,
            lifetime: granted,
        });
        let r = Reply {
            to: care_of,
            ..reply
        };
        self.answer(
            now,
            &r,
            BaStatus::Accepted,
            lifetime_units(granted),
            options,
        );
    }

    /// RFC 6275 §5.2.5, §9.5.1: the keygen tokens rebuild Kbm, which must
    /// authenticate the BU. `Err(Some(status))` names expired nonces;
    /// `Err(None)` is a BU to discard silently.
    fn rr_authority(
        &mut self,
        now: Instant,
        rx: &Rx,
        home: Ipv6Addr,
        care_of: Ipv6Addr,
        deregister: bool,
        options: &[MhOption],
    ) -> Result<[u8; 20], Option<u8>> {
        let (hi, ci) = nonce_indices(options).ok_or(None)?;
        if !matches!(options.last(), Some(MhOption::BindingAuthData(_))) {
            return Err(None);
        }
        let h = self.rr.home_token(now, home, hi);
        let c = if deregister {
            Some(None)
        } else {
            self.rr.care_of_token(now, care_of, ci).map(Some)
        };
        let (h, c) = match (h, c) {
            (Some(h), Some(c)) => (h, c),
            (None, Some(_)) => return Err(Some(BaStatus::ExpiredHomeNonceIndex.into())),
            (Some(_), None) => return Err(Some(BaStatus::ExpiredCareOfNonceIndex.into())),
            (None, None) => return Err(Some(BaStatus::ExpiredNonces.into())),
        };
        let kbm = rr::binding_key(h, c);
        if authorised(rx, &kbm, care_of, self.cfg.address) {
            Ok(kbm)
        } else {
            Err(None)
        }
    }

    /// RFC 6275 §9.5.3: a binding made with return-routability nonces is
    /// deleted; until they are too old, a BU with the same nonces and
    /// addresses counts as no newer than `seq`.
    fn retire(&mut self, now: Instant, home: Ipv6Addr, seq: u16) {
        let Some(e) = self.cache.get(home) else {
            return;
        };
        if let (Some(nonces), Some(care_of)) = (e.nonces, e.care_of) {
            let until = now + MAX_NONCE_LIFETIME;
            let r = Retired {
                care_of,
                nonces,
                seq,
                until,
            };
            self.retired.insert(home, r);
        }
    }

    /// The sequence number a deleted binding left for this BU's nonces
    /// and addresses, while they may still be valid.
    fn retired_seq(
        &mut self,
        now: Instant,
        home: Ipv6Addr,
        care_of: Ipv6Addr,
        nonces: (u16, u16),
    ) -> Option<u16> {
        self.retired.retain(|_, r| r.until > now);
        let r = self.retired.get(&home)?;
        (r.care_of == care_of && r.nonces == nonces).then_some(r.seq)
    }

    /// Annex A1: with the echoed cookie valid the BU goes on (`true`);
    /// otherwise a test starts (or restarts) and the BU stops here.
    fn coa_test(
        &mut self,
        now: Instant,
        reply: &Reply,
        care_of: Ipv6Addr,
        echoed: Option<&[u8]>,
    ) -> bool {
        let me = self.cfg.address;
        let home = reply.home;
        let method = self.cfg.cookie_method;
        if let Some(bytes) = echoed {
            let verdict = match CoaTestCookie::parse(bytes) {
                Err(_) => Err(CookieError::Forged),
                Ok(c) => match method {
                    CookieMethod::Global => self.cookies.check(now, &c, care_of, Some(home), me),
                    CookieMethod::PerBinding => self
                        .cache
                        .get(home)
                        .and_then(|e| e.test.as_ref()?.secrets.as_ref())
                        .map_or(Err(CookieError::Stale), |s| {
                            s.check(now, &c, care_of, None, me)
                        }),
                },
            };
            match verdict {
                Ok(()) => return true,
                // REQ CN-A1.6: a stale cookie buys a fresh test; a forged one
                // nothing.
                Err(CookieError::Stale) => self.core.drop(NodeDrop::CookieStale),
                Err(CookieError::Forged) => {
                    self.core.drop(NodeDrop::CookieForged);
                    return false;
                }
            }
        }
        let rotation = self.cfg.cookie_rotation;
        let keep_old = self.cfg.keep_old_coa;
        // Without a binding yet, the entry lives as long as the cookie.
        let mut entry = self.cache.take(home).unwrap_or(Entry {
            care_of: None,
            seq: None,
            expires: now + rotation + rotation,
            ipsec: true,
            nonces: None,
            test: None,
        });
        // REQ CN-A1.7: the new address is not used while it is tested, and
        // by default neither is the old one.
        let test = entry.test.get_or_insert_with(Box::default);
        test.testing = Some(care_of);
        if !keep_old {
            entry.care_of = None;
            self.journal.record(Persist::Unbound { home });
        }
        let cookie = match method {
            CookieMethod::Global => {
                self.cookies
                    .make(&mut self.core.rng, now, care_of, Some(home), me)
            }
            CookieMethod::PerBinding => {
                let rng = &mut self.core.rng;
                test.secrets
                    .get_or_insert_with(|| CookieSecrets::new(rng, now, rotation))
                    .make(rng, now, care_of, None, me)
            }
        };
        self.cache.insert(home, entry);
        self.core.event(Event::CoaTestStarted { home, care_of });
        // REQ CN-A1.1: the BA with the cookie goes to the tested address.
        let r = Reply {
            to: care_of,
            ack: true,
            ..*reply
        };
        let status = self.cfg.code_points.ba_status_coa_test;
        self.ack(
            now,
            &r,
            status,
            0,
            vec![MhOption::Cookie(cookie.to_bytes())],
        );
        false
    }

    /// A successful BA; for return routability it carries the
    /// authenticator, under IPsec nothing (REQ CN-4.5, CN-4.6).
    /// A BA to an authorised BU: sent if asked for or a refusal,
    /// authorised with Kbm after return routability.
    fn answer(
        &mut self,
        now: Instant,
        reply: &Reply,
        status: BaStatus,
        lifetime: u16,
        rr: Option<([u8; 20], Ipv6Addr)>,
    ) {
        if !reply.ack && status.is_accepted() {
            return;
        }
        let mut mh = ba(status.into(), reply.seq, lifetime, vec![]);
        if let Some((kbm, care_of)) = rr {
            self.core
                .authorise(&mut mh, &kbm, care_of, self.cfg.address);
        }
        self.send_ba(now, reply, mh);
    }

    fn ack(
        &mut self,
        now: Instant,
        reply: &Reply,
        status: u8,
        lifetime: u16,
        options: Vec<MhOption>,
    ) {
        if reply.ack || status >= 128 {
            let mh = ba(status, reply.seq, lifetime, options);
            self.send_ba(now, reply, mh);
        }
    }

    fn send_ba(&mut self, now: Instant, reply: &Reply, mh: MhRepr) {
        let ext = if reply.to == reply.home {
            vec![]
        } else {
            vec![ExtHeaderRepr::type2(reply.home)]
        };
        self.core.send_mh(now, self.cfg.address, reply.to, ext, mh);
    }
}

/// Where and how to answer one BU.
#[derive(Clone, Copy)]
struct Reply {
    home: Ipv6Addr,
    /// The care-of address the BA goes to (with a type 2 routing header).
    to: Ipv6Addr,
    seq: u16,
    ack: bool,
}

fn plain(message: MhMessage) -> MhRepr {
    MhRepr {
        message,
        options: vec![],
    }
}

/// A Binding Acknowledgement with K clear (REQ CN-4.5).
fn ba(status: u8, seq: u16, lifetime: u16, options: Vec<MhOption>) -> MhRepr {
    MhRepr {
        message: MhMessage::BindingAck {
            status: status.into(),
            flags: BaFlags(0),
            seq,
            lifetime,
        },
        options,
    }
}

fn options_of(rx: &Rx) -> &[MhOption] {
    match &rx.repr.upper {
        UpperRepr::Mobility(mh) => &mh.options,
        _ => &[],
    }
}

fn nonce_indices(options: &[MhOption]) -> Option<(u16, u16)> {
    options.iter().find_map(|o| match o {
        MhOption::NonceIndices { home, care_of } => Some((*home, *care_of)),
        _ => None,
    })
}

fn options_cookie(options: &[MhOption]) -> Option<&[u8]> {
    options.iter().find_map(|o| match o {
        MhOption::Cookie(c) => Some(c.as_slice()),
        _ => None,
    })
}

impl Cn {
    /// What every `handle_*` ends with: ND's events, IKE's, and IKE's
    /// datagrams sent like the node's own packets.
    fn pump(&mut self, now: Instant) {
        while let Some((iface, event)) = self.core.poll_nd() {
            if !matches!(event, NdEvent::RouterAdvert { .. }) {
                self.core.event(Event::Nd { iface, event });
            }
        }
        let _ = self.core.pump_ike(now);
        while let Some(p) = self.core.poll_ike_packet() {
            self.send_local(now, p);
        }
    }
}

impl Engine for Cn {
    fn handle_packet(&mut self, now: Instant, iface: Iface, _: Option<MacAddr>, packet: &[u8]) {
        match iface {
            Iface::Stack => self.outgoing(now, packet),
            Iface::Link(i) => self.incoming(now, i, packet),
        }
        self.pump(now);
    }

    fn handle_command(&mut self, now: Instant, command: Command) -> Result<(), CommandError> {
        match command {
            Command::LinkUp { iface, mac } => {
                let nd = self.core.link_up(now, iface, mac, self.cfg.dad)?;
                if iface == self.cfg.iface {
                    nd.add_address(now, self.cfg.address, self.cfg.dad);
                }
                nd.solicit_routers(now);
            }
            Command::LinkDown(iface) => self.core.link_down(iface)?,
        }
        self.pump(now);
        Ok(())
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.core.handle_timeout(now);
        self.pump(now);
        for home in self.cache.expire(now, &mut self.core) {
            self.journal.record(Persist::Unbound { home });
        }
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.core.poll_transmit()
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.core.poll_event()
    }

    fn poll_membership(&mut self) -> Option<(u8, Membership)> {
        self.core.poll_membership()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.core.earliest(self.cache.next_expiry())
    }

    fn stats(&self) -> &NodeStats {
        &self.core.stats
    }

    fn interface(&self, iface: u8) -> Option<&NdIface> {
        self.core.link(iface)
    }

    fn status(&self, now: Instant) -> NodeStatus {
        let mut s = self.core.status("cn");
        s.bindings = self
            .cache
            .iter()
            .map(|(home, e)| BindingStatus {
                home,
                care_of: e.care_of,
                seq: e.seq,
                expires_in: seconds_until(now, e.expires),
                how: if e.ipsec { "ipsec" } else { "rr" },
            })
            .collect();
        s.bindings.sort_by_key(|b| b.home);
        s
    }

    fn ipsec(&self) -> &Ipsec {
        &self.core.ipsec
    }

    fn ike(&self) -> Option<&Ike> {
        self.core.ike.as_ref()
    }

    fn ipsec_mut(&mut self) -> &mut Ipsec {
        &mut self.core.ipsec
    }

    /// The IPsec bindings come back as they were acknowledged, with the
    /// outbound sequence numbers of the static SAs, so a BA after the
    /// restart passes the node's anti-replay window; one expired meanwhile
    /// is reported gone.
    fn restore(&mut self, now: Instant, saved: &[Persist]) -> Result<(), CommandError> {
        let bound = self
            .journal
            .restore(now, saved, &mut self.core.ipsec, |_| true);
        for (home, care_of, seq, expires) in bound {
            self.cache
                .insert(home, Entry::bound(care_of, seq, expires, true));
            self.core.event(Event::BindingCached {
                home,
                care_of,
                lifetime: expires - now,
            });
        }
        Ok(())
    }

    fn poll_persist(&mut self) -> Option<Persist> {
        self.journal.poll(&mut self.core.ipsec)
    }
}

#[cfg(test)]
mod tests {
    /// Each byte of an entry is paid twice per binding (issue 13's 200 B
    /// a binding).
    #[test]
    fn a_cache_entry_holds_no_care_of_test_inline() {
        assert!(
            std::mem::size_of::<super::Entry>() <= 48,
            "{} B",
            std::mem::size_of::<super::Entry>()
        );
    }
}
