//! `ferrolm demo`: two devices in one process, an Olm session, pickles on disk; a Megolm room;
//! then OlmMachines on SQLite stores through the test homeserver ([`crate::demo_machines`]).

use std::path::{Path, PathBuf};

use ferrolm::megolm::{self, GroupSession, InboundGroupSession, SessionKey};
use ferrolm::olm::{Account, OlmMessage, Session, SessionConfig};
use ferrolm::pickle::PickleKey;
use ferrolm::zeroize::Zeroizing;

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let (dir, rest) = crate::take_option(args, "--dir")?;
    if let Some(extra) = rest.first() {
        return Err(format!("unexpected argument `{extra}`; usage: ferrolm demo [--dir DIR]"));
    }
    let dir =
        dir.map_or_else(|| std::env::temp_dir().join(format!("ferrolm-demo-{}", std::process::id())), PathBuf::from);
    demo(&dir, &mut std::io::stdout())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) fn step(out: &mut impl std::io::Write, line: impl AsRef<str>) -> Result<(), String> {
    writeln!(out, "{}", line.as_ref()).map_err(|e| e.to_string())
}

fn write(path: &Path, contents: &str) -> Result<(), String> {
    // Write then rename: a crash leaves the old pickle or the new one, never half of one.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot rename to {}: {e}", path.display()))
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn describe(message: &OlmMessage) -> String {
    let (kind, body) = message.to_parts();
    let shown = body.get(..32).unwrap_or(&body);
    format!("type {} ({kind:?}), {} bytes: {shown}…", kind as u8, message.as_bytes().len())
}

pub(crate) fn demo(dir: &Path, out: &mut impl std::io::Write) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    step(out, "== 1. Two devices create their Olm accounts")?;
    let alice = Account::new();
    let mut bob = Account::new();
    step(out, format!("   Alice  curve25519 {}  ed25519 {}", alice.curve25519_key(), alice.ed25519_key()))?;
    step(out, format!("   Bob    curve25519 {}  ed25519 {}", bob.curve25519_key(), bob.ed25519_key()))?;

    step(out, "== 2. Bob publishes one-time keys and signs his device keys")?;
    bob.generate_one_time_keys(5);
    let keys = bob.one_time_keys();
    for (id, key) in &keys {
        step(out, format!("   signed_curve25519:{id}  {key}"))?;
    }
    bob.mark_keys_as_published();
    let device_keys = format!("{{\"curve25519\":\"{}\",\"ed25519\":\"{}\"}}", bob.curve25519_key(), bob.ed25519_key());
    let signature = bob.sign(device_keys.as_bytes());
    bob.ed25519_key().verify(device_keys.as_bytes(), &signature).map_err(|e| e.to_string())?;
    step(out, format!("   device keys signature verifies: {}", signature.to_base64()))?;

    step(out, "== 3. Alice claims a one-time key and opens a session")?;
    let (id, otk) = keys.into_iter().next().ok_or("no one-time key")?;
    let mut alice_session = alice
        .create_outbound_session(SessionConfig::version_1(), bob.curve25519_key(), otk)
        .map_err(|e| e.to_string())?;
    step(out, format!("   claimed key {id}; session id {}", alice_session.session_id()))?;

    step(out, "== 4. Alice -> Bob: the first message is a pre-key message")?;
    let first = alice_session.encrypt(b"Hello Bob, this is Alice.");
    step(out, format!("   {}", describe(&first)))?;
    let OlmMessage::PreKey(pre_key) = &first else { return Err("expected a pre-key message".into()) };
    let created = bob
        .create_inbound_session(SessionConfig::version_1(), alice.curve25519_key(), pre_key)
        .map_err(|e| e.to_string())?;
    let mut bob_session = created.session;
    step(out, format!("   Bob creates the session and reads: \"{}\"", text(&created.plaintext)))?;
    step(out, format!("   Bob's one-time keys left: {} (the used one is gone)", bob.stored_one_time_key_count()))?;

    step(out, "== 5. Messages both ways; each reply steps the ratchet")?;
    for (from_alice, line) in [
        (false, "Hi Alice! Bob here."),
        (true, "Now we are ratcheting."),
        (true, "Two in a row, same chain."),
        (false, "And back to you."),
    ] {
        let (sender, receiver, who) = if from_alice {
            (&mut alice_session, &mut bob_session, "Alice -> Bob")
        } else {
            (&mut bob_session, &mut alice_session, "Bob -> Alice")
        };
        let message = sender.encrypt(line.as_bytes());
        let plaintext = receiver.decrypt(&message).map_err(|e| e.to_string())?;
        step(out, format!("   {who}: {}  =>  \"{}\"", describe(&message), text(&plaintext)))?;
    }

    step(out, format!("== 6. Both sides pickle their state to {}", dir.display()))?;
    let key = PickleKey::new();
    let pickles = [
        ("alice-account", alice.pickle(&key)),
        ("bob-account", bob.pickle(&key)),
        ("alice-session", alice_session.pickle(&key)),
        ("bob-session", bob_session.pickle(&key)),
    ];
    for (name, pickle) in &pickles {
        write(&dir.join(name), pickle)?;
        step(out, format!("   {name}: {} characters, encrypted under a random 32-byte pickle key", pickle.len()))?;
    }
    drop((alice_session, bob_session));

    step(out, "== 7. Restore from disk and carry on")?;
    let mut alice_session =
        Session::from_pickle(&read(&dir.join("alice-session"))?, &key).map_err(|e| e.to_string())?;
    let mut bob_session = Session::from_pickle(&read(&dir.join("bob-session"))?, &key).map_err(|e| e.to_string())?;
    let alice_restored = Account::from_pickle(&read(&dir.join("alice-account"))?, &key).map_err(|e| e.to_string())?;
    step(out, format!("   Alice's identity survives: {}", alice_restored.curve25519_key() == alice.curve25519_key()))?;
    let message = alice_session.encrypt(b"Still here after a restart.");
    let plaintext = bob_session.decrypt(&message).map_err(|e| e.to_string())?;
    step(out, format!("   Alice -> Bob: \"{}\"", text(&plaintext)))?;
    let message = bob_session.encrypt(b"Me too.");
    let plaintext = alice_session.decrypt(&message).map_err(|e| e.to_string())?;
    step(out, format!("   Bob -> Alice: \"{}\"", text(&plaintext)))?;

    step(out, "== 8. A tampered message is refused, and the session is unharmed")?;
    let message = alice_session.encrypt(b"integrity matters");
    let mut bytes = message.message().as_bytes().to_vec();
    if let Some(last) = bytes.last_mut() {
        *last ^= 1;
    }
    let tampered = ferrolm::olm::Message::from_bytes(&bytes).map_err(|e| e.to_string())?;
    match bob_session.decrypt(&OlmMessage::Normal(tampered)) {
        Err(error) => step(out, format!("   tampered copy: {error}"))?,
        Ok(_) => return Err("a tampered message decrypted".into()),
    }
    let plaintext = bob_session.decrypt(&message).map_err(|e| e.to_string())?;
    step(out, format!("   original: \"{}\"", text(&plaintext)))?;

    room(out, &alice, &mut alice_session, &mut bob_session)?;
    crate::demo_machines::scene(dir, out)?;
    step(out, "== Done.")
}

