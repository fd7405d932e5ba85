//! Interactive key verification ("Key verification framework", "Short Authentication String
//! (SAS) verification", "QR codes"): requests, SAS (`m.sas.v1`) and QR codes
//! (`m.qr_code.show.v1`, `m.qr_code.scan.v1`, `m.reciprocate.v1`), as typed state machines.
//!
//! Sans-IO: [`Verifications`] takes events ([`parse_event`] reads them from untrusted JSON)
//! and the app's decisions, and gives back the messages to send ([`OutgoingMessage`]), the
//! state of every flow ([`VerificationState`]) and, when a flow succeeds, what it verified
//! ([`VerificationOutcome`]). [`crate::OlmMachine`] routes to-device events here, sends the
//! messages, and marks verified devices in the store.
//!
//! ## A flow
//!
//! ```text
//!  Requested ──ready──▶ Ready ──start(m.sas.v1)──▶ SasStarted ──accept──▶ (key sent)
//!  Received ──accept──▶ Ready ◀─start── SasStartReceived ──accept──▶ SasAccepted
//!                        │                                            │ key ⇄ key
//!                        ├─ show QR ─ start(m.reciprocate.v1) ─▶ QrReciprocated ─confirm─┐
//!                        └─ scan QR ─▶ QrScanned ───────────────── done ──────────────── │
//!                                                 SasKeysExchanged ─confirm + mac─▶ WaitingForDone ─done─▶ Done
//!  any state ── cancel (either side), timeout, a bad event ──▶ Cancelled
//! ```
//!
//! The rules, each a named piece of code with a test:
//! - a to-device request goes to every device of the user; once one answers `ready`, the
//!   others get `m.key.verification.cancel` with `m.accepted`;
//! - a received request is shown until 10 minutes after its timestamp or 2 minutes after
//!   receipt, whichever is first; one more than 10 minutes old or 5 minutes in the future is
//!   ignored; a flow times out (`m.timeout`) 10 minutes after its request;
//! - simultaneous starts of one method: the start of the lexicographically larger user id
//!   (device id for the same user) is ignored (`flow::their_start_is_ignored`); different
//!   methods: `m.unexpected_message`;
//! - an event of an unknown to-device transaction is answered with `m.unknown_transaction`,
//!   an event in the wrong state with `m.unexpected_message`, a malformed one with
//!   `m.invalid_message`, an unknown method with `m.unknown_method`, a start from another
//!   device than the one that answered with `m.user_mismatch`; a cancel is never answered and
//!   a finished flow ignores everything;
//! - the SAS accept carries the commitment, SHA-256 of the accepter's key and the canonical
//!   JSON of the start (`m.mismatched_commitment`); `hkdf-hmac-sha256.v2` is always chosen
//!   when offered; the MACs cover exactly the keys fixed when SAS started (the other device's
//!   Ed25519 key, and master keys when the cross-signing hook knows them) and a wrong one
//!   cancels with `m.key_mismatch`; the user's "no" cancels with `m.mismatched_sas`;
//! - a QR code's secret is compared in constant time; a wrong one cancels with
//!   `m.key_mismatch` and is flagged as a possible attack ([`Cancellation::possible_attack`]).
//!
//! Cross-signing is not part of this module: master keys come from a [`KeySource`]; the
//! machine's source has none until cross-signing lands, so SAS verifies devices only, and a
//! verified master key is reported in [`VerificationOutcome::verified_master_key`] for the
//! cross-signing layer to sign.
//!
//! ## A complete SAS verification between two machines
//!
//! The in-process test homeserver carries the to-device messages; a client sends the same
//! requests to its homeserver.
//!
//! ```
//! use ferrolm_machine::ruma::{OwnedDeviceId, OwnedUserId};
//! use ferrolm_machine::verification::VerificationState;
//! use ferrolm_machine::{Env, LocalTrust, OlmMachine, SyncOutcome};
//! use ferrolm_store::{KdfParams, MemoryBackend, MemoryStore, StoreSecret};
//! use ferrolm_test_homeserver::Homeserver;
//! use ferrolm_test_homeserver::driver::{run_requests, sync};
//!
//! type Machine = OlmMachine<MemoryBackend>;
//! type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;
//!
//! fn open(hs: &mut Homeserver, user: &str, device: &str) -> Result<Machine> {
//!     let (user, device) = (OwnedUserId::try_from(user)?, OwnedDeviceId::from(device));
//!     hs.login(&user, &device);
//!     let store = MemoryStore::create(MemoryBackend::new(), &StoreSecret::key([1; 32]), KdfParams::new(64, 1, 1)?)?;
//!     Ok(OlmMachine::open(user, device, store, Env::system())?)
//! }
//!
//! /// `from` sends what it queued; `to` syncs.
//! fn deliver(hs: &mut Homeserver, from: &mut Machine, to: &mut Machine) -> Result<SyncOutcome> {
//!     run_requests(hs, from)?;
//!     Ok(sync(hs, to)?)
//! }
//!
//! # fn main() -> Result<()> {
//! let mut hs = Homeserver::new();
//! let mut alice = open(&mut hs, "@alice:example.org", "ALICEPHONE")?;
//! let mut bob = open(&mut hs, "@bob:example.org", "BOBLAPTOP")?;
//! // Both publish their keys and learn each other's devices.
//! for m in [&mut alice, &mut bob] {
//!     run_requests(&mut hs, m)?;
//! }
//! let users = [alice.user_id().to_owned(), bob.user_id().to_owned()];
//! for m in [&mut alice, &mut bob] {
//!     m.update_tracked_users(&users)?;
//!     run_requests(&mut hs, m)?;
//! }
//! let (a, b) = (alice.user_id().to_owned(), bob.user_id().to_owned());
//!
//! // Alice asks Bob to verify: a request to each of his devices.
//! let (flow, _) = alice.request_verification(&b)?;
//! let flow = flow.as_str().to_owned();
//! let got = deliver(&mut hs, &mut alice, &mut bob)?;
//! assert_eq!(got.verifications[0].state, VerificationState::RequestReceived);
//!
//! // Bob accepts (ready) and starts SAS; Alice accepts the start (with her commitment).
//! bob.accept_verification(&a, &flow)?;
//! bob.start_sas(&a, &flow)?;
//! deliver(&mut hs, &mut bob, &mut alice)?;
//! alice.accept_verification(&b, &flow)?;
//! // Keys go back and forth: accept → key → key.
//! deliver(&mut hs, &mut alice, &mut bob)?;
//! deliver(&mut hs, &mut bob, &mut alice)?;
//! deliver(&mut hs, &mut alice, &mut bob)?;
//!
//! // Both show the same seven emoji; the users compare them.
//! let shown = alice.sas_display(&b, &flow).expect("keys exchanged");
//! assert_eq!(Some(shown), bob.sas_display(&a, &flow));
//! let names: Vec<&str> = shown.emoji.expect("both speak emoji").iter().map(|e| e.name).collect();
//! assert_eq!(names.len(), 7);
//!
//! // Both confirm; the MACs are exchanged and checked; each marks the other device verified.
//! alice.confirm_verification(&b, &flow)?;
//! deliver(&mut hs, &mut alice, &mut bob)?;
//! let step = bob.confirm_verification(&a, &flow)?;
//! assert_eq!(step.verified[0].verified_devices[0].0, alice.device_id());
//! let got = deliver(&mut hs, &mut bob, &mut alice)?;
//! assert_eq!(got.verified.len(), 1);
//! deliver(&mut hs, &mut alice, &mut bob)?;
//!
//! assert_eq!(alice.device(&b, bob.device_id())?.map(|d| d.local_trust), Some(LocalTrust::Verified));
//! assert_eq!(bob.device(&a, alice.device_id())?.map(|d| d.local_trust), Some(LocalTrust::Verified));
//! assert!(matches!(alice.verification(&b, &flow).map(|v| v.state), Some(VerificationState::Done(_))));
//! assert!(matches!(bob.verification(&a, &flow).map(|v| v.state), Some(VerificationState::Done(_))));
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;

