//! Incoming verification events, read from untrusted JSON into typed values.
//!
//! Every field a transition needs is checked here, so the state machine never sees a
//! malformed event: a bad field is an [`EventError`] that names the flow when it can, and the
//! flow is cancelled with `m.invalid_message` (never when the bad event is itself a cancel).

use ferrolm::types::{Curve25519PublicKey, base64_decode};
use ruma::{OwnedDeviceId, OwnedEventId, OwnedRoomId, OwnedUserId, RoomId};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::FlowId;

/// Where an event came from.
#[derive(Debug, Clone, Copy)]
pub enum Transport<'a> {
    /// A to-device event (the flow id is its `transaction_id`).
    ToDevice,
    /// A room event: its room, event id and `origin_server_ts`.
    Room {
        /// The room.
        room_id: &'a RoomId,
        /// The event's id (the flow id when it is a request).
        event_id: &'a ruma::EventId,
        /// `origin_server_ts` (the request's timestamp, in-room).
        origin_server_ts: u64,
    },
}

/// A verification event, checked and typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingEvent {
    /// The sender (from the envelope: the homeserver vouches for it).
    pub sender: OwnedUserId,
    /// The flow it belongs to.
    pub flow_id: FlowId,
    /// What it says.
    pub kind: EventKind,
}

/// The content of a verification event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// `m.key.verification.request` (or the in-room `m.room.message` of that msgtype).
    Request {
        /// `from_device`.
        from_device: OwnedDeviceId,
        /// `methods`.
        methods: Vec<String>,
        /// `timestamp` (to-device) or `origin_server_ts` (in-room), in ms.
        timestamp_ms: u64,
        /// In-room only: `to`, the user asked.
        to: Option<OwnedUserId>,
    },
    /// `m.key.verification.ready`.
    Ready {
        /// `from_device`.
        from_device: OwnedDeviceId,
        /// `methods`.
        methods: Vec<String>,
    },
    /// `m.key.verification.start`.
    Start(Start),
    /// `m.key.verification.accept` (`m.sas.v1`).
    Accept(Accept),
    /// `m.key.verification.key`.
    Key(Curve25519PublicKey),
    /// `m.key.verification.mac`.
    Mac(Mac),
    /// `m.key.verification.done`.
    Done,
    /// `m.key.verification.cancel`.
    Cancel {
        /// `code`.
        code: String,
        /// `reason`.
        reason: String,
    },
}

/// `m.key.verification.start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// `from_device`.
    pub from_device: OwnedDeviceId,
    /// The method and its parameters.
    pub method: StartMethod,
    /// The whole content as received (the SAS commitment hashes it).
    pub content: Map<String, Value>,
}

/// The method of a start event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartMethod {
    /// `m.sas.v1` with what the starter offers.
    Sas {
        /// `key_agreement_protocols`.
        key_agreement_protocols: Vec<String>,
        /// `hashes`.
        hashes: Vec<String>,
        /// `message_authentication_codes`.
        message_authentication_codes: Vec<String>,
        /// `short_authentication_string`.
        short_authentication_string: Vec<String>,
    },
    /// `m.reciprocate.v1` with the scanned secret.
    Reciprocate {
        /// `secret`, decoded.
        secret: Zeroizing<Vec<u8>>,
    },
    /// Any other method (answered with `m.unknown_method`).
    Other(String),
}

/// `m.key.verification.accept`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept {
    /// `key_agreement_protocol`.
    pub key_agreement_protocol: String,
    /// `hash`.
    pub hash: String,
    /// `message_authentication_code`.
    pub message_authentication_code: String,
    /// `short_authentication_string`.
    pub short_authentication_string: Vec<String>,
    /// `commitment`, decoded (32 bytes).
    pub commitment: [u8; 32],
}

/// `m.key.verification.mac`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mac {
    /// `mac`: key id → MAC (as sent: base64, or libolm's legacy encoding).
    pub mac: std::collections::BTreeMap<String, String>,
    /// `keys`: the MAC of the sorted, comma-joined key ids.
    pub keys: String,
}

