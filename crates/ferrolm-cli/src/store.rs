//! `ferrolm store init|inspect|change-passphrase PATH`: ferrolm-store's SQLite files.
//!
//! `inspect` prints what a store holds without any secret: counts per table, the account's
//! public identity keys, devices per user, room keys per room with their first known
//! indices, the schema version and the lease holder.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use ferrolm::olm::Account;
use ferrolm_store::{
    AccountRecord, Changes, DeviceId, DeviceRecord, InboundGroupSessionRecord, KdfParams, LeaseOutcome, LocalTrust,
    RoomId, RoomKeySource, SqliteStore, StoreError, StoreSecret, Table, UserId, WrapKind,
};

use crate::export::PASSPHRASE_VAR;

/// The environment variable the new passphrase of `change-passphrase` may come from.
pub(crate) const NEW_PASSPHRASE_VAR: &str = "FERROLM_NEW_PASSPHRASE";

const USAGE: &str = "usage: ferrolm store init PATH [--user USER_ID --device DEVICE_ID] [--kdf MEMORY_KIB,PASSES,LANES]
       ferrolm store inspect PATH
       ferrolm store change-passphrase PATH [--kdf MEMORY_KIB,PASSES,LANES]";

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let rest = args.get(1..).unwrap_or_default();
    match args.first().map(String::as_str) {
        Some("init") => init(rest),
        Some("inspect") => inspect(rest),
        Some("change-passphrase") => change_passphrase(rest),
        _ => Err(USAGE.into()),
    }
}

/// The one path argument left after the options, or the usage.
fn single_path(rest: &[String]) -> Result<&str, String> {
    match rest {
        [path] if !path.starts_with("--") => Ok(path),
        [] => Err(format!("a store path is needed\n{USAGE}")),
        _ => Err(format!("unexpected arguments {}\n{USAGE}", rest.join(" "))),
    }
}

/// `--kdf MEMORY_KIB,PASSES,LANES` (Argon2id).
fn parse_kdf(value: &str) -> Result<KdfParams, String> {
    let parts: Vec<&str> = value.split(',').collect();
    let [memory, passes, lanes] = parts.as_slice() else {
        return Err(format!("--kdf: `{value}` is not MEMORY_KIB,PASSES,LANES (for example 65536,3,1)"));
    };
    let number = |s: &str| s.trim().parse::<u32>().map_err(|_| format!("--kdf: `{s}` is not a number"));
    KdfParams::new(number(memory)?, number(passes)?, number(lanes)?).map_err(|e| format!("--kdf: {e}"))
}

/// What a store error means for the user, naming the file.
fn explain(path: &str, error: &StoreError) -> String {
    match error {
        StoreError::WrongSecret => {
            format!("wrong passphrase: it does not unlock the store {path} (nothing was read or changed)")
        }
        StoreError::NotInitialized => {
            format!("{path}: there is no ferrolm store there (create one with `ferrolm store init`)")
        }
        StoreError::AlreadyInitialized => format!("{path} already holds a ferrolm store; nothing was changed"),
        other => format!("{path}: {other}"),
    }
}

fn open(path: &str) -> Result<SqliteStore, String> {
    if !Path::new(path).exists() {
        return Err(format!("{path}: no such file"));
    }
    let passphrase = crate::read_passphrase(PASSPHRASE_VAR, "Passphrase: ", false)?;
    eprintln!("Unlocking the store (Argon2id; this takes a moment)…");
    SqliteStore::open_file(path, &StoreSecret::passphrase(passphrase.as_str())).map_err(|e| explain(path, &e))
}

fn init(args: &[String]) -> Result<(), String> {
    let (user, rest) = crate::take_option(args, "--user")?;
    let (device, rest) = crate::take_option(&rest, "--device")?;
    let (kdf, rest) = crate::take_option(&rest, "--kdf")?;
    let path = single_path(&rest)?;
    let kdf = kdf.as_deref().map_or(Ok(KdfParams::default()), parse_kdf)?;
    let account = match (user, device) {
        (Some(user), Some(device)) => Some((user, device)),
        (None, None) => None,
        _ => return Err("--user and --device go together: the account belongs to one device of one user".into()),
    };
    if Path::new(path).exists() {
        return Err(format!("{path} already exists; `ferrolm store init` only creates new files"));
    }
    let passphrase = crate::read_passphrase(PASSPHRASE_VAR, "New store passphrase: ", true)?;
    eprintln!("Deriving the store's key-encryption key (Argon2id; this takes a moment)…");
    let mut store = SqliteStore::create_file(path, &StoreSecret::passphrase(passphrase.as_str()), kdf)
        .map_err(|e| explain(path, &e))?;
    println!("Created the store {path}");
    if let Some((user, device)) = account {
        let account = Account::new();
        let keys = account.identity_keys();
        let changes = Changes {
            account: Some(AccountRecord {
                user_id: UserId::new(user.as_str()),
                device_id: DeviceId::new(device.as_str()),
                account,
                device_keys_uploaded: false,
                fallback_key_published_ms: None,
            }),
            ..Changes::default()
        };
        store.save_changes(&changes).map_err(|e| explain(path, &e))?;
        println!("with a new account for {user}, device {device}:");
        println!("  curve25519: {}", keys.curve25519.to_base64());
        println!("  ed25519:    {}", keys.ed25519.to_base64());
    }
    Ok(())
}

