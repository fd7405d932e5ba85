//! The glue of key requests and forwarded keys: load, call `key_requests`, commit.

use std::collections::BTreeMap;

use ferrolm_store::{Backend, OutgoingRequest as StoredRequest, RequestKind};
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
        let pending = self.store.outgoing_requests()?.into_iter().any(|r| {
            matches!(&r.kind, RequestKind::RoomKey { room_id: r_room, session_id: s, .. }
                if r_room.as_str() == room_id.as_str() && s == session_id)
        });
        if pending {
            return Ok(None);
        }
        let request_id = self.new_request_id();
        step.changes.outgoing_requests.push(StoredRequest {
            request_id: request_id.clone(),
            recipient: user_to_store(&self.user_id),
            kind: RequestKind::RoomKey {
                room_id: room_id.as_str().into(),
                session_id: session_id.to_owned(),
                sender_key: None,
                algorithm: MEGOLM_ALGORITHM.to_owned(),
            },
            sent: true,
        });
        let content = key_requests::request_content(&request_id, &self.device_id, room_id.as_str(), session_id);
        self.queue_to_own_devices(&mut step, &content)?;
        self.commit(step)?;
        Ok(Some(request_id))
    }

    /// Queues an `m.room_key_request` (request or cancellation) to every own device.
    fn queue_to_own_devices(&mut self, step: &mut Step, content: &Value) -> Result<(), MachineError> {
        let mut messages: ruma::api::client::to_device::send_event_to_device::v3::Messages = BTreeMap::new();
        messages
            .entry(self.user_id.clone())
            .or_default()
            .insert(DeviceIdOrAllDevices::AllDevices, raw_content(content)?);
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
        if let Err(e) = key_requests::check_key_request(
            &self.user_id,
            &self.device_id,
            &sender,
            requester.as_ref(),
            requester_verified,
        ) {
            return Ok(Err(e));
        }
        let Some(requester) = requester else { return Ok(Err(KeyRequestRefusal::UnverifiedDevice)) };
        if body.algorithm != MEGOLM_ALGORITHM {
            return Ok(Err(KeyRequestRefusal::Malformed("algorithm".into())));
        }
        let room = ferrolm_store::RoomId::from(body.room_id.as_str());
        let Some(record) = self.stored_room_key(step, &room, &body.session_id)? else {
            return Ok(Err(KeyRequestRefusal::UnknownSession));
        };
        let now = self.env.now_ms();
        let own_curve = step.state.own.account.curve25519_key();
        let mut content = key_requests::forwarded_key_content(&record, &own_curve);
        let device_keys =
            own_device::device_keys(&step.state.own.account, self.user_id.as_str(), self.device_id.as_str())?;
        let sender_info = Sender {
            user_id: &self.user_id,
            device_id: &self.device_id,
            account: &step.state.own.account,
            device_keys: &device_keys,
        };
        let list = step.sessions.with(&self.store, requester.curve25519_key)?;
        let Some(session) = olm_channel::session_for_sending(list).and_then(|i| list.get_mut(i)) else {
            zeroize_strings(&mut content);
            return Ok(Err(KeyRequestRefusal::NoOlmSession));
        };
        let encrypted = olm_channel::encrypt(
            &sender_info,
            session,
            &requester,
            "m.forwarded_room_key",
            &content,
            self.env.rng(),
            now,
        );
        zeroize_strings(&mut content);
        let encrypted = encrypted?;
        let id = olm_session_id(&session.session);
        step.sessions.touch(requester.curve25519_key, id);
        let mut messages: ruma::api::client::to_device::send_event_to_device::v3::Messages = BTreeMap::new();
        messages
            .entry(requester.user_id.clone())
            .or_default()
            .insert(DeviceIdOrAllDevices::DeviceId(requester.device_id.clone()), raw_content(&encrypted)?);
        let txn_id = self.new_request_id();
        push_to_device(step, txn_id, messages)?;
        Ok(Ok(()))
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
                // Answered: forget the request and cancel it at the other devices.
                step.changes.deletions.outgoing_requests.push(request_id.clone());
                let cancel = key_requests::cancellation_content(&request_id, &self.device_id);
                self.queue_to_own_devices(step, &cancel)?;
                Ok(RoomKeyOutcome::Accepted(info))
            }
            Err(reason) => {
                Ok(RoomKeyOutcome::Refused { room_id: Some(room.to_string()), session_id: Some(session_id), reason })
            }
        }
    }
}
