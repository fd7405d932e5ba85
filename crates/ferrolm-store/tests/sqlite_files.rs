//! SQLite files that are wrong on disk: each gives a typed error naming what is wrong, and
//! nothing is changed or lost.
#![cfg(feature = "sqlite")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::field_reassign_with_default
)]

mod common;

use std::path::Path;

use common::*;
use ferrolm_store::*;

fn populated(path: &Path, room_keys: usize) -> Vec<(RoomId, String)> {
    let mut store = SqliteStore::create_file(path, &secret(), fast_kdf()).unwrap();
    let pair = olm_pair();
    let mut changes = Changes::default();
    let mut ids = Vec::new();
    for i in 0..room_keys {
        let (_, record) = room_key(&room(&format!("r{}", i % 17)), &pair.alice, false);
        ids.push((record.room_id.clone(), record.session_id()));
        changes.inbound_group_sessions.push(record);
    }
    changes.sync_token = Some("token".into());
    store.save_changes(&changes).unwrap();
    ids
}

/// Reads every room key back; the first error, if any.
fn read_all(path: &Path, ids: &[(RoomId, String)]) -> Result<(), StoreError> {
    let store = SqliteStore::open_file(path, &secret())?;
    for (room_id, session_id) in ids {
        match store.inbound_group_session(room_id, session_id)? {
            Some(_) => {}
            None => return Err(StoreError::Invariant("a room key vanished".into())),
        }
    }
    store.check_integrity()?;
    Ok(())
}

#[test]
fn a_missing_file_is_not_created_by_open_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.sqlite3");
    assert_eq!(SqliteStore::open_file(&path, &secret()).unwrap_err(), StoreError::NotInitialized);
    assert!(!path.exists());
    // An empty database file (created by someone else, no tables) is not a store either.
    rusqlite::Connection::open(&path).unwrap().execute_batch("VACUUM").unwrap();
    assert_eq!(SqliteStore::open_file(&path, &secret()).unwrap_err(), StoreError::NotInitialized);
}

#[test]
fn a_file_that_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "these are not the droids you are looking for, this is a text file ".repeat(100)).unwrap();
    let before = std::fs::read(&path).unwrap();
    assert_eq!(SqliteStore::open_file(&path, &secret()).unwrap_err(), StoreError::NotADatabase);
    assert_eq!(SqliteBackend::open(&path).unwrap_err(), StoreError::NotADatabase);
    assert_eq!(std::fs::read(&path).unwrap(), before, "the file is untouched");
}

#[test]
fn a_foreign_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.sqlite3");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE contacts (name TEXT); INSERT INTO contacts VALUES ('alice');").unwrap();
    drop(conn);
    assert_eq!(
        SqliteStore::open_file(&path, &secret()).unwrap_err(),
        StoreError::ForeignDatabase { application_id: 0, tables: 1 }
    );
    // Another application's id, even with our table names.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA application_id = 1234;").unwrap();
    drop(conn);
    assert!(matches!(
        SqliteBackend::open(&path).unwrap_err(),
        StoreError::ForeignDatabase { application_id: 1234, .. }
    ));
    let conn = rusqlite::Connection::open(&path).unwrap();
    let n: i64 = conn.query_row("SELECT count(*) FROM contacts", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 1, "the foreign data is untouched");
}

#[test]
fn a_missing_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite3");
    populated(&path, 3);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("DROP TABLE outbound_shares").unwrap();
    drop(conn);
    assert_eq!(SqliteStore::open_file(&path, &secret()).unwrap_err(), StoreError::MissingTable("outbound_shares"));
    // Opening did not recreate it.
    assert_eq!(SqliteStore::open_file(&path, &secret()).unwrap_err(), StoreError::MissingTable("outbound_shares"));
    // Nor the table of the current layout.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("DROP TABLE outgoing_to_device").unwrap();
    drop(conn);
    assert!(matches!(SqliteStore::open_file(&path, &secret()).unwrap_err(), StoreError::MissingTable(_)));
}

#[test]
fn a_newer_layout_or_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite3");
    let ids = populated(&path, 3);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(&format!("PRAGMA user_version = {}", LAYOUT_VERSION + 1)).unwrap();
    drop(conn);
    assert_eq!(
        SqliteStore::open_file(&path, &secret()).unwrap_err(),
        StoreError::NewerSchema { found: LAYOUT_VERSION + 1, supported: LAYOUT_VERSION }
    );
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(&format!("PRAGMA user_version = {LAYOUT_VERSION}")).unwrap();
    conn.execute("UPDATE meta SET v = ?1 WHERE k = CAST('schema_version' AS BLOB)", [7u32.to_le_bytes().to_vec()])
        .unwrap();
    drop(conn);
    assert_eq!(
        SqliteStore::open_file(&path, &secret()).unwrap_err(),
        StoreError::NewerSchema { found: 7, supported: SCHEMA_VERSION }
    );
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE meta SET v = ?1 WHERE k = CAST('schema_version' AS BLOB)",
        [SCHEMA_VERSION.to_le_bytes().to_vec()],
    )
    .unwrap();
    drop(conn);
    read_all(&path, &ids).unwrap();
}

