//! The glue of cross-signing and trust: bootstrap, import and export of the private keys,
//! identities and device trust, and the `verify_*` calls a verification flow ends with.
//! The rules are in [`crate::cross_signing`] and [`crate::identities`].

use std::collections::BTreeMap;
use std::sync::Arc;

use ferrolm::types::Ed25519PublicKey;
use ferrolm_store::{Backend, Changes, DeviceRecord, IdentityRecord, LocalTrust, TrackedUser};
use ruma::api::client::keys::{upload_signatures, upload_signing_keys};
use ruma::{DeviceId, OwnedDeviceId, OwnedUserId, UserId};
use serde_json::{Map, Value};

use super::{OlmMachine, Pending, Purpose, Step};
use crate::adapt::{device_to_store, user_from_store, user_to_store};
use crate::cross_signing::{self, CrossSigningImportError, CrossSigningKeyExport, KeyUsage, PrivateCrossSigningKeys};
use crate::devices::Device;
use crate::error::MachineError;
use crate::identities::{DeviceTrust, StoredIdentity, Trust, UserIdentity, device_is_cross_signed, master_signed_by};
use crate::olm_channel::DeviceKey;
use crate::own_device;
use crate::requests::{OutgoingRequest, Request};
use crate::signing::{sign_json, verify_json};

/// The requests of [`OlmMachine::bootstrap_cross_signing`], to send **in this order**, each
/// once its predecessor succeeded, reporting each answer with
/// [`OlmMachine::mark_request_as_sent`].
#[derive(Debug, Clone)]
pub struct CrossSigningBootstrap {
    /// The device keys upload, when the device keys are not published yet (the signatures
    /// refer to them). It is the request [`OlmMachine::outgoing_requests`] lists: send it once.
    pub keys_upload: Option<OutgoingRequest>,
    /// `/keys/device_signing/upload` with the three public keys. The homeserver usually
    /// answers `401` with a user-interactive authentication challenge: authenticate the user,
    /// then send [`OutgoingRequest::with_auth`] (same request id).
    pub signing_keys_upload: OutgoingRequest,
    /// `/keys/signatures/upload`: this device signed by the new self-signing key.
    pub signature_upload: OutgoingRequest,
}

/// Which private cross-signing keys the machine holds, and whether they are the published ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CrossSigningStatus {
    /// The private master key is held.
    pub has_master: bool,
    /// The private self-signing key is held.
    pub has_self_signing: bool,
    /// The private user-signing key is held.
    pub has_user_signing: bool,
    /// An own identity is published (known from a keys query or from this device's upload).
    pub published: bool,
    /// The held master key is the published one.
    pub master_matches: bool,
    /// The held self-signing key is the published one.
    pub self_signing_matches: bool,
    /// The held user-signing key is the published one.
    pub user_signing_matches: bool,
}

impl CrossSigningStatus {
    /// Whether all three private keys are held and published.
    pub fn is_complete(&self) -> bool {
        self.master_matches && self.self_signing_matches && self.user_signing_matches
    }
}

/// Who of the own user signed an object ([`OlmMachine::trusted_own_signer`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnSigner {
    /// The own master key, which is trusted.
    MasterKey(Ed25519PublicKey),
    /// An own device that is verified (this device included).
    Device(OwnedDeviceId),
}

/// An object to publish a signature of.
enum Signed {
    Device(OwnedDeviceId, Map<String, Value>),
    CrossSigningKey(Ed25519PublicKey, Map<String, Value>),
}

fn to_bytes(object: &Map<String, Value>) -> Result<Vec<u8>, MachineError> {
    serde_json::to_vec(object).map_err(|e| MachineError::Internal(e.to_string()))
}

fn internal(e: impl std::fmt::Display) -> MachineError {
    MachineError::Internal(e.to_string())
}

/// The signature failures of a signature upload answer.
pub(super) fn signature_failures(response: &upload_signatures::v3::Response) -> Vec<(OwnedUserId, String)> {
    response.failures.iter().flat_map(|(user, keys)| keys.keys().map(move |k| (user.clone(), k.clone()))).collect()
}

/// `object` stripped of its signatures and unsigned data, ready to be signed for upload.
fn unsigned_copy(object: &Map<String, Value>) -> Map<String, Value> {
    let mut copy = object.clone();
    copy.remove("signatures");
    copy.remove("unsigned");
    copy
}

