//! INFORMATIONAL requests (RFC 7296 §1.4): deletes, liveness checks and
//! path probes, and the address notifications that the mobility modes add.

use core::net::SocketAddr;

use super::payloads::{find_notify, has_notify, notify, PROTO_ESP};
use super::{CloseReason, Ike};
use crate::ipsec::Ipsec;
use crate::time::Instant;
use crate::wire::ike::{IkePayload, NotifyType};

impl Ike {
    /// A deleted IKE SA goes; as rekeyed if a new one replaced it.
    pub(super) fn close_deleted(&mut self, spi: u64, ipsec: &mut Ipsec) {
        let reason = if self.sas.values().any(|s| s.replaces == Some(spi)) {
            CloseReason::Rekeyed
        } else {
            CloseReason::Deleted
        };
        self.close(spi, reason, ipsec);
    }

    /// INFORMATIONAL requests; `None` when the response is held back.
    pub(super) fn on_informational(
        &mut self,
        now: Instant,
        spi: u64,
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
                    let found = self
                        .sas
                        .get(&spi)
                        .and_then(|sa| sa.children.iter().find(|c| c.spi_out == s))
                        .map(|c| c.spi_in);
                    if let Some(i) = found {
                        ours.push(i.to_be_bytes().to_vec());
                        self.forget_child(spi, i, ipsec);
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
        self.learn_addresses(spi, payloads, &cp);
        if has_notify(payloads, NotifyType::UPDATE_SA_ADDRESSES) {
            return self.on_update_sa_addresses(spi, path, message_id, payloads, ipsec);
        }
        if let Some(n) = find_notify(payloads, cp.notify_switch_to_ip_address) {
            let to = crate::wire::ike::SwitchToIpAddress::from_notify(n).ok()?.0;
            self.on_switch(now, spi, to);
        }
        let updates: Vec<&IkePayload> = payloads
            .iter()
            .filter(|p| matches!(p, IkePayload::PeerAddressUpdate { .. }))
            .collect();
        if !updates.is_empty() {
            return self.on_address_update(spi, path, message_id, &updates, ipsec);
        }
        Some(out)
    }
}
