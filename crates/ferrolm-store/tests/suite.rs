//! The shared integration suite: every generic test runs against every back end.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::field_reassign_with_default
)]

mod common;

use common::*;
use ferrolm::megolm::MegolmMessage;
use ferrolm::olm::OlmMessage;
use ferrolm_store::*;

/// Checks that `store` holds exactly what [`everything`] saved.
fn assert_holds_everything<B: Backend>(store: &Store<B>, e: &Everything) {
    let saved = e.changes.account.as_ref().unwrap();
    let account = store.account().unwrap().unwrap();
    assert_eq!(account.user_id, saved.user_id);
    assert_eq!(account.device_id, saved.device_id);
    assert!(account.device_keys_uploaded);
    assert_eq!(account.fallback_key_published_ms, Some(1_234_567));
    assert_eq!(account.account.identity_keys(), saved.account.identity_keys());
    assert_eq!(account.account.one_time_keys(), saved.account.one_time_keys());

    let alice_key = e.pair.alice.curve25519_key();
    let sessions = store.olm_sessions(&alice_key).unwrap();
    assert_eq!(sessions.len(), 1);
    let mut olm = store.olm_session(&alice_key, &e.pair.bob_session.session_id().to_base64()).unwrap().unwrap();
    assert_eq!(olm.session_id(), e.pair.bob_session.session_id().to_base64());
    assert_eq!((olm.created_ms, olm.last_use_ms, olm.last_decrypt_ms), (1000, 1001, Some(1002)));
    // The stored session is the live one: it decrypts Alice's next message.
    let mut alice_session = e.pair.alice_session.clone();
    let message = alice_session.encrypt(b"next");
    assert!(matches!(message, OlmMessage::Normal(_)));
    assert_eq!(olm.session.decrypt(&message).unwrap(), b"next");

    let saved_igs = &e.changes.inbound_group_sessions[0];
    let mut igs = store.inbound_group_session(&room("cats"), &saved_igs.session_id()).unwrap().unwrap();
    assert_eq!(igs.room_id, room("cats"));
    assert_eq!(igs.sender_key, saved_igs.sender_key);
    assert_eq!(igs.claimed_signing_key, saved_igs.claimed_signing_key);
    assert_eq!(igs.source, RoomKeySource::Forwarded);
    assert!(!igs.backed_up);
    assert!(igs.shared_history);
    assert_eq!(igs.first_known_index(), 0);
    let mut outbound = e.outbound.clone();
    let encrypted: MegolmMessage = outbound.encrypt(b"room message");
    assert_eq!(igs.session.decrypt(&encrypted).unwrap().plaintext, b"room message");

    let saved_ogs = &e.changes.outbound_group_sessions[0];
    let ogs = store.outbound_group_session(&room("cats")).unwrap().unwrap();
    assert_eq!(ogs.session_id(), saved_ogs.session_id());
    assert_eq!(ogs.session.message_index(), saved_ogs.session.message_index());
    assert_eq!((ogs.created_ms, ogs.message_count), (5000, 4));
    let mut shares = store.outbound_shares(&room("cats"), &ogs.session_id()).unwrap();
    shares.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    let mut expected_shares = e.changes.outbound_shares.clone();
    expected_shares.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    assert_eq!(shares, expected_shares);

    assert_eq!(store.devices(&user("alice")).unwrap(), e.changes.devices);
    assert_eq!(
        store.device(&user("alice"), &DeviceId::from("ALICEDEVICE")).unwrap().as_ref(),
        e.changes.devices.first()
    );
    assert_eq!(store.identity(&user("alice")).unwrap().as_ref(), e.changes.identities.first());
    assert_eq!(store.private_cross_signing_keys().unwrap(), e.changes.private_cross_signing_keys);
    assert_eq!(store.tracked_users().unwrap(), e.changes.tracked_users);
    assert_eq!(store.sync_token().unwrap().as_deref(), Some("s42_1"));
    let backup = store.backup().unwrap().unwrap();
    assert_eq!(backup.version.as_deref(), Some("7"));
    assert_eq!(backup.decryption_key.unwrap().public_key(), e.backup_key.public_key());
    assert_eq!(store.secrets_in_inbox("m.megolm_backup.v1").unwrap(), e.changes.secrets_inbox);
    assert_eq!(store.outgoing_request("req2").unwrap().as_ref(), e.changes.outgoing_requests.get(1));
    let mut requests = store.outgoing_requests().unwrap();
    requests.sort_by(|a, b| a.request_id.cmp(&b.request_id));
    assert_eq!(requests, e.changes.outgoing_requests);
    assert_eq!(store.withheld_notice(&room("dogs"), "withheldsession").unwrap().as_ref(), e.changes.withheld.first());
    assert_eq!(store.room_settings(&room("cats")).unwrap().as_ref(), e.changes.room_settings.first());
    assert_eq!(store.seen_message("seensession", 12).unwrap().as_deref(), Some("$event12"));
    assert_eq!(store.outgoing_to_device().unwrap(), e.changes.outgoing_to_device);
    assert_eq!(store.outgoing_to_device_request("txn1").unwrap().as_ref(), e.changes.outgoing_to_device.first());
    assert_eq!(
        store.device_by_curve25519_key(&user("alice"), &e.pair.alice.curve25519_key()).unwrap().as_ref(),
        e.changes.devices.first()
    );
    assert!(store.device_by_curve25519_key(&user("alice"), &e.pair.bob.curve25519_key()).unwrap().is_none());
}

