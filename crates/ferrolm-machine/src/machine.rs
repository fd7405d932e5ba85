//! [`OlmMachine`]: the thin glue. Each public call is one step: copy the state, call the
//! modules, commit one change set, adopt the new state. A failed commit leaves both the store
//! and the machine as they were.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ferrolm::olm::IdentityKeys;
use ferrolm_store::{AccountRecord, Backend, Changes, OutgoingToDevice, Store, TrackedUser};
use ruma::api::client::to_device::send_event_to_device;
use ruma::events::{AnyToDeviceEventContent, ToDeviceEventType};
use ruma::serde::Raw;
use ruma::to_device::DeviceIdOrAllDevices;
use ruma::{OneTimeKeyAlgorithm, OwnedDeviceId, OwnedTransactionId, OwnedUserId};
use serde_json::{Map, Value};

use crate::adapt::{device_to_store, olm_session_id, user_from_store, user_to_store};
use crate::cache::CachedStore;
use crate::devices::{self, Device, DeviceTracker, OwnIdentity, QueriedUsers};
use crate::env::Env;
use crate::error::MachineError;
use crate::identities::{self, DeviceTrust};
use crate::olm_channel::{
    self, DecryptEffects, DeviceKey, OlmChannel, Receiver, Sender, SenderDeviceSource, Sessions, ToDeviceEnvelope,
    ToDeviceError,
};
use crate::own_device::{self, OwnDevice, UploadContents};
use crate::requests::{IncomingResponse, OutgoingRequest, Request};
use crate::sync::{ResponseOutcome, SyncChanges, SyncOutcome, ToDeviceOutcome};

mod backup;
mod cross_signing;
mod key_sharing;
mod rooms;
mod secrets;
mod verification;

pub use backup::NewBackupVersion;
pub use cross_signing::{CrossSigningBootstrap, CrossSigningStatus, OwnSigner};
pub use rooms::RoomKeyShare;
pub use secrets::{NewSecretStorageKey, SecretImport, SecretImportFailure, SecretStorageSetup};
pub use verification::{RoomVerificationMessage, VerificationStep};

/// To-device event types that carry keys or secrets: refused unless Olm-encrypted.
const KEY_CARRYING_TYPES: [&str; 4] = ["m.room_key", "m.forwarded_room_key", "m.secret.send", "m.dummy"];

/// The end-to-end encryption state machine of one device.
///
/// Sans-IO: it produces requests ([`OlmMachine::outgoing_requests`]) and consumes their
/// responses ([`OlmMachine::mark_request_as_sent`]) and sync responses
/// ([`OlmMachine::receive_sync_changes`]); the client does the HTTP. Every call that changes
/// state commits one change set to the store; the clock and the randomness come from the
/// [`Env`]. See the [crate documentation](crate) for the request loop.
///
/// ```
/// use ferrolm_machine::ruma::{OwnedDeviceId, OwnedUserId};
/// use ferrolm_machine::{Env, OlmMachine, RequestKind};
/// use ferrolm_store::{KdfParams, MemoryBackend, MemoryStore, StoreSecret};
///
/// let store = MemoryStore::create(MemoryBackend::new(), &StoreSecret::key([1; 32]), KdfParams::new(64, 1, 1)?)?;
/// let user = OwnedUserId::try_from("@alice:example.org")?;
/// let mut machine = OlmMachine::open(user, OwnedDeviceId::from("ALICEPHONE"), store, Env::system())?;
///
/// // A new device: its keys go up first, and its own user's devices are queried.
/// let kinds: Vec<RequestKind> = machine.outgoing_requests()?.iter().map(|r| r.kind()).collect();
/// assert_eq!(kinds, [RequestKind::KeysUpload, RequestKind::KeysQuery]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct OlmMachine<B: Backend> {
    user_id: OwnedUserId,
    device_id: OwnedDeviceId,
    store: CachedStore<B>,
    env: Env,
    state: State,
    /// Device trust verdicts computed since the last change of the identities or devices
    /// they depend on (signature checks are not repeated for every room event).
    trust_cache: BTreeMap<DeviceKey, DeviceTrust>,
    /// Verification flows: in memory only (a restart cancels them by timeout on the other
    /// side); outside `State` because SAS secrets are not cloned into each step.
    verifications: crate::verification::Verifications,
}

