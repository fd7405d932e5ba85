//! The back-end primitive: ordered tables of byte rows, read one row or one key range at a
//! time, written by atomic conditional batches.
//!
//! Everything a back end must do is in [`Backend`]; everything else (records, encryption,
//! keyed hashing, leases, the generation counter, migrations) is the shared typed layer in
//! [`Store`](crate::Store). The trait is synchronous, takes and returns bytes, and speaks no
//! SQL, so a host can implement it over its own storage (IndexedDB through the bindings, say):
//! an object store per [`Table`], binary keys compared byte by byte, and one read-write
//! transaction per [`Batch`].

use core::fmt;

/// The tables of a store. Each holds rows `key → value`, ordered by key (bytewise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Table {
    /// Plain metadata: schema version, wrapped store key, generation counter, lease.
    Meta,
    /// One-of-a-kind records: the account, private cross-signing keys, sync token, backup.
    Singletons,
    /// Olm sessions, keyed by sender key and session id.
    OlmSessions,
    /// Inbound group sessions (room keys), keyed by room and session id.
    InboundGroupSessions,
    /// The room keys not yet backed up (an index kept by the typed layer; empty values).
    BackupQueue,
    /// Outbound group sessions, one per room.
    OutboundGroupSessions,
    /// Which device got which outbound session at which index, or which withheld code.
    OutboundShares,
    /// Other users' (and our own) devices, keyed by user and device id.
    Devices,
    /// Cross-signing identities, keyed by user.
    Identities,
    /// Users whose devices are tracked, with their dirty flag.
    TrackedUsers,
    /// Secrets received and awaiting the application, keyed by secret name and id.
    SecretsInbox,
    /// Outgoing secret and room-key requests, keyed by request id.
    OutgoingRequests,
    /// Withheld notices received, keyed by room and session id.
    Withheld,
    /// Room settings, keyed by room.
    RoomSettings,
    /// Megolm messages seen, `(session id, message index) → event id` (replay detection).
    SeenMessages,
    /// Encrypted to-device requests not yet accepted by the server, keyed by transaction id
    /// (since schema and layout version 2).
    OutgoingToDevice,
}

impl Table {
    /// Every table, in id order.
    pub const ALL: [Table; 16] = [
        Table::Meta,
        Table::Singletons,
        Table::OlmSessions,
        Table::InboundGroupSessions,
        Table::BackupQueue,
        Table::OutboundGroupSessions,
        Table::OutboundShares,
        Table::Devices,
        Table::Identities,
        Table::TrackedUsers,
        Table::SecretsInbox,
        Table::OutgoingRequests,
        Table::Withheld,
        Table::RoomSettings,
        Table::SeenMessages,
        Table::OutgoingToDevice,
    ];

    /// The table's stable name (the SQLite table name, an IndexedDB object store name).
    pub const fn name(self) -> &'static str {
        match self {
            Table::Meta => "meta",
            Table::Singletons => "singletons",
            Table::OlmSessions => "olm_sessions",
            Table::InboundGroupSessions => "inbound_group_sessions",
            Table::BackupQueue => "backup_queue",
            Table::OutboundGroupSessions => "outbound_group_sessions",
            Table::OutboundShares => "outbound_shares",
            Table::Devices => "devices",
            Table::Identities => "identities",
            Table::TrackedUsers => "tracked_users",
            Table::SecretsInbox => "secrets_inbox",
            Table::OutgoingRequests => "outgoing_requests",
            Table::Withheld => "withheld",
            Table::RoomSettings => "room_settings",
            Table::SeenMessages => "seen_messages",
            Table::OutgoingToDevice => "outgoing_to_device",
        }
    }

    /// The first table-layout version that has this table: a back end holding an older
    /// layout creates it in [`Backend::ensure_tables`].
    pub const fn since_layout(self) -> u32 {
        match self {
            Table::OutgoingToDevice => 2,
            _ => 1,
        }
    }

    /// The table's stable one-byte id (bound into every value's associated data).
    pub const fn id(self) -> u8 {
        self as u8
    }

    /// The position of the table in [`Table::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// One row's expected state, checked inside the batch's transaction before anything is written.
