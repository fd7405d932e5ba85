//! Incoming room keys: `m.room_key` accepted only over Olm, from the device whose Olm key
//! sent it, and only improving what is stored; withheld notices kept per session.
//!
//! Rules (each a named function with a test that breaks it):
//! - `check_room_key_content`: Megolm, a room id, a session key whose signature verifies
//!   and whose session id is the one named;
//! - `check_room_key_update`: a stored key is replaced only by a connected one with a lower
//!   first index from the same sender key; never by a worse one, never by another sender's.
//!
//! (`m.room_key` in the clear and Megolm-encrypted to-device events are refused before they
//! get here, by the Olm channel.)

use ferrolm::megolm::{InboundGroupSession, SessionConfig, SessionKey, SessionOrdering};
use ferrolm::types::{Curve25519PublicKey, Ed25519PublicKey};
use ferrolm_store::{InboundGroupSessionRecord, RoomKeySource, WithheldNotice};
use ruma::{OwnedRoomId, OwnedUserId};
use serde::Deserialize;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::own_device::MEGOLM_ALGORITHM;

/// A room key that arrived (the app retries the events this session decrypts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomKeyInfo {
    /// The room.
    pub room_id: OwnedRoomId,
    /// The Megolm session id.
    pub session_id: String,
    /// Who sent it.
    pub sender: OwnedUserId,
    /// The Curve25519 key of the device that sent it over Olm.
    pub sender_key: Curve25519PublicKey,
    /// The first message index it decrypts.
    pub first_known_index: u32,
}

/// Why a room key was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomKeyRejection {
    /// The content is not an `m.room_key` of the expected shape.
    #[error("malformed m.room_key: {0}")]
    Malformed(String),
    /// Not `m.megolm.v1.aes-sha2`.
    #[error("unsupported room key algorithm {0}")]
    UnsupportedAlgorithm(String),
    /// The session key's signature does not verify.
    #[error("the session key is invalid")]
    InvalidSessionKey,
    /// The session key belongs to another session than the one named.
    #[error("the session key is for another session id")]
    SessionIdMismatch,
    /// A key for this session came from another device: the stored one stays.
    #[error("the stored key for this session came from another device")]
    OtherSender,
    /// Not connected to the stored key of the same session id (a forged key).
    #[error("the key is not connected to the stored key of this session")]
    Unconnected,
    /// The stored key already decrypts as much or more (not an error: reported so the app
    /// knows nothing changed).
    #[error("the stored key is as good or better")]
    NotBetter,
    /// A forwarded key that the forwarding rules refuse.
    #[error("forwarded key refused: {0}")]
    Forwarded(crate::key_requests::ForwardedKeyRejection),
}

/// The outcome of one `m.room_key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomKeyOutcome {
    /// Stored (new, or better than the stored one).
    Accepted(RoomKeyInfo),
    /// Not stored.
    Refused {
        /// The room named, if readable.
        room_id: Option<String>,
        /// The session named, if readable.
        session_id: Option<String>,
        /// Why.
        reason: RoomKeyRejection,
    },
}

#[derive(Deserialize)]
struct RoomKeyContent {
    algorithm: String,
    room_id: String,
    session_id: String,
    session_key: String,
    /// The spec's name (v1.19).
    #[serde(default)]
    shared_history: Option<bool>,
    /// The name matrix-sdk-crypto 0.18 writes (ruma 0.16's errata), read as a fallback.
    #[serde(default, rename = "m.shared_history")]
    m_shared_history: Option<bool>,
    /// MSC3061's unstable name, read as a fallback.
    #[serde(default, rename = "org.matrix.msc3061.shared_history")]
    unstable_shared_history: Option<bool>,
}

impl RoomKeyContent {
    /// The history-sharing flag: the spec's name first, then the others senders write.
    fn shared_history(&self) -> bool {
        self.shared_history.or(self.m_shared_history).or(self.unstable_shared_history).unwrap_or(false)
    }
}

/// A checked room key: the session and what it says.
pub(crate) struct CheckedRoomKey {
    pub room_id: OwnedRoomId,
    pub session: InboundGroupSession,
    pub shared_history: bool,
}

