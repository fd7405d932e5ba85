//! Key requests and forwarded room keys ("Key requests", "m.forwarded_room_key"): between a
//! user's own verified devices only.
//!
//! Rules (each a named function with a test that breaks it):
//! - [`check_key_request`]: a request is answered only if it comes from another of the own
//!   user's devices, known, not deleted, and verified (by the user, or by the own
//!   cross-signing chain);
//! - [`check_reshare`]: the creator of a session also answers a device it shared the session
//!   with (of any user), with the key from the index that device got then, never earlier: so a
//!   device that lost the key to a wedged Olm session gets it again ("Recovering from
//!   undecryptable messages");
//! - `check_forwarded_key`: a forwarded key is accepted only for a session we requested, and
//!   only from another own device that is verified (stored as forwarded, not from the original
//!   sender), or from the session's creator itself, over Olm from the device whose keys the
//!   session names (stored as from its sender). Once answered, the request is cancelled at the
//!   other devices.

use ferrolm::megolm::{ExportedSessionKey, InboundGroupSession, SessionConfig};
use ferrolm::types::{Curve25519PublicKey, Ed25519PublicKey};
use ferrolm_store::{
    InboundGroupSessionRecord, OutboundShare, OutgoingRequest, RequestKind, RoomKeySource, ShareState,
};
use ruma::{OwnedDeviceId, OwnedRoomId, UserId};
use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::devices::Device;
use crate::olm_channel::{DecryptedToDeviceEvent, SenderDeviceSource};
use crate::own_device::MEGOLM_ALGORITHM;

/// Why a key request was not answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRequestRefusal {
    /// Not a request of the expected shape.
    #[error("malformed key request: {0}")]
    Malformed(String),
    /// From another user: keys are shared with other users by their sender only.
    #[error("the request comes from another user")]
    OtherUser,
    /// From a device of the own user that is unknown, deleted, or not verified.
    #[error("the requesting device is not a verified own device")]
    UnverifiedDevice,
    /// The session is not known here.
    #[error("the session is not known here")]
    UnknownSession,
    /// No Olm session with the requesting device to send the key over.
    #[error("no Olm session with the requesting device")]
    NoOlmSession,
    /// From a device of another user (or an unverified own device) that this device never
    /// shared the session with.
    #[error("the session was not shared with the requesting device")]
    NotSharedWith,
}

/// What became of one incoming key request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRequestOutcome {
    /// The request id.
    pub request_id: String,
    /// The requesting device.
    pub requesting_device_id: Option<OwnedDeviceId>,
    /// `Ok` when a forwarded key was queued; why not otherwise.
    pub result: Result<(), KeyRequestRefusal>,
}

/// Why a forwarded room key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardedKeyRejection {
    /// Not an `m.forwarded_room_key` of the expected shape.
    #[error("malformed forwarded key: {0}")]
    Malformed(String),
    /// From another user.
    #[error("forwarded by another user")]
    OtherUser,
    /// From an own device that is unknown or not verified.
    #[error("forwarded by an unverified device")]
    UnverifiedDevice,
    /// For a session we did not request.
    #[error("not requested")]
    NotRequested,
    /// The exported key belongs to another session than the one named.
    #[error("the key is for another session id")]
    SessionIdMismatch,
}

#[derive(Deserialize)]
struct RequestContent {
    action: String,
    request_id: String,
    #[serde(default)]
    requesting_device_id: Option<String>,
    #[serde(default)]
    body: Option<RequestBody>,
}

/// The body of an `m.room_key_request`.
#[derive(Deserialize, Clone, Debug)]
pub(crate) struct RequestBody {
    pub algorithm: String,
    pub room_id: String,
    pub session_id: String,
    // `sender_key` (deprecated) is ignored: sessions are looked up by room and session id.
}

/// An incoming key request, read.
#[derive(Debug, Clone)]
pub(crate) struct IncomingKeyRequest {
    pub request_id: String,
    pub requesting_device_id: Option<OwnedDeviceId>,
    /// `None` for a cancellation.
    pub body: Option<RequestBody>,
}

