//! Runs a machine's request loop against the [`Homeserver`], over the same wire a client
//! uses: each request becomes an `http::Request` with its JSON body, the answer's JSON body is
//! handed back to the machine; sync responses are read from their JSON like a client would.

use ferrolm_machine::ruma::api::IncomingResponse as _;
use ferrolm_machine::ruma::api::client::sync::sync_events;
use ferrolm_machine::{
    Env, MachineError, ManualClock, OlmMachine, OutgoingRequest, ResponseOutcome, SyncChanges, SyncOutcome,
};
use ferrolm_store::{Backend, KdfParams, MemoryBackend, MemoryStore, StoreSecret};
use rand_core::SeedableRng;
use std::collections::BTreeMap;

use ruma::events::AnySyncTimelineEvent;
use ruma::serde::Raw;
use ruma::{OwnedDeviceId, OwnedRoomId, OwnedUserId};

use crate::{Homeserver, HsError};

/// Why a driver step failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The machine failed.
    #[error("machine: {0}")]
    Machine(#[from] MachineError),
    /// The homeserver refused a request.
    #[error("homeserver: {0}")]
    Homeserver(#[from] HsError),
    /// A request could not be serialized, or a response parsed.
    #[error("wire: {0}")]
    Wire(String),
    /// A store could not be created.
    #[error("store: {0}")]
    Store(#[from] ferrolm_store::StoreError),
}

/// A deterministic environment: `clock` and a ChaCha20 generator seeded with `seed`.
pub fn test_env(seed: u64, clock: &ManualClock) -> Env {
    Env::new(clock.clone(), rand_chacha::ChaCha20Rng::seed_from_u64(seed))
}

/// A new in-memory store (small KDF parameters: tests only). Keep a clone of the backend to
/// reopen the same data later.
pub fn memory_store(backend: MemoryBackend) -> Result<MemoryStore, DriverError> {
    let kdf = KdfParams::new(64, 1, 1).map_err(DriverError::Store)?;
    Ok(MemoryStore::open_or_create(backend, &StoreSecret::key([7; 32]), kdf)?)
}

/// Sends one request over the wire and reports the answer to the machine.
pub fn send<B: Backend>(
    hs: &mut Homeserver,
    machine: &mut OlmMachine<B>,
    request: &OutgoingRequest,
) -> Result<ResponseOutcome, DriverError> {
    let user = machine.user_id().to_owned();
    let device = machine.device_id().to_owned();
    let http = request.to_http_request("https://test.server", "token").map_err(|e| DriverError::Wire(e.to_string()))?;
    let response = hs.handle(&user, &device, http);
    if response.status() != 200 {
        let body = String::from_utf8_lossy(response.body()).into_owned();
        let value: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        return Err(DriverError::Homeserver(HsError {
            status: response.status().as_u16(),
            errcode: value.get("errcode").and_then(|v| v.as_str()).unwrap_or_default().to_owned(),
            error: value.get("error").and_then(|v| v.as_str()).unwrap_or_default().to_owned(),
        }));
    }
    Ok(machine.mark_request_as_sent_json(&request.request_id, response.body())?)
}

/// Runs [`OlmMachine::bootstrap_cross_signing`] to the end: sends its requests in order,
/// answering the homeserver's user-interactive authentication challenge (if any) with a
/// password stage naming its session, as an app would after asking the user. Returns the
/// outcomes of the signing keys upload and of the signature upload.
pub fn bootstrap_cross_signing<B: Backend>(
    hs: &mut Homeserver,
    machine: &mut OlmMachine<B>,
    reset: bool,
) -> Result<(ResponseOutcome, ResponseOutcome), DriverError> {
    let bootstrap = machine.bootstrap_cross_signing(reset)?;
    if let Some(upload) = &bootstrap.keys_upload {
        send(hs, machine, upload)?;
    }
    let upload = &bootstrap.signing_keys_upload;
    let first = match send(hs, machine, upload) {
        Ok(outcome) => outcome,
        Err(DriverError::Homeserver(HsError { status: 401, .. })) => {
            let session = hs.last_uia_session().ok_or_else(|| DriverError::Wire("no UIA session".into()))?;
            let auth = password_auth(machine.user_id(), &session)?;
            send(hs, machine, &upload.with_auth(auth))?
        }
        Err(e) => return Err(e),
    };
    let second = send(hs, machine, &bootstrap.signature_upload)?;
    Ok((first, second))
}

/// A `m.login.password` stage for `user`, in the UIA `session`.
pub fn password_auth(user: &ruma::UserId, session: &str) -> Result<ruma::api::client::uiaa::AuthData, DriverError> {
    let data = serde_json::json!({"identifier": {"type": "m.id.user", "user": user}, "password": "password"});
    let serde_json::Value::Object(data) = data else { return Err(DriverError::Wire("auth data".into())) };
    ruma::api::client::uiaa::AuthData::new("m.login.password", Some(session.to_owned()), data)
        .map_err(|e| DriverError::Wire(e.to_string()))
}

/// Sends every outgoing request, again until the machine has none left (at most 8 rounds);
/// returns every response's outcome.
pub fn run_requests<B: Backend>(
    hs: &mut Homeserver,
    machine: &mut OlmMachine<B>,
) -> Result<Vec<ResponseOutcome>, DriverError> {
    let mut outcomes = Vec::new();
    for _ in 0..8 {
        let requests = machine.outgoing_requests()?;
        if requests.is_empty() {
            break;
        }
        for request in &requests {
            outcomes.push(send(hs, machine, request)?);
        }
    }
    Ok(outcomes)
}

/// Syncs once, from the machine's saved token, through the JSON a real server sends.
pub fn sync<B: Backend>(hs: &mut Homeserver, machine: &mut OlmMachine<B>) -> Result<SyncOutcome, DriverError> {
    let changes = fetch_sync(hs, machine)?;
    Ok(machine.receive_sync_changes(changes)?)
}

/// Fetches a sync response for the machine (from its saved token) without processing it.
pub fn fetch_sync<B: Backend>(hs: &mut Homeserver, machine: &OlmMachine<B>) -> Result<SyncChanges, DriverError> {
    Ok(sync_changes(fetch_sync_response(hs, machine)?))
}

/// The room timeline events of a sync, by room.
pub type Timelines = BTreeMap<OwnedRoomId, Vec<Raw<AnySyncTimelineEvent>>>;

/// Syncs once and also returns the joined rooms' new timeline events.
pub fn sync_with_timelines<B: Backend>(
    hs: &mut Homeserver,
    machine: &mut OlmMachine<B>,
) -> Result<(SyncOutcome, Timelines), DriverError> {
    let response = fetch_sync_response(hs, machine)?;
    let timelines: Timelines =
        response.rooms.join.iter().map(|(id, room)| (id.clone(), room.timeline.events.clone())).collect();
    Ok((machine.receive_sync_changes(sync_changes(response))?, timelines))
}

fn fetch_sync_response<B: Backend>(
    hs: &mut Homeserver,
    machine: &OlmMachine<B>,
) -> Result<sync_events::v3::Response, DriverError> {
    let since = machine.sync_token()?;
    let body = hs.sync_json(machine.user_id(), machine.device_id(), since.as_deref())?;
    sync_events::v3::Response::try_from_http_response(http::Response::new(body))
        .map_err(|e| DriverError::Wire(e.to_string()))
}

/// The machine's part of a sync response.
pub fn sync_changes(response: sync_events::v3::Response) -> SyncChanges {
    SyncChanges {
        to_device_events: response.to_device.events,
        changed_devices: response.device_lists.changed,
        left_devices: response.device_lists.left,
        one_time_key_counts: response.device_one_time_keys_count,
        unused_fallback_key_types: response.device_unused_fallback_key_types,
        next_batch: response.next_batch,
    }
}

/// A test device: a machine on an in-memory store, its clock, and the store's backend (to
/// reopen it later, as after a crash).
#[derive(Debug)]
pub struct TestDevice {
    /// The machine.
    pub machine: OlmMachine<MemoryBackend>,
    /// The store's backend (clones share the data).
    pub backend: MemoryBackend,
    /// The clock.
    pub clock: ManualClock,
}

impl TestDevice {
    /// Logs `user`'s `device` in on `hs` and opens its machine at time `now_ms`, seeded with `seed`.
    pub fn new(hs: &mut Homeserver, user: &str, device: &str, seed: u64, now_ms: u64) -> Result<Self, DriverError> {
        let user = OwnedUserId::try_from(user).map_err(|e| DriverError::Wire(e.to_string()))?;
        let device = OwnedDeviceId::from(device);
        hs.login(&user, &device);
        let backend = MemoryBackend::new();
        let clock = ManualClock::new(now_ms);
        let machine = OlmMachine::open(user, device, memory_store(backend.clone())?, test_env(seed, &clock))?;
        Ok(Self { machine, backend, clock })
    }

    /// Drops the machine without anything else, and opens a new one on the same store, as
    /// after a crash or restart (with a new seed: a restarted process draws new randomness).
    pub fn restart(self, seed: u64) -> Result<Self, DriverError> {
        let user = self.machine.user_id().to_owned();
        let device = self.machine.device_id().to_owned();
        let Self { machine, backend, clock } = self;
        drop(machine);
        let machine = OlmMachine::open(user, device, memory_store(backend.clone())?, test_env(seed, &clock))?;
        Ok(Self { machine, backend, clock })
    }

    /// Sends the machine's requests and syncs, until quiet (at most `rounds` times).
    pub fn settle(&mut self, hs: &mut Homeserver, rounds: usize) -> Result<Vec<SyncOutcome>, DriverError> {
        let mut outcomes = Vec::new();
        for _ in 0..rounds {
            run_requests(hs, &mut self.machine)?;
            outcomes.push(sync(hs, &mut self.machine)?);
        }
        run_requests(hs, &mut self.machine)?;
        Ok(outcomes)
    }
}
