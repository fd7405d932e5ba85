//! The glue of room keys and room events: load, call `room_keys_out`, `room_keys_in` or
//! `room_events`, commit one change set.

use std::collections::{BTreeMap, HashMap};

use ferrolm::types::Curve25519PublicKey;

use ferrolm::megolm::{self, GroupSession, InboundGroupSession};
use ferrolm_store::{
    Backend, DeviceRecord, InboundGroupSessionRecord, LocalTrust, OutboundGroupSessionRecord, OutboundShare,
    OutgoingToDevice, RoomKeySource, ShareState,
};
use ruma::api::client::to_device::send_event_to_device;
use ruma::events::AnySyncTimelineEvent;
use ruma::serde::Raw;
use ruma::to_device::DeviceIdOrAllDevices;
use ruma::{OwnedDeviceId, OwnedUserId, RoomId};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::{OlmMachine, Step, push_to_device_of_type, queue_to_device, raw_content};
use crate::adapt::{device_to_store, olm_session_id, user_to_store};
use crate::cache::CachedStore;
use crate::devices::Device;
use crate::env::MachineRng;
use crate::error::MachineError;
use crate::identities::{DeviceTrust, Trust};
use crate::olm_channel::{self, DeviceKey, Sender, Sessions};
use crate::own_device::{self, MEGOLM_ALGORITHM};
use crate::room_events::{self, DecryptedRoomEvent, TrustRequirement, UnableToDecrypt};
use crate::room_keys_in::{self, RoomKeyInfo, RoomKeyOutcome};
use crate::room_keys_out::{self, EncryptionSettings, SharingStrategy, TO_DEVICE_CHUNK};
use crate::sync::{SyncOutcome, ToDeviceOutcome};

/// What [`OlmMachine::share_room_key`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomKeyShare {
    /// The room's outbound session.
    pub session_id: String,
    /// Whether a new session was started.
    pub rotated: bool,
    /// Devices sent the key now.
    pub shared_with: Vec<DeviceKey>,
    /// Devices sent a withheld notice now, with its code.
    pub withheld: Vec<(DeviceKey, String)>,
    /// The queued to-device requests ([`OlmMachine::outgoing_requests`] lists them).
    pub request_ids: Vec<String>,
    /// Members sent nothing at all because their identity is in verification violation
    /// ([`room_keys_out::refuses_user`]): show the violation to the user first.
    pub identity_violations: Vec<OwnedUserId>,
}

/// The encryptions of one share over one Olm session: the devices of that identity key (one,
/// unless devices share a key), in the recipients' order, each with its place among them.
struct EncryptionJob<'a> {
    key: ferrolm::types::Curve25519PublicKey,
    session_index: usize,
    /// The session, taken out of the step's sessions while the job runs.
    record: Option<ferrolm_store::OlmSessionRecord>,
    devices: Vec<(usize, &'a Device)>,
}

/// The `OutgoingToDevice` type of a room key share saved for a restart: in place of its
/// ciphertexts (about 2 KB a device, written to the store and deleted again a moment later) the
/// `m.room_key` content and the recipients (about 40 bytes a device). A restart encrypts the
/// key again for the same devices, with the sessions saved after the first encryption (so no
/// ciphertext repeats a message key), under the same transaction id: the homeserver delivers
/// a transaction once, the first body if it had accepted it, the second otherwise.
pub(super) const SAVED_ROOM_KEY_SHARE: &str = "ferrolm.room_key_share.v1";

/// The body of a [`SAVED_ROOM_KEY_SHARE`].
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedRoomKeyShare<K> {
    room_key: K,
    devices: Vec<(OwnedUserId, OwnedDeviceId)>,
}

