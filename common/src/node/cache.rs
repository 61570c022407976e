//! The binding cache that home agents and correspondents keep (RFC 6275
//! §9.1): an entry per home address, the sequence number window of
//! §9.5.1, and the lifetime after which an entry goes. What an entry holds
//! besides, and what lifetime it is granted, is the role's.

use core::net::Ipv6Addr;
use std::collections::{HashMap, VecDeque};

use super::core::Core;
use super::{seq_newer, Event, Persist, Removal};
use crate::ipsec::Ipsec;
use crate::time::Instant;

/// What the cache reads from a role's entry.
pub(crate) trait CacheEntry {
    /// The last accepted sequence number; `None` before the first.
    fn seq(&self) -> Option<u16>;
    fn expires(&self) -> Instant;
}

#[derive(Clone)]
pub(crate) struct BindingCache<T> {
    entries: HashMap<Ipv6Addr, Slot<T>>,
    /// A binary min-heap of (filed deadline, home), one per entry, each
    /// entry knowing its place: a deregistration or a shortened lifetime
    /// moves only its own, and it costs 24 B an entry where a B-tree set
    /// took 41.
    expiry: Pages<(Instant, Ipv6Addr)>,
}

/// A vector in fixed pages: growing never moves what is there. A vector
/// that doubles leaves its old copies free in the allocator, counted in
/// VmRSS until something small reuses them: 20 B a binding at a million.
#[derive(Clone)]
struct Pages<T> {
    pages: Vec<Vec<T>>,
}

const PAGE: usize = 4096;

impl<T: Copy> Pages<T> {
    fn len(&self) -> usize {
        self.pages
            .last()
            .map_or(0, |p| (self.pages.len() - 1) * PAGE + p.len())
    }

    fn get(&self, i: usize) -> T {
        self.pages[i / PAGE][i % PAGE]
    }

    fn set(&mut self, i: usize, v: T) {
        self.pages[i / PAGE][i % PAGE] = v;
    }

    fn push(&mut self, v: T) {
        if self.len() % PAGE == 0 {
            // The first page grows as a vector does, so a small cache
            // stays small; it stops at PAGE, a power of two.
            let capacity = if self.pages.is_empty() { 0 } else { PAGE };
            self.pages.push(Vec::with_capacity(capacity));
        }
        if let Some(page) = self.pages.last_mut() {
            page.push(v);
        }
    }

    fn pop(&mut self) {
        if let Some(page) = self.pages.last_mut() {
            page.pop();
            if page.is_empty() {
                self.pages.pop();
            }
        }
    }
}

#[derive(Clone)]
struct Slot<T> {
    entry: T,
    /// Its deadline's place in `expiry`. The deadline filed is never after
    /// the entry's `expires()`: a refresh that extends the lifetime
    /// (nearly every BU) leaves it, and it is filed again when it comes,
    /// so that a million-binding cache does not reorder its deadlines for
    /// every BU.
    at: usize,
}

