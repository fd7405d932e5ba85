//! Cross-signing identities and trust ("Cross-signing"): which master keys the machine
//! accepted for each user, which it trusts, and what that says about devices.
//!
//! **The chains.** Own master → own self-signing key → own devices. Own master → own
//! user-signing key → their master → their self-signing key → their devices. Every link is an
//! Ed25519 signature over canonical JSON, checked when the keys are served
//! ([`crate::cross_signing`]) or when trust is asked for ([`device_is_cross_signed`],
//! [`master_signed_by`]).
//!
//! **The own identity is trusted** ([`own_identity_trusted`]) when the machine holds the
//! private master key of the published master key, or the user verified that master key
//! (e.g. by verifying another own device that trusts it). **Another user's identity is
//! verified** ([`IdentityState::Verified`]) when the own identity is trusted and the own
//! user-signing key signed their master key, or when the user verified it on this device.
//!
//! **A device is verified** ([`DeviceTrust::is_verified`]) when the user marked it verified
//! ([`LocalTrust::Verified`]), or when it is signed by its owner's self-signing key and its
//! owner's identity is verified (the own identity trusted, for own devices). A blacklisted
//! device is never verified.
//!
//! **Changes are never silent.** A master key is pinned the first time it is seen (trust on
//! first use). When the server serves another master key for a user, the keys query step
//! reports [`IdentityEvent::MasterKeyChanged`] every time, and the identity's state says what
//! the app must do: [`IdentityState::VerificationViolation`] when the user had verified the
//! identity (the spec's "MUST notify": nothing should be sent before the user sees it;
//! resolve by verifying again or [`OlmMachine::withdraw_verification`]),
//! [`IdentityState::PinViolation`] when the identity was only pinned (resolve with
//! [`OlmMachine::pin_current_master_key`]).
//!
//! ```
//! use ferrolm_machine::{IdentityState, SharingStrategy};
//! use ferrolm_test_homeserver::Homeserver;
//! use ferrolm_test_homeserver::driver::{TestDevice, bootstrap_cross_signing};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut hs = Homeserver::new();
//! let mut alice = TestDevice::new(&mut hs, "@alice:example.org", "ALICE", 1, 0)?;
//! let mut bob = TestDevice::new(&mut hs, "@bob:example.org", "BOB", 2, 0)?;
//! for d in [&mut alice, &mut bob] {
//!     d.settle(&mut hs, 1)?;
//!     // Keys upload, signing keys upload (with user-interactive auth), signature upload.
//!     bootstrap_cross_signing(&mut hs, &mut d.machine, false)?;
//! }
//! let bob_id = bob.machine.user_id().to_owned();
//! alice.machine.update_tracked_users(&[bob_id.clone()])?;
//! alice.settle(&mut hs, 1)?;
//!
//! // First seen: pinned. Bob's device is signed by his self-signing key, not yet verified.
//! let identity = alice.machine.user_identity(&bob_id)?.expect("Bob has an identity");
//! assert_eq!(identity.state, IdentityState::Pinned);
//! assert!(!alice.machine.is_device_verified(&bob_id, bob.machine.device_id())?);
//!
//! // After a SAS or QR verification of Bob's master key: the chain holds.
//! let upload = alice.machine.verify_identity(&bob_id, &identity.master_key)?;
//! assert!(upload.is_some(), "Alice's user-signing key signed Bob's master key");
//! assert_eq!(alice.machine.user_identity(&bob_id)?.map(|i| i.state), Some(IdentityState::Verified));
//! assert!(alice.machine.is_device_verified(&bob_id, bob.machine.device_id())?);
//! # let _ = SharingStrategy::IdentityBased;
//! # Ok(())
//! # }
//! ```
//!
//! [`OlmMachine::withdraw_verification`]: crate::OlmMachine::withdraw_verification
//! [`OlmMachine::pin_current_master_key`]: crate::OlmMachine::pin_current_master_key

use std::collections::BTreeMap;

use ferrolm::types::Ed25519PublicKey;
use ferrolm_store::{Backend, Changes, IdentityRecord, LocalTrust, Store};
use ruma::api::client::keys::get_keys;
use ruma::{OwnedUserId, UserId};
use serde_json::{Map, Value};

