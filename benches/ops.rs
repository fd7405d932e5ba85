//! `ferrolm-ops IMPLEMENTATION OPERATION N`: runs one operation N times inside `measured`, the
//! only function `benches/callgrind.sh` collects instructions in, so set-up does not count.
//! Instruction counts do not move with machine load, unlike wall-clock medians.
//!
//! `ferrolm-ops paired ROUNDS`: backup decryption timed in ferrolm, vodozemac and libolm
//! *interleaved* (rounds of 2,000 sessions each, the order rotating every round), for ratios
//! that the drift of a noisy machine's clock cannot bias: criterion measures one
//! implementation after the other, minutes apart.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::hint::black_box;
use std::time::Instant;

use ferrolm::{megolm as fm, olm as fo};
use ferrolm_interop::libolm as l;
use vodozemac::{megolm as vm, olm as vo};

/// Everything callgrind counts happens in here.
#[inline(never)]
fn measured(n: usize, mut op: impl FnMut(usize)) {
    for i in 0..n {
        op(i);
    }
}

fn run(implementation: &str, operation: &str, n: usize) -> Option<()> {
    let plaintext = [0x61u8; 26];
    match (implementation, operation) {
        ("ferrolm", "olm_encrypt") => {
            let (mut a, _) = ferrolm_benches::ferrolm_pair();
            measured(n, |_| drop(black_box(a.encrypt(&plaintext))));
        }
        ("vodozemac", "olm_encrypt") => {
            let (mut a, _) = ferrolm_benches::vodozemac_pair();
            measured(n, |_| drop(black_box(a.encrypt(plaintext).unwrap())));
        }
        ("libolm", "olm_encrypt") => {
            let (mut a, _) = ferrolm_benches::libolm_pair();
            measured(n, |_| drop(black_box(a.encrypt(&plaintext).unwrap())));
        }
        ("ferrolm", "olm_decrypt") => {
            let (mut a, mut b) = ferrolm_benches::ferrolm_pair();
            let messages: Vec<_> = (0..n).map(|_| a.encrypt(&plaintext)).collect();
            measured(n, |i| drop(black_box(b.decrypt(&messages[i]).unwrap())));
        }
        ("vodozemac", "olm_decrypt") => {
            let (mut a, mut b) = ferrolm_benches::vodozemac_pair();
            let messages: Vec<_> = (0..n).map(|_| a.encrypt(plaintext).unwrap()).collect();
            measured(n, |i| drop(black_box(b.decrypt(&messages[i]).unwrap())));
        }
        ("libolm", "olm_decrypt") => {
            let (mut a, mut b) = ferrolm_benches::libolm_pair();
            let messages: Vec<_> = (0..n).map(|_| a.encrypt(&plaintext).unwrap()).collect();
            measured(n, |i| drop(black_box(b.decrypt(messages[i].0, &messages[i].1).unwrap())));
        }
        ("ferrolm", "olm_account_new") => measured(n, |_| drop(black_box(fo::Account::new()))),
        ("vodozemac", "olm_account_new") => measured(n, |_| drop(black_box(vo::Account::new()))),
        ("libolm", "olm_account_new") => measured(n, |_| drop(black_box(l::Account::new().unwrap()))),
        ("ferrolm", "olm_outbound_session") => {
            let (a, mut b) = (fo::Account::new(), fo::Account::new());
            b.generate_one_time_keys(1);
            let otk = *b.one_time_keys().values().next()?;
            measured(n, |_| {
                drop(black_box(
                    a.create_outbound_session(fo::SessionConfig::version_1(), b.curve25519_key(), otk).unwrap(),
                ))
            });
        }
        ("vodozemac", "olm_outbound_session") => {
            let (a, mut b) = (vo::Account::new(), vo::Account::new());
            b.generate_one_time_keys(1);
            let otk = *b.one_time_keys().values().next()?;
            measured(n, |_| {
                drop(black_box(
                    a.create_outbound_session(vo::SessionConfig::version_1(), b.curve25519_key(), otk).unwrap(),
                ))
            });
        }
        ("libolm", "olm_outbound_session") => {
            let (a, mut b) = (l::Account::new().unwrap(), l::Account::new().unwrap());
            b.generate_one_time_keys(1).unwrap();
            let otk = b.one_time_keys().unwrap().into_values().next()?;
            let identity = b.identity_keys().unwrap().curve25519;
            measured(n, |_| drop(black_box(l::Session::create_outbound(&a, &identity, &otk).unwrap())));
        }
        ("ferrolm", "megolm_encrypt") => {
            let mut s = fm::GroupSession::new(fm::SessionConfig::version_1());
            measured(n, |_| drop(black_box(s.encrypt(&plaintext))));
        }
        ("vodozemac", "megolm_encrypt") => {
            let mut s = vm::GroupSession::new(vm::SessionConfig::version_1());
            measured(n, |_| drop(black_box(s.encrypt(plaintext))));
        }
        ("libolm", "megolm_encrypt") => {
            let mut s = l::OutboundGroupSession::new().unwrap();
            measured(n, |_| drop(black_box(s.encrypt(&plaintext).unwrap())));
        }
        ("ferrolm", "megolm_decrypt") => {
            let mut s = fm::GroupSession::new(fm::SessionConfig::version_1());
            let mut r = fm::InboundGroupSession::new(&s.session_key(), fm::SessionConfig::version_1());
            let messages: Vec<_> = (0..n).map(|_| s.encrypt(&plaintext)).collect();
            measured(n, |i| drop(black_box(r.decrypt(&messages[i]).unwrap())));
        }
        ("vodozemac", "megolm_decrypt") => {
            let mut s = vm::GroupSession::new(vm::SessionConfig::version_1());
            let mut r = vm::InboundGroupSession::new(&s.session_key(), vm::SessionConfig::version_1());
            let messages: Vec<_> = (0..n).map(|_| s.encrypt(plaintext)).collect();
            measured(n, |i| drop(black_box(r.decrypt(&messages[i]).unwrap())));
        }
        ("libolm", "megolm_decrypt") => {
            let mut s = l::OutboundGroupSession::new().unwrap();
            let mut r = l::InboundGroupSession::new(&s.session_key().unwrap()).unwrap();
            let messages: Vec<_> = (0..n).map(|_| s.encrypt(&plaintext).unwrap()).collect();
            measured(n, |i| drop(black_box(r.decrypt(&messages[i]).unwrap())));
        }
        ("ferrolm", "megolm_bulk_decrypt") => {
            // The batch API on n messages: counted per message by the script.
            let mut s = fm::GroupSession::new(fm::SessionConfig::version_1());
            let r = fm::InboundGroupSession::new(&s.session_key(), fm::SessionConfig::version_1());
            let messages: Vec<_> = (0..n).map(|_| s.encrypt(&plaintext)).collect();
            // The base point's tables are built on the first batch of the process: not here.
            drop(black_box(r.clone().decrypt_batch(&messages[..n.min(16)])));
            measured(1, |_| drop(black_box(r.clone().decrypt_batch(&messages))));
        }
        ("ferrolm", "megolm_create") => {
            measured(n, |_| drop(black_box(fm::GroupSession::new(fm::SessionConfig::version_1()))))
        }
        ("vodozemac", "megolm_create") => {
            measured(n, |_| drop(black_box(vm::GroupSession::new(vm::SessionConfig::version_1()))))
        }
        ("libolm", "megolm_create") => measured(n, |_| drop(black_box(l::OutboundGroupSession::new().unwrap()))),
        // A used inbound session: created at index 0, its latest message at index 999.
        ("ferrolm", "megolm_inbound_unpickle") => {
            let (pickle, key, _) = ferrolm_used_inbound(&plaintext);
            measured(n, |_| drop(black_box(fm::InboundGroupSession::from_pickle(&pickle, &key).unwrap())));
        }
        ("vodozemac", "megolm_inbound_unpickle") => {
            let (pickle, _) = vodozemac_used_inbound(&plaintext);
            measured(n, |_| {
                let p = vm::InboundGroupSessionPickle::from_encrypted(&pickle, &[7; 32]).unwrap();
                drop(black_box(vm::InboundGroupSession::from_pickle(p)))
            });
        }
        ("libolm", "megolm_inbound_unpickle") => {
            let (pickle, _) = libolm_used_inbound(&plaintext);
            measured(n, |_| drop(black_box(l::InboundGroupSession::unpickle(&pickle, &[7; 32]).unwrap())));
        }
        // Back-pagination: restore that session, then decrypt an older message (index 500).
        ("ferrolm", "megolm_restore_decrypt_older") => {
            let (pickle, key, older) = ferrolm_used_inbound(&plaintext);
            measured(n, |_| {
                let mut session = fm::InboundGroupSession::from_pickle(&pickle, &key).unwrap();
                drop(black_box(session.decrypt(&older).unwrap()))
            });
        }
        ("vodozemac", "megolm_restore_decrypt_older") => {
            let (pickle, older) = vodozemac_used_inbound(&plaintext);
            measured(n, |_| {
                let p = vm::InboundGroupSessionPickle::from_encrypted(&pickle, &[7; 32]).unwrap();
                drop(black_box(vm::InboundGroupSession::from_pickle(p).decrypt(&older).unwrap()))
            });
        }
        ("libolm", "megolm_restore_decrypt_older") => {
            let (pickle, older) = libolm_used_inbound(&plaintext);
            measured(n, |_| {
                let mut session = l::InboundGroupSession::unpickle(&pickle, &[7; 32]).unwrap();
                drop(black_box(session.decrypt(&older).unwrap()))
            });
        }
        ("ferrolm", "megolm_first_batch") => {
            // The first batch of a process, of 16 messages: builds the base point's tables.
            let mut s = fm::GroupSession::new(fm::SessionConfig::version_1());
            let r = fm::InboundGroupSession::new(&s.session_key(), fm::SessionConfig::version_1());
            let messages: Vec<_> = (0..16).map(|_| s.encrypt(&plaintext)).collect();
            measured(1, |_| drop(black_box(r.clone().decrypt_batch(&messages))));
        }
        ("ferrolm", "pk_decrypt") => {
            let b = ferrolm_benches::Backup::new(n);
            measured(n, |i| drop(black_box(b.ferrolm_key.decrypt(&b.ferrolm[i]).unwrap())));
        }
        ("vodozemac", "pk_decrypt") => {
            let b = ferrolm_benches::Backup::new(n);
            measured(n, |i| drop(black_box(b.vodozemac_key.decrypt(&b.vodozemac[i]).unwrap())));
        }
        ("libolm", "pk_decrypt") => {
            let mut b = ferrolm_benches::Backup::new(n);
            let (key, messages) = (&mut b.libolm_key, &b.libolm);
            measured(n, |i| drop(black_box(key.decrypt(&messages[i].2, &messages[i].1, &messages[i].0).unwrap())));
        }
        ("ferrolm" | "matrix-sdk-sqlite", "store_save_olm_session" | "store_lookup") => {
            store(implementation, operation, n)
        }
        ("ferrolm", op) if op.starts_with("machine_") => machine(op, n)?,
        _ => return None,
    }
    Some(())
}

