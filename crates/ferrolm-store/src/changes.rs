//! [`Changes`]: everything one machine step asks the store to keep or forget, committed by
//! [`Store::save_changes`](crate::Store::save_changes) in one transaction.

use ferrolm::types::Curve25519PublicKey;

use crate::records::{
    AccountRecord, BackupRecord, DeviceId, DeviceRecord, IdentityRecord, InboundGroupSessionRecord, OlmSessionRecord,
    OutboundGroupSessionRecord, OutboundShare, OutgoingRequest, OutgoingToDevice, PrivateCrossSigningKeys,
    ReceivedSecret, RoomId, RoomSettings, SeenMessage, TrackedUser, UserId, WithheldNotice,
};

/// One change set: records to insert or replace, and [`Deletions`]. Saving it is all or
/// nothing; deletions apply before insertions, so deleting and re-inserting a row replaces it.
/// A record replaces the stored record with the same key (the key of each kind is listed on
/// its field).
///
/// ```
/// use ferrolm_store::{Changes, TrackedUser, UserId};
/// let mut changes = Changes::default();
/// changes.sync_token = Some("s72594_4483_1934".into());
/// changes.tracked_users.push(TrackedUser { user_id: UserId::from("@bob:example.org"), dirty: true });
/// assert!(!changes.is_empty());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// The account (a single row).
    pub account: Option<AccountRecord>,
    /// Olm sessions, keyed by (sender key, session id).
    pub olm_sessions: Vec<OlmSessionRecord>,
    /// Room keys, keyed by (room id, session id). A key not backed up joins the backup queue;
    /// a key marked backed up leaves it.
    pub inbound_group_sessions: Vec<InboundGroupSessionRecord>,
    /// Outbound group sessions, keyed by room id. Replacing a room's session by one with
    /// another id forgets the old session's shares.
    pub outbound_group_sessions: Vec<OutboundGroupSessionRecord>,
    /// Shares of outbound sessions, keyed by (room, session id, user, device).
    pub outbound_shares: Vec<OutboundShare>,
    /// Devices, keyed by (user, device id).
    pub devices: Vec<DeviceRecord>,
    /// Cross-signing identities, keyed by user.
    pub identities: Vec<IdentityRecord>,
    /// The own private cross-signing keys (a single row).
    pub private_cross_signing_keys: Option<PrivateCrossSigningKeys>,
    /// Tracked users, keyed by user.
    pub tracked_users: Vec<TrackedUser>,
    /// The sync token the machine last processed (a single row).
    pub sync_token: Option<String>,
    /// The backup version and decryption key (a single row).
    pub backup: Option<BackupRecord>,
    /// Received secrets, keyed by (name, id).
    pub secrets_inbox: Vec<ReceivedSecret>,
    /// Outgoing requests, keyed by request id.
    pub outgoing_requests: Vec<OutgoingRequest>,
    /// Withheld notices, keyed by (room, session id).
    pub withheld: Vec<WithheldNotice>,
    /// Room settings, keyed by room.
    pub room_settings: Vec<RoomSettings>,
    /// Seen Megolm message indices, keyed by (session id, message index).
    pub seen_messages: Vec<SeenMessage>,
    /// Encrypted to-device requests not yet sent, keyed by transaction id: save them in the
    /// change set that advances the Olm sessions that encrypted them.
    pub outgoing_to_device: Vec<OutgoingToDevice>,
    /// What to delete (applied first).
    pub deletions: Deletions,
}

/// The deletions of a change set. Deleting something absent is not an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deletions {
    /// Olm sessions by (sender key, session id).
    pub olm_sessions: Vec<(Curve25519PublicKey, String)>,
    /// Room keys by (room, session id) (and their backup-queue entries).
    pub inbound_group_sessions: Vec<(RoomId, String)>,
    /// Outbound sessions by room, with all their shares.
    pub outbound_group_sessions: Vec<RoomId>,
    /// Devices by (user, device id).
    pub devices: Vec<(UserId, DeviceId)>,
    /// Identities by user.
    pub identities: Vec<UserId>,
    /// Tracked users by user.
    pub tracked_users: Vec<UserId>,
    /// The private cross-signing keys.
    pub private_cross_signing_keys: bool,
    /// The backup version and key.
    pub backup: bool,
    /// Every received secret of these names.
    pub secrets_inbox: Vec<String>,
    /// Outgoing requests by request id.
    pub outgoing_requests: Vec<String>,
    /// Withheld notices by (room, session id).
    pub withheld: Vec<(RoomId, String)>,
    /// Room settings by room.
    pub room_settings: Vec<RoomId>,
    /// Every seen-message entry of these Megolm sessions.
    pub seen_messages: Vec<String>,
    /// To-device requests by transaction id (once the server accepted them).
    pub outgoing_to_device: Vec<String>,
}

impl Deletions {
    /// Whether nothing is deleted.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl Changes {
    /// Whether the change set holds nothing at all.
    pub fn is_empty(&self) -> bool {
        self.account.is_none()
            && self.olm_sessions.is_empty()
            && self.inbound_group_sessions.is_empty()
            && self.outbound_group_sessions.is_empty()
            && self.outbound_shares.is_empty()
            && self.devices.is_empty()
            && self.identities.is_empty()
            && self.private_cross_signing_keys.is_none()
            && self.tracked_users.is_empty()
            && self.sync_token.is_none()
            && self.backup.is_none()
            && self.secrets_inbox.is_empty()
            && self.outgoing_requests.is_empty()
            && self.withheld.is_empty()
            && self.room_settings.is_empty()
            && self.seen_messages.is_empty()
            && self.outgoing_to_device.is_empty()
            && self.deletions.is_empty()
    }
}
