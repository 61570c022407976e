//! The Security Association Database (RFC 4301 §4.4.2).
//!
//! Inbound SAs are found by SPI alone: an inbound packet never finds its SA
//! by address (RFC 4301 §4.1, "unicast" lookup), so an SA still matches
//! after its peer moved. SAs come in pairs, one per direction, and pairs can
//! be bundled as siblings (nested SAs between the same endpoints, or the
//! CHILD_SAs of one IKE SA): an address update moves a pair and all its
//! siblings together, keeping keys, sequence numbers and replay state
//! (draft-dupont-ikev2-addrmgmt Annex C, REQ AM-C.1).

use core::fmt;
use core::net::IpAddr;
use std::collections::BTreeSet;

use hashbrown::HashMap;

use super::crypto::{Algorithm, EspCipher, KeyLengthError};
use super::replay::{ReplayWindow, DEFAULT_WINDOW, MAX_WINDOW};
use super::spd::{Direction, Prefix, Selector};
use crate::time::{earlier, Duration, Instant};

/// A handle on an SA in the [`Sad`]; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SaId(pub u32);

impl fmt::Display for SaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sa#{}", self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// ESP between the packet's own endpoints.
    Transport,
    /// ESP between the SA's addresses, carrying the whole packet.
    Tunnel,
}

/// Soft and hard limits; `None` is unlimited. Soft limits raise an event
/// (time to rekey), hard ones end the SA (RFC 4301 §4.4.2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lifetime {
    pub soft_time: Option<Duration>,
    pub hard_time: Option<Duration>,
    pub soft_bytes: Option<u64>,
    pub hard_bytes: Option<u64>,
}

/// The endpoints of an SA pair, from this node's point of view: the outer
/// addresses in tunnel mode, the packet's endpoints in transport mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressPair {
    pub local: IpAddr,
    pub peer: IpAddr,
}

impl fmt::Display for AddressPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} <-> {}", self.local, self.peer)
    }
}

/// SPI and key of one direction.
#[derive(Clone, PartialEq, Eq)]
pub struct SaKeys {
    pub spi: u32,
    pub key: Vec<u8>,
}

impl fmt::Debug for SaKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SaKeys {{ spi: {:#010x}, key: <{} bytes> }}",
            self.spi,
            self.key.len()
        )
    }
}

/// What key management (or static configuration) installs: a pair of SAs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaPairSpec {
    pub addresses: AddressPair,
    pub mode: Mode,
    pub algorithm: Algorithm,
    /// Traffic selectors, local side first; checked on every packet that
    /// comes out of the inbound SA (RFC 4301 §5.2 step 4).
    pub selector: Selector,
    pub inbound: SaKeys,
    pub outbound: SaKeys,
    /// Anti-replay window in packets; 0 disables anti-replay.
    pub replay_window: u32,
    /// 64-bit extended sequence numbers (RFC 4303 §2.2.1).
    pub esn: bool,
    pub lifetime: Lifetime,
}

impl SaPairSpec {
    /// A pair with the defaults: window 1024, no ESN, no lifetime.
    pub fn new(
        addresses: AddressPair,
        mode: Mode,
        algorithm: Algorithm,
        selector: Selector,
        inbound: SaKeys,
        outbound: SaKeys,
    ) -> Self {
        SaPairSpec {
            addresses,
            mode,
            algorithm,
            selector,
            inbound,
            outbound,
            replay_window: DEFAULT_WINDOW,
            esn: false,
            lifetime: Lifetime::default(),
        }
    }
}

/// Why an SA could not be installed or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SadError {
    #[error(transparent)]
    Key(#[from] KeyLengthError),
    #[error("SPI 0 is reserved (RFC 4303 §2.1)")]
    ZeroSpi,
    #[error("inbound SPI {0:#010x} is already in use")]
    DuplicateSpi(u32),
    #[error("replay window {0} is larger than {MAX_WINDOW}")]
    WindowTooLarge(u32),
    #[error("no such SA: {0}")]
    NoSuchSa(SaId),
    #[error("SA addresses mix IPv4 and IPv6: {0}")]
    MixedFamilies(AddressPair),
}

