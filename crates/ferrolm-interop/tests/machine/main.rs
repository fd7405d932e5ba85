//! Interoperability of ferrolm's `OlmMachine` (ferrolm-machine) with matrix-sdk-crypto 0.18's
//! `OlmMachine`, each driven through the in-process test homeserver over the client-server
//! API's JSON, in both directions: devices queried and validated, Olm sessions opened from
//! one-time keys and from fallback keys, custom to-device events, MSC4147 sender device keys,
//! room keys shared and room events decrypted, withheld codes, rotation on departures and
//! after a message count, a ferrolm restart from its SQLite store mid-conversation, and a
//! wedged Olm session recovered.
//!
//! Nothing crosses between the two machines except through the homeserver: requests as HTTP
//! with JSON bodies, sync responses as JSON.

// `&[x.clone()]` reads better in a test than `std::slice::from_ref(&x)`.
#![allow(clippy::cloned_ref_to_slice_refs)]

mod common;
mod devices;
mod forwarding;
mod history;
mod msc;
pub mod olm;
mod restart;
mod rooms;
mod rotation;
mod wedged;
mod withheld;
