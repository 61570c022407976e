//! R-MOBIKE (draft-smyslov-ipsecme-ikev2-r-mobike): a responder asks the
//! initiator to switch to another of its addresses.

use core::net::{IpAddr, SocketAddr};

use super::{Ike, IkeError, IkeEvent, IkeSaId, IkeState, Mobility, Request};
use crate::time::Instant;

impl Ike {
    /// Asks the initiator to move to our address `to` (REQ RM-4.2c); only
    /// a responder may, and only to an initiator that sent 'R' (RM-4.2a).
    pub fn request_switch(
        &mut self,
        now: Instant,
        sa: IkeSaId,
        to: IpAddr,
    ) -> Result<(), IkeError> {
        let ike = self.sas.get(&sa.0).ok_or(IkeError::NoSuchSa(sa))?;
        if ike.state != IkeState::Established {
            return Err(IkeError::NotEstablished(sa));
        }
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

    /// SWITCH_TO_IP_ADDRESS received; the response is empty either way.
    pub(super) fn on_switch(&mut self, now: Instant, spi: u64, to: IpAddr) {
        let r_mobike = matches!(self.cfg.mobility, Mobility::Mobike { r_mobike: true });
        let Some(sa) = self.sas.get(&spi) else {
            return;
        };
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
                self.cancel_moves(spi);
                self.enqueue(spi, Request::UpdateSaAddresses { path, cookie2 });
            }
            _ => {
                // Refused: stay, and check the current path (RM-4.2d).
                self.events.push_back(IkeEvent::SwitchRefused {
                    sa: IkeSaId(spi),
                    to,
                });
                self.request(
                    now,
                    spi,
                    Request::Probe {
                        path: None,
                        cookie2: None,
                    },
                );
            }
        }
    }
}
