//! One verification flow as a typed state machine: [`Flow::transition`] is the only way a
//! flow's [`State`] changes. Every (state, input) pair is handled in one `match`; the
//! exhaustive tests in `tests.rs` drive each pair.

use ferrolm::sas::{EstablishedSas, Sas, SasMac};
use ferrolm::types::{Curve25519PublicKey, Ed25519PublicKey, base64_encode};
use ruma::canonical_json::CanonicalJsonValue;
use ruma::{OwnedDeviceId, OwnedUserId};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::event::{Accept, EventKind, Mac, Start, StartMethod};
use super::qr::{self, QrCode, QrMode};
use super::{
    CancelCode, Cancellation, Context, FlowId, HASH, KEY_AGREEMENT_PROTOCOL, MAC_LEGACY, MAC_V2, OutgoingMessage,
    QR_SCAN_METHOD, QR_SHOW_METHOD, RECEIVED_TIMEOUT_MS, RECIPROCATE_METHOD, Recipient, SAS_METHOD, SasDisplay,
    TIMESTAMP_TIMEOUT_MS, VerificationError, VerificationOutcome, VerificationState,
};
use crate::verification::emoji;

/// What moves a flow: an event from the other side, a call of the app, or time.
#[derive(Debug)]
pub(crate) enum Input<'a> {
    /// An event of the other side, already read and checked.
    Event(&'a EventKind),
    /// The app accepts: a request (`ready`) or a SAS start (`accept`).
    Accept,
    /// The app starts SAS.
    StartSas,
    /// The user says the emoji/decimals match, or that the other side scanned our code.
    Confirm,
    /// The user says they do not match (or the other side did not scan our code).
    Mismatch,
    /// The user cancels.
    Cancel,
    /// The app wants a QR code to show.
    ShowQr,
    /// The app scanned a QR code.
    ScanQr(&'a [u8]),
    /// The clock moved.
    Tick,
    /// Another of our devices answered this in-room request (we saw its event in the room).
    AnsweredElsewhere,
}

/// The SAS parameters both sides agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Agreed {
    pub(crate) mac: MacMethod,
    pub(crate) emoji: bool,
}

/// The MAC method of a SAS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MacMethod {
    /// `hkdf-hmac-sha256.v2`.
    V2,
    /// `hkdf-hmac-sha256` (libolm's malformed base64).
    Legacy,
}

impl MacMethod {
    fn name(self) -> &'static str {
        match self {
            Self::V2 => MAC_V2,
            Self::Legacy => MAC_LEGACY,
        }
    }
}

/// The keys a SAS fixes when it starts: the MACs cover exactly these, whatever the store
/// says later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FixedKeys {
    pub(crate) their_device: OwnedDeviceId,
    pub(crate) their_device_key: Ed25519PublicKey,
    pub(crate) their_master: Option<Ed25519PublicKey>,
    pub(crate) own_master: Option<Ed25519PublicKey>,
}

/// What a QR verification marks verified once it completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QrTarget {
    pub(crate) device: Option<(OwnedDeviceId, Ed25519PublicKey)>,
    pub(crate) master: Option<Ed25519PublicKey>,
}

/// A flow's state. Secrets (the SAS keys, the QR secret) live only in the states that need
/// them and are dropped (zeroized by the core) when the flow moves on.
#[derive(Debug)]
pub(crate) enum State {
    /// We sent a request; no device answered yet.
    Requested,
    /// They sent a request; the user has not answered.
    Received,
    /// Both sides are ready; either may start a method. Holds the QR code we show, if any.
    Ready { shown_qr: Option<(QrCode, QrTarget)> },
    /// We sent a SAS start.
    SasStarted { sas: Sas, start: Map<String, Value>, keys: FixedKeys },
    /// They sent a SAS start; the app has not accepted it yet.
    SasStartReceived { start: Start, keys: FixedKeys },
    /// We accepted their start (with our commitment) and wait for their key.
    SasAccepted { sas: Sas, agreed: Agreed, keys: FixedKeys },
    /// We started, they accepted, we sent our key; we wait for theirs.
    SasKeySent { sas: Sas, agreed: Agreed, commitment: [u8; 32], start: Map<String, Value>, keys: FixedKeys },
    /// Keys exchanged: the SAS is shown.
    SasShown(Box<SasShown>),
    /// We scanned their QR code and sent the secret back.
    QrScanned(QrTarget),
    /// They scanned our code with the right secret; the user has to confirm.
    QrReciprocated(QrTarget),
    /// Verified; we sent `done` and wait for theirs.
    WaitingForDone(VerificationOutcome),
    /// Done on both sides.
    Done(VerificationOutcome),
    /// Cancelled by either side.
    Cancelled(Cancellation),
}

#[derive(Debug)]
pub(crate) struct SasShown {
    established: EstablishedSas,
    agreed: Agreed,
    keys: FixedKeys,
    display: SasDisplay,
    /// Our user confirmed (our MAC is sent).
    confirmed: bool,
    /// Their MAC, already checked.
    their_mac: Option<VerificationOutcome>,
}

/// A verification flow with one user (and, once fixed, one of their devices).
#[derive(Debug)]
pub(crate) struct Flow {
    pub(crate) other_user: OwnedUserId,
    pub(crate) flow_id: FlowId,
    pub(crate) we_requested: bool,
    /// To-device requests we sent: every device the request went to.
    pub(crate) requested_devices: Vec<OwnedDeviceId>,
    pub(crate) other_device: Option<OwnedDeviceId>,
    pub(crate) our_methods: Vec<String>,
    pub(crate) their_methods: Vec<String>,
    /// The request's timestamp (to-device) or `origin_server_ts` (in-room).
    pub(crate) timestamp_ms: u64,
    /// When we created or received the flow.
    pub(crate) received_ms: u64,
    pub(crate) state: State,
}

