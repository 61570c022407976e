//! The binding cache that home agents and correspondents keep (RFC 6275
//! §9.1): an entry per home address, the sequence number window of
//! §9.5.1, and the lifetime after which an entry goes. What an entry holds
//! besides, and what lifetime it is granted, is the role's.

use core::hash::BuildHasher;
use core::net::Ipv6Addr;
use std::collections::VecDeque;

use hashbrown::{DefaultHashBuilder, HashTable};

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
    /// The entries, each with the deadline filed for it: a binary
    /// min-heap by that deadline. Kept dense, with the hash table holding
    /// only places, because a table at a million is half empty after
    /// doubling: each byte of what it holds costs two.
    heap: Pages<Slot<T>>,
    /// Each home address's place in `heap`, hashed by the address.
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

#[derive(Clone)]
struct Slot<T> {
    /// Never after the entry's `expires()`: a refresh that extends the
    /// lifetime (nearly every BU) leaves it, and it is filed again when it
    /// comes, so that a million-binding cache does not reorder its
    /// deadlines for every BU.
    due: Instant,
    home: Ipv6Addr,
    entry: T,
}

/// A vector in fixed pages: growing never moves what is there. A vector
/// that doubles leaves its old copies free in the allocator, counted in
/// VmRSS until something small reuses them: 20 B a binding at a million.
#[derive(Clone)]
struct Pages<T> {
    pages: Vec<Vec<T>>,
}

const PAGE: usize = 4096;

impl<T> Pages<T> {
    fn len(&self) -> usize {
        self.pages
            .last()
            .map_or(0, |p| (self.pages.len() - 1) * PAGE + p.len())
    }

    fn get(&self, i: usize) -> &T {
        &self.pages[i / PAGE][i % PAGE]
    }

    fn get_mut(&mut self, i: usize) -> &mut T {
        &mut self.pages[i / PAGE][i % PAGE]
    }

    fn swap(&mut self, i: usize, j: usize) {
        let (pi, pj) = (i / PAGE, j / PAGE);
        if pi == pj {
            self.pages[pi].swap(i % PAGE, j % PAGE);
            return;
        }
        let (lo, hi) = if pi < pj { (i, j) } else { (j, i) };
        let (below, above) = self.pages.split_at_mut(hi / PAGE);
        core::mem::swap(&mut below[lo / PAGE][lo % PAGE], &mut above[0][hi % PAGE]);
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

    fn pop(&mut self) -> Option<T> {
        let page = self.pages.last_mut()?;
        let v = page.pop();
        if page.is_empty() {
            self.pages.pop();
        }
        v
    }

    fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.pages.iter().flatten()
    }
}

impl<T> Default for BindingCache<T> {
    fn default() -> Self {
        BindingCache {
            heap: Pages { pages: vec![] },
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
        }
    }
}

impl<T: CacheEntry> BindingCache<T> {
    fn place(&self, home: Ipv6Addr) -> Option<usize> {
        let hash = self.hasher.hash_one(home);
        let at = self
            .index
            .find(hash, |&i| self.heap.get(i as usize).home == home)?;
        Some(*at as usize)
    }

    pub fn get(&self, home: Ipv6Addr) -> Option<&T> {
        let at = self.place(home)?;
        Some(&self.heap.get(at).entry)
    }

    /// For the role's own fields: a shorter lifetime goes through
    /// [`BindingCache::insert`].
    pub fn get_mut(&mut self, home: Ipv6Addr) -> Option<&mut T> {
        let at = self.place(home)?;
        Some(&mut self.heap.get_mut(at).entry)
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (Ipv6Addr, &T)> + '_ {
        self.heap.iter().map(|s| (s.home, &s.entry))
    }

    pub fn last_seq(&self, home: Ipv6Addr) -> Option<u16> {
        self.get(home)?.seq()
    }