#[derive(Debug, Clone)]
struct State {
    own: OwnDevice,
    tracker: DeviceTracker,
    channel: OlmChannel,
    pending: Vec<Pending>,
    /// The server-side backup keys are uploaded to.
    backup: crate::backup::BackupState,
    secrets: secrets::SecretsState,
}

#[derive(Debug, Clone)]
struct Pending {
    /// Shared, not copied, by the working copy each step makes of the state: a share to
    /// thousands of devices queues megabytes of to-device bodies.
    request: Arc<OutgoingRequest>,
    purpose: Purpose,
    /// Whether `outgoing_requests` lists it (claims asked for by the app are returned to it
    /// directly).
    listed: bool,
}

#[derive(Debug, Clone)]
enum Purpose {
    KeysUpload(UploadContents),
    KeysQuery(QueriedUsers),
    KeysClaim(Vec<DeviceKey>),
    ToDevice,
    KeysChanges,
    /// The cross-signing keys uploaded: the own identity once the upload succeeded.
    SigningKeysUpload(Box<ferrolm_store::IdentityRecord>),
    SignatureUpload,
    Backup(crate::backup::BackupPurpose),
}

/// One step's working copy of the state, and the change set it builds.
struct Step {
    state: State,
    changes: Changes,
    sessions: Sessions,
    account_changed: bool,
}

/// What [`OlmMachine::encrypt_to_device`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToDeviceEncryption {
    /// The id of the queued to-device request ([`OlmMachine::outgoing_requests`] lists it),
    /// if any device got a message.
    pub request_id: Option<String>,
    /// Devices with no Olm session (call [`OlmMachine::get_missing_sessions`] first).
    pub without_session: Vec<(OwnedUserId, OwnedDeviceId)>,
    /// Devices not known, deleted, or without Olm support.
    pub unknown_devices: Vec<(OwnedUserId, OwnedDeviceId)>,
}

impl<B: Backend> OlmMachine<B> {
    /// Opens the machine of `user_id`'s device `device_id` on `store`. A store without an
    /// account gets a new one (identity keys, a first fallback key), saved before this
    /// returns; a store holding another user's or device's account is refused.
    pub fn open(
        user_id: OwnedUserId,
        device_id: OwnedDeviceId,
        store: Store<B>,
        mut env: Env,
    ) -> Result<Self, MachineError> {
        let mut store = CachedStore::new(store);
        let mut changes = Changes::default();
        let own = match store.account()? {
            Some(record) => {
                if record.user_id.as_str() != user_id.as_str() || record.device_id.as_str() != device_id.as_str() {
                    return Err(MachineError::AccountMismatch {
                        user: user_id.to_string(),
                        device: device_id.to_string(),
                        stored_user: record.user_id.to_string(),
                        stored_device: record.device_id.to_string(),
                    });
                }
                // A store written before the publication time was kept (schema 1) has a previous
                // fallback key without it: count its hour from now, which only keeps it longer.
                let previous_fallback_since_ms = record
                    .fallback_key_published_ms
                    .or_else(|| own_device::has_previous_fallback_key(&record.account).then(|| env.now_ms()));
                OwnDevice {
                    account: record.account,
                    device_keys_uploaded: record.device_keys_uploaded,
                    server_one_time_key_count: None,
                    previous_fallback_since_ms,
                }
            }
            None => {
                let account = own_device::new_account(env.rng());
                changes.account = Some(AccountRecord {
                    user_id: user_to_store(&user_id),
                    device_id: device_to_store(&device_id),
                    account: account.clone(),
                    device_keys_uploaded: false,
                    fallback_key_published_ms: None,
                });
                OwnDevice {
                    account,
                    device_keys_uploaded: false,
                    server_one_time_key_count: None,
                    previous_fallback_since_ms: None,
                }
            }
        };
        let mut tracker = DeviceTracker::default();
        if !store.tracked_users()?.iter().any(|t| t.user_id.as_str() == user_id.as_str()) {
            changes.tracked_users.push(TrackedUser { user_id: user_to_store(&user_id), dirty: true });
            tracker.mark_dirty(&user_id);
        }
        if !changes.is_empty() {
            store.save_changes(&changes)?;
        }
        // To-device requests encrypted before a restart and not yet sent go out again, with
        // their transaction ids (the homeserver ignores a second delivery).
        // Room key shares are saved as their key and recipients and encrypted again below.
        let mut pending = Vec::new();
        let mut room_key_shares = Vec::new();
        for saved in store.outgoing_to_device()? {
            if saved.event_type == rooms::SAVED_ROOM_KEY_SHARE {
                room_key_shares.push(saved);
            } else {
                pending.push(Pending {
                    request: Arc::new(saved_to_device(&saved)?),
                    purpose: Purpose::ToDevice,
                    listed: true,
                });
            }
        }
        let backup = crate::backup::BackupState::load(&store)?;
        let state =
            State { own, tracker, channel: OlmChannel::default(), pending, backup, secrets: Default::default() };
        let mut machine = Self {
            user_id,
            device_id,
            store,
            env,
            state,
            trust_cache: BTreeMap::new(),
            verifications: Default::default(),
        };
        machine.resend_room_key_shares(room_key_shares)?;
        machine.resume_signature_uploads()?;
        Ok(machine)
    }

