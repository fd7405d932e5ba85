//! The glue of secret storage and secret gossip: load, call `secret_storage` / `gossip`,
//! commit.
//!
//! Two hooks name where the keys a received secret is checked against come from, so that the
//! backup and cross-signing modules can take them over: `backup_public_key`
//! (the backup the app declared with [`OlmMachine::set_backup_for_secrets`]) and
//! `published_cross_signing_key` (the own identity as stored).

use std::collections::BTreeMap;

use ferrolm::secret_storage::SecretStorageKey;
use ferrolm::types::{Curve25519PublicKey, Ed25519PublicKey, base64_encode};
use ferrolm_store::{
    Backend, BackupRecord, LocalTrust, OutgoingRequest as StoredRequest, PrivateCrossSigningKeys, ReceivedSecret,
    RequestKind, SecretBytes, SecretString,
};
use ruma::to_device::DeviceIdOrAllDevices;
use ruma::{OwnedDeviceId, OwnedUserId};
use serde_json::Value;
use zeroize::Zeroizing;

use super::{OlmMachine, Step, push_to_device_of_type, raw_content};
use crate::adapt::{device_to_store, user_to_store};
use crate::dehydrated::{self, DehydratedDeviceFailure, DehydratedDeviceUpload, RehydratedDevice, RehydratedEvents};
use crate::devices::Device;
use crate::error::MachineError;
use crate::gossip::{self, SecretOutcome, SecretRefusal, SecretRequest, SecretRequestOutcome, SecretRequestRefusal};
use crate::olm_channel::{self, DecryptedToDeviceEvent, ToDeviceError};
use crate::secret_storage::{
    self, AccountData, AccountDataUpdate, CROSS_SIGNING_MASTER, CROSS_SIGNING_SELF_SIGNING, CROSS_SIGNING_USER_SIGNING,
    KNOWN_SECRETS, MEGOLM_BACKUP_KEY, OpenedSecretStorage, PassphraseInfo, SecretStorageFailure,
};
use crate::sync::{SyncOutcome, ToDeviceOutcome};

/// The backup a received backup key must belong to (declared by the app).
#[derive(Debug, Clone, Default)]
pub(crate) struct SecretsState {
    backup: Option<(String, Curve25519PublicKey)>,
}

/// The key of a new secret storage.
#[derive(Clone, Copy)]
pub enum NewSecretStorageKey<'a> {
    /// A key derived from a passphrase (`m.pbkdf2`, a random salt, `iterations`; use
    /// [`secret_storage::DEFAULT_PBKDF2_ITERATIONS`] unless testing).
    Passphrase {
        /// The passphrase.
        passphrase: &'a str,
        /// The PBKDF2 iterations.
        iterations: u32,
    },
    /// A random key, shown to the user as a recovery key.
    RecoveryKey,
}

impl core::fmt::Debug for NewSecretStorageKey<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Passphrase { iterations, .. } => {
                f.debug_struct("Passphrase").field("iterations", iterations).finish_non_exhaustive()
            }
            Self::RecoveryKey => f.write_str("RecoveryKey"),
        }
    }
}

/// A new secret storage key and the account data to write
/// ([`OlmMachine::bootstrap_secret_storage`], [`OlmMachine::change_secret_storage_key`]).
///
/// Write every event of `account_data` (key description first, then the secrets, then the
/// default key: the order of the list); `Debug` redacts the keys.
#[derive(Clone)]
pub struct SecretStorageSetup {
    /// The new key's id.
    pub key_id: String,
    /// The new key.
    pub key: SecretStorageKey,
    /// The key as a recovery key (for a passphrase key too): show it to the user.
    pub recovery_key: Zeroizing<String>,
    /// The events to write, in order.
    pub account_data: Vec<AccountDataUpdate>,
    /// The names of the secrets stored.
    pub secrets: Vec<String>,
}

impl core::fmt::Debug for SecretStorageSetup {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SecretStorageSetup")
            .field("key_id", &self.key_id)
            .field("account_data", &self.account_data)
            .field("secrets", &self.secrets)
            .finish_non_exhaustive()
    }
}

/// Why a secret of secret storage was not imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretImportFailure {
    /// It could not be read (missing, MAC mismatch, …).
    #[error(transparent)]
    Storage(#[from] SecretStorageFailure),
    /// It was read but refused (does not match its public key, …).
    #[error(transparent)]
    Refused(#[from] SecretRefusal),
}

/// What became of one secret in [`OlmMachine::import_secrets_from_storage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretImport {
    /// The secret's name.
    pub name: String,
    /// `Ok` when checked and stored.
    pub result: Result<(), SecretImportFailure>,
}

