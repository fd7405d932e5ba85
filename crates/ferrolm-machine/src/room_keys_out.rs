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
//! - [`withheld_code`]: a blacklisted device gets `m.blacklisted`; under
//!   [`SharingStrategy::OnlyVerifiedDevices`] a device that is not verified (cross-signing
//!   chain or local trust) gets `m.unverified`; under [`SharingStrategy::CrossSignedDevices`]
//!   and [`SharingStrategy::IdentityBased`] a device its owner did not sign with their
//!   self-signing key gets `m.unverified`; a device without an Olm session gets `m.no_olm`
//!   (once per device and run, without room or session id);
//! - [`refuses_user`]: under the strategies that trust cross-signing, a user whose identity is
//!   in verification violation gets nothing at all (no key, no notice), and the step reports
//!   them: the app must show the violation first;
//! - each device gets the key once, at the index it may read from: the current index when it
//!   is first shared with (a device added later gets the index of that moment).

use ferrolm_store::{LocalTrust, OutboundGroupSessionRecord, OutboundShare, RoomSettings, ShareState};

use crate::devices::Device;
use crate::identities::{DeviceTrust, IdentityState};
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
    /// Every (not blacklisted) device of the members. Cross-signing is not consulted.
    #[default]
    AllDevices,
    /// Only verified devices ([`DeviceTrust::is_verified`]: the cross-signing chain from the
    /// own trusted identity, or the user's local verification); the others get `m.unverified`.
    OnlyVerifiedDevices,
    /// Only devices signed by their owner's self-signing key (or verified by the user); the
    /// others get `m.unverified`. Users in verification violation get nothing.
    CrossSignedDevices,
    /// MSC4153, "exclude insecure devices": trust the identity, not the device. Every device
    /// its owner cross-signed gets the key (whether or not the identity is verified); devices
    /// not cross-signed (users without an identity included) get `m.unverified`; users whose
    /// identity is in verification violation get nothing, and the step reports them.
    IdentityBased,
}

impl SharingStrategy {
    /// Whether the strategy needs the devices' cross-signing trust.
    pub fn uses_cross_signing(self) -> bool {
        self != Self::AllDevices
    }
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
            // The store keeps one flag: any strategy stricter than "all devices". Changing
            // between strict strategies does not rotate by this rule, but every device one of
            // them excludes that held the key rotates it by `rotation_due_by_departure`.
            only_trusted_devices: self.strategy != SharingStrategy::AllDevices,
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
pub fn rotation_due_by_departure<'a>(
    shares: &[OutboundShare],
    recipients: impl IntoIterator<Item = &'a Device>,
) -> bool {
    let recipients: std::collections::HashSet<(&str, &str)> =
        recipients.into_iter().map(|d| (d.user_id.as_str(), d.device_id.as_str())).collect();
    shares.iter().any(|share| {
        matches!(share.state, ShareState::Shared { .. })
            && !recipients.contains(&(share.user_id.as_str(), share.device_id.as_str()))
    })
}

/// Rule: whether (and with which code) a recipient device is left out. `None`: it gets the key.
/// `trust` may be `None` under [`SharingStrategy::AllDevices`] (not consulted).
pub fn withheld_code(device: &Device, trust: Option<&DeviceTrust>, strategy: SharingStrategy) -> Option<&'static str> {
    if device.local_trust == LocalTrust::Blacklisted {
        return Some("m.blacklisted");
    }
    let allowed = match strategy {
        SharingStrategy::AllDevices => true,
        SharingStrategy::OnlyVerifiedDevices => trust.is_some_and(DeviceTrust::is_verified),
        SharingStrategy::CrossSignedDevices => {
            device.local_trust == LocalTrust::Verified || trust.is_some_and(|t| t.cross_signed)
        }
        SharingStrategy::IdentityBased => trust.is_some_and(|t| t.cross_signed),
    };
    if allowed { None } else { Some("m.unverified") }
}