/// Everything callgrind counts of a single call happens in here (the count is then divided by
/// the devices or events it handled); the wall-clock time goes to stderr.
#[inline(never)]
fn measured_once<T>(what: &str, op: impl FnOnce() -> T) -> T {
    let (start, cpu) = (Instant::now(), process_cpu_ms());
    let out = op();
    // The CPU time too: on a loaded machine it moves less than the wall-clock time.
    eprintln!("{what}: {:.1?} wall, {} ms CPU", start.elapsed(), process_cpu_ms() - cpu);
    out
}

/// The process's user and system CPU time so far, in milliseconds (Linux; 0 elsewhere).
fn process_cpu_ms() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks: u64 = fields.get(11..13).map(|f| f.iter().filter_map(|t| t.parse::<u64>().ok()).sum()).unwrap_or(0);
    ticks * 10 // USER_HZ is 100 on Linux
}

/// ferrolm's machine on its SQLite store (`benches/machine.rs`'s workloads), N devices (a
/// multiple of 10: N / 10 users of 10 devices) or N decryptions.
fn machine(operation: &str, n: usize) -> Option<()> {
    use ferrolm_benches::machine::{self as m, Fixture, RoomEvent};
    use ferrolm_benches::store::TempDir;
    let users = (n / m::DEVICES_PER_USER).max(1);
    let fixture = Fixture::load(users, m::DEVICES_PER_USER);
    let all = fixture.users(users);
    let dir = TempDir::new("ops-machine");
    let mut machine = m::ferrolm_open(dir.path());
    let answers = m::ferrolm_queries(&mut machine, &fixture, &all);
    if operation == "machine_keys_query" {
        measured_once("keys query", || m::ferrolm_apply(&mut machine, answers));
        return Some(());
    }
    m::ferrolm_apply(&mut machine, answers);
    let claim = fixture.claim_response(&all);
    match operation {
        "machine_share_new_sessions" => measured_once("claim and share", || {
            m::ferrolm_claim(&mut machine, &all, &claim);
            drop(black_box(m::ferrolm_share(&mut machine, &m::room(0), &all)));
        }),
        "machine_share_existing_sessions" => {
            m::ferrolm_claim(&mut machine, &all, &claim);
            let ids = m::ferrolm_share(&mut machine, &m::room(0), &all);
            m::ferrolm_sent(&mut machine, &ids);
            // FERROLM_OPS_REPEAT=R shares in R rooms (for a profiler that sees the whole process).
            let repeat = std::env::var("FERROLM_OPS_REPEAT").ok().and_then(|r| r.parse().ok()).unwrap_or(1);
            measured_once("share", || {
                for r in 1..=repeat {
                    let ids = m::ferrolm_share(&mut machine, &m::room(r), &all);
                    if r < repeat {
                        m::ferrolm_sent(&mut machine, &ids);
                    }
                }
            });
        }
        "machine_decrypt_warm" => {
            drop(machine);
            let event = RoomEvent::new(&fixture);
            event.ferrolm_save(dir.path());
            let mut machine = m::ferrolm_open(dir.path());
            let raw = event.ferrolm_event();
            let mut decrypt = || {
                let d = machine.decrypt_room_event(&raw, &event.room_id, ferrolm_machine::TrustRequirement::Untrusted);
                drop(black_box(d.unwrap().unwrap()))
            };
            decrypt();
            measured_once("decryptions", || (0..n).for_each(|_| decrypt()));
        }
        _ => return None,
    }
    Some(())
}