fn every_record_kind_round_trips<H: Harness>() {
    let h = H::new();
    let mut store = create(&h);
    let e = everything();
    assert_eq!(store.save_changes(&e.changes).unwrap(), 1);
    assert_holds_everything(&store, &e);
    // A second handle (a restart, another process) reads the same.
    let again = open(&h);
    assert_holds_everything(&again, &e);
    again.check_integrity().unwrap();
}

fn absent_records_are_none<H: Harness>() {
    let h = H::new();
    let store = create(&h);
    let pair = olm_pair();
    assert!(store.account().unwrap().is_none());
    assert!(store.olm_session(&pair.alice.curve25519_key(), "x").unwrap().is_none());
    assert!(store.olm_sessions(&pair.alice.curve25519_key()).unwrap().is_empty());
    assert!(store.inbound_group_session(&room("a"), "x").unwrap().is_none());
    assert!(store.inbound_group_sessions_in_room(&room("a")).unwrap().is_empty());
    assert!(store.inbound_group_sessions_to_back_up(10).unwrap().is_empty());
    assert!(store.outbound_group_session(&room("a")).unwrap().is_none());
    assert!(store.device(&user("a"), &DeviceId::from("D")).unwrap().is_none());
    assert!(store.identity(&user("a")).unwrap().is_none());
    assert!(store.private_cross_signing_keys().unwrap().is_none());
    assert!(store.tracked_users().unwrap().is_empty());
    assert!(store.sync_token().unwrap().is_none());
    assert!(store.backup().unwrap().is_none());
    assert!(store.secrets_in_inbox("m.x").unwrap().is_empty());
    assert!(store.outgoing_requests().unwrap().is_empty());
    assert!(store.withheld_notice(&room("a"), "x").unwrap().is_none());
    assert!(store.room_settings(&room("a")).unwrap().is_none());
    assert!(store.seen_message("x", 0).unwrap().is_none());
    assert!(store.outgoing_to_device().unwrap().is_empty());
    assert!(store.outgoing_to_device_request("x").unwrap().is_none());
    assert_eq!(store.inbound_group_sessions_page(None, 10).unwrap().0.len(), 0);
    assert_eq!(store.room_key_counts().unwrap(), RoomKeyCounts::default());
    store.check_integrity().unwrap();
}

