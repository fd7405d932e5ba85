//! The typed layer shared by every back end: opening and creating stores, the one write path,
//! the queries, leases and the generation counter, integrity checks.

use ferrolm::types::Curve25519PublicKey;
use rand_core::{OsRng, RngCore};

use crate::backend::{Backend, Batch, CommitError, Condition, Op, Table};
use crate::changes::Changes;
use crate::cipher::{self, KdfParams, StoreCipher, StoreSecret, WrapKind};
use crate::error::{Result, StoreError};
use crate::migrate::{self, MIGRATIONS, Migration};
use crate::records::{
    self, AccountRecord, BackupRecord, DeviceId, DeviceRecord, IdentityRecord, InboundGroupSessionRecord, Keys,
    OlmSessionRecord, OutboundGroupSessionRecord, OutboundShare, OutgoingRequest, OutgoingToDevice,
    PrivateCrossSigningKeys, ReceivedSecret, Record, RoomId, RoomSettings, SeenMessage, SyncToken, TrackedUser, UserId,
    WithheldNotice, singleton,
};

/// Records one sealing thread takes at a time.
const SEAL_BLOCK: usize = 128;

/// The schema version this library writes, and the newest it reads.
pub const SCHEMA_VERSION: u32 = 4;

/// Keys of the plain rows of [`Table::Meta`].
pub(crate) mod meta {
    pub(crate) const SCHEMA_VERSION: &[u8] = b"schema_version";
    pub(crate) const STORE_KEY: &[u8] = b"store_key";
    pub(crate) const GENERATION: &[u8] = b"generation";
    pub(crate) const LEASE: &[u8] = b"lease";
}

/// Who holds the lease, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    /// The holder's id.
    pub holder: String,
    /// When the lease expires (milliseconds, the holders' clock).
    pub expires_ms: u64,
}

/// The outcome of [`Store::acquire_lease`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// This handle holds the lease now.
    Acquired {
        /// The store's generation.
        generation: u64,
        /// Whether another writer committed since this handle last saw the store: drop every
        /// cached account and session, reload them, then call [`Store::refresh`]. Until then
        /// `save_changes` refuses with [`StoreError::StaleGeneration`].
        reload: bool,
    },
    /// Another holder has an unexpired lease.
    Held(LeaseInfo),
}

/// Where [`Store::inbound_group_sessions_page`] stopped: pass it back to continue. Opaque.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomKeyCursor(Vec<u8>);

/// Counts of room keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoomKeyCounts {
    /// All room keys.
    pub total: u64,
    /// Those in the server-side backup.
    pub backed_up: u64,
}

/// What `inspect` shows about a store: no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreInfo {
    /// The schema version.
    pub schema_version: u32,
    /// The generation counter.
    pub generation: u64,
    /// The current lease, if any.
    pub lease: Option<LeaseInfo>,
    /// How the store key is wrapped.
    pub key_wrapping: WrapKind,
}

/// What [`Store::check_integrity`] looked at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IntegrityReport {
    /// Rows per table, every one of which opened, decoded and belongs to its row.
    pub rows: Vec<(Table, u64)>,
}

#[derive(Debug, Clone)]
struct HeldLease {
    holder: String,
    token: [u8; 16],
    row: Vec<u8>,
}

const LEASE_VERSION: u8 = 1;

fn encode_lease(holder: &str, expires_ms: u64, token: &[u8; 16]) -> Vec<u8> {
    let mut row = Vec::with_capacity(25 + holder.len());
    row.push(LEASE_VERSION);
    row.extend_from_slice(&expires_ms.to_le_bytes());
    row.extend_from_slice(token);
    row.extend_from_slice(holder.as_bytes());
    row
}

fn decode_lease(row: &[u8]) -> Result<(LeaseInfo, [u8; 16])> {
    const BAD: StoreError = StoreError::MalformedMeta("the lease row is malformed");
    let (&version, rest) = row.split_first().ok_or(BAD)?;
    if version != LEASE_VERSION {
        return Err(BAD);
    }
    let (expires, rest) = rest.split_at_checked(8).ok_or(BAD)?;
    let (token, holder) = rest.split_at_checked(16).ok_or(BAD)?;
    let expires_ms = u64::from_le_bytes(expires.try_into().map_err(|_| BAD)?);
    let token: [u8; 16] = token.try_into().map_err(|_| BAD)?;
    let holder = String::from_utf8(holder.to_vec()).map_err(|_| BAD)?;
    Ok((LeaseInfo { holder, expires_ms }, token))
}

fn decode_u32(bytes: &[u8], what: &'static str) -> Result<u32> {
    Ok(u32::from_le_bytes(bytes.try_into().map_err(|_| StoreError::MalformedMeta(what))?))
}

fn decode_u64(bytes: &[u8], what: &'static str) -> Result<u64> {
    Ok(u64::from_le_bytes(bytes.try_into().map_err(|_| StoreError::MalformedMeta(what))?))
}

