//! The SQLite back end (bundled SQLite through rusqlite).
//!
//! Layout: one table per [`Table`], `(k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID`, so
//! a row is stored once, in key order, and a prefix scan is a range scan of the primary key.
//! The file carries `PRAGMA application_id` = `0x46524c4d` ("FRLM") and the layout's version in
//! `PRAGMA user_version`, so a foreign SQLite file or a newer layout is recognised before
//! anything is read or written.
//!
//! Durability: WAL journal and, by default, `synchronous = FULL`: the WAL is synced on every
//! commit, so a commit that returned survives a crash of the process *and* a power loss.
//! ([`Synchronous::Normal`] also survives SIGKILL of the process, since the WAL frames are in
//! the operating system's cache when `COMMIT` returns, but the last commits may be lost on
//! power loss; it is offered for callers who accept that.) Statements are prepared once and
//! cached. Writers take the database's write lock at the start of a batch (`BEGIN IMMEDIATE`)
//! and wait up to the busy timeout for another process to finish.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};

use crate::backend::{Backend, BackendError, BackendErrorKind, Batch, CommitError, Op, Row, Table, prefix_end};
use crate::error::{Result, StoreError};

/// `PRAGMA application_id` of a ferrolm store: "FRLM".
pub const APPLICATION_ID: i32 = 0x4652_4c4d;
/// The version of the table layout this library writes and reads (`PRAGMA user_version`).
/// Layout 2 adds the table `outgoing_to_device`.
pub const LAYOUT_VERSION: u32 = 2;

/// How hard SQLite syncs a commit to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Every commit is synced: survives process crashes and power loss (the default).
    #[default]
    Full,
    /// The WAL is synced at checkpoints only: survives process crashes (SIGKILL included),
    /// may lose the last commits on power loss or an operating-system crash.
    Normal,
}

/// Options for opening an SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Create the file (and the layout) when it does not exist yet. Default: `true`.
    pub create: bool,
    /// The sync level. Default: [`Synchronous::Full`].
    pub synchronous: Synchronous,
    /// How long a writer waits for another process's write lock. Default: 10 s.
    pub busy_timeout: Duration,
    /// SQLite's page cache for this connection, in KiB (`PRAGMA cache_size`). Default: 8 MiB,
    /// enough for the inner b-tree pages of a few hundred thousand room keys.
    pub cache_kib: u32,
    /// The size the WAL file is truncated back to after a checkpoint, in bytes
    /// (`PRAGMA journal_size_limit`). Default: 4 MiB.
    pub wal_size_limit: u64,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            create: true,
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(10),
            cache_kib: 8 * 1024,
            wal_size_limit: 4 * 1024 * 1024,
        }
    }
}

/// A [`Backend`] over one SQLite file.
///
/// ```no_run
/// use ferrolm_store::{KdfParams, SqliteBackend, SqliteStore, StoreSecret};
/// let backend = SqliteBackend::open("crypto.sqlite3")?;
/// let store = SqliteStore::open_or_create(backend, &StoreSecret::passphrase("…"), KdfParams::default())?;
/// # Ok::<(), ferrolm_store::StoreError>(())
/// ```
pub struct SqliteBackend {
    conn: Connection,
    path: Option<PathBuf>,
    sql: Vec<TableSql>,
    /// The layout version of the file (older than [`LAYOUT_VERSION`] until `ensure_tables`).
    layout: u32,
}

fn create_table_sql(table: Table) -> String {
    format!("CREATE TABLE IF NOT EXISTS {} (k BLOB PRIMARY KEY NOT NULL, v BLOB NOT NULL) WITHOUT ROWID;", table.name())
}

/// Every statement of one table, written once.
struct TableSql {
    get: String,
    put: String,
    delete: String,
    delete_range: String,
    delete_from: String,
    scan_range: [String; 2],
    scan_from: [String; 2],
    count_range: String,
    count_from: String,
}

