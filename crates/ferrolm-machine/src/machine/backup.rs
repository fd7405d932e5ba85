//! The glue of server-side key backups and key export files: load, call `backup` / `export`,
//! commit.

use std::collections::HashMap;
use std::sync::Arc;

use ferrolm_store::{Backend, BackupRecord, Changes, InboundGroupSessionRecord, RoomId, RoomKeyCounts, RoomKeySource};
use ruma::api::client::backup::{BackupAlgorithm, create_backup_version};
use ruma::serde::Raw;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::{OlmMachine, Pending, Purpose, Step};
use crate::adapt::user_to_store;
use crate::backup::{
    self, ActiveBackup, BACKUP_ALGORITHM, BACKUP_BATCH_SIZE, BackupDecryptionKey, BackupError, BackupInfo,
    BackupPurpose, BackupTrust, DecodedKey, IMPORT_COMMIT_SIZE, OwnKeys,
};
use crate::devices::Device;
use crate::error::MachineError;
use crate::export::{self, KeyFileError, Merge, RoomKeyImportReport};
use crate::requests::{IncomingResponse, OutgoingRequest, Request};
use crate::signing::sign_json;

/// A new backup version, from [`OlmMachine::create_backup_version`].
#[derive(Debug, Clone)]
pub struct NewBackupVersion {
    /// `POST /room_keys/version`: send it and report the answer with
    /// [`OlmMachine::mark_request_as_sent`], which makes the new version the active one.
    pub request: OutgoingRequest,
    /// The backup's private key: show it as a recovery key
    /// ([`BackupDecryptionKey::to_recovery_key`]) or keep it in secret storage. The store
    /// keeps it too once the version is created.
    pub decryption_key: BackupDecryptionKey,
    /// The signed `auth_data` the request carries.
    pub auth_data: Map<String, Value>,
}

/// Where an import's stored keys are looked up.
struct KnownKeys {
    keys: HashMap<(RoomId, String), InboundGroupSessionRecord>,
    /// Whether `keys` holds every stored key (a miss then means none is stored).
    complete: bool,
}

/// What an import does with the keys it stores.
struct ImportTarget {
    source: RoomKeySource,
    backed_up: bool,
    /// Reset every backed-up flag before the first key is stored (a new backup version).
    reset_flags_first: bool,
    /// Committed with the last change set, if any key was readable.
    backup_record: Option<BackupRecord>,
    /// Whether the same session may come twice (a file; a backup files each session once).
    may_repeat: bool,
}

impl<B: Backend> OlmMachine<B> {
    /// Creates a new backup version: a new backup key (from the machine's generator) and its
    /// `auth_data`, signed by this device (and by the own master key when the store holds its
    /// private key). Once the server's answer is reported, the new version is the one keys
    /// are backed up to, and every key is due for backup again.
    pub fn create_backup_version(&mut self) -> Result<NewBackupVersion, MachineError> {
        let mut step = self.begin();
        let key = BackupDecryptionKey::generate(self.env.rng());
        let mut auth_data = backup::auth_data(&key.public_key());
        sign_json(&step.state.own.account, self.user_id.as_str(), self.device_id.as_str(), &mut auth_data)
            .map_err(|e| MachineError::Internal(e.to_string()))?;
        backup::sign_with_own_master_key(&self.store, self.user_id.as_str(), &mut auth_data)?;
        let algorithm = serde_json::json!({ "algorithm": BACKUP_ALGORITHM, "auth_data": auth_data });
        let raw = serde_json::value::to_raw_value(&algorithm).map_err(|e| MachineError::Internal(e.to_string()))?;
        let request = create_backup_version::v3::Request::new(Raw::<BackupAlgorithm>::from_json(raw));
        let request =
            OutgoingRequest { request_id: self.new_request_id(), request: Request::BackupVersionCreate(request) };
        step.state.pending.push(Pending {
            request: Arc::new(request.clone()),
            purpose: Purpose::Backup(BackupPurpose::CreateVersion(key.clone())),
            listed: false,
        });
        self.commit(step)?;
        Ok(NewBackupVersion { request, decryption_key: key, auth_data })
    }

    /// Whether `info` (a backup version from the server) may be written to, and why
    /// (the rule `check_backup_trust` of [`backup`](crate::backup)).
    pub fn verify_backup(&self, info: &BackupInfo) -> Result<BackupTrust, MachineError> {
        self.backup_trust(info, None)
    }