/// Queues the to-device request of a room key share, saved as a [`SAVED_ROOM_KEY_SHARE`].
fn push_room_key(
    step: &mut Step,
    request_id: String,
    room_key: &Value,
    messages: send_event_to_device::v3::Messages,
) -> Result<(), MachineError> {
    let devices = messages
        .iter()
        .flat_map(|(user, devices)| {
            devices.keys().filter_map(move |d| match d {
                DeviceIdOrAllDevices::DeviceId(d) => Some((user.clone(), d.clone())),
                _ => None,
            })
        })
        .collect();
    let mut body = crate::adapt::secret_json(&SavedRoomKeyShare { room_key, devices })
        .map_err(|e| MachineError::Internal(e.to_string()))?;
    step.changes.outgoing_to_device.push(OutgoingToDevice {
        txn_id: request_id.clone(),
        event_type: SAVED_ROOM_KEY_SHARE.to_owned(),
        body: std::mem::take(&mut *body),
    });
    queue_to_device(step, request_id, "m.room.encrypted", messages);
    Ok(())
}

/// The contents for each device in one map.
fn messages_of(
    messages: Vec<(DeviceKey, Raw<ruma::events::AnyToDeviceEventContent>)>,
) -> send_event_to_device::v3::Messages {
    let mut map: send_event_to_device::v3::Messages = BTreeMap::new();
    for ((user, device), content) in messages {
        map.entry(user).or_default().insert(DeviceIdOrAllDevices::DeviceId(device), content);
    }
    map
}

/// Encrypts `template` for each of `targets` (a device, and the place of its sending session in
/// its list in `sessions`) on every core; returns the contents in `targets`' order.
///
/// The devices of one identity key (one, unless devices share a key) make one job over that
/// session, encrypting in `targets`' order. Each job owns its session while it runs, and each
/// device's encryption draws (when its session starts a new chain) from a generator of its
/// own: one seed from `rng`, the stream of the device's place in `targets`. The ciphertexts do
/// not depend on the number of cores.
fn encrypt_for<B: Backend>(
    store: &CachedStore<B>,
    sessions: &mut Sessions,
    rng: &mut dyn MachineRng,
    template: &olm_channel::PlaintextTemplate,
    targets: &[(&Device, usize)],
    now: u64,
) -> Result<Vec<Raw<ruma::events::AnyToDeviceEventContent>>, MachineError> {
    let mut jobs: Vec<EncryptionJob<'_>> = Vec::new();
    let mut by_session: HashMap<Curve25519PublicKey, usize> = HashMap::new();
    for (position, (device, session_index)) in targets.iter().enumerate() {
        let job = *by_session.entry(device.curve25519_key).or_insert_with(|| {
            jobs.push(EncryptionJob {
                key: device.curve25519_key,
                session_index: *session_index,
                record: None,
                devices: Vec::new(),
            });
            jobs.len() - 1
        });
        if let Some(job) = jobs.get_mut(job) {
            job.devices.push((position, *device));
        }
    }
    let mut seed = Zeroizing::new([0u8; 32]);
    if !jobs.is_empty() {
        rng.fill_bytes(&mut *seed);
    }
    for job in &mut jobs {
        let list = sessions.with(store, job.key)?;
        if job.session_index < list.len() {
            job.record = Some(list.remove(job.session_index));
        }
    }
    let outcomes = ferrolm_store::parallel::map_mut(&mut jobs, olm_channel::SESSION_BLOCK, |job| {
        let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::from_seed(*seed);
        let Some(record) = job.record.as_mut() else {
            return Err(MachineError::Internal("session cache".into()));
        };
        let mut out = Vec::with_capacity(job.devices.len());
        for (position, device) in &job.devices {
            rng.set_stream(u64::try_from(*position).unwrap_or(u64::MAX));
            out.push((*position, template.encrypt(record, device, &mut rng, now)?));
        }
        Ok(out)
    });
    let mut contents: Vec<Option<Raw<ruma::events::AnyToDeviceEventContent>>> = vec![None; targets.len()];
    for (job, outcome) in jobs.into_iter().zip(outcomes) {
        for (position, content) in outcome? {
            if let Some(slot) = contents.get_mut(position) {
                *slot = Some(content);
            }
        }
        let Some(record) = job.record else { continue };
        let id = olm_session_id(&record.session);
        let list = sessions.with(store, job.key)?;
        list.insert(job.session_index.min(list.len()), record);
        sessions.touch(job.key, id);
    }
    contents.into_iter().map(|c| c.ok_or_else(|| MachineError::Internal("an encryption is missing".into()))).collect()
}