fn queries_select_exactly_their_rows<H: Harness>() {
    let h = H::new();
    let mut store = create(&h);
    let pair = olm_pair();
    let carol = olm_pair();
    let mut changes = Changes::default();
    // Olm sessions of two senders.
    changes.olm_sessions.push(olm_record(&pair.alice, pair.bob_session.clone(), 1));
    let second = olm_pair();
    // A second session with Alice: same sender key, another session.
    let mut alice2 = olm_record(&pair.alice, second.bob_session.clone(), 2);
    alice2.sender_key = pair.alice.curve25519_key();
    changes.olm_sessions.push(alice2);
    changes.olm_sessions.push(olm_record(&carol.alice, carol.bob_session.clone(), 3));
    // Room keys in three rooms, some backed up.
    let mut ids = std::collections::BTreeMap::<String, Vec<String>>::new();
    for (i, name) in ["a", "a", "a", "b", "b", "c", "c"].iter().enumerate() {
        let (_, record) = room_key(&room(name), &pair.alice, i % 3 == 0);
        ids.entry(name.to_string()).or_default().push(record.session_id());
        changes.inbound_group_sessions.push(record);
    }
    // Devices of two users.
    for d in ["D1", "D2", "D3"] {
        changes.devices.push(device(&user("alice"), d, &pair.alice));
    }
    changes.devices.push(device(&user("carol"), "C1", &carol.alice));
    // Secrets of two names.
    for (name, id) in [("m.a", "1"), ("m.a", "2"), ("m.b", "1")] {
        changes.secrets_inbox.push(ReceivedSecret {
            name: name.into(),
            id: id.into(),
            sender_user: user("bob"),
            sender_device: DeviceId::from("B"),
            secret: SecretString::new(format!("{name}{id}")),
        });
    }
    // Seen messages of two sessions.
    for (s, i) in [("s1", 0), ("s1", 1), ("s2", 0)] {
        changes.seen_messages.push(SeenMessage {
            session_id: s.into(),
            message_index: i,
            event_id: format!("${s}{i}"),
        });
    }
    store.save_changes(&changes).unwrap();

    let alice_sessions = store.olm_sessions(&pair.alice.curve25519_key()).unwrap();
    assert_eq!(alice_sessions.len(), 2);
    assert!(alice_sessions.iter().all(|s| s.sender_key == pair.alice.curve25519_key()));
    assert_eq!(store.olm_sessions(&carol.alice.curve25519_key()).unwrap().len(), 1);

    for (name, expected) in &ids {
        let mut got: Vec<String> =
            store.inbound_group_sessions_in_room(&room(name)).unwrap().iter().map(|r| r.session_id()).collect();
        got.sort();
        let mut expected = expected.clone();
        expected.sort();
        assert_eq!(got, expected, "room {name}");
        for id in &expected {
            assert_eq!(store.inbound_group_session(&room(name), id).unwrap().unwrap().session_id(), *id);
        }
    }
    // A session id asked for in the wrong room is not found.
    assert!(store.inbound_group_session(&room("b"), &ids["a"][0]).unwrap().is_none());
    assert_eq!(store.room_key_counts().unwrap(), RoomKeyCounts { total: 7, backed_up: 3 });

    assert_eq!(store.all_inbound_group_sessions().unwrap().len(), 7);
    // Paging through every room key: each exactly once, in pages of at most 3.
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let (page, next) = store.inbound_group_sessions_page(cursor.as_ref(), 3).unwrap();
        assert!(page.len() <= 3);
        paged.extend(page.into_iter().map(|r| r.session_id()));
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    paged.sort();
    let mut every: Vec<String> = ids.values().flatten().cloned().collect();
    every.sort();
    assert_eq!(paged, every);
    assert_eq!(store.all_olm_sessions().unwrap().len(), 3);
    assert_eq!(store.all_devices().unwrap().len(), 4);
    assert!(store.all_identities().unwrap().is_empty());
    assert_eq!(store.devices(&user("alice")).unwrap().len(), 3);
    assert_eq!(store.devices(&user("carol")).unwrap().len(), 1);
    assert!(store.devices(&user("dave")).unwrap().is_empty());

    let a: Vec<String> = store.secrets_in_inbox("m.a").unwrap().iter().map(|s| s.secret.expose().to_owned()).collect();
    assert_eq!(a.len(), 2);
    assert!(a.contains(&"m.a1".to_owned()) && a.contains(&"m.a2".to_owned()));
    assert_eq!(store.secrets_in_inbox("m.b").unwrap().len(), 1);

    assert_eq!(store.seen_message("s1", 1).unwrap().as_deref(), Some("$s11"));
    assert_eq!(store.seen_message("s2", 0).unwrap().as_deref(), Some("$s20"));
    assert!(store.seen_message("s2", 1).unwrap().is_none());
}

fn backups_walk_the_queue_in_batches<H: Harness>() {
    let h = H::new();
    let mut store = create(&h);
    let pair = olm_pair();
    let mut changes = Changes::default();
    for i in 0..10 {
        let (_, record) = room_key(&room(&format!("r{}", i % 3)), &pair.alice, i == 4);
        changes.inbound_group_sessions.push(record);
    }
    store.save_changes(&changes).unwrap();
    let mut backed_up = std::collections::BTreeSet::new();
    loop {
        let batch = store.inbound_group_sessions_to_back_up(4).unwrap();
        if batch.is_empty() {
            break;
        }
        assert!(batch.len() <= 4);
        let mut mark = Changes::default();
        for mut record in batch {
            assert!(!record.backed_up);
            assert!(backed_up.insert(record.session_id()), "a key came back after being backed up");
            record.backed_up = true;
            mark.inbound_group_sessions.push(record);
        }
        store.save_changes(&mark).unwrap();
    }
    assert_eq!(backed_up.len(), 9);
    assert_eq!(store.room_key_counts().unwrap(), RoomKeyCounts { total: 10, backed_up: 10 });
    // A new backup version: the machine marks keys not backed up again; they queue again.
    let mut reset = Changes::default();
    for i in 0..3 {
        for mut record in store.inbound_group_sessions_in_room(&room(&format!("r{i}"))).unwrap() {
            record.backed_up = false;
            reset.inbound_group_sessions.push(record);
        }
    }
    store.save_changes(&reset).unwrap();
    assert_eq!(store.inbound_group_sessions_to_back_up(100).unwrap().len(), 10);
    store.check_integrity().unwrap();
}