/// Reads an `m.room_key_request` content.
pub(crate) fn read_request(content: &Value) -> Result<IncomingKeyRequest, KeyRequestRefusal> {
    let content = RequestContent::deserialize(content).map_err(|e| KeyRequestRefusal::Malformed(e.to_string()))?;
    let body = match content.action.as_str() {
        "request" => Some(content.body.ok_or_else(|| KeyRequestRefusal::Malformed("body".into()))?),
        "request_cancellation" => None,
        other => return Err(KeyRequestRefusal::Malformed(format!("action {other}"))),
    };
    Ok(IncomingKeyRequest {
        request_id: content.request_id,
        requesting_device_id: content.requesting_device_id.map(OwnedDeviceId::from),
        body,
    })
}

/// Rule: answer only another own device that is verified (`requester_verified`: the user's
/// local trust or the own cross-signing chain, [`DeviceTrust::is_verified`]).
///
/// [`DeviceTrust::is_verified`]: crate::DeviceTrust::is_verified
pub fn check_key_request(
    own_user: &UserId,
    own_device: &ruma::DeviceId,
    sender: &UserId,
    requester: Option<&Device>,
    requester_verified: bool,
) -> Result<(), KeyRequestRefusal> {
    if sender != own_user {
        return Err(KeyRequestRefusal::OtherUser);
    }
    match requester {
        Some(d) if !d.deleted && requester_verified && d.device_id != own_device => Ok(()),
        _ => Err(KeyRequestRefusal::UnverifiedDevice),
    }
}

/// Rule: the creator of a session (`record` is its own inbound copy, whose sender key is
/// `own_curve`) answers a device it shared the session with, from the index the device got.
/// Returns that index.
pub fn check_reshare(
    own_curve: &Curve25519PublicKey,
    record: &InboundGroupSessionRecord,
    shares: &[OutboundShare],
    requester: &Device,
) -> Result<u32, KeyRequestRefusal> {
    if record.sender_key != *own_curve || requester.deleted {
        return Err(KeyRequestRefusal::NotSharedWith);
    }
    shares
        .iter()
        .find_map(|s| match s.state {
            ShareState::Shared { message_index }
                if s.user_id.as_str() == requester.user_id.as_str()
                    && s.device_id.as_str() == requester.device_id.as_str() =>
            {
                Some(message_index)
            }
            _ => None,
        })
        .ok_or(KeyRequestRefusal::NotSharedWith)
}

/// The `m.forwarded_room_key` content for `record`: from its first known index, forwarded by
/// `own_curve` (`reshare_from: None`), or as the session's creator re-sending it from the index
/// a device got (`Some(index)`, an empty forwarding chain). `None` if the index is not known.
pub(crate) fn forwarded_key_content(
    record: &InboundGroupSessionRecord,
    own_curve: &Curve25519PublicKey,
    reshare_from: Option<u32>,
) -> Option<Value> {
    let (exported, chain) = match reshare_from {
        None => (record.session.export_at_first_known_index(), vec![own_curve.to_base64()]),
        Some(index) => (record.session.export_at(index)?, Vec::new()),
    };
    let key = exported.to_base64();
    Some(json!({
        "algorithm": MEGOLM_ALGORITHM,
        "room_id": record.room_id.as_str(),
        "sender_key": record.sender_key.to_base64(),
        "session_id": record.session_id(),
        "session_key": key.as_str(),
        "sender_claimed_ed25519_key": record.claimed_signing_key.map(|k| k.to_base64()),
        "forwarding_curve25519_key_chain": chain,
    }))
}

#[derive(Deserialize)]
struct ForwardedContent {
    algorithm: String,
    room_id: String,
    sender_key: String,
    session_id: String,
    session_key: String,
    #[serde(default)]
    sender_claimed_ed25519_key: Option<String>,
}