#[derive(Clone, PartialEq, Eq)]
pub struct Condition {
    /// The row's table.
    pub table: Table,
    /// The row's key.
    pub key: Vec<u8>,
    /// The exact value the row must hold, or `None` if the row must be absent.
    pub expected: Option<Vec<u8>>,
}

/// One write of a batch. Operations apply in order.
#[derive(Clone, PartialEq, Eq)]
pub enum Op {
    /// Inserts or replaces a row.
    Put {
        /// The row's table.
        table: Table,
        /// The row's key.
        key: Vec<u8>,
        /// The new value.
        value: Vec<u8>,
    },
    /// Deletes a row if it exists.
    Delete {
        /// The row's table.
        table: Table,
        /// The row's key.
        key: Vec<u8>,
    },
    /// Deletes every row whose key starts with `prefix`.
    DeletePrefix {
        /// The rows' table.
        table: Table,
        /// The common key prefix.
        prefix: Vec<u8>,
    },
}

/// An atomic, conditional write: if every condition holds, every operation is applied, in one
/// transaction; otherwise nothing is.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Checked first, in the same transaction.
    pub conditions: Vec<Condition>,
    /// Applied in order if all conditions hold.
    pub ops: Vec<Op>,
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Sizes only: values are sealed, but keys are hashes worth keeping out of logs too.
        f.debug_struct("Batch").field("conditions", &self.conditions.len()).field("ops", &self.ops.len()).finish()
    }
}

/// What kind of failure a back end reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendErrorKind {
    /// The storage is damaged (truncated, a corrupted page).
    Corrupt,
    /// The storage is not a database at all.
    NotADatabase,
    /// Another connection holds a conflicting lock for longer than the back end waits.
    Busy,
    /// The disk or quota is full.
    Full,
    /// An I/O error or any other failure.
    Other,
}

/// A back end's failure: a kind and a message from the engine (never a value's contents).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct BackendError {
    /// What kind of failure.
    pub kind: BackendErrorKind,
    /// The engine's description.
    pub message: String,
}

impl BackendError {
    /// A failure of some kind with the engine's message.
    pub fn new(kind: BackendErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }
}

/// Why a batch was not committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    /// The condition at this index of [`Batch::conditions`] did not hold; nothing was written.
    #[error("condition {0} of the batch does not hold")]
    ConditionFailed(usize),
    /// The back end failed; nothing was written.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// A row as returned by a scan: key and value.
pub type Row = (Vec<u8>, Vec<u8>);

/// The primitive every back end implements. Rows are ordered by key, compared bytewise.
///
/// Implementations must make [`commit`](Backend::commit) atomic and durable: when it returns
/// `Ok`, the whole batch is stored and survives a crash of the process; when it fails or the
/// process dies during it, nothing of the batch is stored. Reads see committed data only.
pub trait Backend {
    /// The value of one row.
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError>;

    /// Up to `limit` rows whose key starts with `prefix`, in key order, starting strictly
    /// after the key `after` when given (for paging).
    fn scan(&self, table: Table, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Vec<Row>, BackendError>;

    /// How many rows of `table` have keys starting with `prefix`.
    fn count(&self, table: Table, prefix: &[u8]) -> Result<u64, BackendError>;

    /// Checks every condition and applies every operation of `batch`, in one transaction.
    fn commit(&mut self, batch: &Batch) -> Result<(), CommitError>;

    /// Creates the tables of [`Table::ALL`] that the stored layout lacks because an older
    /// version wrote it (see [`Table::since_layout`]), leaving every existing table alone.
    /// [`Store::open`](crate::Store::open) calls it once the secret has unlocked the store,
    /// before migrating the records. The default does nothing (a back end whose tables always
    /// exist).
    fn ensure_tables(&mut self) -> Result<(), BackendError> {
        Ok(())
    }

    /// The engine's own consistency check (SQLite's `PRAGMA integrity_check`). The default
    /// checks nothing.
    fn check_engine_integrity(&self) -> Result<(), BackendError> {
        Ok(())
    }
}

/// The first key after every key that starts with `prefix`, or `None` if there is none
/// (the prefix is empty or all `0xff`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last != 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b""), None);
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
    }

    #[test]
    fn table_ids_are_their_positions() {
        for (i, table) in Table::ALL.iter().enumerate() {
            assert_eq!(table.index(), i);
            assert_eq!(usize::from(table.id()), i);
        }
    }
}