/// One SA: one direction of a pair.
#[derive(Debug, Clone)]
pub struct Sa {
    pub(crate) spi: u32,
    pub(crate) direction: Direction,
    pub(crate) mode: Mode,
    pub(crate) addresses: AddressPair,
    pub(crate) selector: Selector,
    pub(crate) cipher: EspCipher,
    pub(crate) esn: bool,
    /// Outbound: the last sequence number sent.
    pub(crate) seq: u64,
    /// Outbound, when a store keeps the counter across restarts: the
    /// number it holds, which `seq` passes only once a higher one is
    /// reported (see [`super::Ipsec::keep_sequences`]).
    pub(crate) mark: Option<u64>,
    /// Inbound: the highest numbers received, which also places extended
    /// sequence numbers; `None` outbound.
    pub(crate) replay: Option<ReplayWindow>,
    /// Inbound: whether replays are refused.
    pub(crate) anti_replay: bool,
    pub(crate) lifetime: Lifetime,
    pub(crate) installed: Instant,
    pub(crate) bytes: u64,
    pub(crate) packets: u64,
    pub(crate) soft_expired: bool,
    pub(crate) pair: SaId,
    pub(crate) bundle: u32,
    /// An address change already reported to key management.
    pub(crate) reported_move: Option<AddressPair>,
    /// The deadline filed in [`Sad`] for this SA.
    pub(crate) scheduled: Option<Instant>,
}

impl Sa {
    /// When the SA dies by its hard time limit, if it has one (CN-4.7 caps
    /// a binding's lifetime by it).
    pub fn hard_deadline(&self) -> Option<Instant> {
        self.lifetime.hard_time.map(|t| self.installed + t)
    }
    pub fn spi(&self) -> u32 {
        self.spi
    }
    pub fn direction(&self) -> Direction {
        self.direction
    }
    pub fn mode(&self) -> Mode {
        self.mode
    }
    pub fn addresses(&self) -> AddressPair {
        self.addresses
    }
    pub fn selector(&self) -> &Selector {
        &self.selector
    }
    pub fn algorithm(&self) -> Algorithm {
        self.cipher.algorithm()
    }
    pub fn esn(&self) -> bool {
        self.esn
    }
    /// The other direction of the pair.
    pub fn pair(&self) -> SaId {
        self.pair
    }
    /// Outbound: the last sequence number sent; inbound: the highest
    /// received.
    pub fn sequence(&self) -> u64 {
        match self.direction {
            Direction::Outbound => self.seq,
            Direction::Inbound => self.replay.as_ref().map_or(0, ReplayWindow::top),
        }
    }
    /// The anti-replay window; 0 when replays are not refused.
    pub fn replay_window(&self) -> u32 {
        match &self.replay {
            Some(w) if self.anti_replay => w.size(),
            _ => 0,
        }
    }
    /// Payload bytes and packets through this SA.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// When the next lifetime limit falls due, if any remains.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let soft = self.lifetime.soft_time.filter(|_| !self.soft_expired);
        let at = |d: Option<Duration>| d.map(|d| self.installed + d);
        earlier(at(soft), at(self.lifetime.hard_time))
    }
}

/// The SAD.
#[derive(Debug, Default, Clone)]
pub struct Sad {
    /// Boxed: a table of a million SAs inline would size its spare
    /// capacity in whole SAs.
    sas: HashMap<SaId, Box<Sa>>,
    inbound: HashMap<u32, SaId>,
    /// Each SA's next lifetime deadline, earliest first.
    deadlines: BTreeSet<(Instant, SaId)>,
    /// The SAs by the remote side of their selector: a home agent finds a
    /// mobile node's among 100 000 nodes' without a scan.
    by_remote: HashMap<Prefix, Vec<SaId>>,
    next_id: u32,
    next_bundle: u32,
}

impl Sad {
    /// Installs a pair, in a bundle of its own; returns (inbound, outbound).
    pub fn add_pair(&mut self, now: Instant, spec: &SaPairSpec) -> Result<(SaId, SaId), SadError> {
        if spec.inbound.spi == 0 || spec.outbound.spi == 0 {
            return Err(SadError::ZeroSpi);
        }
        if self.inbound.contains_key(&spec.inbound.spi) {
            return Err(SadError::DuplicateSpi(spec.inbound.spi));
        }
        if spec.replay_window > MAX_WINDOW {
            return Err(SadError::WindowTooLarge(spec.replay_window));
        }
        let a = spec.addresses;
        if a.local.is_ipv6() != a.peer.is_ipv6() {
            return Err(SadError::MixedFamilies(a));
        }
        let cin = EspCipher::new(spec.algorithm, &spec.inbound.key)?;
        let cout = EspCipher::new(spec.algorithm, &spec.outbound.key)?;
        let (id_in, id_out) = (SaId(self.next_id), SaId(self.next_id + 1));
        self.next_id += 2;
        let bundle = self.next_bundle;
        self.next_bundle += 1;
        let sa = |spi, direction, cipher, pair| {
            Box::new(Sa {
                spi,
                direction,
                mode: spec.mode,
                addresses: a,
                selector: spec.selector.clone(),
                cipher,
                esn: spec.esn,
                seq: 0,
                mark: None,
                replay: (direction == Direction::Inbound).then(|| {
                    ReplayWindow::new(if spec.replay_window > 0 {
                        spec.replay_window
                    } else {
                        DEFAULT_WINDOW
                    })
                }),
                anti_replay: spec.replay_window > 0,
                lifetime: spec.lifetime,
                installed: now,
                bytes: 0,
                packets: 0,
                soft_expired: false,
                pair,
                bundle,
                reported_move: None,
                scheduled: None,
            })
        };
        self.sas
            .insert(id_in, sa(spec.inbound.spi, Direction::Inbound, cin, id_out));
        self.sas.insert(
            id_out,
            sa(spec.outbound.spi, Direction::Outbound, cout, id_in),
        );
        self.inbound.insert(spec.inbound.spi, id_in);
        let remote = self.by_remote.entry(spec.selector.remote).or_default();
        remote.extend([id_in, id_out]);
        self.reschedule(id_in);
        self.reschedule(id_out);
        Ok((id_in, id_out))
    }