/// The result of one transition.
#[derive(Debug)]
pub(crate) struct Step {
    pub(crate) flow: Flow,
    pub(crate) messages: Vec<OutgoingMessage>,
    pub(crate) verified: Option<VerificationOutcome>,
    pub(crate) error: Option<VerificationError>,
    pub(crate) qr: Option<QrCode>,
    pub(crate) changed: bool,
}

impl Step {
    fn new(flow: Flow) -> Self {
        Self { flow, messages: Vec::new(), verified: None, error: None, qr: None, changed: true }
    }

    fn unchanged(flow: Flow) -> Self {
        Self { changed: false, ..Self::new(flow) }
    }

    fn refused(flow: Flow, error: VerificationError) -> Self {
        Self { error: Some(error), ..Self::unchanged(flow) }
    }
}

/// What a state is called in errors.
fn state_name(state: &State) -> &'static str {
    match state {
        State::Requested => "requested",
        State::Received => "request received",
        State::Ready { .. } => "ready",
        State::SasStarted { .. } => "SAS started",
        State::SasStartReceived { .. } => "SAS start received",
        State::SasAccepted { .. } => "SAS accepted",
        State::SasKeySent { .. } => "SAS key sent",
        State::SasShown(_) => "SAS shown",
        State::QrScanned(_) => "QR scanned",
        State::QrReciprocated(_) => "QR reciprocated",
        State::WaitingForDone(_) => "waiting for done",
        State::Done(_) => "done",
        State::Cancelled(_) => "cancelled",
    }
}

impl Flow {
    /// Whether the flow is over (done or cancelled): it ignores every further event.
    pub(crate) fn is_terminal(&self) -> bool {
        matches!(self.state, State::Done(_) | State::Cancelled(_))
    }

    /// The state as the app sees it.
    pub(crate) fn public_state(&self) -> VerificationState {
        match &self.state {
            State::Requested => VerificationState::Requested,
            State::Received => VerificationState::RequestReceived,
            State::Ready { shown_qr } => VerificationState::Ready { showing_qr: shown_qr.is_some() },
            State::SasStarted { .. } => VerificationState::SasStarted,
            State::SasStartReceived { .. } => VerificationState::SasStartReceived,
            State::SasAccepted { .. } | State::SasKeySent { .. } => VerificationState::SasAccepted,
            State::SasShown(shown) => {
                VerificationState::SasKeysExchanged { display: shown.display, confirmed: shown.confirmed }
            }
            State::QrScanned(_) => VerificationState::QrScanned,
            State::QrReciprocated(_) => VerificationState::QrReciprocated,
            State::WaitingForDone(o) => VerificationState::WaitingForDone(o.clone()),
            State::Done(o) => VerificationState::Done(o.clone()),
            State::Cancelled(c) => VerificationState::Cancelled(c.clone()),
        }
    }

    /// The SAS to show, once keys are exchanged.
    pub(crate) fn sas_display(&self) -> Option<SasDisplay> {
        match &self.state {
            State::SasShown(shown) => Some(shown.display),
            _ => None,
        }
    }

    /// Where messages of this flow go: the other device once known, before that every device
    /// the request went to (to-device), or the room.
    fn recipient(&self) -> Recipient {
        match &self.flow_id {
            FlowId::InRoom { room_id, .. } => Recipient::Room(room_id.clone()),
            FlowId::ToDevice(_) => match &self.other_device {
                Some(device) => {
                    Recipient::Devices { user_id: self.other_user.clone(), device_ids: vec![device.clone()] }
                }
                None => {
                    Recipient::Devices { user_id: self.other_user.clone(), device_ids: self.requested_devices.clone() }
                }
            },
        }
    }

    /// `content` with the flow's `transaction_id` or `m.relates_to`.
    pub(crate) fn with_flow(&self, mut content: Map<String, Value>) -> Map<String, Value> {
        match &self.flow_id {
            FlowId::ToDevice(txn) => {
                content.insert("transaction_id".into(), Value::String(txn.clone()));
            }
            FlowId::InRoom { event_id, .. } => {
                content.insert("m.relates_to".into(), json!({"rel_type": "m.reference", "event_id": event_id}));
            }
        }
        content
    }

    fn message(&self, event_type: &str, content: Map<String, Value>) -> OutgoingMessage {
        OutgoingMessage {
            recipient: self.recipient(),
            event_type: event_type.to_owned(),
            content: Value::Object(self.with_flow(content)),
        }
    }

    /// Cancels the flow with `code`: the state becomes `Cancelled` and a cancel goes out.
    fn cancel(mut self, code: CancelCode, reason: &str, possible_attack: bool) -> Step {
        let message = self.message("m.key.verification.cancel", cancel_content(&code, reason));
        self.state = State::Cancelled(Cancellation { code, reason: reason.to_owned(), by_us: true, possible_attack });
        let mut step = Step::new(self);
        step.messages.push(message);
        step
    }

