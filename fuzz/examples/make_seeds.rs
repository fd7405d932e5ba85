//! Writes the seed corpora in `fuzz/seeds/<target>/`: valid inputs for every target, so the
//! fuzzer starts from real messages, keys and pickles instead of rediscovering the formats.
//! Run by `fuzz/run.sh` when `seeds/` is missing or `REFRESH_SEEDS=1` (`make_seeds machine`
//! writes only the machine targets' seeds) (it needs `--cfg fuzzing` for the core's pickle hooks).

use std::path::PathBuf;

use ferrolm::megolm::{GroupSession, InboundGroupSession, SessionConfig as MegolmConfig};
use ferrolm::olm::OlmMessage;
use ferrolm::secret_storage::SecretStorageKey;
use ferrolm_fuzz::{megolm_fixture, olm_fixture, sas_fixture};

fn write(target: &str, name: &str, bytes: impl AsRef<[u8]>) {
    // Read at run time (cargo sets it), so a binary from a shared target directory writes
    // into this checkout, not the one that compiled it.
    let manifest_dir: PathBuf =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), Into::into);
    let dir = manifest_dir.join("seeds").join(target);
    std::fs::create_dir_all(&dir).expect("seed folder");
    std::fs::write(dir.join(name), bytes).expect("seed file");
}

