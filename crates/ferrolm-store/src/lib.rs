//! # ferrolm-store
//!
//! A durable, encrypted key store for a Matrix device: what the ferrolm machine must keep
//! across restarts, in memory ([`MemoryStore`]) or in SQLite ([`SqliteStore`]), and through a
//! host's storage (IndexedDB in a browser) by implementing [`Backend`].
//!
//! The store is dumb and durable: it keeps what the machine gives it, answers the machine's
//! queries, and knows nothing about trust or Matrix rules. Matrix identifiers are opaque
//! strings ([`UserId`], [`DeviceId`], [`RoomId`]; session ids are `&str`).
//!
//! ## What the machine persists
//!
//! | what | record | keyed by | queries |
//! | --- | --- | --- | --- |
//! | own account: identity, one-time and fallback keys (in the pickle), user and device id, keys-uploaded flag, fallback-key publication time | [`AccountRecord`] | (single) | [`Store::account`] |
//! | Olm sessions with creation, last-use and last-decrypt times | [`OlmSessionRecord`] | sender key, session id | [`Store::olm_session`], [`Store::olm_sessions`] (per sender key) |
//! | room keys with sender key, claimed signing key, first known index, source, backed-up and shared-history flags | [`InboundGroupSessionRecord`] | room, session id | [`Store::inbound_group_session`], [`Store::inbound_group_sessions_in_room`], [`Store::inbound_group_sessions_to_back_up`] (batches), [`Store::inbound_group_sessions_page`], [`Store::room_key_counts`] |
//! | outbound group sessions with message count and creation time | [`OutboundGroupSessionRecord`] | room | [`Store::outbound_group_session`] |
//! | per device: shared at which index, or which withheld code | [`OutboundShare`] | room, session, user, device | [`Store::outbound_shares`] |
//! | devices: signed keys (opaque), identity keys, local trust, deleted flag | [`DeviceRecord`] | user, device | [`Store::device`], [`Store::devices`], [`Store::device_by_curve25519_key`] |
//! | cross-signing identities: master, self-signing, user-signing keys; verified, previously verified | [`IdentityRecord`] | user | [`Store::identity`] |
//! | own private cross-signing keys | [`PrivateCrossSigningKeys`] | (single) | [`Store::private_cross_signing_keys`] |
//! | tracked users and their dirty flag | [`TrackedUser`] | user | [`Store::tracked_users`] |
//! | the sync token last processed | `String` | (single) | [`Store::sync_token`] |
//! | backup version and decryption key | [`BackupRecord`] | (single) | [`Store::backup`] |
//! | secrets received, awaiting the app | [`ReceivedSecret`] | name, id | [`Store::secrets_in_inbox`] |
//! | outgoing secret and room-key requests | [`OutgoingRequest`] | request id | [`Store::outgoing_request`], [`Store::outgoing_requests`] |
//! | withheld notices received | [`WithheldNotice`] | room, session id | [`Store::withheld_notice`] |
//! | room settings: algorithm, rotation, only-trusted | [`RoomSettings`] | room | [`Store::room_settings`] |
//! | seen (session id, message index) → event id | [`SeenMessage`] | session id, index | [`Store::seen_message`] |
//! | to-device requests not yet sent (room key shares as their key and recipients) | [`OutgoingToDevice`] | transaction id | [`Store::outgoing_to_device`] |
//!
//! Core objects are stored inside their sealed record: accounts, Olm sessions and the backup
//! key as the core's unencrypted state (the record's seal is their one encryption), group
//! sessions (and rows written by earlier versions) as the core's own authenticated pickles,
//! under a key derived from the store key.
//!
//! ## Guarantees
//!
//! - **One write path, one transaction.** [`Store::save_changes`] commits a [`Changes`] (every
//!   record a machine step produced, and its [`Deletions`]) atomically: after a crash the store
//!   holds the old state or the new one, never a mix. Nothing else writes data.
//! - **Encrypted at rest** ([`cipher`] module docs): every value is sealed with
//!   XChaCha20-Poly1305 bound to its table and row; lookup keys are keyed hashes; the store key
//!   is wrapped by a passphrase (Argon2id) or a raw key. Wrong secret: [`StoreError::WrongSecret`].
//! - **Two processes.** A lease ([`Store::acquire_lease`]: holder, expiry, renewal) and a
//!   generation counter bumped by every commit. Every write is fenced on both: a handle that
//!   lost its lease or missed another's commit is refused ([`StoreError::LeaseLost`],
//!   [`StoreError::StaleGeneration`]) instead of overwriting newer state with stale state.
//!   The clock is the caller's (`now_ms` arguments): the store reads no time itself.
//! - **Bad stores are reported, never repaired**: truncated or damaged files, altered or
//!   swapped values, a wrong key, a newer schema, a missing table, a foreign database, a
//!   second writer without the lease: each is a typed [`StoreError`].
//!
//! ## Example
//!
//! ```
//! # #[cfg(feature = "sqlite")] {
//! use ferrolm::olm::Account;
//! use ferrolm_store::{
//!     AccountRecord, Changes, DeviceId, KdfParams, SqliteStore, StoreSecret, TrackedUser, UserId,
//! };
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("crypto.sqlite3");
//! let secret = StoreSecret::passphrase("correct horse battery staple");
//! // Production stores keep the memory-hard default; small parameters keep this example fast.
//! let kdf = KdfParams::new(256, 1, 1)?;
//!
//! // Create the store and save what one machine step produced, in one transaction.
//! let mut store = SqliteStore::create_file(&path, &secret, kdf)?;
//! let account = Account::new();
//! let identity = account.identity_keys();
//! let mut changes = Changes::default();
//! changes.account = Some(AccountRecord {
//!     user_id: UserId::from("@alice:example.org"),
//!     device_id: DeviceId::from("ALICEDEVICE"),
//!     account,
//!     device_keys_uploaded: false,
//!     fallback_key_published_ms: None,
//! });
//! changes.tracked_users.push(TrackedUser { user_id: UserId::from("@bob:example.org"), dirty: true });
//! changes.sync_token = Some("s1_2_3".into());
//! let generation = store.save_changes(&changes)?;
//! assert_eq!(generation, 1);
//! drop(store);
//!
//! // Reopen: everything is there.
//! let store = SqliteStore::open_file(&path, &secret)?;
//! let saved = store.account()?.expect("saved");
//! assert_eq!(saved.account.identity_keys(), identity);
//! assert_eq!(saved.device_id.as_str(), "ALICEDEVICE");
//! assert_eq!(store.tracked_users()?, vec![TrackedUser { user_id: UserId::from("@bob:example.org"), dirty: true }]);
//! assert_eq!(store.sync_token()?.as_deref(), Some("s1_2_3"));
//!
//! // A wrong passphrase is an error, never garbage.
//! let wrong = SqliteStore::open_file(&path, &StoreSecret::passphrase("wrong"));
//! assert_eq!(wrong.unwrap_err(), ferrolm_store::StoreError::WrongSecret);
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod backend;
mod changes;
pub mod cipher;
mod codec;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod memory;
mod migrate;
pub mod parallel;
mod pickles;
mod records;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;