use ferrolm::types::Ed25519PublicKey;
use ruma::{DeviceId, OwnedDeviceId, OwnedEventId, OwnedRoomId, OwnedUserId, UserId};
use serde_json::{Value, json};

use crate::env::MachineRng;

pub mod emoji;
mod event;
mod flow;
#[cfg(any(test, fuzzing))]
pub mod fuzz;
pub mod qr;
#[cfg(test)]
mod tests;

pub use emoji::Emoji;
pub use event::{
    Accept, EventError, EventKind, IncomingEvent, Mac, Start, StartMethod, Transport, is_verification_event_type,
    parse_event,
};

use flow::{Flow, Input, State, Step};

/// `m.sas.v1`.
pub const SAS_METHOD: &str = "m.sas.v1";
/// `m.qr_code.show.v1`.
pub const QR_SHOW_METHOD: &str = "m.qr_code.show.v1";
/// `m.qr_code.scan.v1`.
pub const QR_SCAN_METHOD: &str = "m.qr_code.scan.v1";
/// `m.reciprocate.v1`.
pub const RECIPROCATE_METHOD: &str = "m.reciprocate.v1";
/// The key agreement protocol (the legacy `curve25519` is not offered nor accepted).
pub const KEY_AGREEMENT_PROTOCOL: &str = "curve25519-hkdf-sha256";
/// The hash.
pub const HASH: &str = "sha256";
/// The MAC method that encodes its output correctly.
pub const MAC_V2: &str = "hkdf-hmac-sha256.v2";
/// The legacy MAC method (libolm's malformed base64): used only when v2 is not offered.
pub const MAC_LEGACY: &str = "hkdf-hmac-sha256";
/// A request is ignored, and a flow times out, this long after the request's timestamp.
pub const TIMESTAMP_TIMEOUT_MS: u64 = 10 * 60 * 1000;
/// A received request is shown at most this long after it arrived.
pub const RECEIVED_TIMEOUT_MS: u64 = 2 * 60 * 1000;
/// A request whose timestamp is further in the future than this is ignored.
pub const FUTURE_TOLERANCE_MS: u64 = 5 * 60 * 1000;