/// Room keys in the store that `store_lookup` reads from: fewer than the criterion group's
/// 100,000, since valgrind runs the set-up about 50 times slower than the machine.
const CALLGRIND_STORE_SIZE: usize = 1_000;

/// The store operations. matrix-sdk-sqlite runs its SQLite calls on tokio's blocking pool,
/// threads that `measured` does not cover, so `benches/callgrind.sh` counts these over the
/// whole process, once with N operations and once with none, and divides the difference by N
/// (the same for both implementations). The Olm session saved is the same state each time:
/// the write is the same work whether the bytes changed or not.
fn store(implementation: &str, operation: &str, n: usize) {
    use ferrolm_benches::store::{self as s, Ferrolm, RoomKeys, Sdk, TempDir};
    let dir = TempDir::new("ops");
    let keys = RoomKeys::generate(CALLGRIND_STORE_SIZE);
    let order = s::lookup_order(keys.len());
    if implementation == "ferrolm" {
        match operation {
            "store_save_olm_session" => {
                let mut store = Ferrolm::create(dir.path());
                let changes = s::olm_session_changes(store.olm_session());
                measured(n, |_| store.save_olm_session(&changes));
            }
            _ => {
                drop(Ferrolm::create_filled(dir.path(), &keys));
                let store = Ferrolm::open(dir.path());
                let rooms: Vec<_> = keys.keys.iter().map(|k| ferrolm_store::RoomId::new(k.room_id.as_str())).collect();
                measured(n, |i| {
                    let k = order[i % order.len()];
                    drop(black_box(store.room_key(&rooms[k], &keys.keys[k].session_id)))
                });
            }
        }
        return;
    }
    let rt = s::runtime();
    let _in_runtime = rt.enter();
    match operation {
        "store_save_olm_session" => {
            let store = rt.block_on(Sdk::create(dir.path()));
            let session = rt.block_on(store.olm_session());
            measured(n, |_| rt.block_on(store.save_olm_session(session.clone())));
            rt.block_on(store.close());
        }
        _ => {
            rt.block_on(async { Sdk::create_filled(dir.path(), &keys).await.close().await });
            let store = rt.block_on(Sdk::open(dir.path()));
            measured(n, |i| {
                let (room, session) = keys.id(order[i % order.len()]);
                drop(black_box(rt.block_on(store.room_key(room, session))))
            });
            rt.block_on(store.close());
        }
    }
}

