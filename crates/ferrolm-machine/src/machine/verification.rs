//! The glue of key verification: to-device `m.key.verification.*` events from sync go to
//! [`crate::verification`]; its messages go out as to-device requests (or back to the app
//! for in-room flows); successful verifications mark devices verified in the same change set.

use std::collections::BTreeMap;

use ferrolm::types::Ed25519PublicKey;
use ferrolm_store::{Backend, Store};
use ruma::api::client::to_device::send_event_to_device;
use ruma::events::AnySyncTimelineEvent;
use ruma::serde::Raw;
use ruma::to_device::DeviceIdOrAllDevices;
use ruma::{DeviceId, OwnedDeviceId, OwnedRoomId, RoomId, UserId};
use serde_json::Value;

use super::{OlmMachine, Step, push_to_device_of_type, raw_content};
use crate::adapt::{device_to_store, user_to_store};
use crate::devices::Device;
use crate::error::MachineError;
use crate::identities::{StoredIdentity, Trust};
use crate::olm_channel::{PlaintextRejection, ToDeviceError};
use crate::sync::{SyncOutcome, ToDeviceOutcome};
use crate::verification::qr::QrCode;
use crate::verification::{
    self, Context, FlowId, KeySource, Output, Recipient, SasDisplay, Transport, VerificationInfo, VerificationOutcome,
    Verifications,
};

/// A room message an in-room verification wants sent: the app sends `content` as a room event
/// of `event_type` in `room_id` (encrypted like any other message of the room).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomVerificationMessage {
    /// The room.
    pub room_id: OwnedRoomId,
    /// The event type.
    pub event_type: String,
    /// The content.
    pub content: Value,
}

/// What a verification call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerificationStep {
    /// Queued to-device requests ([`OlmMachine::outgoing_requests`] lists them).
    pub request_ids: Vec<String>,
    /// Room messages for the app to send (in-room flows).
    pub room_messages: Vec<RoomVerificationMessage>,
    /// Flows whose state changed.
    pub updates: Vec<VerificationInfo>,
    /// Verifications that succeeded (their devices are marked verified already).
    pub verified: Vec<VerificationOutcome>,
}

/// The machine's keys for verification: devices and cross-signing identities from the store.
struct StoreKeys<'a, B: Backend> {
    store: &'a Store<B>,
    own_user: &'a UserId,
}

impl<B: Backend> KeySource for StoreKeys<'_, B> {
    fn device_key(&self, user_id: &UserId, device_id: &DeviceId) -> Option<Ed25519PublicKey> {
        let record = self.store.device(&user_to_store(user_id), &device_to_store(device_id)).ok()??;
        Device::from_record(&record).filter(|d| !d.deleted).map(|d| d.ed25519_key)
    }

    /// The stored (validated) master key of `user_id`, own or another user's.
    fn master_key(&self, user_id: &UserId) -> Option<Ed25519PublicKey> {
        let record = self.store.identity(&user_to_store(user_id)).ok()??;
        StoredIdentity::from_record(record).map(|identity| identity.master)
    }

    /// Whether our own identity is trusted (verified, or its private master key held).
    fn own_master_trusted(&self) -> bool {
        Trust::load(self.store, self.own_user).ok().and_then(|trust| trust.own_trusted()).is_some()
    }
}