fn deletions_remove_exactly_what_they_name<H: Harness>() {
    let h = H::new();
    let mut store = create(&h);
    let e = everything();
    store.save_changes(&e.changes).unwrap();
    let (_, other_key) = room_key(&room("cats"), &e.pair.alice, false);
    let other_id = other_key.session_id();
    store.save_changes(&Changes { inbound_group_sessions: vec![other_key], ..Changes::default() }).unwrap();

    let igs_id = e.changes.inbound_group_sessions[0].session_id();
    let mut changes = Changes::default();
    let d = &mut changes.deletions;
    d.olm_sessions.push((e.pair.alice.curve25519_key(), e.pair.bob_session.session_id().to_base64()));
    d.inbound_group_sessions.push((room("cats"), igs_id.clone()));
    d.outbound_group_sessions.push(room("cats"));
    d.devices.push((user("alice"), DeviceId::from("ALICEDEVICE")));
    d.identities.push(user("alice"));
    d.tracked_users.push(user("alice"));
    d.private_cross_signing_keys = true;
    d.backup = true;
    d.secrets_inbox.push("m.megolm_backup.v1".into());
    d.outgoing_requests.push("req1".into());
    d.withheld.push((room("dogs"), "withheldsession".into()));
    d.room_settings.push(room("cats"));
    d.seen_messages.push("seensession".into());
    d.outgoing_to_device.push("txn1".into());
    // Deleting something absent is not an error.
    d.olm_sessions.push((e.pair.bob.curve25519_key(), "absent".into()));
    d.identities.push(user("nobody"));
    store.save_changes(&changes).unwrap();

    assert!(store.olm_sessions(&e.pair.alice.curve25519_key()).unwrap().is_empty());
    assert!(store.inbound_group_session(&room("cats"), &igs_id).unwrap().is_none());
    // The other room key of the room stays, and is the only one left to back up.
    assert_eq!(store.inbound_group_sessions_in_room(&room("cats")).unwrap().len(), 1);
    let queue = store.inbound_group_sessions_to_back_up(10).unwrap();
    assert_eq!(queue.iter().map(|r| r.session_id()).collect::<Vec<_>>(), vec![other_id]);
    assert!(store.outbound_group_session(&room("cats")).unwrap().is_none());
    let old_session_id = e.changes.outbound_group_sessions[0].session_id();
    assert!(store.outbound_shares(&room("cats"), &old_session_id).unwrap().is_empty(), "shares go with their session");
    assert!(store.devices(&user("alice")).unwrap().is_empty());
    assert!(store.identity(&user("alice")).unwrap().is_none());
    assert!(store.tracked_users().unwrap().is_empty());
    assert!(store.private_cross_signing_keys().unwrap().is_none());
    assert!(store.backup().unwrap().is_none());
    assert!(store.secrets_in_inbox("m.megolm_backup.v1").unwrap().is_empty());
    assert!(store.outgoing_request("req1").unwrap().is_none());
    assert!(store.outgoing_request("req2").unwrap().is_some(), "only the named request goes");
    assert!(store.withheld_notice(&room("dogs"), "withheldsession").unwrap().is_none());
    assert!(store.room_settings(&room("cats")).unwrap().is_none());
    assert!(store.seen_message("seensession", 12).unwrap().is_none());
    assert!(store.outgoing_to_device().unwrap().is_empty());
    // Untouched.
    assert!(store.account().unwrap().is_some());
    assert_eq!(store.sync_token().unwrap().as_deref(), Some("s42_1"));
    store.check_integrity().unwrap();
}

fn deletions_apply_before_insertions<H: Harness>() {
    let h = H::new();
    let mut store = create(&h);
    let mut changes = Changes::default();
    changes.tracked_users.push(TrackedUser { user_id: user("a"), dirty: false });
    store.save_changes(&changes).unwrap();
    let mut replace = Changes::default();
    replace.deletions.tracked_users.push(user("a"));
    replace.tracked_users.push(TrackedUser { user_id: user("a"), dirty: true });
    store.save_changes(&replace).unwrap();
    assert_eq!(store.tracked_users().unwrap(), vec![TrackedUser { user_id: user("a"), dirty: true }]);
}

fn records_replace_records_with_the_same_key<H: Harness>() {
    let h = H::new();
    let mut store = create(&h);
    let e = everything();
    store.save_changes(&e.changes).unwrap();
    let mut changes = Changes::default();
    let mut olm = olm_record(&e.pair.alice, e.pair.bob_session.clone(), 1000);
    olm.last_use_ms = 99_999;
    changes.olm_sessions.push(olm);
    let mut d = e.changes.devices[0].clone();
    d.local_trust = LocalTrust::Blacklisted;
    d.deleted = true;
    changes.devices.push(d.clone());
    changes.sync_token = Some("s43".into());
    store.save_changes(&changes).unwrap();
    let sessions = store.olm_sessions(&e.pair.alice.curve25519_key()).unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].last_use_ms, 99_999);
    assert_eq!(store.devices(&user("alice")).unwrap(), vec![d]);
    assert_eq!(store.sync_token().unwrap().as_deref(), Some("s43"));
}

