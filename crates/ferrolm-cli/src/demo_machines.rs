//! `ferrolm demo`, scenes 11 to 14: three `OlmMachine`s, each on its own SQLite store in the
//! demo folder, meet through the in-process test homeserver, share room keys, talk both ways,
//! and one of them restarts from its store and carries on.

use std::path::{Path, PathBuf};

use ferrolm_machine::ruma::{OwnedRoomId, OwnedUserId, RoomId};
use ferrolm_machine::{EncryptionSettings, Env, OlmMachine, RoomKeyOutcome, TrustRequirement};
use ferrolm_store::{KdfParams, SqliteBackend, SqliteStore, StoreSecret};
use ferrolm_test_homeserver::Homeserver;
use ferrolm_test_homeserver::driver;
use rand_core::RngCore;
use serde_json::json;

use crate::demo::step;

type Machine = OlmMachine<SqliteBackend>;

/// One demo device: its name in the narration, its machine, its store file.
struct Device {
    name: &'static str,
    machine: Machine,
    path: PathBuf,
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The store file of `name` in `dir`, removed first if an earlier run left one (and its WAL).
fn fresh_store_path(dir: &Path, name: &str) -> Result<PathBuf, String> {
    let path = dir.join(format!("{name}.sqlite3"));
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        if file.exists() {
            std::fs::remove_file(&file).map_err(|e| format!("cannot remove {}: {e}", file.display()))?;
        }
    }
    Ok(path)
}

