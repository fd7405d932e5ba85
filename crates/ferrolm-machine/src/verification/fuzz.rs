//! A fuzzing entry point: one arbitrary to-device event against flows in many states.
//!
//! Compiled for tests and under `cfg(fuzzing)` (which cargo-fuzz sets) only. The flows are
//! set up with the peer `@peer:example.org` / `PEER`, one per state, with transaction ids
//! named after the state (`requested`, `received`, `ready`, `sas_started`,
//! `sas_start_received`, `sas_accepted`, `sas_shown`, `sas_confirmed`, `cancelled`), so a
//! fuzzer that learns those strings reaches every state.

use std::collections::BTreeMap;

use ferrolm::types::{Curve25519SecretKey, Ed25519PublicKey, Ed25519SecretKey};
use rand_core::{CryptoRng, RngCore};
use ruma::{DeviceId, OwnedDeviceId, OwnedUserId, UserId};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{
    Context, HASH, KEY_AGREEMENT_PROTOCOL, KeySource, MAC_V2, Output, SAS_METHOD, Transport, Verifications, parse_event,
};

/// A deterministic generator for fuzzing only: SHA-256 in counter mode over a fixed seed. Not
/// for anything else (it is compiled only for tests and fuzzing).
struct FuzzRng(u64);

impl RngCore for FuzzRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(32) {
            self.0 += 1;
            let block = Sha256::digest(self.0.to_le_bytes());
            for (d, s) in chunk.iter_mut().zip(block.iter()) {
                *d = *s;
            }
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for FuzzRng {}

struct FuzzKeys {
    devices: BTreeMap<(String, String), Ed25519PublicKey>,
}

impl KeySource for FuzzKeys {
    fn device_key(&self, user_id: &UserId, device_id: &DeviceId) -> Option<Ed25519PublicKey> {
        self.devices.get(&(user_id.to_string(), device_id.to_string())).copied()
    }
    fn master_key(&self, _user_id: &UserId) -> Option<Ed25519PublicKey> {
        None
    }
    fn own_master_trusted(&self) -> bool {
        false
    }
}

/// The peer of the prepared flows.
pub const FUZZ_PEER: &str = "@peer:example.org";

/// What one fuzzed event did (for the fuzz target's checks).
#[derive(Debug)]
pub struct FuzzOutcome {
    /// The output of the event.
    pub output: Output,
    /// Whether the event was a cancel (which must never be answered).
    pub was_cancel: bool,
}

/// Feeds `data` (JSON `{"type", "sender", "content"}`; anything else is fed as well and must
/// be refused cleanly) to verifications holding one flow in each state, and checks the
/// invariants: no panic, a cancel is never answered, no single event verifies anything, at
/// most one message answers an event. Panics (a finding) when one breaks.
pub fn fuzz_verification_event(data: &[u8]) -> FuzzOutcome {
    let (Ok(me), Ok(peer)) = (OwnedUserId::try_from("@me:example.org"), OwnedUserId::try_from(FUZZ_PEER)) else {
        return FuzzOutcome { output: Output::default(), was_cancel: false };
    };
    let my_device = OwnedDeviceId::from("ME");
    let mut keys = FuzzKeys { devices: BTreeMap::new() };
    keys.devices.insert((FUZZ_PEER.into(), "PEER".into()), Ed25519SecretKey::from_seed(&[7; 32]).public_key());
    let mut rng = FuzzRng(0);
    let mut v = Verifications::new();
    let now = 1_700_000_000_000u64;
    let mut ctx = Context {
        user_id: &me,
        device_id: &my_device,
        ed25519: Ed25519SecretKey::from_seed(&[8; 32]).public_key(),
        keys: &keys,
        rng: &mut rng,
        now_ms: now,
    };
    prepare(&mut v, &mut ctx, &peer, now);

    let (event_type, sender, content) = match serde_json::from_slice::<Value>(data) {
        Ok(value) => (
            value.get("type").and_then(Value::as_str).unwrap_or_default().to_owned(),
            value.get("sender").and_then(Value::as_str).unwrap_or(FUZZ_PEER).to_owned(),
            value.get("content").cloned().unwrap_or(Value::Null),
        ),
        Err(_) => (String::from_utf8_lossy(data).into_owned(), FUZZ_PEER.to_owned(), Value::Null),
    };
    let output = match parse_event(&event_type, &sender, &content, Transport::ToDevice) {
        Ok(event) => v.receive(&mut ctx, event),
        Err(error) => v.receive_malformed(&mut ctx, &error),
    };
    let was_cancel = event_type == "m.key.verification.cancel";
    assert!(!was_cancel || output.messages.is_empty(), "a cancel was answered: {output:?}");
    assert!(output.verified.is_empty(), "one event verified something: {output:?}");
    assert!(output.messages.len() <= 1, "more than one message for one event: {output:?}");
    FuzzOutcome { output, was_cancel }
}

fn feed(v: &mut Verifications, ctx: &mut Context<'_>, event_type: &str, content: Value) {
    if let Ok(event) = parse_event(event_type, FUZZ_PEER, &content, Transport::ToDevice) {
        v.receive(ctx, event);
    }
}

fn sas_start(txn: &str) -> Value {
    json!({
        "transaction_id": txn, "from_device": "PEER", "method": SAS_METHOD,
        "key_agreement_protocols": [KEY_AGREEMENT_PROTOCOL], "hashes": [HASH],
        "message_authentication_codes": [MAC_V2], "short_authentication_string": ["decimal", "emoji"],
    })
}

/// One flow per state, driven by scripted peer events.
fn prepare(v: &mut Verifications, ctx: &mut Context<'_>, peer: &UserId, now: u64) {
    let request = |txn: &str| json!({"transaction_id": txn, "from_device": "PEER", "methods": super::supported_methods(), "timestamp": now});
    let peer_key = Curve25519SecretKey::from_bytes(&[9; 32]).public_key().to_base64();
    for txn in [
        "received",
        "ready",
        "sas_started",
        "sas_start_received",
        "sas_accepted",
        "sas_shown",
        "sas_confirmed",
        "cancelled",
    ] {
        feed(v, ctx, "m.key.verification.request", request(txn));
        if txn == "received" {
            continue;
        }
        let _ = v.accept(ctx, peer, txn);
        match txn {
            "sas_started" => {
                let _ = v.start_sas(ctx, peer, txn);
            }
            "sas_start_received" | "sas_accepted" | "sas_shown" | "sas_confirmed" => {
                feed(v, ctx, "m.key.verification.start", sas_start(txn));
                if txn != "sas_start_received" {
                    let _ = v.accept(ctx, peer, txn);
                }
                if txn == "sas_shown" || txn == "sas_confirmed" {
                    feed(v, ctx, "m.key.verification.key", json!({"transaction_id": txn, "key": peer_key}));
                }
                if txn == "sas_confirmed" {
                    let _ = v.confirm(ctx, peer, txn);
                }
            }
            "cancelled" => {
                let _ = v.cancel(ctx, peer, txn);
            }
            _ => {}
        }
    }
    // And one we requested.
    let _ = v.request_to_device(ctx, peer, vec![OwnedDeviceId::from("PEER")]);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::verification::VerificationState;

    #[test]
    fn the_prepared_flows_are_in_their_states() {
        let out = fuzz_verification_event(b"{}");
        assert!(out.output.messages.is_empty());
        // Rebuild to look at the states.
        let me = OwnedUserId::try_from("@me:example.org").unwrap();
        let dev = OwnedDeviceId::from("ME");
        let peer = OwnedUserId::try_from(FUZZ_PEER).unwrap();
        let mut keys = FuzzKeys { devices: BTreeMap::new() };
        keys.devices.insert((FUZZ_PEER.into(), "PEER".into()), Ed25519SecretKey::from_seed(&[7; 32]).public_key());
        let mut rng = FuzzRng(0);
        let mut v = Verifications::new();
        let mut ctx = Context {
            user_id: &me,
            device_id: &dev,
            ed25519: Ed25519SecretKey::from_seed(&[8; 32]).public_key(),
            keys: &keys,
            rng: &mut rng,
            now_ms: 1_700_000_000_000,
        };
        prepare(&mut v, &mut ctx, &peer, 1_700_000_000_000);
        let state = |t: &str| v.get(&peer, t).unwrap().state;
        assert_eq!(state("received"), VerificationState::RequestReceived);
        assert_eq!(state("ready"), VerificationState::Ready { showing_qr: false });
        assert_eq!(state("sas_started"), VerificationState::SasStarted);
        assert_eq!(state("sas_start_received"), VerificationState::SasStartReceived);
        assert_eq!(state("sas_accepted"), VerificationState::SasAccepted);
        assert!(matches!(state("sas_shown"), VerificationState::SasKeysExchanged { confirmed: false, .. }));
        assert!(matches!(state("sas_confirmed"), VerificationState::SasKeysExchanged { confirmed: true, .. }));
        assert!(matches!(state("cancelled"), VerificationState::Cancelled(_)));
    }

    /// A small deterministic corpus: every event type against every prepared flow, valid and
    /// mangled contents, and raw garbage.
    #[test]
    fn corpus_keeps_the_invariants() {
        let types = ["request", "ready", "start", "accept", "key", "mac", "done", "cancel", "unknown"];
        let txns = [
            "received",
            "ready",
            "sas_started",
            "sas_start_received",
            "sas_accepted",
            "sas_shown",
            "sas_confirmed",
            "cancelled",
            "nope",
        ];
        let mut count = 0;
        for t in types {
            for txn in txns {
                for content in [
                    json!({"transaction_id": txn}),
                    sas_start(txn),
                    json!({"transaction_id": txn, "key": "AAAA", "mac": {"ed25519:PEER": "x"}, "keys": "y", "code": "m.user", "from_device": "PEER", "methods": [SAS_METHOD], "timestamp": 1_700_000_000_000u64, "commitment": "zz", "method": SAS_METHOD}),
                    json!({"transaction_id": 5}),
                    json!([1, 2]),
                ] {
                    let event =
                        json!({"type": format!("m.key.verification.{t}"), "sender": FUZZ_PEER, "content": content});
                    fuzz_verification_event(&serde_json::to_vec(&event).unwrap());
                    count += 1;
                }
            }
        }
        for garbage in [
            &b""[..],
            b"\xff\xfe",
            b"null",
            b"{\"type\": 5}",
            b"{\"type\":\"m.key.verification.mac\",\"sender\":\"not a user\"}",
        ] {
            fuzz_verification_event(garbage);
            count += 1;
        }
        assert_eq!(count, types.len() * txns.len() * 5 + 5);
    }
}
