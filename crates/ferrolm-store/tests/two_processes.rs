//! Two OS processes, one device, one store: the main app and its notification extension.
//!
//! The test binary re-executes itself twice (the ignored test `two_process_child`, selected by
//! an environment variable). The parent plays three remote peers (Alice devices) and a
//! homeserver: it publishes Bob's one-time keys, encrypts Olm messages to Bob (pre-key messages
//! of new sessions, normal messages after Bob's replies, room keys inside some of them, and now
//! and then a replay of an old pre-key message), and hands each message to one of the two
//! children, two at a time, so they contend. Each child, like a real machine, caches Bob's
//! account and sessions between commands, takes the lease for each command (a 40 ms lease it
//! may keep and reuse), is now and then suspended for longer than its lease (so the other takes
//! over), reloads its caches when the generation moved, and retries from fresh state when a
//! write is fenced off. Afterwards: no session is wedged (the genuine next message
//! on every session decrypts), no one-time key was used twice, every room key is stored, every
//! session the peers created exists exactly once, and the store passes its integrity check.
#![cfg(all(feature = "sqlite", unix))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferrolm::megolm::{GroupSession, InboundGroupSession, SessionConfig as MegolmConfig, SessionKey};
use ferrolm::olm::{Account, MessageType, OlmMessage, Session, SessionConfig};
use ferrolm::types::Curve25519PublicKey;
use ferrolm_store::*;

const CHILD_ENV: &str = "FERROLM_STORE_TWO_PROCESS_CHILD";
const PATH_ENV: &str = "FERROLM_STORE_TWO_PROCESS_PATH";
const MESSAGES: usize = 3000;
const LEASE_MS: u64 = 40;

fn secret() -> StoreSecret {
    StoreSecret::key([0x22; 32])
}

