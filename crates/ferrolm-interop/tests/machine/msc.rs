//! A driver for matrix-sdk-crypto's `OlmMachine` against the test homeserver: each of its
//! outgoing requests becomes the `http::Request` a client would send (ruma's serialization of
//! the client-server API), the homeserver's answer is read back into ruma's response type and
//! handed to `mark_request_as_sent`; sync responses are read from their JSON and their
//! encryption parts given to `receive_sync_changes`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use ferrolm_machine::ruma::api::client::keys::{
    claim_keys, get_keys, upload_keys, upload_signatures, upload_signing_keys,
};
use ferrolm_machine::ruma::api::client::message::send_message_event;
use ferrolm_machine::ruma::api::client::sync::sync_events;
use ferrolm_machine::ruma::api::client::to_device::send_event_to_device;
use ferrolm_machine::ruma::api::{
    IncomingResponse, OutgoingRequest as _, SupportedVersions, auth_scheme::SendAccessToken,
};
use ferrolm_machine::ruma::events::{AnyMessageLikeEvent, AnyMessageLikeEventContent, AnySyncTimelineEvent};
use ferrolm_machine::ruma::serde::Raw;
use ferrolm_machine::ruma::{OwnedDeviceId, OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, TransactionId, UserId};
use ferrolm_test_homeserver::Homeserver;
use matrix_sdk_common::deserialized_responses::{DecryptedRoomEvent, ProcessedToDeviceEvent, UnableToDecryptInfo};
use matrix_sdk_crypto::store::types::RoomKeyInfo;
use matrix_sdk_crypto::types::requests::{
    AnyOutgoingRequest, OutgoingRequest, OutgoingVerificationRequest, RoomMessageRequest, ToDeviceRequest,
};
use matrix_sdk_crypto::{
    DecryptionSettings, EncryptionSettings, EncryptionSyncChanges, OlmMachine, RoomEventDecryptionResult,
    TrustRequirement,
};
use serde_json::Value;

thread_local! {
    /// One current-thread runtime per test thread (tests run in parallel threads).
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
}

/// Runs one of matrix-sdk-crypto's futures to completion.
pub fn block_on<F: Future>(future: F) -> F::Output {
    RUNTIME.with(|rt| rt.block_on(future))
}

fn versions() -> SupportedVersions {
    SupportedVersions::from_parts(&["v1.1".to_owned()], &BTreeMap::new())
}

const BASE: &str = "https://test.server";

/// Serializes a ruma request as the HTTP request a client sends.
macro_rules! to_http {
    ($request:expr) => {{
        let v = versions();
        $request.try_into_http_request::<Vec<u8>>(BASE, SendAccessToken::Always("token"), Cow::Borrowed(&v)).unwrap()
    }};
}

fn parse<R: IncomingResponse>(body: &[u8]) -> R {
    R::try_from_http_response(http::Response::new(body.to_vec())).expect("a well-formed response")
}

/// The new events of the joined rooms of one sync, by room.
pub type Timelines = BTreeMap<OwnedRoomId, Vec<Raw<AnySyncTimelineEvent>>>;

/// What one sync gave matrix-sdk-crypto, and what it made of it.
#[derive(Debug)]
pub struct MscSync {
    /// The to-device events, decrypted where they could be.
    pub to_device: Vec<ProcessedToDeviceEvent>,
    /// The room keys received.
    pub room_keys: Vec<RoomKeyInfo>,
    /// The rooms' new timeline events.
    pub timelines: Timelines,
}

