//! Outgoing room keys ("m.megolm.v1.aes-sha2", "Reporting that decryption keys are withheld"):
//! one outbound Megolm session per room, shared over Olm with the devices allowed to read
//! it, rotated when the rules say so.
//!
//! Rules (each a named function with a test that breaks it):
//! - [`rotation_due_by_age`], [`rotation_due_by_messages`]: after `rotation_period_ms`
//!   (default a week) or `rotation_period_messages` (default 100);
//! - [`rotation_due_by_departure`]: when a device or user that holds the key is no longer a
//!   recipient (left, deleted, or excluded by the settings);
//! - [`rotation_due_by_settings`]: when the settings or the history-visibility flag change;
//! - [`withheld_code`]: a blacklisted device gets `m.blacklisted`, an unverified one under
//!   "only verified devices" gets `m.unverified`, a device without an Olm session `m.no_olm`
//!   (once per device and run, without room or session id);
//! - each device gets the key once, at the index it may read from: the current index when it
//!   is first shared with (a device added later gets the index of that moment).

use ferrolm_store::{LocalTrust, OutboundGroupSessionRecord, OutboundShare, RoomSettings, ShareState};

use crate::devices::Device;
use crate::own_device::MEGOLM_ALGORITHM;

/// The default rotation period: one week.
pub const DEFAULT_ROTATION_PERIOD_MS: u64 = 604_800_000;
/// The default rotation message count.
pub const DEFAULT_ROTATION_PERIOD_MESSAGES: u64 = 100;
/// How many devices one to-device request carries.
pub const TO_DEVICE_CHUNK: usize = 250;

/// Which devices get a room's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SharingStrategy {
    /// Every (not blacklisted) device of the members.
    #[default]
    AllDevices,
    /// Only devices the user verified (local trust); the others get `m.unverified`.
    OnlyVerifiedDevices,
}

/// How a room's key is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncryptionSettings {
    /// Rotate after this long (the room's `rotation_period_ms`).
    pub rotation_period_ms: u64,
    /// Rotate after this many messages (the room's `rotation_period_msgs`).
    pub rotation_period_messages: u64,
    /// Which devices get the key.
    pub strategy: SharingStrategy,
    /// Whether the history visibility lets later members read earlier messages
    /// (`shared_history` in `m.room_key`).
    pub shared_history: bool,
}

impl Default for EncryptionSettings {
    fn default() -> Self {
        Self {
            rotation_period_ms: DEFAULT_ROTATION_PERIOD_MS,
            rotation_period_messages: DEFAULT_ROTATION_PERIOD_MESSAGES,
            strategy: SharingStrategy::AllDevices,
            shared_history: false,
        }
    }
}

impl EncryptionSettings {
    /// The settings as the store keeps them. `shared_history` is kept on the own inbound
    /// copy of the session (the store's room settings have no field for it yet).
    pub(crate) fn to_record(self, room_id: &ruma::RoomId) -> RoomSettings {
        RoomSettings {
            room_id: room_id.as_str().into(),
            algorithm: MEGOLM_ALGORITHM.into(),
            rotation_period_ms: Some(self.rotation_period_ms),
            rotation_period_messages: Some(self.rotation_period_messages),
            only_trusted_devices: self.strategy == SharingStrategy::OnlyVerifiedDevices,
        }
    }
}

/// Rule: rotate once the session is `rotation_period_ms` old.
pub fn rotation_due_by_age(session: &OutboundGroupSessionRecord, settings: &EncryptionSettings, now_ms: u64) -> bool {
    now_ms.saturating_sub(session.created_ms) >= settings.rotation_period_ms
}

/// Rule: rotate once the session has encrypted `rotation_period_messages` messages.
pub fn rotation_due_by_messages(session: &OutboundGroupSessionRecord, settings: &EncryptionSettings) -> bool {
    session.message_count >= settings.rotation_period_messages
}

/// Rule: rotate when the settings changed (`stored` are the last used ones, with the
/// `shared_history` flag of the current session).
pub fn rotation_due_by_settings(
    stored: Option<&RoomSettings>,
    stored_shared_history: Option<bool>,
    room_id: &ruma::RoomId,
    settings: &EncryptionSettings,
) -> bool {
    let changed = stored.is_some_and(|s| *s != settings.to_record(room_id));
    let history_changed = stored_shared_history.is_some_and(|h| h != settings.shared_history);
    changed || history_changed
}

/// Rule: rotate when a device that received the key is no longer among the recipients.
pub fn rotation_due_by_departure(shares: &[OutboundShare], recipients: &[Device]) -> bool {
    let recipients: std::collections::HashSet<(&str, &str)> =
        recipients.iter().map(|d| (d.user_id.as_str(), d.device_id.as_str())).collect();
    shares.iter().any(|share| {
        matches!(share.state, ShareState::Shared { .. })
            && !recipients.contains(&(share.user_id.as_str(), share.device_id.as_str()))
    })
}

