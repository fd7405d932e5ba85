//! Room-key export files ("Key exports" in the client-server specification) and the merge rule
//! every import (a file, a backup) follows.
//!
//! The file format is the core's ([`ferrolm::key_export`]: PBKDF2-HMAC-SHA-512, AES-256-CTR,
//! HMAC-SHA-256); its plaintext is a JSON array of exported room keys
//! (`{algorithm, room_id, sender_key, session_id, session_key, sender_claimed_keys,
//! forwarding_curve25519_key_chain}`), which this module writes and reads.
//!
//! Rules (each a named function with a test that breaks it):
//! - `merge_imported`: an imported key is stored when no key of its session is, or when it
//!   is connected to the stored one and starts earlier (the lower first index wins); it never
//!   replaces a key that is as good or better, and a key not connected to the stored one of
//!   the same session id is refused.
//! - An imported key is marked as imported (its source), never as received from its sender,
//!   and is unverified until merged with a key from its sender.

use ferrolm::key_export::{self, KeyExportError};
use ferrolm::megolm::SessionOrdering;
use ferrolm_store::{InboundGroupSessionRecord, RoomKeySource};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::backup::{DecodedKey, RoomKeyJson, SigningKeyCache, check_restored_key};
use crate::error::MachineError;
use crate::own_device::MEGOLM_ALGORITHM;

/// Why a key export file could not be written or read. Nothing was imported.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The machine or the store failed.
    #[error(transparent)]
    Machine(#[from] MachineError),
    /// The file's envelope: a wrong passphrase, an altered or truncated file, a bad round count.
    #[error(transparent)]
    File(#[from] KeyExportError),
    /// The file decrypted, but its content is not a JSON array of room keys.
    #[error("the file's content is not a list of room keys: {0}")]
    Malformed(String),
}

impl From<ferrolm_store::StoreError> for KeyFileError {
    fn from(e: ferrolm_store::StoreError) -> Self {
        Self::Machine(e.into())
    }
}

/// What an import (a key export file, a backup restore) did, key by key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoomKeyImportReport {
    /// How many keys the file or backup held.
    pub total: usize,
    /// Stored: new, or better than the stored key of the same session.
    pub imported: usize,
    /// Not stored because the stored key is as good or better.
    pub not_better: usize,
    /// Not stored: undecryptable, malformed, filed under another session, or not connected
    /// to the stored key of the same session. One count, with no reason per key (so that a
    /// restore is not a decryption oracle).
    pub failed: usize,
}

/// What the merge rule decided.
#[derive(Debug)]
pub(crate) enum Merge {
    /// Store this record.
    Store(Box<InboundGroupSessionRecord>),
    /// The stored key is as good or better.
    NotBetter,
    /// Not connected to the stored key of the same session id.
    Unconnected,
}

/// Rule: an imported key is stored when none of its session is, or when it is connected to the
/// stored one and starts earlier; never over a key that is as good or better; never when not
/// connected. A merged record keeps what the stored one knew of the sender (its sender key and
/// claimed signing key) and the verified flag of either, and is marked with the import's source.
pub(crate) fn merge_imported(
    stored: Option<&InboundGroupSessionRecord>,
    new: DecodedKey,
    source: RoomKeySource,
    backed_up: bool,
) -> Merge {
    let record = |key: DecodedKey| InboundGroupSessionRecord {
        room_id: key.room_id,
        session: key.session,
        sender_key: key.sender_key,
        claimed_signing_key: key.claimed_signing_key,
        source,
        backed_up,
        shared_history: key.shared_history,
    };
    let Some(stored) = stored else { return Merge::Store(Box::new(record(new))) };
    match new.session.compare(&stored.session) {
        SessionOrdering::Better => match new.session.merge(&stored.session) {
            Some(session) => Merge::Store(Box::new(InboundGroupSessionRecord {
                session,
                source,
                backed_up,
                shared_history: stored.shared_history || new.shared_history,
                ..stored.clone()
            })),
            None => Merge::Unconnected,
        },
        SessionOrdering::Equal | SessionOrdering::Worse => Merge::NotBetter,
        SessionOrdering::Unconnected => Merge::Unconnected,
    }
}

#[derive(Serialize)]
struct ExportedRoomKey<'a> {
    algorithm: &'a str,
    room_id: &'a str,
    sender_key: String,
    session_id: String,
    session_key: &'a str,
    sender_claimed_keys: std::collections::BTreeMap<&'a str, String>,
    forwarding_curve25519_key_chain: [&'a str; 0],
    #[serde(rename = "m.shared_history")]
    shared_history: bool,
}

/// The JSON array of `records` as exported room keys, in a buffer that zeroizes itself.
pub(crate) fn export_json(records: &[InboundGroupSessionRecord]) -> Result<Zeroizing<Vec<u8>>, MachineError> {
    let mut out = Zeroizing::new(Vec::with_capacity(records.len() * 420 + 2));
    out.push(b'[');
    for (i, record) in records.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let session_key = record.session.export_at_first_known_index().to_base64();
        let mut claimed = std::collections::BTreeMap::new();
        if let Some(key) = &record.claimed_signing_key {
            claimed.insert("ed25519", key.to_base64());
        }
        let key = ExportedRoomKey {
            algorithm: MEGOLM_ALGORITHM,
            room_id: record.room_id.as_str(),
            sender_key: record.sender_key.to_base64(),
            session_id: record.session_id(),
            session_key: session_key.as_str(),
            sender_claimed_keys: claimed,
            forwarding_curve25519_key_chain: [],
            shared_history: record.shared_history,
        };
        // Written straight into the zeroizing buffer: no intermediate copy of the key.
        serde_json::to_writer(&mut *out, &key).map_err(|e| MachineError::Internal(e.to_string()))?;
    }
    out.push(b']');
    Ok(out)
}

