//! Room events encrypted with Megolm ([`OlmMachine::decrypt_room_event`](crate::OlmMachine::decrypt_room_event)): what a
//! decryption yields, and every reason it may not.
//!
//! Rules (each a named function with a test that breaks it):
//! - sessions are looked up by (room id, session id) only; the deprecated `sender_key` and
//!   `device_id` of the event are never used;
//! - [`check_room_id`]: the plaintext's `room_id` is the event's room;
//! - [`check_replay`]: a message index already decrypted for another event id is a replay
//!   (the same event twice is not);
//! - [`check_trust`]: under [`TrustRequirement::VerifiedDevice`], events from devices that
//!   are not verified (the cross-signing chain or the user's local trust,
//!   [`DeviceTrust::is_verified`]) are not shown.

use ferrolm::megolm::{self, MegolmMessage};
use ferrolm::types::{Curve25519PublicKey, Ed25519PublicKey};
use ferrolm_store::{Backend, Changes, LocalTrust, RoomKeySource, SeenMessage};
use ruma::events::AnySyncTimelineEvent;
use ruma::serde::Raw;
use ruma::{OwnedDeviceId, OwnedUserId, RoomId};
use serde::Deserialize;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::devices::Device;
use crate::error::MachineError;
use crate::identities::{DeviceTrust, IdentityState};
use crate::olm_channel;
use crate::own_device::MEGOLM_ALGORITHM;

/// What the app requires of a room event's sender to show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrustRequirement {
    /// Show every event that decrypts (with its verification state).
    #[default]
    Untrusted,
    /// Only events from verified devices ([`DeviceTrust::is_verified`]).
    VerifiedDevice,
}

/// How far the sender of a room event is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerificationState {
    /// The key came from the device that owns its Olm key, which is verified (the
    /// cross-signing chain from the own trusted identity, or the user's local trust).
    Verified,
    /// The key came from a known device that is not verified.
    Unverified,
    /// The key came from a known device whose owner's identity was verified and has changed
    /// since (a verification violation): show it as a warning.
    VerificationViolation,
    /// The sending device is not known (yet): its keys are only claimed.
    UnknownDevice,
    /// The sending device is blacklisted.
    Blacklisted,
    /// The key was forwarded (or imported): it does not prove who created the session.
    NotFromOriginalSender,
}

/// Who sent a decrypted room event, and how the machine knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptionInfo {
    /// The event's sender.
    pub sender: OwnedUserId,
    /// The device that shared the session, when known.
    pub sender_device: Option<OwnedDeviceId>,
    /// The Curve25519 key that shared the session over Olm.
    pub sender_curve25519_key: Curve25519PublicKey,
    /// The Ed25519 key the sharing device claimed.
    pub claimed_ed25519_key: Option<Ed25519PublicKey>,
    /// The sender's trust.
    pub verification: VerificationState,
    /// Whether the session key was forwarded rather than received from its creator.
    pub forwarded: bool,
    /// The Megolm session.
    pub session_id: String,
    /// The message index.
    pub message_index: u32,
}

/// A decrypted room event.
#[derive(Debug, Clone)]
pub struct DecryptedRoomEvent {
    /// The plaintext event type.
    pub event_type: String,
    /// The plaintext content.
    pub content: Value,
    /// Who sent it.
    pub encryption: EncryptionInfo,
}

/// Why a room event did not decrypt: each says what the app can do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnableToDecrypt {
    /// Not an `m.room.encrypted` event of the expected shape.
    #[error("malformed encrypted event: {0}")]
    Malformed(String),
    /// Not `m.megolm.v1.aes-sha2`.
    #[error("unsupported algorithm {0}")]
    UnsupportedAlgorithm(String),
    /// No key for this session (yet): retry when it arrives (`room_keys` of a sync), unless the
    /// sender withheld it.
    #[error("no room key for this session{}", .withheld.as_deref().map(|c| format!(" (withheld: {c})")).unwrap_or_default())]
    MissingSession {
        /// The withheld code the sender sent, if any.
        withheld: Option<String>,
    },
    /// The key is known only from a later index: a key from before is needed.
    #[error("the room key starts at index {first_known_index}, the message is at {message_index}")]
    UnknownMessageIndex {
        /// The first index the stored key decrypts.
        first_known_index: u32,
        /// The message's index.
        message_index: u32,
    },
    /// The message's signature or MAC is wrong: forged or corrupted.
    #[error("the message does not authenticate")]
    Forged,
    /// The plaintext names another room.
    #[error("the plaintext is for another room")]
    MismatchedRoomId,
    /// This message index was already decrypted for another event.
    #[error("replayed message index {message_index} (first seen in {first_event_id})")]
    Replay {
        /// The index.
        message_index: u32,
        /// The event it was first seen in.
        first_event_id: String,
    },
    /// Decrypted, but the sender's device is not verified and the app requires it. The
    /// message index is recorded as seen with this event's id all the same (the ciphertext
    /// is authentic), so a copy of it under another id is a replay even once the sender is
    /// trusted, and retrying this event then decrypts it.
    #[error("the sender's device is not verified")]
    UntrustedSender,
}