fn a_new_outbound_session_forgets_the_old_shares<H: Harness>() {
    let h = H::new();
    let mut store = create(&h);
    let e = everything();
    store.save_changes(&e.changes).unwrap();
    let old = store.outbound_group_session(&room("cats")).unwrap().unwrap();
    assert_eq!(store.outbound_shares(&room("cats"), &old.session_id()).unwrap().len(), 2);
    // The same session with a higher message count keeps its shares.
    let mut same = old.clone();
    same.message_count = 5;
    store.save_changes(&Changes { outbound_group_sessions: vec![same], ..Changes::default() }).unwrap();
    assert_eq!(store.outbound_shares(&room("cats"), &old.session_id()).unwrap().len(), 2);
    // A rotated session drops them.
    let rotated = OutboundGroupSessionRecord {
        room_id: room("cats"),
        session: ferrolm::megolm::GroupSession::new(ferrolm::megolm::SessionConfig::version_1()),
        created_ms: 6000,
        message_count: 0,
    };
    let new_id = rotated.session_id();
    let share = OutboundShare {
        room_id: room("cats"),
        session_id: new_id.clone(),
        user_id: user("alice"),
        device_id: DeviceId::from("ALICEDEVICE"),
        state: ShareState::Shared { message_index: 0 },
    };
    store
        .save_changes(&Changes {
            outbound_group_sessions: vec![rotated],
            outbound_shares: vec![share.clone()],
            ..Changes::default()
        })
        .unwrap();
    assert!(store.outbound_shares(&room("cats"), &old.session_id()).unwrap().is_empty());
    assert_eq!(store.outbound_shares(&room("cats"), &new_id).unwrap(), vec![share]);
    store.check_integrity().unwrap();
}

fn a_failing_change_set_leaves_nothing<H: Harness>() {
    let h = H::new();
    let mut store = create(&h);
    store.save_changes(&Changes { sync_token: Some("before".into()), ..Changes::default() }).unwrap();
    let rows_before: Vec<_> = Table::ALL.iter().map(|&t| h.rows(t)).collect();
    let generation = store.generation();
    // Everything valid but one record with an empty room id.
    let mut e = everything();
    e.changes.sync_token = Some("after".into());
    let (_, mut bad) = room_key(&room("x"), &e.pair.alice, false);
    bad.room_id = RoomId::from("");
    e.changes.inbound_group_sessions.push(bad);
    assert!(matches!(store.save_changes(&e.changes), Err(StoreError::InvalidRecord(_))));
    assert_eq!(Table::ALL.iter().map(|&t| h.rows(t)).collect::<Vec<_>>(), rows_before);
    assert_eq!(store.generation(), generation);
    assert_eq!(store.sync_token().unwrap().as_deref(), Some("before"));
    assert!(store.account().unwrap().is_none());

    // A change set refused by the fence (another writer committed) leaves nothing either.
    let mut other = open(&h);
    other.save_changes(&Changes { sync_token: Some("other".into()), ..Changes::default() }).unwrap();
    let rows_before: Vec<_> = Table::ALL.iter().map(|&t| h.rows(t)).collect();
    let e = everything();
    assert!(matches!(store.save_changes(&e.changes), Err(StoreError::StaleGeneration { .. })));
    assert_eq!(Table::ALL.iter().map(|&t| h.rows(t)).collect::<Vec<_>>(), rows_before);
    assert_eq!(store.sync_token().unwrap().as_deref(), Some("other"));
}

fn every_commit_bumps_the_generation<H: Harness>() {
    let h = H::new();
    let mut a = create(&h);
    assert_eq!(a.generation(), 0);
    for i in 1..=3 {
        assert_eq!(a.save_changes(&Changes { sync_token: Some(format!("t{i}")), ..Changes::default() }).unwrap(), i);
    }
    // An empty change set is a commit too.
    assert_eq!(a.save_changes(&Changes::default()).unwrap(), 4);
    let mut b = open(&h);
    assert_eq!(b.generation(), 4);
    b.save_changes(&Changes { sync_token: Some("from b".into()), ..Changes::default() }).unwrap();
    assert_eq!(a.stored_generation().unwrap(), 5);
    // `a` missed b's commit: refused until it reloads and accepts the new generation.
    let stale = a.save_changes(&Changes { sync_token: Some("stale".into()), ..Changes::default() });
    assert_eq!(stale.unwrap_err(), StoreError::StaleGeneration { seen: 4, found: 5 });
    assert_eq!(a.sync_token().unwrap().as_deref(), Some("from b"));
    assert_eq!(a.refresh().unwrap(), 5);
    assert_eq!(a.save_changes(&Changes::default()).unwrap(), 6);
}