use crate::adapt::user_to_store;
use crate::cross_signing::{
    CrossSigningKeyRejection, KeyUsage, PrivateCrossSigningKeys, key_id, single_ed25519_key, validate_master_key,
    validate_subkey,
};
use crate::error::MachineError;
use crate::signing::verify_json;

/// How far an identity (a user's master key) is trusted, and whether it changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdentityState {
    /// Verified: by the chain of signatures from the own trusted master key, or by the user on
    /// this device. For the own identity: trusted (private master key held, or verified).
    Verified,
    /// Not verified; the master key is the one pinned when first seen (trust on first use).
    Pinned,
    /// Never verified, and the master key changed since it was pinned: show it to the user,
    /// then [`pin_current_master_key`](crate::OlmMachine::pin_current_master_key).
    PinViolation,
    /// Verified before, and not any more (the master key changed): a verification violation.
    /// The app must show it before anything is sent to the user; resolve by verifying the new
    /// identity or [`withdraw_verification`](crate::OlmMachine::withdraw_verification).
    VerificationViolation,
}

/// A user's cross-signing identity as the machine knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserIdentity {
    /// The user.
    pub user_id: OwnedUserId,
    /// The current (served) master key.
    pub master_key: Ed25519PublicKey,
    /// The self-signing key.
    pub self_signing_key: Ed25519PublicKey,
    /// The user-signing key (the own identity only).
    pub user_signing_key: Option<Ed25519PublicKey>,
    /// The master key accepted by the user (pinned on first use, or after a change).
    pub pinned_master_key: Ed25519PublicKey,
    /// Whether the identity was verified at some point.
    pub previously_verified: bool,
    /// The state.
    pub state: IdentityState,
}

/// Something the app should know about a user's identity, from a keys query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityEvent {
    /// A first identity for the user, pinned.
    New {
        /// The user.
        user_id: OwnedUserId,
        /// Its master key.
        master_key: Ed25519PublicKey,
    },
    /// The user's master key changed. Reported every time; `state` says whether it is a
    /// verification violation.
    MasterKeyChanged {
        /// The user.
        user_id: OwnedUserId,
        /// The master key known before.
        previous: Ed25519PublicKey,
        /// The master key served now.
        new: Ed25519PublicKey,
        /// The identity's state after the change.
        state: IdentityState,
    },
    /// The self-signing or user-signing key changed under the same master key.
    SubkeysChanged {
        /// The user.
        user_id: OwnedUserId,
    },
    /// A served cross-signing key was refused; the stored identity (if any) stays.
    Refused {
        /// The user it was served for.
        user_id: OwnedUserId,
        /// The role it was served as.
        usage: KeyUsage,
        /// Why.
        reason: CrossSigningKeyRejection,
    },
}

/// A stored identity, parsed.
#[derive(Debug, Clone)]
pub(crate) struct StoredIdentity {
    pub record: IdentityRecord,
    pub master: Ed25519PublicKey,
    pub master_object: Map<String, Value>,
    pub self_signing: Ed25519PublicKey,
    pub user_signing: Option<Ed25519PublicKey>,
}

fn object_and_key(bytes: &[u8]) -> Option<(Map<String, Value>, Ed25519PublicKey)> {
    let object: Map<String, Value> = serde_json::from_slice(bytes).ok()?;
    let key = single_ed25519_key(&object).ok()?;
    Some((object, key))
}

impl StoredIdentity {
    /// Reads a stored identity (written validated by the machine). A record that does not
    /// parse gives `None`.
    pub(crate) fn from_record(record: IdentityRecord) -> Option<Self> {
        let (master_object, master) = object_and_key(&record.master_key)?;
        let (_, self_signing) = object_and_key(&record.self_signing_key)?;
        let user_signing = match &record.user_signing_key {
            Some(bytes) => Some(object_and_key(bytes)?.1),
            None => None,
        };
        Some(Self { record, master, master_object, self_signing, user_signing })
    }