impl<T> Default for BindingCache<T> {
    fn default() -> Self {
        BindingCache {
            entries: HashMap::new(),
            expiry: Pages { pages: vec![] },
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
        let Some(slot) = self.entries.get_mut(&home) else {
            self.add(home, entry);
            return;
        };
        slot.entry = entry;
        let at = slot.at;
        if expires < self.expiry.get(at).0 {
            self.expiry.set(at, (expires, home));
            self.sift_up(at);
        }
    }

    /// The entry for `home`, out of the cache (no event) until it is put
    /// back with [`BindingCache::insert`].
    pub fn take(&mut self, home: Ipv6Addr) -> Option<T> {
        let s = self.entries.remove(&home)?;
        self.unfile(s.at);
        Some(s.entry)
    }

    /// A binding deregistered (lifetime 0, or the home address as care-of
    /// address) goes at once.
    pub fn deregister(&mut self, home: Ipv6Addr, core: &mut Core) {
        if let Some(s) = self.entries.remove(&home) {
            self.unfile(s.at);
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
        while self.next_expiry().is_some_and(|due| due <= now) {
            let home = self.expiry.get(0).1;
            let expires = self.entries.get(&home).map(|s| s.entry.expires());
            match expires {
                Some(expires) if expires > now => {
                    self.expiry.set(0, (expires, home));
                    self.sift_down(0);
                }
                _ => {
                    self.entries.remove(&home);
                    self.unfile(0);
                    core.event(Event::BindingRemoved {
                        home,
                        reason: Removal::Expired,
                    });
                    gone.push(home);
                }
            }
        }
        gone
    }

    /// When [`BindingCache::expire`] has work: an entry's end, or its
    /// filed deadline to be moved on.
    pub fn next_expiry(&self) -> Option<Instant> {
        (self.expiry.len() > 0).then(|| self.expiry.get(0).0)
    }

    fn add(&mut self, home: Ipv6Addr, entry: T) {
        let at = self.expiry.len();
        self.expiry.push((entry.expires(), home));
        self.entries.insert(home, Slot { entry, at });
        self.sift_up(at);
    }

    /// Takes the deadline at `at` out of the heap (its entry is gone).
    fn unfile(&mut self, at: usize) {
        let last = self.expiry.len() - 1;
        self.swap(at, last);
        self.expiry.pop();
        if at < last {
            self.sift_down(at);
            self.sift_up(at);
        }
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.expiry.get(parent).0 <= self.expiry.get(i).0 {
                return;
            }
            self.swap(i, parent);
            i = parent;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let (left, right) = (2 * i + 1, 2 * i + 2);
            if left >= self.expiry.len() {
                return;
            }
            let child = if right < self.expiry.len()
                && self.expiry.get(right).0 < self.expiry.get(left).0
            {
                right
            } else {
                left
            };
            if self.expiry.get(i).0 <= self.expiry.get(child).0 {
                return;
            }
            self.swap(i, child);
            i = child;
        }
    }

    /// Swaps two deadlines and tells their entries.
    fn swap(&mut self, i: usize, j: usize) {
        let (a, b) = (self.expiry.get(i), self.expiry.get(j));
        self.expiry.set(i, b);
        self.expiry.set(j, a);
        for k in [i, j] {
            if let Some(s) = self.entries.get_mut(&self.expiry.get(k).1) {
                s.at = k;
            }
        }
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

    /// Inserts, refreshes (longer or shorter), deregistrations and
    /// expiries in a pseudo-random order against a plain map of lifetimes:
    /// the same entries go at the same time, and the heap stays one
    /// deadline an entry, each where its entry says, none after its end.
    #[test]
    fn the_deadline_heap_follows_a_model_of_lifetimes() {
        let (mut core, mut cache) = (core(), BindingCache::default());
        let mut model: HashMap<Ipv6Addr, Instant> = HashMap::new();
        let mut x: u64 = 7;
        let mut next = |n: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % n
        };
        let (mut now, mut most) = (at(0), 0);
        // Homes enough for the heap to cross pages.
        for step in 0..30_000 {
            let home = Ipv6Addr::from(0x2001_0db8_0001_u128 << 80 | u128::from(next(8_192)));
            match next(10) {
                0 => {
                    cache.deregister(home, &mut core);
                    model.remove(&home);
                }
                1 => {
                    now += Duration::from_millis(next(30));
                    let mut gone = cache.expire(now, &mut core);
                    let mut expected: Vec<Ipv6Addr> = model
                        .iter()
                        .filter(|(_, e)| **e <= now)
                        .map(|(h, _)| *h)
                        .collect();
                    model.retain(|_, e| *e > now);
                    gone.sort();
                    expected.sort();
                    assert_eq!(gone, expected);
                }
                _ => {
                    let expires = now + Duration::from_millis(1 + next(60_000));
                    cache.insert(home, Lives(expires));
                    model.insert(home, expires);
                }
            }
            assert_eq!(cache.len(), model.len());
            assert_eq!(cache.expiry.len(), cache.entries.len());
            most = most.max(cache.len());
            if step % 1_000 != 0 {
                continue;
            }
            for i in 0..cache.expiry.len() {
                let (due, home) = cache.expiry.get(i);
                let slot = &cache.entries[&home];
                assert_eq!(slot.at, i);
                assert!(due <= slot.entry.0);
                assert!(i == 0 || cache.expiry.get((i - 1) / 2).0 <= due);
            }
        }
        assert!(most > PAGE, "{most}");
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
