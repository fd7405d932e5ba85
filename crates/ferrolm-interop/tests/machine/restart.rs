//! ferrolm restarts from its SQLite store mid-conversation with matrix-sdk-crypto and carries
//! on: the same Olm session, the same outbound Megolm session (no new claim, no rotation), the
//! inbound keys it had, and the to-device events that arrived while it was down.

use std::path::Path;

use ferrolm_machine::ruma::{OwnedDeviceId, OwnedUserId};
use ferrolm_machine::{EncryptionSettings, ManualClock, OlmMachine};
use ferrolm_store::{KdfParams, SqliteBackend, SqliteStore, StoreSecret};
use ferrolm_test_homeserver::Homeserver;
use ferrolm_test_homeserver::driver::{run_requests, sync, test_env};
use matrix_sdk_crypto::EncryptionSettings as MscSettings;
use serde_json::json;

use crate::common::{
    FE_DEVICE, FE_USER, MSC_DEVICE, MSC_USER, fe_decrypt, fe_decrypted, fe_open_sessions, fe_read, fe_say, fe_share,
    msc_body,
};
use crate::msc::MscDevice;

const SECRET: &str = "a passphrase for the test store";

fn open(path: &Path, seed: u64, clock: &ManualClock) -> OlmMachine<SqliteBackend> {
    let store = if path.exists() {
        SqliteStore::open_file(path, &StoreSecret::passphrase(SECRET)).unwrap()
    } else {
        SqliteStore::create_file(path, &StoreSecret::passphrase(SECRET), KdfParams::new(64, 1, 1).unwrap()).unwrap()
    };
    let env = test_env(seed, clock);
    OlmMachine::open(OwnedUserId::try_from(FE_USER).unwrap(), OwnedDeviceId::from(FE_DEVICE), store, env).unwrap()
}

fn settle(hs: &mut Homeserver, fe: &mut OlmMachine<SqliteBackend>) {
    run_requests(hs, fe).unwrap();
    sync(hs, fe).unwrap();
    run_requests(hs, fe).unwrap();
}

#[test]
fn ferrolm_restarts_from_sqlite_mid_conversation_and_carries_on_with_msc() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferrolm.sqlite3");
    let clock = ManualClock::new(1_000_000);
    let mut hs = Homeserver::new();
    hs.login(&OwnedUserId::try_from(FE_USER).unwrap(), &OwnedDeviceId::from(FE_DEVICE));
    let mut fe = open(&path, 1, &clock);
    let mut msc = MscDevice::new(&mut hs, MSC_USER, MSC_DEVICE);
    let room = hs.create_room(fe.user_id()).unwrap();
    hs.join(&room, &msc.user_id());
    settle(&mut hs, &mut fe);
    msc.settle(&mut hs, 1);
    let members = hs.members(&room);
    fe.update_tracked_users(&members).unwrap();
    msc.track(&members);
    for _ in 0..2 {
        settle(&mut hs, &mut fe);
        msc.settle(&mut hs, 1);
    }

    // Before the restart: keys both ways, two messages each, an Olm message from ferrolm.
    let shared = fe_share(&mut hs, &mut fe, &room, &members, EncryptionSettings::default());
    assert_eq!(shared.shared_with, vec![msc.id()]);
    fe_say(&mut hs, &mut fe, &room, "before 1");
    fe_say(&mut hs, &mut fe, &room, "before 2");
    msc.share(&mut hs, &room, &members, MscSettings::default());
    msc.say(&mut hs, &room, "msc before 1");
    let (_, events) = fe_read(&mut hs, &mut fe, &room);
    assert_eq!(events.len(), 3);
    assert_eq!(fe_decrypt(&mut fe, &events[2], &room).unwrap().content["body"], "msc before 1");
    let synced = msc.sync(&mut hs);
    let bodies: Vec<String> =
        synced.timelines[&room].iter().map(|e| msc_body(&msc.decrypt(e, &room).unwrap())).collect();
    assert_eq!(bodies, ["before 1", "before 2", "msc before 1"]);
    let msc_id = msc.id();
    fe.encrypt_to_device(&[msc_id.clone()], "org.example.ping", &json!({"n": 1})).unwrap();
    run_requests(&mut hs, &mut fe).unwrap();
    assert_eq!(msc.sync(&mut hs).decrypted().len(), 1);

    // msc writes while ferrolm is down; ferrolm restarts from its file with a new seed.
    msc.say(&mut hs, &room, "msc while down");
    let token = fe.sync_token().unwrap();
    drop(fe);
    let mut fe = open(&path, 2, &clock);
    assert_eq!(fe.sync_token().unwrap(), token);

    let (_, events) = fe_read(&mut hs, &mut fe, &room);
    assert_eq!(events.len(), 1);
    let decrypted = fe_decrypt(&mut fe, &events[0], &room).unwrap();
    assert_eq!(decrypted.content["body"], "msc while down");
    assert_eq!(decrypted.encryption.message_index, 1);

    // The Olm session and the outbound Megolm session carry on.
    assert_eq!(fe_open_sessions(&mut hs, &mut fe, &members), 0, "no new claim after the restart");
    let again = fe_share(&mut hs, &mut fe, &room, &members, EncryptionSettings::default());
    assert!(!again.rotated);
    assert_eq!(again.session_id, shared.session_id);
    assert!(again.shared_with.is_empty(), "msc already has the key");
    fe_say(&mut hs, &mut fe, &room, "after 1");
    fe.encrypt_to_device(&[msc_id], "org.example.ping", &json!({"n": 2})).unwrap();
    run_requests(&mut hs, &mut fe).unwrap();
    let synced = msc.sync(&mut hs);
    let decrypted = synced.decrypted();
    assert_eq!(decrypted.len(), 1, "{:?}", synced.to_device);
    assert_eq!(decrypted[0].0["content"]["n"], 2);
    let event = synced.timelines[&room].last().unwrap();
    let decrypted = msc.decrypt(event, &room).unwrap();
    assert_eq!(msc_body(&decrypted), "after 1");
    assert_eq!(decrypted.encryption_info.session_id(), Some(shared.session_id.as_str()));

    // And msc's replies over Olm and Megolm still reach it.
    let fe_device = msc.device(&OwnedUserId::try_from(FE_USER).unwrap(), &OwnedDeviceId::from(FE_DEVICE)).unwrap();
    let encrypted = crate::msc::block_on(device_encrypt(&fe_device)).unwrap();
    crate::olm::send_raw_to_device(&mut hs, &msc, (FE_USER, FE_DEVICE), encrypted, "restart-reply");
    msc.say(&mut hs, &room, "msc after");
    let (outcome, events) = fe_read(&mut hs, &mut fe, &room);
    let to_device = fe_decrypted(&outcome);
    assert_eq!(to_device.len(), 1, "{outcome:?}");
    assert_eq!(to_device[0].content["n"], 3);
    assert_eq!(fe_decrypt(&mut fe, events.last().unwrap(), &room).unwrap().content["body"], "msc after");
}