impl<B: Backend> OlmMachine<B> {
    /// Runs `f` on the verifications with a context built from the machine.
    fn with_verifications<T>(&mut self, f: impl FnOnce(&mut Verifications, &mut Context<'_>) -> T) -> T {
        let keys = StoreKeys { store: &self.store, own_user: &self.user_id };
        let now_ms = self.env.now_ms();
        let mut ctx = Context {
            user_id: &self.user_id,
            device_id: &self.device_id,
            ed25519: self.state.own.account.identity_keys().ed25519,
            keys: &keys,
            rng: self.env.rng(),
            now_ms,
        };
        f(&mut self.verifications, &mut ctx)
    }

    /// Runs a verification call as one machine step: its messages queued, its outcomes applied.
    fn verification_step(
        &mut self,
        f: impl FnOnce(&mut Verifications, &mut Context<'_>) -> Result<Output, verification::VerificationError>,
    ) -> Result<VerificationStep, MachineError> {
        let output = self.with_verifications(f)?;
        let mut step = self.begin();
        let result = self.apply_verification_output(&mut step, output)?;
        self.commit(step)?;
        Ok(result)
    }

    /// Queues the messages of `output` and applies its verified outcomes to `step`.
    fn apply_verification_output(&mut self, step: &mut Step, output: Output) -> Result<VerificationStep, MachineError> {
        let mut result = VerificationStep { updates: output.updates, ..VerificationStep::default() };
        for message in output.messages {
            let (user_id, targets) = match message.recipient {
                Recipient::Room(room_id) => {
                    result.room_messages.push(RoomVerificationMessage {
                        room_id,
                        event_type: message.event_type,
                        content: message.content,
                    });
                    continue;
                }
                Recipient::Devices { user_id, device_ids } => {
                    (user_id, device_ids.into_iter().map(DeviceIdOrAllDevices::DeviceId).collect::<Vec<_>>())
                }
                Recipient::AllDevices { user_id } => (user_id, vec![DeviceIdOrAllDevices::AllDevices]),
            };
            let raw = raw_content(&message.content)?;
            let mut messages: send_event_to_device::v3::Messages = BTreeMap::new();
            let by_device = messages.entry(user_id).or_default();
            for target in targets {
                by_device.insert(target, raw.clone());
            }
            let request_id = self.new_request_id();
            // Verification messages go in the clear, like other clients send them.
            push_to_device_of_type(step, request_id.clone(), &message.event_type, messages)?;
            result.request_ids.push(request_id);
        }
        for mut outcome in output.verified {
            self.apply_verified(step, &mut outcome)?;
            result.verified.push(outcome);
        }
        Ok(result)
    }

    /// Marks the verified devices verified (own devices also signed with the own self-signing
    /// key), if their stored key is still the verified one, and the verified master key:
    /// another user's signed with the own user-signing key, the own one trusted and signed by
    /// this device. The signature uploads are queued in the same step. A key that changed since
    /// the verification fixed it, or a user with a device named like a cross-signing key, is
    /// not marked, and is dropped from the outcome.
    fn apply_verified(&mut self, step: &mut Step, outcome: &mut VerificationOutcome) -> Result<(), MachineError> {
        let mut verified = Vec::new();
        for (device_id, key) in std::mem::take(&mut outcome.verified_devices) {
            match self.verify_device_in(step, &outcome.user_id, &device_id, &key) {
                Ok(_) => verified.push((device_id, key)),
                Err(MachineError::DeviceKeyMismatch { .. } | MachineError::InvalidArgument(_)) => {}
                Err(e) => return Err(e),
            }
        }
        outcome.verified_devices = verified;
        if let Some(master) = outcome.verified_master_key {
            match self.verify_identity_in(step, &outcome.user_id, &master) {
                Ok(_) => {}
                Err(
                    MachineError::MasterKeyMismatch { .. }
                    | MachineError::DeviceIdCollidesWithCrossSigningKey { .. }
                    | MachineError::InvalidArgument(_),
                ) => {
                    outcome.verified_master_key = None;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Routes a to-device verification event of a sync (in the clear or decrypted). A
    /// decrypted one whose `from_device` is not the device the Olm session authenticated is
    /// refused (the outcome becomes `Refused` with `SenderDeviceMismatch`) and never reaches
    /// a flow: the sending device would otherwise speak for another of its user's devices.
    pub(super) fn receive_verification_event(
        &mut self,
        step: &mut Step,
        outcome: &mut ToDeviceOutcome,
        sync: &mut SyncOutcome,
    ) -> Result<(), MachineError> {
        if let ToDeviceOutcome::Decrypted(event) = &*outcome {
            let claimed = event.content.get("from_device").and_then(Value::as_str);
            let forged = match (&event.sender_device, claimed) {
                (Some(device), Some(claimed)) => device.as_str() != claimed,
                _ => false,
            };
            if forged && verification::is_verification_event_type(&event.event_type) {
                *outcome = ToDeviceOutcome::Refused {
                    sender: Some(event.sender.to_string()),
                    sender_key: Some(event.sender_curve25519_key),
                    error: ToDeviceError::Plaintext(PlaintextRejection::SenderDeviceMismatch),
                };
                return Ok(());
            }
        }
        let (event_type, sender, content) = match &*outcome {
            ToDeviceOutcome::Plaintext(raw) => {
                let Ok(value) = serde_json::from_str::<Value>(raw.json().get()) else { return Ok(()) };
                let event_type = value.get("type").and_then(Value::as_str).unwrap_or_default().to_owned();
                let sender = value.get("sender").and_then(Value::as_str).unwrap_or_default().to_owned();
                (event_type, sender, value.get("content").cloned().unwrap_or(Value::Null))
            }
            ToDeviceOutcome::Decrypted(event) => {
                (event.event_type.clone(), event.sender.to_string(), event.content.clone())
            }
            ToDeviceOutcome::Refused { .. } => return Ok(()),
        };
        if !verification::is_verification_event_type(&event_type) {
            return Ok(());
        }
        let output = self.with_verifications(|v, ctx| {
            match verification::parse_event(&event_type, &sender, &content, Transport::ToDevice) {
                Ok(event) => v.receive(ctx, event),
                Err(error) => v.receive_malformed(ctx, &error),
            }
        });
        let result = self.apply_verification_output(step, output)?;
        sync.verifications.extend(result.updates);
        sync.verified.extend(result.verified);
        Ok(())
    }

    /// Expires verifications at the end of a sync step.
    pub(super) fn expire_verifications(&mut self, step: &mut Step, sync: &mut SyncOutcome) -> Result<(), MachineError> {
        let output = self.with_verifications(|v, ctx| v.expire(ctx));
        let result = self.apply_verification_output(step, output)?;
        sync.verifications.extend(result.updates);
        Ok(())
    }

    /// Asks `user_id` to verify: a to-device request to each of their known devices (our own
    /// other devices for self-verification). Once one answers, the others are told
    /// `m.accepted`. Returns the flow id.
    pub fn request_verification(&mut self, user_id: &UserId) -> Result<(FlowId, VerificationStep), MachineError> {
        let own_device = self.device_id.clone();
        let devices: Vec<OwnedDeviceId> = self
            .devices(user_id)?
            .into_iter()
            .filter(|d| !(d.deleted || (d.user_id == self.user_id && d.device_id == own_device)))
            .map(|d| d.device_id)
            .collect();
        let user = user_id.to_owned();
        let output = self.with_verifications(|v, ctx| v.request_to_device(ctx, &user, devices))?;
        let flow_id = output.0;
        let mut step = self.begin();
        let result = self.apply_verification_output(&mut step, output.1)?;
        self.commit(step)?;
        Ok((flow_id, result))
    }

    /// The content of an in-room verification request to `user_id` (send it as an
    /// `m.room.message` in a direct room with them, then pass its echo to
    /// [`OlmMachine::receive_room_verification_event`]: the flow's id is its event id).
    pub fn verification_request_content(&mut self, user_id: &UserId) -> Value {
        self.with_verifications(|_, ctx| Verifications::request_in_room_content(ctx, user_id))
    }

    /// Hands an in-room verification event (decrypted, if the room is encrypted) of `room_id`
    /// to the verification layer: a request (`m.room.message` of msgtype
    /// `m.key.verification.request`, our own echo included) or an `m.key.verification.*`
    /// event. Other events are ignored. The answer's room messages are for the app to send.
    pub fn receive_room_verification_event(
        &mut self,
        room_id: &RoomId,
        event: &Raw<AnySyncTimelineEvent>,
    ) -> Result<VerificationStep, MachineError> {
        let Ok(value) = serde_json::from_str::<Value>(event.json().get()) else {
            return Ok(VerificationStep::default());
        };
        let event_type = value.get("type").and_then(Value::as_str).unwrap_or_default().to_owned();
        let content = value.get("content").cloned().unwrap_or(Value::Null);
        let is_request = event_type == "m.room.message"
            && content.get("msgtype").and_then(Value::as_str) == Some("m.key.verification.request");
        if !(is_request || verification::is_verification_event_type(&event_type)) {
            return Ok(VerificationStep::default());
        }
        let sender = value.get("sender").and_then(Value::as_str).unwrap_or_default().to_owned();
        let Some(event_id) = value.get("event_id").and_then(Value::as_str).and_then(|e| ruma::EventId::parse(e).ok())
        else {
            return Ok(VerificationStep::default());
        };
        let origin_server_ts = value.get("origin_server_ts").and_then(Value::as_u64).unwrap_or(0);
        let room = room_id.to_owned();
        self.verification_step(|v, ctx| {
            let transport = Transport::Room { room_id: &room, event_id: &event_id, origin_server_ts };
            Ok(match verification::parse_event(&event_type, &sender, &content, transport) {
                Ok(event) => v.receive(ctx, event),
                Err(error) => v.receive_malformed(ctx, &error),
            })
        })
    }

    /// Accepts a verification request (`ready`) or a SAS start (`accept`).
    pub fn accept_verification(&mut self, user_id: &UserId, flow_id: &str) -> Result<VerificationStep, MachineError> {
        self.verification_step(|v, ctx| v.accept(ctx, user_id, flow_id))
    }

    /// Starts SAS in a ready verification.
    pub fn start_sas(&mut self, user_id: &UserId, flow_id: &str) -> Result<VerificationStep, MachineError> {
        self.verification_step(|v, ctx| v.start_sas(ctx, user_id, flow_id))
    }

    /// The user confirms that the emoji or numbers match (or, for a QR code we showed, that the
    /// other device shows that it scanned it). Devices are marked verified once both sides'
    /// MACs check out.
    pub fn confirm_verification(&mut self, user_id: &UserId, flow_id: &str) -> Result<VerificationStep, MachineError> {
        self.verification_step(|v, ctx| v.confirm(ctx, user_id, flow_id))
    }

    /// The user says the emoji or numbers differ: cancelled with `m.mismatched_sas`.
    pub fn sas_mismatch(&mut self, user_id: &UserId, flow_id: &str) -> Result<VerificationStep, MachineError> {
        self.verification_step(|v, ctx| v.mismatch(ctx, user_id, flow_id))
    }

    /// The user cancels a verification (`m.user`).
    pub fn cancel_verification(&mut self, user_id: &UserId, flow_id: &str) -> Result<VerificationStep, MachineError> {
        self.verification_step(|v, ctx| v.cancel(ctx, user_id, flow_id))
    }

    /// The SAS to show (emoji, when both sides agreed on them, and decimals) once keys are
    /// exchanged.
    pub fn sas_display(&self, user_id: &UserId, flow_id: &str) -> Option<SasDisplay> {
        self.verifications.sas_display(user_id, flow_id)
    }

    /// The QR code to show in a ready verification (render [`QrCode::to_bytes`] in byte mode).
    pub fn generate_qr_code(&mut self, user_id: &UserId, flow_id: &str) -> Result<QrCode, MachineError> {
        let (code, output) = self.with_verifications(|v, ctx| v.show_qr(ctx, user_id, flow_id))?;
        let mut step = self.begin();
        self.apply_verification_output(&mut step, output)?;
        self.commit(step)?;
        Ok(code)
    }

    /// A QR code the user scanned: checked against the keys we know, then the secret goes
    /// back (`m.reciprocate.v1`); a code with other keys cancels with `m.key_mismatch`.
    pub fn scan_qr_code(
        &mut self,
        user_id: &UserId,
        flow_id: &str,
        bytes: &[u8],
    ) -> Result<VerificationStep, MachineError> {
        self.verification_step(|v, ctx| v.scan_qr(ctx, user_id, flow_id, bytes))
    }

    /// Every verification this device knows of (expired ones are moved to cancelled first).
    pub fn verifications(&mut self) -> Result<Vec<VerificationInfo>, MachineError> {
        self.verification_step(|v, ctx| Ok(v.expire(ctx)))?;
        Ok(self.verifications.list())
    }

    /// One verification.
    pub fn verification(&self, user_id: &UserId, flow_id: &str) -> Option<VerificationInfo> {
        self.verifications.get(user_id, flow_id)
    }
}
