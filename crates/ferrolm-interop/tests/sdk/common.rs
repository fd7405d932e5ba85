//! What the matrix-sdk-crypto tests share: a minimal executor for the SDK's `async` methods
//! (they never wait on anything but uncontended in-memory locks), and the JSON of the
//! Matrix events and room keys that cross between the implementations.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use serde_json::{Value, json};

pub const ROOM_ID: &str = "!interop:example.org";
pub const OTHER_ROOM_ID: &str = "!elsewhere:example.org";
pub const MEGOLM_V1: &str = "m.megolm.v1.aes-sha2";

/// Runs a future to completion on this thread. The SDK's session methods are `async` only
/// because they take an in-memory lock; nothing here ever needs a wake-up from elsewhere, so
/// polling again (with a bound, in case that ever changes) is enough.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    // Bounded by a number of polls, not by time: tests never depend on the clock.
    for _ in 0..10_000_000u32 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::yield_now();
    }
    panic!("a matrix-sdk-crypto future never completed");
}

/// The plaintext of a Megolm-encrypted room event, as clients encrypt it.
pub fn room_event_plaintext(room_id: &str, body: &str) -> String {
    json!({
        "type": "m.room.message",
        "content": { "msgtype": "m.text", "body": body },
        "room_id": room_id,
    })
    .to_string()
}

/// An `m.room.encrypted` event as a homeserver delivers it, carrying a Megolm ciphertext.
pub fn encrypted_event(ciphertext: &str, session_id: &str, sender_key: &str, n: usize) -> Value {
    json!({
        "sender": "@alice:example.org",
        "event_id": format!("$event{n}:example.org"),
        "origin_server_ts": 1_700_000_000_000u64 + n as u64,
        "type": "m.room.encrypted",
        "content": {
            "algorithm": MEGOLM_V1,
            "ciphertext": ciphertext,
            "session_id": session_id,
            "sender_key": sender_key,
            "device_id": "ALICEDEVICE",
        },
    })
}

/// One room key in the key export format of the Matrix specification (`ExportedRoomKey`).
pub fn exported_room_key(
    room_id: &str,
    sender_key: &str,
    sender_ed25519: &str,
    session_id: &str,
    session_key: &str,
) -> Value {
    json!({
        "algorithm": MEGOLM_V1,
        "forwarding_curve25519_key_chain": [],
        "room_id": room_id,
        "sender_key": sender_key,
        "sender_claimed_keys": { "ed25519": sender_ed25519 },
        "session_id": session_id,
        "session_key": session_key,
    })
}

/// Runs `f` and returns its result with the time it took (printed, for the report).
pub fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    // Says what a slow step is doing; timing belongs in benches/, not in tests.
    eprintln!("{what}…");
    f()
}
