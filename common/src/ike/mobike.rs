//! MOBIKE (RFC 4555): address lists and UPDATE_SA_ADDRESSES.

use core::net::{IpAddr, SocketAddr};

use super::payloads::{find_notify, has_notify, notify};
use super::{Deferred, Ike};
use crate::ipsec::Ipsec;
use crate::wire::ike::{AdditionalAddress, IkePayload, NotifyType};

impl Ike {
    /// ADDITIONAL_* for our other addresses, or NO_ADDITIONAL_ADDRESSES.
    pub(super) fn address_list(&self, local: IpAddr) -> Vec<IkePayload> {
        let others: Vec<IkePayload> = self
            .local_addresses
            .iter()
            .filter(|a| **a != local)
            .map(|a| IkePayload::Notify(AdditionalAddress(*a).to_notify()))
            .collect();
        if others.is_empty() {
            vec![notify(NotifyType::NO_ADDITIONAL_ADDRESSES, Vec::new())]
        } else {
            others
        }
    }

    /// UPDATE_SA_ADDRESSES at the responder: the IKE SA moves now, its
    /// children once the new address answers (RFC 4555 §3.5).
    pub(super) fn on_update_sa_addresses(
        &mut self,
        spi: u64,
        path: (SocketAddr, SocketAddr),
        _message_id: u32,
        payloads: &[IkePayload],
        ipsec: &mut Ipsec,
    ) -> Option<Vec<IkePayload>> {
        let sa = self.sas.get(&spi)?;
        if sa.initiator || !sa.mobike {
            return Some(Vec::new());
        }
        let cookie2 = find_notify(payloads, NotifyType::COOKIE2.into())?
            .data
            .clone();
        let mut out = Vec::new();
        let (spi_i, spi_r) = (sa.spi_i, sa.spi_r);
        if has_notify(payloads, NotifyType::NAT_DETECTION_SOURCE_IP) {
            out.extend(self.nat_detection(spi_i, spi_r, path));
        }
        out.push(notify(NotifyType::COOKIE2, cookie2));
        let moved_peer = path.1.ip() != sa.remote.ip();
        let children = Self::followers(sa);
        self.move_sa(spi, path, true, &[], ipsec);
        if self.cfg.return_routability && moved_peer {
            self.check_then_move(
                spi,
                Deferred {
                    response: None,
                    path,
                    move_ike: false,
                    children,
                    cookie2: Vec::new(),
                },
            );
        } else {
            self.move_sa(spi, path, false, &children, ipsec);
        }
        Some(out)
    }
}