/// Every method this module speaks, as offered in requests.
pub fn supported_methods() -> Vec<String> {
    [SAS_METHOD, QR_SHOW_METHOD, QR_SCAN_METHOD, RECIPROCATE_METHOD].iter().map(|m| (*m).to_owned()).collect()
}

/// The spec's cancel codes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CancelCode {
    /// `m.user`: the user cancelled.
    User,
    /// `m.timeout`: the flow took too long.
    Timeout,
    /// `m.unknown_transaction`: no flow with this id.
    UnknownTransaction,
    /// `m.unknown_method`: a method or parameter this side does not support.
    UnknownMethod,
    /// `m.unexpected_message`: an event in the wrong state.
    UnexpectedMessage,
    /// `m.key_mismatch`: a MAC or key did not match.
    KeyMismatch,
    /// `m.user_mismatch`: the event came from another user or device than expected.
    UserMismatch,
    /// `m.invalid_message`: a malformed event.
    InvalidMessage,
    /// `m.accepted`: another device answered the request.
    Accepted,
    /// `m.mismatched_commitment`: the key does not match the accept's commitment.
    MismatchedCommitment,
    /// `m.mismatched_sas`: the user says the short authentication strings differ.
    MismatchedSas,
    /// A code this module does not know (received only).
    Other(String),
}