    /// The machine's user.
    pub fn user_id(&self) -> &ruma::UserId {
        &self.user_id
    }

    /// The machine's device.
    pub fn device_id(&self) -> &ruma::DeviceId {
        &self.device_id
    }

    /// The device's identity keys.
    pub fn identity_keys(&self) -> IdentityKeys {
        self.state.own.account.identity_keys()
    }

    /// The device's signed device keys (the JSON `/keys/upload` publishes).
    pub fn device_keys(&self) -> Result<Map<String, Value>, MachineError> {
        own_device::device_keys(&self.state.own.account, self.user_id.as_str(), self.device_id.as_str())
    }

    /// The store (read-only: every write goes through a machine step).
    pub fn store(&self) -> &Store<B> {
        &self.store
    }

    /// Closes the machine and gives the store back.
    pub fn into_store(self) -> Store<B> {
        self.store.into_inner()
    }

    /// The sync token of the last [`SyncChanges`] processed: the `since` of the next sync.
    pub fn sync_token(&self) -> Result<Option<String>, MachineError> {
        Ok(self.store.sync_token()?)
    }

    /// A stored device.
    pub fn device(&self, user_id: &ruma::UserId, device_id: &ruma::DeviceId) -> Result<Option<Device>, MachineError> {
        Ok(self.store.known_device(&user_to_store(user_id), &device_to_store(device_id))?)
    }

    /// A user's stored devices (deleted ones included, marked).
    pub fn devices(&self, user_id: &ruma::UserId) -> Result<Vec<Device>, MachineError> {
        Ok(self.store.known_devices(&user_to_store(user_id))?)
    }

    /// The tracked users, and whether each is due for a keys query.
    pub fn tracked_users(&self) -> Result<Vec<(OwnedUserId, bool)>, MachineError> {
        self.store.tracked_users()?.iter().map(|t| Ok((user_from_store(&t.user_id)?, t.dirty))).collect()
    }

    fn begin(&self) -> Step {
        Step {
            state: self.state.clone(),
            changes: Changes::default(),
            sessions: Sessions::default(),
            account_changed: false,
        }
    }

    fn commit(&mut self, step: Step) -> Result<(), MachineError> {
        let Step { state, mut changes, sessions, account_changed } = step;
        sessions.write(&mut changes);
        if account_changed {
            changes.account = Some(AccountRecord {
                user_id: user_to_store(&self.user_id),
                device_id: device_to_store(&self.device_id),
                account: state.own.account.clone(),
                device_keys_uploaded: state.own.device_keys_uploaded,
                fallback_key_published_ms: state.own.previous_fallback_since_ms,
            });
        }
        if !changes.is_empty() {
            self.store.save_changes(&changes)?;
            self.forget_trust(&changes);
        }
        self.state = state;
        Ok(())
    }

    fn new_request_id(&mut self) -> String {
        self.env.random_hex(16)
    }

    /// Starts tracking `users` (the members of encrypted rooms): each new one is queried.
    pub fn update_tracked_users(&mut self, users: &[OwnedUserId]) -> Result<(), MachineError> {
        let mut step = self.begin();
        let tracked: BTreeSet<String> =
            self.store.tracked_users()?.into_iter().map(|t| t.user_id.as_str().to_owned()).collect();
        let mut added = BTreeSet::new();
        for user in users {
            if !tracked.contains(user.as_str()) && added.insert(user.clone()) {
                step.changes.tracked_users.push(TrackedUser { user_id: user_to_store(user), dirty: true });
                step.state.tracker.mark_dirty(user);
            }
        }
        self.commit(step)
    }