fn the_lease_fences_writers<H: Harness>() {
    let h = H::new();
    let mut app = create(&h);
    let mut nse = open(&h);
    let token = |t: &str| Changes { sync_token: Some(t.into()), ..Changes::default() };

    assert_eq!(app.acquire_lease("app", 1_000, 500).unwrap(), LeaseOutcome::Acquired { generation: 0, reload: false });
    assert!(app.holds_lease());
    assert_eq!(nse.current_lease().unwrap(), Some(LeaseInfo { holder: "app".into(), expires_ms: 1_500 }));
    // The other process cannot take it, nor write without it.
    assert_eq!(
        nse.acquire_lease("nse", 1_200, 500).unwrap(),
        LeaseOutcome::Held(LeaseInfo { holder: "app".into(), expires_ms: 1_500 })
    );
    assert_eq!(
        nse.save_changes(&token("nse")).unwrap_err(),
        StoreError::LeaseHeld { holder: "app".into(), expires_ms: 1_500 }
    );
    assert_eq!(app.save_changes(&token("app 1")).unwrap(), 1);
    app.renew_lease(1_400, 500).unwrap();
    assert_eq!(
        nse.acquire_lease("nse", 1_600, 500).unwrap(),
        LeaseOutcome::Held(LeaseInfo { holder: "app".into(), expires_ms: 1_900 })
    );

    // The lease expires; the other process takes it and learns it must reload.
    assert_eq!(nse.acquire_lease("nse", 2_000, 500).unwrap(), LeaseOutcome::Acquired { generation: 1, reload: true });
    assert_eq!(nse.save_changes(&token("nse")).unwrap_err(), StoreError::StaleGeneration { seen: 0, found: 1 });
    nse.refresh().unwrap();
    assert_eq!(nse.save_changes(&token("nse 1")).unwrap(), 2);
    // The old holder is fenced off: its writes and renewals fail.
    assert_eq!(app.save_changes(&token("app 2")).unwrap_err(), StoreError::LeaseLost);
    assert!(!app.holds_lease());
    assert!(matches!(app.save_changes(&token("app 2")).unwrap_err(), StoreError::LeaseHeld { .. }));
    assert_eq!(app.renew_lease(2_100, 500).unwrap_err(), StoreError::LeaseLost);
    assert_eq!(app.sync_token().unwrap().as_deref(), Some("nse 1"));

    nse.release_lease().unwrap();
    assert_eq!(nse.current_lease().unwrap(), None);
    // Back to the app, which must reload too.
    assert_eq!(app.acquire_lease("app", 2_200, 500).unwrap(), LeaseOutcome::Acquired { generation: 2, reload: true });
    app.refresh().unwrap();
    app.save_changes(&token("app 3")).unwrap();
    // A restarted app (a new handle, same holder id) takes its own lease back at once.
    let mut restarted = open(&h);
    assert_eq!(
        restarted.acquire_lease("app", 2_300, 500).unwrap(),
        LeaseOutcome::Acquired { generation: 3, reload: false }
    );
    restarted.save_changes(&token("restarted")).unwrap();
    assert_eq!(app.save_changes(&token("old app")).unwrap_err(), StoreError::LeaseLost);
    restarted.release_lease().unwrap();
    // With no lease held, a handle that uses none may write again.
    let mut plain = open(&h);
    plain.save_changes(&token("plain")).unwrap();
    assert_eq!(plain.sync_token().unwrap().as_deref(), Some("plain"));
}

fn secrets_unlock_and_change<H: Harness>() {
    let h = H::new();
    let passphrase = StoreSecret::passphrase("first passphrase");
    let mut store = Store::create(h.backend(), &passphrase, fast_kdf()).unwrap();
    store.save_changes(&Changes { sync_token: Some("kept".into()), ..Changes::default() }).unwrap();
    assert_eq!(Store::open(h.backend(), &StoreSecret::passphrase("wrong")).unwrap_err(), StoreError::WrongSecret);
    assert_eq!(
        Store::open(h.backend(), &StoreSecret::key([0; 32])).unwrap_err(),
        StoreError::WrongSecretKind { expected: "passphrase", given: "raw key" }
    );
    assert_eq!(store.info().unwrap().key_wrapping, WrapKind::Passphrase(fast_kdf()));
    let values_before = h.rows(Table::Singletons);

    let second = StoreSecret::passphrase("second passphrase");
    let kdf = KdfParams::new(128, 2, 1).unwrap();
    store.change_secret(&second, kdf).unwrap();
    assert_eq!(h.rows(Table::Singletons), values_before, "changing the passphrase rewrites no data");
    assert_eq!(Store::open(h.backend(), &passphrase).unwrap_err(), StoreError::WrongSecret);
    let reopened = Store::open(h.backend(), &second).unwrap();
    assert_eq!(reopened.sync_token().unwrap().as_deref(), Some("kept"));
    assert_eq!(reopened.info().unwrap().key_wrapping, WrapKind::Passphrase(kdf));

    // To a raw key and back.
    store.change_secret(&StoreSecret::key([5; 32]), KdfParams::default()).unwrap();
    let mut by_key = Store::open(h.backend(), &StoreSecret::key([5; 32])).unwrap();
    assert_eq!(by_key.info().unwrap().key_wrapping, WrapKind::RawKey);
    by_key.change_secret(&passphrase, fast_kdf()).unwrap();
    assert_eq!(Store::open(h.backend(), &passphrase).unwrap().sync_token().unwrap().as_deref(), Some("kept"));
}