    /// The pinned master key (the stored one for records from before pinning).
    pub(crate) fn pinned(&self) -> Ed25519PublicKey {
        self.record.pinned_master_key.unwrap_or(self.master)
    }

    /// The public view, in `state`.
    pub(crate) fn view(&self, user_id: OwnedUserId, state: IdentityState) -> UserIdentity {
        UserIdentity {
            user_id,
            master_key: self.master,
            self_signing_key: self.self_signing,
            user_signing_key: self.user_signing,
            pinned_master_key: self.pinned(),
            previously_verified: self.record.previously_verified,
            state,
        }
    }
}

/// Rule: the own identity is trusted when the private master key of its published master key
/// is held, or the user verified that master key. Returns the trusted master and user-signing
/// keys.
pub fn own_identity_trusted(
    own: Option<&StoredIdentityView<'_>>,
    private: &PrivateCrossSigningKeys,
) -> Option<(Ed25519PublicKey, Option<Ed25519PublicKey>)> {
    let own = own?;
    let held = private.public_key(KeyUsage::Master) == Some(*own.master);
    (held || own.verified).then_some((*own.master, own.user_signing.copied()))
}

/// The parts of a stored identity the trust rules read.
#[derive(Debug, Clone, Copy)]
pub struct StoredIdentityView<'a> {
    /// The master key.
    pub master: &'a Ed25519PublicKey,
    /// The user-signing key.
    pub user_signing: Option<&'a Ed25519PublicKey>,
    /// Whether the user verified this master key.
    pub verified: bool,
}

impl StoredIdentity {
    pub(crate) fn parts(&self) -> StoredIdentityView<'_> {
        StoredIdentityView {
            master: &self.master,
            user_signing: self.user_signing.as_ref(),
            verified: self.record.verified,
        }
    }
}

/// Rule (a link of the chain): `signer_user`'s key `signer` signed `object`.
pub fn master_signed_by(object: &Map<String, Value>, signer_user: &UserId, signer: &Ed25519PublicKey) -> bool {
    verify_json(object, signer_user.as_str(), &key_id(signer), signer).is_ok()
}

/// Rule (the last link): a device's keys are signed by its owner's self-signing key.
pub fn device_is_cross_signed(
    device_keys: &Map<String, Value>,
    owner: &UserId,
    self_signing: &Ed25519PublicKey,
) -> bool {
    verify_json(device_keys, owner.as_str(), &key_id(self_signing), self_signing).is_ok()
}

/// Rule: the state of an identity. `verified_now`: whether the chain (or the own trust, for
/// the own identity) holds for its current master key, or the user verified it here.
pub fn identity_state(
    verified_now: bool,
    previously_verified: bool,
    pinned: &Ed25519PublicKey,
    master: &Ed25519PublicKey,
) -> IdentityState {
    if verified_now {
        IdentityState::Verified
    } else if previously_verified {
        IdentityState::VerificationViolation
    } else if pinned != master {
        IdentityState::PinViolation
    } else {
        IdentityState::Pinned
    }
}

/// How far a device is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceTrust {
    /// The user's own decision.
    pub local_trust: LocalTrust,
    /// Whether its owner's self-signing key signed it (not checked for the machine's own
    /// device, which is always verified).
    pub cross_signed: bool,
    /// Its owner's identity state, if the owner has an identity.
    pub owner_identity: Option<IdentityState>,
    /// Whether it is the machine's own device.
    pub own_device: bool,
}

impl DeviceTrust {
    /// Rule: verified when the user verified it, or when it is cross-signed and its owner's
    /// identity is verified; never when blacklisted. The own device is verified.
    pub fn is_verified(&self) -> bool {
        if self.own_device {
            return true;
        }
        match self.local_trust {
            LocalTrust::Blacklisted => false,
            LocalTrust::Verified => true,
            LocalTrust::Unset | LocalTrust::Ignored => {
                self.cross_signed && self.owner_identity == Some(IdentityState::Verified)
            }
        }
    }
}

