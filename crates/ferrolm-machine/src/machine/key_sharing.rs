//! The glue of key requests and forwarded keys: load, call `key_requests`, commit.

use std::collections::BTreeMap;

use ferrolm::types::Curve25519PublicKey;
use ferrolm_store::{Backend, OutgoingRequest as StoredRequest, RequestKind};
use ruma::events::AnySyncTimelineEvent;
use ruma::serde::Raw;
use ruma::to_device::DeviceIdOrAllDevices;
use ruma::{OwnedDeviceId, OwnedUserId, RoomId};
use serde_json::Value;

use super::{OlmMachine, Step, push_to_device, push_to_device_of_type, raw_content};
use crate::adapt::{device_to_store, olm_session_id, user_to_store, zeroize_strings};
use crate::devices::Device;
use crate::error::MachineError;
use crate::key_requests::{self, KeyRequestOutcome, KeyRequestRefusal};
use crate::olm_channel::{self, DecryptedToDeviceEvent, Sender};
use crate::own_device::{self, MEGOLM_ALGORITHM};
use crate::room_keys_in::{self, RoomKeyInfo, RoomKeyOutcome, RoomKeyRejection};
use crate::sync::SyncOutcome;

impl<B: Backend> OlmMachine<B> {
    /// Asks the own other devices for a room key (after an event that did not decrypt for
    /// want of it). Only verified own devices answer, and only their answers are accepted.
    /// `None` if a request for this session is already pending.
    pub fn request_room_key(&mut self, room_id: &RoomId, session_id: &str) -> Result<Option<String>, MachineError> {
        let mut step = self.begin();
        let request_id = self.queue_room_key_request(&mut step, room_id, session_id, None)?;
        if request_id.is_some() {
            self.commit(step)?;
        }
        Ok(request_id)
    }

    /// Queues an `m.room_key_request` for a session to every own device, and to every device
    /// of `sender` (the session's sender, after its device's Olm session was wedged) when
    /// given; saved in the step. `None` if a request for the session is already pending.
    pub(super) fn queue_room_key_request(
        &mut self,
        step: &mut Step,
        room_id: &RoomId,
        session_id: &str,
        sender: Option<&ruma::UserId>,
    ) -> Result<Option<String>, MachineError> {
        let is_it = |r: &StoredRequest| {
            matches!(&r.kind, RequestKind::RoomKey { room_id: r_room, session_id: s, .. }
                if r_room.as_str() == room_id.as_str() && s == session_id)
        };
        if step.changes.outgoing_requests.iter().any(is_it) || self.store.outgoing_requests()?.iter().any(is_it) {
            return Ok(None);
        }
        let request_id = self.new_request_id();
        step.changes.outgoing_requests.push(StoredRequest {
            request_id: request_id.clone(),
            recipient: user_to_store(sender.unwrap_or(&self.user_id)),
            kind: RequestKind::RoomKey {
                room_id: room_id.as_str().into(),
                session_id: session_id.to_owned(),
                sender_key: None,
                algorithm: MEGOLM_ALGORITHM.to_owned(),
            },
            sent: true,
        });
        let content = key_requests::request_content(&request_id, &self.device_id, room_id.as_str(), session_id);
        let mut users = vec![self.user_id.clone()];
        users.extend(sender.filter(|s| *s != self.user_id).map(ToOwned::to_owned));
        self.queue_key_request_to(step, &content, &users)?;
        Ok(Some(request_id))
    }

    /// Rule ("Recovering from undecryptable messages"): once the Olm session with the device
    /// that sent `event` was found wedged (within the hour), a room key missing for the event
    /// is requested again, from the sender's devices as well as the own ones; after the
    /// recovery's `m.dummy` is queued, so that the answer comes over the new session. The
    /// event's (deprecated) `sender_key` or `device_id` only routes the request: the answer is
    /// checked on its own.
    pub(super) fn rerequest_after_recovery(
        &mut self,
        step: &mut Step,
        event: &Raw<AnySyncTimelineEvent>,
        room_id: &RoomId,
    ) -> Result<(), MachineError> {
        #[derive(serde::Deserialize)]
        struct Event {
            sender: OwnedUserId,
            content: Content,
        }
        #[derive(serde::Deserialize)]
        struct Content {
            session_id: String,
            #[serde(default)]
            sender_key: Option<String>,
            #[serde(default)]
            device_id: Option<OwnedDeviceId>,
        }
        let Ok(event) = serde_json::from_str::<Event>(event.json().get()) else { return Ok(()) };
        let key = match (&event.content.sender_key, &event.content.device_id) {
            (Some(key), _) => Curve25519PublicKey::from_base64(key).ok(),
            (None, Some(device)) => self
                .store
                .device(&user_to_store(&event.sender), &device_to_store(device))?
                .and_then(|d| d.curve25519_key),
            (None, None) => None,
        };
        let Some(key) = key else { return Ok(()) };
        let now = self.env.now_ms();
        let recent = step
            .state
            .channel
            .recovery_started
            .get(&key)
            .is_some_and(|started| now.saturating_sub(*started) < olm_channel::WEDGE_RECOVERY_INTERVAL_MS);
        if !recent {
            return Ok(());
        }
        let session_id = event.content.session_id;
        if step.state.channel.wedged.values().any(|k| *k == key) {
            let list = step.state.channel.rerequests.entry(key).or_default();
            if !list.iter().any(|(r, s, _)| r == room_id && *s == session_id) {
                list.push((room_id.to_owned(), session_id, event.sender));
            }
        } else {
            self.queue_room_key_request(step, room_id, &session_id, Some(&event.sender))?;
        }
        Ok(())
    }

