//! Multi-device scenarios through the test homeserver: three users, five devices, one of them
//! on an SQLite store that restarts mid-conversation; a device joins, a device is deleted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cloned_ref_to_slice_refs
)]

mod common;

use common::{decrypted, id, the_decrypted, user};
use ferrolm_machine::ruma::{OwnedDeviceId, OwnedUserId, device_id};
use ferrolm_machine::{DeviceEvent, EncryptionSettings, ManualClock, OlmMachine, TrustRequirement};
use ferrolm_store::{KdfParams, SqliteBackend, SqliteStore, StoreSecret};
use ferrolm_test_homeserver::Homeserver;
use ferrolm_test_homeserver::driver::{TestDevice, run_requests, send, sync, sync_with_timelines, test_env};
use serde_json::json;

const SECRET: &str = "correct horse battery staple";

fn open_sqlite(path: &std::path::Path, seed: u64, clock: &ManualClock) -> OlmMachine<SqliteBackend> {
    let store = if path.exists() {
        SqliteStore::open_file(path, &StoreSecret::passphrase(SECRET)).unwrap()
    } else {
        SqliteStore::create_file(path, &StoreSecret::passphrase(SECRET), KdfParams::new(64, 1, 1).unwrap()).unwrap()
    };
    OlmMachine::open(
        OwnedUserId::try_from("@alice:test.server").unwrap(),
        OwnedDeviceId::from("ALICE1"),
        store,
        test_env(seed, clock),
    )
    .unwrap()
}

fn settle<B: ferrolm_store::Backend>(hs: &mut Homeserver, machine: &mut OlmMachine<B>) {
    run_requests(hs, machine).unwrap();
    sync(hs, machine).unwrap();
    run_requests(hs, machine).unwrap();
}

