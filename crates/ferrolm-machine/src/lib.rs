//! # ferrolm-machine
//!
//! The end-to-end encryption state machine a Matrix client drives (placeholder docs; the
//! walk-through is below).
#![forbid(unsafe_code)]

mod adapt;
pub mod devices;
mod env;
mod error;
mod machine;
pub mod olm_channel;
pub mod own_device;
mod requests;
pub mod signing;
mod sync;

pub use devices::{Device, DeviceEvent, DeviceRejection};
pub use env::{Clock, Env, MachineRng, ManualClock, SystemClock};
pub use error::MachineError;
pub use machine::{OlmMachine, ToDeviceEncryption};
pub use olm_channel::{
    ClaimFailure, DecryptedToDeviceEvent, FailedClaim, PlaintextRejection, SenderDeviceSource, SessionCreationFailure,
    ToDeviceError,
};
pub use requests::{
    IncomingResponse, OutgoingRequest, Request, RequestKind, RequestSerializationError, ResponseParseError,
};
pub use sync::{ResponseOutcome, SyncChanges, SyncOutcome, ToDeviceOutcome};

/// ruma, re-exported: the identifiers and API types in the machine's signatures.
pub use ruma;