/// Rule: accept a forwarded key only for a session we requested, and only from another
/// verified own device (identified by the Olm channel: stored as forwarded) or from the
/// session's creator (the Olm sender's keys are the session's sender keys: stored as from its
/// sender). `sender_verified`: whether the sending device is verified (local trust or the own
/// cross-signing chain). Returns the record and the id of the request it answers.
pub(crate) fn check_forwarded_key(
    own_user: &UserId,
    event: &DecryptedToDeviceEvent,
    sender_device: Option<&Device>,
    sender_verified: bool,
    requests: &[OutgoingRequest],
) -> Result<(InboundGroupSessionRecord, String), ForwardedKeyRejection> {
    let malformed = |e: &dyn std::fmt::Display| ForwardedKeyRejection::Malformed(e.to_string());
    let content = ForwardedContent::deserialize(&event.content).map_err(|e| malformed(&e))?;
    let session_key = Zeroizing::new(content.session_key);
    let from_creator = event.source == SenderDeviceSource::KnownDevice
        && sender_device.is_some_and(|d| !d.deleted)
        && content.sender_key == event.sender_curve25519_key.to_base64()
        && content.sender_claimed_ed25519_key.as_deref() == Some(event.sender_ed25519_key.to_base64().as_str());
    if !from_creator {
        if event.sender != own_user {
            return Err(ForwardedKeyRejection::OtherUser);
        }
        let verified = event.source == SenderDeviceSource::KnownDevice
            && sender_verified
            && sender_device.is_some_and(|d| !d.deleted);
        if !verified {
            return Err(ForwardedKeyRejection::UnverifiedDevice);
        }
    }
    if content.algorithm != MEGOLM_ALGORITHM {
        return Err(malformed(&"algorithm"));
    }
    let room_id = OwnedRoomId::try_from(content.room_id).map_err(|e| malformed(&e))?;
    let request_id = requests
        .iter()
        .find_map(|r| match &r.kind {
            RequestKind::RoomKey { room_id: r_room, session_id, .. }
                if r_room.as_str() == room_id.as_str() && *session_id == content.session_id =>
            {
                Some(r.request_id.clone())
            }
            _ => None,
        })
        .ok_or(ForwardedKeyRejection::NotRequested)?;
    let key = ExportedSessionKey::from_base64(session_key.as_str()).map_err(|e| malformed(&e))?;
    if key.session_id().to_base64() != content.session_id {
        return Err(ForwardedKeyRejection::SessionIdMismatch);
    }
    let sender_key = Curve25519PublicKey::from_base64(&content.sender_key).map_err(|e| malformed(&e))?;
    let claimed = content.sender_claimed_ed25519_key.as_deref().and_then(|k| Ed25519PublicKey::from_base64(k).ok());
    let record = InboundGroupSessionRecord {
        room_id: room_id.as_str().into(),
        session: InboundGroupSession::import(&key, SessionConfig::version_1()),
        sender_key,
        claimed_signing_key: claimed,
        source: if from_creator { RoomKeySource::Direct } else { RoomKeySource::Forwarded },
        backed_up: false,
        shared_history: false,
    };
    Ok((record, request_id))
}

/// The `m.room_key_request` content asking for a session.
pub(crate) fn request_content(request_id: &str, own_device: &ruma::DeviceId, room_id: &str, session_id: &str) -> Value {
    json!({
        "action": "request",
        "request_id": request_id,
        "requesting_device_id": own_device,
        "body": {"algorithm": MEGOLM_ALGORITHM, "room_id": room_id, "session_id": session_id},
    })
}