impl TableSql {
    fn new(table: Table) -> Self {
        let t = table.name();
        let scan = |lower: &str, upper: bool| {
            let upper = if upper { " AND k < ?2" } else { "" };
            format!("SELECT k, v FROM {t} WHERE k {lower} ?1{upper} ORDER BY k LIMIT ?3")
        };
        Self {
            get: format!("SELECT v FROM {t} WHERE k = ?1"),
            put: format!("INSERT INTO {t} (k, v) VALUES (?1, ?2) ON CONFLICT(k) DO UPDATE SET v = excluded.v"),
            delete: format!("DELETE FROM {t} WHERE k = ?1"),
            delete_range: format!("DELETE FROM {t} WHERE k >= ?1 AND k < ?2"),
            delete_from: format!("DELETE FROM {t} WHERE k >= ?1"),
            scan_range: [scan(">=", true), scan(">", true)],
            scan_from: [scan(">=", false), scan(">", false)],
            count_range: format!("SELECT count(*) FROM {t} WHERE k >= ?1 AND k < ?2"),
            count_from: format!("SELECT count(*) FROM {t} WHERE k >= ?1"),
        }
    }
}

impl core::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SqliteBackend").field("path", &self.path).finish_non_exhaustive()
    }
}

fn map_err(error: rusqlite::Error) -> BackendError {
    let kind = match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt) => BackendErrorKind::Corrupt,
        Some(ErrorCode::NotADatabase) => BackendErrorKind::NotADatabase,
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => BackendErrorKind::Busy,
        Some(ErrorCode::DiskFull) => BackendErrorKind::Full,
        _ => BackendErrorKind::Other,
    };
    BackendError::new(kind, error.to_string())
}

fn store_err(error: rusqlite::Error) -> StoreError {
    map_err(error).into()
}

