//! The addresses a home agent answers for, hashed by their solicited-node
//! group (the address's low 24 bits, RFC 4291 §2.7.1) rather than by the
//! whole address: the other members of a group share its probe sequence,
//! so whether the group is still needed when one leaves is a lookup, and
//! no count per group is kept beside the table (44 B a binding at a
//! million). Addresses that share their low 24 bits (the same interface
//! identifier under several home prefixes) share a probe sequence too.

use core::hash::BuildHasher;
use core::net::Ipv6Addr;

use hashbrown::hash_table::Entry;
use hashbrown::{DefaultHashBuilder, HashTable};

use super::Proxy;
use crate::wire::nd::solicited_node;

#[derive(Clone, Default)]
pub(super) struct Proxies {
    table: HashTable<(Ipv6Addr, Proxy)>,
    hasher: DefaultHashBuilder,
}

/// What of an address its solicited-node group keeps.
fn group_bits(a: Ipv6Addr) -> u32 {
    let o = a.octets();
    u32::from_be_bytes([0, o[13], o[14], o[15]])
}

impl Proxies {
    fn hash(&self, bits: u32) -> u64 {
        self.hasher.hash_one(bits)
    }

    pub(super) fn get(&self, address: Ipv6Addr) -> Option<Proxy> {
        let hash = self.hash(group_bits(address));
        self.table.find(hash, |e| e.0 == address).map(|e| e.1)
    }

    pub(super) fn get_mut(&mut self, address: Ipv6Addr) -> Option<&mut Proxy> {
        let hash = self.hash(group_bits(address));
        self.table
            .find_mut(hash, |e| e.0 == address)
            .map(|e| &mut e.1)
    }

    pub(super) fn contains(&self, address: Ipv6Addr) -> bool {
        self.get(address).is_some()
    }

    /// Sets what `address` is; returns what it was.
    pub(super) fn insert(&mut self, address: Ipv6Addr, proxy: Proxy) -> Option<Proxy> {
        let Proxies { table, hasher } = self;
        let hash = hasher.hash_one(group_bits(address));
        let rehash = |e: &(Ipv6Addr, Proxy)| hasher.hash_one(group_bits(e.0));
        match table.entry(hash, |e| e.0 == address, rehash) {
            Entry::Occupied(mut o) => Some(core::mem::replace(&mut o.get_mut().1, proxy)),
            Entry::Vacant(v) => {
                v.insert((address, proxy));
                None
            }
        }
    }

    pub(super) fn remove(&mut self, address: Ipv6Addr) -> Option<Proxy> {
        let hash = self.hash(group_bits(address));
        let entry = self.table.find_entry(hash, |e| e.0 == address).ok()?;
        Some(entry.remove().0 .1)
    }

    /// Whether a proxied address is in multicast group `group`.
    pub(super) fn in_group(&self, group: Ipv6Addr) -> bool {
        if solicited_node(group) != group {
            return false;
        }
        let bits = group_bits(group);
        let hash = self.hash(bits);
        self.table.find(hash, |e| group_bits(e.0) == bits).is_some()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (Ipv6Addr, Proxy)> + '_ {
        self.table.iter().copied()
    }
}