#[test]
fn a_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite3");
    populated(&path, 3);
    assert_eq!(SqliteStore::open_file(&path, &StoreSecret::key([0x12; 32])).unwrap_err(), StoreError::WrongSecret);
}

#[test]
fn a_truncated_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite3");
    let ids = populated(&path, 1500);
    read_all(&path, &ids).unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len > 100_000, "a file of many pages ({len} bytes)");
    for keep in [len / 2, len - 4096, 4096 * 3] {
        let copy = dir.path().join(format!("truncated-{keep}.sqlite3"));
        std::fs::copy(&path, &copy).unwrap();
        std::fs::OpenOptions::new().write(true).open(&copy).unwrap().set_len(keep).unwrap();
        let error = read_all(&copy, &ids).unwrap_err();
        assert!(matches!(error, StoreError::DatabaseCorrupted(_)), "truncated to {keep}: {error:?}");
    }
}

/// A copy of the database file alone (no WAL beside it), to read what the main file holds.
fn copy_of(dir: &tempfile::TempDir, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.path().join("main-file-only.sqlite3");
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn a_corrupted_page() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite3");
    let ids = populated(&path, 1500);
    let bytes = std::fs::read(&path).unwrap();
    let pages = bytes.len() / 4096;
    // Damage a b-tree page header (the first bytes of a page) in the middle of the file.
    for page in [pages / 3, pages / 2, pages - 2] {
        let copy = dir.path().join(format!("corrupt-{page}.sqlite3"));
        let mut damaged = bytes.clone();
        for b in &mut damaged[page * 4096..page * 4096 + 16] {
            *b ^= 0xa5;
        }
        std::fs::write(&copy, &damaged).unwrap();
        let error = read_all(&copy, &ids).unwrap_err();
        assert!(matches!(error, StoreError::DatabaseCorrupted(_)), "page {page}: {error:?}");
    }
    // Damage inside a stored value (found by its bytes, so the flip cannot land in a page's
    // free space): the seal catches it.
    // (Only rows already checkpointed into the main file are in `bytes`: take the first.)
    let connection =
        rusqlite::Connection::open_with_flags(copy_of(&dir, &bytes), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut statement = connection.prepare("SELECT v FROM inbound_group_sessions").unwrap();
    let values: Vec<Vec<u8>> = statement.query_map([], |row| row.get(0)).unwrap().map(Result::unwrap).collect();
    let (at, value) = values
        .iter()
        .find_map(|v| bytes.windows(v.len()).position(|w| w == v.as_slice()).map(|at| (at, v)))
        .expect("a room key's value is in the file");
    let copy = dir.path().join("value.sqlite3");
    let mut damaged = bytes.clone();
    damaged[at + value.len() / 2] ^= 0x01;
    std::fs::write(&copy, &damaged).unwrap();
    let error = read_all(&copy, &ids).unwrap_err();
    assert!(
        matches!(error, StoreError::ValueRejected { .. } | StoreError::DatabaseCorrupted(_)),
        "a flipped value bit: {error:?}"
    );
}

#[test]
fn in_memory_sqlite_works_too() {
    let mut store = SqliteStore::create(SqliteBackend::open_in_memory().unwrap(), &secret(), fast_kdf()).unwrap();
    store.save_changes(&Changes { sync_token: Some("t".into()), ..Changes::default() }).unwrap();
    assert_eq!(store.sync_token().unwrap().as_deref(), Some("t"));
    store.check_integrity().unwrap();
}

#[test]
fn normal_synchronous_mode_opens_and_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite3");
    let options = SqliteOptions { synchronous: Synchronous::Normal, ..SqliteOptions::default() };
    let mut store =
        SqliteStore::create(SqliteBackend::open_with(&path, &options).unwrap(), &secret(), fast_kdf()).unwrap();
    store.save_changes(&Changes { sync_token: Some("t".into()), ..Changes::default() }).unwrap();
    drop(store);
    assert_eq!(SqliteStore::open_file(&path, &secret()).unwrap().sync_token().unwrap().as_deref(), Some("t"));
}