impl MscSync {
    /// The decrypted to-device events as JSON, with their encryption info.
    pub fn decrypted(&self) -> Vec<(Value, matrix_sdk_common::deserialized_responses::EncryptionInfo)> {
        self.to_device
            .iter()
            .filter_map(|e| match e {
                ProcessedToDeviceEvent::Decrypted { raw, encryption_info } => {
                    Some((serde_json::from_str(raw.json().get()).unwrap(), encryption_info.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// The plaintext to-device events as JSON.
    pub fn plaintext(&self) -> Vec<Value> {
        self.to_device
            .iter()
            .filter_map(|e| match e {
                ProcessedToDeviceEvent::PlainText(raw) => Some(serde_json::from_str(raw.json().get()).unwrap()),
                _ => None,
            })
            .collect()
    }

    /// How many to-device events did not decrypt.
    pub fn undecryptable(&self) -> usize {
        self.to_device.iter().filter(|e| matches!(e, ProcessedToDeviceEvent::UnableToDecrypt { .. })).count()
    }
}

/// A matrix-sdk-crypto device logged in on the test homeserver.
pub struct MscDevice {
    /// The machine.
    pub machine: OlmMachine,
    /// The `next_batch` of the last sync processed.
    pub since: Option<String>,
}

impl MscDevice {
    /// Logs `user`'s `device` in and opens a machine on matrix-sdk-crypto's memory store.
    pub fn new(hs: &mut Homeserver, user: &str, device: &str) -> Self {
        let (user, device) = (OwnedUserId::try_from(user).unwrap(), OwnedDeviceId::from(device));
        hs.login(&user, &device);
        let machine = block_on(OlmMachine::new(&user, &device));
        // Keys are asked for explicitly in the scenarios, never behind their back.
        machine.set_room_key_requests_enabled(false);
        Self { machine, since: None }
    }

    /// Opens a machine on a store (a fresh one, or one holding this device's account).
    pub fn with_store(
        hs: &mut Homeserver,
        user: &str,
        device: &str,
        store: impl matrix_sdk_crypto::store::IntoCryptoStore,
    ) -> Self {
        let (user, device) = (OwnedUserId::try_from(user).unwrap(), OwnedDeviceId::from(device));
        hs.login(&user, &device);
        let machine = block_on(OlmMachine::with_store(&user, &device, store, None)).unwrap();
        machine.set_room_key_requests_enabled(false);
        let since = block_on(machine.store().next_batch_token()).unwrap();
        Self { machine, since }
    }

    /// The user.
    pub fn user_id(&self) -> OwnedUserId {
        self.machine.user_id().to_owned()
    }

    /// The device id.
    pub fn device_id(&self) -> OwnedDeviceId {
        self.machine.device_id().to_owned()
    }

    /// (user, device).
    pub fn id(&self) -> (OwnedUserId, OwnedDeviceId) {
        (self.user_id(), self.device_id())
    }

    /// Sends one request and reports the answer; returns the HTTP status.
    fn send_any(&self, hs: &mut Homeserver, request_id: &TransactionId, request: &AnyOutgoingRequest) {
        if let AnyOutgoingRequest::RoomMessage(r) = request {
            let event_id = self.send_room_message(hs, r);
            let response = send_message_event::v3::Response::new(event_id);
            block_on(self.machine.mark_request_as_sent(request_id, &response)).unwrap();
            return;
        }
        let (user, device) = self.id();
        let http = match request {
            AnyOutgoingRequest::KeysUpload(r) => to_http!(r.clone()),
            AnyOutgoingRequest::KeysQuery(r) => {
                let mut query = get_keys::v3::Request::new();
                query.device_keys = r.device_keys.clone();
                query.timeout = r.timeout;
                to_http!(query)
            }
            AnyOutgoingRequest::KeysClaim(r) => to_http!(r.clone()),
            AnyOutgoingRequest::ToDeviceRequest(r) => to_http!(to_device_request(r)),
            AnyOutgoingRequest::SignatureUpload(r) => to_http!(r.clone()),
            AnyOutgoingRequest::RoomMessage(_) => unreachable!("sent above"),
        };
        let response = hs.handle(&user, &device, http);
        assert_eq!(response.status(), 200, "{request:?} answered {}", String::from_utf8_lossy(response.body()));
        let body = response.body();
        let m = &self.machine;
        match request {
            AnyOutgoingRequest::KeysUpload(_) => {
                block_on(m.mark_request_as_sent(request_id, &parse::<upload_keys::v3::Response>(body)))
            }
            AnyOutgoingRequest::KeysQuery(_) => {
                block_on(m.mark_request_as_sent(request_id, &parse::<get_keys::v3::Response>(body)))
            }
            AnyOutgoingRequest::KeysClaim(_) => {
                block_on(m.mark_request_as_sent(request_id, &parse::<claim_keys::v3::Response>(body)))
            }
            AnyOutgoingRequest::ToDeviceRequest(_) => {
                block_on(m.mark_request_as_sent(request_id, &parse::<send_event_to_device::v3::Response>(body)))
            }
            AnyOutgoingRequest::SignatureUpload(_) => {
                block_on(m.mark_request_as_sent(request_id, &parse::<upload_signatures::v3::Response>(body)))
            }
            AnyOutgoingRequest::RoomMessage(_) => unreachable!(),
        }
        .unwrap();
    }

    /// Sends a request matrix-sdk-crypto returned (not through `outgoing_requests`).
    pub fn send(&self, hs: &mut Homeserver, request: &OutgoingRequest) {
        self.send_any(hs, request.request_id(), request.request());
    }

    /// Sends a to-device request (a room key share returns them), reporting it under its
    /// transaction id.
    pub fn send_to_device(&self, hs: &mut Homeserver, request: &ToDeviceRequest) {
        self.send_any(hs, &request.txn_id, &AnyOutgoingRequest::ToDeviceRequest(request.clone()));
    }

    /// Sends a signature upload (a confirmed verification returns one).
    pub fn send_signature_upload(&self, hs: &mut Homeserver, request: &upload_signatures::v3::Request) {
        self.send_any(hs, &TransactionId::new(), &AnyOutgoingRequest::SignatureUpload(request.clone()));
    }

    /// Sends a verification message: a to-device one as such, an in-room one as a room event
    /// in the clear (the test homeserver's rooms are not encrypted unless a test says so);
    /// returns the room event's id.
    pub fn send_verification(
        &self,
        hs: &mut Homeserver,
        request: &OutgoingVerificationRequest,
    ) -> Option<OwnedEventId> {
        match request {
            OutgoingVerificationRequest::ToDevice(r) => {
                self.send_to_device(hs, r);
                None
            }
            OutgoingVerificationRequest::InRoom(r) => Some(self.send_room_message(hs, r)),
        }
    }

    /// Sends a room message request as a room event in the clear (the test homeserver's rooms
    /// are not encrypted unless a test encrypts); returns its id.
    fn send_room_message(&self, hs: &mut Homeserver, r: &RoomMessageRequest) -> OwnedEventId {
        use ferrolm_machine::ruma::events::MessageLikeEventContent as _;
        let content = serde_json::to_value(&r.content).unwrap();
        let event_type = r.content.event_type().to_string();
        hs.send_room_event(&r.room_id, self.machine.user_id(), &event_type, content).unwrap()
    }

    /// Hands a room event of `room` to msc's verification machine (in-room verification).
    pub fn receive_room_verification_event(&self, room: &RoomId, event: &Value) {
        let mut event = event.clone();
        event["room_id"] = Value::String(room.to_string());
        let event: AnyMessageLikeEvent = serde_json::from_value(event).unwrap();
        block_on(self.machine.receive_verification_event(&event)).unwrap();
    }

    /// Bootstraps cross-signing: the device keys (if not uploaded yet), the signing keys (with
    /// a password stage for the homeserver's user-interactive authentication), the signatures.
    pub fn bootstrap_cross_signing(&self, hs: &mut Homeserver) {
        let requests = block_on(self.machine.bootstrap_cross_signing(false)).unwrap();
        if let Some(upload) = &requests.upload_keys_req {
            self.send(hs, upload);
        }
        let keys = &requests.upload_signing_keys_req;
        let raw = |k: &Option<matrix_sdk_crypto::types::CrossSigningKey>| {
            k.as_ref().map(|k| Raw::from_json_string(serde_json::to_string(k).unwrap()).unwrap())
        };
        let (user, device) = self.id();
        let mut signing = upload_signing_keys::v3::Request::new();
        signing.master_key = raw(&keys.master_key);
        signing.self_signing_key = raw(&keys.self_signing_key);
        signing.user_signing_key = raw(&keys.user_signing_key);
        let mut response = hs.handle(&user, &device, to_http!(signing.clone()));
        if response.status() == 401 {
            let session = hs.last_uia_session().expect("a UIA session");
            signing.auth = Some(ferrolm_test_homeserver::driver::password_auth(&user, &session).unwrap());
            response = hs.handle(&user, &device, to_http!(signing));
        }
        assert_eq!(response.status(), 200, "signing keys upload: {}", String::from_utf8_lossy(response.body()));
        self.send_signature_upload(hs, &requests.upload_signatures_req);
    }

    /// Sends every outgoing request, again until none is left (at most 8 rounds); returns how
    /// many were sent, by kind name.
    pub fn run_requests(&self, hs: &mut Homeserver) -> Vec<&'static str> {
        let mut kinds = Vec::new();
        for _ in 0..8 {
            let requests = block_on(self.machine.outgoing_requests()).unwrap();
            if requests.is_empty() {
                break;
            }
            for request in &requests {
                kinds.push(kind(request.request()));
                self.send(hs, request);
            }
        }
        kinds
    }

    /// Syncs once, from the last `next_batch`, through the JSON a real server sends.
    pub fn sync(&mut self, hs: &mut Homeserver) -> MscSync {
        let (user, device) = self.id();
        let body = hs.sync_json(&user, &device, self.since.as_deref()).unwrap();
        let response: sync_events::v3::Response = parse(&body);
        let changes = EncryptionSyncChanges {
            to_device_events: response.to_device.events.clone(),
            changed_devices: &response.device_lists,
            one_time_keys_counts: &response.device_one_time_keys_count,
            unused_fallback_keys: response.device_unused_fallback_key_types.as_deref(),
            next_batch_token: Some(response.next_batch.clone()),
        };
        let (to_device, room_keys) =
            block_on(self.machine.receive_sync_changes(changes, &decryption_settings())).unwrap();
        self.since = Some(response.next_batch.clone());
        let timelines =
            response.rooms.join.iter().map(|(id, room)| (id.clone(), room.timeline.events.clone())).collect();
        MscSync { to_device, room_keys, timelines }
    }

    /// Sends its requests and syncs, `rounds` times, then sends what is left.
    pub fn settle(&mut self, hs: &mut Homeserver, rounds: usize) -> Vec<MscSync> {
        let mut syncs = Vec::new();
        for _ in 0..rounds {
            self.run_requests(hs);
            syncs.push(self.sync(hs));
        }
        self.run_requests(hs);
        syncs
    }

    /// Tracks `users` (the members of an encrypted room).
    pub fn track(&self, users: &[OwnedUserId]) {
        block_on(self.machine.update_tracked_users(users.iter().map(|u| u.as_ref()))).unwrap();
    }

    /// Claims one-time keys for the devices of `users` it has no session with and sends the
    /// claim; returns whether there was one.
    pub fn open_sessions(&self, hs: &mut Homeserver, users: &[OwnedUserId]) -> bool {
        let missing = block_on(self.machine.get_missing_sessions(users.iter().map(|u| u.as_ref()))).unwrap();
        match missing {
            Some((id, claim)) => {
                self.send_any(hs, &id, &AnyOutgoingRequest::KeysClaim(claim));
                true
            }
            None => false,
        }
    }

    /// Shares the room key of `room` with `users` under `settings` and sends the to-device
    /// requests; returns them.
    pub fn share(
        &self,
        hs: &mut Homeserver,
        room: &RoomId,
        users: &[OwnedUserId],
        settings: EncryptionSettings,
    ) -> Vec<Arc<ToDeviceRequest>> {
        self.open_sessions(hs, users);
        let requests = block_on(self.machine.share_room_key(room, users.iter().map(|u| u.as_ref()), settings)).unwrap();
        for request in &requests {
            self.send_to_device(hs, request);
        }
        requests
    }

    /// Encrypts `m.room.message` with `body` for `room` and sends it; returns the event id.
    pub fn say(&self, hs: &mut Homeserver, room: &RoomId, body: &str) -> OwnedEventId {
        let content: Raw<AnyMessageLikeEventContent> =
            Raw::new(&serde_json::json!({"msgtype": "m.text", "body": body})).unwrap().cast_unchecked();
        let encrypted = block_on(self.machine.encrypt_room_event_raw(room, "m.room.message", &content)).unwrap();
        let content: Value = serde_json::from_str(encrypted.content.json().get()).unwrap();
        hs.send_room_event(room, self.machine.user_id(), "m.room.encrypted", content).unwrap()
    }

    /// Decrypts a room event, or says why it cannot.
    pub fn decrypt(
        &self,
        event: &Raw<AnySyncTimelineEvent>,
        room: &RoomId,
    ) -> Result<DecryptedRoomEvent, UnableToDecryptInfo> {
        let result =
            block_on(self.machine.try_decrypt_room_event(event.cast_ref_unchecked(), room, &decryption_settings()))
                .unwrap();
        match result {
            RoomEventDecryptionResult::Decrypted(d) => Ok(d),
            RoomEventDecryptionResult::UnableToDecrypt(info) => Err(info),
        }
    }

    /// The device `user`'s `device` as matrix-sdk-crypto knows it.
    pub fn device(&self, user: &UserId, device: &ferrolm_machine::ruma::DeviceId) -> Option<matrix_sdk_crypto::Device> {
        block_on(self.machine.get_device(user, device, None)).unwrap()
    }
}

/// Decrypt everything that decrypts, whoever sent it (the scenarios have no cross-signing).
pub fn decryption_settings() -> DecryptionSettings {
    DecryptionSettings { sender_device_trust_requirement: TrustRequirement::Untrusted }
}

fn to_device_request(r: &ToDeviceRequest) -> send_event_to_device::v3::Request {
    send_event_to_device::v3::Request::new_raw(r.event_type.clone(), r.txn_id.clone(), r.messages.clone())
}

fn kind(request: &AnyOutgoingRequest) -> &'static str {
    match request {
        AnyOutgoingRequest::KeysUpload(_) => "keys_upload",
        AnyOutgoingRequest::KeysQuery(_) => "keys_query",
        AnyOutgoingRequest::KeysClaim(_) => "keys_claim",
        AnyOutgoingRequest::ToDeviceRequest(_) => "to_device",
        AnyOutgoingRequest::SignatureUpload(_) => "signature_upload",
        AnyOutgoingRequest::RoomMessage(_) => "room_message",
    }
}

/// Drops an msc machine inside the runtime (matrix-sdk-sqlite's connection pool closes its
/// connections on tokio's blocking pool).
pub fn close(device: MscDevice) {
    RUNTIME.with(|rt| {
        let _guard = rt.enter();
        drop(device);
    });
}

/// Opens (or creates) matrix-sdk-sqlite's crypto store in `dir`.
pub fn sqlite_store(dir: &std::path::Path) -> matrix_sdk_sqlite::SqliteCryptoStore {
    block_on(matrix_sdk_sqlite::SqliteCryptoStore::open(dir, Some("msc store passphrase"))).unwrap()
}