impl<B: Backend> OlmMachine<B> {
    fn private_cross_signing_keys(&self) -> Result<PrivateCrossSigningKeys, MachineError> {
        Ok(self
            .store
            .private_cross_signing_keys()?
            .map(|r| PrivateCrossSigningKeys::from_record(&r))
            .unwrap_or_default())
    }

    fn stored_identity(&self, user: &UserId) -> Result<Option<StoredIdentity>, MachineError> {
        Ok(self.store.identity(&user_to_store(user))?.and_then(StoredIdentity::from_record))
    }

    /// Creates the own cross-signing identity (or, with `reset == false`, publishes the held
    /// one again): three keys from the machine's generator, saved before this returns, and
    /// the requests that publish them. With `reset == false` and another identity already
    /// published, nothing is created ([`MachineError::CrossSigningIdentityExists`]): import its
    /// keys ([`OlmMachine::import_cross_signing_keys`]) or reset. A reset replaces the held
    /// private keys at once, even if the upload is then never authorised.
    pub fn bootstrap_cross_signing(&mut self, reset: bool) -> Result<CrossSigningBootstrap, MachineError> {
        let mut step = self.begin();
        let held = self.private_cross_signing_keys()?;
        let published = self.stored_identity(&self.user_id)?;
        let complete = [KeyUsage::Master, KeyUsage::SelfSigning, KeyUsage::UserSigning]
            .iter()
            .all(|u| held.public_key(*u).is_some());
        let keys = if !reset && complete {
            held
        } else {
            if !reset && published.as_ref().is_some_and(|p| held.public_key(KeyUsage::Master) != Some(p.master)) {
                return Err(MachineError::CrossSigningIdentityExists);
            }
            let keys = PrivateCrossSigningKeys::generate(self.env.rng());
            step.changes.private_cross_signing_keys = Some(keys.to_record());
            keys
        };
        let master_key = keys.public_key(KeyUsage::Master).ok_or_else(|| internal("no master key"))?;
        let ssk_pair = keys.get(KeyUsage::SelfSigning).ok_or_else(|| internal("no self-signing key"))?;
        let [master, self_signing, user_signing] = keys.public_objects(&self.user_id).map_err(internal)?;
        let (Some(mut master), Some(self_signing), Some(user_signing)) = (master, self_signing, user_signing) else {
            return Err(internal("incomplete cross-signing keys"));
        };
        // The device vouches for the master key it created.
        sign_json(&step.state.own.account, self.user_id.as_str(), self.device_id.as_str(), &mut master)
            .map_err(internal)?;
        let identity = IdentityRecord {
            user_id: user_to_store(&self.user_id),
            master_key: to_bytes(&master)?,
            self_signing_key: to_bytes(&self_signing)?,
            user_signing_key: Some(to_bytes(&user_signing)?),
            verified: true,
            previously_verified: true,
            pinned_master_key: Some(master_key),
        };
        let mut request = upload_signing_keys::v3::Request::new();
        request.master_key = Some(own_device::raw(master)?);
        request.self_signing_key = Some(own_device::raw(self_signing)?);
        request.user_signing_key = Some(own_device::raw(user_signing)?);
        let signing_keys_upload =
            OutgoingRequest { request_id: self.new_request_id(), request: Request::SigningKeysUpload(request) };
        // A new bootstrap replaces an unanswered one (its two unlisted requests).
        step.state.pending.retain(|p| match p.purpose {
            Purpose::SigningKeysUpload(_) => false,
            Purpose::SignatureUpload => p.listed,
            _ => true,
        });
        step.state.pending.push(Pending {
            request: Arc::new(signing_keys_upload.clone()),
            purpose: Purpose::SigningKeysUpload(Box::new(identity)),
            listed: false,
        });

        let mut device_keys = unsigned_copy(&self.device_keys()?);
        cross_signing::sign_with(ssk_pair, &self.user_id, &mut device_keys).map_err(internal)?;
        let signature_upload = self.queue_signature_upload(
            &mut step,
            self.user_id.clone(),
            vec![Signed::Device(self.device_id.clone(), device_keys)],
            false,
        )?;
        let keys_upload = if step.state.own.device_keys_uploaded {
            None
        } else {
            self.queue_keys_upload(&mut step)?;
            step.state
                .pending
                .iter()
                .find(|p| matches!(p.purpose, Purpose::KeysUpload(_)))
                .map(|p| OutgoingRequest::clone(&p.request))
        };
        self.commit(step)?;
        Ok(CrossSigningBootstrap { keys_upload, signing_keys_upload, signature_upload })
    }

