//! The in-memory back end: ordered maps behind a mutex. Clones share the same data, so two
//! [`Store`](crate::Store) handles over clones behave like two processes over one file.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::backend::{Backend, BackendError, BackendErrorKind, Batch, CommitError, Op, Row, Table, prefix_end};

type Tables = [BTreeMap<Vec<u8>, Vec<u8>>; Table::ALL.len()];

/// A back end that keeps every table in memory. Nothing survives the process; use it for
/// tests and for clients that keep no state. Cloning it gives another handle to the same data.
///
/// ```
/// use ferrolm_store::{MemoryBackend, MemoryStore, StoreSecret, KdfParams};
/// let backend = MemoryBackend::new();
/// let store = MemoryStore::create(backend.clone(), &StoreSecret::key([7; 32]), KdfParams::default())?;
/// // A second handle on the same data, as a second process would have.
/// let again = MemoryStore::open(backend, &StoreSecret::key([7; 32]))?;
/// assert_eq!(store.generation(), again.generation());
/// # Ok::<(), ferrolm_store::StoreError>(())
/// ```
#[derive(Clone, Default)]
pub struct MemoryBackend {
    tables: Arc<Mutex<Tables>>,
}

impl core::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("MemoryBackend")
    }
}

impl MemoryBackend {
    /// An empty back end.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, Tables>, BackendError> {
        self.tables.lock().map_err(|_| BackendError::new(BackendErrorKind::Other, "a writer panicked"))
    }

    fn table(tables: &Tables, table: Table) -> Result<&BTreeMap<Vec<u8>, Vec<u8>>, BackendError> {
        tables.get(table.index()).ok_or_else(|| BackendError::new(BackendErrorKind::Other, "unknown table"))
    }

    /// Replaces a row's value outside any batch, for tests that simulate tampering.
    #[doc(hidden)]
    pub fn tamper(&self, table: Table, key: &[u8], value: Option<Vec<u8>>) {
        if let Ok(mut tables) = self.lock()
            && let Some(map) = tables.get_mut(table.index())
        {
            match value {
                Some(v) => map.insert(key.to_vec(), v),
                None => map.remove(key),
            };
        }
    }

    /// Every row of a table, for tests that simulate tampering.
    #[doc(hidden)]
    pub fn rows(&self, table: Table) -> Vec<Row> {
        self.lock()
            .ok()
            .and_then(|tables| {
                tables.get(table.index()).map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            })
            .unwrap_or_default()
    }
}

impl Backend for MemoryBackend {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        let tables = self.lock()?;
        Ok(Self::table(&tables, table)?.get(key).cloned())
    }

    fn scan(&self, table: Table, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Vec<Row>, BackendError> {
        use core::ops::Bound;
        let tables = self.lock()?;
        let map = Self::table(&tables, table)?;
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded(after.to_vec()),
            _ => Bound::Included(prefix.to_vec()),
        };
        let end = prefix_end(prefix).map_or(Bound::Unbounded, Bound::Excluded);
        Ok(map.range((start, end)).take(limit).map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    fn count(&self, table: Table, prefix: &[u8]) -> Result<u64, BackendError> {
        use core::ops::Bound;
        let tables = self.lock()?;
        let map = Self::table(&tables, table)?;
        let end = prefix_end(prefix).map_or(Bound::Unbounded, Bound::Excluded);
        Ok(map.range((Bound::Included(prefix.to_vec()), end)).count() as u64)
    }

    fn commit(&mut self, batch: &Batch) -> Result<(), CommitError> {
        let mut tables = self.lock()?;
        for (i, condition) in batch.conditions.iter().enumerate() {
            let current = Self::table(&tables, condition.table)?.get(&condition.key);
            if current != condition.expected.as_ref() {
                return Err(CommitError::ConditionFailed(i));
            }
        }
        // Nothing below can fail: the batch applies whole.
        for op in &batch.ops {
            match op {
                Op::Put { table, key, value } => {
                    if let Some(map) = tables.get_mut(table.index()) {
                        map.insert(key.clone(), value.clone());
                    }
                }
                Op::Delete { table, key } => {
                    if let Some(map) = tables.get_mut(table.index()) {
                        map.remove(key);
                    }
                }
                Op::DeletePrefix { table, prefix } => {
                    if let Some(map) = tables.get_mut(table.index()) {
                        map.retain(|k, _| !k.starts_with(prefix));
                    }
                }
            }
        }
        Ok(())
    }
}
