//! Finding and building the payloads every exchange uses.

use crate::wire::ike::{IkePayload, Notify, NotifyType, TrafficSelector};

/// Protocol IDs (§3.3.1).
pub(super) const PROTO_IKE: u8 = 1;
pub(super) const PROTO_ESP: u8 = 3;

pub(super) fn notify(t: NotifyType, data: Vec<u8>) -> IkePayload {
    IkePayload::Notify(Notify::new(t.into(), data))
}

pub(super) fn find_notify(payloads: &[IkePayload], t: u16) -> Option<&Notify> {
    payloads.iter().find_map(|p| match p {
        IkePayload::Notify(n) if n.notify_type == t => Some(n),
        _ => None,
    })
}

pub(super) fn has_notify(payloads: &[IkePayload], t: NotifyType) -> bool {
    find_notify(payloads, t.into()).is_some()
}

pub(super) fn payload_ke(payloads: &[IkePayload]) -> Option<(u16, &[u8])> {
    payloads.iter().find_map(|p| match p {
        IkePayload::Ke { group, data } => Some((*group, data.as_slice())),
        _ => None,
    })
}

pub(super) fn payload_nonce(payloads: &[IkePayload]) -> Option<&[u8]> {
    payloads.iter().find_map(|p| match p {
        IkePayload::Nonce(n) => Some(n.as_slice()),
        _ => None,
    })
}

pub(super) fn payload_ts(
    payloads: &[IkePayload],
) -> Option<(&[TrafficSelector], &[TrafficSelector])> {
    let tsi = payloads.iter().find_map(|p| match p {
        IkePayload::TsI(t) => Some(t.as_slice()),
        _ => None,
    })?;
    let tsr = payloads.iter().find_map(|p| match p {
        IkePayload::TsR(t) => Some(t.as_slice()),
        _ => None,
    })?;
    Some((tsi, tsr))
}