/// A step's view of trust: the own identity, the identities read so far.
pub(crate) struct Trust {
    own_user: OwnedUserId,
    /// The own trusted master and user-signing keys, if the own identity is trusted.
    own_trusted: Option<(Ed25519PublicKey, Option<Ed25519PublicKey>)>,
    identities: BTreeMap<OwnedUserId, Option<StoredIdentity>>,
    /// The identity states computed so far (one chain check per user, not per device).
    states: BTreeMap<OwnedUserId, Option<IdentityState>>,
}

impl Trust {
    /// Reads the own identity and private keys.
    pub(crate) fn load<B: Backend>(store: &Store<B>, own_user: &UserId) -> Result<Self, MachineError> {
        let private =
            store.private_cross_signing_keys()?.map(|r| PrivateCrossSigningKeys::from_record(&r)).unwrap_or_default();
        let own = store.identity(&user_to_store(own_user))?.and_then(StoredIdentity::from_record);
        let own_trusted = own_identity_trusted(own.as_ref().map(StoredIdentity::parts).as_ref(), &private);
        let mut identities = BTreeMap::new();
        identities.insert(own_user.to_owned(), own);
        Ok(Self { own_user: own_user.to_owned(), own_trusted, identities, states: BTreeMap::new() })
    }

    /// Whether the own identity is trusted.
    pub(crate) fn own_trusted(&self) -> Option<(Ed25519PublicKey, Option<Ed25519PublicKey>)> {
        self.own_trusted
    }

    /// A user's stored identity.
    pub(crate) fn identity<B: Backend>(
        &mut self,
        store: &Store<B>,
        user: &UserId,
    ) -> Result<Option<&StoredIdentity>, MachineError> {
        if !self.identities.contains_key(user) {
            let identity = store.identity(&user_to_store(user))?.and_then(StoredIdentity::from_record);
            self.identities.insert(user.to_owned(), identity);
        }
        Ok(self.identities.get(user).and_then(Option::as_ref))
    }

    /// Whether an identity is verified now (the chain, or the user's verification).
    pub(crate) fn verified_now(&self, user: &UserId, identity: &StoredIdentity) -> bool {
        if user == self.own_user {
            return self.own_trusted.is_some_and(|(master, _)| master == identity.master);
        }
        if identity.record.verified {
            return true;
        }
        match self.own_trusted {
            Some((_, Some(usk))) => master_signed_by(&identity.master_object, &self.own_user, &usk),
            _ => false,
        }
    }

    /// A user's identity state, if they have an identity.
    pub(crate) fn state<B: Backend>(
        &mut self,
        store: &Store<B>,
        user: &UserId,
    ) -> Result<Option<IdentityState>, MachineError> {
        if let Some(state) = self.states.get(user) {
            return Ok(*state);
        }
        self.identity(store, user)?;
        let state = match self.identities.get(user).and_then(Option::as_ref) {
            Some(identity) => {
                let verified = self.verified_now(user, identity);
                Some(identity_state(
                    verified,
                    identity.record.previously_verified,
                    &identity.pinned(),
                    &identity.master,
                ))
            }
            None => None,
        };
        self.states.insert(user.to_owned(), state);
        Ok(state)
    }

    /// The public view of a user's identity.
    pub(crate) fn user_identity<B: Backend>(
        &mut self,
        store: &Store<B>,
        user: &UserId,
    ) -> Result<Option<UserIdentity>, MachineError> {
        let Some(state) = self.state(store, user)? else { return Ok(None) };
        Ok(self.identity(store, user)?.map(|i| i.view(user.to_owned(), state)))
    }

    /// A device's trust, from its stored keys JSON.
    pub(crate) fn device_trust<B: Backend>(
        &mut self,
        store: &Store<B>,
        user: &UserId,
        device_keys: &[u8],
        local_trust: LocalTrust,
        own_device: bool,
    ) -> Result<DeviceTrust, MachineError> {
        let owner_identity = self.state(store, user)?;
        let cross_signed = match self.identity(store, user)? {
            Some(identity) => serde_json::from_slice::<Map<String, Value>>(device_keys)
                .is_ok_and(|object| device_is_cross_signed(&object, user, &identity.self_signing)),
            None => false,
        };
        Ok(DeviceTrust { local_trust, cross_signed, owner_identity, own_device })
    }
}

