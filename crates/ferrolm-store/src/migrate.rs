//! Schema versions and migrations.
//!
//! The schema version is the row `schema_version` of the [`Meta`](crate::Table::Meta) table
//! (the version table of every back end). A store older than [`SCHEMA_VERSION`] is migrated
//! when opened, one version at a time: each step reads what it needs, returns the writes that
//! bring the data to the next version, and commits them in one transaction together with the
//! new version number and a generation bump, conditioned on the version and generation it
//! started from. A step that fails leaves the store at the version before it. Migrations
//! rewrite records into their new form; they never drop data they cannot read (they fail).
//!
//! History:
//! - **1**: the first schema.
//! - **2**: account records gain the fallback key's publication time (record format 2; the
//!   step re-encodes the account); the table `outgoing_to_device` appears (created by the back
//!   end's [`ensure_tables`](crate::Backend::ensure_tables) before the step runs).
//! - **3**: device records gain the `m.no_olm` flag (format 2 device records; format 1 ones
//!   still decode, the step rewrites nothing).
//! - **4**: identity records gain the pinned master key (record format 2; the step re-encodes
//!   every identity, with no pinned key: the machine pins the stored master key). No table
//!   changes in 3 or 4, so the SQLite layout stays at version 2.
//!
//! The SQLite back end keeps its table layout's version in `PRAGMA user_version` and refuses a
//! newer layout the same way.

use crate::backend::{Backend, Batch, CommitError, Condition, Op, Table};
use crate::cipher::StoreCipher;
use crate::error::{Result, StoreError};
#[cfg(doc)]
use crate::store::SCHEMA_VERSION;
use crate::store::{meta, put, read_generation};

/// One migration step, from version `from` to `from + 1`.
pub(crate) struct Migration {
    /// The version it starts from.
    pub(crate) from: u32,
    /// The writes that bring the data to version `from + 1`.
    pub(crate) run: fn(&dyn Backend, &StoreCipher) -> Result<Vec<Op>>,
}

/// Every migration of the store's history, in order.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration { from: 1, run: account_format_2 },
    Migration { from: 2, run: device_format_2 },
    Migration { from: 3, run: identity_format_2 },
];

/// 1 → 2: the account record is re-encoded in format 2 (no fallback-key time yet).
fn account_format_2(backend: &dyn Backend, cipher: &StoreCipher) -> Result<Vec<Op>> {
    use crate::records::{AccountRecord, open_record, seal_record, singleton};
    let key = singleton::ACCOUNT;
    let Some(value) = backend.get(Table::Singletons, key)? else { return Ok(Vec::new()) };
    let account: AccountRecord = open_record(cipher, key, &value)?;
    let value = seal_record(cipher, key, &account)?;
    Ok(vec![Op::Put { table: Table::Singletons, key: key.to_vec(), value }])
}

/// 2 → 3: device records gain the `m.no_olm` flag. Format 1 device records still decode (as
/// "not sent"), so no record is rewritten: the step only moves the version, so that a library
/// that knows schema 2 refuses the store instead of failing on the first new device record.
fn device_format_2(_: &dyn Backend, _: &StoreCipher) -> Result<Vec<Op>> {
    Ok(Vec::new())
}

/// 3 → 4: every identity record is re-encoded in format 2 (no pinned master key yet).
fn identity_format_2(backend: &dyn Backend, cipher: &StoreCipher) -> Result<Vec<Op>> {
    use crate::records::{IdentityRecord, open_record, seal_record};
    let mut ops = Vec::new();
    for (key, value) in backend.scan(Table::Identities, &[], None, usize::MAX)? {
        let identity: IdentityRecord = open_record(cipher, &key, &value)?;
        let value = seal_record(cipher, &key, &identity)?;
        ops.push(Op::Put { table: Table::Identities, key, value });
    }
    Ok(ops)
}

