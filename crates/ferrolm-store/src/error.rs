//! The store's errors. No variant carries secret material: no key, passphrase, pickle or
//! plaintext value, and no Matrix identifier read from a record.

use crate::backend::{BackendError, Table};

/// Everything that can go wrong opening, reading or writing a store. Each variant names what
/// is wrong; the store never repairs or deletes data to make an error go away.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The passphrase or raw key does not unwrap the store key (wrong secret, or the wrapped
    /// key or its parameters were altered).
    #[error("the passphrase or key does not unlock this store")]
    WrongSecret,
    /// The store key is wrapped by the other kind of secret.
    #[error("this store is unlocked with a {expected}, not a {given}")]
    WrongSecretKind {
        /// The kind of secret that wraps the store key (`"passphrase"` or `"raw key"`).
        expected: &'static str,
        /// The kind that was given.
        given: &'static str,
    },
    /// The back end holds no store yet: create one first.
    #[error("there is no store here yet")]
    NotInitialized,
    /// `create` was called on a back end that already holds a store.
    #[error("a store already exists here")]
    AlreadyInitialized,
    /// The store was written by a newer version of this library; it is left untouched.
    #[error("the store has schema version {found}, newer than version {supported} that this library reads")]
    NewerSchema {
        /// The version found in the store.
        found: u32,
        /// The newest version this library knows.
        supported: u32,
    },
    /// The file is an SQLite database that belongs to another application.
    #[error("the database is not a ferrolm store (application id {application_id:#010x}, {tables} tables)")]
    ForeignDatabase {
        /// The database's `PRAGMA application_id`.
        application_id: i32,
        /// How many tables it has.
        tables: u32,
    },
    /// The file is not a database at all.
    #[error("the file is not a database")]
    NotADatabase,
    /// One of the store's tables is missing.
    #[error("the store's table `{0}` is missing")]
    MissingTable(&'static str),
    /// The database engine reports damage (a truncated file, a corrupted page).
    #[error("the database is damaged: {0}")]
    DatabaseCorrupted(String),
    /// A value did not authenticate: altered, moved to another row or table, or sealed under
    /// another store key.
    #[error("a value in table `{}` failed authentication: altered, moved from another row, or from another store", .table.name())]
    ValueRejected {
        /// The table holding the value.
        table: Table,
    },
    /// A value authenticated but does not decode: written by a broken or incompatible writer.
    #[error("a value in table `{}` is malformed: {reason}", .table.name())]
    MalformedValue {
        /// The table holding the value.
        table: Table,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The store's metadata (schema version, wrapped key, generation, lease) is malformed.
    #[error("the store's metadata is malformed: {0}")]
    MalformedMeta(&'static str),
    /// [`check_integrity`](crate::Store::check_integrity) found an inconsistency.
    #[error("the store violates an invariant: {0}")]
    Invariant(String),
    /// Another holder has an unexpired lease; this handle may not write.
    #[error("the lease is held by `{holder}` until {expires_ms} ms")]
    LeaseHeld {
        /// The holder's id.
        holder: String,
        /// When its lease expires (milliseconds, the callers' clock).
        expires_ms: u64,
    },
    /// This handle held the lease, but another holder has taken it since (it had expired).
    #[error("this handle's lease was taken over by another holder")]
    LeaseLost,
    /// Another writer committed since this handle last loaded: its caches are stale. Reload
    /// them, then call [`refresh`](crate::Store::refresh).
    #[error("another writer committed since this handle loaded (generation {seen}, now {found}): reload first")]
    StaleGeneration {
        /// The generation this handle last saw.
        seen: u64,
        /// The generation in the store.
        found: u64,
    },
    /// A record in a change set cannot be stored (nothing of the change set was written).
    #[error("invalid record: {0}")]
    InvalidRecord(&'static str),
    /// Key-derivation parameters out of the accepted range.
    #[error("invalid key-derivation parameters: {0}")]
    InvalidKdfParams(&'static str),
    /// The back end failed (I/O, a busy database, a full disk).
    #[error("storage back end: {0}")]
    Backend(BackendError),
}

impl From<BackendError> for StoreError {
    fn from(error: BackendError) -> Self {
        match error.kind {
            crate::backend::BackendErrorKind::Corrupt => Self::DatabaseCorrupted(error.message),
            crate::backend::BackendErrorKind::NotADatabase => Self::NotADatabase,
            _ => Self::Backend(error),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = StoreError> = core::result::Result<T, E>;