    /// The answer to a bootstrap's signing keys upload: the own identity is what was uploaded,
    /// trusted; the own user is queried again to confirm it.
    pub(super) fn signing_keys_published(&mut self, step: &mut Step, identity: IdentityRecord) {
        step.changes.identities.push(identity);
        step.changes.tracked_users.push(TrackedUser { user_id: user_to_store(&self.user_id), dirty: true });
        step.state.tracker.mark_dirty(&self.user_id);
    }

    /// Queues a `/keys/signatures/upload` of `objects` of `user` (each signed already).
    fn queue_signature_upload(
        &mut self,
        step: &mut Step,
        user: OwnedUserId,
        objects: Vec<Signed>,
        listed: bool,
    ) -> Result<OutgoingRequest, MachineError> {
        let mut keys = upload_signatures::v3::SignedKeys::new();
        for object in objects {
            match object {
                Signed::Device(device_id, object) => keys.add_device_keys(device_id, own_device::raw(object)?),
                Signed::CrossSigningKey(key, object) => {
                    keys.add_cross_signing_keys(key.to_base64().into(), own_device::raw(object)?)
                }
            }
        }
        let request = upload_signatures::v3::Request::new(BTreeMap::from([(user, keys)]));
        let request = OutgoingRequest { request_id: self.new_request_id(), request: Request::SignatureUpload(request) };
        step.state.pending.push(Pending {
            request: Arc::new(request.clone()),
            purpose: Purpose::SignatureUpload,
            listed,
        });
        Ok(request)
    }

    /// Which private cross-signing keys are held, and whether they are the published ones.
    pub fn cross_signing_status(&self) -> Result<CrossSigningStatus, MachineError> {
        let keys = self.private_cross_signing_keys()?;
        let published = self.stored_identity(&self.user_id)?;
        let matches = |usage: KeyUsage, published: Option<Ed25519PublicKey>| {
            keys.public_key(usage).is_some_and(|k| published == Some(k))
        };
        Ok(CrossSigningStatus {
            has_master: keys.public_key(KeyUsage::Master).is_some(),
            has_self_signing: keys.public_key(KeyUsage::SelfSigning).is_some(),
            has_user_signing: keys.public_key(KeyUsage::UserSigning).is_some(),
            published: published.is_some(),
            master_matches: matches(KeyUsage::Master, published.as_ref().map(|p| p.master)),
            self_signing_matches: matches(KeyUsage::SelfSigning, published.as_ref().map(|p| p.self_signing)),
            user_signing_matches: matches(KeyUsage::UserSigning, published.as_ref().and_then(|p| p.user_signing)),
        })
    }

    /// The held private cross-signing keys, as base64 seeds (for secret storage or another
    /// own device).
    pub fn export_cross_signing_keys(&self) -> Result<CrossSigningKeyExport, MachineError> {
        Ok(self.private_cross_signing_keys()?.export())
    }