#[test]
fn three_users_five_devices_a_join_a_deletion_and_a_restart_from_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alice1.sqlite3");
    let mut hs = Homeserver::new();
    let clock = ManualClock::new(1_000_000);
    let alice_id = OwnedUserId::try_from("@alice:test.server").unwrap();
    hs.login(&alice_id, device_id!("ALICE1"));
    let mut alice1 = open_sqlite(&path, 1, &clock);
    let mut alice2 = TestDevice::new(&mut hs, "@alice:test.server", "ALICE2", 2, 1_000_000).unwrap();
    let mut bob1 = TestDevice::new(&mut hs, "@bob:test.server", "BOB1", 3, 1_000_000).unwrap();
    let mut bob2 = TestDevice::new(&mut hs, "@bob:test.server", "BOB2", 4, 1_000_000).unwrap();
    let mut carol = TestDevice::new(&mut hs, "@carol:test.server", "CAROL", 5, 1_000_000).unwrap();
    let room = hs.create_room(&alice_id).unwrap();
    for d in [&bob1, &carol] {
        hs.join(&room, d.machine.user_id());
    }
    let users = hs.members(&room);
    assert_eq!(users.len(), 3);

    // Everyone uploads keys, tracks the room's members, and learns every other device.
    settle(&mut hs, &mut alice1);
    alice1.update_tracked_users(&users).unwrap();
    settle(&mut hs, &mut alice1);
    for d in [&mut alice2, &mut bob1, &mut bob2, &mut carol] {
        d.settle(&mut hs, 1).unwrap();
        d.machine.update_tracked_users(&users).unwrap();
        d.settle(&mut hs, 1).unwrap();
    }
    // Devices that queried before the others uploaded hear of the changes in their next sync.
    settle(&mut hs, &mut alice1);
    for d in [&mut alice2, &mut bob1, &mut bob2, &mut carol] {
        d.settle(&mut hs, 1).unwrap();
    }
    let known = |machine: &OlmMachine<ferrolm_store::SqliteBackend>| -> usize {
        users.iter().map(|u| machine.devices(u).unwrap().len()).sum()
    };
    assert_eq!(known(&alice1), 4, "ALICE2, BOB1, BOB2, CAROL");
    for d in [&alice2, &bob1, &bob2, &carol] {
        let count: usize = users.iter().map(|u| d.machine.devices(u).unwrap().len()).sum();
        assert_eq!(count, 4, "{:?}", d.machine.device_id());
    }

    // ALICE1 opens sessions with all four and writes to each.
    let claim = alice1.get_missing_sessions(&users).unwrap().unwrap();
    assert_eq!(send(&mut hs, &mut alice1, &claim).unwrap().sessions_created, 4);
    let targets = [id(&alice2), id(&bob1), id(&bob2), id(&carol)];
    let sent = alice1.encrypt_to_device(&targets, "org.example.hello", &json!({"round": 1})).unwrap();
    assert!(sent.without_session.is_empty() && sent.unknown_devices.is_empty());
    run_requests(&mut hs, &mut alice1).unwrap();
    for d in [&mut alice2, &mut bob1, &mut bob2, &mut carol] {
        let outcome = sync(&mut hs, &mut d.machine).unwrap();
        let event = the_decrypted(&outcome);
        assert_eq!(
            (event.sender.as_str(), event.sender_device.as_deref()),
            ("@alice:test.server", Some(device_id!("ALICE1")))
        );
        assert_eq!(event.content, json!({"round": 1}));
    }

    // Bob logs in a third device: ALICE1 hears of it, queries, opens a session, writes to it.
    let mut bob3 = TestDevice::new(&mut hs, "@bob:test.server", "BOB3", 6, 1_000_000).unwrap();
    bob3.machine.update_tracked_users(&users).unwrap();
    bob3.settle(&mut hs, 1).unwrap();
    sync(&mut hs, &mut alice1).unwrap();
    let events: Vec<DeviceEvent> =
        run_requests(&mut hs, &mut alice1).unwrap().into_iter().flat_map(|o| o.device_events).collect();
    assert_eq!(events, vec![DeviceEvent::Added { user_id: user(&bob1), device_id: OwnedDeviceId::from("BOB3") }]);
    let claim = alice1.get_missing_sessions(&users).unwrap().unwrap();
    assert_eq!(send(&mut hs, &mut alice1, &claim).unwrap().sessions_created, 1);

    // BOB2 is deleted: marked, kept, and no longer written to.
    hs.delete_device(&user(&bob2), device_id!("BOB2"));
    sync(&mut hs, &mut alice1).unwrap();
    run_requests(&mut hs, &mut alice1).unwrap();
    assert!(alice1.device(&user(&bob2), device_id!("BOB2")).unwrap().unwrap().deleted);

    // ALICE1 restarts from its SQLite file mid-conversation.
    let identity = alice1.identity_keys();
    drop(alice1);
    let mut alice1 = open_sqlite(&path, 101, &clock);
    assert_eq!(alice1.identity_keys(), identity);
    assert!(alice1.get_missing_sessions(&users).unwrap().is_none(), "the sessions survived");
    let targets = [id(&alice2), id(&bob1), id(&bob2), id(&bob3), id(&carol)];
    let sent = alice1.encrypt_to_device(&targets, "org.example.hello", &json!({"round": 2})).unwrap();
    assert_eq!(sent.unknown_devices, vec![id(&bob2)]);
    run_requests(&mut hs, &mut alice1).unwrap();
    for d in [&mut alice2, &mut bob1, &mut bob3, &mut carol] {
        let outcome = sync(&mut hs, &mut d.machine).unwrap();
        assert_eq!(the_decrypted(&outcome).content, json!({"round": 2}), "{:?}", d.machine.device_id());
    }

    // Everyone answers; ALICE1 (restarted) reads every answer.
    for d in [&mut alice2, &mut bob1, &mut bob3, &mut carol] {
        d.machine
            .encrypt_to_device(
                &[(alice_id.clone(), OwnedDeviceId::from("ALICE1"))],
                "org.example.reply",
                &json!({"from": d.machine.device_id()}),
            )
            .unwrap();
        run_requests(&mut hs, &mut d.machine).unwrap();
    }
    let outcome = sync(&mut hs, &mut alice1).unwrap();
    let mut from: Vec<String> =
        decrypted(&outcome).iter().map(|e| e.content["from"].as_str().unwrap().to_owned()).collect();
    from.sort();
    assert_eq!(from, vec!["ALICE2", "BOB1", "BOB3", "CAROL"]);
    assert!(outcome.to_device.len() == 4, "{outcome:#?}");

    // ALICE1 (restarted) shares the room key and writes to the room; every member's device
    // reads it, and ALICE1 reads her own message.
    let shared = alice1.share_room_key(&room, &users, EncryptionSettings::default()).unwrap();
    assert_eq!(shared.shared_with.len(), 4, "ALICE2, BOB1, BOB3, CAROL");
    run_requests(&mut hs, &mut alice1).unwrap();
    let content = alice1.encrypt_room_event(&room, "m.room.message", &json!({"body": "to the room"})).unwrap();
    hs.send_room_event(&room, &alice_id, "m.room.encrypted", content).unwrap();
    for d in [&mut alice2, &mut bob1, &mut bob3, &mut carol] {
        let (outcome, timelines) = sync_with_timelines(&mut hs, &mut d.machine).unwrap();
        assert_eq!(outcome.room_keys.len(), 1);
        let event = timelines[&room].last().unwrap();
        let decrypted = d.machine.decrypt_room_event(event, &room, TrustRequirement::Untrusted).unwrap().unwrap();
        assert_eq!(decrypted.content["body"], "to the room");
    }
    // And it survives another restart of ALICE1: the next message uses the same session.
    drop(alice1);
    let mut alice1 = open_sqlite(&path, 102, &clock);
    let again = alice1.share_room_key(&room, &users, EncryptionSettings::default()).unwrap();
    assert!(!again.rotated && again.shared_with.is_empty());
    let content = alice1.encrypt_room_event(&room, "m.room.message", &json!({"body": "again"})).unwrap();
    hs.send_room_event(&room, &alice_id, "m.room.encrypted", content).unwrap();
    let (_, timelines) = sync_with_timelines(&mut hs, &mut carol.machine).unwrap();
    let decrypted = carol
        .machine
        .decrypt_room_event(timelines[&room].last().unwrap(), &room, TrustRequirement::Untrusted)
        .unwrap()
        .unwrap();
    assert_eq!((decrypted.content["body"].as_str(), decrypted.encryption.message_index), (Some("again"), 1));
}