    /// The room keys waiting for the recovery of `key`'s device, requested now.
    pub(super) fn rerequest_recovered(
        &mut self,
        step: &mut Step,
        key: &Curve25519PublicKey,
    ) -> Result<(), MachineError> {
        for (room, session_id, sender) in step.state.channel.rerequests.remove(key).unwrap_or_default() {
            self.queue_room_key_request(step, &room, &session_id, Some(&sender))?;
        }
        Ok(())
    }

    /// Queues an `m.room_key_request` (request or cancellation) to every device of `users`.
    fn queue_key_request_to(
        &mut self,
        step: &mut Step,
        content: &Value,
        users: &[OwnedUserId],
    ) -> Result<(), MachineError> {
        let mut messages: ruma::api::client::to_device::send_event_to_device::v3::Messages = BTreeMap::new();
        for user in users {
            messages.entry(user.clone()).or_default().insert(DeviceIdOrAllDevices::AllDevices, raw_content(content)?);
        }
        let txn_id = self.new_request_id();
        push_to_device_of_type(step, txn_id, "m.room_key_request", messages)
    }

    /// Answers an `m.room_key_request` from another own device, if the rules allow.
    pub(super) fn receive_key_request(
        &mut self,
        step: &mut Step,
        sender: &str,
        content: &Value,
        sync: &mut SyncOutcome,
    ) -> Result<(), MachineError> {
        let request = match key_requests::read_request(content) {
            Ok(r) => r,
            Err(e) => {
                sync.key_requests.push(KeyRequestOutcome {
                    request_id: String::new(),
                    requesting_device_id: None,
                    result: Err(e),
                });
                return Ok(());
            }
        };
        let Some(body) = request.body.clone() else { return Ok(()) }; // a cancellation: nothing pending here
        let is_own_echo =
            sender == self.user_id.as_str() && request.requesting_device_id.as_deref() == Some(&*self.device_id);
        if is_own_echo {
            return Ok(());
        }
        let result = self.answer_key_request(step, sender, &request.requesting_device_id, &body)?;
        sync.key_requests.push(KeyRequestOutcome {
            request_id: request.request_id,
            requesting_device_id: request.requesting_device_id,
            result,
        });
        Ok(())
    }

    fn answer_key_request(
        &mut self,
        step: &mut Step,
        sender: &str,
        requesting_device: &Option<OwnedDeviceId>,
        body: &key_requests::RequestBody,
    ) -> Result<Result<(), KeyRequestRefusal>, MachineError> {
        let Ok(sender) = OwnedUserId::try_from(sender) else {
            return Ok(Err(KeyRequestRefusal::Malformed("sender".into())));
        };
        let requester = match requesting_device {
            Some(id) => {
                self.store.device(&user_to_store(&sender), &device_to_store(id))?.as_ref().and_then(Device::from_record)
            }
            None => None,
        };
        let requester_verified = match &requester {
            Some(d) => self.device_trust_cached(&mut None, d)?.is_verified(),
            None => false,
        };
        let own_rule = key_requests::check_key_request(
            &self.user_id,
            &self.device_id,
            &sender,
            requester.as_ref(),
            requester_verified,
        );
        let own_curve = step.state.own.account.curve25519_key();
        let room = ferrolm_store::RoomId::from(body.room_id.as_str());
        let (requester, record, reshare_from) = match (own_rule, requester) {
            (Ok(()), Some(requester)) => {
                if body.algorithm != MEGOLM_ALGORITHM {
                    return Ok(Err(KeyRequestRefusal::Malformed("algorithm".into())));
                }
                let Some(record) = self.stored_room_key(step, &room, &body.session_id)? else {
                    return Ok(Err(KeyRequestRefusal::UnknownSession));
                };
                (requester, record, None)
            }
            (Ok(()), None) => return Ok(Err(KeyRequestRefusal::UnverifiedDevice)),
            // Not a verified own device: answered only if this device created the session and
            // shared it with the requester, from the index it got then.
            (Err(refusal), requester) => {
                let record = match (&requester, body.algorithm == MEGOLM_ALGORITHM) {
                    (Some(_), true) => self.stored_room_key(step, &room, &body.session_id)?,
                    _ => None,
                };
                let (Some(requester), Some(record)) = (requester, record) else { return Ok(Err(refusal)) };
                let shares = self.store.outbound_shares(&room, &body.session_id)?;
                match key_requests::check_reshare(&own_curve, &record, &shares, &requester) {
                    Ok(index) => (requester, record, Some(index)),
                    Err(_) => return Ok(Err(refusal)),
                }
            }
        };
        let Some(mut content) = key_requests::forwarded_key_content(&record, &own_curve, reshare_from) else {
            return Ok(Err(KeyRequestRefusal::UnknownSession));
        };
        if !self.queue_olm_to_device(step, &requester, "m.forwarded_room_key", &mut content)? {
            return Ok(Err(KeyRequestRefusal::NoOlmSession));
        }
        Ok(Ok(()))
    }