    /// One transition: the only place a flow's state changes.
    pub(crate) fn transition(self, input: Input<'_>, ctx: &mut Context<'_>) -> Step {
        // Time first: an expired flow takes no further input.
        let mut flow = self;
        if !flow.is_terminal() {
            flow = match flow.expire(ctx.now_ms) {
                Ok(expired) => return expired,
                Err(flow) => flow,
            };
        }
        if let Input::Tick = input {
            return Step::unchanged(flow);
        }
        if flow.is_terminal() {
            // Nothing moves a finished flow; in particular a cancel is never answered.
            return match input {
                Input::Event(_) => Step::unchanged(flow),
                _ => {
                    let state = state_name(&flow.state);
                    Step::refused(flow, VerificationError::WrongState { state })
                }
            };
        }
        match input {
            Input::Event(EventKind::Cancel { code, reason }) => {
                // A request of ours declined before any device answered: every requested
                // device hears the same cancel, so none keeps showing the request (the one
                // that declined ignores it: a cancel is never answered).
                let tell_others = matches!(flow.state, State::Requested)
                    && flow.other_device.is_none()
                    && flow.requested_devices.len() > 1
                    && matches!(flow.flow_id, FlowId::ToDevice(_));
                let message = tell_others.then(|| {
                    flow.message("m.key.verification.cancel", cancel_content(&CancelCode::from_code(code), reason))
                });
                flow.state = State::Cancelled(Cancellation {
                    code: CancelCode::from_code(code),
                    reason: reason.clone(),
                    by_us: false,
                    possible_attack: false,
                });
                let mut step = Step::new(flow);
                step.messages.extend(message);
                step
            }
            Input::Cancel => flow.cancel(CancelCode::User, "the user cancelled", false),
            Input::AnsweredElsewhere => match flow.state {
                State::Received => {
                    // Nothing to send: the requester and our other device already know.
                    flow.state = State::Cancelled(Cancellation {
                        code: CancelCode::Accepted,
                        reason: "another of our devices answered".into(),
                        by_us: false,
                        possible_attack: false,
                    });
                    Step::new(flow)
                }
                _ => Step::unchanged(flow),
            },
            Input::Event(event) => flow.on_event(event, ctx),
            Input::Accept => flow.on_accept(ctx),
            Input::StartSas => flow.on_start_sas(ctx),
            Input::Confirm => flow.on_confirm(ctx),
            Input::Mismatch => flow.on_mismatch(),
            Input::ShowQr => flow.on_show_qr(ctx),
            Input::ScanQr(bytes) => flow.on_scan_qr(bytes, ctx),
            Input::Tick => Step::unchanged(flow),
        }
    }

    /// The timeouts ("Key verification framework"): a request is shown until 10 minutes after
    /// its timestamp or 2 minutes after we received it, whichever is first; a flow we took part
    /// in is cancelled with `m.timeout` 10 minutes after the request's timestamp.
    // The flow is handed back, not copied: its size does not matter.
    #[allow(clippy::result_large_err)]
    fn expire(mut self, now_ms: u64) -> Result<Step, Self> {
        let deadline = self.timestamp_ms.saturating_add(TIMESTAMP_TIMEOUT_MS);
        if let State::Received = self.state {
            let shown_until = deadline.min(self.received_ms.saturating_add(RECEIVED_TIMEOUT_MS));
            if now_ms >= shown_until {
                // We never answered: nothing to send, the request is simply no longer shown.
                self.state = State::Cancelled(Cancellation {
                    code: CancelCode::Timeout,
                    reason: "the request expired before it was answered".into(),
                    by_us: true,
                    possible_attack: false,
                });
                return Ok(Step::new(self));
            }
            return Err(self);
        }
        if now_ms >= deadline {
            if let State::WaitingForDone(outcome) = self.state {
                // Verified on our side already; a missing `done` is not worth a cancel.
                self.state = State::Done(outcome);
                return Ok(Step::new(self));
            }
            return Ok(self.cancel(CancelCode::Timeout, "the verification timed out", false));
        }
        Err(self)
    }

    /// Cancels with `m.invalid_message` (a malformed event of this flow).
    pub(crate) fn invalid(self, reason: &str) -> Step {
        self.cancel(CancelCode::InvalidMessage, reason, false)
    }

    fn unexpected(self, what: &str) -> Step {
        let reason = format!("unexpected {what} in state {}", state_name(&self.state));
        self.cancel(CancelCode::UnexpectedMessage, &reason, false)
    }

