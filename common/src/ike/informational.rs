//! INFORMATIONAL (RFC 7296 §1.4): deletes, liveness checks and path
//! probes, and the dispatch of the requests the mobility modes add.

use core::net::SocketAddr;

use super::config::Mobility;
use super::payloads::{find_notify, has_notify, notify, PROTO_ESP, PROTO_IKE};
use super::sa::IkeSa;
use super::{CloseReason, Ike, Verdict};
use crate::ipsec::Ipsec;
use crate::time::Instant;
use crate::wire::ike::{IkePayload, NotifyType, SwitchToIpAddress};

impl Ike {
    /// A deleted IKE SA goes; as rekeyed if a new one replaced it.
    pub(super) fn deleted(&self, sa: &IkeSa) -> Verdict {
        let replaced = sa
            .established()
            .and_then(|e| e.replaced_by)
            .is_some_and(|new| self.sas.contains_key(&new));
        Verdict::Close(if replaced {
            CloseReason::Rekeyed
        } else {
            CloseReason::Deleted
        })
    }

    /// An empty INFORMATIONAL, with COOKIE2 for a return-routability
    /// check; off the SA's path an addrmgmt one says where it comes from.
    pub(super) fn probe_payloads(
        &self,
        current: (SocketAddr, SocketAddr),
        path: (SocketAddr, SocketAddr),
        cookie2: &Option<Vec<u8>>,
    ) -> Vec<IkePayload> {
        let mut p = Vec::new();
        if let Some(c) = cookie2 {
            p.push(notify(NotifyType::COOKIE2, c.clone()));
        }
        if self.cfg.mobility == Mobility::AddrMgmt && path != current {
            p.extend(self.peer_address_notifications(path.0, path.1));
        }
        p
    }

    /// INFORMATIONAL requests; `None` when the response is held back.
    pub(super) fn on_informational(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        path: (SocketAddr, SocketAddr),
        message_id: u32,
        payloads: &[IkePayload],
        ipsec: &mut Ipsec,
    ) -> Option<Vec<IkePayload>> {
        let cp = self.cfg.code_points;
        let mut out = Vec::new();
        for p in payloads {
            if let IkePayload::Delete {
                protocol: PROTO_ESP,
                spis,
                ..
            } = p
            {
                let mut ours = Vec::new();
                for s in spis {
                    let Ok(s) = <[u8; 4]>::try_from(s.as_slice()) else {
                        continue;
                    };
                    let s = u32::from_be_bytes(s);
                    let found = sa.children.iter().find(|c| c.spi_out == s);
                    if let Some(i) = found.map(|c| c.spi_in) {
                        ours.push(i.to_be_bytes().to_vec());
                        self.forget_child(sa, i, ipsec);
                    }
                }
                if !ours.is_empty() {
                    out.push(IkePayload::Delete {
                        protocol: PROTO_ESP,
                        spi_size: 4,
                        spis: ours,
                    });
                }
            }
        }
        if let Some(c) = find_notify(payloads, NotifyType::COOKIE2.into()) {
            if !has_notify(payloads, NotifyType::UPDATE_SA_ADDRESSES) {
                // A return-routability check: echo the cookie.
                out.push(notify(NotifyType::COOKIE2, c.data.clone()));
            }
        }
        self.learn_addresses(sa, payloads);
        if has_notify(payloads, NotifyType::UPDATE_SA_ADDRESSES) {
            return self.on_update_sa_addresses(sa, path, payloads, ipsec);
        }
        if let Some(n) = find_notify(payloads, cp.notify_switch_to_ip_address) {
            let to = SwitchToIpAddress::from_notify(n).ok()?.0;
            self.on_switch(now, sa, to);
        }
        let updates: Vec<&IkePayload> = payloads
            .iter()
            .filter(|p| matches!(p, IkePayload::PeerAddressUpdate { .. }))
            .collect();
        if !updates.is_empty() {
            return self.on_address_update(sa, path, message_id, &updates, ipsec);
        }
        Some(out)
    }
}

/// A Delete of the IKE SA, or of these children by inbound SPI; `None`
/// when there is nothing left to delete.
pub(super) fn delete_payloads(ike: bool, spis: &[u32]) -> Option<Vec<IkePayload>> {
    if ike {
        return Some(vec![IkePayload::Delete {
            protocol: PROTO_IKE,
            spi_size: 0,
            spis: Vec::new(),
        }]);
    }
    if spis.is_empty() {
        return None;
    }
    Some(vec![IkePayload::Delete {
        protocol: PROTO_ESP,
        spi_size: 4,
        spis: spis.iter().map(|s| s.to_be_bytes().to_vec()).collect(),
    }])
}