    /// The requests to send now: key uploads (one-time keys generated and saved first),
    /// key queries for dirty tracked users, claims for wedged sessions, queued to-device
    /// messages. Requests not yet answered are listed again, with the same ids and bodies.
    pub fn outgoing_requests(&mut self) -> Result<Vec<OutgoingRequest>, MachineError> {
        let mut step = self.begin();
        let now = self.env.now_ms();
        self.queue_keys_upload(&mut step)?;
        let tracked = self.store.tracked_users()?;
        for (request, queried) in step.state.tracker.queries_due(&tracked) {
            let request_id = self.new_request_id();
            step.state.pending.push(Pending {
                request: Arc::new(OutgoingRequest { request_id, request: Request::KeysQuery(request) }),
                purpose: Purpose::KeysQuery(queried),
                listed: true,
            });
        }
        let channel = &step.state.channel;
        let wedged: Vec<DeviceKey> = channel
            .wedged
            .keys()
            .filter(|k| !channel.claims_in_flight.contains(*k) && channel.backoff.may_claim(k, now))
            .cloned()
            .collect();
        if !wedged.is_empty() {
            let request_id = self.new_request_id();
            step.state.channel.claims_in_flight.extend(wedged.iter().cloned());
            step.state.pending.push(Pending {
                request: Arc::new(OutgoingRequest {
                    request_id,
                    request: Request::KeysClaim(olm_channel::claim_request(&wedged)),
                }),
                purpose: Purpose::KeysClaim(wedged),
                listed: true,
            });
        }
        self.commit(step)?;
        Ok(self.state.pending.iter().filter(|p| p.listed).map(|p| OutgoingRequest::clone(&p.request)).collect())
    }

    /// Queues a keys upload if something is not yet on the server and no upload is pending.
    fn queue_keys_upload(&mut self, step: &mut Step) -> Result<(), MachineError> {
        if !step.state.pending.iter().any(|p| matches!(p.purpose, Purpose::KeysUpload(_))) {
            // New one-time keys are in this step's change set, committed before the upload
            // is returned: a crash before the upload re-uploads the same keys.
            step.account_changed |= own_device::prepare_keys(&mut step.state.own, self.env.rng());
            if let Some((request, contents)) =
                own_device::upload_request(&step.state.own, self.user_id.as_str(), self.device_id.as_str())?
            {
                let request_id = self.new_request_id();
                step.state.pending.push(Pending {
                    request: Arc::new(OutgoingRequest { request_id, request: Request::KeysUpload(request) }),
                    purpose: Purpose::KeysUpload(contents),
                    listed: true,
                });
            }
        }
        Ok(())
    }

    /// Reads a response body (JSON) for the request `request_id` and applies it
    /// ([`OlmMachine::mark_request_as_sent`]).
    pub fn mark_request_as_sent_json(
        &mut self,
        request_id: &str,
        body: &[u8],
    ) -> Result<ResponseOutcome, MachineError> {
        let kind = self
            .state
            .pending
            .iter()
            .find(|p| p.request.request_id == request_id)
            .map(|p| p.request.kind())
            .ok_or_else(|| MachineError::UnknownRequest(request_id.to_owned()))?;
        let response = IncomingResponse::from_json(kind, body)?;
        self.mark_request_as_sent(request_id, response)
    }