    fn backup_trust(&self, info: &BackupInfo, key: Option<&BackupDecryptionKey>) -> Result<BackupTrust, MachineError> {
        // The rule takes the own devices with their trust: verified by the user, or through the
        // own cross-signing chain (`is_device_verified`).
        let mut devices: Vec<Device> =
            self.store.devices(&user_to_store(&self.user_id))?.iter().filter_map(Device::from_record).collect();
        for device in &mut devices {
            if !device.deleted && self.is_device_verified(&device.user_id, &device.device_id)? {
                device.local_trust = ferrolm_store::LocalTrust::Verified;
            }
        }
        let mut held_keys: Vec<_> = key.map(BackupDecryptionKey::public_key).into_iter().collect();
        if let Some(stored) = self.store.backup()?.and_then(|b| b.decryption_key) {
            held_keys.push(stored.public_key());
        }
        let own = OwnKeys {
            user_id: self.user_id.as_str(),
            device_id: self.device_id.as_str(),
            ed25519: self.identity_keys().ed25519,
            master_key: crate::identities::Trust::load(&self.store, &self.user_id)?
                .own_trusted()
                .map(|(master, _)| master),
            devices: &devices,
            held_keys: &held_keys,
        };
        Ok(backup::check_backup_trust(info, &own))
    }

    /// Makes `info` (an existing backup version from the server) the one room keys are
    /// backed up to. With `key`, its private key (a recovery key, the secret-storage copy),
    /// which must match and is kept in the store; without, the version must be trusted by a
    /// signature ([`OlmMachine::verify_backup`]): an untrusted version is refused
    /// ([`BackupError::Untrusted`]) and nothing changes. Switching to another version makes
    /// every key due for backup again.
    ///
    /// After a restart the backup stays active only when the store holds its private key;
    /// otherwise call this again.
    pub fn enable_backup(
        &mut self,
        info: &BackupInfo,
        key: Option<&BackupDecryptionKey>,
    ) -> Result<BackupTrust, BackupError> {
        if let Some(key) = key {
            backup::check_key_matches(info, key)?;
        }
        let trust = self.backup_trust(info, key)?;
        if !trust.is_trusted() {
            return Err(BackupError::Untrusted);
        }
        let stored = self.store.backup()?.unwrap_or_default();
        let stored_key = stored.decryption_key.filter(|k| k.public_key() == info.public_key);
        let decryption_key = key.map(|k| k.pk().clone()).or(stored_key);
        if stored.version.as_deref() != Some(info.version.as_str()) {
            self.reset_backed_up_flags()?;
        }
        let mut step = self.begin();
        step.changes.backup = Some(BackupRecord { version: Some(info.version.clone()), decryption_key });
        self.activate(&mut step, info.version.clone(), info.public_key)?;
        self.commit(step)?;
        Ok(trust)
    }

    fn activate(
        &self,
        step: &mut Step,
        version: String,
        public_key: ferrolm::types::Curve25519PublicKey,
    ) -> Result<(), MachineError> {
        let encryption = ferrolm::pk::PkEncryption::from_key(public_key)
            .map_err(|_| MachineError::InvalidArgument("the backup's public key is of small order".into()))?;
        step.state.backup.active = Some(ActiveBackup { version, encryption });
        // Uploads in flight were for the previous version.
        step.state.backup.upload_in_flight = None;
        step.state.pending.retain(|p| !matches!(p.purpose, Purpose::Backup(BackupPurpose::Upload { .. })));
        Ok(())
    }

    /// Stops backing up (the store forgets the version and its key).
    pub fn disable_backup(&mut self) -> Result<(), MachineError> {
        let mut step = self.begin();
        step.changes.deletions.backup = true;
        step.state.backup.active = None;
        step.state.backup.upload_in_flight = None;
        step.state.pending.retain(|p| !matches!(p.purpose, Purpose::Backup(BackupPurpose::Upload { .. })));
        self.commit(step)
    }

    /// The backup version keys are backed up to, if any.
    pub fn backup_version(&self) -> Option<&str> {
        self.state.backup.active.as_ref().map(|a| a.version.as_str())
    }

    /// The stored backup private key, if any (to put in secret storage).
    pub fn backup_decryption_key(&self) -> Result<Option<BackupDecryptionKey>, MachineError> {
        Ok(self.store.backup()?.and_then(|b| b.decryption_key).map(BackupDecryptionKey::from_pk))
    }

