//! What the machine takes from a sync response, and what it gives back.

use std::collections::BTreeMap;

use ferrolm::types::Curve25519PublicKey;
use ruma::events::AnyToDeviceEvent;
use ruma::serde::Raw;
use ruma::{OneTimeKeyAlgorithm, OwnedUserId, UInt};

use crate::devices::DeviceEvent;
use crate::gossip::{SecretOutcome, SecretRequestOutcome};
use crate::identities::IdentityEvent;
use crate::key_requests::KeyRequestOutcome;
use crate::olm_channel::{DecryptedToDeviceEvent, FailedClaim, ToDeviceError};
use crate::room_keys_in::{RoomKeyOutcome, WithheldInfo};
use crate::verification::{VerificationInfo, VerificationOutcome};

/// The end-to-end-encryption parts of a `/sync` response.
#[derive(Debug, Clone, Default)]
pub struct SyncChanges {
    /// `to_device.events`.
    pub to_device_events: Vec<Raw<AnyToDeviceEvent>>,
    /// `device_lists.changed`.
    pub changed_devices: Vec<OwnedUserId>,
    /// `device_lists.left`.
    pub left_devices: Vec<OwnedUserId>,
    /// `device_one_time_keys_count`.
    pub one_time_key_counts: BTreeMap<OneTimeKeyAlgorithm, UInt>,
    /// `device_unused_fallback_key_types` (`None` when the server did not send it).
    pub unused_fallback_key_types: Option<Vec<OneTimeKeyAlgorithm>>,
    /// `next_batch`: saved in the same change set as everything the to-device events did.
    pub next_batch: String,
}

/// What became of one to-device event.
// Outcomes are produced once and moved to the app; boxing would only complicate the FFI mapping.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum ToDeviceOutcome {
    /// Decrypted and checked.
    Decrypted(DecryptedToDeviceEvent),
    /// Sent in the clear (verification requests and the like): the app decides what to do
    /// with it; it carries no authenticated sender device.
    Plaintext(Raw<AnyToDeviceEvent>),
    /// Refused.
    Refused {
        /// The event's claimed sender, if readable.
        sender: Option<String>,
        /// The event's Olm sender key, if readable.
        sender_key: Option<Curve25519PublicKey>,
        /// Why.
        error: ToDeviceError,
    },
}

/// What a [`SyncChanges`] produced.
#[derive(Debug, Clone, Default)]
pub struct SyncOutcome {
    /// One outcome per to-device event, in order.
    pub to_device: Vec<ToDeviceOutcome>,
    /// Room keys received (`Accepted`: retry the events of that session) or refused.
    pub room_keys: Vec<RoomKeyOutcome>,
    /// Withheld notices received.
    pub withheld: Vec<WithheldInfo>,
    /// Key requests from the own other devices, answered or not.
    pub key_requests: Vec<KeyRequestOutcome>,
    /// Verification flows whose state changed (`m.key.verification.*` events, timeouts).
    pub verifications: Vec<VerificationInfo>,
    /// Verifications that succeeded in this step: their devices are marked verified.
    pub verified: Vec<VerificationOutcome>,
    /// Secrets received (`m.secret.send`), taken or refused.
    pub secrets: Vec<SecretOutcome>,
    /// Secret requests from the own other devices, answered or not.
    pub secret_requests: Vec<SecretRequestOutcome>,
}

/// What a response to a request produced.
#[derive(Debug, Clone, Default)]
pub struct ResponseOutcome {
    /// Devices added, deleted, restored, refused (keys query answers).
    pub device_events: Vec<DeviceEvent>,
    /// Cross-signing identities new, changed (every master key change, with the
    /// verification violations) or refused (keys query answers).
    pub identity_events: Vec<IdentityEvent>,
    /// Signatures the homeserver refused (signature upload answers): (user, key or device id).
    pub signature_failures: Vec<(OwnedUserId, String)>,
    /// Devices a claim opened no session with.
    pub failed_claims: Vec<FailedClaim>,
    /// How many Olm sessions a claim opened.
    pub sessions_created: usize,
}