/// `messages` split into maps of at most [`TO_DEVICE_CHUNK`] devices.
fn chunks(
    messages: Vec<(DeviceKey, Raw<ruma::events::AnyToDeviceEventContent>)>,
) -> Vec<ruma::api::client::to_device::send_event_to_device::v3::Messages> {
    let mut out = Vec::with_capacity(messages.len().div_ceil(TO_DEVICE_CHUNK));
    let mut map: ruma::api::client::to_device::send_event_to_device::v3::Messages = BTreeMap::new();
    for (i, ((user, device), content)) in messages.into_iter().enumerate() {
        if i > 0 && i % TO_DEVICE_CHUNK == 0 {
            out.push(std::mem::take(&mut map));
        }
        map.entry(user).or_default().insert(DeviceIdOrAllDevices::DeviceId(device), content);
    }
    if !map.is_empty() {
        out.push(map);
    }
    out
}

impl<B: Backend> OlmMachine<B> {
    /// Queues again the room key shares a restart found saved and not yet sent: each
    /// [`SAVED_ROOM_KEY_SHARE`] encrypted anew for its devices (with the sessions as they were
    /// saved), under its transaction id; the Olm sessions it moves on are committed.
    pub(super) fn resend_room_key_shares(&mut self, saved: Vec<OutgoingToDevice>) -> Result<(), MachineError> {
        if saved.is_empty() {
            return Ok(());
        }
        let mut step = self.begin();
        let now = self.env.now_ms();
        let device_keys =
            own_device::device_keys(&step.state.own.account, self.user_id.as_str(), self.device_id.as_str())?;
        let mut queued = Vec::with_capacity(saved.len());
        {
            let sender = Sender {
                user_id: &self.user_id,
                device_id: &self.device_id,
                account: &step.state.own.account,
                device_keys: &device_keys,
            };
            for saved in &saved {
                // The store authenticated the body, so only a bug makes it unreadable; the
                // parser's message is not shown (it may quote the room key).
                let mut share: SavedRoomKeyShare<Value> = serde_json::from_slice(&saved.body)
                    .map_err(|_| MachineError::Internal("a saved room key share does not parse".into()))?;
                let template = olm_channel::PlaintextTemplate::new(&sender, "m.room_key", &share.room_key);
                crate::adapt::zeroize_strings(&mut share.room_key);
                let template = template?;
                let mut devices = Vec::with_capacity(share.devices.len());
                for (user, device_id) in &share.devices {
                    devices.extend(self.devices(user)?.into_iter().find(|d| d.device_id == *device_id));
                }
                let mut targets = Vec::with_capacity(devices.len());
                for device in &devices {
                    let list = step.sessions.with(&self.store, device.curve25519_key)?;
                    if let Some(session_index) = olm_channel::session_for_sending(list) {
                        targets.push((device, session_index));
                    }
                }
                let contents = encrypt_for(&self.store, &mut step.sessions, self.env.rng(), &template, &targets, now)?;
                let keys = targets.iter().map(|(d, _)| (d.user_id.clone(), d.device_id.clone()));
                queued.push((saved.txn_id.clone(), messages_of(keys.zip(contents).collect())));
            }
        }
        for (txn_id, messages) in queued {
            if messages.is_empty() {
                step.changes.deletions.outgoing_to_device.push(txn_id);
            } else {
                queue_to_device(&mut step, txn_id, "m.room.encrypted", messages);
            }
        }
        self.commit(step)
    }