impl CancelCode {
    /// The code on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::User => "m.user",
            Self::Timeout => "m.timeout",
            Self::UnknownTransaction => "m.unknown_transaction",
            Self::UnknownMethod => "m.unknown_method",
            Self::UnexpectedMessage => "m.unexpected_message",
            Self::KeyMismatch => "m.key_mismatch",
            Self::UserMismatch => "m.user_mismatch",
            Self::InvalidMessage => "m.invalid_message",
            Self::Accepted => "m.accepted",
            Self::MismatchedCommitment => "m.mismatched_commitment",
            Self::MismatchedSas => "m.mismatched_sas",
            Self::Other(code) => code,
        }
    }

    /// The code of a wire string.
    pub fn from_code(code: &str) -> Self {
        match code {
            "m.user" => Self::User,
            "m.timeout" => Self::Timeout,
            "m.unknown_transaction" => Self::UnknownTransaction,
            "m.unknown_method" => Self::UnknownMethod,
            "m.unexpected_message" => Self::UnexpectedMessage,
            "m.key_mismatch" => Self::KeyMismatch,
            "m.user_mismatch" => Self::UserMismatch,
            "m.invalid_message" => Self::InvalidMessage,
            "m.accepted" => Self::Accepted,
            "m.mismatched_commitment" => Self::MismatchedCommitment,
            "m.mismatched_sas" => Self::MismatchedSas,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// A flow's id: the transaction id of a to-device verification, or the event id of an
/// in-room request (with its room).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FlowId {
    /// To-device: `transaction_id`.
    ToDevice(String),
    /// In-room: the request's event.
    InRoom {
        /// The room.
        room_id: OwnedRoomId,
        /// The request's event id.
        event_id: OwnedEventId,
    },
}

impl FlowId {
    /// The id as the spec uses it in the SAS and MAC info strings and the QR code.
    pub fn as_str(&self) -> &str {
        match self {
            Self::ToDevice(txn) => txn,
            Self::InRoom { event_id, .. } => event_id.as_str(),
        }
    }
}

/// Where the verification layer finds the keys it fixes: device keys from the store, and
/// the cross-signing master keys.
///
/// **Hook for cross-signing**: the machine's source answers `None` for master keys and
/// `false` for `own_master_trusted` until the cross-signing identities are merged; then it
/// must answer from them (and the QR modes and master-key MACs start working).
pub trait KeySource {
    /// The Ed25519 key of a known, not deleted device.
    fn device_key(&self, user_id: &UserId, device_id: &DeviceId) -> Option<Ed25519PublicKey>;
    /// The master key of a user, as currently known (own user included).
    fn master_key(&self, user_id: &UserId) -> Option<Ed25519PublicKey>;
    /// Whether this device trusts its own user's master key.
    fn own_master_trusted(&self) -> bool;
}

/// Who we are, what we can use, and what time it is: a transition's context.
pub struct Context<'a> {
    /// Our user.
    pub user_id: &'a UserId,
    /// Our device.
    pub device_id: &'a DeviceId,
    /// Our device's Ed25519 key.
    pub ed25519: Ed25519PublicKey,
    /// The keys the flows fix.
    pub keys: &'a dyn KeySource,
    /// The generator (SAS keys, QR secrets, transaction ids).
    pub rng: &'a mut dyn MachineRng,
    /// Now, in ms since the epoch.
    pub now_ms: u64,
}

impl core::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Context").field("user_id", &self.user_id).field("device_id", &self.device_id).finish()
    }
}

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// These devices of this user (to-device).
    Devices {
        /// The user.
        user_id: OwnedUserId,
        /// The devices.
        device_ids: Vec<OwnedDeviceId>,
    },
    /// Every device of this user (to-device `*`).
    AllDevices {
        /// The user.
        user_id: OwnedUserId,
    },
    /// The room of an in-room flow: the app sends `content` as a room event of `event_type`.
    Room(OwnedRoomId),
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// Where.
    pub recipient: Recipient,
    /// The event type (`m.key.verification.*`, or `m.room.message` for an in-room request).
    pub event_type: String,
    /// The content.
    pub content: Value,
}

/// What a successful verification verified: mark these devices verified; hand the master
/// key (if any) to cross-signing, which signs it with the user-signing key (another user) or
/// trusts it (own user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationOutcome {
    /// The verified user.
    pub user_id: OwnedUserId,
    /// The devices verified, with the Ed25519 key that was verified.
    pub verified_devices: Vec<(OwnedDeviceId, Ed25519PublicKey)>,
    /// The master key verified, if the flow covered one.
    pub verified_master_key: Option<Ed25519PublicKey>,
}

/// Why a flow was cancelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancellation {
    /// The code.
    pub code: CancelCode,
    /// The reason (ours, or the one they sent).
    pub reason: String,
    /// Whether we cancelled.
    pub by_us: bool,
    /// Whether the failure points at an attacker (a QR code answered with a wrong secret).
    pub possible_attack: bool,
}

/// The short authentication string to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SasDisplay {
    /// Seven emoji, when both sides agreed on `emoji`.
    pub emoji: Option<[Emoji; 7]>,
    /// Three numbers (1000–9191).
    pub decimals: (u16, u16, u16),
}