/// Rule: an `m.room_key` is Megolm, names a room, and carries a session key whose signature
/// verifies and whose session id is the one named.
pub(crate) fn check_room_key_content(content: &Value) -> Result<CheckedRoomKey, RoomKeyRejection> {
    let content = RoomKeyContent::deserialize(content).map_err(|e| RoomKeyRejection::Malformed(e.to_string()))?;
    let shared_history = content.shared_history();
    let session_key = Zeroizing::new(content.session_key);
    if content.algorithm != MEGOLM_ALGORITHM {
        return Err(RoomKeyRejection::UnsupportedAlgorithm(content.algorithm));
    }
    let room_id = OwnedRoomId::try_from(content.room_id).map_err(|e| RoomKeyRejection::Malformed(e.to_string()))?;
    let key = SessionKey::from_base64(session_key.as_str()).map_err(|_| RoomKeyRejection::InvalidSessionKey)?;
    if key.session_id().to_base64() != content.session_id {
        return Err(RoomKeyRejection::SessionIdMismatch);
    }
    let session = InboundGroupSession::new(&key, SessionConfig::version_1());
    Ok(CheckedRoomKey { room_id, session, shared_history })
}

/// Rule: a stored room key is improved only by a key from the same sender key that is
/// connected to it and starts earlier. `Ok(record)`: store it.
pub(crate) fn check_room_key_update(
    stored: Option<&InboundGroupSessionRecord>,
    new: InboundGroupSessionRecord,
) -> Result<InboundGroupSessionRecord, RoomKeyRejection> {
    let Some(stored) = stored else { return Ok(new) };
    if stored.sender_key != new.sender_key {
        return Err(RoomKeyRejection::OtherSender);
    }
    match new.session.compare(&stored.session) {
        SessionOrdering::Better => {
            let merged = new.session.merge(&stored.session).ok_or(RoomKeyRejection::Unconnected)?;
            Ok(InboundGroupSessionRecord { session: merged, backed_up: false, ..new })
        }
        SessionOrdering::Equal | SessionOrdering::Worse => Err(RoomKeyRejection::NotBetter),
        SessionOrdering::Unconnected => Err(RoomKeyRejection::Unconnected),
    }
}

/// The record of a directly received room key.
pub(crate) fn record(
    key: CheckedRoomKey,
    sender_key: Curve25519PublicKey,
    claimed_signing_key: Ed25519PublicKey,
) -> InboundGroupSessionRecord {
    InboundGroupSessionRecord {
        room_id: key.room_id.as_str().into(),
        session: key.session,
        sender_key,
        claimed_signing_key: Some(claimed_signing_key),
        source: RoomKeySource::Direct,
        backed_up: false,
        shared_history: key.shared_history,
    }
}

/// A withheld notice received (`m.room_key.withheld`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithheldInfo {
    /// Who sent it.
    pub sender: String,
    /// The room, unless the code is `m.no_olm`.
    pub room_id: Option<String>,
    /// The session, unless the code is `m.no_olm`.
    pub session_id: Option<String>,
    /// The code.
    pub code: String,
}