/// Rule: whether (and with which code) a recipient device is left out. `None`: it gets the key.
pub fn withheld_code(device: &Device, strategy: SharingStrategy) -> Option<&'static str> {
    match (device.local_trust, strategy) {
        (LocalTrust::Blacklisted, _) => Some("m.blacklisted"),
        (LocalTrust::Verified, _) | (_, SharingStrategy::AllDevices) => None,
        (_, SharingStrategy::OnlyVerifiedDevices) => Some("m.unverified"),
    }
}

/// Devices that may hold a room's key: the not-deleted, Olm-capable devices of `members`.
pub(crate) fn eligible(devices: Vec<Device>) -> Vec<Device> {
    devices.into_iter().filter(|d| !d.deleted && d.supports_olm()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolm::megolm::{GroupSession, SessionConfig};
    use ruma::room_id;

    fn outbound(created_ms: u64, message_count: u64) -> OutboundGroupSessionRecord {
        OutboundGroupSessionRecord {
            room_id: "!r:x".into(),
            session: GroupSession::new(SessionConfig::version_1()),
            created_ms,
            message_count,
        }
    }

    fn device(user: &str, id: &str, trust: LocalTrust) -> Device {
        crate::devices::test_device(user, id, trust, false)
    }

    fn share(user: &str, id: &str, state: ShareState) -> OutboundShare {
        OutboundShare {
            room_id: "!r:x".into(),
            session_id: "s".into(),
            user_id: user.into(),
            device_id: id.into(),
            state,
        }
    }

    #[test]
    fn rule_rotate_after_a_week() {
        let settings = EncryptionSettings::default();
        assert!(!rotation_due_by_age(&outbound(1000, 0), &settings, 1000 + DEFAULT_ROTATION_PERIOD_MS - 1));
        assert!(rotation_due_by_age(&outbound(1000, 0), &settings, 1000 + DEFAULT_ROTATION_PERIOD_MS));
    }

    #[test]
    fn rule_rotate_after_100_messages() {
        let settings = EncryptionSettings::default();
        assert!(!rotation_due_by_messages(&outbound(0, 99), &settings));
        assert!(rotation_due_by_messages(&outbound(0, 100), &settings));
        let custom = EncryptionSettings { rotation_period_messages: 5, ..settings };
        assert!(rotation_due_by_messages(&outbound(0, 5), &custom));
    }

    #[test]
    fn rule_rotate_when_settings_or_history_visibility_change() {
        let room = room_id!("!r:x");
        let settings = EncryptionSettings::default();
        let stored = settings.to_record(room);
        assert!(!rotation_due_by_settings(Some(&stored), Some(false), room, &settings));
        assert!(!rotation_due_by_settings(None, None, room, &settings));
        let verified_only = EncryptionSettings { strategy: SharingStrategy::OnlyVerifiedDevices, ..settings };
        assert!(rotation_due_by_settings(Some(&stored), Some(false), room, &verified_only));
        let shared = EncryptionSettings { shared_history: true, ..settings };
        assert!(rotation_due_by_settings(Some(&stored), Some(false), room, &shared));
    }

    #[test]
    fn rule_rotate_when_a_holder_is_no_longer_a_recipient() {
        let bob1 = device("@bob:x", "B1", LocalTrust::Unset);
        let bob2 = device("@bob:x", "B2", LocalTrust::Unset);
        let shares = vec![
            share("@bob:x", "B1", ShareState::Shared { message_index: 0 }),
            share("@bob:x", "B2", ShareState::Shared { message_index: 3 }),
            share("@eve:x", "E", ShareState::Withheld { code: "m.blacklisted".into() }),
        ];
        assert!(!rotation_due_by_departure(&shares, &[bob1.clone(), bob2]));
        assert!(rotation_due_by_departure(&shares, &[bob1]));
    }

    #[test]
    fn rule_blacklisted_and_unverified_devices_are_left_out() {
        let all = SharingStrategy::AllDevices;
        let verified = SharingStrategy::OnlyVerifiedDevices;
        assert_eq!(withheld_code(&device("@b:x", "D", LocalTrust::Blacklisted), all), Some("m.blacklisted"));
        assert_eq!(withheld_code(&device("@b:x", "D", LocalTrust::Blacklisted), verified), Some("m.blacklisted"));
        assert_eq!(withheld_code(&device("@b:x", "D", LocalTrust::Unset), all), None);
        assert_eq!(withheld_code(&device("@b:x", "D", LocalTrust::Unset), verified), Some("m.unverified"));
        assert_eq!(withheld_code(&device("@b:x", "D", LocalTrust::Ignored), verified), Some("m.unverified"));
        assert_eq!(withheld_code(&device("@b:x", "D", LocalTrust::Verified), verified), None);
    }
}