/// Rule: whether a user gets nothing at all: under the strategies that trust cross-signing,
/// a user whose identity is in verification violation (verified before, changed since).
pub fn refuses_user(identity: Option<IdentityState>, strategy: SharingStrategy) -> bool {
    matches!(strategy, SharingStrategy::CrossSignedDevices | SharingStrategy::IdentityBased)
        && identity == Some(IdentityState::VerificationViolation)
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

    fn trust(local_trust: LocalTrust, cross_signed: bool, owner: Option<IdentityState>) -> DeviceTrust {
        DeviceTrust { local_trust, cross_signed, owner_identity: owner, own_device: false }
    }

    #[test]
    fn rule_blacklisted_and_unverified_devices_are_left_out() {
        let all = SharingStrategy::AllDevices;
        let verified = SharingStrategy::OnlyVerifiedDevices;
        let code =
            |t: LocalTrust, strategy| withheld_code(&device("@b:x", "D", t), Some(&trust(t, false, None)), strategy);
        assert_eq!(code(LocalTrust::Blacklisted, all), Some("m.blacklisted"));
        assert_eq!(code(LocalTrust::Blacklisted, verified), Some("m.blacklisted"));
        assert_eq!(withheld_code(&device("@b:x", "D", LocalTrust::Unset), None, all), None);
        assert_eq!(code(LocalTrust::Unset, verified), Some("m.unverified"));
        assert_eq!(code(LocalTrust::Ignored, verified), Some("m.unverified"));
        assert_eq!(code(LocalTrust::Verified, verified), None);
    }

    #[test]
    fn rule_only_verified_devices_follows_the_cross_signing_chain() {
        use IdentityState::*;
        let strategy = SharingStrategy::OnlyVerifiedDevices;
        let d = device("@b:x", "D", LocalTrust::Unset);
        assert_eq!(withheld_code(&d, Some(&trust(LocalTrust::Unset, true, Some(Verified))), strategy), None);
        for (cross_signed, owner) in
            [(true, Some(Pinned)), (false, Some(Verified)), (true, Some(VerificationViolation))]
        {
            let t = trust(LocalTrust::Unset, cross_signed, owner);
            assert_eq!(withheld_code(&d, Some(&t), strategy), Some("m.unverified"), "{t:?}");
        }
        assert_eq!(withheld_code(&d, None, strategy), Some("m.unverified"), "no trust known: left out");
    }

    #[test]
    fn rule_cross_signed_and_identity_based_strategies_need_the_owners_signature() {
        use IdentityState::*;
        let d = device("@b:x", "D", LocalTrust::Unset);
        let v = device("@b:x", "D", LocalTrust::Verified);
        for strategy in [SharingStrategy::CrossSignedDevices, SharingStrategy::IdentityBased] {
            // Cross-signed under an unverified (pinned) identity: shared.
            assert_eq!(withheld_code(&d, Some(&trust(LocalTrust::Unset, true, Some(Pinned))), strategy), None);
            // Not cross-signed, or no identity: m.unverified.
            assert_eq!(
                withheld_code(&d, Some(&trust(LocalTrust::Unset, false, Some(Pinned))), strategy),
                Some("m.unverified")
            );
            assert_eq!(withheld_code(&d, Some(&trust(LocalTrust::Unset, false, None)), strategy), Some("m.unverified"));
            let b = device("@b:x", "D", LocalTrust::Blacklisted);
            assert_eq!(
                withheld_code(&b, Some(&trust(LocalTrust::Blacklisted, true, Some(Verified))), strategy),
                Some("m.blacklisted")
            );
        }
        // A locally verified device that is not cross-signed: the device-based strategy keeps
        // the user's decision, the identity-based one (MSC4153) does not.
        let t = trust(LocalTrust::Verified, false, None);
        assert_eq!(withheld_code(&v, Some(&t), SharingStrategy::CrossSignedDevices), None);
        assert_eq!(withheld_code(&v, Some(&t), SharingStrategy::IdentityBased), Some("m.unverified"));
    }

    #[test]
    fn rule_users_in_verification_violation_get_nothing() {
        use IdentityState::*;
        for strategy in [SharingStrategy::CrossSignedDevices, SharingStrategy::IdentityBased] {
            assert!(refuses_user(Some(VerificationViolation), strategy));
            for state in [None, Some(Verified), Some(Pinned), Some(PinViolation)] {
                assert!(!refuses_user(state, strategy), "{state:?}");
            }
        }
        for strategy in [SharingStrategy::AllDevices, SharingStrategy::OnlyVerifiedDevices] {
            assert!(!refuses_user(Some(VerificationViolation), strategy));
        }
    }
}