    /// How many room keys there are, and how many are in the active backup.
    pub fn room_key_counts(&self) -> Result<RoomKeyCounts, MachineError> {
        Ok(self.store.room_key_counts()?)
    }

    /// The next upload to the backup (`PUT /room_keys/keys`): up to [`BACKUP_BATCH_SIZE`]
    /// room keys not yet backed up, encrypted to the backup's key. `None` when no backup is
    /// active or every key is backed up. One upload at a time: until its answer is reported
    /// ([`OlmMachine::mark_request_as_sent`], which marks its keys backed up, in one change
    /// set), the same request is returned. Call it again after each answer.
    pub fn backup(&mut self) -> Result<Option<OutgoingRequest>, MachineError> {
        if let Some(id) = &self.state.backup.upload_in_flight
            && let Some(pending) = self.state.pending.iter().find(|p| p.request.request_id == *id)
        {
            return Ok(Some(OutgoingRequest::clone(&pending.request)));
        }
        let Some(active) = self.state.backup.active.clone() else { return Ok(None) };
        let sessions = self.store.inbound_group_sessions_to_back_up(BACKUP_BATCH_SIZE)?;
        if sessions.is_empty() {
            return Ok(None);
        }
        let mut step = self.begin();
        let (request, purpose) = backup::upload_request(&active, &sessions, self.env.rng())?;
        let request = OutgoingRequest { request_id: self.new_request_id(), request: Request::KeysBackup(request) };
        step.state.backup.upload_in_flight = Some(request.request_id.clone());
        step.state.pending.push(Pending {
            request: Arc::new(request.clone()),
            purpose: Purpose::Backup(purpose),
            listed: false,
        });
        self.commit(step)?;
        Ok(Some(request))
    }

    /// Applies the answer to a backup request (from `mark_request_as_sent`).
    pub(super) fn backup_response(
        &mut self,
        step: &mut Step,
        purpose: BackupPurpose,
        response: IncomingResponse,
    ) -> Result<(), MachineError> {
        match (purpose, response) {
            (BackupPurpose::CreateVersion(key), IncomingResponse::BackupVersionCreate(response)) => {
                self.reset_backed_up_flags()?;
                step.changes.backup = Some(BackupRecord {
                    version: Some(response.version.clone()),
                    decryption_key: Some(key.pk().clone()),
                });
                self.activate(step, response.version, key.public_key())?;
            }
            (BackupPurpose::Upload { version, keys }, IncomingResponse::KeysBackup(_)) => {
                // One upload at a time: this was the one in flight.
                step.state.backup.upload_in_flight = None;
                for (room_id, session_id, first_index) in keys {
                    let Some(stored) = self.store.inbound_group_session(&room_id, &session_id)? else { continue };
                    if backup::upload_acknowledged(&stored, &version, first_index, step.state.backup.active.as_ref()) {
                        step.changes
                            .inbound_group_sessions
                            .push(InboundGroupSessionRecord { backed_up: true, ..stored });
                    }
                }
            }
            _ => return Err(MachineError::Internal("backup request purpose and response disagree".into())),
        }
        Ok(())
    }