impl SqliteBackend {
    /// Opens (or creates) the store file at `path` with the default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, &SqliteOptions::default())
    }

    /// Opens the store file at `path`.
    ///
    /// Refuses, with a typed error and without writing anything: a file that is not a
    /// database ([`StoreError::NotADatabase`]), another application's database
    /// ([`StoreError::ForeignDatabase`]), a newer layout ([`StoreError::NewerSchema`]), a
    /// store with a table missing ([`StoreError::MissingTable`]), a damaged file
    /// ([`StoreError::DatabaseCorrupted`]), and a missing file when `create` is off
    /// ([`StoreError::NotInitialized`]).
    pub fn open_with(path: impl AsRef<Path>, options: &SqliteOptions) -> Result<Self> {
        let path = path.as_ref();
        if !options.create && !path.exists() {
            return Err(StoreError::NotInitialized);
        }
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if options.create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let conn = Connection::open_with_flags(path, flags).map_err(store_err)?;
        Self::setup(conn, Some(path.to_path_buf()), options)
    }

    /// A store in a private in-memory SQLite database (for tests).
    pub fn open_in_memory() -> Result<Self> {
        let conn = Connection::open_in_memory().map_err(store_err)?;
        Self::setup(conn, None, &SqliteOptions::default())
    }

    /// The file's path, if it has one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn setup(conn: Connection, path: Option<PathBuf>, options: &SqliteOptions) -> Result<Self> {
        conn.busy_timeout(options.busy_timeout).map_err(store_err)?;
        conn.set_prepared_statement_cache_capacity(64);
        // The first read: fails with NotADatabase on a file that is not SQLite.
        let application_id: i32 = conn.query_row("PRAGMA application_id", [], |r| r.get(0)).map_err(store_err)?;
        let user_version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(store_err)?;
        let names = {
            let mut stmt = conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").map_err(store_err)?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(store_err)?;
            rows.collect::<Result<Vec<String>, _>>().map_err(store_err)?
        };
        let fresh = application_id == 0 && names.is_empty();
        if !fresh && application_id != APPLICATION_ID {
            return Err(StoreError::ForeignDatabase {
                application_id,
                tables: u32::try_from(names.len()).unwrap_or(u32::MAX),
            });
        }
        if fresh && !options.create {
            return Err(StoreError::NotInitialized);
        }
        if !fresh && user_version == 0 {
            return Err(StoreError::MalformedMeta("the database has no layout version"));
        }
        if user_version > LAYOUT_VERSION {
            return Err(StoreError::NewerSchema { found: user_version, supported: LAYOUT_VERSION });
        }
        if path.is_some() {
            let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(store_err)?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::Backend(BackendError::new(
                    BackendErrorKind::Other,
                    format!("could not switch to WAL (journal mode {mode})"),
                )));
            }
        }
        let sync = match options.synchronous {
            Synchronous::Full => "PRAGMA synchronous = FULL",
            Synchronous::Normal => "PRAGMA synchronous = NORMAL",
        };
        conn.execute_batch(sync).map_err(store_err)?;
        conn.execute_batch(&format!(
            "PRAGMA cache_size = -{}; PRAGMA journal_size_limit = {};",
            options.cache_kib, options.wal_size_limit
        ))
        .map_err(store_err)?;
        let layout = if fresh {
            let mut sql = String::new();
            for table in Table::ALL {
                sql.push_str(&create_table_sql(table));
            }
            sql.push_str(&format!("PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {LAYOUT_VERSION};"));
            let tx = conn.unchecked_transaction().map_err(store_err)?;
            tx.execute_batch(&sql).map_err(store_err)?;
            tx.commit().map_err(store_err)?;
            LAYOUT_VERSION
        } else {
            // The tables of the file's own layout must all be there; newer ones come with
            // `ensure_tables`, once the store is unlocked.
            for table in Table::ALL {
                if table.since_layout() <= user_version && !names.iter().any(|n| n == table.name()) {
                    return Err(StoreError::MissingTable(table.name()));
                }
            }
            user_version
        };
        Ok(Self { conn, path, sql: Table::ALL.iter().map(|&t| TableSql::new(t)).collect(), layout })
    }

    fn sql(&self, table: Table) -> Result<&TableSql, BackendError> {
        self.sql.get(table.index()).ok_or_else(|| BackendError::new(BackendErrorKind::Other, "unknown table"))
    }

    fn apply(&mut self, batch: &Batch) -> Result<(), CommitError> {
        let Self { conn, sql, .. } = self;
        let sql_of = |table: Table| {
            sql.get(table.index()).ok_or_else(|| BackendError::new(BackendErrorKind::Other, "unknown table"))
        };
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(map_err)?;
        for (i, condition) in batch.conditions.iter().enumerate() {
            let current: Option<Vec<u8>> = tx
                .prepare_cached(&sql_of(condition.table)?.get)
                .and_then(|mut s| s.query_row([&condition.key], |r| r.get(0)).optional())
                .map_err(map_err)?;
            if current != condition.expected {
                return Err(CommitError::ConditionFailed(i));
            }
        }
        for op in &batch.ops {
            match op {
                Op::Put { table, key, value } => {
                    let mut stmt = tx.prepare_cached(&sql_of(*table)?.put).map_err(map_err)?;
                    stmt.execute(params![key, value]).map_err(map_err)?;
                }
                Op::Delete { table, key } => {
                    let mut stmt = tx.prepare_cached(&sql_of(*table)?.delete).map_err(map_err)?;
                    stmt.execute([key]).map_err(map_err)?;
                }
                Op::DeletePrefix { table, prefix } => match prefix_end(prefix) {
                    Some(end) => {
                        let mut stmt = tx.prepare_cached(&sql_of(*table)?.delete_range).map_err(map_err)?;
                        stmt.execute(params![prefix, end]).map_err(map_err)?;
                    }
                    None => {
                        let mut stmt = tx.prepare_cached(&sql_of(*table)?.delete_from).map_err(map_err)?;
                        stmt.execute([prefix]).map_err(map_err)?;
                    }
                },
            }
        }
        tx.commit().map_err(map_err)?;
        Ok(())
    }
}