    /// Sets the user's trust in a device (verified, blacklisted, …).
    pub fn set_local_trust(
        &mut self,
        user_id: &ruma::UserId,
        device_id: &ruma::DeviceId,
        trust: LocalTrust,
    ) -> Result<(), MachineError> {
        let mut step = self.begin();
        let Some(mut record) = self.store.device(&user_to_store(user_id), &device_to_store(device_id))? else {
            return Err(MachineError::InvalidArgument(format!("unknown device {user_id} {device_id}")));
        };
        record.local_trust = trust;
        step.changes.devices.push(record);
        self.commit(step)
    }

    /// Makes sure every device of `members` that may read the room has its current key:
    /// rotates the room's outbound session when due, encrypts `m.room_key` over Olm for each
    /// device that has not got it (at the current index), sends withheld notices to the devices
    /// left out, and queues the to-device requests in chunks. Open Olm sessions first
    /// ([`OlmMachine::get_missing_sessions`]): devices without one get `m.no_olm`.
    ///
    /// A request not reported sent when the process stops goes out after the restart under
    /// the same transaction id: the key and its recipients are saved with the step (not the
    /// ciphertexts, which are 50 times larger), and [`OlmMachine::open`] encrypts it again.
    pub fn share_room_key(
        &mut self,
        room_id: &RoomId,
        members: &[OwnedUserId],
        settings: EncryptionSettings,
    ) -> Result<RoomKeyShare, MachineError> {
        let mut step = self.begin();
        let now = self.env.now_ms();
        let room = ferrolm_store::RoomId::from(room_id.as_str());

        let mut recipients = Vec::new();
        for user in members {
            for device in room_keys_out::eligible(self.devices(user)?) {
                if !(device.user_id == self.user_id && device.device_id == self.device_id) {
                    recipients.push(device);
                }
            }
        }
        recipients.sort_by(|a, b| (&a.user_id, &a.device_id).cmp(&(&b.user_id, &b.device_id)));
        recipients.dedup_by(|a, b| a.user_id == b.user_id && a.device_id == b.device_id);
        // Cross-signing trust, only for the strategies that consult it.
        let mut trusts: BTreeMap<DeviceKey, DeviceTrust> = BTreeMap::new();
        let mut identity_violations = Vec::new();
        if settings.strategy.uses_cross_signing() {
            let mut trust = Some(Trust::load(&self.store, &self.user_id)?);
            let mut users: Vec<&OwnedUserId> = members.iter().collect();
            users.sort();
            users.dedup();
            for user in users {
                let state = match trust.as_mut() {
                    Some(t) => t.state(&self.store, user)?,
                    None => None,
                };
                if room_keys_out::refuses_user(state, settings.strategy) {
                    identity_violations.push(user.clone());
                }
            }
            recipients.retain(|d| !identity_violations.contains(&d.user_id));
            for device in &recipients {
                let verdict = self.device_trust_cached(&mut trust, device)?;
                trusts.insert((device.user_id.clone(), device.device_id.clone()), verdict);
            }
        }
        let trust_of = |d: &Device| trusts.get(&(d.user_id.clone(), d.device_id.clone())).copied();
        let allowed: Vec<&Device> = recipients
            .iter()
            .filter(|d| room_keys_out::withheld_code(d, trust_of(d).as_ref(), settings.strategy).is_none())
            .collect();

        let stored_settings = self.store.room_settings(&room)?;
        let mut outbound = self.store.outbound_group_session(&room)?;
        let mut shares = match &outbound {
            Some(o) => self.store.outbound_shares(&room, &o.session_id())?,
            None => Vec::new(),
        };
        let own_shared_history = match &outbound {
            Some(o) => self.store.inbound_group_session(&room, &o.session_id())?.map(|r| r.shared_history),
            None => None,
        };
        let rotate = match &outbound {
            None => true,
            Some(o) => {
                room_keys_out::rotation_due_by_age(o, &settings, now)
                    || room_keys_out::rotation_due_by_messages(o, &settings)
                    || room_keys_out::rotation_due_by_settings(
                        stored_settings.as_ref(),
                        own_shared_history,
                        room_id,
                        &settings,
                    )
                    || room_keys_out::rotation_due_by_departure(&shares, allowed.iter().copied())
            }
        };
        if rotate {
            if outbound.is_some() {
                step.changes.deletions.outbound_group_sessions.push(room.clone());
            }
            let session = GroupSession::new_with_rng(megolm::SessionConfig::version_1(), &mut self.env.rng());
            let keys = step.state.own.account.identity_keys();
            step.changes.inbound_group_sessions.push(InboundGroupSessionRecord {
                room_id: room.clone(),
                session: InboundGroupSession::new(&session.session_key(), megolm::SessionConfig::version_1()),
                sender_key: keys.curve25519,
                claimed_signing_key: Some(keys.ed25519),
                source: RoomKeySource::Direct,
                backed_up: false,
                shared_history: settings.shared_history,
            });
            outbound =
                Some(OutboundGroupSessionRecord { room_id: room.clone(), session, created_ms: now, message_count: 0 });
            shares.clear();
        }
        let outbound = outbound.ok_or_else(|| MachineError::Internal("no outbound session".into()))?;
        let session_id = outbound.session_id();
        let index = outbound.session.message_index();
        let session_key = outbound.session.session_key().to_base64();
        let mut room_key = json!({
            "algorithm": MEGOLM_ALGORITHM,
            "room_id": room_id,
            "session_id": session_id,
            "session_key": session_key.as_str(),
            "shared_history": settings.shared_history,
        });
        let own_curve = step.state.own.account.curve25519_key().to_base64();

        let device_keys =
            own_device::device_keys(&step.state.own.account, self.user_id.as_str(), self.device_id.as_str())?;
        let mut result =
            RoomKeyShare { session_id: session_id.clone(), rotated: rotate, identity_violations, ..Default::default() };
        // The devices to encrypt the key for, each with its sending session's place in its list.
        let mut targets: Vec<(&Device, usize)> = Vec::new();
        let mut withheld = Vec::new();
        let mut no_olm_flags = Vec::new();
        // What each device got of this session so far (one lookup per recipient).
        let sent: std::collections::HashMap<(&str, &str), &ShareState> =
            shares.iter().map(|s| ((s.user_id.as_str(), s.device_id.as_str()), &s.state)).collect();
        let encrypted = {
            let sender = Sender {
                user_id: &self.user_id,
                device_id: &self.device_id,
                account: &step.state.own.account,
                device_keys: &device_keys,
            };
            let template = olm_channel::PlaintextTemplate::new(&sender, "m.room_key", &room_key)?;
            for device in &recipients {
                let key = (device.user_id.clone(), device.device_id.clone());
                // Each device gets the key (or a withheld notice) once. A device told why it was
                // left out, and now allowed (verified since), gets the key after all.
                let code = room_keys_out::withheld_code(device, trust_of(device).as_ref(), settings.strategy);
                let already = sent.get(&(key.0.as_str(), key.1.as_str())).is_some_and(|state| match state {
                    ShareState::Shared { .. } => true,
                    ShareState::Withheld { code: sent } => code == Some(sent.as_str()),
                });
                if already {
                    continue;
                }
                let share = |state| OutboundShare {
                    room_id: room.clone(),
                    session_id: session_id.clone(),
                    user_id: user_to_store(&key.0),
                    device_id: device_to_store(&key.1),
                    state,
                };
                if let Some(code) = code {
                    let content = json!({
                        "algorithm": MEGOLM_ALGORITHM, "sender_key": own_curve, "code": code,
                        "room_id": room_id, "session_id": session_id,
                    });
                    withheld.push((key.clone(), raw_content(&content)?));
                    step.changes.outbound_shares.push(share(ShareState::Withheld { code: code.to_owned() }));
                    result.withheld.push((key, code.to_owned()));
                    continue;
                }
                let list = step.sessions.with(&self.store, device.curve25519_key)?;
                let Some(session_index) = olm_channel::session_for_sending(list) else {
                    // `m.no_olm` once per device (remembered in its record), not per session.
                    if !device.no_olm_sent {
                        let content =
                            json!({"algorithm": MEGOLM_ALGORITHM, "sender_key": own_curve, "code": "m.no_olm"});
                        withheld.push((key.clone(), raw_content(&content)?));
                        no_olm_flags.push((key.clone(), true));
                        result.withheld.push((key, "m.no_olm".to_owned()));
                    }
                    continue;
                };
                if device.no_olm_sent {
                    // A session works again: a later loss of it is reported again.
                    no_olm_flags.push((key.clone(), false));
                }
                targets.push((device, session_index));
                step.changes.outbound_shares.push(share(ShareState::Shared { message_index: index }));
                result.shared_with.push(key);
            }
            let contents = encrypt_for(&self.store, &mut step.sessions, self.env.rng(), &template, &targets, now)?;
            targets.iter().map(|(d, _)| (d.user_id.clone(), d.device_id.clone())).zip(contents).collect::<Vec<_>>()
        };
        // Nothing new for anyone (the call a client makes before each message): no commit.
        let unchanged = !rotate
            && encrypted.is_empty()
            && withheld.is_empty()
            && no_olm_flags.is_empty()
            && stored_settings.as_ref() == Some(&settings.to_record(room_id));
        for ((user, device), sent) in no_olm_flags {
            if let Some(record) = self.store.device(&user_to_store(&user), &device_to_store(&device))? {
                step.changes.devices.push(DeviceRecord { no_olm_sent: sent, ..record });
            }
        }
        for messages in chunks(encrypted) {
            let request_id = self.new_request_id();
            result.request_ids.push(request_id.clone());
            push_room_key(&mut step, request_id, &room_key, messages)?;
        }
        crate::adapt::zeroize_strings(&mut room_key);
        for messages in chunks(withheld) {
            let request_id = self.new_request_id();
            result.request_ids.push(request_id.clone());
            push_to_device_of_type(&mut step, request_id, "m.room_key.withheld", messages)?;
        }
        if !unchanged {
            step.changes.room_settings.push(settings.to_record(room_id));
            step.changes.outbound_group_sessions.push(outbound);
        }
        self.commit(step)?;
        Ok(result)
    }