async fn device_encrypt(
    device: &matrix_sdk_crypto::Device,
) -> Result<
    ferrolm_machine::ruma::serde::Raw<matrix_sdk_crypto::types::events::room::encrypted::ToDeviceEncryptedEventContent>,
    matrix_sdk_crypto::OlmError,
> {
    device.encrypt_event_raw("org.example.ping", &json!({"n": 3}), matrix_sdk_crypto::CollectStrategy::AllDevices).await
}

#[test]
fn msc_restarts_from_its_sqlite_store_mid_conversation_and_carries_on_with_ferrolm() {
    let dir = tempfile::tempdir().unwrap();
    let mut hs = Homeserver::new();
    let mut fe = ferrolm_test_homeserver::driver::TestDevice::new(&mut hs, FE_USER, FE_DEVICE, 1, 1_000_000).unwrap();
    let mut msc = MscDevice::with_store(&mut hs, MSC_USER, MSC_DEVICE, crate::msc::sqlite_store(dir.path()));
    let room = hs.create_room(fe.machine.user_id()).unwrap();
    hs.join(&room, &msc.user_id());
    fe.settle(&mut hs, 1).unwrap();
    msc.settle(&mut hs, 1);
    let members = hs.members(&room);
    fe.machine.update_tracked_users(&members).unwrap();
    msc.track(&members);
    for _ in 0..2 {
        fe.settle(&mut hs, 1).unwrap();
        msc.settle(&mut hs, 1);
    }

    let shared = fe_share(&mut hs, &mut fe.machine, &room, &members, EncryptionSettings::default());
    assert_eq!(shared.shared_with, vec![msc.id()]);
    fe_say(&mut hs, &mut fe.machine, &room, "before");
    msc.share(&mut hs, &room, &members, MscSettings::default());
    msc.say(&mut hs, &room, "msc before");
    let synced = msc.sync(&mut hs);
    assert_eq!(msc_body(&msc.decrypt(&synced.timelines[&room][0], &room).unwrap()), "before");
    let (_, events) = fe_read(&mut hs, &mut fe.machine, &room);
    let msc_session = events.last().map(|e| {
        let v: serde_json::Value = serde_json::from_str(e.json().get()).unwrap();
        v["content"]["session_id"].as_str().unwrap().to_owned()
    });

    // ferrolm writes while msc is down (a room message and an Olm message); msc reopens its file.
    fe_say(&mut hs, &mut fe.machine, &room, "while msc is down");
    fe.machine.encrypt_to_device(&[msc.id()], "org.example.ping", &json!({"n": 1})).unwrap();
    run_requests(&mut hs, &mut fe.machine).unwrap();
    let since = msc.since.clone();
    crate::msc::close(msc);
    let mut msc = MscDevice::with_store(&mut hs, MSC_USER, MSC_DEVICE, crate::msc::sqlite_store(dir.path()));
    assert_eq!(msc.since, since, "msc saved its sync token");

    let synced = msc.sync(&mut hs);
    let decrypted = synced.decrypted();
    assert_eq!(decrypted.len(), 1, "{:?}", synced.to_device);
    assert_eq!(decrypted[0].0["content"]["n"], 1);
    assert_eq!(msc_body(&msc.decrypt(&synced.timelines[&room][0], &room).unwrap()), "while msc is down");

    // msc's outbound session and its Olm session with ferrolm survived the restart.
    assert!(!msc.open_sessions(&mut hs, &members), "no new claim after the restart");
    msc.share(&mut hs, &room, &members, MscSettings::default());
    msc.say(&mut hs, &room, "msc after");
    let (_, events) = fe_read(&mut hs, &mut fe.machine, &room);
    let decrypted = fe_decrypt(&mut fe.machine, events.last().unwrap(), &room).unwrap();
    assert_eq!(decrypted.content["body"], "msc after");
    assert_eq!(Some(decrypted.encryption.session_id), msc_session);
    assert_eq!(decrypted.encryption.message_index, 1);
    crate::msc::close(msc);
}