/// Applies the cross-signing keys of a `/keys/query` answer for `queried` users: validates
/// them, stores the identities (pinning first master keys, keeping the pin across changes,
/// remembering chain verifications), and reports every new identity, change and refusal.
/// The own user's keys are applied first, so the own trust is current for the others.
pub(crate) fn process_keys_query<B: Backend>(
    store: &Store<B>,
    own_user: &UserId,
    queried: &[OwnedUserId],
    response: &get_keys::v3::Response,
    changes: &mut Changes,
) -> Result<Vec<IdentityEvent>, MachineError> {
    let mut events = Vec::new();
    let mut order: Vec<&OwnedUserId> = queried.iter().filter(|u| *u == own_user).collect();
    order.extend(queried.iter().filter(|u| *u != own_user));
    let private =
        store.private_cross_signing_keys()?.map(|r| PrivateCrossSigningKeys::from_record(&r)).unwrap_or_default();
    let mut own_trusted = {
        let own = store.identity(&user_to_store(own_user))?.and_then(StoredIdentity::from_record);
        own_identity_trusted(own.as_ref().map(StoredIdentity::parts).as_ref(), &private)
    };
    for user in order {
        let Some(master_raw) = response.master_keys.get(user) else { continue };
        let stored = store.identity(&user_to_store(user))?.and_then(StoredIdentity::from_record);
        // Whether the stored identity is verified now: a change of a verified identity is a
        // verification violation even if the verification was never noted as "previous".
        let stored_verified = stored.as_ref().is_some_and(|s| {
            s.record.verified
                || if user == own_user {
                    private.public_key(KeyUsage::Master) == Some(s.master)
                } else {
                    matches!(own_trusted, Some((_, Some(usk))) if master_signed_by(&s.master_object, own_user, &usk))
                }
        });
        // Unchanged keys (the same bytes as stored): nothing to validate again.
        let served_user_signing = if user == own_user { response.user_signing_keys.get(user) } else { None };
        if let Some(s) = &stored {
            let same = s.record.master_key == master_raw.json().get().as_bytes()
                && response.self_signing_keys.get(user).map(|r| r.json().get().as_bytes())
                    == Some(s.record.self_signing_key.as_slice())
                && served_user_signing.map(|r| r.json().get().as_bytes()) == s.record.user_signing_key.as_deref();
            if same {
                if stored_verified && !s.record.previously_verified {
                    changes.identities.push(IdentityRecord { previously_verified: true, ..s.record.clone() });
                }
                continue;
            }
        }
        let refused = |usage, reason| IdentityEvent::Refused { user_id: user.clone(), usage, reason };
        let master = match validate_master_key(user, master_raw.json().get()) {
            Ok(m) => m,
            Err(reason) => {
                events.push(refused(KeyUsage::Master, reason));
                continue;
            }
        };
        let self_signing = match response.self_signing_keys.get(user) {
            Some(raw) => validate_subkey(user, KeyUsage::SelfSigning, raw.json().get(), &master.key),
            None => Err(CrossSigningKeyRejection::Malformed("no self-signing key served".into())),
        };
        let self_signing = match self_signing {
            Ok(k) => k,
            Err(reason) => {
                events.push(refused(KeyUsage::SelfSigning, reason));
                continue;
            }
        };
        let user_signing = match response.user_signing_keys.get(user) {
            Some(raw) if user == own_user => {
                match validate_subkey(user, KeyUsage::UserSigning, raw.json().get(), &master.key) {
                    Ok(k) => Some(k),
                    Err(reason) => {
                        events.push(refused(KeyUsage::UserSigning, reason));
                        continue;
                    }
                }
            }
            Some(_) => {
                events.push(refused(KeyUsage::UserSigning, CrossSigningKeyRejection::ForeignUserSigningKey));
                None
            }
            None => None,
        };
        let master_changed = stored.as_ref().is_some_and(|s| s.master != master.key);
        let verified_flag = stored.as_ref().is_some_and(|s| s.record.verified && !master_changed);
        // The chain, for the new keys.
        let chain_verified = if user == own_user {
            private.public_key(KeyUsage::Master) == Some(master.key) || verified_flag
        } else {
            verified_flag
                || matches!(own_trusted, Some((_, Some(usk))) if master_signed_by(&master.object, own_user, &usk))
        };
        let previously_verified =
            stored.as_ref().is_some_and(|s| s.record.previously_verified) || stored_verified || chain_verified;
        let pinned = match &stored {
            Some(s) => s.pinned(),
            None => master.key,
        };
        let record = IdentityRecord {
            user_id: user_to_store(user),
            // As served, so that an unchanged answer is recognised by its bytes.
            master_key: master_raw.json().get().as_bytes().to_vec(),
            self_signing_key: response
                .self_signing_keys
                .get(user)
                .map(|r| r.json().get().as_bytes().to_vec())
                .unwrap_or_default(),
            user_signing_key: user_signing
                .as_ref()
                .and(served_user_signing)
                .map(|r| r.json().get().as_bytes().to_vec()),
            verified: verified_flag,
            previously_verified,
            pinned_master_key: Some(pinned),
        };
        match &stored {
            None => events.push(IdentityEvent::New { user_id: user.clone(), master_key: master.key }),
            Some(s) if master_changed => events.push(IdentityEvent::MasterKeyChanged {
                user_id: user.clone(),
                previous: s.master,
                new: master.key,
                state: identity_state(chain_verified, previously_verified, &pinned, &master.key),
            }),
            Some(s) if s.self_signing != self_signing.key || s.user_signing != user_signing.as_ref().map(|k| k.key) => {
                events.push(IdentityEvent::SubkeysChanged { user_id: user.clone() })
            }
            Some(s) if s.record == record => continue,
            Some(_) => {}
        }
        if user == own_user {
            let own = StoredIdentityView {
                master: &master.key,
                user_signing: user_signing.as_ref().map(|k| &k.key),
                verified: verified_flag,
            };
            own_trusted = own_identity_trusted(Some(&own), &private);
        }
        changes.identities.push(record);
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Ed25519PublicKey {
        ferrolm::types::Ed25519Keypair::from_seed(&[n; 32]).public_key()
    }

    fn store() -> Store<ferrolm_store::MemoryBackend> {
        let kdf = ferrolm_store::KdfParams::new(64, 1, 1).unwrap();
        Store::create(ferrolm_store::MemoryBackend::new(), &ferrolm_store::StoreSecret::key([1; 32]), kdf).unwrap()
    }

    fn raw<T>(object: &Map<String, Value>) -> ruma::serde::Raw<T> {
        ruma::serde::Raw::from_json(serde_json::value::to_raw_value(object).unwrap())
    }

    fn keys_of(user: &UserId, master: &ferrolm::types::Ed25519Keypair) -> [Map<String, Value>; 3] {
        let [s, u] = [2u8, 3].map(|n| ferrolm::types::Ed25519Keypair::from_seed(&[n + 10; 32]));
        let mut out = [
            crate::cross_signing::public_key_object(user, KeyUsage::Master, &master.public_key()),
            crate::cross_signing::public_key_object(user, KeyUsage::SelfSigning, &s.public_key()),
            crate::cross_signing::public_key_object(user, KeyUsage::UserSigning, &u.public_key()),
        ];
        for object in out.iter_mut().skip(1) {
            crate::cross_signing::sign_with(master, user, object).unwrap();
        }
        out
    }

    #[test]
    fn rule_an_identity_needs_a_valid_self_signing_key() {
        let (store, own, bob) = (store(), ruma::user_id!("@a:x"), ruma::user_id!("@bob:x"));
        let master = ferrolm::types::Ed25519Keypair::from_seed(&[1; 32]);
        let [m, _, _] = keys_of(bob, &master);
        let mut response = get_keys::v3::Response::new();
        response.master_keys.insert(bob.to_owned(), raw(&m));
        let mut changes = Changes::default();
        let events = process_keys_query(&store, own, &[bob.to_owned()], &response, &mut changes).unwrap();
        assert!(matches!(
            events.as_slice(),
            [IdentityEvent::Refused {
                usage: KeyUsage::SelfSigning,
                reason: CrossSigningKeyRejection::Malformed(_),
                ..
            }]
        ));
        assert!(changes.identities.is_empty());
    }

    #[test]
    fn rule_a_user_signing_key_of_another_user_is_not_taken() {
        let (store, own, bob) = (store(), ruma::user_id!("@a:x"), ruma::user_id!("@bob:x"));
        let master = ferrolm::types::Ed25519Keypair::from_seed(&[1; 32]);
        let [m, ssk, usk] = keys_of(bob, &master);
        let mut response = get_keys::v3::Response::new();
        response.master_keys.insert(bob.to_owned(), raw(&m));
        response.self_signing_keys.insert(bob.to_owned(), raw(&ssk));
        response.user_signing_keys.insert(bob.to_owned(), raw(&usk));
        let mut changes = Changes::default();
        let events = process_keys_query(&store, own, &[bob.to_owned()], &response, &mut changes).unwrap();
        assert!(events.contains(&IdentityEvent::Refused {
            user_id: bob.to_owned(),
            usage: KeyUsage::UserSigning,
            reason: CrossSigningKeyRejection::ForeignUserSigningKey,
        }));
        assert!(events.contains(&IdentityEvent::New { user_id: bob.to_owned(), master_key: master.public_key() }));
        let [record] = changes.identities.as_slice() else { panic!("{:?}", changes.identities) };
        assert_eq!(record.user_signing_key, None);
        assert_eq!(record.pinned_master_key, Some(master.public_key()), "pinned on first use");
        assert!(!record.verified && !record.previously_verified);
        // A user not asked about is not taken either.
        let mut changes = Changes::default();
        let events = process_keys_query(&store, own, &[], &response, &mut changes).unwrap();
        assert!(events.is_empty() && changes.identities.is_empty());
    }

    #[test]
    fn rule_identity_states() {
        let (a, b) = (key(1), key(2));
        assert_eq!(identity_state(true, true, &a, &b), IdentityState::Verified);
        assert_eq!(identity_state(false, false, &a, &a), IdentityState::Pinned);
        assert_eq!(identity_state(false, false, &a, &b), IdentityState::PinViolation);
        assert_eq!(identity_state(false, true, &a, &b), IdentityState::VerificationViolation);
        assert_eq!(identity_state(false, true, &a, &a), IdentityState::VerificationViolation);
    }

    #[test]
    fn rule_device_verification() {
        let trust = |local_trust, cross_signed, owner_identity| DeviceTrust {
            local_trust,
            cross_signed,
            owner_identity,
            own_device: false,
        };
        use IdentityState::{Pinned, VerificationViolation};
        use LocalTrust::{Blacklisted, Ignored, Unset};
        let id_verified = Some(IdentityState::Verified);
        assert!(trust(LocalTrust::Verified, false, None).is_verified(), "local trust overrides");
        assert!(!trust(Blacklisted, true, id_verified).is_verified(), "blacklisting overrides");
        assert!(trust(Unset, true, id_verified).is_verified());
        assert!(!trust(Unset, false, id_verified).is_verified(), "not cross-signed");
        assert!(!trust(Unset, true, Some(Pinned)).is_verified(), "owner not verified");
        assert!(!trust(Ignored, true, Some(VerificationViolation)).is_verified());
        assert!(DeviceTrust { own_device: true, ..trust(Unset, false, None) }.is_verified());
    }

    #[test]
    fn rule_own_identity_trusted_by_private_key_or_verification() {
        let mut rng = rand_core::OsRng;
        let private = PrivateCrossSigningKeys::generate(&mut rng);
        let master = private.public_key(KeyUsage::Master).unwrap();
        let usk = key(9);
        let view = |master, verified| StoredIdentityView { master, user_signing: Some(&usk), verified };
        assert_eq!(own_identity_trusted(Some(&view(&master, false)), &private), Some((master, Some(usk))));
        let other = key(3);
        assert_eq!(own_identity_trusted(Some(&view(&other, false)), &private), None, "another master key");
        assert_eq!(
            own_identity_trusted(Some(&view(&other, true)), &PrivateCrossSigningKeys::default()),
            Some((other, Some(usk)))
        );
        assert_eq!(own_identity_trusted(None, &private), None);
    }
}