/// Why an event was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{event_type}: {reason}")]
pub struct EventError {
    /// The sender, when readable.
    pub sender: Option<OwnedUserId>,
    /// The event type.
    pub event_type: String,
    /// The flow, when it could be read (the flow is then cancelled with `m.invalid_message`).
    pub flow_id: Option<FlowId>,
    /// What was wrong.
    pub reason: String,
}

/// Whether an event type belongs to key verification.
pub fn is_verification_event_type(event_type: &str) -> bool {
    event_type.starts_with("m.key.verification.")
}

/// Reads a verification event of `event_type` from `sender` with `content`.
///
/// For in-room events pass the `m.room.message` of msgtype `m.key.verification.request`
/// with `event_type` `m.room.message`. Never panics on any input.
pub fn parse_event(
    event_type: &str,
    sender: &str,
    content: &Value,
    transport: Transport<'_>,
) -> Result<IncomingEvent, EventError> {
    let mut error =
        EventError { sender: None, event_type: event_type.to_owned(), flow_id: None, reason: String::new() };
    let fail = |mut e: EventError, reason: String| {
        e.reason = reason;
        e
    };
    let sender = match OwnedUserId::try_from(sender) {
        Ok(s) => s,
        Err(e) => return Err(fail(error, format!("sender: {e}"))),
    };
    error.sender = Some(sender.clone());
    let Some(content) = content.as_object() else { return Err(fail(error, "content is not an object".into())) };

    let is_room_request = event_type == "m.room.message";
    if is_room_request && content.get("msgtype").and_then(Value::as_str) != Some("m.key.verification.request") {
        return Err(fail(error, "not a verification request".into()));
    }
    let flow_id = match flow_id_of(content, transport, is_room_request) {
        Ok(f) => f,
        Err(reason) => return Err(fail(error, reason)),
    };
    error.flow_id = Some(flow_id.clone());
    let kind = match read_kind(event_type, content, transport, is_room_request) {
        Ok(k) => k,
        Err(reason) => return Err(fail(error, reason)),
    };
    Ok(IncomingEvent { sender, flow_id, kind })
}

fn flow_id_of(content: &Map<String, Value>, transport: Transport<'_>, is_room_request: bool) -> Result<FlowId, String> {
    match transport {
        Transport::ToDevice => {
            let id = str_field(content, "transaction_id")?;
            if id.is_empty() || id.len() > 255 {
                return Err("transaction_id is empty or too long".into());
            }
            Ok(FlowId::ToDevice(id.to_owned()))
        }
        Transport::Room { room_id, event_id, .. } => {
            let event_id: OwnedEventId = if is_room_request {
                event_id.to_owned()
            } else {
                let relates = content
                    .get("m.relates_to")
                    .and_then(Value::as_object)
                    .ok_or_else(|| "m.relates_to is missing".to_owned())?;
                if relates.get("rel_type").and_then(Value::as_str) != Some("m.reference") {
                    return Err("m.relates_to is not an m.reference".into());
                }
                let id = str_field(relates, "event_id")?;
                OwnedEventId::try_from(id).map_err(|e| format!("m.relates_to.event_id: {e}"))?
            };
            Ok(FlowId::InRoom { room_id: OwnedRoomId::from(room_id), event_id })
        }
    }
}