    /// Encrypts a room event with the room's outbound session; returns the `m.room.encrypted`
    /// content to send. A room without a shared key, or whose key is due for rotation, is an
    /// error: call [`OlmMachine::share_room_key`] first.
    pub fn encrypt_room_event(
        &mut self,
        room_id: &RoomId,
        event_type: &str,
        content: &Value,
    ) -> Result<Value, MachineError> {
        let mut step = self.begin();
        let now = self.env.now_ms();
        let room = ferrolm_store::RoomId::from(room_id.as_str());
        let mut outbound = self
            .store
            .outbound_group_session(&room)?
            .ok_or_else(|| MachineError::NoRoomKeyShared(room_id.to_string()))?;
        let settings = match self.store.room_settings(&room)? {
            Some(s) => EncryptionSettings {
                rotation_period_ms: s.rotation_period_ms.unwrap_or(room_keys_out::DEFAULT_ROTATION_PERIOD_MS),
                rotation_period_messages: s
                    .rotation_period_messages
                    .unwrap_or(room_keys_out::DEFAULT_ROTATION_PERIOD_MESSAGES),
                strategy: if s.only_trusted_devices {
                    SharingStrategy::OnlyVerifiedDevices
                } else {
                    SharingStrategy::AllDevices
                },
                shared_history: false,
            },
            None => EncryptionSettings::default(),
        };
        if room_keys_out::rotation_due_by_age(&outbound, &settings, now)
            || room_keys_out::rotation_due_by_messages(&outbound, &settings)
        {
            return Err(MachineError::RoomKeyRotationDue(room_id.to_string()));
        }
        let plaintext = json!({"type": event_type, "content": content, "room_id": room_id});
        let plaintext =
            Zeroizing::new(serde_json::to_vec(&plaintext).map_err(|e| MachineError::Internal(e.to_string()))?);
        let message = outbound.session.encrypt(&plaintext);
        outbound.message_count += 1;
        let session_id = outbound.session_id();
        step.changes.outbound_group_sessions.push(outbound);
        let encrypted = json!({
            "algorithm": MEGOLM_ALGORITHM,
            "sender_key": step.state.own.account.curve25519_key().to_base64(),
            "ciphertext": message.to_base64(),
            "session_id": session_id,
            "device_id": self.device_id,
        });
        self.commit(step)?;
        Ok(encrypted)
    }