/// The `m.room_key_request` content cancelling a request.
pub(crate) fn cancellation_content(request_id: &str, own_device: &ruma::DeviceId) -> Value {
    json!({"action": "request_cancellation", "request_id": request_id, "requesting_device_id": own_device})
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolm_store::LocalTrust;
    use ruma::{device_id, user_id};

    fn device(user: &str, id: &str, trust: LocalTrust, deleted: bool) -> Device {
        crate::devices::test_device(user, id, trust, deleted)
    }

    #[test]
    fn rule_a_session_is_reshared_by_its_creator_from_the_index_a_device_got() {
        let own = ferrolm::olm::Account::new().curve25519_key();
        let outbound = ferrolm::megolm::GroupSession::new(SessionConfig::version_1());
        let own_copy = |sender_key| InboundGroupSessionRecord {
            room_id: "!r:x".into(),
            session: InboundGroupSession::new(&outbound.session_key(), SessionConfig::version_1()),
            sender_key,
            claimed_signing_key: None,
            source: RoomKeySource::Direct,
            backed_up: false,
            shared_history: false,
        };
        let bob = device("@b:x", "B1", LocalTrust::Unset, false);
        let share = |user: &str, id: &str, state| OutboundShare {
            room_id: "!r:x".into(),
            session_id: outbound.session_id().to_base64(),
            user_id: user.into(),
            device_id: id.into(),
            state,
        };
        let shared = [share("@b:x", "B1", ShareState::Shared { message_index: 5 })];
        assert_eq!(check_reshare(&own, &own_copy(own), &shared, &bob), Ok(5));
        // Not our session, not shared with this device, only withheld from it, or deleted since.
        let other = ferrolm::olm::Account::new().curve25519_key();
        assert_eq!(check_reshare(&own, &own_copy(other), &shared, &bob), Err(KeyRequestRefusal::NotSharedWith));
        let elsewhere = [share("@b:x", "B2", ShareState::Shared { message_index: 0 })];
        assert_eq!(check_reshare(&own, &own_copy(own), &elsewhere, &bob), Err(KeyRequestRefusal::NotSharedWith));
        let withheld = [share("@b:x", "B1", ShareState::Withheld { code: "m.unverified".into() })];
        assert_eq!(check_reshare(&own, &own_copy(own), &withheld, &bob), Err(KeyRequestRefusal::NotSharedWith));
        let gone = device("@b:x", "B1", LocalTrust::Unset, true);
        assert_eq!(check_reshare(&own, &own_copy(own), &shared, &gone), Err(KeyRequestRefusal::NotSharedWith));
    }

    #[test]
    fn rule_only_verified_own_devices_are_answered() {
        let me = user_id!("@a:x");
        let mine = device("@a:x", "A2", LocalTrust::Verified, false);
        assert!(check_key_request(me, device_id!("A1"), me, Some(&mine), true).is_ok());
        // Verified by the cross-signing chain, without local trust.
        let cross_signed = device("@a:x", "A2", LocalTrust::Unset, false);
        assert!(check_key_request(me, device_id!("A1"), me, Some(&cross_signed), true).is_ok());
        assert_eq!(
            check_key_request(me, device_id!("A1"), user_id!("@b:x"), Some(&mine), true),
            Err(KeyRequestRefusal::OtherUser)
        );
        for (d, verified) in [
            (device("@a:x", "A2", LocalTrust::Unset, false), false),
            (device("@a:x", "A2", LocalTrust::Verified, false), false),
            (device("@a:x", "A2", LocalTrust::Verified, true), true),
            (device("@a:x", "A1", LocalTrust::Verified, false), true),
        ] {
            assert_eq!(
                check_key_request(me, device_id!("A1"), me, Some(&d), verified),
                Err(KeyRequestRefusal::UnverifiedDevice)
            );
        }
        assert_eq!(check_key_request(me, device_id!("A1"), me, None, true), Err(KeyRequestRefusal::UnverifiedDevice));
    }

    #[test]
    fn requests_and_cancellations_are_read() {
        let request = read_request(&request_content("r1", device_id!("A2"), "!r:x", "s")).unwrap();
        assert_eq!(request.request_id, "r1");
        assert_eq!(request.body.unwrap().session_id, "s");
        let cancel = read_request(&cancellation_content("r1", device_id!("A2"))).unwrap();
        assert!(cancel.body.is_none());
        assert!(read_request(&json!({"action": "request", "request_id": "r"})).is_err());
        assert!(read_request(&json!({"action": "steal", "request_id": "r"})).is_err());
        assert!(read_request(&json!(5)).is_err());
    }
}