impl<B: Backend> OlmMachine<B> {
    /// Creates a new default secret storage key and the account data that stores, under it,
    /// every secret this device holds (the private cross-signing keys, the backup key).
    /// Nothing is written to the store: send the returned events.
    pub fn bootstrap_secret_storage(
        &mut self,
        key: NewSecretStorageKey<'_>,
    ) -> Result<SecretStorageSetup, MachineError> {
        let mut secrets = Vec::new();
        for name in KNOWN_SECRETS {
            if let Some(secret) = self.held_secret(name)? {
                secrets.push((name.to_owned(), secret));
            }
        }
        self.new_storage(key, &secrets).map_err(|e| MachineError::InvalidArgument(e.to_string()))
    }

    /// Moves secret storage to a new default key: every secret of `account_data` encrypted
    /// under `old`'s key is decrypted (MAC checked) and encrypted again under the new key
    /// alone. Any secret that does not decrypt stops the change (nothing is returned to
    /// write), so no secret is lost.
    pub fn change_secret_storage_key(
        &mut self,
        account_data: &AccountData,
        old: &OpenedSecretStorage,
        new: NewSecretStorageKey<'_>,
    ) -> Result<SecretStorageSetup, SecretStorageFailure> {
        let mut secrets = Vec::new();
        for name in secret_storage::secrets_encrypted_for(account_data, &old.key_id) {
            let secret = old.read_secret(account_data, &name)?;
            secrets.push((name, secret));
        }
        self.new_storage(new, &secrets)
    }

    fn new_storage(
        &mut self,
        key: NewSecretStorageKey<'_>,
        secrets: &[(String, Zeroizing<String>)],
    ) -> Result<SecretStorageSetup, SecretStorageFailure> {
        let key_id = self.env.random_hex(16);
        let (storage_key, passphrase) = match key {
            NewSecretStorageKey::Passphrase { passphrase, iterations } => {
                let info = PassphraseInfo { salt: self.env.random_hex(16), iterations, bits: None };
                let key = SecretStorageKey::from_passphrase(passphrase, &info.salt, iterations)
                    .map_err(|e| SecretStorageFailure::PassphraseParameters(e.to_string()))?;
                (key, Some(info))
            }
            NewSecretStorageKey::RecoveryKey => {
                let mut bytes = Zeroizing::new([0u8; 32]);
                self.env.rng().fill_bytes(bytes.as_mut());
                (SecretStorageKey::from_bytes(*bytes), None)
            }
        };
        let rng = &mut self.env.rng();
        let description = secret_storage::new_key_description(&key_id, &storage_key, None, passphrase, rng);
        let mut account_data = vec![description.to_update()];
        for (name, secret) in secrets {
            account_data.push(secret_storage::encrypt_secret(&key_id, &storage_key, name, secret, rng));
        }
        account_data.push(secret_storage::default_key_update(&key_id));
        Ok(SecretStorageSetup {
            recovery_key: storage_key.to_recovery_key(),
            key: storage_key,
            key_id,
            account_data,
            secrets: secrets.iter().map(|(n, _)| n.clone()).collect(),
        })
    }

    /// Reads the known secrets (cross-signing keys, backup key) from opened secret storage,
    /// checks each against its public key exactly as a gossiped one, and stores those that
    /// pass, in one change set. Secrets not in account data are reported as
    /// [`SecretStorageFailure::MissingSecret`].
    pub fn import_secrets_from_storage(
        &mut self,
        account_data: &AccountData,
        storage: &OpenedSecretStorage,
    ) -> Result<Vec<SecretImport>, MachineError> {
        let mut step = self.begin();
        let mut report = Vec::new();
        for name in KNOWN_SECRETS {
            let result = match storage.read_secret(account_data, name) {
                Ok(secret) => self.use_secret(&mut step, name, &secret)?.map_err(SecretImportFailure::from),
                Err(e) => Err(e.into()),
            };
            report.push(SecretImport { name: name.to_owned(), result });
        }
        self.commit(step)?;
        Ok(report)
    }

    /// Declares the backup version in use and its public key (from `auth_data`), against
    /// which a backup key received from another device or from secret storage is checked.
    /// Kept in memory: declare it again after a restart.
    pub fn set_backup_for_secrets(&mut self, version: &str, public_key: Curve25519PublicKey) {
        self.state.secrets.backup = Some((version.to_owned(), public_key));
    }