    /// Applies the (successful) response to the request `request_id`.
    pub fn mark_request_as_sent(
        &mut self,
        request_id: &str,
        response: IncomingResponse,
    ) -> Result<ResponseOutcome, MachineError> {
        let mut step = self.begin();
        let now = self.env.now_ms();
        let index = step
            .state
            .pending
            .iter()
            .position(|p| p.request.request_id == request_id)
            .ok_or_else(|| MachineError::UnknownRequest(request_id.to_owned()))?;
        let pending = step.state.pending.remove(index);
        let expected = pending.request.kind();
        if expected != response.kind() {
            return Err(MachineError::ResponseKindMismatch {
                request_id: request_id.to_owned(),
                expected,
                got: response.kind(),
            });
        }
        let mut outcome = ResponseOutcome::default();
        match (pending.purpose, response) {
            (Purpose::KeysUpload(contents), IncomingResponse::KeysUpload(response)) => {
                let count = response
                    .one_time_key_counts
                    .get(&OneTimeKeyAlgorithm::SignedCurve25519)
                    .map(|c| u64::from(*c))
                    .unwrap_or(0);
                own_device::mark_uploaded(&mut step.state.own, &contents, Some(count), now);
                step.account_changed = true;
            }
            (Purpose::KeysQuery(queried), IncomingResponse::KeysQuery(response)) => {
                let keys = step.state.own.account.identity_keys();
                let own = OwnIdentity {
                    user_id: &self.user_id,
                    device_id: &self.device_id,
                    curve25519: keys.curve25519,
                    ed25519: keys.ed25519,
                };
                outcome.device_events = devices::process_keys_query(
                    &self.store,
                    &own,
                    &mut step.state.tracker,
                    &queried,
                    &response,
                    &mut step.changes,
                )?;
                let users: Vec<OwnedUserId> = queried.0.iter().map(|(u, _)| u.clone()).collect();
                outcome.identity_events =
                    identities::process_keys_query(&self.store, &self.user_id, &users, &response, &mut step.changes)?;
            }
            (Purpose::KeysClaim(claimed), IncomingResponse::KeysClaim(response)) => {
                let result = olm_channel::process_claim(
                    &self.store,
                    &step.state.own.account,
                    &mut step.state.channel,
                    &mut step.sessions,
                    &claimed,
                    &response,
                    self.env.rng(),
                    now,
                )?;
                outcome.sessions_created = result.created.len();
                outcome.failed_claims = result.failed;
                // Recovery of wedged sessions: an `m.dummy` over each new session.
                let mut dummies = Vec::new();
                for (key, curve, session_id) in result.created {
                    if step.state.channel.wedged.remove(&key).is_some() {
                        dummies.push((key, curve, session_id));
                    }
                }
                if !dummies.is_empty() {
                    self.queue_dummies(&mut step, &dummies, now)?;
                    for (_, curve, _) in &dummies {
                        self.rerequest_recovered(&mut step, curve)?;
                    }
                }
            }
            (Purpose::KeysChanges, IncomingResponse::KeysChanges(response)) => {
                self.apply_device_list_changes(&mut step, &response.changed, &response.left)?;
            }
            (Purpose::ToDevice, IncomingResponse::ToDevice(_)) => {
                step.changes.deletions.outgoing_to_device.push(request_id.to_owned());
            }
            (Purpose::SigningKeysUpload(identity), IncomingResponse::SigningKeysUpload(_)) => {
                self.signing_keys_published(&mut step, *identity);
            }
            (Purpose::SignatureUpload, IncomingResponse::SignatureUpload(response)) => {
                outcome.signature_failures = cross_signing::signature_failures(&response);
            }
            (Purpose::Backup(purpose), response) => self.backup_response(&mut step, purpose, response)?,
            _ => return Err(MachineError::Internal("request purpose and kind disagree".into())),
        }
        self.commit(step)?;
        Ok(outcome)
    }

    /// Encrypts an `m.dummy` for each recovered device with its new session.
    fn queue_dummies(
        &mut self,
        step: &mut Step,
        dummies: &[(DeviceKey, ferrolm::types::Curve25519PublicKey, String)],
        now: u64,
    ) -> Result<(), MachineError> {
        let device_keys =
            own_device::device_keys(&step.state.own.account, self.user_id.as_str(), self.device_id.as_str())?;
        let sender = Sender {
            user_id: &self.user_id,
            device_id: &self.device_id,
            account: &step.state.own.account,
            device_keys: &device_keys,
        };
        let mut messages: send_event_to_device::v3::Messages = BTreeMap::new();
        for ((user, device_id), curve, session_id) in dummies {
            let Some(device) = self.store.known_device(&user_to_store(user), &device_to_store(device_id))? else {
                continue;
            };
            let list = step.sessions.with(&self.store, *curve)?;
            let Some(record) = list.iter_mut().find(|s| olm_session_id(&s.session) == *session_id) else { continue };
            let content = olm_channel::encrypt(
                &sender,
                record,
                &device,
                "m.dummy",
                &Value::Object(Map::new()),
                self.env.rng(),
                now,
            )?;
            step.sessions.touch(*curve, session_id.clone());
            messages
                .entry(user.clone())
                .or_default()
                .insert(DeviceIdOrAllDevices::DeviceId(device_id.clone()), raw_content(&content)?);
        }
        if !messages.is_empty() {
            let request_id = self.new_request_id();
            push_to_device(step, request_id, messages)?;
        }
        Ok(())
    }