    fn on_event(mut self, event: &EventKind, ctx: &mut Context<'_>) -> Step {
        let state = std::mem::replace(&mut self.state, State::Requested);
        match (state, event) {
            // A ready from one of the requested devices: that device is the other side now,
            // and every other requested device is told another one accepted.
            (State::Requested, EventKind::Ready { from_device, methods }) => {
                self.other_device = Some(from_device.clone());
                self.their_methods = methods.clone();
                self.state = State::Ready { shown_qr: None };
                let mut step = Step::new(self);
                if let FlowId::ToDevice(_) = step.flow.flow_id {
                    let others: Vec<OwnedDeviceId> =
                        step.flow.requested_devices.iter().filter(|d| *d != from_device).cloned().collect();
                    if !others.is_empty() {
                        step.messages.push(OutgoingMessage {
                            recipient: Recipient::Devices { user_id: step.flow.other_user.clone(), device_ids: others },
                            event_type: "m.key.verification.cancel".into(),
                            content: Value::Object(step.flow.with_flow(cancel_content(
                                &CancelCode::Accepted,
                                "the verification was accepted by another device",
                            ))),
                        });
                    }
                }
                step
            }
            // A second device answers after the first: in a room it sees the first answer and
            // nothing is sent; to-device, it alone is told another one accepted.
            (state @ State::Ready { .. }, EventKind::Ready { from_device, .. })
                if self.we_requested && self.other_device.as_ref() != Some(from_device) =>
            {
                self.state = state;
                if let FlowId::InRoom { .. } = self.flow_id {
                    return Step::unchanged(self);
                }
                let mut step = Step::unchanged(self);
                step.messages.push(OutgoingMessage {
                    recipient: Recipient::Devices {
                        user_id: step.flow.other_user.clone(),
                        device_ids: vec![from_device.clone()],
                    },
                    event_type: "m.key.verification.cancel".into(),
                    content: Value::Object(step.flow.with_flow(cancel_content(
                        &CancelCode::Accepted,
                        "the verification was accepted by another device",
                    ))),
                });
                step
            }
            (State::Ready { shown_qr }, EventKind::Start(start)) => {
                if Some(&start.from_device) != self.other_device.as_ref() {
                    self.state = State::Ready { shown_qr };
                    return self.cancel(CancelCode::UserMismatch, "the start comes from another device", false);
                }
                match &start.method {
                    StartMethod::Sas { .. } => {
                        if !self.our_methods.iter().any(|m| m == SAS_METHOD) {
                            return self.cancel(CancelCode::UnknownMethod, "m.sas.v1 was not offered", false);
                        }
                        self.sas_start_received(start.clone(), ctx)
                    }
                    StartMethod::Reciprocate { secret } => match shown_qr {
                        Some((code, target)) => {
                            if qr::secrets_match(&code.secret, secret) {
                                self.state = State::QrReciprocated(target);
                                Step::new(self)
                            } else {
                                self.cancel(
                                    CancelCode::KeyMismatch,
                                    "the QR code's secret does not match: possibly an attack",
                                    true,
                                )
                            }
                        }
                        None => self.cancel(CancelCode::UnexpectedMessage, "no QR code was shown", false),
                    },
                    StartMethod::Other(method) => {
                        let reason = format!("unknown method {method}");
                        self.cancel(CancelCode::UnknownMethod, &reason, false)
                    }
                }
            }
            // Both sides started: the same method resolves by the spec's rule, different
            // methods cancel.
            (State::SasStarted { sas, start: ours, keys }, EventKind::Start(theirs)) => {
                if Some(&theirs.from_device) != self.other_device.as_ref() {
                    return self.cancel(CancelCode::UserMismatch, "the start comes from another device", false);
                }
                match theirs.method {
                    StartMethod::Sas { .. } => {
                        if their_start_is_ignored(ctx, &self.other_user, &theirs.from_device) {
                            self.state = State::SasStarted { sas, start: ours, keys };
                            Step::unchanged(self)
                        } else {
                            // Ours yields: take theirs and accept it at once (the user already
                            // chose SAS).
                            drop(sas);
                            self.state = State::SasStartReceived { start: theirs.clone(), keys };
                            self.on_accept(ctx)
                        }
                    }
                    _ => self.cancel(CancelCode::UnexpectedMessage, "both sides started different methods", false),
                }
            }
            (State::SasStarted { sas, start, keys }, EventKind::Accept(accept)) => {
                let agreed = match check_accept(accept) {
                    Ok(a) => a,
                    Err(reason) => return self.cancel(CancelCode::UnknownMethod, reason, false),
                };
                let key = sas.public_key();
                self.state =
                    State::SasKeySent { sas, agreed, commitment: accept.commitment, start, keys: keys.clone() };
                let message = self.message("m.key.verification.key", key_content(key));
                let mut step = Step::new(self);
                step.messages.push(message);
                step
            }
            (State::SasKeySent { sas, agreed, commitment, start, keys }, EventKind::Key(their_key)) => {
                let Ok(expected) = commitment_of(their_key, &start) else {
                    return self.cancel(CancelCode::InvalidMessage, "the start content is not canonical JSON", false);
                };
                if !bool::from(expected.ct_eq(&commitment)) {
                    return self.cancel(
                        CancelCode::MismatchedCommitment,
                        "the key does not match the commitment of the accept",
                        false,
                    );
                }
                self.established(sas, *their_key, agreed, keys, true, ctx, false)
            }
            (State::SasAccepted { sas, agreed, keys }, EventKind::Key(their_key)) => {
                self.established(sas, *their_key, agreed, keys, false, ctx, true)
            }
            (State::SasShown(mut shown), EventKind::Mac(mac)) => {
                if shown.their_mac.is_some() {
                    self.state = State::SasShown(shown);
                    return self.unexpected("second MAC");
                }
                match self.check_mac(&shown, mac, ctx) {
                    Ok(outcome) => {
                        if shown.confirmed {
                            self.succeed(outcome, Vec::new())
                        } else {
                            shown.their_mac = Some(outcome);
                            self.state = State::SasShown(shown);
                            Step::new(self)
                        }
                    }
                    Err((code, reason)) => self.cancel(code, reason, false),
                }
            }
            (State::QrScanned(target), EventKind::Done) => {
                let outcome = self.outcome_of(&target);
                let done = self.message("m.key.verification.done", Map::new());
                self.state = State::Done(outcome.clone());
                let mut step = Step::new(self);
                step.messages.push(done);
                step.verified = Some(outcome);
                step
            }
            (State::WaitingForDone(outcome), EventKind::Done) => {
                self.state = State::Done(outcome);
                Step::new(self)
            }
            (state, event) => {
                self.state = state;
                self.unexpected(event_name(event))
            }
        }
    }

    /// Their SAS start, in a ready flow: fix the keys; the app accepts it.
    fn sas_start_received(mut self, start: Start, ctx: &mut Context<'_>) -> Step {
        match self.fix_keys(ctx) {
            Ok(keys) => {
                self.state = State::SasStartReceived { start, keys };
                Step::new(self)
            }
            Err(reason) => self.cancel(CancelCode::KeyMismatch, reason, false),
        }
    }

