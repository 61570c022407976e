//! The binding cache that home agents and correspondents keep (RFC 6275
//! §9.1): an entry per home address, the sequence number window of
//! §9.5.1, and the lifetime after which an entry goes. What an entry holds
//! besides, and what lifetime it is granted, is the role's.

use core::net::Ipv6Addr;
use std::collections::{HashMap, VecDeque};

use super::core::Core;
use super::{seq_newer, Event, Persist, Removal};
use crate::ipsec::Ipsec;
use crate::time::{Deadlines, Instant};

/// What the cache reads from a role's entry.
pub(crate) trait CacheEntry {
    /// The last accepted sequence number; `None` before the first.
    fn seq(&self) -> Option<u16>;
    fn expires(&self) -> Instant;
}

#[derive(Clone)]
pub(crate) struct BindingCache<T> {
    entries: HashMap<Ipv6Addr, T>,
    /// Each entry's `expires()`, kept in step by every change here.
    expiry: Deadlines<Ipv6Addr>,
}

impl<T> Default for BindingCache<T> {
    fn default() -> Self {
        BindingCache {
            entries: HashMap::new(),
            expiry: Deadlines::default(),
        }
    }
}

impl<T: CacheEntry> BindingCache<T> {
    pub fn get(&self, home: Ipv6Addr) -> Option<&T> {
        self.entries.get(&home)
    }

    /// For the role's own fields: a new lifetime goes through
    /// [`BindingCache::insert`].
    pub fn get_mut(&mut self, home: Ipv6Addr) -> Option<&mut T> {
        self.entries.get_mut(&home)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (Ipv6Addr, &T)> + '_ {
        self.entries.iter().map(|(home, e)| (*home, e))
    }

    pub fn last_seq(&self, home: Ipv6Addr) -> Option<u16> {
        self.get(home)?.seq()
    }

    /// `entry` for `home`, in place of any other, until its `expires()`.
    pub fn insert(&mut self, home: Ipv6Addr, entry: T) {
        let expires = entry.expires();
        let old = self.entries.insert(home, entry).map(|e| e.expires());
        self.expiry.reschedule(home, old, Some(expires));
    }

    /// The entry for `home`, made by `make` if there is none.
    pub fn get_or_insert_with(&mut self, home: Ipv6Addr, make: impl FnOnce() -> T) -> &mut T {
        self.entries.entry(home).or_insert_with(|| {
            let e = make();
            self.expiry.reschedule(home, None, Some(e.expires()));
            e
        })
    }

    /// A binding deregistered (lifetime 0, or the home address as care-of
    /// address) goes at once.
    pub fn deregister(&mut self, home: Ipv6Addr, core: &mut Core) {
        if let Some(e) = self.entries.remove(&home) {
            self.expiry.reschedule(home, Some(e.expires()), None);
            core.event(Event::BindingRemoved {
                home,
                reason: Removal::Deregistered,
            });
        }
    }

    /// Removes the entries whose lifetime is over, and says whose they were.
    pub fn expire(&mut self, now: Instant, core: &mut Core) -> Vec<Ipv6Addr> {
        let mut gone = vec![];
        while let Some(home) = self.expiry.pop_due(now) {
            if self.entries.remove(&home).is_some() {
                core.event(Event::BindingRemoved {
                    home,
                    reason: Removal::Expired,
                });
                gone.push(home);
            }
        }
        gone
    }

    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiry.next()
    }
}

/// RFC 6275 §9.5.1: a BU's sequence number must be newer than the last one
/// accepted for its home address; `Err` carries that one, for the BA.
pub(crate) fn check_seq(seq: u16, last: Option<u16>) -> Result<(), u16> {
    match last {
        Some(last) if !seq_newer(seq, last) => Err(last),
        _ => Ok(()),
    }
}

/// What a role with a binding cache reports for its store
/// ([`super::Engine::poll_persist`]): nothing until it is restored.
#[derive(Debug, Default, Clone)]
pub(crate) struct Journal(Option<VecDeque<Persist>>);

impl Journal {
    /// From now on, changes are recorded.
    pub fn start(&mut self) {
        self.0.get_or_insert_with(VecDeque::new);
    }

    pub fn record(&mut self, p: Persist) {
        if let Some(q) = &mut self.0 {
            q.push_back(p);
        }
    }

    /// Starts recording and takes back what a store kept: `ipsec`'s
    /// sequence marks, and the bindings still alive for a home address
    /// `serves` accepts (home, care-of, seq, expiry); the others are
    /// recorded gone.
    pub fn restore(
        &mut self,
        now: Instant,
        saved: &[Persist],
        ipsec: &mut Ipsec,
        serves: impl Fn(Ipv6Addr) -> bool,
    ) -> Vec<(Ipv6Addr, Ipv6Addr, u16, Instant)> {
        self.start();
        let (mut bound, mut marks) = (vec![], vec![]);
        for p in saved {
            match *p {
                Persist::Bound {
                    home,
                    care_of,
                    seq,
                    expires,
                } if expires > now && serves(home) => bound.push((home, care_of, seq, expires)),
                Persist::Bound { home, .. } => self.record(Persist::Unbound { home }),
                Persist::SequenceMark { spi, mark } => marks.push((spi, mark)),
                Persist::Unbound { .. } => {}
            }
        }
        ipsec.keep_sequences(&marks);
        bound
    }

    /// The next record: binding changes first, then `ipsec`'s marks.
    pub fn poll(&mut self, ipsec: &mut Ipsec) -> Option<Persist> {
        if let Some(p) = self.0.as_mut().and_then(VecDeque::pop_front) {
            return Some(p);
        }
        let (spi, mark) = ipsec.poll_sequence_mark()?;
        Some(Persist::SequenceMark { spi, mark })
    }
}