    /// Decrypts an `m.room.encrypted` room event of `room_id`. `Ok(Err(reason))` is an event
    /// that does not decrypt (or may not be shown under `requirement`), with what the app can do.
    /// A first decryption of a message index is saved (replay detection).
    pub fn decrypt_room_event(
        &mut self,
        event: &Raw<AnySyncTimelineEvent>,
        room_id: &RoomId,
        requirement: TrustRequirement,
    ) -> Result<Result<DecryptedRoomEvent, UnableToDecrypt>, MachineError> {
        // A step that changes no machine state (only the store's seen indices): no copy of
        // the state, only the change set.
        let me = room_events::Me {
            user_id: &self.user_id,
            device_id: &self.device_id,
            curve25519: self.state.own.account.curve25519_key(),
        };
        let mut changes = ferrolm_store::Changes::default();
        let mut trust = None;
        let mut verdicts: Vec<(DeviceKey, DeviceTrust)> = Vec::new();
        let cache = &self.trust_cache;
        let result = {
            let mut device_trust = |device: &Device| -> Result<DeviceTrust, MachineError> {
                let key = (device.user_id.clone(), device.device_id.clone());
                if let Some(cached) = cache.get(&key) {
                    return Ok(*cached);
                }
                let verdict = self.compute_device_trust_of(&mut trust, device)?;
                verdicts.push((key, verdict));
                Ok(verdict)
            };
            room_events::decrypt(&self.store, &me, event, room_id, requirement, &mut changes, &mut device_trust)?
        };
        self.trust_cache.extend(verdicts);
        if let Err(UnableToDecrypt::MissingSession { .. }) = &result {
            // A key lost to a wedged Olm session may be requested again: a whole step.
            let mut step = self.begin();
            self.rerequest_after_recovery(&mut step, event, room_id)?;
            self.commit(step)?;
        } else if !changes.is_empty() {
            self.store.save_changes(&changes)?;
        }
        Ok(result)
    }