#[derive(Deserialize)]
struct WithheldContent {
    code: String,
    #[serde(default)]
    room_id: Option<String>,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    sender_key: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// Reads an `m.room_key.withheld`; the notice to store, if it names a session.
pub(crate) fn read_withheld(sender: &str, content: &Value) -> Option<(WithheldInfo, Option<WithheldNotice>)> {
    let content = WithheldContent::deserialize(content).ok()?;
    let info = WithheldInfo {
        sender: sender.to_owned(),
        room_id: content.room_id.clone(),
        session_id: content.session_id.clone(),
        code: content.code.clone(),
    };
    let notice = match (content.room_id, content.session_id) {
        (Some(room_id), Some(session_id)) if !room_id.is_empty() && !session_id.is_empty() => Some(WithheldNotice {
            room_id: room_id.into(),
            session_id,
            sender_key: content.sender_key.and_then(|k| Curve25519PublicKey::from_base64(&k).ok()),
            code: content.code,
            reason: content.reason,
        }),
        _ => None,
    };
    Some((info, notice))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolm::megolm::GroupSession;
    use ferrolm::olm::Account;
    use serde_json::json;

    fn content(outbound: &GroupSession) -> Value {
        json!({
            "algorithm": MEGOLM_ALGORITHM,
            "room_id": "!r:x",
            "session_id": outbound.session_id().to_base64(),
            "session_key": outbound.session_key().to_base64().as_str(),
        })
    }

    #[test]
    fn the_shared_history_flag_is_read_under_the_spec_name_and_the_names_senders_write() {
        let outbound = GroupSession::new(SessionConfig::version_1());
        let flag = |extra: Value| {
            let mut c = content(&outbound);
            for (k, v) in extra.as_object().unwrap() {
                c[k] = v.clone();
            }
            check_room_key_content(&c).unwrap().shared_history
        };
        assert!(!flag(json!({})));
        assert!(flag(json!({"shared_history": true})));
        // matrix-sdk-crypto 0.18 writes `m.shared_history`; MSC3061 clients the unstable name.
        assert!(flag(json!({"m.shared_history": true})));
        assert!(flag(json!({"org.matrix.msc3061.shared_history": true})));
        // The spec's name wins when several are present.
        assert!(!flag(json!({"shared_history": false, "m.shared_history": true})));
    }

    #[test]
    fn rule_a_room_key_must_be_megolm_with_a_valid_session_key_for_its_session_id() {
        let outbound = GroupSession::new(SessionConfig::version_1());
        assert!(check_room_key_content(&content(&outbound)).is_ok());
        let mut c = content(&outbound);
        c["algorithm"] = json!("m.olm.v1.curve25519-aes-sha2");
        assert!(matches!(check_room_key_content(&c), Err(RoomKeyRejection::UnsupportedAlgorithm(_))));
        let mut c = content(&outbound);
        c["session_id"] = json!(GroupSession::new(SessionConfig::version_1()).session_id().to_base64());
        assert!(matches!(check_room_key_content(&c), Err(RoomKeyRejection::SessionIdMismatch)));
        let mut c = content(&outbound);
        let mut key = ferrolm::types::base64_decode(c["session_key"].as_str().unwrap()).unwrap();
        *key.last_mut().unwrap() ^= 1;
        c["session_key"] = json!(ferrolm::types::base64_encode(&key));
        assert!(matches!(check_room_key_content(&c), Err(RoomKeyRejection::InvalidSessionKey)));
        let mut c = content(&outbound);
        c["room_id"] = json!("not a room");
        assert!(matches!(check_room_key_content(&c), Err(RoomKeyRejection::Malformed(_))));
        assert!(matches!(check_room_key_content(&json!([])), Err(RoomKeyRejection::Malformed(_))));
    }

    #[test]
    fn rule_a_stored_key_is_improved_only_by_a_better_key_from_the_same_sender() {
        let mut outbound = GroupSession::new(SessionConfig::version_1());
        let sender = Account::new();
        let early = check_room_key_content(&content(&outbound)).unwrap();
        outbound.encrypt(b"x");
        outbound.encrypt(b"y");
        let late = check_room_key_content(&content(&outbound)).unwrap();
        let early = record(early, sender.curve25519_key(), sender.ed25519_key());
        let late = record(late, sender.curve25519_key(), sender.ed25519_key());

        // Nothing stored: accepted.
        assert!(check_room_key_update(None, late.clone()).is_ok());
        // A later start than the stored: not better.
        assert_eq!(check_room_key_update(Some(&early), late.clone()).unwrap_err(), RoomKeyRejection::NotBetter);
        assert_eq!(check_room_key_update(Some(&early), early.clone()).unwrap_err(), RoomKeyRejection::NotBetter);
        // An earlier start: better, stored.
        let improved = check_room_key_update(Some(&late), early.clone()).unwrap();
        assert_eq!(improved.first_known_index(), 0);
        // The same session from another device's Olm key: refused.
        let other = Account::new();
        let from_other = InboundGroupSessionRecord { sender_key: other.curve25519_key(), ..early.clone() };
        assert_eq!(check_room_key_update(Some(&late), from_other).unwrap_err(), RoomKeyRejection::OtherSender);
    }

    #[test]
    fn withheld_notices_are_read() {
        let (info, notice) = read_withheld(
            "@a:x",
            &json!({"code": "m.unverified", "room_id": "!r:x", "session_id": "s", "algorithm": MEGOLM_ALGORITHM}),
        )
        .unwrap();
        assert_eq!(info.code, "m.unverified");
        assert_eq!(notice.unwrap().session_id, "s");
        let (info, notice) =
            read_withheld("@a:x", &json!({"code": "m.no_olm", "algorithm": MEGOLM_ALGORITHM})).unwrap();
        assert_eq!(info.code, "m.no_olm");
        assert!(notice.is_none());
        assert!(read_withheld("@a:x", &json!({"room_id": 5})).is_none());
    }
}