fn change_passphrase(args: &[String]) -> Result<(), String> {
    let (kdf, rest) = crate::take_option(args, "--kdf")?;
    let path = single_path(&rest)?;
    let kdf = kdf.as_deref().map(parse_kdf).transpose()?;
    let mut store = open(path)?;
    // The same Argon2id parameters as before unless new ones are asked for.
    let kdf = match (kdf, store.info().map_err(|e| explain(path, &e))?.key_wrapping) {
        (Some(kdf), _) => kdf,
        (None, WrapKind::Passphrase(kdf)) => kdf,
        (None, WrapKind::RawKey) => KdfParams::default(),
    };
    // Writers of a store coordinate through its lease: take it for the change, so that a
    // running client (which holds it) is not written under.
    match store.acquire_lease(LEASE_HOLDER, now_ms(), LEASE_MS).map_err(|e| explain(path, &e))? {
        LeaseOutcome::Acquired { .. } => {}
        LeaseOutcome::Held(lease) => {
            return Err(format!(
                "{path} is in use: `{}` holds its lease until {} ms; close that client (or wait) and try again; nothing was changed",
                lease.holder, lease.expires_ms
            ));
        }
    }
    let new = crate::read_passphrase(NEW_PASSPHRASE_VAR, "New passphrase: ", true)?;
    eprintln!("Re-wrapping the store key (Argon2id; this takes a moment)…");
    let changed = store.change_secret(&StoreSecret::passphrase(new.as_str()), kdf).map_err(|e| explain(path, &e));
    let released = store.release_lease().map_err(|e| explain(path, &e));
    changed?;
    released?;
    println!(
        "The passphrase of {path} is changed (the data was not rewritten; the old passphrase no longer opens it)."
    );
    Ok(())
}

/// The lease holder id of this tool, and how long it holds the lease at most.
const LEASE_HOLDER: &str = "ferrolm-cli";
const LEASE_MS: u64 = 60_000;

/// Milliseconds since the epoch (the lease's clock).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn inspect(args: &[String]) -> Result<(), String> {
    let path = single_path(args)?;
    let store = open(path)?;
    let report = summarize(&store).map_err(|e| explain(path, &e))?;
    print!("{report}");
    Ok(())
}

fn trust(trust: LocalTrust) -> &'static str {
    match trust {
        LocalTrust::Unset => "unset",
        LocalTrust::Verified => "verified",
        LocalTrust::Blacklisted => "blacklisted",
        LocalTrust::Ignored => "ignored",
    }
}

fn source(source: RoomKeySource) -> &'static str {
    match source {
        RoomKeySource::Direct => "m.room_key",
        RoomKeySource::Forwarded => "forwarded",
        RoomKeySource::Backup => "backup",
        RoomKeySource::FileImport => "file import",
    }
}

/// Every room key, by room.
fn room_keys<B: ferrolm_store::Backend>(
    store: &ferrolm_store::Store<B>,
) -> Result<BTreeMap<RoomId, Vec<InboundGroupSessionRecord>>, StoreError> {
    let mut rooms: BTreeMap<RoomId, Vec<InboundGroupSessionRecord>> = BTreeMap::new();
    for key in store.all_inbound_group_sessions()? {
        rooms.entry(key.room_id.clone()).or_default().push(key);
    }
    for keys in rooms.values_mut() {
        keys.sort_by_key(|k| (k.first_known_index(), k.session_id()));
    }
    Ok(rooms)
}

/// Every device, by user.
fn devices<B: ferrolm_store::Backend>(
    store: &ferrolm_store::Store<B>,
) -> Result<BTreeMap<UserId, Vec<DeviceRecord>>, StoreError> {
    let mut users: BTreeMap<UserId, Vec<DeviceRecord>> = BTreeMap::new();
    for device in store.all_devices()? {
        users.entry(device.user_id.clone()).or_default().push(device);
    }
    for devices in users.values_mut() {
        devices.sort_by(|a, b| a.device_id.cmp(&b.device_id));
    }
    Ok(users)
}