    /// Opens Olm sessions with every device of `users` that has none: the claim request to
    /// send (report its answer with [`OlmMachine::mark_request_as_sent`]), or `None` if no
    /// session is missing. Devices whose recent claims failed wait out their backoff.
    pub fn get_missing_sessions(&mut self, users: &[OwnedUserId]) -> Result<Option<OutgoingRequest>, MachineError> {
        let mut step = self.begin();
        let now = self.env.now_ms();
        let devices = olm_channel::missing_sessions(
            &self.store,
            &step.state.channel,
            &self.user_id,
            &self.device_id,
            users,
            now,
        )?;
        if devices.is_empty() {
            return Ok(None);
        }
        let request_id = self.new_request_id();
        step.state.channel.claims_in_flight.extend(devices.iter().cloned());
        let request = OutgoingRequest { request_id, request: Request::KeysClaim(olm_channel::claim_request(&devices)) };
        step.state.pending.push(Pending {
            request: Arc::new(request.clone()),
            purpose: Purpose::KeysClaim(devices),
            listed: false,
        });
        self.commit(step)?;
        Ok(Some(request))
    }

    /// Encrypts one to-device event for each of `devices` over Olm and queues the request
    /// ([`OlmMachine::outgoing_requests`] lists it). Session states are saved in the same
    /// change set.
    pub fn encrypt_to_device(
        &mut self,
        devices: &[(OwnedUserId, OwnedDeviceId)],
        event_type: &str,
        content: &Value,
    ) -> Result<ToDeviceEncryption, MachineError> {
        let mut step = self.begin();
        let now = self.env.now_ms();
        let device_keys =
            own_device::device_keys(&step.state.own.account, self.user_id.as_str(), self.device_id.as_str())?;
        let mut outcome = ToDeviceEncryption::default();
        let mut messages: send_event_to_device::v3::Messages = BTreeMap::new();
        {
            let sender = Sender {
                user_id: &self.user_id,
                device_id: &self.device_id,
                account: &step.state.own.account,
                device_keys: &device_keys,
            };
            for (user, device_id) in devices {
                let device = self
                    .store
                    .known_device(&user_to_store(user), &device_to_store(device_id))?
                    .filter(|d| !d.deleted && d.supports_olm());
                let Some(device) = device else {
                    outcome.unknown_devices.push((user.clone(), device_id.clone()));
                    continue;
                };
                let list = step.sessions.with(&self.store, device.curve25519_key)?;
                let Some(record) = olm_channel::session_for_sending(list).and_then(|i| list.get_mut(i)) else {
                    outcome.without_session.push((user.clone(), device_id.clone()));
                    continue;
                };
                let content = olm_channel::encrypt(&sender, record, &device, event_type, content, self.env.rng(), now)?;
                let id = olm_session_id(&record.session);
                step.sessions.touch(device.curve25519_key, id);
                messages
                    .entry(user.clone())
                    .or_default()
                    .insert(DeviceIdOrAllDevices::DeviceId(device_id.clone()), raw_content(&content)?);
            }
        }
        if !messages.is_empty() {
            let request_id = self.new_request_id();
            outcome.request_id = Some(request_id.clone());
            push_to_device(&mut step, request_id, messages)?;
        }
        self.commit(step)?;
        Ok(outcome)
    }

    /// Processes the end-to-end-encryption parts of a sync response, in one change set with
    /// the new sync token: a crash before the commit leaves the old token, so the server
    /// sends the same to-device events again.
    pub fn receive_sync_changes(&mut self, sync: SyncChanges) -> Result<SyncOutcome, MachineError> {
        let mut step = self.begin();
        let now = self.env.now_ms();
        self.apply_device_list_changes(&mut step, &sync.changed_devices, &sync.left_devices)?;
        if let Some(count) = sync.one_time_key_counts.get(&OneTimeKeyAlgorithm::SignedCurve25519) {
            step.state.own.server_one_time_key_count = Some(u64::from(*count));
        }
        let upload_pending = step.state.pending.iter().any(|p| matches!(p.purpose, Purpose::KeysUpload(_)));
        if !upload_pending
            && own_device::needs_new_fallback_key(&step.state.own, sync.unused_fallback_key_types.as_deref())
        {
            own_device::rotate_fallback_key(&mut step.state.own, self.env.rng());
            step.account_changed = true;
        }

        let mut outcome = SyncOutcome::default();
        for raw in &sync.to_device_events {
            let mut result = self.receive_to_device(&mut step, raw, now)?;
            self.receive_secret_events(&mut step, &result, &mut outcome)?;
            self.receive_room_key_events(&mut step, &mut result, &mut outcome)?;
            self.receive_verification_event(&mut step, &mut result, &mut outcome)?;
            outcome.to_device.push(result);
        }
        self.expire_verifications(&mut step, &mut outcome)?;

        if own_device::previous_fallback_key_expired(&step.state.own, now) {
            step.account_changed |= own_device::forget_previous_fallback_key(&mut step.state.own);
        }
        step.changes.sync_token = Some(sync.next_batch);
        self.commit(step)?;
        Ok(outcome)
    }