    /// The keys the MACs will cover, fixed now: the other device's Ed25519 key, and the
    /// master keys the cross-signing hook knows.
    fn fix_keys(&self, ctx: &Context<'_>) -> Result<FixedKeys, &'static str> {
        let device = self.other_device.clone().ok_or("no other device")?;
        let key = ctx.keys.device_key(&self.other_user, &device).ok_or("the other device's keys are not known")?;
        // Device ids and cross-signing keys share the `ed25519:` key id namespace: a device
        // whose id is a master key could have its MAC mistaken for the master key's.
        let their_master = ctx.keys.master_key(&self.other_user);
        if their_master.is_some_and(|m| m.to_base64() == device.as_str()) {
            return Err("the other device's id is its user's master key");
        }
        Ok(FixedKeys {
            their_device: device,
            their_device_key: key,
            their_master,
            own_master: ctx.keys.master_key(ctx.user_id),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn established(
        mut self,
        sas: Sas,
        their_key: Curve25519PublicKey,
        agreed: Agreed,
        keys: FixedKeys,
        we_started: bool,
        ctx: &Context<'_>,
        send_our_key: bool,
    ) -> Step {
        let our_key = sas.public_key();
        let Ok(established) = sas.diffie_hellman(their_key) else {
            return self.cancel(CancelCode::InvalidMessage, "the SAS key is of small order", false);
        };
        let info = self.sas_info(ctx, we_started, our_key, their_key);
        let bytes = established.bytes(&info);
        let display = SasDisplay {
            emoji: agreed.emoji.then(|| bytes.emoji_indices().map(|i| emoji::emoji(i).unwrap_or(emoji::EMOJI[0]))),
            decimals: bytes.decimals(),
        };
        self.state = State::SasShown(Box::new(SasShown {
            established,
            agreed,
            keys,
            display,
            confirmed: false,
            their_mac: None,
        }));
        let mut step = Step::new(self);
        if send_our_key {
            let message = step.flow.message("m.key.verification.key", key_content(our_key));
            step.messages.push(message);
        }
        step
    }

    /// `MATRIX_KEY_VERIFICATION_SAS|` + the starter's user, device and SAS key, the accepter's,
    /// and the flow id, `|`-separated (`curve25519-hkdf-sha256`).
    fn sas_info(
        &self,
        ctx: &Context<'_>,
        we_started: bool,
        our_key: Curve25519PublicKey,
        their_key: Curve25519PublicKey,
    ) -> String {
        let their_device = self.other_device.as_ref().map(|d| d.as_str()).unwrap_or_default();
        let ours = format!("{}|{}|{}", ctx.user_id, ctx.device_id, our_key.to_base64());
        let theirs = format!("{}|{}|{}", self.other_user, their_device, their_key.to_base64());
        let (starter, accepter) = if we_started { (ours, theirs) } else { (theirs, ours) };
        format!("MATRIX_KEY_VERIFICATION_SAS|{starter}|{accepter}|{}", self.flow_id.as_str())
    }

    fn mac_base_info(&self, sender: (&str, &str), receiver: (&str, &str)) -> String {
        format!(
            "MATRIX_KEY_VERIFICATION_MAC{}{}{}{}{}",
            sender.0,
            sender.1,
            receiver.0,
            receiver.1,
            self.flow_id.as_str()
        )
    }

    /// Our MAC content: our device key, and our master key if one was fixed, and the MAC of
    /// their sorted key ids.
    fn our_mac(&self, shown: &SasShown, ctx: &Context<'_>) -> Map<String, Value> {
        let base = self.mac_base_info(
            (ctx.user_id.as_str(), ctx.device_id.as_str()),
            (self.other_user.as_str(), shown.keys.their_device.as_str()),
        );
        let mut keys = vec![(format!("ed25519:{}", ctx.device_id), ctx.ed25519.to_base64())];
        if let Some(master) = shown.keys.own_master {
            keys.push((format!("ed25519:{}", master.to_base64()), master.to_base64()));
        }
        let mac_of = |input: &str, info: &str| match shown.agreed.mac {
            MacMethod::V2 => shown.established.calculate_mac(input, info).to_base64(),
            MacMethod::Legacy => shown.established.calculate_mac_invalid_base64(input, info),
        };
        let mut macs = Map::new();
        for (id, key) in &keys {
            macs.insert(id.clone(), Value::String(mac_of(key, &format!("{base}{id}"))));
        }
        let mut ids: Vec<&str> = keys.iter().map(|(id, _)| id.as_str()).collect();
        ids.sort_unstable();
        let mut content = Map::new();
        content.insert("mac".into(), Value::Object(macs));
        content.insert("keys".into(), Value::String(mac_of(&ids.join(","), &format!("{base}KEY_IDS"))));
        content
    }

    /// Checks their MAC against exactly the fixed keys. Key ids we do not know are ignored;
    /// at least one fixed key must be covered.
    fn check_mac(
        &self,
        shown: &SasShown,
        mac: &Mac,
        ctx: &Context<'_>,
    ) -> Result<VerificationOutcome, (CancelCode, &'static str)> {
        let base = self.mac_base_info(
            (self.other_user.as_str(), shown.keys.their_device.as_str()),
            (ctx.user_id.as_str(), ctx.device_id.as_str()),
        );
        let verify = |input: &str, info: &str, received: &str| -> Result<(), (CancelCode, &'static str)> {
            match shown.agreed.mac {
                MacMethod::V2 => {
                    let received = SasMac::from_base64(received)
                        .map_err(|_| (CancelCode::InvalidMessage, "a MAC is not 32 bytes of base64"))?;
                    shown.established.verify_mac(input, info, &received)
                }
                MacMethod::Legacy => shown.established.verify_mac_invalid_base64(input, info, received),
            }
            .map_err(|_| (CancelCode::KeyMismatch, "a MAC does not match"))
        };
        let ids: Vec<&str> = mac.mac.keys().map(String::as_str).collect(); // BTreeMap: sorted
        verify(&ids.join(","), &format!("{base}KEY_IDS"), &mac.keys)?;
        let device_id = format!("ed25519:{}", shown.keys.their_device);
        let master_id = shown.keys.their_master.map(|m| format!("ed25519:{}", m.to_base64()));
        let mut outcome = VerificationOutcome {
            user_id: self.other_user.clone(),
            verified_devices: Vec::new(),
            verified_master_key: None,
        };
        for (id, received) in &mac.mac {
            let is_device = *id == device_id;
            let is_master = master_id.as_deref() == Some(id.as_str());
            if is_device && is_master {
                return Err((CancelCode::KeyMismatch, "a key id names both a device and a master key"));
            }
            let info = format!("{base}{id}");
            if is_device {
                verify(&shown.keys.their_device_key.to_base64(), &info, received)?;
                outcome.verified_devices.push((shown.keys.their_device.clone(), shown.keys.their_device_key));
            } else if let (true, Some(master)) = (is_master, shown.keys.their_master) {
                verify(&master.to_base64(), &info, received)?;
                outcome.verified_master_key = Some(master);
            }
        }
        if outcome.verified_devices.is_empty() && outcome.verified_master_key.is_none() {
            return Err((CancelCode::KeyMismatch, "the MAC covers none of the keys being verified"));
        }
        Ok(outcome)
    }

    /// Both sides' MACs checked (or the QR confirmed): report the outcome, send `done`.
    fn succeed(mut self, outcome: VerificationOutcome, mut messages: Vec<OutgoingMessage>) -> Step {
        messages.push(self.message("m.key.verification.done", Map::new()));
        self.state = State::WaitingForDone(outcome.clone());
        let mut step = Step::new(self);
        step.messages = messages;
        step.verified = Some(outcome);
        step
    }

    fn outcome_of(&self, target: &QrTarget) -> VerificationOutcome {
        VerificationOutcome {
            user_id: self.other_user.clone(),
            verified_devices: target.device.iter().cloned().collect(),
            verified_master_key: target.master,
        }
    }

    fn wrong_state(self) -> Step {
        let state = state_name(&self.state);
        Step::refused(self, VerificationError::WrongState { state })
    }

    fn on_accept(mut self, ctx: &mut Context<'_>) -> Step {
        let state = std::mem::replace(&mut self.state, State::Requested);
        match state {
            State::Received => {
                let methods: Vec<String> =
                    self.our_methods.iter().filter(|m| self.their_methods.contains(m)).cloned().collect();
                if methods.is_empty() {
                    return self.cancel(CancelCode::UnknownMethod, "no verification method in common", false);
                }
                let mut content = Map::new();
                content.insert("from_device".into(), Value::String(ctx.device_id.to_string()));
                content.insert("methods".into(), json!(self.our_methods));
                self.state = State::Ready { shown_qr: None };
                let message = self.message("m.key.verification.ready", content);
                let mut step = Step::new(self);
                step.messages.push(message);
                step
            }
            State::SasStartReceived { start, keys } => {
                let StartMethod::Sas {
                    key_agreement_protocols,
                    hashes,
                    message_authentication_codes,
                    short_authentication_string,
                } = &start.method
                else {
                    return self.cancel(CancelCode::UnknownMethod, "not a SAS start", false);
                };
                let Some((agreed, sas_methods)) =
                    choose(key_agreement_protocols, hashes, message_authentication_codes, short_authentication_string)
                else {
                    return self.cancel(CancelCode::UnknownMethod, "no SAS parameters in common", false);
                };
                let sas = Sas::new_with_rng(&mut ctx.rng);
                let Ok(commitment) = commitment_of(&sas.public_key(), &start.content) else {
                    return self.cancel(CancelCode::InvalidMessage, "the start content is not canonical JSON", false);
                };
                let mut content = Map::new();
                content.insert("method".into(), Value::String(SAS_METHOD.into()));
                content.insert("key_agreement_protocol".into(), Value::String(KEY_AGREEMENT_PROTOCOL.into()));
                content.insert("hash".into(), Value::String(HASH.into()));
                content.insert("message_authentication_code".into(), Value::String(agreed.mac.name().into()));
                content.insert("short_authentication_string".into(), json!(sas_methods));
                content.insert("commitment".into(), Value::String(base64_encode(commitment)));
                self.state = State::SasAccepted { sas, agreed, keys };
                let message = self.message("m.key.verification.accept", content);
                let mut step = Step::new(self);
                step.messages.push(message);
                step
            }
            state => {
                self.state = state;
                self.wrong_state()
            }
        }
    }

    fn on_start_sas(mut self, ctx: &mut Context<'_>) -> Step {
        let State::Ready { .. } = self.state else { return self.wrong_state() };
        if !(self.our_methods.iter().any(|m| m == SAS_METHOD) && self.their_methods.iter().any(|m| m == SAS_METHOD)) {
            return Step::refused(self, VerificationError::MethodNotSupported(SAS_METHOD));
        }
        let keys = match self.fix_keys(ctx) {
            Ok(k) => k,
            Err(reason) => return self.cancel(CancelCode::KeyMismatch, reason, false),
        };
        let sas = Sas::new_with_rng(&mut ctx.rng);
        let mut content = Map::new();
        content.insert("from_device".into(), Value::String(ctx.device_id.to_string()));
        content.insert("method".into(), Value::String(SAS_METHOD.into()));
        content.insert("key_agreement_protocols".into(), json!([KEY_AGREEMENT_PROTOCOL]));
        content.insert("hashes".into(), json!([HASH]));
        content.insert("message_authentication_codes".into(), json!([MAC_V2, MAC_LEGACY]));
        content.insert("short_authentication_string".into(), json!(["decimal", "emoji"]));
        let start = self.with_flow(content.clone());
        self.state = State::SasStarted { sas, start, keys };
        let message = self.message("m.key.verification.start", content);
        let mut step = Step::new(self);
        step.messages.push(message);
        step
    }

    fn on_confirm(mut self, ctx: &mut Context<'_>) -> Step {
        let state = std::mem::replace(&mut self.state, State::Requested);
        match state {
            State::SasShown(mut shown) if !shown.confirmed => {
                let mac = self.message("m.key.verification.mac", self.our_mac(&shown, ctx));
                match shown.their_mac.take() {
                    Some(outcome) => self.succeed(outcome, vec![mac]),
                    None => {
                        shown.confirmed = true;
                        self.state = State::SasShown(shown);
                        let mut step = Step::new(self);
                        step.messages.push(mac);
                        step
                    }
                }
            }
            State::QrReciprocated(target) => {
                let outcome = self.outcome_of(&target);
                self.succeed(outcome, Vec::new())
            }
            state => {
                self.state = state;
                self.wrong_state()
            }
        }
    }

    fn on_mismatch(self) -> Step {
        match self.state {
            State::SasShown(ref shown) if !shown.confirmed => {
                self.cancel(CancelCode::MismatchedSas, "the user says the short authentication strings differ", false)
            }
            State::QrReciprocated(_) => self.cancel(CancelCode::User, "the user says the code was not scanned", false),
            _ => self.wrong_state(),
        }
    }

    fn on_show_qr(mut self, ctx: &mut Context<'_>) -> Step {
        let State::Ready { shown_qr } = &self.state else { return self.wrong_state() };
        if let Some((code, _)) = shown_qr {
            let code = code.clone();
            let mut step = Step::unchanged(self);
            step.qr = Some(code);
            return step;
        }
        if !(self.our_methods.iter().any(|m| m == QR_SHOW_METHOD)
            && self.their_methods.iter().any(|m| m == QR_SCAN_METHOD))
        {
            return Step::refused(self, VerificationError::MethodNotSupported(QR_SHOW_METHOD));
        }
        let own_master = ctx.keys.master_key(ctx.user_id);
        let (mode, key_1, key_2, target) = if self.other_user != ctx.user_id {
            let (Some(own), Some(theirs)) = (own_master, ctx.keys.master_key(&self.other_user)) else {
                return Step::refused(self, VerificationError::NoCrossSigningKeys);
            };
            (QrMode::OtherUser, own, theirs, QrTarget { device: None, master: Some(theirs) })
        } else {
            let Some(master) = own_master else { return Step::refused(self, VerificationError::NoCrossSigningKeys) };
            if ctx.keys.own_master_trusted() {
                let Some(device) = self.other_device.clone() else { return self.wrong_state() };
                let Some(key) = ctx.keys.device_key(&self.other_user, &device) else {
                    return Step::refused(self, VerificationError::UnknownDevice);
                };
                (QrMode::SelfTrusted, master, key, QrTarget { device: Some((device, key)), master: None })
            } else {
                (QrMode::SelfUntrusted, ctx.ed25519, master, QrTarget { device: None, master: Some(master) })
            }
        };
        let mut secret = Zeroizing::new(vec![0u8; 16]);
        ctx.rng.fill_bytes(&mut secret);
        let code = QrCode {
            mode,
            flow_id: self.flow_id.as_str().to_owned(),
            key_1: *key_1.as_bytes(),
            key_2: *key_2.as_bytes(),
            secret,
        };
        self.state = State::Ready { shown_qr: Some((code.clone(), target)) };
        let mut step = Step::new(self);
        step.qr = Some(code);
        step
    }

    fn on_scan_qr(mut self, bytes: &[u8], ctx: &mut Context<'_>) -> Step {
        let State::Ready { .. } = self.state else { return self.wrong_state() };
        if !(self.our_methods.iter().any(|m| m == QR_SCAN_METHOD)
            && self.their_methods.iter().any(|m| m == QR_SHOW_METHOD))
        {
            return Step::refused(self, VerificationError::MethodNotSupported(QR_SCAN_METHOD));
        }
        let code = match QrCode::from_bytes(bytes) {
            Ok(c) => c,
            Err(e) => return Step::refused(self, VerificationError::Qr(e)),
        };
        if code.flow_id != self.flow_id.as_str() {
            return Step::refused(self, VerificationError::QrOfAnotherFlow);
        }
        let Some(device) = self.other_device.clone() else { return self.wrong_state() };
        let eq = |key: Option<Ed25519PublicKey>, bytes: &[u8; 32]| key.is_some_and(|k| k.as_bytes() == bytes);
        let own_master = ctx.keys.master_key(ctx.user_id);
        let target = match code.mode {
            QrMode::OtherUser if self.other_user != ctx.user_id => {
                let theirs = ctx.keys.master_key(&self.other_user);
                (eq(theirs, &code.key_1) && eq(own_master, &code.key_2))
                    .then_some(QrTarget { device: None, master: theirs })
            }
            // They trust the master key and show it with what they believe our key is.
            QrMode::SelfTrusted if self.other_user == ctx.user_id => (eq(own_master, &code.key_1)
                && eq(Some(ctx.ed25519), &code.key_2))
            .then_some(QrTarget { device: None, master: own_master }),
            // They do not trust it yet: they show their device key and the master they were told;
            // we can vouch only if we trust that master.
            QrMode::SelfUntrusted if self.other_user == ctx.user_id => {
                let their_key = ctx.keys.device_key(&self.other_user, &device);
                (ctx.keys.own_master_trusted() && eq(own_master, &code.key_2) && eq(their_key, &code.key_1))
                    .then(|| their_key.map(|k| QrTarget { device: Some((device.clone(), k)), master: None }))
                    .flatten()
            }
            _ => None,
        };
        let Some(target) = target else {
            return self.cancel(CancelCode::KeyMismatch, "the QR code's keys are not the ones we know", false);
        };
        let mut content = Map::new();
        content.insert("from_device".into(), Value::String(ctx.device_id.to_string()));
        content.insert("method".into(), Value::String(RECIPROCATE_METHOD.into()));
        content.insert("secret".into(), Value::String(base64_encode(&*code.secret)));
        self.state = State::QrScanned(target);
        let message = self.message("m.key.verification.start", content);
        let mut step = Step::new(self);
        step.messages.push(message);
        step
    }
}

/// Simultaneous starts of the same method: the start of the lexicographically larger user id
/// (device id when both are the same user) is ignored.
pub(crate) fn their_start_is_ignored(
    ctx: &Context<'_>,
    their_user: &ruma::UserId,
    their_device: &ruma::DeviceId,
) -> bool {
    if their_user != ctx.user_id {
        their_user.as_str() > ctx.user_id.as_str()
    } else {
        their_device.as_str() > ctx.device_id.as_str()
    }
}

/// What we accept from a SAS start: `curve25519-hkdf-sha256`, `sha256`, the v2 MAC whenever it
/// is offered (the legacy one only when it is not), and the SAS methods in common.
pub(crate) fn choose(
    key_agreement_protocols: &[String],
    hashes: &[String],
    macs: &[String],
    sas: &[String],
) -> Option<(Agreed, Vec<String>)> {
    if !key_agreement_protocols.iter().any(|k| k == KEY_AGREEMENT_PROTOCOL) || !hashes.iter().any(|h| h == HASH) {
        return None;
    }
    let mac = if macs.iter().any(|m| m == MAC_V2) {
        MacMethod::V2
    } else if macs.iter().any(|m| m == MAC_LEGACY) {
        MacMethod::Legacy
    } else {
        return None;
    };
    let methods: Vec<String> =
        ["decimal", "emoji"].iter().filter(|m| sas.iter().any(|s| s == *m)).map(|m| (*m).to_owned()).collect();
    if methods.is_empty() {
        return None;
    }
    let emoji = methods.iter().any(|m| m == "emoji");
    Some((Agreed { mac, emoji }, methods))
}

/// What the starter accepts in an accept: only what it offered.
fn check_accept(accept: &Accept) -> Result<Agreed, &'static str> {
    if accept.key_agreement_protocol != KEY_AGREEMENT_PROTOCOL {
        return Err("unsupported key agreement protocol");
    }
    if accept.hash != HASH {
        return Err("unsupported hash");
    }
    let mac = match accept.message_authentication_code.as_str() {
        MAC_V2 => MacMethod::V2,
        MAC_LEGACY => MacMethod::Legacy,
        _ => return Err("unsupported message authentication code"),
    };
    let known = accept.short_authentication_string.iter().all(|s| s == "decimal" || s == "emoji");
    if accept.short_authentication_string.is_empty() || !known {
        return Err("unsupported short authentication string");
    }
    Ok(Agreed { mac, emoji: accept.short_authentication_string.iter().any(|s| s == "emoji") })
}

/// The commitment of an accept: SHA-256 of the accepter's SAS key (base64) followed by the
/// canonical JSON of the start content.
pub(crate) fn commitment_of(key: &Curve25519PublicKey, start: &Map<String, Value>) -> Result<[u8; 32], ()> {
    let canonical = CanonicalJsonValue::try_from(Value::Object(start.clone())).map_err(|_| ())?;
    let mut hash = Sha256::new();
    hash.update(key.to_base64().as_bytes());
    hash.update(canonical.to_string().as_bytes());
    Ok(hash.finalize().into())
}

fn key_content(key: Curve25519PublicKey) -> Map<String, Value> {
    let mut content = Map::new();
    content.insert("key".into(), Value::String(key.to_base64()));
    content
}

pub(crate) fn cancel_content(code: &CancelCode, reason: &str) -> Map<String, Value> {
    let mut content = Map::new();
    content.insert("code".into(), Value::String(code.as_str().to_owned()));
    content.insert("reason".into(), Value::String(reason.to_owned()));
    content
}

fn event_name(event: &EventKind) -> &'static str {
    match event {
        EventKind::Request { .. } => "request",
        EventKind::Ready { .. } => "ready",
        EventKind::Start(_) => "start",
        EventKind::Accept(_) => "accept",
        EventKind::Key(_) => "key",
        EventKind::Mac(_) => "mac",
        EventKind::Done => "done",
        EventKind::Cancel { .. } => "cancel",
    }
}