/// Runs a whole exchange and returns every request body and every outcome, as text.
fn transcript(seed: u64) -> Vec<String> {
    let mut log = Vec::new();
    let mut hs = Homeserver::new();
    let mut alice = TestDevice::new(&mut hs, "@alice:test.server", "ALICE", seed, 5_000).unwrap();
    let mut bob = TestDevice::new(&mut hs, "@bob:test.server", "BOB", seed + 1, 5_000).unwrap();
    let room = common::meet(&mut hs, &mut [&mut alice, &mut bob]);
    let pump = |hs: &mut Homeserver, d: &mut TestDevice, log: &mut Vec<String>| {
        for request in d.machine.outgoing_requests().unwrap() {
            log.push(format!("{} {}", request.request_id, request.body_json().unwrap()));
            send(hs, &mut d.machine, &request).unwrap();
        }
    };
    let claim = alice.machine.get_missing_sessions(&[user(&bob)]).unwrap().unwrap();
    log.push(claim.body_json().unwrap());
    send(&mut hs, &mut alice.machine, &claim).unwrap();
    alice.machine.encrypt_to_device(&[id(&bob)], "org.example", &json!({"x": 1})).unwrap();
    alice.machine.share_room_key(&room, &hs.members(&room), EncryptionSettings::default()).unwrap();
    pump(&mut hs, &mut alice, &mut log);
    log.push(alice.machine.encrypt_room_event(&room, "m.room.message", &json!({"body": "b"})).unwrap().to_string());
    let outcome = sync(&mut hs, &mut bob.machine).unwrap();
    log.push(format!("{:?} {:?}", outcome.to_device, outcome.room_keys));
    pump(&mut hs, &mut bob, &mut log);
    log
}

#[test]
fn the_same_seeds_and_clock_replay_the_same_exchange() {
    let one = transcript(7);
    assert!(one.len() > 4);
    assert_eq!(one, transcript(7));
    assert_ne!(one, transcript(8));
}