    /// Imports private cross-signing keys (from secret storage or another own device). Each
    /// key must be the published key of its role (query the own user first); keys not given
    /// stay as they were. A master key makes the own identity trusted.
    pub fn import_cross_signing_keys(
        &mut self,
        export: &CrossSigningKeyExport,
    ) -> Result<CrossSigningStatus, MachineError> {
        let mut step = self.begin();
        let published = self
            .stored_identity(&self.user_id)?
            .ok_or(MachineError::CrossSigningImport(CrossSigningImportError::NoPublishedIdentity))?;
        let mut keys = self.private_cross_signing_keys()?;
        let given = [
            (KeyUsage::Master, &export.master_key, Some(published.master)),
            (KeyUsage::SelfSigning, &export.self_signing_key, Some(published.self_signing)),
            (KeyUsage::UserSigning, &export.user_signing_key, published.user_signing),
        ];
        let mut imported = false;
        for (usage, seed, expected) in given {
            let Some(seed) = seed else { continue };
            let pair = cross_signing::decode_seed(usage, seed).map_err(MachineError::CrossSigningImport)?;
            if Some(pair.public_key()) != expected {
                return Err(MachineError::CrossSigningImport(CrossSigningImportError::MismatchedPublicKey(usage)));
            }
            match usage {
                KeyUsage::Master => keys.master = Some(pair),
                KeyUsage::SelfSigning => keys.self_signing = Some(pair),
                KeyUsage::UserSigning => keys.user_signing = Some(pair),
            }
            imported = true;
        }
        if !imported {
            return Err(MachineError::CrossSigningImport(CrossSigningImportError::Empty));
        }
        if export.master_key.is_some() && !published.record.previously_verified {
            step.changes.identities.push(IdentityRecord { previously_verified: true, ..published.record.clone() });
        }
        step.changes.private_cross_signing_keys = Some(keys.to_record());
        self.commit(step)?;
        self.cross_signing_status()
    }

    /// A user's cross-signing identity and its state (own user included).
    pub fn user_identity(&self, user_id: &UserId) -> Result<Option<UserIdentity>, MachineError> {
        Trust::load(&self.store, &self.user_id)?.user_identity(&self.store, user_id)
    }

    /// How far a stored device (or this device) is trusted (`None`: unknown device).
    pub fn device_trust(&self, user_id: &UserId, device_id: &DeviceId) -> Result<Option<DeviceTrust>, MachineError> {
        if user_id == self.user_id && device_id == self.device_id {
            let owner_identity = Trust::load(&self.store, &self.user_id)?.state(&self.store, user_id)?;
            return Ok(Some(DeviceTrust {
                local_trust: LocalTrust::Verified,
                cross_signed: false,
                owner_identity,
                own_device: true,
            }));
        }
        let Some(record) = self.store.device(&user_to_store(user_id), &device_to_store(device_id))? else {
            return Ok(None);
        };
        let mut trust = None;
        self.compute_device_trust(&mut trust, &record).map(Some)
    }

    /// Whether a stored device is verified ([`DeviceTrust::is_verified`]).
    pub fn is_device_verified(&self, user_id: &UserId, device_id: &DeviceId) -> Result<bool, MachineError> {
        Ok(self.device_trust(user_id, device_id)?.is_some_and(|t| t.is_verified()))
    }

    fn compute_device_trust(
        &self,
        trust: &mut Option<Trust>,
        record: &DeviceRecord,
    ) -> Result<DeviceTrust, MachineError> {
        let user = user_from_store(&record.user_id)?;
        let own_device = user == self.user_id && record.device_id.as_str() == self.device_id.as_str();
        let trust = match trust {
            Some(t) => t,
            None => trust.insert(Trust::load(&self.store, &self.user_id)?),
        };
        trust.device_trust(&self.store, &user, &record.device_keys, record.local_trust, own_device)
    }

    /// A device's trust, from the cache when its inputs have not changed since.
    pub(super) fn device_trust_cached(
        &mut self,
        trust: &mut Option<Trust>,
        device: &Device,
    ) -> Result<DeviceTrust, MachineError> {
        let key: DeviceKey = (device.user_id.clone(), device.device_id.clone());
        if let Some(cached) = self.trust_cache.get(&key) {
            return Ok(*cached);
        }
        let verdict = self.compute_device_trust_of(trust, device)?;
        self.trust_cache.insert(key, verdict);
        Ok(verdict)
    }

    /// A device's trust, computed (its stored keys read again for the signatures).
    pub(super) fn compute_device_trust_of(
        &self,
        trust: &mut Option<Trust>,
        device: &Device,
    ) -> Result<DeviceTrust, MachineError> {
        match self.store.device(&user_to_store(&device.user_id), &device_to_store(&device.device_id))? {
            Some(record) => self.compute_device_trust(trust, &record),
            None => Ok(DeviceTrust {
                local_trust: device.local_trust,
                cross_signed: false,
                owner_identity: None,
                own_device: false,
            }),
        }
    }