    /// Tracked users whose devices changed are marked outdated (queried again); those who no
    /// longer share a room are no longer tracked.
    fn apply_device_list_changes(
        &mut self,
        step: &mut Step,
        changed: &[OwnedUserId],
        left: &[OwnedUserId],
    ) -> Result<(), MachineError> {
        let tracked: BTreeSet<String> =
            self.store.tracked_users()?.into_iter().map(|t| t.user_id.as_str().to_owned()).collect();
        for user in changed {
            if tracked.contains(user.as_str()) {
                step.changes.tracked_users.push(TrackedUser { user_id: user_to_store(user), dirty: true });
                step.state.tracker.mark_dirty(user);
            }
        }
        for user in left {
            if tracked.contains(user.as_str()) && *user != self.user_id {
                step.changes.tracked_users.retain(|t| t.user_id.as_str() != user.as_str());
                step.changes.deletions.tracked_users.push(user_to_store(user));
            }
        }
        Ok(())
    }

    /// For a client whose sync ran ahead of the machine (its token `to` is newer than
    /// [`OlmMachine::sync_token`], e.g. a sync whose device lists never reached the machine):
    /// a `/keys/changes` request from the machine's token to `to`. Its answer marks the
    /// tracked users whose devices changed in between as outdated. `None` when the machine
    /// has no token yet (its first sync brings every change) or already is at `to`. Returned
    /// to the caller, not listed by [`OlmMachine::outgoing_requests`].
    pub fn request_key_changes(&mut self, to: &str) -> Result<Option<OutgoingRequest>, MachineError> {
        let Some(from) = self.store.sync_token()? else { return Ok(None) };
        if from == to {
            return Ok(None);
        }
        let mut step = self.begin();
        let request = OutgoingRequest {
            request_id: self.new_request_id(),
            request: Request::KeysChanges(ruma::api::client::keys::get_key_changes::v3::Request::new(
                from,
                to.to_owned(),
            )),
        };
        step.state.pending.push(Pending {
            request: Arc::new(request.clone()),
            purpose: Purpose::KeysChanges,
            listed: false,
        });
        self.commit(step)?;
        Ok(Some(request))
    }

    fn receive_to_device(
        &mut self,
        step: &mut Step,
        raw: &Raw<ruma::events::AnyToDeviceEvent>,
        now: u64,
    ) -> Result<ToDeviceOutcome, MachineError> {
        let envelope: ToDeviceEnvelope = match serde_json::from_str(raw.json().get()) {
            Ok(e) => e,
            Err(e) => {
                return Ok(ToDeviceOutcome::Refused {
                    sender: None,
                    sender_key: None,
                    error: ToDeviceError::Malformed(e.to_string()),
                });
            }
        };
        if envelope.event_type != "m.room.encrypted" {
            if KEY_CARRYING_TYPES.contains(&envelope.event_type.as_str()) {
                return Ok(ToDeviceOutcome::Refused {
                    sender: Some(envelope.sender),
                    sender_key: None,
                    error: ToDeviceError::Unencrypted(envelope.event_type),
                });
            }
            return Ok(ToDeviceOutcome::Plaintext(raw.clone()));
        }
        let sender_key = envelope
            .content
            .get("sender_key")
            .and_then(Value::as_str)
            .and_then(|k| ferrolm::types::Curve25519PublicKey::from_base64(k).ok());
        let mut effects = DecryptEffects::default();
        let result = {
            let mut receiver = Receiver { user_id: &self.user_id, account: &mut step.state.own.account };
            olm_channel::decrypt(&self.store, &mut receiver, &mut step.sessions, &envelope, now, &mut effects)?
        };
        step.account_changed |= effects.account_changed;
        if let (Some(key), Ok(sender)) = (effects.wedged, OwnedUserId::try_from(envelope.sender.as_str())) {
            self.start_recovery(step, &sender, key, now)?;
        }
        if let Ok(event) = &result {
            // A sender device not known yet: the sender's device list may be stale.
            if event.source != SenderDeviceSource::KnownDevice {
                let tracked = self.store.tracked_users()?;
                if tracked.iter().any(|t| t.user_id.as_str() == event.sender.as_str()) {
                    step.changes.tracked_users.push(TrackedUser { user_id: user_to_store(&event.sender), dirty: true });
                    step.state.tracker.mark_dirty(&event.sender);
                }
            }
        }
        Ok(match result {
            Ok(event) => ToDeviceOutcome::Decrypted(event),
            Err(error) => ToDeviceOutcome::Refused { sender: Some(envelope.sender), sender_key, error },
        })
    }

