//! R-MOBIKE (draft-smyslov-ipsecme-ikev2-r-mobike): a responder asks the
//! initiator to switch to another of its addresses.

use core::net::{IpAddr, SocketAddr};

use super::sa::{IkeSa, Request};
use super::{Ike, IkeError, IkeEvent, IkeSaId, Mobility};
use crate::time::Instant;
use crate::wire::ike::{IkePayload, SwitchToIpAddress};

impl Ike {
    /// Asks the initiator to move to our address `to` (REQ RM-4.2c); only
    /// a responder may, and only to an initiator that sent 'R' (RM-4.2a).
    pub fn request_switch(
        &mut self,
        now: Instant,
        sa: IkeSaId,
        to: IpAddr,
    ) -> Result<(), IkeError> {
        let (ike, _) = self.established(sa)?;
        if !matches!(self.cfg.mobility, Mobility::Mobike { .. }) || !ike.mobike {
            return Err(IkeError::WrongMobility(sa));
        }
        if ike.initiator || !ike.peer_r_mobike {
            return Err(IkeError::SwitchNotAllowed);
        }
        // Our addresses stay until UPDATE_SA_ADDRESSES arrives (RM-4.2f).
        self.request(now, sa.0, Request::Switch(to));
        Ok(())
    }

    pub(super) fn switch_payloads(&self, to: IpAddr) -> Vec<IkePayload> {
        vec![IkePayload::Notify(
            SwitchToIpAddress(to).to_notify(&self.cfg.code_points),
        )]
    }

    /// SWITCH_TO_IP_ADDRESS received; the response is empty either way.
    pub(super) fn on_switch(&mut self, now: Instant, sa: &mut IkeSa, to: IpAddr) {
        let r_mobike = matches!(self.cfg.mobility, Mobility::Mobike { r_mobike: true });
        if !sa.initiator || !r_mobike || !sa.mobike {
            // From an initiator, or to one that never offered 'R' (RM-4.2b).
            self.stats.switches_ignored += 1;
            return;
        }
        let announced = sa.peer_addresses.contains(&to);
        let allowed = self.cfg.switch_policy.iter().any(|p| p.contains(to));
        let local = self
            .local_addresses
            .iter()
            .copied()
            .filter(|l| l.is_ipv6() == to.is_ipv6())
            .min_by_key(|l| *l != sa.local.ip());
        match (announced || allowed, local) {
            (true, Some(local)) => {
                // The ports stay (RM-4.2e).
                let path = (
                    SocketAddr::new(local, sa.local.port()),
                    SocketAddr::new(to, sa.remote.port()),
                );
                let cookie2 = self.nonce();
                sa.cancel_moves();
                sa.enqueue(Request::UpdateSaAddresses { path, cookie2 });
            }
            _ => {
                // Refused: stay, and check the current path (RM-4.2d).
                self.events.push_back(IkeEvent::SwitchRefused {
                    sa: IkeSaId(sa.ours),
                    to,
                });
                self.queue_request(
                    now,
                    sa,
                    Request::Probe {
                        path: None,
                        cookie2: None,
                    },
                );
            }
        }
    }
}