    /// Drops the cached trust verdicts a committed change set may have changed.
    pub(super) fn forget_trust(&mut self, changes: &Changes) {
        if self.trust_cache.is_empty() {
            return;
        }
        if changes.private_cross_signing_keys.is_some()
            || changes.identities.iter().any(|i| i.user_id.as_str() == self.user_id.as_str())
        {
            self.trust_cache.clear();
            return;
        }
        for identity in &changes.identities {
            self.trust_cache.retain(|(user, _), _| user.as_str() != identity.user_id.as_str());
        }
        for device in &changes.devices {
            self.trust_cache.retain(|(user, id), _| {
                user.as_str() != device.user_id.as_str() || id.as_str() != device.device_id.as_str()
            });
        }
    }

    /// Refuses to verify a user who has a device whose id is one of their cross-signing
    /// public keys (device ids and cross-signing key ids share the `ed25519:` namespace: such
    /// a device could be taken for the key, or the key for the device).
    fn check_no_device_id_collision(&self, user: &UserId, identity: &StoredIdentity) -> Result<(), MachineError> {
        let keys: Vec<String> = [Some(identity.master), Some(identity.self_signing), identity.user_signing]
            .into_iter()
            .flatten()
            .map(|k| k.to_base64())
            .collect();
        for device in self.store.devices(&user_to_store(user))? {
            if keys.iter().any(|k| k == device.device_id.as_str()) {
                return Err(MachineError::DeviceIdCollidesWithCrossSigningKey {
                    user: user.to_string(),
                    device: device.device_id.as_str().to_owned(),
                });
            }
        }
        Ok(())
    }

    /// Marks `user_id`'s identity verified, once the user verified its master key out of band
    /// (SAS, QR): call it at the end of a verification, with the master key the verification
    /// fixed at its start. A master key that is no longer the stored one is refused
    /// ([`MachineError::MasterKeyMismatch`]), as is a user with a device whose id equals one of
    /// their cross-signing keys.
    ///
    /// Returns the signature upload to send (it is also listed by
    /// [`OlmMachine::outgoing_requests`]: send it once): for another user, the own
    /// user-signing key over their master key; for the own user, this device over the own
    /// master key. `None` when the key to sign with is not held (the verification still holds
    /// on this device).
    pub fn verify_identity(
        &mut self,
        user_id: &UserId,
        master_key: &Ed25519PublicKey,
    ) -> Result<Option<OutgoingRequest>, MachineError> {
        let mut step = self.begin();
        let request = self.verify_identity_in(&mut step, user_id, master_key)?;
        self.commit(step)?;
        Ok(request)
    }

    /// [`OlmMachine::verify_identity`] within a step (a verification's last one).
    pub(super) fn verify_identity_in(
        &mut self,
        step: &mut Step,
        user_id: &UserId,
        master_key: &Ed25519PublicKey,
    ) -> Result<Option<OutgoingRequest>, MachineError> {
        let identity = self
            .stored_identity(user_id)?
            .ok_or_else(|| MachineError::InvalidArgument(format!("no cross-signing identity for {user_id}")))?;
        if identity.master != *master_key {
            return Err(MachineError::MasterKeyMismatch { user: user_id.to_string() });
        }
        self.check_no_device_id_collision(user_id, &identity)?;
        step.changes.identities.push(IdentityRecord {
            verified: true,
            previously_verified: true,
            pinned_master_key: Some(identity.master),
            ..identity.record.clone()
        });
        let mut master = unsigned_copy(&identity.master_object);
        let signed = if user_id == self.user_id {
            sign_json(&step.state.own.account, self.user_id.as_str(), self.device_id.as_str(), &mut master)
                .map_err(internal)?;
            true
        } else if let Some(usk) = self.private_cross_signing_keys()?.get(KeyUsage::UserSigning) {
            cross_signing::sign_with(usk, &self.user_id, &mut master).map_err(internal)?;
            true
        } else {
            false
        };
        let request = if signed {
            let objects = vec![Signed::CrossSigningKey(identity.master, master)];
            Some(self.queue_signature_upload(step, user_id.to_owned(), objects, true)?)
        } else {
            None
        };
        Ok(request)
    }