/// A ferrolm inbound session that decrypted messages 0..=999 (its cached ratchet is at 999),
/// pickled; and its message 500.
fn ferrolm_used_inbound(plaintext: &[u8]) -> (String, ferrolm::pickle::PickleKey, fm::MegolmMessage) {
    let mut s = fm::GroupSession::new(fm::SessionConfig::version_1());
    let mut r = fm::InboundGroupSession::new(&s.session_key(), fm::SessionConfig::version_1());
    let messages: Vec<_> = (0..1000).map(|_| s.encrypt(plaintext)).collect();
    r.decrypt(&messages[999]).unwrap();
    let key = ferrolm::pickle::PickleKey::from_bytes([7; 32]);
    (r.pickle(&key), key, messages[500].clone())
}

/// The same for vodozemac (whose pickle keeps only the initial ratchet).
fn vodozemac_used_inbound(plaintext: &[u8]) -> (String, vm::MegolmMessage) {
    let mut s = vm::GroupSession::new(vm::SessionConfig::version_1());
    let mut r = vm::InboundGroupSession::new(&s.session_key(), vm::SessionConfig::version_1());
    let messages: Vec<_> = (0..1000).map(|_| s.encrypt(plaintext)).collect();
    r.decrypt(&messages[999]).unwrap();
    (r.pickle().encrypt(&[7; 32]), messages[500].clone())
}