fn creating_twice_and_opening_nothing_are_errors<H: Harness>() {
    let h = H::new();
    assert_eq!(Store::open(h.backend(), &secret()).unwrap_err(), StoreError::NotInitialized);
    create(&h);
    assert_eq!(Store::create(h.backend(), &secret(), fast_kdf()).unwrap_err(), StoreError::AlreadyInitialized);
    Store::open_or_create(h.backend(), &secret(), fast_kdf()).unwrap();
}

fn altered_and_swapped_values_are_refused<H: Harness>() {
    let h = H::new();
    let mut store = create(&h);
    let pair = olm_pair();
    let mut changes = Changes::default();
    for r in ["a", "b"] {
        let (_, record) = room_key(&room(r), &pair.alice, true);
        changes.inbound_group_sessions.push(record);
    }
    changes.devices.push(device(&user("alice"), "D", &pair.alice));
    changes.identities.push(identity(&user("alice")));
    store.save_changes(&changes).unwrap();
    let a_id = changes.inbound_group_sessions[0].session_id();
    let b_id = changes.inbound_group_sessions[1].session_id();
    let rows = h.rows(Table::InboundGroupSessions);
    assert_eq!(rows.len(), 2);
    let (k0, v0) = rows[0].clone();
    let (k1, v1) = rows[1].clone();

    // Swapped values of two rows.
    h.set(Table::InboundGroupSessions, &k0, Some(v1.clone()));
    h.set(Table::InboundGroupSessions, &k1, Some(v0.clone()));
    let store = open(&h);
    assert_eq!(
        store.inbound_group_sessions_in_room(&room("a")).unwrap_err(),
        StoreError::ValueRejected { table: Table::InboundGroupSessions }
    );
    assert!(store.check_integrity().is_err());

    // One flipped bit anywhere in a value.
    h.set(Table::InboundGroupSessions, &k1, Some(v1.clone()));
    for i in [0, 1, 20, v0.len() / 2, v0.len() - 1] {
        let mut flipped = v0.clone();
        flipped[i] ^= 0x04;
        h.set(Table::InboundGroupSessions, &k0, Some(flipped));
        let found = (store.inbound_group_session(&room("a"), &a_id), store.inbound_group_session(&room("b"), &b_id));
        let error = match found {
            (Err(e), _) | (_, Err(e)) => e,
            _ => panic!("a flipped bit at {i} went unnoticed"),
        };
        assert_eq!(error, StoreError::ValueRejected { table: Table::InboundGroupSessions }, "flip at {i}");
    }
    h.set(Table::InboundGroupSessions, &k0, Some(v0.clone()));

    // A value moved to another table (same key length: a user's identity into tracked users).
    let (ik, iv) = h.rows(Table::Identities)[0].clone();
    h.set(Table::TrackedUsers, &ik, Some(iv));
    assert_eq!(store.tracked_users().unwrap_err(), StoreError::ValueRejected { table: Table::TrackedUsers });
    h.set(Table::TrackedUsers, &ik, None);

    // A truncated value.
    h.set(Table::InboundGroupSessions, &k0, Some(v0[..30].to_vec()));
    let rooms = [store.inbound_group_sessions_in_room(&room("a")), store.inbound_group_sessions_in_room(&room("b"))];
    assert_eq!(
        rooms
            .iter()
            .filter(|r| matches!(r, Err(StoreError::ValueRejected { table: Table::InboundGroupSessions })))
            .count(),
        1,
        "the truncated value is refused, the other read"
    );
    h.set(Table::InboundGroupSessions, &k0, Some(v0));
    store.check_integrity().unwrap();

    // A value sealed by another store (another store key) is refused too.
    let other = H::new();
    let mut other_store = create(&other);
    other_store.save_changes(&Changes { sync_token: Some("other".into()), ..Changes::default() }).unwrap();
    let (tk, tv) = other.rows(Table::Singletons)[0].clone();
    h.set(Table::Singletons, &tk, Some(tv));
    assert_eq!(store.sync_token().unwrap_err(), StoreError::ValueRejected { table: Table::Singletons });
}