    /// The backup a backup key must belong to: the one declared with
    /// [`OlmMachine::set_backup_for_secrets`], else the active backup
    /// ([`OlmMachine::enable_backup`]).
    fn backup_public_key(&self, step: &Step) -> Option<(String, Curve25519PublicKey)> {
        step.state.secrets.backup.clone().or_else(|| {
            step.state.backup.active.as_ref().map(|active| (active.version.clone(), active.encryption.recipient()))
        })
    }

    /// `device` with its local trust raised to verified when the own cross-signing chain
    /// verifies it, so that the gossip rule (`gossip::is_own_verified_device`) sees chain trust.
    fn with_chain_trust(&self, mut device: Device) -> Result<Device, MachineError> {
        if !device.deleted
            && device.local_trust != LocalTrust::Blacklisted
            && self.is_device_verified(&device.user_id, &device.device_id)?
        {
            device.local_trust = LocalTrust::Verified;
        }
        Ok(device)
    }

    /// Hook: the own published cross-signing public key of the secret `name`, from the own
    /// identity as stored.
    fn published_cross_signing_key(&self, name: &str) -> Result<Option<Ed25519PublicKey>, MachineError> {
        let Some(identity) = self.store.identity(&user_to_store(&self.user_id))? else { return Ok(None) };
        let json = match name {
            CROSS_SIGNING_MASTER => Some(identity.master_key),
            CROSS_SIGNING_SELF_SIGNING => Some(identity.self_signing_key),
            CROSS_SIGNING_USER_SIGNING => identity.user_signing_key,
            _ => None,
        };
        let Some(json) = json else { return Ok(None) };
        let Ok(object) = serde_json::from_slice::<Value>(&json) else { return Ok(None) };
        let keys: Vec<&str> = object
            .get("keys")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(_, v)| v.as_str())
            .collect();
        Ok(match keys.as_slice() {
            [key] => Ed25519PublicKey::from_base64(key).ok(),
            _ => None,
        })
    }

    /// The secret `name` as this device holds it (unpadded base64 of the key), if it does.
    fn held_secret(&self, name: &str) -> Result<Option<Zeroizing<String>>, MachineError> {
        let encode = |bytes: &[u8; 32]| Zeroizing::new(base64_encode(bytes));
        Ok(match name {
            MEGOLM_BACKUP_KEY => self.store.backup()?.and_then(|b| b.decryption_key).map(|k| encode(&k.to_bytes())),
            CROSS_SIGNING_MASTER | CROSS_SIGNING_SELF_SIGNING | CROSS_SIGNING_USER_SIGNING => {
                let keys = self.store.private_cross_signing_keys()?.unwrap_or_default();
                let key = match name {
                    CROSS_SIGNING_MASTER => keys.master,
                    CROSS_SIGNING_SELF_SIGNING => keys.self_signing,
                    _ => keys.user_signing,
                };
                key.map(|k| encode(k.as_bytes()))
            }
            _ => None,
        })
    }

    /// Checks a secret against its public key and stores it where the machine uses it (the
    /// backup record, the private cross-signing keys), in the step. Secrets of other names
    /// are not checked here (the app knows what they are).
    fn use_secret(
        &mut self,
        step: &mut Step,
        name: &str,
        secret: &str,
    ) -> Result<Result<(), SecretRefusal>, MachineError> {
        match name {
            MEGOLM_BACKUP_KEY => {
                let backup = self.backup_public_key(step);
                match gossip::check_backup_key(secret, backup.as_ref().map(|(_, k)| k)) {
                    Ok(key) => {
                        step.changes.backup =
                            Some(BackupRecord { version: backup.map(|(v, _)| v), decryption_key: Some(key) });
                        Ok(Ok(()))
                    }
                    Err(e) => Ok(Err(e)),
                }
            }
            CROSS_SIGNING_MASTER | CROSS_SIGNING_SELF_SIGNING | CROSS_SIGNING_USER_SIGNING => {
                let published = self.published_cross_signing_key(name)?;
                let seed = match gossip::check_cross_signing_key(secret, published.as_ref()) {
                    Ok(seed) => seed,
                    Err(e) => return Ok(Err(e)),
                };
                let mut keys: PrivateCrossSigningKeys = match step.changes.private_cross_signing_keys.take() {
                    Some(keys) => keys,
                    None => self.store.private_cross_signing_keys()?.unwrap_or_default(),
                };
                let slot = match name {
                    CROSS_SIGNING_MASTER => &mut keys.master,
                    CROSS_SIGNING_SELF_SIGNING => &mut keys.self_signing,
                    _ => &mut keys.user_signing,
                };
                *slot = Some(SecretBytes::new(*seed));
                step.changes.private_cross_signing_keys = Some(keys);
                Ok(Ok(()))
            }
            _ => Ok(Ok(())),
        }
    }

    /// The own devices a secret request goes to (and whose answers count).
    fn own_verified_devices(&self) -> Result<Vec<Device>, MachineError> {
        let mut verified = Vec::new();
        for device in self.devices(&self.user_id)? {
            let device = self.with_chain_trust(device)?;
            if gossip::is_own_verified_device(&self.user_id, &self.device_id, &device) {
                verified.push(device);
            }
        }
        Ok(verified)
    }

    /// Asks the own verified devices for the secret `name` (`m.secret.request`, to each of
    /// them by device id). Only their answers, over Olm, are taken; the request is cancelled
    /// at the others once one answers. No request when no own device is verified, or when
    /// one for this secret is pending.
    pub fn request_secret(&mut self, name: &str) -> Result<SecretRequest, MachineError> {
        let pending = self
            .store
            .outgoing_requests()?
            .into_iter()
            .any(|r| matches!(&r.kind, RequestKind::Secret { name: n } if n == name));
        let devices = self.own_verified_devices()?;
        if pending || devices.is_empty() {
            return Ok(SecretRequest::default());
        }
        let mut step = self.begin();
        let request_id = self.new_request_id();
        step.changes.outgoing_requests.push(StoredRequest {
            request_id: request_id.clone(),
            recipient: user_to_store(&self.user_id),
            kind: RequestKind::Secret { name: name.to_owned() },
            sent: true,
        });
        let content = gossip::request_content(&request_id, &self.device_id, name);
        let mut sent_to: Vec<OwnedDeviceId> = devices.into_iter().map(|d| d.device_id).collect();
        sent_to.sort();
        self.queue_secret_request_to(&mut step, &content, &sent_to)?;
        self.commit(step)?;
        Ok(SecretRequest { request_id: Some(request_id), sent_to })
    }

    /// Queues an `m.secret.request` (request or cancellation) to the own `devices`.
    fn queue_secret_request_to(
        &mut self,
        step: &mut Step,
        content: &Value,
        devices: &[OwnedDeviceId],
    ) -> Result<(), MachineError> {
        if devices.is_empty() {
            return Ok(());
        }
        let mut messages: ruma::api::client::to_device::send_event_to_device::v3::Messages = BTreeMap::new();
        let own = messages.entry(self.user_id.clone()).or_default();
        for device in devices {
            own.insert(DeviceIdOrAllDevices::DeviceId(device.clone()), raw_content(content)?);
        }
        let txn_id = self.new_request_id();
        push_to_device_of_type(step, txn_id, "m.secret.request", messages)
    }

    /// The secret events of one to-device outcome (before the secret is redacted from it).
    pub(super) fn receive_secret_events(
        &mut self,
        step: &mut Step,
        outcome: &ToDeviceOutcome,
        sync: &mut SyncOutcome,
    ) -> Result<(), MachineError> {
        match outcome {
            ToDeviceOutcome::Decrypted(event) if event.event_type == "m.secret.send" => {
                let result = self.receive_secret_send(step, event)?;
                sync.secrets.push(result);
            }
            ToDeviceOutcome::Decrypted(event) if event.event_type == "m.secret.request" => {
                self.receive_secret_request(step, event.sender.as_str(), &event.content, sync)?;
            }
            ToDeviceOutcome::Plaintext(raw) => {
                let value: Value = serde_json::from_str(raw.json().get()).unwrap_or_default();
                if value.get("type").and_then(Value::as_str) == Some("m.secret.request") {
                    let sender = value.get("sender").and_then(Value::as_str).unwrap_or_default().to_owned();
                    let content = value.get("content").cloned().unwrap_or_default();
                    self.receive_secret_request(step, &sender, &content, sync)?;
                }
            }
            ToDeviceOutcome::Refused { sender, error: ToDeviceError::Unencrypted(event_type), .. }
                if event_type == "m.secret.send" =>
            {
                sync.secrets.push(SecretOutcome {
                    name: None,
                    request_id: None,
                    sender: sender.clone(),
                    sender_device: None,
                    result: Err(SecretRefusal::NotEncrypted),
                });
            }
            _ => {}
        }
        Ok(())
    }

    fn receive_secret_send(
        &mut self,
        step: &mut Step,
        event: &DecryptedToDeviceEvent,
    ) -> Result<SecretOutcome, MachineError> {
        let mut outcome = SecretOutcome {
            name: None,
            request_id: gossip::send_request_id(&event.content),
            sender: Some(event.sender.to_string()),
            sender_device: event.sender_device.clone(),
            result: Ok(()),
        };
        let sender_device = match &event.sender_device {
            Some(id) => self
                .store
                .device(&user_to_store(&event.sender), &device_to_store(id))?
                .as_ref()
                .and_then(Device::from_record),
            None => None,
        };
        let sender_device = sender_device.map(|d| self.with_chain_trust(d)).transpose()?;
        // Requests answered earlier in this step are answered.
        let answered = &step.changes.deletions.outgoing_requests;
        let requests: Vec<StoredRequest> =
            self.store.outgoing_requests()?.into_iter().filter(|r| !answered.contains(&r.request_id)).collect();
        let received =
            match gossip::check_secret_send(&self.user_id, &self.device_id, event, sender_device.as_ref(), &requests) {
                Ok(r) => r,
                Err(e) => {
                    outcome.result = Err(e);
                    return Ok(outcome);
                }
            };
        outcome.name = Some(received.name.clone());
        if let Err(e) = self.use_secret(step, &received.name, &received.secret)? {
            // Refused: the request stays open for another device to answer.
            outcome.result = Err(e);
            return Ok(outcome);
        }
        let (Some(sender_device), Some(device_id)) = (sender_device, event.sender_device.clone()) else {
            return Err(MachineError::Internal("a checked secret has no sender device".into()));
        };
        step.changes.secrets_inbox.push(ReceivedSecret {
            name: received.name.clone(),
            id: received.request.request_id.clone(),
            sender_user: user_to_store(&event.sender),
            sender_device: device_to_store(&device_id),
            secret: SecretString::new(received.secret.as_str()),
        });
        // Answered: forget the request and cancel it at the other devices.
        step.changes.deletions.outgoing_requests.push(received.request.request_id.clone());
        let others: Vec<OwnedDeviceId> = self
            .own_verified_devices()?
            .into_iter()
            .map(|d| d.device_id)
            .filter(|d| *d != sender_device.device_id)
            .collect();
        let cancel = gossip::cancellation_content(&received.request.request_id, &self.device_id);
        self.queue_secret_request_to(step, &cancel, &others)?;
        Ok(outcome)
    }

    fn receive_secret_request(
        &mut self,
        step: &mut Step,
        sender: &str,
        content: &Value,
        sync: &mut SyncOutcome,
    ) -> Result<(), MachineError> {
        let request = match gossip::read_request(content) {
            Ok(r) => r,
            Err(e) => {
                sync.secret_requests.push(SecretRequestOutcome {
                    request_id: content.get("request_id").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    name: None,
                    requesting_device_id: None,
                    result: Err(e),
                });
                return Ok(());
            }
        };
        let Some(name) = request.name.clone() else { return Ok(()) }; // a cancellation: nothing pending here
        if sender == self.user_id.as_str() && request.requesting_device_id.as_deref() == Some(&*self.device_id) {
            return Ok(());
        }
        let result =
            self.answer_secret_request(step, sender, &request.requesting_device_id, &request.request_id, &name)?;
        sync.secret_requests.push(SecretRequestOutcome {
            request_id: request.request_id,
            name: Some(name),
            requesting_device_id: request.requesting_device_id,
            result,
        });
        Ok(())
    }

    fn answer_secret_request(
        &mut self,
        step: &mut Step,
        sender: &str,
        requesting_device: &Option<OwnedDeviceId>,
        request_id: &str,
        name: &str,
    ) -> Result<Result<(), SecretRequestRefusal>, MachineError> {
        let Ok(sender) = OwnedUserId::try_from(sender) else {
            return Ok(Err(SecretRequestRefusal::Malformed("sender".into())));
        };
        let requester = match requesting_device {
            Some(id) => {
                self.store.device(&user_to_store(&sender), &device_to_store(id))?.as_ref().and_then(Device::from_record)
            }
            None => None,
        };
        let requester = requester.map(|d| self.with_chain_trust(d)).transpose()?;
        let secret = self.held_secret(name)?;
        if let Err(e) =
            gossip::check_secret_request(&self.user_id, &self.device_id, &sender, requester.as_ref(), secret.is_some())
        {
            return Ok(Err(e));
        }
        let (Some(requester), Some(secret)) = (requester, secret) else {
            return Err(MachineError::Internal("a checked secret request has no device or secret".into()));
        };
        let mut content = gossip::send_content(request_id, &secret);
        if !self.queue_olm_to_device(step, &requester, "m.secret.send", &mut content)? {
            return Ok(Err(SecretRequestRefusal::NoOlmSession));
        }
        Ok(Ok(()))
    }
}