/// A flow's state, as the app sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerificationState {
    /// We sent a request.
    Requested,
    /// We received a request: accept or cancel it.
    RequestReceived,
    /// Both sides are ready: start SAS, show or scan a QR code.
    Ready {
        /// Whether we show a QR code.
        showing_qr: bool,
    },
    /// We started SAS.
    SasStarted,
    /// They started SAS: accept it.
    SasStartReceived,
    /// SAS accepted; keys are being exchanged.
    SasAccepted,
    /// Show the SAS; confirm or refuse it.
    SasKeysExchanged {
        /// What to show.
        display: SasDisplay,
        /// Whether the user confirmed (we wait for the other side).
        confirmed: bool,
    },
    /// We scanned their code; we wait for their confirmation.
    QrScanned,
    /// They scanned our code: ask the user whether the other device shows success, then
    /// confirm.
    QrReciprocated,
    /// Verified; waiting for the other side's `done`.
    WaitingForDone(VerificationOutcome),
    /// Done.
    Done(VerificationOutcome),
    /// Cancelled.
    Cancelled(Cancellation),
}

/// One flow, as the app sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationInfo {
    /// The other user (our own user for self-verification).
    pub other_user: OwnedUserId,
    /// The other device, once fixed.
    pub other_device: Option<OwnedDeviceId>,
    /// The flow.
    pub flow_id: FlowId,
    /// Whether we sent the request.
    pub we_requested: bool,
    /// The state.
    pub state: VerificationState,
}

/// What a call or an event produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Messages to send, in order.
    pub messages: Vec<OutgoingMessage>,
    /// Flows whose state changed, in their new state.
    pub updates: Vec<VerificationInfo>,
    /// Successful verifications: apply them.
    pub verified: Vec<VerificationOutcome>,
    /// An event that was ignored (expired request, own echo, event of a finished flow), and why.
    pub ignored: Vec<String>,
}

