//! # ferrolm-machine
//!
//! The end-to-end encryption state machine a Matrix client drives: its own device and keys,
//! the devices of the users it talks to, and the Olm channel between devices. It is
//! **sans-IO**: it produces request bodies and consumes responses, and the client does the
//! HTTP. It is **deterministic**: its only inputs besides the network are an injected clock
//! and random number generator ([`Env`]). Every call that changes state commits **one change
//! set** to a [`ferrolm_store::Store`], so a crash leaves the old state or the new one.
//!
//! ## The request loop
//!
//! A client does three things, forever:
//!
//! 1. Sends every request of [`OlmMachine::outgoing_requests`] and reports each answer with
//!    [`OlmMachine::mark_request_as_sent`] (ruma's response type) or
//!    [`OlmMachine::mark_request_as_sent_json`] (the body as received). A request stays
//!    listed, with the same id and body, until its answer is reported; a request that failed
//!    is simply sent again later.
//! 2. Syncs from [`OlmMachine::sync_token`] and hands the encryption parts of each response to
//!    [`OlmMachine::receive_sync_changes`], which returns what became of every to-device event.
//!    The new token is saved with everything the events changed: a sync lost before it was
//!    processed is simply fetched again.
//! 3. Tells the machine whom it talks to ([`OlmMachine::update_tracked_users`]), opens
//!    sessions ([`OlmMachine::get_missing_sessions`]) and sends
//!    ([`OlmMachine::encrypt_to_device`]).
//!
//! Below, the in-process test homeserver stands in for the network; a real client sends the
//! same `http::Request`s to its homeserver.
//!
//! ```
//! use ferrolm_machine::ruma::api::IncomingResponse;
//! use ferrolm_machine::ruma::api::client::sync::sync_events;
//! use ferrolm_machine::ruma::{OwnedDeviceId, OwnedUserId};
//! use ferrolm_machine::{Env, OlmMachine, SyncChanges, ToDeviceOutcome};
//! use ferrolm_store::{Backend, KdfParams, MemoryBackend, MemoryStore, StoreSecret};
//! use ferrolm_test_homeserver::Homeserver;
//!
//! type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;
//!
//! /// Step 1: send what the machine asks for, report the answers.
//! fn send_requests<B: Backend>(hs: &mut Homeserver, machine: &mut OlmMachine<B>) -> Result<()> {
//!     for request in machine.outgoing_requests()? {
//!         let http = request.to_http_request("https://example.org", "ACCESS_TOKEN")?;
//!         // A real client: `let response = http_client.send(http)?;`
//!         let response = hs.handle(machine.user_id(), machine.device_id(), http);
//!         if response.status() == 200 {
//!             machine.mark_request_as_sent_json(&request.request_id, response.body())?;
//!         } // otherwise the request is listed again next time
//!     }
//!     Ok(())
//! }
//!
//! /// Step 2: sync from the saved token and hand over the encryption parts.
//! fn sync<B: Backend>(hs: &mut Homeserver, machine: &mut OlmMachine<B>) -> Result<Vec<ToDeviceOutcome>> {
//!     let since = machine.sync_token()?;
//!     let body = hs.sync_json(machine.user_id(), machine.device_id(), since.as_deref())?;
//!     let response = sync_events::v3::Response::try_from_http_response(http::Response::new(body))?;
//!     let outcome = machine.receive_sync_changes(SyncChanges {
//!         to_device_events: response.to_device.events,
//!         changed_devices: response.device_lists.changed,
//!         left_devices: response.device_lists.left,
//!         one_time_key_counts: response.device_one_time_keys_count,
//!         unused_fallback_key_types: response.device_unused_fallback_key_types,
//!         next_batch: response.next_batch,
//!     })?;
//!     Ok(outcome.to_device)
//! }
//!
//! fn open(hs: &mut Homeserver, user: &str, device: &str) -> Result<OlmMachine<MemoryBackend>> {
//!     let (user, device) = (OwnedUserId::try_from(user)?, OwnedDeviceId::from(device));
//!     hs.login(&user, &device);
//!     // A real client opens an SqliteStore with a passphrase or a key from the platform keystore.
//!     let store = MemoryStore::create(MemoryBackend::new(), &StoreSecret::key([1; 32]), KdfParams::new(64, 1, 1)?)?;
//!     Ok(OlmMachine::open(user, device, store, Env::system())?)
//! }
//!
//! # fn main() -> Result<()> {
//! let mut hs = Homeserver::new();
//! let mut alice = open(&mut hs, "@alice:example.org", "ALICEPHONE")?;
//! let mut bob = open(&mut hs, "@bob:example.org", "BOBLAPTOP")?;
//! let room = hs.create_room(alice.user_id())?;
//! hs.join(&room, bob.user_id());
//!
//! // Both upload their device keys and one-time keys, then learn each other's devices. (Had
//! // Bob uploaded later, Alice's next sync would list him in `device_lists.changed`.)
//! for machine in [&mut alice, &mut bob] {
//!     send_requests(&mut hs, machine)?;
//!     sync(&mut hs, machine)?;
//! }
//! for machine in [&mut alice, &mut bob] {
//!     machine.update_tracked_users(&hs.members(&room))?;
//!     send_requests(&mut hs, machine)?;
//! }
//! assert_eq!(alice.devices(bob.user_id())?.len(), 1);
//!
//! // Step 3: Alice opens an Olm session with Bob's device and writes to it.
//! if let Some(claim) = alice.get_missing_sessions(&[bob.user_id().to_owned()])? {
//!     let response = hs.handle(alice.user_id(), alice.device_id(), claim.to_http_request("https://example.org", "T")?);
//!     alice.mark_request_as_sent_json(&claim.request_id, response.body())?;
//! }
//! let to = (bob.user_id().to_owned(), bob.device_id().to_owned());
//! alice.encrypt_to_device(&[to], "org.example.greeting", &serde_json::json!({"text": "hello"}))?;
//! send_requests(&mut hs, &mut alice)?;
//!
//! // Bob's next sync decrypts it, checked against Alice's device.
//! let events = sync(&mut hs, &mut bob)?;
//! let [ToDeviceOutcome::Decrypted(event)] = events.as_slice() else { panic!("{events:?}") };
//! assert_eq!(event.sender, alice.user_id());
//! assert_eq!(event.sender_ed25519_key, alice.identity_keys().ed25519);
//! assert_eq!(event.content["text"], "hello");
//! # Ok(())
//! # }
//! ```
//!
//! ## Where each rule lives
//!
//! One module per concern; each Matrix rule the machine enforces is one named function with a
//! test that breaks it:
//!
//! - [`own_device`]: device keys signed over canonical JSON; one-time keys topped up and saved
//!   before upload; fallback key rotation.
//! - [`devices`]: tracking (dirty users, chunked queries, no overlapping queries for a user),
//!   validation of every served device, changed keys refused and reported
//!   ([`DeviceEvent::KeyChangeRefused`]), deletions marked.
//! - [`olm_channel`]: claims checked and backed off, to-device encryption with every field
//!   (MSC4147 included), session choice, decryption and the checks of every plaintext field,
//!   Megolm-encrypted to-device events refused, wedged-session recovery.
//! - [`room_keys_out`]: one outbound Megolm session per room, shared once per device at the
//!   index it may read from, rotated by age, message count, departures and settings; the
//!   sharing strategies (all devices, verified devices, cross-signed devices, identity-based
//!   after MSC4153) and the withheld codes for the devices left out
//!   ([`OlmMachine::share_room_key`], [`OlmMachine::encrypt_room_event`]).
//! - [`room_keys_in`]: `m.room_key` only over Olm, only improving a stored key, only from its
//!   sender; withheld notices kept ([`SyncOutcome::room_keys`] says which UTDs to retry).
//! - [`key_requests`]: room key requests and forwarded keys, between the own verified devices
//!   only (local trust or the own cross-signing chain; [`OlmMachine::request_room_key`]).
//! - [`cross_signing`]: the served cross-signing keys validated (user id, usage, one key named
//!   after itself, subkeys signed by the master key); the own private keys
//!   ([`OlmMachine::bootstrap_cross_signing`], [`OlmMachine::export_cross_signing_keys`],
//!   [`OlmMachine::import_cross_signing_keys`], [`OlmMachine::cross_signing_status`]).
//! - [`identities`]: the trust chains, pinning on first use, master key changes reported every
//!   time ([`IdentityEvent`]) and verification violations ([`IdentityState`]); the calls a
//!   verification ends with ([`OlmMachine::verify_identity`], [`OlmMachine::verify_device`]),
//!   [`OlmMachine::withdraw_verification`], [`OlmMachine::pin_current_master_key`],
//!   [`OlmMachine::device_trust`], [`OlmMachine::trusted_own_signer`].
//! - [`room_events`]: [`OlmMachine::decrypt_room_event`] and its typed unable-to-decrypt
//!   reasons ([`UnableToDecrypt`]); the sender's verification state from its device's
//!   cross-signing trust ([`VerificationState`]).
//! - [`secret_storage`]: `m.secret_storage.v1.aes-hmac-sha2` account data (key descriptions
//!   with their key check, encrypted secrets), read back with typed failures
//!   ([`OlmMachine::bootstrap_secret_storage`], [`OpenedSecretStorage`],
//!   [`OlmMachine::change_secret_storage_key`], [`OlmMachine::import_secrets_from_storage`]).
//! - [`gossip`]: `m.secret.request` / `m.secret.send` between the own verified devices only,
//!   answers taken over Olm for our requests only, received keys checked against their public
//!   keys ([`OlmMachine::request_secret`], [`SyncOutcome::secrets`]).
//! - [`dehydrated`]: MSC3814 dehydrated devices in vodozemac's format: creation and upload,
//!   rehydration, room keys imported from the events it received
//!   ([`OlmMachine::create_dehydrated_device`], [`OlmMachine::rehydrate_device`]).
//! - [`signing`]: signed JSON over canonical JSON (ruma's canonical form).
//! - [`verification`]: key verification requests, SAS and QR codes as typed state machines
//!   ([`OlmMachine::request_verification`]; a complete SAS between two machines is in the
//!   module's documentation).
//! - [`backup`]: server-side key backups: the signed `auth_data` of a new version
//!   ([`OlmMachine::create_backup_version`]), a version written to only when trusted
//!   ([`OlmMachine::enable_backup`]), uploads marked only once acknowledged
//!   ([`OlmMachine::backup`]), restores decrypted on every core with progress and one
//!   reasonless failure count ([`OlmMachine::restore_backup`]).
//! - [`export`]: key export files ([`OlmMachine::export_room_keys`],
//!   [`OlmMachine::import_room_keys`]) and the merge rule of every import (the lower first
//!   index wins; a better stored key is never replaced).
//!
//! Every bad item from the network is data in the step's outcome ([`ToDeviceError`],
//! [`DeviceEvent`], [`FailedClaim`]), never a panic and never a log line; [`MachineError`] is
//! for what fails a whole step (the store), after which nothing was committed.
//!
//! Every untrusted input (to-device events, sync responses, keys query and claim responses,
//! room events, verification events) has a fuzz target (`fuzz/README.md`: the `machine_*`
//! targets and `verification_event`); downloaded backups have a property test.
#![forbid(unsafe_code)]