impl<B: Backend> OlmMachine<B> {
    /// Creates a dehydrated device (MSC3814): a new account with one-time keys and a fallback
    /// key, encrypted under `pickle_key` (keep it in secret storage), and its upload; its
    /// device keys are signed by the own self-signing key when this device holds it (without
    /// it, matrix-sdk-crypto senders withhold room keys from the dehydrated device). Send the
    /// upload; creating another one later replaces it on the server. Nothing is stored here.
    pub fn create_dehydrated_device(
        &mut self,
        pickle_key: &[u8; 32],
        display_name: &str,
    ) -> Result<DehydratedDeviceUpload, MachineError> {
        let rng = &mut self.env.rng();
        let mut account = ferrolm::olm::Account::new_with_rng(rng);
        account.generate_one_time_keys_with_rng(dehydrated::DEHYDRATED_ONE_TIME_KEYS, rng);
        account.generate_fallback_key_with_rng(rng);
        let pickle = account
            .to_dehydrated_device_with_rng(pickle_key, rng)
            .map_err(|e| MachineError::Internal(e.to_string()))?;
        // Cross-signed when the self-signing key is held: senders such as matrix-sdk-crypto
        // withhold room keys from a dehydrated device its owner has not signed.
        let self_signing = self
            .store
            .private_cross_signing_keys()?
            .and_then(|keys| keys.self_signing)
            .map(|seed| ferrolm::types::Ed25519Keypair::from_seed(seed.as_bytes()));
        dehydrated::upload_body(&account, self.user_id.as_str(), display_name, &pickle, self_signing.as_ref())
    }