impl Backend for SqliteBackend {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.conn
            .prepare_cached(&self.sql(table)?.get)
            .and_then(|mut s| s.query_row([key], |r| r.get(0)).optional())
            .map_err(map_err)
    }

    fn scan(&self, table: Table, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Vec<Row>, BackendError> {
        let sql = self.sql(table)?;
        let (exclusive, lower) = match after {
            Some(after) if after >= prefix => (1, after),
            _ => (0, prefix),
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let end = prefix_end(prefix);
        let text = match end {
            Some(_) => sql.scan_range.get(exclusive),
            None => sql.scan_from.get(exclusive),
        }
        .ok_or_else(|| BackendError::new(BackendErrorKind::Other, "no such statement"))?;
        let mut stmt = self.conn.prepare_cached(text).map_err(map_err)?;
        let mut rows = match &end {
            Some(end) => stmt.query(params![lower, end, limit]),
            None => stmt.query(params![lower, rusqlite::types::Null, limit]),
        }
        .map_err(map_err)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(map_err)? {
            out.push((row.get(0).map_err(map_err)?, row.get(1).map_err(map_err)?));
        }
        Ok(out)
    }

    fn count(&self, table: Table, prefix: &[u8]) -> Result<u64, BackendError> {
        let sql = self.sql(table)?;
        let n: i64 = match prefix_end(prefix) {
            Some(end) => self
                .conn
                .prepare_cached(&sql.count_range)
                .and_then(|mut s| s.query_row(params![prefix, end], |r| r.get(0))),
            None => self.conn.prepare_cached(&sql.count_from).and_then(|mut s| s.query_row([prefix], |r| r.get(0))),
        }
        .map_err(map_err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn commit(&mut self, batch: &Batch) -> Result<(), CommitError> {
        self.apply(batch)
    }

    fn ensure_tables(&mut self) -> Result<(), BackendError> {
        if self.layout >= LAYOUT_VERSION {
            return Ok(());
        }
        let mut sql = String::new();
        for table in Table::ALL.iter().filter(|t| t.since_layout() > self.layout) {
            sql.push_str(&create_table_sql(*table));
        }
        sql.push_str(&format!("PRAGMA user_version = {LAYOUT_VERSION};"));
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(map_err)?;
        tx.execute_batch(&sql).map_err(map_err)?;
        tx.commit().map_err(map_err)?;
        self.layout = LAYOUT_VERSION;
        Ok(())
    }

    fn check_engine_integrity(&self) -> Result<(), BackendError> {
        let mut stmt = self.conn.prepare("PRAGMA integrity_check").map_err(map_err)?;
        let messages = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(map_err)?
            .collect::<Result<Vec<String>, _>>()
            .map_err(map_err)?;
        if messages.len() == 1 && messages.first().is_some_and(|m| m == "ok") {
            Ok(())
        } else {
            let shown: Vec<&str> = messages.iter().take(5).map(String::as_str).collect();
            Err(BackendError::new(BackendErrorKind::Corrupt, format!("integrity_check: {}", shown.join("; "))))
        }
    }
}

impl crate::Store<SqliteBackend> {
    /// Creates a store in a new SQLite file at `path` (refused if the file already holds one).
    pub fn create_file(path: impl AsRef<Path>, secret: &crate::StoreSecret, kdf: crate::KdfParams) -> Result<Self> {
        Self::create(SqliteBackend::open(path)?, secret, kdf)
    }

    /// Opens the store in the SQLite file at `path` (which must exist).
    pub fn open_file(path: impl AsRef<Path>, secret: &crate::StoreSecret) -> Result<Self> {
        let options = SqliteOptions { create: false, ..SqliteOptions::default() };
        Self::open(SqliteBackend::open_with(path, &options)?, secret)
    }
}