    /// Encrypts `content` as `event_type` to `device` over the session that last decrypted
    /// and queues it; `content` is zeroized in every case (it carries a key or a secret).
    /// `false` when there is no Olm session with the device.
    pub(super) fn queue_olm_to_device(
        &mut self,
        step: &mut Step,
        device: &Device,
        event_type: &str,
        content: &mut Value,
    ) -> Result<bool, MachineError> {
        let encrypted = self.encrypt_olm_to_device(step, device, event_type, content);
        zeroize_strings(content);
        let Some(encrypted) = encrypted? else { return Ok(false) };
        let mut messages: ruma::api::client::to_device::send_event_to_device::v3::Messages = BTreeMap::new();
        messages
            .entry(device.user_id.clone())
            .or_default()
            .insert(DeviceIdOrAllDevices::DeviceId(device.device_id.clone()), raw_content(&encrypted)?);
        let txn_id = self.new_request_id();
        push_to_device(step, txn_id, messages)?;
        Ok(true)
    }

    fn encrypt_olm_to_device(
        &mut self,
        step: &mut Step,
        device: &Device,
        event_type: &str,
        content: &Value,
    ) -> Result<Option<Value>, MachineError> {
        let now = self.env.now_ms();
        let device_keys =
            own_device::device_keys(&step.state.own.account, self.user_id.as_str(), self.device_id.as_str())?;
        let sender_info = Sender {
            user_id: &self.user_id,
            device_id: &self.device_id,
            account: &step.state.own.account,
            device_keys: &device_keys,
        };
        let list = step.sessions.with(&self.store, device.curve25519_key)?;
        let Some(session) = olm_channel::session_for_sending(list).and_then(|i| list.get_mut(i)) else {
            return Ok(None);
        };
        let encrypted = olm_channel::encrypt(&sender_info, session, device, event_type, content, self.env.rng(), now)?;
        let id = olm_session_id(&session.session);
        step.sessions.touch(device.curve25519_key, id);
        Ok(Some(encrypted))
    }

    /// Accepts an `m.forwarded_room_key` if the rules allow; cancels the answered request.
    pub(super) fn receive_forwarded_key(
        &mut self,
        step: &mut Step,
        event: &DecryptedToDeviceEvent,
    ) -> Result<RoomKeyOutcome, MachineError> {
        let sender_device = match &event.sender_device {
            Some(id) => self
                .store
                .device(&user_to_store(&event.sender), &device_to_store(id))?
                .as_ref()
                .and_then(Device::from_record),
            None => None,
        };
        let requests = self.store.outgoing_requests()?;
        let sender_verified = match &sender_device {
            Some(d) => self.device_trust_cached(&mut None, d)?.is_verified(),
            None => false,
        };
        let (record, request_id) = match key_requests::check_forwarded_key(
            &self.user_id,
            event,
            sender_device.as_ref(),
            sender_verified,
            &requests,
        ) {
            Ok(r) => r,
            Err(e) => {
                return Ok(RoomKeyOutcome::Refused {
                    room_id: event.content.get("room_id").and_then(Value::as_str).map(str::to_owned),
                    session_id: event.content.get("session_id").and_then(Value::as_str).map(str::to_owned),
                    reason: RoomKeyRejection::Forwarded(e),
                });
            }
        };
        let room = record.room_id.clone();
        let session_id = record.session_id();
        let stored = self.stored_room_key(step, &room, &session_id)?;
        match room_keys_in::check_room_key_update(stored.as_ref(), record) {
            Ok(record) => {
                let info = RoomKeyInfo {
                    room_id: ruma::OwnedRoomId::try_from(room.as_str())
                        .map_err(|e| MachineError::Internal(e.to_string()))?,
                    session_id,
                    sender: event.sender.clone(),
                    sender_key: record.sender_key,
                    first_known_index: record.first_known_index(),
                };
                step.changes.inbound_group_sessions.push(record);
                // Answered: forget the request and cancel it at the other devices (the
                // sender's too, when it was asked).
                step.changes.deletions.outgoing_requests.push(request_id.clone());
                let cancel = key_requests::cancellation_content(&request_id, &self.device_id);
                let mut users = vec![self.user_id.clone()];
                let asked = requests.iter().find(|r| r.request_id == request_id).map(|r| r.recipient.as_str());
                if let Some(asked) = asked.filter(|a| *a != self.user_id.as_str()) {
                    users.extend(OwnedUserId::try_from(asked).ok());
                }
                self.queue_key_request_to(step, &cancel, &users)?;
                Ok(RoomKeyOutcome::Accepted(info))
            }
            Err(reason) => {
                Ok(RoomKeyOutcome::Refused { room_id: Some(room.to_string()), session_id: Some(session_id), reason })
            }
        }
    }
}