    /// Marks a device verified, once the user verified its Ed25519 key out of band (SAS, QR):
    /// call it at the end of a verification, with the key the verification fixed at its
    /// start (another key is refused: [`MachineError::DeviceKeyMismatch`]). Sets the local
    /// trust to [`LocalTrust::Verified`]; for an own device, also signs it with the own
    /// self-signing key and returns that signature upload (also listed by
    /// [`OlmMachine::outgoing_requests`]: send it once). `None` for other users' devices
    /// (devices are cross-signed by their owner only) or without the self-signing key.
    pub fn verify_device(
        &mut self,
        user_id: &UserId,
        device_id: &DeviceId,
        ed25519_key: &Ed25519PublicKey,
    ) -> Result<Option<OutgoingRequest>, MachineError> {
        let mut step = self.begin();
        let request = self.verify_device_in(&mut step, user_id, device_id, ed25519_key)?;
        self.commit(step)?;
        Ok(request)
    }

    /// [`OlmMachine::verify_device`] within a step (a verification's last one).
    pub(super) fn verify_device_in(
        &mut self,
        step: &mut Step,
        user_id: &UserId,
        device_id: &DeviceId,
        ed25519_key: &Ed25519PublicKey,
    ) -> Result<Option<OutgoingRequest>, MachineError> {
        let mut record = self
            .store
            .device(&user_to_store(user_id), &device_to_store(device_id))?
            .ok_or_else(|| MachineError::InvalidArgument(format!("unknown device {user_id} {device_id}")))?;
        if record.ed25519_key != Some(*ed25519_key) {
            return Err(MachineError::DeviceKeyMismatch { user: user_id.to_string(), device: device_id.to_string() });
        }
        let object: Map<String, Value> = serde_json::from_slice(&record.device_keys).map_err(internal)?;
        record.local_trust = LocalTrust::Verified;
        step.changes.devices.push(record);
        let ssk = self.private_cross_signing_keys()?.self_signing;
        let request = match (user_id == self.user_id, ssk) {
            (true, Some(ssk)) => {
                let mut object = unsigned_copy(&object);
                cross_signing::sign_with(&ssk, &self.user_id, &mut object).map_err(internal)?;
                let objects = vec![Signed::Device(device_id.to_owned(), object)];
                Some(self.queue_signature_upload(step, self.user_id.clone(), objects, true)?)
            }
            _ => None,
        };
        Ok(request)
    }