    /// `entry` for `home`, in place of any other, until its `expires()`.
    pub fn insert(&mut self, home: Ipv6Addr, entry: T) {
        let due = entry.expires();
        let Some(at) = self.place(home) else {
            self.add(Slot { due, home, entry });
            return;
        };
        let slot = self.heap.get_mut(at);
        slot.entry = entry;
        if due < slot.due {
            slot.due = due;
            self.sift_up(at);
        }
    }

    /// The entry for `home`, out of the cache (no event) until it is put
    /// back with [`BindingCache::insert`].
    pub fn take(&mut self, home: Ipv6Addr) -> Option<T> {
        let at = self.place(home)?;
        self.remove(at).map(|s| s.entry)
    }

    /// A binding deregistered (lifetime 0, or the home address as care-of
    /// address) goes at once.
    pub fn deregister(&mut self, home: Ipv6Addr, core: &mut Core) {
        if self.take(home).is_some() {
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
            let top = self.heap.get_mut(0);
            let expires = top.entry.expires();
            if expires > now {
                top.due = expires;
                self.sift_down(0);
            } else if let Some(Slot { home, .. }) = self.remove(0) {
                core.event(Event::BindingRemoved {
                    home,
                    reason: Removal::Expired,
                });
                gone.push(home);
            }
        }
        gone
    }

    /// When [`BindingCache::expire`] has work: an entry's end, or its
    /// filed deadline to be moved on.
    pub fn next_expiry(&self) -> Option<Instant> {
        (self.heap.len() > 0).then(|| self.heap.get(0).due)
    }

    fn add(&mut self, slot: Slot<T>) {
        let at = self.heap.len();
        let BindingCache {
            heap,
            index,
            hasher,
        } = self;
        let hash = hasher.hash_one(slot.home);
        heap.push(slot);
        index.insert_unique(hash, at as u32, |&i| {
            hasher.hash_one(heap.get(i as usize).home)
        });
        self.sift_up(at);
    }

    /// Takes the entry at `at` out of the heap and the index.
    fn remove(&mut self, at: usize) -> Option<Slot<T>> {
        let last = self.heap.len().checked_sub(1)?;
        self.swap(at, last);
        let home = self.heap.get(last).home;
        if let Ok(place) = self
            .index
            .find_entry(self.hasher.hash_one(home), |&i| i as usize == last)
        {
            place.remove();
        }
        let slot = self.heap.pop();
        if at < last {
            self.sift_down(at);
            self.sift_up(at);
        }
        slot
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.heap.get(parent).due <= self.heap.get(i).due {
                return;
            }
            self.swap(i, parent);
            i = parent;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let len = self.heap.len();
        loop {
            let (left, right) = (2 * i + 1, 2 * i + 2);
            if left >= len {
                return;
            }
            let child = if right < len && self.heap.get(right).due < self.heap.get(left).due {
                right
            } else {
                left
            };
            if self.heap.get(i).due <= self.heap.get(child).due {
                return;
            }
            self.swap(i, child);
            i = child;
        }
    }

    /// Swaps two entries and tells the index.
    fn swap(&mut self, i: usize, j: usize) {
        if i == j {
            return;
        }
        let hashes = [i, j].map(|k| self.hasher.hash_one(self.heap.get(k).home));
        let places = [i, j].map(|k| k as u32);
        if let [Some(a), Some(b)] = self.index.get_many_mut(hashes, |n, &k| k == places[n]) {
            (*a, *b) = (places[1], places[0]);
        }
        self.heap.swap(i, j);
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
    use hashbrown::HashMap;

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
            assert_eq!(cache.index.len(), cache.heap.len());
            most = most.max(cache.len());
            if step % 1_000 != 0 {
                continue;
            }
            for i in 0..cache.heap.len() {
                let slot = cache.heap.get(i);
                assert_eq!(cache.place(slot.home), Some(i));
                assert!(slot.due <= slot.entry.0);
                assert!(i == 0 || cache.heap.get((i - 1) / 2).due <= slot.due);
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
