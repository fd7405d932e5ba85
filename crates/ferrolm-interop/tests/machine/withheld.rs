//! Withheld codes understood, both ways: a device left out of a room key gets
//! `m.room_key.withheld` with the sharer's reason, and its unable-to-decrypt error carries it.

use ferrolm_machine::{EncryptionSettings, LocalTrust, SharingStrategy, UnableToDecrypt};
use matrix_sdk_common::deserialized_responses::{UnableToDecryptReason, WithheldCode};
use matrix_sdk_crypto::{CollectStrategy, EncryptionSettings as MscSettings, LocalTrust as MscTrust};

use crate::common::{FE_USER, MSC_USER, World, fe_decrypt, fe_id, fe_read, fe_say, fe_share};
use crate::msc::block_on;

/// ferrolm shares under `settings` after `prepare`; msc must get `code` and say so when it
/// fails to decrypt.
fn ferrolm_withholds(
    prepare: impl FnOnce(&mut World),
    settings: EncryptionSettings,
    code: &str,
    msc_code: WithheldCode,
) {
    let mut world = World::new();
    prepare(&mut world);
    let members = world.members();
    let shared = fe_share(&mut world.hs, &mut world.fe.machine, &world.room, &members, settings);
    assert!(shared.shared_with.is_empty(), "{shared:?}");
    assert_eq!(shared.withheld, vec![(world.msc.id(), code.to_owned())]);
    fe_say(&mut world.hs, &mut world.fe.machine, &world.room, "not for msc");

    let synced = world.msc.sync(&mut world.hs);
    assert!(synced.room_keys.is_empty());
    let notices = synced.plaintext();
    assert_eq!(notices.len(), 1, "{:?}", synced.to_device);
    assert_eq!(notices[0]["type"], "m.room_key.withheld");
    assert_eq!(notices[0]["sender"], FE_USER);
    assert_eq!(notices[0]["content"]["code"], code);
    assert_eq!(notices[0]["content"]["session_id"], shared.session_id.as_str());
    let event = &synced.timelines[&world.room][0];
    let utd = world.msc.decrypt(event, &world.room).unwrap_err();
    assert_eq!(utd.session_id.as_deref(), Some(shared.session_id.as_str()));
    assert_eq!(utd.reason, UnableToDecryptReason::MissingMegolmSession { withheld_code: Some(msc_code) });
}

#[test]
fn ferrolm_blacklists_the_msc_device_and_msc_reads_m_blacklisted() {
    ferrolm_withholds(
        |w| {
            let (user, device) = w.msc.id();
            w.fe.machine.set_local_trust(&user, &device, LocalTrust::Blacklisted).unwrap();
        },
        EncryptionSettings::default(),
        "m.blacklisted",
        WithheldCode::Blacklisted,
    );
}

#[test]
fn ferrolm_shares_only_with_verified_devices_and_msc_reads_m_unverified() {
    let settings = EncryptionSettings { strategy: SharingStrategy::OnlyVerifiedDevices, ..Default::default() };
    ferrolm_withholds(|_| {}, settings, "m.unverified", WithheldCode::Unverified);
}

/// msc shares under `settings` after `prepare`; ferrolm must get `code`, and its typed UTD
/// must carry it.
fn msc_withholds(prepare: impl FnOnce(&mut World), settings: MscSettings, code: &str) {
    let mut world = World::new();
    prepare(&mut world);
    let members = world.members();
    let requests = world.msc.share(&mut world.hs, &world.room, &members, settings);
    assert!(requests.iter().all(|r| r.event_type.to_string() == "m.room_key.withheld"), "{requests:?}");
    world.msc.say(&mut world.hs, &world.room, "not for ferrolm");

    let (outcome, events) = fe_read(&mut world.hs, &mut world.fe.machine, &world.room);
    assert!(outcome.room_keys.is_empty(), "{outcome:?}");
    assert_eq!(outcome.withheld.len(), 1, "{outcome:?}");
    let notice = &outcome.withheld[0];
    assert_eq!(notice.sender, MSC_USER);
    assert_eq!(notice.code, code);
    assert_eq!(notice.room_id.as_deref(), Some(world.room.as_str()));
    assert_eq!(events.len(), 1);
    let utd = fe_decrypt(&mut world.fe.machine, &events[0], &world.room).unwrap_err();
    assert_eq!(utd, UnableToDecrypt::MissingSession { withheld: Some(code.to_owned()) });
}

#[test]
fn msc_shares_only_with_trusted_devices_and_ferrolm_reads_m_unverified() {
    let settings = MscSettings { sharing_strategy: CollectStrategy::OnlyTrustedDevices, ..Default::default() };
    msc_withholds(|_| {}, settings, "m.unverified");
}

#[test]
fn msc_blacklists_the_ferrolm_device_and_ferrolm_reads_m_blacklisted() {
    msc_withholds(
        |w| {
            let (user, device) = fe_id(&w.fe);
            let device = w.msc.device(&user, &device).unwrap();
            block_on(device.set_local_trust(MscTrust::BlackListed)).unwrap();
        },
        MscSettings::default(),
        "m.blacklisted",
    );
}

#[test]
fn ferrolm_tells_msc_m_no_olm_once_when_it_has_no_session() {
    let mut world = World::new();
    let members = world.members();
    // No claim first: ferrolm has no Olm session with msc's device.
    let shared = world.fe.machine.share_room_key(&world.room, &members, EncryptionSettings::default()).unwrap();
    ferrolm_test_homeserver::driver::run_requests(&mut world.hs, &mut world.fe.machine).unwrap();
    assert_eq!(shared.withheld, vec![(world.msc.id(), "m.no_olm".to_owned())]);
    let synced = world.msc.sync(&mut world.hs);
    // msc parses it as a withheld notice (a plaintext event, not an invalid one). It keeps
    // m.no_olm for nothing: its UTDs name only the session-specific codes.
    let notices = synced.plaintext();
    assert_eq!(notices.len(), 1, "{:?}", synced.to_device);
    assert_eq!(notices[0]["type"], "m.room_key.withheld");
    assert_eq!(notices[0]["content"]["code"], "m.no_olm");
    assert!(notices[0]["content"].get("session_id").is_none());
    // Once per device: sharing again sends nothing.
    let again = world.fe.machine.share_room_key(&world.room, &members, EncryptionSettings::default()).unwrap();
    assert!(again.withheld.is_empty() && again.shared_with.is_empty(), "{again:?}");
}