/// Shares a Megolm session key over an Olm session and builds the receiver's inbound session.
fn share_room_key(
    sender: &mut Session,
    receiver: &mut Session,
    room_key: &SessionKey,
) -> Result<InboundGroupSession, String> {
    let olm_message = sender.encrypt(room_key.to_base64().as_bytes());
    let received = Zeroizing::new(receiver.decrypt(&olm_message).map_err(|e| e.to_string())?);
    let text = core::str::from_utf8(&received).map_err(|e| e.to_string())?;
    let key = SessionKey::from_base64(text).map_err(|e| e.to_string())?;
    Ok(InboundGroupSession::new(&key, megolm::SessionConfig::version_1()))
}

fn room(
    out: &mut impl std::io::Write,
    alice: &Account,
    alice_to_bob: &mut Session,
    bob_from_alice: &mut Session,
) -> Result<(), String> {
    step(out, "== 9. A room: Alice starts a Megolm session and shares its key with Bob over Olm")?;
    let mut room = GroupSession::new(megolm::SessionConfig::version_1());
    let mut bob_room = share_room_key(alice_to_bob, bob_from_alice, &room.session_key())?;
    step(
        out,
        format!("   session id {}; Bob can decrypt from index {}", room.session_id(), bob_room.first_known_index()),
    )?;
    let mut history = Vec::new();
    for line in ["Welcome to the room.", "Megolm encrypts once for everyone.", "Each message is signed."] {
        let message = room.encrypt(line.as_bytes());
        let decrypted = bob_room.decrypt(&message).map_err(|e| e.to_string())?;
        step(
            out,
            format!("   [{}] Alice: \"{}\"  (Bob decrypts it)", decrypted.message_index, text(&decrypted.plaintext)),
        )?;
        history.push(message);
    }

    step(out, "== 10. Carol joins late: she gets the key at the current index")?;
    let mut carol = Account::new();
    carol.generate_one_time_keys(1);
    let otk = *carol.one_time_keys().values().next().ok_or("no one-time key")?;
    carol.mark_keys_as_published();
    let mut alice_to_carol = alice
        .create_outbound_session(SessionConfig::version_1(), carol.curve25519_key(), otk)
        .map_err(|e| e.to_string())?;
    let key_message = alice_to_carol.encrypt(room.session_key().to_base64().as_bytes());
    let OlmMessage::PreKey(pre_key) = &key_message else { return Err("expected a pre-key message".into()) };
    let created = carol
        .create_inbound_session(SessionConfig::version_1(), alice.curve25519_key(), pre_key)
        .map_err(|e| e.to_string())?;
    let plaintext = Zeroizing::new(created.plaintext);
    let key = SessionKey::from_base64(core::str::from_utf8(&plaintext).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let mut carol_room = InboundGroupSession::new(&key, megolm::SessionConfig::version_1());
    step(out, format!("   Carol can decrypt from index {}", carol_room.first_known_index()))?;
    let message = room.encrypt(b"Hello Carol!");
    for (who, session) in [("Bob", &mut bob_room), ("Carol", &mut carol_room)] {
        let decrypted = session.decrypt(&message).map_err(|e| e.to_string())?;
        step(out, format!("   [{}] {who} reads: \"{}\"", decrypted.message_index, text(&decrypted.plaintext)))?;
    }
    if let Some(first) = history.first() {
        match carol_room.decrypt(first) {
            Err(error) => step(out, format!("   Carol and message 0: {error}"))?,
            Ok(_) => return Err("a late joiner decrypted history it was not given".into()),
        }
    }
    step(
        out,
        format!(
            "   Bob's session compared with Carol's: {:?} (it knows earlier messages)",
            bob_room.compare(&carol_room)
        ),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_demo_runs_and_leaves_its_pickles() {
        let dir = std::env::temp_dir().join(format!("ferrolm-demo-test-{}", std::process::id()));
        let mut out = Vec::new();
        super::demo(&dir, &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("Hello Bob, this is Alice."), "{out}");
        assert!(out.contains("Still here after a restart."));
        assert!(out.contains("MAC does not match"));
        assert!(out.contains("[3] Carol reads: \"Hello Carol!\""), "{out}");
        assert!(out.contains("Carol and message 0: the message has index 0, before"), "{out}");
        assert!(out.contains("compared with Carol's: Better"));
        assert!(dir.join("bob-session").exists());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