/// Rule: the plaintext's room is the event's room.
pub fn check_room_id(plaintext_room: Option<&str>, room_id: &ruma::RoomId) -> Result<(), UnableToDecrypt> {
    if plaintext_room == Some(room_id.as_str()) { Ok(()) } else { Err(UnableToDecrypt::MismatchedRoomId) }
}

/// Rule: an index decrypted before for another event id is a replay.
pub fn check_replay(seen: Option<&str>, event_id: &str, message_index: u32) -> Result<(), UnableToDecrypt> {
    match seen {
        Some(first) if first != event_id => {
            Err(UnableToDecrypt::Replay { message_index, first_event_id: first.to_owned() })
        }
        _ => Ok(()),
    }
}

/// Rule: under a strict requirement, only verified senders' events are shown.
pub fn check_trust(verification: VerificationState, requirement: TrustRequirement) -> Result<(), UnableToDecrypt> {
    match (requirement, verification) {
        (TrustRequirement::Untrusted, _) | (TrustRequirement::VerifiedDevice, VerificationState::Verified) => Ok(()),
        _ => Err(UnableToDecrypt::UntrustedSender),
    }
}

/// Rule: the verification state of a session's sender, from the sending device's trust.
pub fn verification_state(trust: Option<&DeviceTrust>, forwarded: bool) -> VerificationState {
    if forwarded {
        return VerificationState::NotFromOriginalSender;
    }
    match trust {
        None => VerificationState::UnknownDevice,
        Some(t) if t.local_trust == LocalTrust::Blacklisted => VerificationState::Blacklisted,
        Some(t) if t.is_verified() => VerificationState::Verified,
        Some(t) if t.owner_identity == Some(IdentityState::VerificationViolation) => {
            VerificationState::VerificationViolation
        }
        Some(_) => VerificationState::Unverified,
    }
}

/// The own device, as room event decryption needs it.
pub(crate) struct Me<'a> {
    pub user_id: &'a ruma::UserId,
    pub device_id: &'a ruma::DeviceId,
    pub curve25519: Curve25519PublicKey,
}

#[derive(Deserialize)]
struct EncryptedRoomEvent {
    #[serde(rename = "type")]
    event_type: String,
    event_id: String,
    sender: String,
    content: Value,
}

#[derive(Deserialize)]
struct EncryptedRoomContent {
    #[serde(default)]
    ciphertext: Option<String>,
    #[serde(default)]
    session_id: Option<String>,
}

#[derive(Deserialize)]
struct MegolmPlaintext {
    #[serde(rename = "type")]
    event_type: String,
    content: Value,
    #[serde(default)]
    room_id: Option<String>,
}