fn broken_metadata_is_reported<H: Harness>() {
    let h = H::new();
    let mut store = create(&h);
    store.save_changes(&Changes { sync_token: Some("x".into()), ..Changes::default() }).unwrap();
    // A newer schema is refused, untouched.
    let newer = SCHEMA_VERSION + 1;
    h.set(Table::Meta, b"schema_version", Some(newer.to_le_bytes().to_vec()));
    assert_eq!(
        Store::open(h.backend(), &secret()).unwrap_err(),
        StoreError::NewerSchema { found: newer, supported: SCHEMA_VERSION }
    );
    assert_eq!(h.rows(Table::Meta).iter().find(|(k, _)| k == b"schema_version").unwrap().1, newer.to_le_bytes());
    h.set(Table::Meta, b"schema_version", Some(vec![1, 0]));
    assert!(matches!(Store::open(h.backend(), &secret()).unwrap_err(), StoreError::MalformedMeta(_)));
    h.set(Table::Meta, b"schema_version", Some(SCHEMA_VERSION.to_le_bytes().to_vec()));
    // The wrapped key altered: refused like a wrong secret. Missing: named.
    let (_, wrapped) = h.rows(Table::Meta).into_iter().find(|(k, _)| k == b"store_key").unwrap();
    let mut altered = wrapped.clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    h.set(Table::Meta, b"store_key", Some(altered));
    assert_eq!(Store::open(h.backend(), &secret()).unwrap_err(), StoreError::WrongSecret);
    h.set(Table::Meta, b"store_key", None);
    assert!(matches!(Store::open(h.backend(), &secret()).unwrap_err(), StoreError::MalformedMeta(_)));
    h.set(Table::Meta, b"store_key", Some(wrapped));
    open(&h).check_integrity().unwrap();
    // A backup-queue entry dropped behind the store's back breaks an invariant, and is reported.
    let pair = olm_pair();
    let (_, record) = room_key(&room("q"), &pair.alice, false);
    let mut store = open(&h);
    store.save_changes(&Changes { inbound_group_sessions: vec![record], ..Changes::default() }).unwrap();
    let (qk, _) = h.rows(Table::BackupQueue)[0].clone();
    h.set(Table::BackupQueue, &qk, None);
    assert!(matches!(store.check_integrity().unwrap_err(), StoreError::Invariant(_)));
}

fn the_store_holds_no_identifier_in_the_clear<H: Harness>() {
    let h = H::new();
    let mut store = create(&h);
    let e = everything();
    store.save_changes(&e.changes).unwrap();
    let raw = h.raw_bytes();
    let needles: Vec<Vec<u8>> = vec![
        b"@alice:example.org".to_vec(),
        b"@bob:example.org".to_vec(),
        b"!cats:example.org".to_vec(),
        b"ALICEDEVICE".to_vec(),
        b"m.megolm_backup.v1".to_vec(),
        b"$event12".to_vec(),
        b"seensession".to_vec(),
        e.changes.inbound_group_sessions[0].session_id().into_bytes(),
        e.pair.alice.curve25519_key().as_bytes().to_vec(),
        e.pair.alice.curve25519_key().to_base64().into_bytes(),
        b"c2VjcmV0".to_vec(),
        vec![1u8; 32],
    ];
    for needle in needles {
        assert!(
            !raw.windows(needle.len()).any(|w| w == needle.as_slice()),
            "{:?} in the clear",
            String::from_utf8_lossy(&needle)
        );
    }
}

fn debug_output_holds_no_secret<H: Harness>() {
    let h = H::new();
    let store = create(&h);
    let e = everything();
    let shown = format!("{:?} {:?} {:?}", e.changes, store, secret());
    for secret in ["c2VjcmV0", "[1, 1, 1", "0x11"] {
        assert!(!shown.contains(secret), "{secret} shown in Debug");
    }
    assert!(shown.contains("<redacted>"));
}

macro_rules! suite {
    ($module:ident, $harness:ty) => {
        mod $module {
            use super::*;
            suite!(@tests $harness;
                every_record_kind_round_trips, absent_records_are_none, queries_select_exactly_their_rows,
                backups_walk_the_queue_in_batches, deletions_remove_exactly_what_they_name,
                deletions_apply_before_insertions, records_replace_records_with_the_same_key,
                a_new_outbound_session_forgets_the_old_shares, a_failing_change_set_leaves_nothing,
                every_commit_bumps_the_generation, the_lease_fences_writers, secrets_unlock_and_change,
                creating_twice_and_opening_nothing_are_errors, altered_and_swapped_values_are_refused,
                broken_metadata_is_reported, the_store_holds_no_identifier_in_the_clear,
                debug_output_holds_no_secret);
        }
    };
    (@tests $harness:ty; $($name:ident),* $(,)?) => {
        $(#[test] fn $name() { super::$name::<$harness>() })*
    };
}

suite!(memory, MemoryHarness);
#[cfg(feature = "sqlite")]
suite!(sqlite, SqliteHarness);