mod adapt;
pub mod backup;
mod cache;
pub mod cross_signing;
pub mod dehydrated;
pub mod devices;
mod env;
mod error;
pub mod export;
pub mod gossip;
pub mod identities;
pub mod key_requests;
mod machine;
pub mod olm_channel;
pub mod own_device;
mod requests;
pub mod room_events;
pub mod room_keys_in;
pub mod room_keys_out;
pub mod secret_storage;
pub mod signing;
mod sync;
pub mod verification;

pub use backup::{BackupDecryptionKey, BackupError, BackupInfo, BackupTrust, BackupTrustSource};
pub use cross_signing::{CrossSigningImportError, CrossSigningKeyExport, CrossSigningKeyRejection, KeyUsage};
pub use dehydrated::{DehydratedDeviceFailure, DehydratedDeviceUpload, RehydratedDevice, RehydratedEvents};
pub use devices::{Device, DeviceEvent, DeviceRejection};
pub use env::{Clock, Env, MachineRng, ManualClock, SystemClock};
pub use error::MachineError;
pub use export::{KeyFileError, RoomKeyImportReport};
/// The user's trust in a device (as the store keeps it).
pub use ferrolm_store::LocalTrust;
pub use gossip::{SecretOutcome, SecretRefusal, SecretRequest, SecretRequestOutcome, SecretRequestRefusal};
pub use identities::{DeviceTrust, IdentityEvent, IdentityState, UserIdentity};
pub use key_requests::{ForwardedKeyRejection, KeyRequestOutcome, KeyRequestRefusal};
pub use machine::{
    CrossSigningBootstrap, CrossSigningStatus, NewBackupVersion, NewSecretStorageKey, OlmMachine, OwnSigner,
    RoomKeyShare, RoomVerificationMessage, SecretImport, SecretImportFailure, SecretStorageSetup, ToDeviceEncryption,
    VerificationStep,
};
pub use olm_channel::{
    ClaimFailure, DecryptedToDeviceEvent, FailedClaim, PlaintextRejection, SenderDeviceSource, SessionCreationFailure,
    ToDeviceError,
};
pub use requests::{
    IncomingResponse, OutgoingRequest, Request, RequestKind, RequestSerializationError, ResponseParseError,
};
pub use room_events::{DecryptedRoomEvent, EncryptionInfo, TrustRequirement, UnableToDecrypt, VerificationState};
pub use room_keys_in::{RoomKeyInfo, RoomKeyOutcome, RoomKeyRejection, WithheldInfo};
pub use room_keys_out::{EncryptionSettings, SharingStrategy};
pub use secret_storage::{AccountData, AccountDataUpdate, KeyInput, OpenedSecretStorage, SecretStorageFailure};
pub use sync::{ResponseOutcome, SyncChanges, SyncOutcome, ToDeviceOutcome};

/// ruma, re-exported: the identifiers and API types in the machine's signatures.
pub use ruma;
