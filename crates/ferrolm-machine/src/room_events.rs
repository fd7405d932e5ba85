//! Room events encrypted with Megolm: what a decryption yields, and every reason it may not.
//!
//! Rules (each a named function with a test that breaks it):
//! - sessions are looked up by (room id, session id) only; the deprecated `sender_key` and
//!   `device_id` of the event are never used;
//! - [`check_room_id`]: the plaintext's `room_id` is the event's room;
//! - [`check_replay`]: a message index already decrypted for another event id is a replay
//!   (the same event twice is not);
//! - [`check_trust`]: under [`TrustRequirement::VerifiedDevice`], events from devices the user
//!   has not verified are not shown.

use ferrolm::types::{Curve25519PublicKey, Ed25519PublicKey};
use ferrolm_store::LocalTrust;
use ruma::{OwnedDeviceId, OwnedUserId};
use serde_json::Value;

/// What the app requires of a room event's sender to show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrustRequirement {
    /// Show every event that decrypts (with its verification state).
    #[default]
    Untrusted,
    /// Only events from devices the user verified.
    VerifiedDevice,
}

/// How far the sender of a room event is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerificationState {
    /// The key came from the device that owns its Olm key, which the user verified.
    Verified,
    /// The key came from a known device the user did not verify.
    Unverified,
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
    /// Decrypted, but the sender's device is not verified and the app requires it.
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

/// The verification state of a session's sender.
pub(crate) fn verification_state(trust: Option<LocalTrust>, forwarded: bool) -> VerificationState {
    if forwarded {
        return VerificationState::NotFromOriginalSender;
    }
    match trust {
        None => VerificationState::UnknownDevice,
        Some(LocalTrust::Verified) => VerificationState::Verified,
        Some(LocalTrust::Blacklisted) => VerificationState::Blacklisted,
        Some(LocalTrust::Unset | LocalTrust::Ignored) => VerificationState::Unverified,
    }
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
        for state in [Verified, Unverified, UnknownDevice, Blacklisted, NotFromOriginalSender] {
            assert!(check_trust(state, TrustRequirement::Untrusted).is_ok());
            assert_eq!(check_trust(state, TrustRequirement::VerifiedDevice).is_ok(), state == Verified);
        }
        assert_eq!(verification_state(Some(LocalTrust::Verified), true), NotFromOriginalSender);
        assert_eq!(verification_state(None, false), UnknownDevice);
    }
}