/// Why an app's call was refused (nothing changed, nothing was sent).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerificationError {
    /// No flow with this user and id.
    #[error("no verification with this user and id")]
    UnknownFlow,
    /// The call does not fit the flow's state.
    #[error("not possible in state {state}")]
    WrongState {
        /// The flow's state.
        state: &'static str,
    },
    /// A side does not support the method.
    #[error("{0} is not supported by both sides")]
    MethodNotSupported(&'static str),
    /// No (known, not deleted) device to send a request to, or the other device is unknown.
    #[error("the device is not known")]
    UnknownDevice,
    /// The QR code needs cross-signing keys that are not known.
    #[error("no cross-signing keys are known")]
    NoCrossSigningKeys,
    /// The scanned bytes are not a verification QR code.
    #[error("bad QR code: {0}")]
    Qr(#[from] qr::QrError),
    /// The scanned code belongs to another flow.
    #[error("the QR code belongs to another verification")]
    QrOfAnotherFlow,
}

/// Every flow of this device, by (other user, flow id).
#[derive(Debug, Default)]
pub struct Verifications {
    flows: BTreeMap<(OwnedUserId, String), Flow>,
}

/// How long a finished flow is kept (to answer late events by ignoring them).
const KEEP_FINISHED_MS: u64 = TIMESTAMP_TIMEOUT_MS;

impl Verifications {
    /// No flows.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every flow.
    pub fn list(&self) -> Vec<VerificationInfo> {
        self.flows.values().map(info).collect()
    }

    /// One flow.
    pub fn get(&self, user_id: &UserId, flow_id: &str) -> Option<VerificationInfo> {
        self.flows.get(&(user_id.to_owned(), flow_id.to_owned())).map(info)
    }

    /// The SAS to show, once keys are exchanged.
    pub fn sas_display(&self, user_id: &UserId, flow_id: &str) -> Option<SasDisplay> {
        self.flows.get(&(user_id.to_owned(), flow_id.to_owned())).and_then(Flow::sas_display)
    }

    /// Sends a to-device request to `devices` of `user_id` (every known device of the user
    /// besides ours: the caller lists them). Returns the flow id and the request.
    pub fn request_to_device(
        &mut self,
        ctx: &mut Context<'_>,
        user_id: &UserId,
        devices: Vec<OwnedDeviceId>,
    ) -> Result<(FlowId, Output), VerificationError> {
        if devices.is_empty() {
            return Err(VerificationError::UnknownDevice);
        }
        let mut bytes = [0u8; 16];
        ctx.rng.fill_bytes(&mut bytes);
        let txn: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let flow_id = FlowId::ToDevice(txn.clone());
        let content = json!({
            "from_device": ctx.device_id,
            "methods": supported_methods(),
            "timestamp": ctx.now_ms,
            "transaction_id": txn,
        });
        let flow = Flow {
            other_user: user_id.to_owned(),
            flow_id: flow_id.clone(),
            we_requested: true,
            requested_devices: devices.clone(),
            other_device: None,
            our_methods: supported_methods(),
            their_methods: Vec::new(),
            timestamp_ms: ctx.now_ms,
            received_ms: ctx.now_ms,
            state: State::Requested,
        };
        let mut output = Output::default();
        output.messages.push(OutgoingMessage {
            recipient: Recipient::Devices { user_id: user_id.to_owned(), device_ids: devices },
            event_type: "m.key.verification.request".into(),
            content,
        });
        output.updates.push(info(&flow));
        self.flows.insert((user_id.to_owned(), txn), flow);
        Ok((flow_id, output))
    }

    /// The content of an in-room request to `user_id` (an `m.room.message`). The flow starts
    /// when the app passes the request's own echo back with its event id
    /// ([`Verifications::receive`]).
    pub fn request_in_room_content(ctx: &Context<'_>, user_id: &UserId) -> Value {
        json!({
            "msgtype": "m.key.verification.request",
            "body": format!("{} is requesting to verify your key, but your client does not support in-chat key verification.", ctx.user_id),
            "from_device": ctx.device_id,
            "methods": supported_methods(),
            "to": user_id,
        })
    }

    /// Handles one incoming event, already parsed.
    pub fn receive(&mut self, ctx: &mut Context<'_>, event: IncomingEvent) -> Output {
        let mut output = self.expire(ctx);
        let key = (event.sender.clone(), event.flow_id.as_str().to_owned());
        if let Some(flow) = self.flows.remove(&key) {
            if flow.flow_id != event.flow_id {
                // An event in another room naming this flow's request: not part of the flow.
                self.flows.insert(key, flow);
                output.ignored.push("an event of this flow from another room".into());
                return output;
            }
            let step = flow.transition(Input::Event(&event.kind), ctx);
            self.apply(key, step, &mut output);
            return output;
        }
        if let (true, FlowId::InRoom { .. }, EventKind::Ready { .. } | EventKind::Start(_)) =
            (event.sender == ctx.user_id, &event.flow_id, &event.kind)
        {
            // Another of our devices answered a request we were shown in this room.
            let answered: Vec<_> = self
                .flows
                .iter()
                .filter(|(k, f)| k.1 == event.flow_id.as_str() && f.flow_id == event.flow_id && !f.we_requested)
                .map(|(k, _)| k.clone())
                .collect();
            for key in answered {
                if let Some(flow) = self.flows.remove(&key) {
                    let step = flow.transition(Input::AnsweredElsewhere, ctx);
                    self.apply(key, step, &mut output);
                }
            }
            if !output.updates.is_empty() {
                return output;
            }
        }
        match &event.kind {
            EventKind::Request { from_device, methods, timestamp_ms, to } => {
                self.new_request(ctx, &event, from_device, methods, *timestamp_ms, to.as_deref(), &mut output);
            }
            // Never answer a cancel.
            EventKind::Cancel { .. } => output.ignored.push("a cancel of an unknown flow".into()),
            kind => match &event.flow_id {
                FlowId::ToDevice(_) => {
                    let recipient = match kind {
                        EventKind::Ready { from_device, .. } | EventKind::Start(Start { from_device, .. }) => {
                            Recipient::Devices { user_id: event.sender.clone(), device_ids: vec![from_device.clone()] }
                        }
                        _ => Recipient::AllDevices { user_id: event.sender.clone() },
                    };
                    let mut content = flow::cancel_content(&CancelCode::UnknownTransaction, "unknown transaction");
                    content.insert("transaction_id".into(), Value::String(event.flow_id.as_str().to_owned()));
                    output.messages.push(OutgoingMessage {
                        recipient,
                        event_type: "m.key.verification.cancel".into(),
                        content: Value::Object(content),
                    });
                }
                // Room history holds events of old flows: they are not answered.
                FlowId::InRoom { .. } => output.ignored.push("an in-room event of an unknown flow".into()),
            },
        }
        output
    }

    /// Handles an event that did not parse: its flow, if known and running, is cancelled
    /// with `m.invalid_message` (unless the bad event was a cancel).
    pub fn receive_malformed(&mut self, ctx: &mut Context<'_>, error: &EventError) -> Output {
        let mut output = self.expire(ctx);
        let (Some(sender), Some(flow_id)) = (&error.sender, &error.flow_id) else {
            output.ignored.push(format!("unreadable event: {}", error.reason));
            return output;
        };
        if error.event_type == "m.key.verification.cancel" {
            output.ignored.push("a malformed cancel".into());
            return output;
        }
        let key = (sender.clone(), flow_id.as_str().to_owned());
        match self.flows.remove(&key) {
            Some(flow) if !flow.is_terminal() => {
                let reason = format!("malformed {}: {}", error.event_type, error.reason);
                let step = flow.invalid(&reason);
                self.apply(key, step, &mut output);
            }
            Some(flow) => {
                self.flows.insert(key, flow);
                output.ignored.push("a malformed event of a finished flow".into());
            }
            None => output.ignored.push(format!("a malformed event of an unknown flow: {}", error.reason)),
        }
        output
    }

    #[allow(clippy::too_many_arguments)]
    fn new_request(
        &mut self,
        ctx: &mut Context<'_>,
        event: &IncomingEvent,
        from_device: &OwnedDeviceId,
        methods: &[String],
        timestamp_ms: u64,
        to: Option<&UserId>,
        output: &mut Output,
    ) {
        let own = event.sender == ctx.user_id;
        if own && from_device == ctx.device_id {
            // Our own in-room request coming back with its event id: the flow starts now.
            if let (FlowId::InRoom { .. }, Some(to)) = (&event.flow_id, to) {
                let flow = Flow {
                    other_user: to.to_owned(),
                    flow_id: event.flow_id.clone(),
                    we_requested: true,
                    requested_devices: Vec::new(),
                    other_device: None,
                    our_methods: supported_methods(),
                    their_methods: Vec::new(),
                    timestamp_ms,
                    received_ms: ctx.now_ms,
                    state: State::Requested,
                };
                output.updates.push(info(&flow));
                self.flows.insert((to.to_owned(), event.flow_id.as_str().to_owned()), flow);
            } else {
                output.ignored.push("our own request".into());
            }
            return;
        }
        if to.is_some_and(|to| to != ctx.user_id) {
            output.ignored.push("an in-room request to someone else".into());
            return;
        }
        if own && to.is_some() {
            output.ignored.push("an in-room request of another of our devices".into());
            return;
        }
        if ctx.now_ms >= timestamp_ms.saturating_add(TIMESTAMP_TIMEOUT_MS) {
            output.ignored.push("a request more than 10 minutes old".into());
            return;
        }
        if timestamp_ms > ctx.now_ms.saturating_add(FUTURE_TOLERANCE_MS) {
            output.ignored.push("a request more than 5 minutes in the future".into());
            return;
        }
        let flow = Flow {
            other_user: event.sender.clone(),
            flow_id: event.flow_id.clone(),
            we_requested: false,
            requested_devices: Vec::new(),
            other_device: Some(from_device.clone()),
            our_methods: supported_methods(),
            their_methods: methods.to_vec(),
            timestamp_ms,
            received_ms: ctx.now_ms,
            state: State::Received,
        };
        output.updates.push(info(&flow));
        self.flows.insert((event.sender.clone(), event.flow_id.as_str().to_owned()), flow);
    }

    /// Accepts a request (`ready`) or a SAS start (`accept`).
    pub fn accept(
        &mut self,
        ctx: &mut Context<'_>,
        user_id: &UserId,
        flow_id: &str,
    ) -> Result<Output, VerificationError> {
        self.act(ctx, user_id, flow_id, Input::Accept).map(|(o, _)| o)
    }

    /// Starts SAS in a ready flow.
    pub fn start_sas(
        &mut self,
        ctx: &mut Context<'_>,
        user_id: &UserId,
        flow_id: &str,
    ) -> Result<Output, VerificationError> {
        self.act(ctx, user_id, flow_id, Input::StartSas).map(|(o, _)| o)
    }

    /// The user confirms: the SAS matches, or the other device showed that it scanned our code.
    pub fn confirm(
        &mut self,
        ctx: &mut Context<'_>,
        user_id: &UserId,
        flow_id: &str,
    ) -> Result<Output, VerificationError> {
        self.act(ctx, user_id, flow_id, Input::Confirm).map(|(o, _)| o)
    }

    /// The user says the SAS does not match (`m.mismatched_sas`), or that our code was not
    /// scanned (`m.user`).
    pub fn mismatch(
        &mut self,
        ctx: &mut Context<'_>,
        user_id: &UserId,
        flow_id: &str,
    ) -> Result<Output, VerificationError> {
        self.act(ctx, user_id, flow_id, Input::Mismatch).map(|(o, _)| o)
    }

    /// The user cancels (`m.user`).
    pub fn cancel(
        &mut self,
        ctx: &mut Context<'_>,
        user_id: &UserId,
        flow_id: &str,
    ) -> Result<Output, VerificationError> {
        self.act(ctx, user_id, flow_id, Input::Cancel).map(|(o, _)| o)
    }

    /// The QR code to show in a ready flow.
    pub fn show_qr(
        &mut self,
        ctx: &mut Context<'_>,
        user_id: &UserId,
        flow_id: &str,
    ) -> Result<(qr::QrCode, Output), VerificationError> {
        let (output, code) = self.act(ctx, user_id, flow_id, Input::ShowQr)?;
        code.map(|c| (c, output)).ok_or(VerificationError::WrongState { state: "ready" })
    }

    /// A scanned QR code: checked against the keys we know; the secret goes back in a start.
    pub fn scan_qr(
        &mut self,
        ctx: &mut Context<'_>,
        user_id: &UserId,
        flow_id: &str,
        bytes: &[u8],
    ) -> Result<Output, VerificationError> {
        self.act(ctx, user_id, flow_id, Input::ScanQr(bytes)).map(|(o, _)| o)
    }

    /// Expires flows whose time is up (sending `m.timeout` where we took part), and forgets
    /// finished flows after a while.
    pub fn expire(&mut self, ctx: &mut Context<'_>) -> Output {
        let mut output = Output::default();
        let keys: Vec<_> = self.flows.keys().cloned().collect();
        for key in keys {
            if let Some(flow) = self.flows.remove(&key) {
                if flow.is_terminal()
                    && ctx.now_ms >= flow.timestamp_ms.saturating_add(TIMESTAMP_TIMEOUT_MS + KEEP_FINISHED_MS)
                {
                    continue;
                }
                let step = flow.transition(Input::Tick, ctx);
                self.apply(key, step, &mut output);
            }
        }
        output
    }

    fn act(
        &mut self,
        ctx: &mut Context<'_>,
        user_id: &UserId,
        flow_id: &str,
        input: Input<'_>,
    ) -> Result<(Output, Option<qr::QrCode>), VerificationError> {
        let mut output = self.expire(ctx);
        let key = (user_id.to_owned(), flow_id.to_owned());
        let flow = self.flows.remove(&key).ok_or(VerificationError::UnknownFlow)?;
        let mut step = flow.transition(input, ctx);
        let error = step.error.take();
        let qr = step.qr.take();
        self.apply(key, step, &mut output);
        match error {
            Some(e) => Err(e),
            None => Ok((output, qr)),
        }
    }

    fn apply(&mut self, key: (OwnedUserId, String), step: Step, output: &mut Output) {
        output.messages.extend(step.messages);
        if step.changed {
            output.updates.push(info(&step.flow));
        }
        output.verified.extend(step.verified);
        self.flows.insert(key, step.flow);
    }
}

fn info(flow: &Flow) -> VerificationInfo {
    VerificationInfo {
        other_user: flow.other_user.clone(),
        other_device: flow.other_device.clone(),
        flow_id: flow.flow_id.clone(),
        we_requested: flow.we_requested,
        state: flow.public_state(),
    }
}