/// Fields in `ferrolm_fuzz::split`'s layout.
fn fields(parts: &[&[u8]]) -> Vec<u8> {
    let mut out: Vec<u8> = parts[..parts.len() - 1].iter().map(|p| p.len().min(255) as u8).collect();
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

/// The machine targets' seeds: genuine events, responses and plaintexts from the fixture.
fn machine_seeds() {
    for (target, name, bytes) in ferrolm_fuzz::machine::seeds() {
        write(target, &name, bytes);
    }
}

fn main() {
    machine_seeds();
    if std::env::args().nth(1).as_deref() == Some("machine") {
        println!("machine seed corpora written to fuzz/seeds/");
        return;
    }
    let olm = olm_fixture();
    let mut alice = olm.alice_session.clone();
    let mut bob = olm.bob_session.clone();
    for i in 0..3 {
        let message = alice.encrypt(format!("seed {i}").as_bytes());
        write("olm_message", &format!("normal-{i}"), message.message().as_bytes());
        write("olm_decrypt", &format!("normal-{i}"), message.message().as_bytes());
        let reply = bob.encrypt(b"reply");
        write("olm_decrypt", &format!("reply-{i}"), reply.as_bytes());
        let _ = alice.decrypt(&reply);
    }
    write("olm_pre_key_message", "pre-key", olm.pre_key.as_bytes());
    write("olm_decrypt", "pre-key", olm.pre_key.as_bytes());
    let (_, body) = OlmMessage::PreKey(olm.pre_key.clone()).to_parts();
    write("base64_keys", "pre-key-body", body);
    write("base64_keys", "curve25519", olm.alice.curve25519_key().to_base64());
    write("base64_keys", "ed25519", olm.alice.ed25519_key().to_base64());
    write("base64_keys", "signature", olm.alice.sign(b"x").to_base64());

    let megolm = megolm_fixture();
    for (i, message) in megolm.messages.iter().enumerate() {
        write("megolm_message", &format!("message-{i}"), message.as_bytes());
        write("megolm_decrypt", &format!("message-{i}"), message.as_bytes());
    }
    write("megolm_session_key", "signed", megolm.outbound.session_key().to_bytes().as_slice());
    write("megolm_session_key", "exported", megolm.inbound.export_at(2).expect("known").to_bytes().as_slice());
    let mut v2 = GroupSession::new(MegolmConfig::version_2());
    let v2_inbound = InboundGroupSession::new(&v2.session_key(), MegolmConfig::version_2());
    write("megolm_message", "v2", v2.encrypt(b"v2").as_bytes());
    let _ = v2_inbound;

    let (ferrolm, libolm) = ferrolm::fuzzing::seed_pickles();
    for (i, plaintext) in ferrolm.iter().enumerate() {
        write("pickle_ferrolm", &format!("pickle-{i}"), plaintext);
    }
    for (i, plaintext) in libolm.iter().enumerate() {
        write("pickle_libolm", &format!("pickle-{i}"), plaintext);
    }

    let (sas, _) = sas_fixture();
    let mac = sas.calculate_mac("ed25519:DEVICE", "MATRIX_KEY_VERIFICATION_MAC");
    write("sas_mac", "v2", fields(&[b"ed25519:DEVICE", b"MATRIX_KEY_VERIFICATION_MAC", mac.to_base64().as_bytes()]));
    let legacy = sas.calculate_mac_invalid_base64("ed25519:DEVICE", "MATRIX_KEY_VERIFICATION_MAC");
    write("sas_mac", "legacy", fields(&[b"ed25519:DEVICE", b"MATRIX_KEY_VERIFICATION_MAC", legacy.as_bytes()]));

    let backup = ferrolm::pk::PkDecryption::from_bytes(&[7; 32]);
    let message = ferrolm::pk::PkEncryption::from_key(backup.public_key()).expect("valid").encrypt(b"{\"k\":1}");
    write("pk_decrypt", "raw", fields(&[&message.ciphertext, &message.mac, message.ephemeral_key.as_bytes()]));
    let (c, m, e) = message.to_base64();
    write("pk_decrypt", "base64", fields(&[c.as_bytes(), m.as_bytes(), e.as_bytes()]));

    let file = ferrolm::key_export::encrypt(b"[]", "fuzzing passphrase", 16).expect("valid rounds");
    write("key_export_decrypt", "file", file);

    let key = SecretStorageKey::from_bytes([9; 32]);
    let secret = key.encrypt("m.cross_signing.master", b"seed");
    let (iv, ct, mac) = secret.to_base64();
    write(
        "secret_storage_decrypt",
        "secret",
        fields(&[iv.as_bytes(), ct.as_bytes(), mac.as_bytes(), b"m.cross_signing.master"]),
    );
    write("recovery_key", "valid", key.to_recovery_key().as_bytes());

    // Verification events for the flows ferrolm-machine's fuzz entry point prepares (their
    // transaction ids name their states).
    let sas_start = |txn: &str| {
        format!(
            r#"{{"type":"m.key.verification.start","sender":"@peer:example.org","content":{{"transaction_id":"{txn}","from_device":"PEER","method":"m.sas.v1","key_agreement_protocols":["curve25519-hkdf-sha256"],"hashes":["sha256"],"message_authentication_codes":["hkdf-hmac-sha256.v2"],"short_authentication_string":["decimal","emoji"]}}}}"#
        )
    };
    let event = |kind: &str, txn: &str, extra: &str| {
        format!(
            r#"{{"type":"m.key.verification.{kind}","sender":"@peer:example.org","content":{{"transaction_id":"{txn}"{extra}}}}}"#
        )
    };
    let states =
        ["received", "ready", "sas_started", "sas_start_received", "sas_accepted", "sas_shown", "sas_confirmed", "cancelled"];
    for txn in states {
        write("verification_event", &format!("start-{txn}"), sas_start(txn));
        write("verification_event", &format!("ready-{txn}"), event("ready", txn, r#","from_device":"PEER","methods":["m.sas.v1"]"#));
        write("verification_event", &format!("key-{txn}"), event("key", txn, r#","key":"CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk""#));
        write("verification_event", &format!("mac-{txn}"), event("mac", txn, r#","mac":{"ed25519:PEER":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},"keys":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA""#));
        write("verification_event", &format!("accept-{txn}"), event("accept", txn, r#","method":"m.sas.v1","key_agreement_protocol":"curve25519-hkdf-sha256","hash":"sha256","message_authentication_code":"hkdf-hmac-sha256.v2","short_authentication_string":["decimal"],"commitment":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA""#));
        write("verification_event", &format!("done-{txn}"), event("done", txn, ""));
        write("verification_event", &format!("cancel-{txn}"), event("cancel", txn, r#","code":"m.user","reason":"x""#));
    }
    write(
        "verification_event",
        "request-new",
        event("request", "new", r#","from_device":"PEER","methods":["m.sas.v1"],"timestamp":1700000000000"#),
    );
    println!("seed corpora written to fuzz/seeds/");
}