/// Decrypts a room event of `room_id`; the first decryption of a message index goes into
/// `changes` (replay detection). `device_trust` says how far the sending device is trusted.
pub(crate) fn decrypt<B: Backend>(
    store: &crate::cache::CachedStore<B>,
    me: &Me<'_>,
    event: &Raw<AnySyncTimelineEvent>,
    room_id: &RoomId,
    requirement: TrustRequirement,
    changes: &mut Changes,
    device_trust: &mut dyn FnMut(&Device) -> Result<DeviceTrust, MachineError>,
) -> Result<Result<DecryptedRoomEvent, UnableToDecrypt>, MachineError> {
    let malformed = |e: &dyn std::fmt::Display| Ok(Err(UnableToDecrypt::Malformed(e.to_string())));
    let event: EncryptedRoomEvent = match serde_json::from_str(event.json().get()) {
        Ok(e) => e,
        Err(e) => return malformed(&e),
    };
    if event.event_type != "m.room.encrypted" {
        return malformed(&"not an m.room.encrypted event");
    }
    match event.content.get("algorithm").and_then(Value::as_str) {
        Some(MEGOLM_ALGORITHM) => {}
        Some(other) => return Ok(Err(UnableToDecrypt::UnsupportedAlgorithm(other.to_owned()))),
        None => return malformed(&"algorithm"),
    }
    let content: EncryptedRoomContent = match serde_json::from_value(event.content) {
        Ok(c) => c,
        Err(e) => return malformed(&e),
    };
    let (Some(ciphertext), Some(session_id)) = (content.ciphertext, content.session_id) else {
        return malformed(&"ciphertext or session_id missing");
    };
    let Ok(sender) = OwnedUserId::try_from(event.sender.as_str()) else { return malformed(&"sender") };
    let room = ferrolm_store::RoomId::from(room_id.as_str());
    // Looked up by (room, session id) only: never by the deprecated sender_key/device_id.
    let Some(mut record) = store.inbound_group_session(&room, &session_id)? else {
        let withheld = store.withheld_notice(&room, &session_id)?.map(|n| n.code);
        return Ok(Err(UnableToDecrypt::MissingSession { withheld }));
    };
    let message = match MegolmMessage::from_base64(&ciphertext) {
        Ok(m) => m,
        Err(e) => return malformed(&e),
    };
    let decrypted = match record.session.decrypt(&message) {
        Ok(d) => d,
        Err(megolm::DecryptionError::UnknownMessageIndex { first_known, requested }) => {
            return Ok(Err(UnableToDecrypt::UnknownMessageIndex {
                first_known_index: first_known,
                message_index: requested,
            }));
        }
        Err(megolm::DecryptionError::VersionMismatch { .. }) => return malformed(&"message version"),
        Err(_) => return Ok(Err(UnableToDecrypt::Forged)),
    };
    let plaintext = Zeroizing::new(decrypted.plaintext);
    let plaintext: MegolmPlaintext = match serde_json::from_slice(&plaintext) {
        Ok(p) => p,
        Err(e) => return malformed(&e),
    };
    if let Err(e) = check_room_id(plaintext.room_id.as_deref(), room_id) {
        return Ok(Err(e));
    }
    let index = decrypted.message_index;
    let seen = store.seen_message(&session_id, index)?;
    if let Err(e) = check_replay(seen.as_deref(), &event.event_id, index) {
        return Ok(Err(e));
    }
    if seen.is_none() {
        changes.seen_messages.push(SeenMessage {
            session_id: session_id.clone(),
            message_index: index,
            event_id: event.event_id.clone(),
        });
    }
    let forwarded = record.source != RoomKeySource::Direct;
    let (sender_device, trust) = if sender == me.user_id && record.sender_key == me.curve25519 {
        let own = DeviceTrust {
            local_trust: LocalTrust::Verified,
            cross_signed: false,
            owner_identity: None,
            own_device: true,
        };
        (Some(me.device_id.to_owned()), Some(own))
    } else {
        match olm_channel::find_device(store, &sender, &record.sender_key)? {
            Some(d) => {
                let trust = device_trust(&d)?;
                (Some(d.device_id), Some(trust))
            }
            None => (None, None),
        }
    };
    let verification = verification_state(trust.as_ref(), forwarded);
    if let Err(e) = check_trust(verification, requirement) {
        return Ok(Err(e));
    }
    Ok(Ok(DecryptedRoomEvent {
        event_type: plaintext.event_type,
        content: plaintext.content,
        encryption: EncryptionInfo {
            sender,
            sender_device,
            sender_curve25519_key: record.sender_key,
            claimed_ed25519_key: record.claimed_signing_key,
            verification,
            forwarded,
            session_id,
            message_index: index,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma::room_id;

    #[test]
    fn rule_the_plaintext_room_must_be_the_events_room() {
        assert!(check_room_id(Some("!a:x"), room_id!("!a:x")).is_ok());
        assert_eq!(check_room_id(Some("!b:x"), room_id!("!a:x")), Err(UnableToDecrypt::MismatchedRoomId));
        assert_eq!(check_room_id(None, room_id!("!a:x")), Err(UnableToDecrypt::MismatchedRoomId));
    }

    #[test]
    fn rule_an_index_seen_with_another_event_is_a_replay() {
        assert!(check_replay(None, "$a", 3).is_ok());
        assert!(check_replay(Some("$a"), "$a", 3).is_ok(), "the same event twice is not a replay");
        assert_eq!(
            check_replay(Some("$a"), "$b", 3),
            Err(UnableToDecrypt::Replay { message_index: 3, first_event_id: "$a".into() })
        );
    }

    #[test]
    fn rule_a_strict_requirement_hides_unverified_senders() {
        use VerificationState::*;
        for state in [Verified, Unverified, VerificationViolation, UnknownDevice, Blacklisted, NotFromOriginalSender] {
            assert!(check_trust(state, TrustRequirement::Untrusted).is_ok());
            assert_eq!(check_trust(state, TrustRequirement::VerifiedDevice).is_ok(), state == Verified);
        }
        let trust = |local_trust, cross_signed, owner_identity| DeviceTrust {
            local_trust,
            cross_signed,
            owner_identity,
            own_device: false,
        };
        let verified = trust(LocalTrust::Verified, false, None);
        assert_eq!(verification_state(Some(&verified), true), NotFromOriginalSender);
        assert_eq!(verification_state(None, false), UnknownDevice);
        assert_eq!(verification_state(Some(&verified), false), Verified);
        let chain = trust(LocalTrust::Unset, true, Some(IdentityState::Verified));
        assert_eq!(verification_state(Some(&chain), false), Verified, "the cross-signing chain verifies");
        let pinned = trust(LocalTrust::Unset, true, Some(IdentityState::Pinned));
        assert_eq!(verification_state(Some(&pinned), false), Unverified);
        let changed = trust(LocalTrust::Unset, true, Some(IdentityState::VerificationViolation));
        assert_eq!(verification_state(Some(&changed), false), VerificationViolation);
        let blacklisted = trust(LocalTrust::Blacklisted, true, Some(IdentityState::Verified));
        assert_eq!(verification_state(Some(&blacklisted), false), Blacklisted);
    }
}
