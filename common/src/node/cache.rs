//! The binding cache that home agents and correspondents keep (RFC 6275
//! §9.1): an entry per home address, the sequence number window of
//! §9.5.1, and the lifetime after which an entry goes. What an entry holds
//! besides, and what lifetime it is granted, is the role's.

use core::net::Ipv6Addr;
use std::collections::hash_map::Entry;
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
    entries: HashMap<Ipv6Addr, Slot<T>>,
    /// One deadline per entry, its `filed` one.
    expiry: Deadlines<Ipv6Addr>,
}

#[derive(Clone)]
struct Slot<T> {
    entry: T,
    /// The deadline filed in `expiry`: never after the entry's `expires()`.
    /// A refresh that extends the lifetime (nearly every BU) leaves it, and
    /// it is filed again when it comes, so that a million-binding cache
    /// does not reorder its deadlines for every BU.
    filed: Instant,
}

impl<T: CacheEntry> Slot<T> {
    /// A new entry for `home`, its end filed in `expiry`.
    fn filed(expiry: &mut Deadlines<Ipv6Addr>, home: Ipv6Addr, entry: T) -> Self {
        let filed = entry.expires();
        expiry.reschedule(home, None, Some(filed));
        Slot { entry, filed }
    }
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
        self.entries.get(&home).map(|s| &s.entry)
    }

    /// For the role's own fields: a shorter lifetime goes through
    /// [`BindingCache::insert`].
    pub fn get_mut(&mut self, home: Ipv6Addr) -> Option<&mut T> {
        self.entries.get_mut(&home).map(|s| &mut s.entry)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (Ipv6Addr, &T)> + '_ {
        self.entries.iter().map(|(home, s)| (*home, &s.entry))
    }

    pub fn last_seq(&self, home: Ipv6Addr) -> Option<u16> {
        self.get(home)?.seq()
    }

    /// `entry` for `home`, in place of any other, until its `expires()`.
    pub fn insert(&mut self, home: Ipv6Addr, entry: T) {
        let expires = entry.expires();
        match self.entries.entry(home) {
            Entry::Occupied(mut o) => {
                let slot = o.get_mut();
                slot.entry = entry;
                if expires < slot.filed {
                    self.expiry
                        .reschedule(home, Some(slot.filed), Some(expires));
                    slot.filed = expires;
                }
            }
            Entry::Vacant(v) => {
                v.insert(Slot::filed(&mut self.expiry, home, entry));
            }
        }
    }

    /// The entry for `home`, made by `make` if there is none.
    pub fn get_or_insert_with(&mut self, home: Ipv6Addr, make: impl FnOnce() -> T) -> &mut T {
        let slot = self
            .entries
            .entry(home)
            .or_insert_with(|| Slot::filed(&mut self.expiry, home, make()));
        &mut slot.entry
    }

    /// A binding deregistered (lifetime 0, or the home address as care-of
    /// address) goes at once.
    pub fn deregister(&mut self, home: Ipv6Addr, core: &mut Core) {
        if let Some(s) = self.entries.remove(&home) {
            self.expiry.reschedule(home, Some(s.filed), None);
            core.event(Event::BindingRemoved {
                home,
                reason: Removal::Deregistered,
            });
        }
    }

    /// Removes the entries whose lifetime is over, and says whose they were;
    /// files again those whose lifetime was extended.
    pub fn expire(&mut self, now: Instant, core: &mut Core) -> Vec<Ipv6Addr> {
        let mut gone = vec![];
        while let Some(home) = self.expiry.pop_due(now) {
            let Some(slot) = self.entries.get_mut(&home) else {
                continue;
            };
            let expires = slot.entry.expires();
            if expires > now {
                slot.filed = expires;
                self.expiry.reschedule(home, None, Some(expires));
                continue;
            }
            self.entries.remove(&home);
            core.event(Event::BindingRemoved {
                home,
                reason: Removal::Expired,
            });
            gone.push(home);
        }
        gone
    }

    /// When [`BindingCache::expire`] has work: an entry's end, or its
    /// filed deadline to be moved on.
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

#[cfg(test)]
mod test {
    use super::*;
    use crate::time::Duration;
    use crate::wire::CodePoints;

    #[derive(Clone)]
    struct Lives(Instant);

    impl CacheEntry for Lives {
        fn seq(&self) -> Option<u16> {
            None
        }
        fn expires(&self) -> Instant {
            self.0
        }
    }

    const HOME: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x100);

    fn at(s: u64) -> Instant {
        Instant::ZERO + Duration::from_secs(s)
    }

    fn core() -> Core {
        Core::new(Ipsec::default(), None, 1, CodePoints::default())
    }

    #[test]
    fn an_extended_binding_lives_its_new_lifetime_and_a_shortened_one_goes_at_its_end() {
        let (mut core, mut cache) = (core(), BindingCache::default());
        cache.insert(HOME, Lives(at(10)));
        // Extended: the deadline filed stays, so the cache wakes at 10 s,
        // finds the entry alive and files its end.
        cache.insert(HOME, Lives(at(30)));
        assert_eq!(cache.next_expiry(), Some(at(10)));
        assert!(cache.expire(at(10), &mut core).is_empty());
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.next_expiry(), Some(at(30)));
        // Shortened: filed again at once, and no deadline is left behind.
        cache.insert(HOME, Lives(at(20)));
        assert_eq!(cache.next_expiry(), Some(at(20)));
        assert!(cache.expire(at(19), &mut core).is_empty());
        assert_eq!(cache.expire(at(20), &mut core), vec![HOME]);
        assert_eq!(cache.len(), 0);
        assert_eq!(cache.next_expiry(), None);
    }

    #[test]
    fn a_deregistered_binding_leaves_no_deadline() {
        let (mut core, mut cache) = (core(), BindingCache::default());
        cache.insert(HOME, Lives(at(10)));
        cache.insert(HOME, Lives(at(30)));
        cache.deregister(HOME, &mut core);
        assert_eq!(cache.next_expiry(), None);
    }
}