/// A store: the typed, encrypted layer over a [`Backend`].
///
/// Opening unlocks the store key; every query decrypts and authenticates what it reads; the
/// only write is [`save_changes`](Store::save_changes). Two handles on the same data (two
/// processes on one file) coordinate with a lease ([`acquire_lease`](Store::acquire_lease))
/// and the generation counter. See the [crate documentation](crate) for a complete example.
pub struct Store<B: Backend> {
    backend: B,
    cipher: StoreCipher,
    seen_generation: u64,
    lease: Option<HeldLease>,
}

/// One record's row: its lookup key and its sealed value.
fn sealed_with<R: Record>(cipher: &StoreCipher, record: &R) -> Result<Op> {
    record.validate()?;
    let key = record.key(&Keys(cipher));
    let value = records::seal_record(cipher, &key, record)?;
    Ok(Op::Put { table: R::TABLE, key, value })
}

impl<B: Backend> core::fmt::Debug for Store<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Store")
            .field("generation", &self.seen_generation)
            .field("lease_holder", &self.lease.as_ref().map(|l| l.holder.as_str()))
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Store<B> {
    /// Creates a new store in an empty back end: a fresh random store key, wrapped by
    /// `secret` (with `kdf` if it is a passphrase).
    pub fn create(mut backend: B, secret: &StoreSecret, kdf: KdfParams) -> Result<Self> {
        if backend.get(Table::Meta, meta::SCHEMA_VERSION)?.is_some()
            || backend.get(Table::Meta, meta::STORE_KEY)?.is_some()
        {
            return Err(StoreError::AlreadyInitialized);
        }
        let store_key = cipher::new_store_key();
        let wrapped = cipher::wrap_store_key(&store_key, secret, kdf)?;
        let batch = Batch {
            conditions: vec![
                Condition { table: Table::Meta, key: meta::SCHEMA_VERSION.to_vec(), expected: None },
                Condition { table: Table::Meta, key: meta::STORE_KEY.to_vec(), expected: None },
            ],
            ops: vec![
                put(Table::Meta, meta::SCHEMA_VERSION, SCHEMA_VERSION.to_le_bytes().to_vec()),
                put(Table::Meta, meta::STORE_KEY, wrapped),
                put(Table::Meta, meta::GENERATION, 0u64.to_le_bytes().to_vec()),
            ],
        };
        match backend.commit(&batch) {
            Ok(()) => {}
            Err(CommitError::ConditionFailed(_)) => return Err(StoreError::AlreadyInitialized),
            Err(CommitError::Backend(e)) => return Err(e.into()),
        }
        Ok(Self { backend, cipher: StoreCipher::new(&store_key), seen_generation: 0, lease: None })
    }

    /// Opens an existing store, unlocking it with `secret`. A store of an older schema
    /// version is migrated (each step in one transaction); a newer one is refused untouched.
    pub fn open(backend: B, secret: &StoreSecret) -> Result<Self> {
        Self::open_with_migrations(backend, secret, MIGRATIONS, SCHEMA_VERSION)
    }

    /// Opens, or creates if the back end holds no store yet.
    pub fn open_or_create(backend: B, secret: &StoreSecret, kdf: KdfParams) -> Result<Self> {
        if backend.get(Table::Meta, meta::SCHEMA_VERSION)?.is_none() {
            Self::create(backend, secret, kdf)
        } else {
            Self::open(backend, secret)
        }
    }

    pub(crate) fn open_with_migrations(
        mut backend: B,
        secret: &StoreSecret,
        migrations: &[Migration],
        target: u32,
    ) -> Result<Self> {
        let version = read_schema_version(&backend)?;
        if version > target {
            return Err(StoreError::NewerSchema { found: version, supported: target });
        }
        let wrapped = backend
            .get(Table::Meta, meta::STORE_KEY)?
            .ok_or(StoreError::MalformedMeta("the wrapped store key is missing"))?;
        let store_key = cipher::unwrap_store_key(&wrapped, secret)?;
        let cipher = StoreCipher::new(&store_key);
        // Unlocked: now the back end may add the tables a newer layout has.
        backend.ensure_tables()?;
        if version < target {
            migrate::run(&mut backend, &cipher, migrations, version, target)?;
        }
        let generation = read_generation(&backend)?;
        Ok(Self { backend, cipher, seen_generation: generation, lease: None })
    }

    /// The back end.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The back end, giving up the store.
    pub fn into_backend(self) -> B {
        self.backend
    }

    fn keys(&self) -> Keys<'_> {
        Keys(&self.cipher)
    }

    // -------------------------------------------------------------------------------------
    // Writing.

    /// Commits a change set in one transaction and returns the new generation.
    ///
    /// Refused, with nothing written, when a record is invalid, when another handle holds an
    /// unexpired lease ([`StoreError::LeaseHeld`]) or took this handle's lease over
    /// ([`StoreError::LeaseLost`]), or when another writer committed since this handle last
    /// saw the store ([`StoreError::StaleGeneration`]).
    pub fn save_changes(&mut self, changes: &Changes) -> Result<u64> {
        let ops = self.ops_for(changes)?;
        self.commit_data(ops)
    }

    fn commit_data(&mut self, mut ops: Vec<Op>) -> Result<u64> {
        let next = self.seen_generation.checked_add(1).ok_or(StoreError::MalformedMeta("generation overflow"))?;
        ops.push(put(Table::Meta, meta::GENERATION, next.to_le_bytes().to_vec()));
        let batch = Batch { conditions: self.fence(), ops };
        match self.backend.commit(&batch) {
            Ok(()) => {
                self.seen_generation = next;
                Ok(next)
            }
            Err(CommitError::ConditionFailed(_)) => Err(self.fence_error()),
            Err(CommitError::Backend(e)) => Err(e.into()),
        }
    }

    /// The conditions of every write: the generation this handle saw, and the lease row as
    /// this handle left it (or no lease at all).
    fn fence(&self) -> Vec<Condition> {
        vec![
            Condition {
                table: Table::Meta,
                key: meta::GENERATION.to_vec(),
                expected: Some(self.seen_generation.to_le_bytes().to_vec()),
            },
            Condition {
                table: Table::Meta,
                key: meta::LEASE.to_vec(),
                expected: self.lease.as_ref().map(|l| l.row.clone()),
            },
        ]
    }

    /// Why the fence refused a write: the lease first (it explains a generation change too),
    /// then the generation.
    fn fence_error(&mut self) -> StoreError {
        let lease_row = match self.backend.get(Table::Meta, meta::LEASE) {
            Ok(row) => row,
            Err(e) => return e.into(),
        };
        if lease_row.as_ref() != self.lease.as_ref().map(|l| &l.row) {
            if self.lease.take().is_some() {
                return StoreError::LeaseLost;
            }
            return match lease_row.as_deref().map(decode_lease) {
                Some(Ok((info, _))) => StoreError::LeaseHeld { holder: info.holder, expires_ms: info.expires_ms },
                Some(Err(e)) => e,
                None => StoreError::LeaseLost,
            };
        }
        match read_generation(&self.backend) {
            Ok(found) => StoreError::StaleGeneration { seen: self.seen_generation, found },
            Err(e) => e,
        }
    }

    fn sealed<R: Record>(&self, record: &R) -> Result<Op> {
        sealed_with(&self.cipher, record)
    }

    /// Every record of `records` sealed, in order: on every core for a large change set (a
    /// room key shared with thousands of devices saves as many Olm sessions and shares).
    fn sealed_all<R: Record + Sync>(&self, records: &[R], ops: &mut Vec<Op>) -> Result<()> {
        let cipher = &self.cipher;
        for op in crate::parallel::map(records, SEAL_BLOCK, |record| sealed_with(cipher, record)) {
            ops.push(op?);
        }
        Ok(())
    }

    fn ops_for(&self, changes: &Changes) -> Result<Vec<Op>> {
        let keys = self.keys();
        let mut ops = Vec::new();
        let d = &changes.deletions;
        for (sender, session_id) in &d.olm_sessions {
            ops.push(Op::Delete { table: Table::OlmSessions, key: keys.olm_session(sender, session_id) });
        }
        for (room, session_id) in &d.inbound_group_sessions {
            let key = keys.room_session(room, session_id);
            ops.push(Op::Delete { table: Table::BackupQueue, key: key.clone() });
            ops.push(Op::Delete { table: Table::InboundGroupSessions, key });
        }
        for room in &d.outbound_group_sessions {
            let key = keys.room(room).to_vec();
            ops.push(Op::DeletePrefix { table: Table::OutboundShares, prefix: key.clone() });
            ops.push(Op::Delete { table: Table::OutboundGroupSessions, key });
        }
        for (user, device) in &d.devices {
            ops.push(Op::Delete { table: Table::Devices, key: keys.user_device(user, device) });
        }
        for user in &d.identities {
            ops.push(Op::Delete { table: Table::Identities, key: keys.user(user).to_vec() });
        }
        for user in &d.tracked_users {
            ops.push(Op::Delete { table: Table::TrackedUsers, key: keys.user(user).to_vec() });
        }
        if d.private_cross_signing_keys {
            ops.push(Op::Delete { table: Table::Singletons, key: singleton::CROSS_SIGNING.to_vec() });
        }
        if d.backup {
            ops.push(Op::Delete { table: Table::Singletons, key: singleton::BACKUP.to_vec() });
        }
        for name in &d.secrets_inbox {
            ops.push(Op::DeletePrefix { table: Table::SecretsInbox, prefix: keys.secret_name(name).to_vec() });
        }
        for id in &d.outgoing_requests {
            ops.push(Op::Delete { table: Table::OutgoingRequests, key: keys.request(id) });
        }
        for (room, session_id) in &d.withheld {
            ops.push(Op::Delete { table: Table::Withheld, key: keys.room_session(room, session_id) });
        }
        for room in &d.room_settings {
            ops.push(Op::Delete { table: Table::RoomSettings, key: keys.room(room).to_vec() });
        }
        for session_id in &d.seen_messages {
            ops.push(Op::DeletePrefix { table: Table::SeenMessages, prefix: keys.megolm(session_id).to_vec() });
        }
        for txn_id in &d.outgoing_to_device {
            ops.push(Op::Delete { table: Table::OutgoingToDevice, key: keys.txn(txn_id) });
        }

        if let Some(account) = &changes.account {
            ops.push(self.sealed(account)?);
        }
        self.sealed_all(&changes.olm_sessions, &mut ops)?;
        for session in &changes.inbound_group_sessions {
            let op = self.sealed(session)?;
            if let Op::Put { key, .. } = &op {
                ops.push(if session.backed_up {
                    Op::Delete { table: Table::BackupQueue, key: key.clone() }
                } else {
                    Op::Put { table: Table::BackupQueue, key: key.clone(), value: Vec::new() }
                });
            }
            ops.push(op);
        }
        for session in &changes.outbound_group_sessions {
            let op = self.sealed(session)?;
            // A new session for the room: the old session's shares go.
            if let Some(old) = self.outbound_group_session(&session.room_id)?
                && old.session_id() != session.session_id()
            {
                ops.push(Op::DeletePrefix {
                    table: Table::OutboundShares,
                    prefix: keys.room(&session.room_id).to_vec(),
                });
            }
            ops.push(op);
        }
        self.sealed_all(&changes.outbound_shares, &mut ops)?;
        for device in &changes.devices {
            ops.push(self.sealed(device)?);
        }
        for identity in &changes.identities {
            ops.push(self.sealed(identity)?);
        }
        if let Some(keys) = &changes.private_cross_signing_keys {
            ops.push(self.sealed(keys)?);
        }
        for user in &changes.tracked_users {
            ops.push(self.sealed(user)?);
        }
        if let Some(token) = &changes.sync_token {
            ops.push(self.sealed(&SyncToken(token.clone()))?);
        }
        if let Some(backup) = &changes.backup {
            ops.push(self.sealed(backup)?);
        }
        for secret in &changes.secrets_inbox {
            ops.push(self.sealed(secret)?);
        }
        for request in &changes.outgoing_requests {
            ops.push(self.sealed(request)?);
        }
        for notice in &changes.withheld {
            ops.push(self.sealed(notice)?);
        }
        for settings in &changes.room_settings {
            ops.push(self.sealed(settings)?);
        }
        for seen in &changes.seen_messages {
            ops.push(self.sealed(seen)?);
        }
        for request in &changes.outgoing_to_device {
            ops.push(self.sealed(request)?);
        }
        Ok(ops)
    }

    /// Re-wraps the store key under a new secret (passphrase or raw key). The data is not
    /// rewritten. Fenced like a commit (lease and generation), but does not bump the generation.
    pub fn change_secret(&mut self, new_secret: &StoreSecret, kdf: KdfParams) -> Result<()> {
        let current = self
            .backend
            .get(Table::Meta, meta::STORE_KEY)?
            .ok_or(StoreError::MalformedMeta("the wrapped store key is missing"))?;
        // The handle holds the store key already: only its wrapping changes.
        let wrapped = cipher::wrap_store_key(self.cipher.store_key(), new_secret, kdf)?;
        let mut conditions = self.fence();
        conditions.push(Condition { table: Table::Meta, key: meta::STORE_KEY.to_vec(), expected: Some(current) });
        let batch = Batch { conditions, ops: vec![put(Table::Meta, meta::STORE_KEY, wrapped)] };
        match self.backend.commit(&batch) {
            Ok(()) => Ok(()),
            Err(CommitError::ConditionFailed(2)) => {
                Err(StoreError::StaleGeneration { seen: self.seen_generation, found: read_generation(&self.backend)? })
            }
            Err(CommitError::ConditionFailed(_)) => Err(self.fence_error()),
            Err(CommitError::Backend(e)) => Err(e.into()),
        }
    }

    // -------------------------------------------------------------------------------------
    // Leases and the generation counter.

    /// Takes the lease for `holder` until `now_ms + duration_ms`, unless another holder has an
    /// unexpired lease. A holder with the same id takes its own lease back (a restarted
    /// process). Does not change the generation; see [`LeaseOutcome::Acquired`] for `reload`.
    pub fn acquire_lease(&mut self, holder: &str, now_ms: u64, duration_ms: u64) -> Result<LeaseOutcome> {
        let expires_ms = now_ms.saturating_add(duration_ms);
        for _ in 0..4 {
            let current = self.backend.get(Table::Meta, meta::LEASE)?;
            let token = match &current {
                Some(row) => {
                    let (info, token) = decode_lease(row)?;
                    if info.holder != holder && info.expires_ms > now_ms {
                        return Ok(LeaseOutcome::Held(info));
                    }
                    // Our own lease (this handle's token) is renewed; anyone else's is replaced.
                    match &self.lease {
                        Some(held) if held.token == token && info.holder == holder => token,
                        _ => fresh_token(),
                    }
                }
                None => fresh_token(),
            };
            let row = encode_lease(holder, expires_ms, &token);
            let batch = Batch {
                conditions: vec![Condition { table: Table::Meta, key: meta::LEASE.to_vec(), expected: current }],
                ops: vec![put(Table::Meta, meta::LEASE, row.clone())],
            };
            match self.backend.commit(&batch) {
                Ok(()) => {
                    self.lease = Some(HeldLease { holder: holder.to_owned(), token, row });
                    let generation = read_generation(&self.backend)?;
                    return Ok(LeaseOutcome::Acquired { generation, reload: generation != self.seen_generation });
                }
                // Someone else wrote the lease row between our read and our commit: look again.
                Err(CommitError::ConditionFailed(_)) => continue,
                Err(CommitError::Backend(e)) => return Err(e.into()),
            }
        }
        match self.current_lease()? {
            Some(info) => Ok(LeaseOutcome::Held(info)),
            None => Err(StoreError::LeaseLost),
        }
    }

    /// Extends this handle's lease to `now_ms + duration_ms`. Fails with
    /// [`StoreError::LeaseLost`] if another holder took it over.
    pub fn renew_lease(&mut self, now_ms: u64, duration_ms: u64) -> Result<()> {
        let held = self.lease.clone().ok_or(StoreError::LeaseLost)?;
        let row = encode_lease(&held.holder, now_ms.saturating_add(duration_ms), &held.token);
        let batch = Batch {
            conditions: vec![Condition { table: Table::Meta, key: meta::LEASE.to_vec(), expected: Some(held.row) }],
            ops: vec![put(Table::Meta, meta::LEASE, row.clone())],
        };
        match self.backend.commit(&batch) {
            Ok(()) => {
                self.lease = Some(HeldLease { row, ..held });
                Ok(())
            }
            Err(CommitError::ConditionFailed(_)) => {
                self.lease = None;
                Err(StoreError::LeaseLost)
            }
            Err(CommitError::Backend(e)) => Err(e.into()),
        }
    }

    /// Gives the lease up. Fails with [`StoreError::LeaseLost`] if another holder took it over.
    pub fn release_lease(&mut self) -> Result<()> {
        let held = self.lease.take().ok_or(StoreError::LeaseLost)?;
        let batch = Batch {
            conditions: vec![Condition { table: Table::Meta, key: meta::LEASE.to_vec(), expected: Some(held.row) }],
            ops: vec![Op::Delete { table: Table::Meta, key: meta::LEASE.to_vec() }],
        };
        match self.backend.commit(&batch) {
            Ok(()) => Ok(()),
            Err(CommitError::ConditionFailed(_)) => Err(StoreError::LeaseLost),
            Err(CommitError::Backend(e)) => Err(e.into()),
        }
    }

    /// Whether this handle holds the lease (as far as it knows: a lease that expired and was
    /// taken over shows up as [`StoreError::LeaseLost`] at the next write).
    pub fn holds_lease(&self) -> bool {
        self.lease.is_some()
    }

    /// The lease as stored, if any.
    pub fn current_lease(&self) -> Result<Option<LeaseInfo>> {
        match self.backend.get(Table::Meta, meta::LEASE)? {
            Some(row) => Ok(Some(decode_lease(&row)?.0)),
            None => Ok(None),
        }
    }

    /// The generation this handle last saw (at open, its own commits, [`refresh`](Self::refresh)).
    pub fn generation(&self) -> u64 {
        self.seen_generation
    }

    /// The generation in the store now (bumped by every commit of every handle).
    pub fn stored_generation(&self) -> Result<u64> {
        read_generation(&self.backend)
    }

    /// Accepts the store's current generation, after the caller has dropped and reloaded
    /// whatever it caches. Returns it.
    pub fn refresh(&mut self) -> Result<u64> {
        self.seen_generation = read_generation(&self.backend)?;
        Ok(self.seen_generation)
    }

    // -------------------------------------------------------------------------------------
    // Reading.

    fn get<R: Record>(&self, key: &[u8]) -> Result<Option<R>> {
        match self.backend.get(R::TABLE, key)? {
            Some(value) => Ok(Some(records::open_record(&self.cipher, key, &value)?)),
            None => Ok(None),
        }
    }

    fn get_if<R: Record>(&self, key: &[u8], belongs: impl Fn(&R) -> bool) -> Result<Option<R>> {
        match self.backend.get(R::TABLE, key)? {
            Some(value) => Ok(Some(records::open_record_if(&self.cipher, key, &value, belongs)?)),
            None => Ok(None),
        }
    }

    fn scan_if<R: Record>(&self, prefix: &[u8], belongs: impl Fn(&R) -> bool) -> Result<Vec<R>> {
        self.backend
            .scan(R::TABLE, prefix, None, usize::MAX)?
            .into_iter()
            .map(|(key, value)| records::open_record_if(&self.cipher, &key, &value, &belongs))
            .collect()
    }

    fn scan<R: Record>(&self, prefix: &[u8]) -> Result<Vec<R>> {
        self.backend
            .scan(R::TABLE, prefix, None, usize::MAX)?
            .into_iter()
            .map(|(key, value)| records::open_record(&self.cipher, &key, &value))
            .collect()
    }

    /// The account, if one was saved.
    pub fn account(&self) -> Result<Option<AccountRecord>> {
        self.get(singleton::ACCOUNT)
    }

    /// One Olm session.
    pub fn olm_session(&self, sender_key: &Curve25519PublicKey, session_id: &str) -> Result<Option<OlmSessionRecord>> {
        self.get_if(&self.keys().olm_session(sender_key, session_id), |r: &OlmSessionRecord| {
            r.sender_key == *sender_key && r.session_id() == session_id
        })
    }

    /// Every Olm session with the device of this Curve25519 key.
    pub fn olm_sessions(&self, sender_key: &Curve25519PublicKey) -> Result<Vec<OlmSessionRecord>> {
        self.scan_if(&self.keys().sender(sender_key), |r: &OlmSessionRecord| r.sender_key == *sender_key)
    }

    /// One room key.
    pub fn inbound_group_session(
        &self,
        room_id: &RoomId,
        session_id: &str,
    ) -> Result<Option<InboundGroupSessionRecord>> {
        self.get_if(&self.keys().room_session(room_id, session_id), |r: &InboundGroupSessionRecord| {
            r.room_id == *room_id && r.session_id() == session_id
        })
    }

    /// Every room key of a room.
    pub fn inbound_group_sessions_in_room(&self, room_id: &RoomId) -> Result<Vec<InboundGroupSessionRecord>> {
        self.scan_if(&self.keys().room(room_id), |r: &InboundGroupSessionRecord| r.room_id == *room_id)
    }

    /// Every room key of every room (for key export and `inspect`; loads them all).
    pub fn all_inbound_group_sessions(&self) -> Result<Vec<InboundGroupSessionRecord>> {
        self.scan(&[])
    }

    /// Up to `limit` room keys not yet backed up. Marking them backed up (saving them with
    /// `backed_up: true`) removes them from this query, so repeated calls walk the queue.
    pub fn inbound_group_sessions_to_back_up(&self, limit: usize) -> Result<Vec<InboundGroupSessionRecord>> {
        let queued = self.backend.scan(Table::BackupQueue, &[], None, limit)?;
        let mut out = Vec::with_capacity(queued.len());
        for (key, _) in queued {
            let session = self
                .get::<InboundGroupSessionRecord>(&key)?
                .ok_or_else(|| StoreError::Invariant("the backup queue names a room key that is not stored".into()))?;
            out.push(session);
        }
        Ok(out)
    }

    /// How many room keys there are, and how many are backed up.
    pub fn room_key_counts(&self) -> Result<RoomKeyCounts> {
        let total = self.backend.count(Table::InboundGroupSessions, &[])?;
        let pending = self.backend.count(Table::BackupQueue, &[])?;
        Ok(RoomKeyCounts { total, backed_up: total.saturating_sub(pending) })
    }

    /// The room's outbound session.
    pub fn outbound_group_session(&self, room_id: &RoomId) -> Result<Option<OutboundGroupSessionRecord>> {
        self.get(&self.keys().room(room_id))
    }

    /// Every share of a room's outbound session.
    pub fn outbound_shares(&self, room_id: &RoomId, session_id: &str) -> Result<Vec<OutboundShare>> {
        let keys = self.keys();
        let mut prefix = keys.room(room_id).to_vec();
        prefix.extend_from_slice(&keys.megolm(session_id));
        self.scan(&prefix)
    }

    /// One device.
    pub fn device(&self, user_id: &UserId, device_id: &DeviceId) -> Result<Option<DeviceRecord>> {
        self.get(&self.keys().user_device(user_id, device_id))
    }

    /// Every device of a user (deleted ones too; see [`DeviceRecord::deleted`]).
    pub fn devices(&self, user_id: &UserId) -> Result<Vec<DeviceRecord>> {
        self.scan(&self.keys().user(user_id))
    }

    /// The device of `user_id` whose Curve25519 identity key is `key`, if any (the owner of an
    /// Olm sender key). Reads the user's devices.
    pub fn device_by_curve25519_key(
        &self,
        user_id: &UserId,
        key: &Curve25519PublicKey,
    ) -> Result<Option<DeviceRecord>> {
        Ok(self.devices(user_id)?.into_iter().find(|d| d.curve25519_key.as_ref() == Some(key)))
    }

    /// Up to `limit` room keys of every room, in storage order (by keyed hash, not by room
    /// name), starting after `after`; returns them and the cursor to pass next (`None`: done).
    pub fn inbound_group_sessions_page(
        &self,
        after: Option<&RoomKeyCursor>,
        limit: usize,
    ) -> Result<(Vec<InboundGroupSessionRecord>, Option<RoomKeyCursor>)> {
        let rows = self.backend.scan(Table::InboundGroupSessions, &[], after.map(|c| c.0.as_slice()), limit)?;
        let next = if rows.len() == limit { rows.last().map(|(k, _)| RoomKeyCursor(k.clone())) } else { None };
        let records = rows
            .into_iter()
            .map(|(key, value)| records::open_record(&self.cipher, &key, &value))
            .collect::<Result<Vec<_>>>()?;
        Ok((records, next))
    }

    /// Every device of every user (for `inspect`).
    pub fn all_devices(&self) -> Result<Vec<DeviceRecord>> {
        self.scan(&[])
    }

    /// Every Olm session with every device (for `inspect`).
    pub fn all_olm_sessions(&self) -> Result<Vec<OlmSessionRecord>> {
        self.scan(&[])
    }

    /// Every cross-signing identity (for `inspect`).
    pub fn all_identities(&self) -> Result<Vec<IdentityRecord>> {
        self.scan(&[])
    }

    /// A user's cross-signing identity.
    pub fn identity(&self, user_id: &UserId) -> Result<Option<IdentityRecord>> {
        self.get(&self.keys().user(user_id))
    }

    /// The own private cross-signing keys.
    pub fn private_cross_signing_keys(&self) -> Result<Option<PrivateCrossSigningKeys>> {
        self.get(singleton::CROSS_SIGNING)
    }

    /// Every tracked user.
    pub fn tracked_users(&self) -> Result<Vec<TrackedUser>> {
        self.scan(&[])
    }

    /// The sync token last saved.
    pub fn sync_token(&self) -> Result<Option<String>> {
        Ok(self.get::<SyncToken>(singleton::SYNC_TOKEN)?.map(|t| t.0))
    }

    /// The backup version and key.
    pub fn backup(&self) -> Result<Option<BackupRecord>> {
        self.get(singleton::BACKUP)
    }

    /// Every received secret of this name.
    pub fn secrets_in_inbox(&self, name: &str) -> Result<Vec<ReceivedSecret>> {
        self.scan(&self.keys().secret_name(name))
    }

    /// One outgoing request.
    pub fn outgoing_request(&self, request_id: &str) -> Result<Option<OutgoingRequest>> {
        self.get(&self.keys().request(request_id))
    }

    /// Every outgoing request.
    pub fn outgoing_requests(&self) -> Result<Vec<OutgoingRequest>> {
        self.scan(&[])
    }

    /// The withheld notice for a room key, if one was received.
    pub fn withheld_notice(&self, room_id: &RoomId, session_id: &str) -> Result<Option<WithheldNotice>> {
        self.get(&self.keys().room_session(room_id, session_id))
    }

    /// A room's settings.
    pub fn room_settings(&self, room_id: &RoomId) -> Result<Option<RoomSettings>> {
        self.get(&self.keys().room(room_id))
    }

    /// Every to-device request not yet accepted by the server (to resend after a restart).
    pub fn outgoing_to_device(&self) -> Result<Vec<OutgoingToDevice>> {
        self.scan(&[])
    }

    /// One to-device request by transaction id.
    pub fn outgoing_to_device_request(&self, txn_id: &str) -> Result<Option<OutgoingToDevice>> {
        self.get(&self.keys().txn(txn_id))
    }

    /// The event id seen with this Megolm session and message index, if any.
    pub fn seen_message(&self, session_id: &str, message_index: u32) -> Result<Option<String>> {
        Ok(self.get::<SeenMessage>(&self.keys().seen(session_id, message_index))?.map(|s| s.event_id))
    }

    /// Rows per table (the meta table included).
    pub fn row_counts(&self) -> Result<Vec<(Table, u64)>> {
        Table::ALL.iter().map(|&t| Ok((t, self.backend.count(t, &[])?))).collect()
    }

    /// Schema version, generation, lease and key wrapping: what `inspect` shows.
    pub fn info(&self) -> Result<StoreInfo> {
        let wrapped = self
            .backend
            .get(Table::Meta, meta::STORE_KEY)?
            .ok_or(StoreError::MalformedMeta("the wrapped store key is missing"))?;
        Ok(StoreInfo {
            schema_version: read_schema_version(&self.backend)?,
            generation: read_generation(&self.backend)?,
            lease: self.current_lease()?,
            key_wrapping: cipher::wrap_kind(&wrapped)?,
        })
    }

    // -------------------------------------------------------------------------------------
    // Integrity.

    /// Checks the whole store: the engine's own check (SQLite's `PRAGMA integrity_check`),
    /// the metadata, every row of every table (it opens, decodes and belongs to its row), and
    /// the invariants between tables (the backup queue lists exactly the room keys not backed
    /// up; every share belongs to its room's current outbound session). Reports the first
    /// problem found; changes nothing.
    pub fn check_integrity(&self) -> Result<IntegrityReport> {
        self.backend.check_engine_integrity()?;
        let version = read_schema_version(&self.backend)?;
        if version != SCHEMA_VERSION {
            return Err(StoreError::Invariant(format!("schema version {version} after opening")));
        }
        read_generation(&self.backend)?;
        self.current_lease()?;
        let mut report = IntegrityReport::default();
        for table in Table::ALL {
            let n = self.check_table(table)?;
            report.rows.push((table, n));
        }
        Ok(report)
    }

    fn check_table(&self, table: Table) -> Result<u64> {
        let mut count = 0u64;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let rows = self.backend.scan(table, &[], after.as_deref(), 512)?;
            let Some((last, _)) = rows.last() else { break };
            let last = last.clone();
            for (key, value) in &rows {
                self.check_row(table, key, value)?;
                count += 1;
            }
            after = Some(last);
        }
        Ok(count)
    }

    fn check_row(&self, table: Table, key: &[u8], value: &[u8]) -> Result<()> {
        let c = &self.cipher;
        match table {
            Table::Meta => match key {
                meta::SCHEMA_VERSION => decode_u32(value, "schema version").map(drop),
                meta::GENERATION => decode_u64(value, "generation").map(drop),
                meta::LEASE => decode_lease(value).map(drop),
                meta::STORE_KEY => cipher::wrap_kind(value).map(drop),
                _ => Err(StoreError::Invariant("an unknown row in the meta table".into())),
            },
            Table::Singletons => match key {
                singleton::ACCOUNT => records::open_record::<AccountRecord>(c, key, value).map(drop),
                singleton::CROSS_SIGNING => records::open_record::<PrivateCrossSigningKeys>(c, key, value).map(drop),
                singleton::SYNC_TOKEN => records::open_record::<SyncToken>(c, key, value).map(drop),
                singleton::BACKUP => records::open_record::<BackupRecord>(c, key, value).map(drop),
                _ => Err(StoreError::Invariant("an unknown row in the singletons table".into())),
            },
            Table::OlmSessions => records::open_record::<OlmSessionRecord>(c, key, value).map(drop),
            Table::InboundGroupSessions => {
                let record = records::open_record::<InboundGroupSessionRecord>(c, key, value)?;
                let queued = self.backend.get(Table::BackupQueue, key)?.is_some();
                if queued == record.backed_up {
                    return Err(StoreError::Invariant(if record.backed_up {
                        "a backed-up room key is in the backup queue".into()
                    } else {
                        "a room key not backed up is missing from the backup queue".into()
                    }));
                }
                Ok(())
            }
            Table::BackupQueue => {
                if !value.is_empty() {
                    return Err(StoreError::Invariant("a backup queue entry has a value".into()));
                }
                if self.backend.get(Table::InboundGroupSessions, key)?.is_none() {
                    return Err(StoreError::Invariant("the backup queue names a room key that is not stored".into()));
                }
                Ok(())
            }
            Table::OutboundGroupSessions => records::open_record::<OutboundGroupSessionRecord>(c, key, value).map(drop),
            Table::OutboundShares => {
                let share = records::open_record::<OutboundShare>(c, key, value)?;
                match self.outbound_group_session(&share.room_id)? {
                    Some(session) if session.session_id() == share.session_id => Ok(()),
                    _ => Err(StoreError::Invariant("a share of an outbound session that is not the room's".into())),
                }
            }
            Table::Devices => records::open_record::<DeviceRecord>(c, key, value).map(drop),
            Table::Identities => records::open_record::<IdentityRecord>(c, key, value).map(drop),
            Table::TrackedUsers => records::open_record::<TrackedUser>(c, key, value).map(drop),
            Table::SecretsInbox => records::open_record::<ReceivedSecret>(c, key, value).map(drop),
            Table::OutgoingRequests => records::open_record::<OutgoingRequest>(c, key, value).map(drop),
            Table::Withheld => records::open_record::<WithheldNotice>(c, key, value).map(drop),
            Table::RoomSettings => records::open_record::<RoomSettings>(c, key, value).map(drop),
            Table::SeenMessages => records::open_record::<SeenMessage>(c, key, value).map(drop),
            Table::OutgoingToDevice => records::open_record::<OutgoingToDevice>(c, key, value).map(drop),
        }
    }
}

fn fresh_token() -> [u8; 16] {
    let mut token = [0u8; 16];
    OsRng.fill_bytes(&mut token);
    token
}

pub(crate) fn put(table: Table, key: &[u8], value: Vec<u8>) -> Op {
    Op::Put { table, key: key.to_vec(), value }
}

pub(crate) fn read_schema_version(backend: &(impl Backend + ?Sized)) -> Result<u32> {
    match backend.get(Table::Meta, meta::SCHEMA_VERSION)? {
        Some(bytes) => decode_u32(&bytes, "the schema version is malformed"),
        None => Err(StoreError::NotInitialized),
    }
}

pub(crate) fn read_generation(backend: &(impl Backend + ?Sized)) -> Result<u64> {
    match backend.get(Table::Meta, meta::GENERATION)? {
        Some(bytes) => decode_u64(&bytes, "the generation counter is malformed"),
        None => Err(StoreError::MalformedMeta("the generation counter is missing")),
    }
}