    /// Marks the device owning `key` for a new session and an `m.dummy`, if the rate limit
    /// allows.
    fn start_recovery(
        &mut self,
        step: &mut Step,
        sender: &ruma::UserId,
        key: ferrolm::types::Curve25519PublicKey,
        now: u64,
    ) -> Result<(), MachineError> {
        let Some(device) = olm_channel::find_device(&self.store, sender, &key)? else { return Ok(()) };
        let sessions = step.sessions.with(&self.store, key)?;
        let started = step.state.channel.recovery_started.get(&key).copied();
        if olm_channel::may_recover(sessions, started, now) {
            step.state.channel.recovery_started.insert(key, now);
            step.state.channel.wedged.insert((device.user_id, device.device_id), key);
        }
        Ok(())
    }
}

fn raw_content(content: &Value) -> Result<Raw<AnyToDeviceEventContent>, MachineError> {
    let raw = serde_json::value::to_raw_value(content).map_err(|e| MachineError::Internal(e.to_string()))?;
    Ok(Raw::from_json(raw))
}

/// Queues an `m.room.encrypted` to-device request, saved in the step's change set.
fn push_to_device(
    step: &mut Step,
    request_id: String,
    messages: send_event_to_device::v3::Messages,
) -> Result<(), MachineError> {
    push_to_device_of_type(step, request_id, "m.room.encrypted", messages)
}

/// Queues a to-device request of `event_type`, saved in the step's change set (with the Olm
/// sessions that encrypted it), so a restart resends it instead of losing it.
fn push_to_device_of_type(
    step: &mut Step,
    request_id: String,
    event_type: &str,
    messages: send_event_to_device::v3::Messages,
) -> Result<(), MachineError> {
    #[derive(serde::Serialize)]
    struct Body<'a> {
        messages: &'a send_event_to_device::v3::Messages,
    }
    // The contents are serialized as they are (raw JSON), not parsed again.
    let body = serde_json::to_vec(&Body { messages: &messages }).map_err(|e| MachineError::Internal(e.to_string()))?;
    step.changes.outgoing_to_device.push(OutgoingToDevice {
        txn_id: request_id.clone(),
        event_type: event_type.to_owned(),
        body,
    });
    queue_to_device(step, request_id, event_type, messages);
    Ok(())
}

/// Lists a to-device request of `event_type` in the step's state (the caller saves what a
/// restart needs to send it).
fn queue_to_device(
    step: &mut Step,
    request_id: String,
    event_type: &str,
    messages: send_event_to_device::v3::Messages,
) {
    let request = send_event_to_device::v3::Request::new_raw(
        ToDeviceEventType::from(event_type),
        OwnedTransactionId::from(request_id.as_str()),
        messages,
    );
    step.state.pending.push(Pending {
        request: Arc::new(OutgoingRequest { request_id, request: Request::ToDevice(request) }),
        purpose: Purpose::ToDevice,
        listed: true,
    });
}

/// A saved to-device request, as sent.
fn saved_to_device(saved: &OutgoingToDevice) -> Result<OutgoingRequest, MachineError> {
    #[derive(serde::Deserialize)]
    struct Body {
        messages: send_event_to_device::v3::Messages,
    }
    let body: Body = serde_json::from_slice(&saved.body)
        .map_err(|e| MachineError::Internal(format!("saved to-device request {}: {e}", saved.txn_id)))?;
    let request = send_event_to_device::v3::Request::new_raw(
        ToDeviceEventType::from(saved.event_type.as_str()),
        OwnedTransactionId::from(saved.txn_id.as_str()),
        body.messages,
    );
    Ok(OutgoingRequest { request_id: saved.txn_id.clone(), request: Request::ToDevice(request) })
}

impl<B: Backend> core::fmt::Debug for OlmMachine<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OlmMachine")
            .field("user_id", &self.user_id)
            .field("device_id", &self.device_id)
            .field("identity_keys", &self.identity_keys())
            .finish_non_exhaustive()
    }
}