    /// Rehydrates the device of `body` (the answer of `GET …/dehydrated_device`) with
    /// `pickle_key`. Then give it the events it received
    /// ([`OlmMachine::receive_rehydrated_events`]).
    pub fn rehydrate_device(
        &self,
        body: &[u8],
        pickle_key: &[u8; 32],
    ) -> Result<RehydratedDevice, DehydratedDeviceFailure> {
        let (device_id, account) = dehydrated::read_device(body, pickle_key)?;
        Ok(RehydratedDevice { device_id, account })
    }

    /// Decrypts the to-device events a rehydrated device received (`POST
    /// …/dehydrated_device/{device_id}/events`, page by page) with its account, and imports
    /// the room keys in them into this machine's store (the rules of `m.room_key` apply), in
    /// one change set. Only `m.room_key` events are used; the rehydrated device's Olm sessions
    /// are not kept. Returns what became of each room key, and why the encrypted events that
    /// did not decrypt were refused.
    pub fn receive_rehydrated_events(
        &mut self,
        device: &mut RehydratedDevice,
        events: &[ruma::serde::Raw<ruma::events::AnyToDeviceEvent>],
    ) -> Result<RehydratedEvents, MachineError> {
        let mut step = self.begin();
        let mut refused = Vec::new();
        let now = self.env.now_ms();
        let mut sync = SyncOutcome::default();
        let mut sessions = olm_channel::Sessions::default();
        for raw in events {
            let Ok(envelope) = serde_json::from_str::<olm_channel::ToDeviceEnvelope>(raw.json().get()) else {
                continue;
            };
            if envelope.event_type != "m.room.encrypted" {
                continue;
            }
            let mut effects = olm_channel::DecryptEffects::default();
            let mut receiver = olm_channel::Receiver { user_id: &self.user_id, account: &mut device.account };
            let result = olm_channel::decrypt(&self.store, &mut receiver, &mut sessions, &envelope, now, &mut effects)?;
            match result {
                Ok(event) if event.event_type == "m.room_key" => {
                    let mut outcome = ToDeviceOutcome::Decrypted(event);
                    self.receive_room_key_events(&mut step, &mut outcome, &mut sync)?;
                }
                Ok(_) => {}
                Err(error) => refused.push(error),
            }
        }
        self.commit(step)?;
        Ok(RehydratedEvents { room_keys: sync.room_keys, refused })
    }
}