fn read_kind(
    event_type: &str,
    content: &Map<String, Value>,
    transport: Transport<'_>,
    is_room_request: bool,
) -> Result<EventKind, String> {
    if is_room_request {
        let Transport::Room { origin_server_ts, .. } = transport else {
            return Err("a room message sent to-device".into());
        };
        let to = OwnedUserId::try_from(str_field(content, "to")?).map_err(|e| format!("to: {e}"))?;
        return Ok(EventKind::Request {
            from_device: device_field(content)?,
            methods: strings(content, "methods")?,
            timestamp_ms: origin_server_ts,
            to: Some(to),
        });
    }
    Ok(match event_type {
        "m.key.verification.request" => {
            if !matches!(transport, Transport::ToDevice) {
                return Err("an in-room request must be an m.room.message".into());
            }
            let timestamp_ms =
                content.get("timestamp").and_then(Value::as_u64).ok_or_else(|| "timestamp is missing".to_owned())?;
            EventKind::Request {
                from_device: device_field(content)?,
                methods: strings(content, "methods")?,
                timestamp_ms,
                to: None,
            }
        }
        "m.key.verification.ready" => {
            EventKind::Ready { from_device: device_field(content)?, methods: strings(content, "methods")? }
        }
        "m.key.verification.start" => {
            let method = match str_field(content, "method")? {
                super::SAS_METHOD => StartMethod::Sas {
                    key_agreement_protocols: strings(content, "key_agreement_protocols")?,
                    hashes: strings(content, "hashes")?,
                    message_authentication_codes: strings(content, "message_authentication_codes")?,
                    short_authentication_string: strings(content, "short_authentication_string")?,
                },
                super::RECIPROCATE_METHOD => {
                    let secret = base64_decode(str_field(content, "secret")?).map_err(|_| "secret is not base64")?;
                    StartMethod::Reciprocate { secret: Zeroizing::new(secret) }
                }
                other => StartMethod::Other(other.to_owned()),
            };
            EventKind::Start(Start { from_device: device_field(content)?, method, content: content.clone() })
        }
        "m.key.verification.accept" => {
            // The spec's accept has no `method` (only SAS is accepted; matrix-sdk-crypto sends
            // none): absent is m.sas.v1, present must say so.
            if content.get("method").is_some() && str_field(content, "method")? != super::SAS_METHOD {
                return Err("accept for another method than m.sas.v1".into());
            }
            let commitment =
                base64_decode(str_field(content, "commitment")?).map_err(|_| "commitment is not base64")?;
            EventKind::Accept(Accept {
                key_agreement_protocol: str_field(content, "key_agreement_protocol")?.to_owned(),
                hash: str_field(content, "hash")?.to_owned(),
                message_authentication_code: str_field(content, "message_authentication_code")?.to_owned(),
                short_authentication_string: strings(content, "short_authentication_string")?,
                commitment: commitment.as_slice().try_into().map_err(|_| "commitment is not 32 bytes")?,
            })
        }
        "m.key.verification.key" => {
            let key = Curve25519PublicKey::from_base64(str_field(content, "key")?)
                .map_err(|_| "key is not a 32-byte base64 Curve25519 key")?;
            EventKind::Key(key)
        }
        "m.key.verification.mac" => {
            let mac = content
                .get("mac")
                .and_then(Value::as_object)
                .ok_or_else(|| "mac is missing".to_owned())?
                .iter()
                .map(|(k, v)| {
                    v.as_str().map(|v| (k.clone(), v.to_owned())).ok_or_else(|| format!("mac {k} is not a string"))
                })
                .collect::<Result<_, _>>()?;
            EventKind::Mac(Mac { mac, keys: str_field(content, "keys")?.to_owned() })
        }
        "m.key.verification.done" => EventKind::Done,
        "m.key.verification.cancel" => EventKind::Cancel {
            code: str_field(content, "code")?.to_owned(),
            reason: content.get("reason").and_then(Value::as_str).unwrap_or_default().to_owned(),
        },
        other => return Err(format!("unknown verification event type {other}")),
    })
}

fn str_field<'a>(content: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    content.get(name).and_then(Value::as_str).ok_or_else(|| format!("{name} is missing or not a string"))
}

fn device_field(content: &Map<String, Value>) -> Result<OwnedDeviceId, String> {
    let id = str_field(content, "from_device")?;
    if id.is_empty() {
        return Err("from_device is empty".into());
    }
    Ok(OwnedDeviceId::from(id))
}

fn strings(content: &Map<String, Value>, name: &str) -> Result<Vec<String>, String> {
    content
        .get(name)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{name} is missing or not a list"))?
        .iter()
        .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| format!("{name} holds a non-string")))
        .collect()
}