pub use backend::{Backend, BackendError, BackendErrorKind, Batch, CommitError, Condition, Op, Row, Table, prefix_end};
pub use changes::{Changes, Deletions};
pub use cipher::{KdfParams, StoreSecret, WrapKind};
pub use error::{Result, StoreError};
pub use memory::MemoryBackend;
pub use records::{
    AccountRecord, BackupRecord, DeviceId, DeviceRecord, IdentityRecord, InboundGroupSessionRecord, LocalTrust,
    MAX_ID_LEN, OlmSessionRecord, OutboundGroupSessionRecord, OutboundShare, OutgoingRequest, OutgoingToDevice,
    PrivateCrossSigningKeys, ReceivedSecret, RequestKind, RoomId, RoomKeySource, RoomSettings, SecretBytes,
    SecretString, SeenMessage, ShareState, TrackedUser, UserId, WithheldNotice,
};
#[cfg(feature = "sqlite")]
pub use sqlite::{APPLICATION_ID, LAYOUT_VERSION, SqliteBackend, SqliteOptions, Synchronous};
pub use store::{
    IntegrityReport, LeaseInfo, LeaseOutcome, RoomKeyCounts, RoomKeyCursor, SCHEMA_VERSION, Store, StoreInfo,
};

/// A store kept in memory (nothing survives the process).
pub type MemoryStore = Store<MemoryBackend>;

/// A store in an SQLite file.
#[cfg(feature = "sqlite")]
pub type SqliteStore = Store<SqliteBackend>;