    /// Makes the pairs of `a` and `b` siblings: one bundle, updated together.
    pub fn bundle(&mut self, a: SaId, b: SaId) -> Result<(), SadError> {
        let ba = self.get(a).ok_or(SadError::NoSuchSa(a))?.bundle;
        let bb = self.get(b).ok_or(SadError::NoSuchSa(b))?.bundle;
        for sa in self.sas.values_mut().filter(|s| s.bundle == bb) {
            sa.bundle = ba;
        }
        Ok(())
    }

    pub fn get(&self, id: SaId) -> Option<&Sa> {
        self.sas.get(&id).map(|sa| &**sa)
    }

    pub fn get_mut(&mut self, id: SaId) -> Option<&mut Sa> {
        self.sas.get_mut(&id).map(|sa| &mut **sa)
    }

    /// The inbound SA with this SPI.
    pub fn inbound_by_spi(&self, spi: u32) -> Option<SaId> {
        self.inbound.get(&spi).copied()
    }

    pub fn len(&self) -> usize {
        self.sas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sas.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (SaId, &Sa)> {
        self.sas.iter().map(|(id, sa)| (*id, &**sa))
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Sa> {
        self.sas.values_mut().map(|sa| &mut **sa)
    }

    /// The SAs whose selector's remote side is `remote`.
    pub fn by_remote(&self, remote: Prefix) -> impl Iterator<Item = (SaId, &Sa)> {
        let ids = self.by_remote.get(&remote).map_or(&[][..], Vec::as_slice);
        ids.iter()
            .filter_map(|id| self.sas.get(id).map(|sa| (*id, &**sa)))
    }

    /// Removes one SA (its pair stays until removed too).
    pub fn remove(&mut self, id: SaId) -> Option<Sa> {
        let sa = *self.sas.remove(&id)?;
        if let Some(t) = sa.scheduled {
            self.deadlines.remove(&(t, id));
        }
        if sa.direction == Direction::Inbound {
            self.inbound.remove(&sa.spi);
        }
        if let Some(ids) = self.by_remote.get_mut(&sa.selector.remote) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                self.by_remote.remove(&sa.selector.remote);
            }
        }
        Some(sa)
    }

    /// The earliest lifetime deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(t, _)| *t)
    }

    /// The SAs whose deadline has come.
    pub(crate) fn due(&self, now: Instant) -> Vec<SaId> {
        self.deadlines
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|(_, id)| *id)
            .collect()
    }

    /// Files the SA's next deadline after its soft limit fired.
    pub(crate) fn reschedule(&mut self, id: SaId) {
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        if let Some(t) = sa.scheduled.take() {
            self.deadlines.remove(&(t, id));
        }
        sa.scheduled = sa.next_deadline();
        if let Some(t) = sa.scheduled {
            self.deadlines.insert((t, id));
        }
    }

    /// Moves the pair of `id` and every sibling that shares its addresses to
    /// `new`, without rekeying: keys, sequence numbers and replay windows
    /// stay (REQ AM-C.1). Returns the SAs updated.
    pub fn update_addresses(&mut self, id: SaId, new: AddressPair) -> Result<Vec<SaId>, SadError> {
        if new.local.is_ipv6() != new.peer.is_ipv6() {
            return Err(SadError::MixedFamilies(new));
        }
        let sa = self.get(id).ok_or(SadError::NoSuchSa(id))?;
        let (old, bundle) = (sa.addresses, sa.bundle);
        let mut updated: Vec<SaId> = self
            .sas
            .iter_mut()
            .filter(|(_, s)| s.bundle == bundle && s.addresses == old)
            .map(|(sid, s)| {
                s.addresses = new;
                s.reported_move = None;
                *sid
            })
            .collect();
        updated.sort();
        Ok(updated)
    }
}