/// Encrypts exported room keys into an armoured file.
pub(crate) fn encrypt_file(
    plaintext: &[u8],
    passphrase: &str,
    rounds: u32,
    rng: &mut dyn crate::env::MachineRng,
) -> Result<Zeroizing<String>, KeyFileError> {
    Ok(Zeroizing::new(key_export::encrypt_with_rng(plaintext, passphrase, rounds, &mut &mut *rng)?))
}

/// Decrypts a key export file and reads its room keys: one entry per key in the file, `None`
/// for each key that does not pass `check_restored_key` (counted as failed).
pub(crate) fn decrypt_file(file: &str, passphrase: &str) -> Result<Vec<Option<DecodedKey>>, KeyFileError> {
    let plaintext = key_export::decrypt(file, passphrase)?;
    let entries: Vec<&serde_json::value::RawValue> =
        serde_json::from_slice(&plaintext).map_err(|e| KeyFileError::Malformed(e.to_string()))?;
    let signing_keys = SigningKeyCache::default();
    Ok(ferrolm_store::parallel::map(&entries, crate::backup::DECODE_BLOCK, |raw| {
        let key: RoomKeyJson<'_> = serde_json::from_str(raw.get()).ok()?;
        let room_id = key.room_id.as_deref()?.to_owned();
        let session_id = key.session_id.as_deref()?.to_owned();
        check_restored_key(&key, &room_id, &session_id, &signing_keys)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolm::megolm::{GroupSession, InboundGroupSession, SessionConfig};
    use ferrolm::olm::Account;
    use ferrolm_store::RoomId;

    fn direct(outbound: &GroupSession) -> InboundGroupSessionRecord {
        let sender = Account::new();
        InboundGroupSessionRecord {
            room_id: RoomId::new("!r:x"),
            session: InboundGroupSession::new(&outbound.session_key(), SessionConfig::version_1()),
            sender_key: sender.curve25519_key(),
            claimed_signing_key: Some(sender.ed25519_key()),
            source: RoomKeySource::Direct,
            backed_up: true,
            shared_history: false,
        }
    }

    fn decoded(record: &InboundGroupSessionRecord) -> DecodedKey {
        let json = export_json(std::slice::from_ref(record)).unwrap();
        let file = key_export::encrypt(&json, "pw", 10).unwrap();
        decrypt_file(&file, "pw").unwrap().pop().flatten().unwrap()
    }

    #[test]
    fn rule_the_lower_first_index_wins_and_a_better_key_is_never_replaced() {
        let mut outbound = GroupSession::new(SessionConfig::version_1());
        let early = direct(&outbound);
        outbound.encrypt(b"1");
        outbound.encrypt(b"2");
        let late = direct(&outbound);

        // Nothing stored: stored, marked as imported, not backed up, not verified.
        let Merge::Store(r) = merge_imported(None, decoded(&late), RoomKeySource::FileImport, false) else { panic!() };
        assert_eq!((r.source, r.backed_up, r.first_known_index()), (RoomKeySource::FileImport, false, 2));
        assert!(!r.session.is_verified());
        // A later or equal start than the stored key: not stored.
        assert!(matches!(
            merge_imported(Some(&early), decoded(&late), RoomKeySource::FileImport, false),
            Merge::NotBetter
        ));
        assert!(matches!(merge_imported(Some(&early), decoded(&early), RoomKeySource::Backup, true), Merge::NotBetter));
        // An earlier start: merged, keeping the stored sender and the verified flag.
        let Merge::Store(r) = merge_imported(Some(&late), decoded(&early), RoomKeySource::Backup, true) else {
            panic!()
        };
        assert_eq!((r.first_known_index(), r.sender_key, r.source), (0, late.sender_key, RoomKeySource::Backup));
        assert!(r.session.is_verified());
        // A key of the same session id that is not connected: refused.
        let mut forged = decoded(&early);
        let other = direct(&GroupSession::new(SessionConfig::version_1()));
        forged.session = other.session;
        let stored_for_forged = InboundGroupSessionRecord { session: late.session.clone(), ..late.clone() };
        assert!(matches!(
            merge_imported(Some(&stored_for_forged), forged, RoomKeySource::FileImport, false),
            Merge::Unconnected
        ));
    }

    #[test]
    fn export_files_round_trip_and_bad_files_are_typed_errors() {
        let outbound = GroupSession::new(SessionConfig::version_1());
        let record = direct(&outbound);
        let json = export_json(std::slice::from_ref(&record)).unwrap();
        let file = key_export::encrypt(&json, "pw", 10).unwrap();
        let keys = decrypt_file(&file, "pw").unwrap();
        assert_eq!(keys.len(), 1);
        assert!(matches!(decrypt_file(&file, "wrong"), Err(KeyFileError::File(KeyExportError::Mac))));
        let not_a_list = key_export::encrypt(b"{}", "pw", 10).unwrap();
        assert!(matches!(decrypt_file(&not_a_list, "pw"), Err(KeyFileError::Malformed(_))));
        // An entry of the wrong shape fails alone.
        let mixed = format!("[{}, {{\"algorithm\": 5}}]", String::from_utf8(json[1..json.len() - 1].to_vec()).unwrap());
        let mixed = key_export::encrypt(mixed.as_bytes(), "pw", 10).unwrap();
        let keys = decrypt_file(&mixed, "pw").unwrap();
        assert_eq!((keys.len(), keys.iter().flatten().count()), (2, 1));
    }
}