/// The same for libolm.
fn libolm_used_inbound(plaintext: &[u8]) -> (String, String) {
    let mut s = l::OutboundGroupSession::new().unwrap();
    let mut r = l::InboundGroupSession::new(&s.session_key().unwrap()).unwrap();
    let messages: Vec<_> = (0..1000).map(|_| s.encrypt(plaintext).unwrap()).collect();
    r.decrypt(&messages[999]).unwrap();
    (r.pickle(&[7; 32]).unwrap(), messages[500].clone())
}

/// Interleaved timing of backup decryption: see the module documentation.
fn paired(rounds: usize) {
    const SESSIONS: usize = 2_000;
    let mut backup = ferrolm_benches::Backup::new(SESSIONS);
    let mut seconds = [0f64; 3];
    for round in 0..rounds {
        for k in 0..3 {
            let implementation = (round + k) % 3;
            let start = Instant::now();
            match implementation {
                0 => backup.ferrolm.iter().for_each(|m| drop(black_box(backup.ferrolm_key.decrypt(m).unwrap()))),
                1 => backup.vodozemac.iter().for_each(|m| drop(black_box(backup.vodozemac_key.decrypt(m).unwrap()))),
                _ => {
                    let key = &mut backup.libolm_key;
                    backup.libolm.iter().for_each(|(c, m, e)| drop(black_box(key.decrypt(e, m, c).unwrap())));
                }
            }
            seconds[implementation] += start.elapsed().as_secs_f64();
        }
    }
    let per_session = |s: f64| s / (rounds * SESSIONS) as f64 * 1e6;
    println!(
        "pk_decrypt, {rounds} interleaved rounds of {SESSIONS}: ferrolm {:.1} µs, vodozemac {:.1} µs, libolm {:.1} µs per session; \
         vodozemac/ferrolm {:.3}, libolm/ferrolm {:.3}",
        per_session(seconds[0]),
        per_session(seconds[1]),
        per_session(seconds[2]),
        seconds[1] / seconds[0],
        seconds[2] / seconds[0],
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("paired") {
        let Some(rounds) = args.get(2).and_then(|n| n.parse::<usize>().ok()).filter(|&n| n > 0) else {
            eprintln!("usage: ferrolm-ops paired ROUNDS");
            std::process::exit(2);
        };
        paired(rounds);
        return;
    }
    let (Some(implementation), Some(operation), Some(n)) =
        (args.get(1), args.get(2), args.get(3).and_then(|n| n.parse::<usize>().ok()))
    else {
        eprintln!("usage: ferrolm-ops ferrolm|vodozemac|libolm OPERATION N | ferrolm-ops paired ROUNDS");
        std::process::exit(2);
    };
    if run(implementation, operation, n).is_none() {
        eprintln!("unknown implementation/operation: {implementation} {operation}");
        std::process::exit(2);
    }
}