    /// Queues again the signature uploads a verification (or [`OlmMachine::verify_identity`],
    /// [`OlmMachine::verify_device`]) made before a restart that may never have reached the
    /// homeserver: the trust was committed with the verification, the upload only queued in
    /// memory. Queued: every verified identity whose stored master key lacks our signature
    /// (the user-signing key's for another user, this device's for our own), and every own
    /// verified device without our self-signing key's. Stored keys come from `/keys/query`,
    /// so a signature already uploaded but not yet queried back is sent a second time, which
    /// the homeserver accepts as the same signature. Runs when the machine opens.
    pub(super) fn resume_signature_uploads(&mut self) -> Result<(), MachineError> {
        let keys = self.private_cross_signing_keys()?;
        let user_signing = keys.public_key(KeyUsage::UserSigning);
        let self_signing = keys.public_key(KeyUsage::SelfSigning);
        let this_device = self.state.own.account.identity_keys().ed25519;
        let this_device_key_id = format!("ed25519:{}", self.device_id);
        // Without the user-signing key only the own identity can lack a signature of ours:
        // the other users' records are not read at all (a machine opens often).
        let records = match user_signing {
            Some(_) => self.store.all_identities()?,
            None => self.store.identity(&user_to_store(&self.user_id))?.into_iter().collect(),
        };
        let mut identities = Vec::new();
        for record in records {
            if !record.verified {
                continue;
            }
            let Some(identity) = StoredIdentity::from_record(record) else { continue };
            let user = user_from_store(&identity.record.user_id)?;
            let signed = if user == self.user_id {
                verify_json(&identity.master_object, self.user_id.as_str(), &this_device_key_id, &this_device).is_ok()
            } else {
                user_signing.is_none_or(|usk| master_signed_by(&identity.master_object, &self.user_id, &usk))
            };
            if !signed {
                identities.push((user, identity.master));
            }
        }
        let mut devices = Vec::new();
        if let Some(ssk) = self_signing {
            for record in self.store.devices(&user_to_store(&self.user_id))? {
                if record.local_trust != LocalTrust::Verified || record.device_id.as_str() == self.device_id.as_str() {
                    continue;
                }
                let Some(device) = Device::from_record(&record).filter(|d| !d.deleted) else { continue };
                let Ok(object) = serde_json::from_slice::<Map<String, Value>>(&record.device_keys) else { continue };
                if !device_is_cross_signed(&object, &self.user_id, &ssk) {
                    devices.push((device.device_id, device.ed25519_key));
                }
            }
        }
        if identities.is_empty() && devices.is_empty() {
            return Ok(());
        }
        let mut step = self.begin();
        for (user, master) in identities {
            match self.verify_identity_in(&mut step, &user, &master) {
                Ok(_)
                | Err(
                    MachineError::MasterKeyMismatch { .. }
                    | MachineError::DeviceIdCollidesWithCrossSigningKey { .. }
                    | MachineError::InvalidArgument(_),
                ) => {}
                Err(e) => return Err(e),
            }
        }
        let own = self.user_id.clone();
        for (device_id, key) in devices {
            match self.verify_device_in(&mut step, &own, &device_id, &key) {
                Ok(_) | Err(MachineError::DeviceKeyMismatch { .. } | MachineError::InvalidArgument(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.commit(step)
    }

    /// Removes the requirement that `user_id`'s identity be verified: a verification
    /// violation is acknowledged, the current master key pinned.
    pub fn withdraw_verification(&mut self, user_id: &UserId) -> Result<(), MachineError> {
        let mut step = self.begin();
        let identity = self
            .stored_identity(user_id)?
            .ok_or_else(|| MachineError::InvalidArgument(format!("no cross-signing identity for {user_id}")))?;
        step.changes.identities.push(IdentityRecord {
            verified: false,
            previously_verified: false,
            pinned_master_key: Some(identity.master),
            ..identity.record
        });
        self.commit(step)
    }

    /// Accepts `user_id`'s current master key (a pin violation acknowledged).
    pub fn pin_current_master_key(&mut self, user_id: &UserId) -> Result<(), MachineError> {
        let mut step = self.begin();
        let identity = self
            .stored_identity(user_id)?
            .ok_or_else(|| MachineError::InvalidArgument(format!("no cross-signing identity for {user_id}")))?;
        step.changes.identities.push(IdentityRecord { pinned_master_key: Some(identity.master), ..identity.record });
        self.commit(step)
    }

    /// Who of the own user signed `object` (signed JSON, e.g. a backup's `auth_data`), among
    /// those the machine trusts: the own master key when the own identity is trusted, or an own
    /// verified device (this one included). `None`: no trusted own signature.
    pub fn trusted_own_signer(&self, object: &Map<String, Value>) -> Result<Option<OwnSigner>, MachineError> {
        let mut trust = Trust::load(&self.store, &self.user_id)?;
        let own = self.user_id.as_str();
        if let Some((master, _)) = trust.own_trusted() {
            if verify_json(object, own, &cross_signing::key_id(&master), &master).is_ok() {
                return Ok(Some(OwnSigner::MasterKey(master)));
            }
        }
        let key_ids: Vec<String> = object
            .get("signatures")
            .and_then(|s| s.get(own))
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for key_id in key_ids {
            let Some(device_id) = key_id.strip_prefix("ed25519:") else { continue };
            if device_id == self.device_id.as_str() {
                if verify_json(object, own, &key_id, &self.identity_keys().ed25519).is_ok() {
                    return Ok(Some(OwnSigner::Device(self.device_id.clone())));
                }
                continue;
            }
            let Some(record) =
                self.store.device(&user_to_store(&self.user_id), &ferrolm_store::DeviceId::new(device_id))?
            else {
                continue;
            };
            let (Some(key), false) = (record.ed25519_key, record.deleted) else { continue };
            let verified = {
                let mut slot = Some(trust);
                let verdict = self.compute_device_trust(&mut slot, &record)?;
                trust = slot.ok_or_else(|| internal("trust"))?;
                verdict.is_verified()
            };
            if verified && verify_json(object, own, &key_id, &key).is_ok() {
                return Ok(Some(OwnSigner::Device(OwnedDeviceId::from(device_id))));
            }
        }
        Ok(None)
    }
}