/// The coordination under test does not depend on fsync; `Normal` keeps the run short (the
/// crash test covers durability with the default `Full`).
fn options() -> SqliteOptions {
    SqliteOptions { synchronous: Synchronous::Normal, create: false, ..SqliteOptions::default() }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

fn curve(text: &str) -> Curve25519PublicKey {
    Curve25519PublicKey::from_slice(&unhex(text)).unwrap()
}

fn message_to_wire(message: &OlmMessage) -> String {
    let (kind, body) = message.to_parts();
    format!("{} {body}", kind as u8)
}

fn message_from_wire(kind: &str, body: &str) -> OlmMessage {
    let kind = if kind == "0" { MessageType::PreKey } else { MessageType::Normal };
    OlmMessage::from_parts(kind, body).unwrap()
}

/// splitmix64, test only: the parent's schedule is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

// ---------------------------------------------------------------------------------------
// The child: one process of the device.

#[derive(Default)]
struct Cache {
    account: Option<AccountRecord>,
    sessions: HashMap<Curve25519PublicKey, Vec<OlmSessionRecord>>,
}

#[derive(Default)]
struct Stats {
    reloads: u64,
    fenced: u64,
    waits: u64,
}

struct Device {
    name: String,
    store: SqliteStore,
    cache: Cache,
    lease_until: u64,
    stats: Stats,
    rng: Rng,
}

/// What one command produced, committed only if the whole change set commits.
struct Outcome {
    response: String,
    changes: Changes,
}

impl Device {
    fn account(&mut self) -> AccountRecord {
        if self.cache.account.is_none() {
            self.cache.account = self.store.account().unwrap();
        }
        self.cache.account.clone().unwrap()
    }

    fn sessions(&mut self, sender: &Curve25519PublicKey) -> Vec<OlmSessionRecord> {
        if !self.cache.sessions.contains_key(sender) {
            let loaded = self.store.olm_sessions(sender).unwrap();
            self.cache.sessions.insert(*sender, loaded);
        }
        self.cache.sessions[sender].clone()
    }

    fn ensure_lease(&mut self) {
        loop {
            let now = now_ms();
            if self.store.holds_lease() && now + 10 < self.lease_until {
                return;
            }
            match self.store.acquire_lease(&self.name, now, LEASE_MS).unwrap() {
                LeaseOutcome::Acquired { reload, .. } => {
                    if reload {
                        self.stats.reloads += 1;
                        self.cache = Cache::default();
                        self.store.refresh().unwrap();
                    }
                    self.lease_until = now + LEASE_MS;
                    return;
                }
                LeaseOutcome::Held(_) => {
                    self.stats.waits += 1;
                    std::thread::sleep(Duration::from_micros(500));
                }
            }
        }
    }

    /// Runs one command under the lease, from fresh state, until its changes commit.
    fn run(&mut self, command: &[&str]) -> String {
        loop {
            self.ensure_lease();
            // Now and then the process is suspended (as iOS suspends an extension) for longer
            // than its lease, and the other one takes over meanwhile: this one's write must be
            // fenced off, and it must redo the work from fresh state.
            if self.rng.chance(2) {
                std::thread::sleep(Duration::from_millis(LEASE_MS + 15));
            }
            let outcome = match command[0] {
                "publish" => self.publish(command[1].parse().unwrap()),
                "decrypt" => {
                    self.decrypt(&curve(command[1]), &message_from_wire(command[2], command[3]), command[4] == "1")
                }
                other => panic!("unknown command {other}"),
            };
            let Some(outcome) = outcome else {
                return "err".to_owned();
            };
            match self.store.save_changes(&outcome.changes) {
                Ok(_) => {
                    self.apply(outcome.changes);
                    // Usually give the lease back at once; sometimes keep it (it expires).
                    if self.rng.chance(85) {
                        let _ = self.store.release_lease();
                    }
                    return outcome.response;
                }
                Err(StoreError::LeaseLost | StoreError::LeaseHeld { .. } | StoreError::StaleGeneration { .. }) => {
                    // Fenced off: another process wrote. Reload everything and redo the work.
                    self.stats.fenced += 1;
                    self.cache = Cache::default();
                    self.lease_until = 0;
                }
                Err(e) => panic!("save_changes: {e}"),
            }
        }
    }

    fn apply(&mut self, changes: Changes) {
        if let Some(account) = changes.account {
            self.cache.account = Some(account);
        }
        for record in changes.olm_sessions {
            if let Some(cached) = self.cache.sessions.get_mut(&record.sender_key) {
                match cached.iter_mut().find(|s| s.session_id() == record.session_id()) {
                    Some(slot) => *slot = record,
                    None => cached.push(record),
                }
            }
        }
    }

    fn publish(&mut self, count: usize) -> Option<Outcome> {
        let mut account = self.account();
        account.account.generate_one_time_keys(count);
        let keys: Vec<String> = account.account.one_time_keys().values().map(|k| hex(k.as_bytes())).collect();
        account.account.mark_keys_as_published();
        let changes = Changes { account: Some(account), ..Changes::default() };
        Some(Outcome { response: format!("keys {}", keys.join(" ")), changes })
    }

    fn decrypt(&mut self, sender: &Curve25519PublicKey, message: &OlmMessage, reply: bool) -> Option<Outcome> {
        let now = now_ms();
        let sessions = self.sessions(sender);
        let mut changes = Changes::default();
        let mut used_otk = "-".to_owned();
        let (mut record, plaintext) = match message {
            OlmMessage::PreKey(pre_key) => match sessions.iter().find(|s| s.session.matches(pre_key)) {
                Some(existing) => {
                    let mut record = existing.clone();
                    let plaintext = record.session.decrypt(message).ok()?;
                    (record, plaintext)
                }
                None => {
                    let mut account = self.account();
                    let created =
                        account.account.create_inbound_session(SessionConfig::version_1(), *sender, pre_key).ok()?;
                    used_otk = hex(pre_key.one_time_key().as_bytes());
                    changes.account = Some(account);
                    let record = OlmSessionRecord {
                        sender_key: *sender,
                        session: created.session,
                        created_ms: now,
                        last_use_ms: now,
                        last_decrypt_ms: None,
                    };
                    (record, created.plaintext)
                }
            },
            OlmMessage::Normal(_) => {
                let mut found = None;
                for existing in &sessions {
                    let mut record = existing.clone();
                    if let Ok(plaintext) = record.session.decrypt(message) {
                        found = Some((record, plaintext));
                        break;
                    }
                }
                found?
            }
        };
        record.last_use_ms = now;
        record.last_decrypt_ms = Some(now);
        let text = String::from_utf8(plaintext.clone()).unwrap();
        if let Some(rest) = text.strip_prefix("roomkey ") {
            let (room, key) = rest.split_once(' ').unwrap();
            let key = SessionKey::from_base64(key).unwrap();
            changes.inbound_group_sessions.push(InboundGroupSessionRecord {
                room_id: RoomId::from(room),
                session: InboundGroupSession::new(&key, MegolmConfig::version_1()),
                sender_key: *sender,
                claimed_signing_key: None,
                source: RoomKeySource::Direct,
                backed_up: false,
                shared_history: false,
            });
        }
        let reply_wire = if reply { message_to_wire(&record.session.encrypt(b"reply")) } else { "- -".to_owned() };
        changes.olm_sessions.push(record);
        Some(Outcome { response: format!("ok {} {used_otk} {reply_wire}", hex(&plaintext)), changes })
    }
}

#[test]
#[ignore = "the child process of two_processes_share_one_device; does nothing on its own"]
fn two_process_child() {
    let Ok(name) = std::env::var(CHILD_ENV) else {
        eprintln!("not started by two_processes_share_one_device: nothing to do");
        return;
    };
    let path = std::env::var(PATH_ENV).unwrap();
    let store = Store::open(SqliteBackend::open_with(&path, &options()).unwrap(), &secret()).unwrap();
    let seed = if name == "app" { 1 } else { 2 };
    let mut device =
        Device { name, store, cache: Cache::default(), lease_until: 0, stats: Stats::default(), rng: Rng(seed) };
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    for line in stdin.lock().lines() {
        let line = line.unwrap();
        let command: Vec<&str> = line.split(' ').collect();
        let response = match command[0] {
            "quit" => break,
            "stats" => {
                let s = &device.stats;
                format!("stats {} {} {}", s.reloads, s.fenced, s.waits)
            }
            _ => device.run(&command),
        };
        writeln!(out, "@@ {response}").unwrap();
        out.flush().unwrap();
    }
    if device.store.holds_lease() {
        let _ = device.store.release_lease();
    }
}

// ---------------------------------------------------------------------------------------
// The parent: the peers and the homeserver.

struct Process {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Process {
    fn spawn(name: &str, path: &Path) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "two_process_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, name)
            .env(PATH_ENV, path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self { child, stdin, stdout }
    }

    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn recv(&mut self) -> String {
        loop {
            let mut line = String::new();
            assert!(self.stdout.read_line(&mut line).unwrap() > 0, "a child process died");
            // libtest may have written "test two_process_child ... " on the same line first.
            if let Some(at) = line.find("@@ ") {
                return line[at + 3..].trim_end().to_owned();
            }
        }
    }
}

struct Peer {
    account: Account,
    sessions: Vec<Session>,
}

/// One message in flight and what its answer must be.
struct Sent {
    peer: usize,
    session: usize,
    plaintext: Option<Vec<u8>>,
    reply: bool,
}

struct World {
    rng: Rng,
    bob_key: Curve25519PublicKey,
    peers: Vec<Peer>,
    published: Vec<Curve25519PublicKey>,
    claimed: BTreeSet<Curve25519PublicKey>,
    used: Vec<Curve25519PublicKey>,
    old_pre_keys: Vec<(usize, OlmMessage)>,
    room_keys: Vec<(RoomId, GroupSession)>,
    counter: usize,
}

impl World {
    fn publish(&mut self, process: &mut Process) {
        process.send("publish 20");
        let response = process.recv();
        let keys = response.strip_prefix("keys ").unwrap();
        for key in keys.split(' ').filter(|k| !k.is_empty()) {
            self.published.push(curve(key));
        }
    }

    fn next_message(&mut self) -> (String, Sent) {
        self.counter += 1;
        let p = self.rng.below(self.peers.len() as u64) as usize;
        let sender = hex(self.peers[p].account.curve25519_key().as_bytes());
        // Now and then, a replay of an old pre-key message: it must be refused.
        if !self.old_pre_keys.is_empty() && self.rng.chance(2) {
            let i = self.rng.below(self.old_pre_keys.len() as u64) as usize;
            let (peer, message) = &self.old_pre_keys[i];
            let sender = hex(self.peers[*peer].account.curve25519_key().as_bytes());
            let line = format!("decrypt {sender} {} 0", message_to_wire(message));
            return (line, Sent { peer: *peer, session: 0, plaintext: None, reply: false });
        }
        if self.peers[p].sessions.is_empty() || self.rng.chance(3) {
            let otk = self.published.pop().expect("keys published");
            assert!(self.claimed.insert(otk), "the server hands out each key once");
            let peer = &mut self.peers[p];
            let session = peer.account.create_outbound_session(SessionConfig::version_1(), self.bob_key, otk).unwrap();
            peer.sessions.push(session);
        }
        let plaintext = if self.rng.chance(10) {
            let group = GroupSession::new(MegolmConfig::version_1());
            let room = RoomId::from(format!("!room{}:example.org", self.counter));
            let text = format!("roomkey {room} {}", group.session_key().to_base64().as_str());
            self.room_keys.push((room, group));
            text.into_bytes()
        } else {
            format!("peer {p} message {}", self.counter).into_bytes()
        };
        let peer = &mut self.peers[p];
        // Mostly the newest session; sometimes an older one.
        let s = if peer.sessions.len() > 1 && self.rng.chance(10) {
            self.rng.below(peer.sessions.len() as u64) as usize
        } else {
            peer.sessions.len() - 1
        };
        let message = peer.sessions[s].encrypt(&plaintext);
        if matches!(message, OlmMessage::PreKey(_)) {
            self.old_pre_keys.push((p, message.clone()));
        }
        let reply = self.rng.chance(30);
        let line = format!("decrypt {sender} {} {}", message_to_wire(&message), u8::from(reply));
        (line, Sent { peer: p, session: s, plaintext: Some(plaintext), reply })
    }

    fn check(&mut self, sent: &Sent, response: &str) {
        let Some(expected) = &sent.plaintext else {
            assert_eq!(response, "err", "a replayed pre-key message was accepted");
            return;
        };
        let fields: Vec<&str> = response.split(' ').collect();
        assert_eq!(fields[0], "ok", "a genuine message did not decrypt: {response}");
        assert_eq!(&unhex(fields[1]), expected);
        if fields[2] != "-" {
            self.used.push(curve(fields[2]));
        }
        if sent.reply {
            let reply = message_from_wire(fields[3], fields[4]);
            let plaintext = self.peers[sent.peer].sessions[sent.session].decrypt(&reply).unwrap();
            assert_eq!(plaintext, b"reply");
        }
    }
}

#[test]
fn two_processes_share_one_device() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device.sqlite3");
    let bob = Account::new();
    let bob_key = bob.curve25519_key();
    {
        let backend = SqliteBackend::open(&path).unwrap();
        let mut store = Store::create(backend, &secret(), KdfParams::default()).unwrap();
        let account = AccountRecord {
            user_id: UserId::from("@bob:example.org"),
            device_id: DeviceId::from("BOB"),
            account: bob,
            device_keys_uploaded: true,
            fallback_key_published_ms: None,
        };
        store.save_changes(&Changes { account: Some(account), ..Changes::default() }).unwrap();
    }
    let mut processes = [Process::spawn("app", &path), Process::spawn("nse", &path)];
    let mut world = World {
        rng: Rng(0x7770),
        bob_key,
        peers: (0..3).map(|_| Peer { account: Account::new(), sessions: Vec::new() }).collect(),
        published: Vec::new(),
        claimed: BTreeSet::new(),
        used: Vec::new(),
        old_pre_keys: Vec::new(),
        room_keys: Vec::new(),
        counter: 0,
    };

    let mut delivered = 0;
    while delivered < MESSAGES {
        if world.published.len() < 4 {
            let i = world.rng.below(2) as usize;
            world.publish(&mut processes[i]);
        }
        // One message to each process at once: they contend for the lease.
        let (line_a, sent_a) = world.next_message();
        let (line_b, sent_b) = world.next_message();
        processes[0].send(&line_a);
        processes[1].send(&line_b);
        let response_a = processes[0].recv();
        let response_b = processes[1].recv();
        world.check(&sent_a, &response_a);
        world.check(&sent_b, &response_b);
        delivered += 2;
    }

    // No session is wedged: the genuine next message on every session of every peer decrypts.
    let mut finals = 0;
    for p in 0..world.peers.len() {
        for s in 0..world.peers[p].sessions.len() {
            let sender = hex(world.peers[p].account.curve25519_key().as_bytes());
            let message = world.peers[p].sessions[s].encrypt(b"final");
            let process = &mut processes[finals % 2];
            process.send(&format!("decrypt {sender} {} 0", message_to_wire(&message)));
            let response = process.recv();
            assert_eq!(response.split(' ').nth(1), Some(hex(b"final").as_str()), "session {s} of peer {p}: {response}");
            finals += 1;
        }
    }

    let mut stats = Vec::new();
    for process in &mut processes {
        process.send("stats");
        let response = process.recv();
        let numbers: Vec<u64> = response.split(' ').skip(1).map(|n| n.parse().unwrap()).collect();
        stats.push(numbers);
        process.send("quit");
    }
    for process in &mut processes {
        assert!(process.child.wait().unwrap().success());
    }

    // No one-time key was used twice, and every claimed key was used exactly once.
    let used: BTreeSet<_> = world.used.iter().copied().collect();
    assert_eq!(used.len(), world.used.len(), "a one-time key was used twice");
    assert_eq!(used, world.claimed, "every claimed key created exactly one session");

    let store = Store::open(SqliteBackend::open_with(&path, &options()).unwrap(), &secret()).unwrap();
    store.check_integrity().unwrap();
    let account = store.account().unwrap().unwrap().account;
    let remaining: BTreeSet<_> = account.one_time_keys().values().copied().collect();
    assert!(remaining.is_empty(), "every generated key was published");
    // Every session the peers created is stored exactly once.
    for peer in &world.peers {
        let stored = store.olm_sessions(&peer.account.curve25519_key()).unwrap();
        let stored_ids: BTreeSet<String> = stored.iter().map(|s| s.session_id()).collect();
        let peer_ids: BTreeSet<String> = peer.sessions.iter().map(|s| s.session_id().to_base64()).collect();
        assert_eq!(stored.len(), peer.sessions.len());
        assert_eq!(stored_ids, peer_ids);
    }
    // No room key was lost.
    let counts = store.room_key_counts().unwrap();
    assert_eq!(counts.total, world.room_keys.len() as u64);
    for (room, group) in &mut world.room_keys {
        let mut record =
            store.inbound_group_session(room, &group.session_id().to_base64()).unwrap().expect("room key kept");
        assert_eq!(record.session.decrypt(&group.encrypt(b"room")).unwrap().plaintext, b"room");
    }

    let reloads: u64 = stats.iter().map(|s| s[0]).sum();
    let fenced: u64 = stats.iter().map(|s| s[1]).sum();
    let waits: u64 = stats.iter().map(|s| s[2]).sum();
    let by_process: BTreeMap<&str, &Vec<u64>> = ["app", "nse"].into_iter().zip(stats.iter()).collect();
    eprintln!(
        "two processes: {MESSAGES} messages + {finals} final ones, {} sessions, {} room keys, {reloads} reloads, \
         {fenced} fenced-off writes retried, {waits} lease waits ({by_process:?})",
        world.claimed.len(),
        world.room_keys.len(),
    );
    // The processes really alternated: each reloaded after the other wrote, many times, and
    // writes of suspended processes were fenced off.
    assert!(stats.iter().all(|s| s[0] > 100), "too few handovers: {stats:?}");
    assert!(fenced > 0, "no write was fenced off: {stats:?}");
}