    /// Marks every backed-up room key as not backed up (a new backup version), in change sets
    /// of [`IMPORT_COMMIT_SIZE`] keys. Done before the new version is saved: a crash in
    /// between only makes keys due for the old version again.
    fn reset_backed_up_flags(&mut self) -> Result<(), MachineError> {
        if self.store.room_key_counts()?.backed_up == 0 {
            return Ok(());
        }
        let mut cursor = None;
        loop {
            let (page, next) = self.store.inbound_group_sessions_page(cursor.as_ref(), IMPORT_COMMIT_SIZE)?;
            let changes = Changes {
                inbound_group_sessions: page
                    .into_iter()
                    .filter(|r| r.backed_up)
                    .map(|r| InboundGroupSessionRecord { backed_up: false, ..r })
                    .collect(),
                ..Changes::default()
            };
            if !changes.is_empty() {
                self.store.save_changes(&changes)?;
            }
            match next {
                Some(next) => cursor = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// Restores room keys from a downloaded backup: `keys_json` is the body of
    /// `GET /room_keys/keys?version=…` for the version `info`, `key` its private key (from the
    /// recovery key or secret storage). A key that is not the backup's is refused
    /// ([`BackupError::WrongKey`]) before anything is decrypted.
    ///
    /// Entries are decrypted on every core and stored in change sets of
    /// [`IMPORT_COMMIT_SIZE`] keys; `progress(done, total)` is called after each, ending at
    /// `(total, total)`. An entry that fails, for whatever reason, is counted in
    /// [`RoomKeyImportReport::failed`] and the restore goes on; if none decrypts, the result is
    /// [`BackupError::NothingDecrypted`] and nothing was stored. Restored keys are marked as
    /// from the backup, unverified, and merged by the import rule (a stored key that is as good
    /// or better stays). They count as backed up when `info` is the active backup version, and
    /// so are not uploaded again; when no backup is active, `info` becomes the active one (we
    /// hold its key, which makes it trusted).
    pub fn restore_backup(
        &mut self,
        info: &BackupInfo,
        key: &BackupDecryptionKey,
        keys_json: &[u8],
        mut progress: impl FnMut(usize, usize),
    ) -> Result<RoomKeyImportReport, BackupError> {
        backup::check_key_matches(info, key)?;
        let entries = backup::parse_backup(keys_json)?;
        let active = self.state.backup.active.as_ref().map(|a| a.version.clone());
        let target = match active {
            Some(v) if v == info.version => ImportTarget {
                source: RoomKeySource::Backup,
                backed_up: true,
                reset_flags_first: false,
                backup_record: None,
                may_repeat: false,
            },
            Some(_) => ImportTarget {
                source: RoomKeySource::Backup,
                backed_up: false,
                reset_flags_first: false,
                backup_record: None,
                may_repeat: false,
            },
            None => {
                let stored_version = self.store.backup()?.and_then(|b| b.version);
                ImportTarget {
                    source: RoomKeySource::Backup,
                    backed_up: true,
                    reset_flags_first: stored_version.as_deref() != Some(info.version.as_str()),
                    backup_record: Some(BackupRecord {
                        version: Some(info.version.clone()),
                        decryption_key: Some(key.pk().clone()),
                    }),
                    may_repeat: false,
                }
            }
        };
        let activate = target.backup_record.is_some();
        let total = entries.len();
        let decode = |i: usize| {
            let chunk = entries.chunks(IMPORT_COMMIT_SIZE).nth(i).unwrap_or_default();
            backup::decode_entries(key.pk(), chunk)
        };
        let report = self.import_decoded(total.div_ceil(IMPORT_COMMIT_SIZE), &decode, total, target, &mut progress)?;
        if total > 0 && report.imported + report.not_better == 0 {
            return Err(BackupError::NothingDecrypted { failed: report.failed });
        }
        if activate {
            let mut step = self.begin();
            self.activate(&mut step, info.version.clone(), info.public_key)?;
            self.commit(step)?;
        }
        Ok(report)
    }

    /// Stores decoded keys by the import rule (`export::merge_imported`), one change set per
    /// chunk. `decode(i)` gives chunk `i`; the next chunk is decoded on other threads while
    /// this one merges and commits the current one, so the cores decrypt while the store
    /// seals and waits for the disk.
    fn import_decoded(
        &mut self,
        chunk_count: usize,
        decode: &(dyn Fn(usize) -> Vec<Option<DecodedKey>> + Sync),
        total: usize,
        mut target: ImportTarget,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<RoomKeyImportReport, MachineError> {
        let mut report = RoomKeyImportReport { total, ..Default::default() };
        let mut known = self.known_keys(total)?;
        let mut done = 0;
        std::thread::scope(|scope| {
            let mut ahead = (chunk_count > 0).then(|| scope.spawn(|| decode(0)));
            for i in 0..chunk_count {
                // A decoding thread does not panic; if one did, decode again here.
                let chunk = match ahead.take().map(std::thread::ScopedJoinHandle::join) {
                    Some(Ok(chunk)) => chunk,
                    _ => decode(i),
                };
                if i + 1 < chunk_count {
                    ahead = Some(scope.spawn(move || decode(i + 1)));
                }
                done += chunk.len();
                let mut changes = Changes::default();
                for decoded in chunk {
                    let Some(decoded) = decoded else {
                        report.failed += 1;
                        continue;
                    };
                    let id = (decoded.room_id.clone(), decoded.session.session_id().to_base64());
                    let stored = match known.keys.get(&id) {
                        Some(stored) => Some(stored.clone()),
                        None if known.complete => None,
                        None => self.store.inbound_group_session(&id.0, &id.1)?,
                    };
                    match export::merge_imported(stored.as_ref(), decoded, target.source, target.backed_up) {
                        Merge::Store(record) => {
                            report.imported += 1;
                            if target.may_repeat {
                                known.keys.insert(id, (*record).clone());
                            }
                            changes.inbound_group_sessions.push(*record);
                        }
                        Merge::NotBetter => report.not_better += 1,
                        Merge::Unconnected => report.failed += 1,
                    }
                }
                let readable = report.imported + report.not_better > 0;
                if i + 1 == chunk_count && readable {
                    changes.backup = target.backup_record.take();
                }
                if !changes.is_empty() {
                    if target.reset_flags_first {
                        self.reset_backed_up_flags()?;
                        target.reset_flags_first = false;
                    }
                    self.store.save_changes(&changes)?;
                }
                progress(done, total);
            }
            Ok::<(), MachineError>(())
        })?;
        if chunk_count == 0 {
            progress(0, 0);
        }
        Ok(report)
    }

    /// The stored keys an import of `incoming` keys compares with: none to load when the store
    /// holds no key, all of them when they are fewer than the keys coming in, otherwise each
    /// is read when needed.
    fn known_keys(&self, incoming: usize) -> Result<KnownKeys, MachineError> {
        let stored = usize::try_from(self.store.room_key_counts()?.total).unwrap_or(usize::MAX);
        let mut known = KnownKeys { keys: HashMap::new(), complete: stored == 0 };
        if stored == 0 || stored > incoming {
            return Ok(known);
        }
        let mut cursor = None;
        loop {
            let (page, next) = self.store.inbound_group_sessions_page(cursor.as_ref(), IMPORT_COMMIT_SIZE)?;
            for record in page {
                known.keys.insert((record.room_id.clone(), record.session_id()), record);
            }
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        known.complete = true;
        Ok(known)
    }

    /// Exports the stored room keys that `predicate` selects into a key export file encrypted
    /// with `passphrase` (`rounds` PBKDF2 rounds: [`ferrolm::key_export::DEFAULT_ROUNDS`] in
    /// practice). Each key is exported at its first known index.
    pub fn export_room_keys(
        &mut self,
        passphrase: &str,
        rounds: u32,
        mut predicate: impl FnMut(&InboundGroupSessionRecord) -> bool,
    ) -> Result<Zeroizing<String>, KeyFileError> {
        let mut selected = Vec::new();
        let mut cursor = None;
        loop {
            let (page, next) = self.store.inbound_group_sessions_page(cursor.as_ref(), IMPORT_COMMIT_SIZE)?;
            selected.extend(page.into_iter().filter(|r| predicate(r)));
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let json = export::export_json(&selected)?;
        export::encrypt_file(&json, passphrase, rounds, self.env.rng())
    }

    /// Imports a key export file: a wrong passphrase or an altered file is refused
    /// ([`KeyFileError::File`]) before anything is read. Keys are stored by the import rule
    /// (a stored key that is as good or better stays), marked as imported from a file,
    /// unverified and not backed up, in change sets of [`IMPORT_COMMIT_SIZE`];
    /// `progress(done, total)` after each. Keys that do not parse are counted, not fatal.
    pub fn import_room_keys(
        &mut self,
        file: &str,
        passphrase: &str,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<RoomKeyImportReport, KeyFileError> {
        let mut decoded = export::decrypt_file(file, passphrase)?;
        let total = decoded.len();
        let mut chunks = Vec::new();
        while !decoded.is_empty() {
            let rest = decoded.split_off(decoded.len().min(IMPORT_COMMIT_SIZE));
            chunks.push(std::sync::Mutex::new(std::mem::replace(&mut decoded, rest)));
        }
        // Already decoded: each chunk is handed over once.
        let decode = |i: usize| {
            chunks.get(i).and_then(|c| c.lock().ok().map(|mut c| std::mem::take(&mut *c))).unwrap_or_default()
        };
        let target = ImportTarget {
            source: RoomKeySource::FileImport,
            backed_up: false,
            reset_flags_first: false,
            backup_record: None,
            may_repeat: true,
        };
        Ok(self.import_decoded(chunks.len(), &decode, total, target, &mut progress)?)
    }
}