fn open_new(
    hs: &mut Homeserver,
    dir: &Path,
    (name, user, device): (&'static str, &str, &str),
    secret: &StoreSecret,
) -> Result<Device, String> {
    let path = fresh_store_path(dir, &name.to_lowercase())?;
    let user = OwnedUserId::try_from(user).map_err(err)?;
    let device = ferrolm_machine::ruma::OwnedDeviceId::from(device);
    hs.login(&user, &device);
    // The Argon2id parameters only matter for passphrases; this store is unlocked by a raw key.
    let store = SqliteStore::create_file(&path, secret, KdfParams::default()).map_err(err)?;
    let machine = OlmMachine::open(user, device, store, Env::system()).map_err(err)?;
    Ok(Device { name, machine, path })
}

/// Sends the device's requests, syncs, sends what the sync asked for.
fn settle(hs: &mut Homeserver, device: &mut Device) -> Result<(), String> {
    driver::run_requests(hs, &mut device.machine).map_err(err)?;
    driver::sync(hs, &mut device.machine).map_err(err)?;
    driver::run_requests(hs, &mut device.machine).map_err(err)?;
    Ok(())
}

/// Opens the missing Olm sessions with `members`' devices and shares the device's room key
/// with them; returns (sessions created, devices sent the key).
fn share(
    hs: &mut Homeserver,
    device: &mut Device,
    room: &RoomId,
    members: &[OwnedUserId],
) -> Result<(usize, usize, String), String> {
    let mut created = 0;
    if let Some(claim) = device.machine.get_missing_sessions(members).map_err(err)? {
        created = driver::send(hs, &mut device.machine, &claim).map_err(err)?.sessions_created;
    }
    let shared = device.machine.share_room_key(room, members, EncryptionSettings::default()).map_err(err)?;
    driver::run_requests(hs, &mut device.machine).map_err(err)?;
    Ok((created, shared.shared_with.len(), shared.session_id))
}

/// Encrypts `text` as an `m.room.message` and posts it to the room.
fn say(hs: &mut Homeserver, device: &mut Device, room: &RoomId, text: &str) -> Result<(), String> {
    let content = json!({"msgtype": "m.text", "body": text});
    let encrypted = device.machine.encrypt_room_event(room, "m.room.message", &content).map_err(err)?;
    hs.send_room_event(room, device.machine.user_id(), "m.room.encrypted", encrypted).map_err(err)?;
    Ok(())
}

/// Syncs: room keys received are told, then each new room message from someone else is
/// decrypted and told. Returns the number of messages read.
fn read(
    out: &mut impl std::io::Write,
    hs: &mut Homeserver,
    device: &mut Device,
    room: &OwnedRoomId,
) -> Result<usize, String> {
    let (outcome, timelines) = driver::sync_with_timelines(hs, &mut device.machine).map_err(err)?;
    for key in &outcome.room_keys {
        match key {
            RoomKeyOutcome::Accepted(info) => step(
                out,
                format!(
                    "   {} stores the room key {}… from {} (Olm-authenticated), readable from index {}",
                    device.name,
                    info.session_id.get(..10).unwrap_or(&info.session_id),
                    info.sender,
                    info.first_known_index
                ),
            )?,
            RoomKeyOutcome::Refused { reason, .. } => {
                return Err(format!("{} refused a room key: {reason}", device.name));
            }
        }
    }
    let mut count = 0;
    for event in timelines.get(room).map(Vec::as_slice).unwrap_or_default() {
        let sender = event.get_field::<String>("sender").ok().flatten().unwrap_or_default();
        if sender == device.machine.user_id().as_str() {
            continue;
        }
        match device.machine.decrypt_room_event(event, room, TrustRequirement::Untrusted).map_err(err)? {
            Ok(decrypted) => {
                let info = &decrypted.encryption;
                let body = decrypted.content.get("body").and_then(|b| b.as_str()).unwrap_or_default();
                let from = info.sender_device.as_ref().map_or("?", |d| d.as_str());
                step(
                    out,
                    format!(
                        "   {} reads [{}] {} ({from}, {:?}): \"{body}\"",
                        device.name, info.message_index, info.sender, info.verification
                    ),
                )?;
                count += 1;
            }
            Err(utd) => return Err(format!("{} could not decrypt a message: {utd}", device.name)),
        }
    }
    Ok(count)
}

fn store_summary(device: &Device) -> Result<String, String> {
    let store = device.machine.store();
    Ok(format!(
        "{} Olm sessions, {} room keys, {} known devices",
        store.all_olm_sessions().map_err(err)?.len(),
        store.all_inbound_group_sessions().map_err(err)?.len(),
        store.all_devices().map_err(err)?.len()
    ))
}

pub(crate) fn scene(dir: &Path, out: &mut impl std::io::Write) -> Result<(), String> {
    step(out, "== 11. Three OlmMachines, each on a SQLite store, meet through an in-process homeserver")?;
    // A real app keeps this key in the platform keystore (or derives it from a passphrase).
    let mut key = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut key);
    let secret = StoreSecret::key(key);
    let mut hs = Homeserver::new();
    let mut devices = Vec::new();
    for who in [
        ("Alice", "@alice:demo.example", "ALICEPHONE"),
        ("Bob", "@bob:demo.example", "BOBLAPTOP"),
        ("Carol", "@carol:demo.example", "CAROLTABLET"),
    ] {
        let device = open_new(&mut hs, dir, who, &secret)?;
        step(
            out,
            format!(
                "   {:<5} {} {} on {}  curve25519 {}",
                device.name,
                device.machine.user_id(),
                device.machine.device_id(),
                device.path.display(),
                device.machine.identity_keys().curve25519
            ),
        )?;
        devices.push(device);
    }
    let [mut alice, mut bob, mut carol]: [Device; 3] = devices.try_into().map_err(|_| "three devices".to_owned())?;
    let room = hs.create_room(alice.machine.user_id()).map_err(err)?;
    hs.join(&room, bob.machine.user_id());
    hs.join(&room, carol.machine.user_id());
    let members = hs.members(&room);
    for device in [&mut alice, &mut bob, &mut carol] {
        settle(&mut hs, device)?;
    }
    for device in [&mut alice, &mut bob, &mut carol] {
        device.machine.update_tracked_users(&members).map_err(err)?;
        settle(&mut hs, device)?;
    }
    step(out, format!("   room {room}: each uploaded its signed device keys and one-time keys"))?;
    for device in [&alice, &bob, &carol] {
        let mut known = Vec::new();
        for user in &members {
            if user == device.machine.user_id() {
                continue;
            }
            for other in device.machine.devices(user).map_err(err)? {
                known.push(format!("{} {}", other.user_id, other.device_id));
            }
        }
        step(out, format!("   {} queried and validated the others' devices: {}", device.name, known.join(", ")))?;
    }

    step(out, "== 12. Alice claims one-time keys, opens Olm sessions and shares a Megolm room key")?;
    let (created, shared, session_id) = share(&mut hs, &mut alice, &room, &members)?;
    step(
        out,
        format!(
            "   {}; room key {}… sent to {}",
            plural(created, "new Olm session"),
            session_id.get(..10).unwrap_or(""),
            plural(shared, "device")
        ),
    )?;
    say(&mut hs, &mut alice, &room, "Hello Bob and Carol, this room is end-to-end encrypted.")?;
    let mut read_count = 0;
    read_count += read(out, &mut hs, &mut bob, &room)?;
    read_count += read(out, &mut hs, &mut carol, &room)?;

    step(out, "== 13. Bob answers with his own room key; everyone reads everyone")?;
    let (created, shared, _) = share(&mut hs, &mut bob, &room, &members)?;
    step(
        out,
        format!(
            "   Bob opens {} (Alice's to him exists) and sends his room key to {}",
            plural(created, "new Olm session"),
            plural(shared, "device")
        ),
    )?;
    say(&mut hs, &mut bob, &room, "Hi Alice! Bob here, on my laptop.")?;
    read_count += read(out, &mut hs, &mut alice, &room)?;
    read_count += read(out, &mut hs, &mut carol, &room)?;
    let (_, shared, _) = share(&mut hs, &mut carol, &room, &members)?;
    step(out, format!("   Carol sends her room key to {} over the sessions she has", plural(shared, "device")))?;
    say(&mut hs, &mut carol, &room, "Carol here. Three devices, three Megolm sessions.")?;
    read_count += read(out, &mut hs, &mut alice, &room)?;
    read_count += read(out, &mut hs, &mut bob, &room)?;

    step(out, format!("== 14. Bob's process stops; his machine reopens from {} and carries on", bob.path.display()))?;
    let before = bob.machine.identity_keys().curve25519;
    step(out, format!("   before: {}", store_summary(&bob)?))?;
    let Device { name, machine, path } = bob;
    let (user, device) = (machine.user_id().to_owned(), machine.device_id().to_owned());
    drop(machine);
    let store = SqliteStore::open_file(&path, &secret).map_err(err)?;
    let mut bob = Device { name, machine: OlmMachine::open(user, device, store, Env::system()).map_err(err)?, path };
    step(
        out,
        format!(
            "   reopened: same identity {}; {}",
            bob.machine.identity_keys().curve25519 == before,
            store_summary(&bob)?
        ),
    )?;
    say(&mut hs, &mut alice, &room, "Bob, are you back?")?;
    read_count += read(out, &mut hs, &mut bob, &room)?;
    say(&mut hs, &mut bob, &room, "Back, with every key and session from my store.")?;
    read_count += read(out, &mut hs, &mut alice, &room)?;
    read_count += read(out, &mut hs, &mut carol, &room)?;
    step(out, format!("   {read_count} room messages decrypted in all; the stores stay in {}", dir.display()))?;
    Ok(())
}