    /// Room keys and withheld notices among the to-device events of a sync.
    pub(super) fn receive_room_key_events(
        &mut self,
        step: &mut Step,
        outcome: &mut ToDeviceOutcome,
        sync: &mut SyncOutcome,
    ) -> Result<(), MachineError> {
        self.process_room_key_events(step, outcome, sync)?;
        // The app gets the event, not the secret in it.
        if let ToDeviceOutcome::Decrypted(event) = outcome {
            if crate::adapt::redact_secrets(&event.event_type, &mut event.content) {
                let redacted = json!({"sender": event.sender, "type": event.event_type, "content": event.content});
                if let Ok(raw) = serde_json::value::to_raw_value(&redacted) {
                    event.event = Raw::from_json(raw);
                }
            }
        }
        Ok(())
    }

    fn process_room_key_events(
        &mut self,
        step: &mut Step,
        outcome: &ToDeviceOutcome,
        sync: &mut SyncOutcome,
    ) -> Result<(), MachineError> {
        match outcome {
            ToDeviceOutcome::Decrypted(event) if event.event_type == "m.room_key" => {
                sync.room_keys.push(self.receive_room_key(step, event)?);
            }
            ToDeviceOutcome::Decrypted(event) if event.event_type == "m.forwarded_room_key" => {
                sync.room_keys.push(self.receive_forwarded_key(step, event)?);
            }
            ToDeviceOutcome::Decrypted(event) if event.event_type == "m.room_key.withheld" => {
                self.receive_withheld(step, event.sender.as_str(), &event.content, sync);
            }
            ToDeviceOutcome::Decrypted(event) if event.event_type == "m.room_key_request" => {
                self.receive_key_request(step, event.sender.as_str(), &event.content, sync)?;
            }
            ToDeviceOutcome::Plaintext(raw) => {
                let value: Value = serde_json::from_str(raw.json().get()).unwrap_or_default();
                let sender = value.get("sender").and_then(Value::as_str).unwrap_or_default().to_owned();
                let content = value.get("content").cloned().unwrap_or_default();
                match value.get("type").and_then(Value::as_str) {
                    Some("m.room_key.withheld") => self.receive_withheld(step, &sender, &content, sync),
                    Some("m.room_key_request") => self.receive_key_request(step, &sender, &content, sync)?,
                    _ => {}
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn receive_withheld(&mut self, step: &mut Step, sender: &str, content: &Value, sync: &mut SyncOutcome) {
        if let Some((info, notice)) = room_keys_in::read_withheld(sender, content) {
            if let Some(notice) = notice {
                step.changes.withheld.push(notice);
            }
            sync.withheld.push(info);
        }
    }

    /// The stored (or pending in this step) room key of a session.
    pub(super) fn stored_room_key(
        &self,
        step: &Step,
        room: &ferrolm_store::RoomId,
        session_id: &str,
    ) -> Result<Option<InboundGroupSessionRecord>, MachineError> {
        let pending = step
            .changes
            .inbound_group_sessions
            .iter()
            .rposition(|r| r.room_id == *room && r.session.session_id().to_base64() == session_id);
        Ok(match pending {
            Some(i) => step.changes.inbound_group_sessions.get(i).cloned(),
            None => self.store.inbound_group_session(room, session_id)?,
        })
    }

    fn receive_room_key(
        &mut self,
        step: &mut Step,
        event: &olm_channel::DecryptedToDeviceEvent,
    ) -> Result<RoomKeyOutcome, MachineError> {
        let refused = |reason, room: Option<String>, session: Option<String>| RoomKeyOutcome::Refused {
            room_id: room,
            session_id: session,
            reason,
        };
        let key = match room_keys_in::check_room_key_content(&event.content) {
            Ok(k) => k,
            Err(reason) => return Ok(refused(reason, None, None)),
        };
        let room = key.room_id.clone();
        let session_id = key.session.session_id().to_base64();
        let new = room_keys_in::record(key, event.sender_curve25519_key, event.sender_ed25519_key);
        // The step may already hold a key for this session (two in one sync).
        let stored = self.stored_room_key(step, &ferrolm_store::RoomId::from(room.as_str()), &session_id)?;
        match room_keys_in::check_room_key_update(stored.as_ref(), new) {
            Ok(record) => {
                let info = RoomKeyInfo {
                    room_id: room,
                    session_id,
                    sender: event.sender.clone(),
                    sender_key: event.sender_curve25519_key,
                    first_known_index: record.first_known_index(),
                };
                step.changes.inbound_group_sessions.push(record);
                Ok(RoomKeyOutcome::Accepted(info))
            }
            Err(reason) => Ok(refused(reason, Some(room.to_string()), Some(session_id))),
        }
    }
}