/// Brings a store from version `from` to `to`, one committed step at a time.
pub(crate) fn run<B: Backend>(
    backend: &mut B,
    cipher: &StoreCipher,
    migrations: &[Migration],
    from: u32,
    to: u32,
) -> Result<()> {
    let mut version = from;
    while version < to {
        let step = migrations
            .iter()
            .find(|m| m.from == version)
            .ok_or(StoreError::MalformedMeta("no migration from the store's schema version"))?;
        let generation = read_generation(backend)?;
        let mut ops = (step.run)(&*backend, cipher)?;
        let next = version + 1;
        ops.push(put(Table::Meta, meta::SCHEMA_VERSION, next.to_le_bytes().to_vec()));
        ops.push(put(Table::Meta, meta::GENERATION, (generation + 1).to_le_bytes().to_vec()));
        let batch = Batch {
            conditions: vec![
                Condition {
                    table: Table::Meta,
                    key: meta::SCHEMA_VERSION.to_vec(),
                    expected: Some(version.to_le_bytes().to_vec()),
                },
                Condition {
                    table: Table::Meta,
                    key: meta::GENERATION.to_vec(),
                    expected: Some(generation.to_le_bytes().to_vec()),
                },
            ],
            ops,
        };
        match backend.commit(&batch) {
            Ok(()) => version = next,
            Err(CommitError::ConditionFailed(_)) => {
                return Err(StoreError::StaleGeneration { seen: generation, found: read_generation(backend)? });
            }
            Err(CommitError::Backend(e)) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{Keys, TrackedUser, UserId};
    use crate::{Changes, KdfParams, MemoryBackend, Store, StoreSecret};

    /// A made-up step from the current version to the next: marks every tracked user dirty (re-encoding each record).
    fn mark_all_dirty(backend: &dyn Backend, cipher: &StoreCipher) -> Result<Vec<Op>> {
        let mut ops = Vec::new();
        for (key, value) in backend.scan(Table::TrackedUsers, &[], None, usize::MAX)? {
            let mut user: TrackedUser = crate::records::open_record(cipher, &key, &value)?;
            user.dirty = true;
            let key = crate::records::Record::key(&user, &Keys(cipher));
            let value = crate::records::seal_record(cipher, &key, &user)?;
            ops.push(Op::Put { table: Table::TrackedUsers, key, value });
        }
        Ok(ops)
    }

    fn failing(_: &dyn Backend, _: &StoreCipher) -> Result<Vec<Op>> {
        Err(StoreError::InvalidRecord("this migration fails"))
    }

    fn store_at_current() -> (MemoryBackend, StoreSecret) {
        let backend = MemoryBackend::new();
        let secret = StoreSecret::key([3; 32]);
        let mut store = Store::create(backend.clone(), &secret, KdfParams::default()).unwrap();
        let mut changes = Changes::default();
        for name in ["@a:x", "@b:x"] {
            changes.tracked_users.push(TrackedUser { user_id: UserId::from(name), dirty: false });
        }
        store.save_changes(&changes).unwrap();
        (backend, secret)
    }

    #[test]
    fn a_step_migrates_records_and_the_version_together() {
        let (backend, secret) = store_at_current();
        let (current, next) = (crate::SCHEMA_VERSION, crate::SCHEMA_VERSION + 1);
        let steps = [Migration { from: current, run: mark_all_dirty }];
        let store = Store::open_with_migrations(backend.clone(), &secret, &steps, next).unwrap();
        assert_eq!(store.info().unwrap().schema_version, next);
        assert_eq!(store.generation(), 2, "the migration bumped the generation");
        assert!(store.tracked_users().unwrap().iter().all(|u| u.dirty));
        // Opening at the next version again runs nothing; a library that knows only the
        // current version refuses.
        Store::open_with_migrations(backend.clone(), &secret, &steps, next).unwrap();
        assert_eq!(
            Store::open(backend, &secret).unwrap_err(),
            StoreError::NewerSchema { found: next, supported: current }
        );
    }

    #[test]
    fn a_failing_step_leaves_the_store_as_it_was() {
        let (backend, secret) = store_at_current();
        let (current, next) = (crate::SCHEMA_VERSION, crate::SCHEMA_VERSION + 1);
        let before = backend.rows(Table::TrackedUsers);
        let steps = [Migration { from: current, run: failing }];
        let error = Store::open_with_migrations(backend.clone(), &secret, &steps, next).unwrap_err();
        assert_eq!(error, StoreError::InvalidRecord("this migration fails"));
        assert_eq!(backend.rows(Table::TrackedUsers), before);
        let store = Store::open(backend.clone(), &secret).unwrap();
        assert_eq!(store.info().unwrap().schema_version, current);
        // A missing step is an error too, not a silent skip.
        let error = Store::open_with_migrations(backend, &secret, &[], next).unwrap_err();
        assert!(matches!(error, StoreError::MalformedMeta(_)));
    }
}