/// The report `inspect` prints: public information only.
pub(crate) fn summarize<B: ferrolm_store::Backend>(store: &ferrolm_store::Store<B>) -> Result<String, StoreError> {
    let mut out = String::new();
    let info = store.info()?;
    let _ = writeln!(out, "schema version: {}", info.schema_version);
    let _ = writeln!(out, "generation: {}", info.generation);
    let wrapping = match info.key_wrapping {
        WrapKind::Passphrase(kdf) => format!(
            "passphrase (Argon2id, {} KiB, {} passes, {} lanes)",
            kdf.memory_kib(),
            kdf.iterations(),
            kdf.lanes()
        ),
        WrapKind::RawKey => "raw 32-byte key".to_owned(),
    };
    let _ = writeln!(out, "store key wrapped by: {wrapping}");
    match info.lease {
        None => {
            let _ = writeln!(out, "lease: none");
        }
        Some(lease) => {
            let state = if lease.expires_ms > now_ms() { "held" } else { "expired" };
            let _ = writeln!(out, "lease: {state} by `{}` until {} ms", lease.holder, lease.expires_ms);
        }
    }

    let account = store.account()?;
    match &account {
        None => {
            let _ = writeln!(out, "account: none");
        }
        Some(record) => {
            let keys = record.account.identity_keys();
            let _ = writeln!(out, "account: {} device {}", record.user_id, record.device_id);
            let _ = writeln!(out, "  curve25519: {}", keys.curve25519.to_base64());
            let _ = writeln!(out, "  ed25519:    {}", keys.ed25519.to_base64());
            let _ = writeln!(
                out,
                "  one-time keys held: {}; unpublished fallback key: {}; device keys uploaded: {}",
                record.account.stored_one_time_key_count(),
                if record.account.fallback_key().is_empty() { "no" } else { "yes" },
                if record.device_keys_uploaded { "yes" } else { "no" }
            );
        }
    }

    let _ = writeln!(out, "rows per table:");
    for (table, count) in store.row_counts()? {
        if table != Table::Meta {
            let _ = writeln!(out, "  {}: {count}", table.name());
        }
    }

    let devices = devices(store)?;
    let _ = writeln!(out, "devices: {} users", devices.len());
    for (user, list) in &devices {
        let _ = writeln!(out, "  {user}: {} devices", list.len());
        for device in list {
            let key = |k: Option<String>| k.unwrap_or_else(|| "-".to_owned());
            let _ = writeln!(
                out,
                "    {}  curve25519 {}  ed25519 {}  trust {}{}",
                device.device_id,
                key(device.curve25519_key.as_ref().map(|k| k.to_base64())),
                key(device.ed25519_key.as_ref().map(|k| k.to_base64())),
                trust(device.local_trust),
                if device.deleted { "  (deleted)" } else { "" }
            );
        }
    }

    let counts = store.room_key_counts()?;
    let rooms = room_keys(store)?;
    let _ = writeln!(out, "room keys: {} ({} backed up)", counts.total, counts.backed_up);
    for (room, keys) in &rooms {
        let _ = writeln!(out, "  {room}: {} keys", keys.len());
        for key in keys {
            let _ = writeln!(
                out,
                "    {}  first known index {}  from {}  via {}{}{}",
                key.session_id(),
                key.first_known_index(),
                key.sender_key.to_base64(),
                source(key.source),
                if key.backed_up { ", backed up" } else { "" },
                if key.shared_history { ", shared history" } else { "" }
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdf_options_are_parsed_and_checked() {
        let kdf = parse_kdf("256,1,1").unwrap();
        assert_eq!((kdf.memory_kib(), kdf.iterations(), kdf.lanes()), (256, 1, 1));
        assert!(parse_kdf("256,1").unwrap_err().contains("MEMORY_KIB,PASSES,LANES"));
        assert!(parse_kdf("a,1,1").unwrap_err().contains("not a number"));
        assert!(parse_kdf("0,0,0").is_err());
    }

    #[test]
    fn arguments_are_checked() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(run(&args(&["frobnicate"])).unwrap_err().contains("usage"));
        assert!(run(&args(&["inspect"])).unwrap_err().contains("a store path is needed"));
        assert!(run(&args(&["inspect", "a", "b"])).unwrap_err().contains("unexpected arguments"));
        assert!(run(&args(&["init", "x.sqlite3", "--user", "@a:b"])).unwrap_err().contains("go together"));
        assert!(run(&args(&["inspect", "/nonexistent/store.sqlite3"])).unwrap_err().contains("no such file"));
    }
}
