//! The machine's store, with a read cache in front of it.
//!
//! The machine owns its store: every write goes through [`CachedStore::save_changes`], which
//! commits the change set and only then applies it to the cache, so the cache always holds
//! committed state (a failed commit leaves it as it was, like the store). Reads that a step
//! repeats for every device or event (a user's devices, the Olm sessions with a device, a room
//! key, a seen message index, the tracked users) are answered from memory after their first
//! read; every other read goes to the store ([`CachedStore`] dereferences to it).
//!
//! Each map is bounded: past its limit it is emptied and filled again from the store, so the
//! memory stays bounded and the answers stay those of the store.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use ferrolm::types::Curve25519PublicKey;
use ferrolm_store::{
    Backend, Changes, DeviceId, DeviceRecord, InboundGroupSessionRecord, OlmSessionRecord, OutboundShare, RoomId,
    Store, TrackedUser, UserId,
};

use crate::devices::Device;

/// Users whose device lists are kept.
const MAX_USERS: usize = 100_000;
/// Devices whose Olm sessions are kept.
const MAX_SESSION_LISTS: usize = 100_000;
/// Room keys kept.
const MAX_ROOM_KEYS: usize = 4_096;
/// Seen message indices kept.
const MAX_SEEN: usize = 16_384;
/// Rooms whose current outbound session's shares are kept.
const MAX_SHARED_ROOMS: usize = 256;

/// The shares of one outbound session, by (user, device).
type Shares = BTreeMap<(UserId, DeviceId), OutboundShare>;

/// A stored device and its parsed form (`None`: a record the machine did not write).
#[derive(Debug, Clone)]
struct CachedDevice {
    record: DeviceRecord,
    parsed: Option<Device>,
}

#[derive(Debug, Default)]
struct Maps {
    devices: HashMap<UserId, Vec<CachedDevice>>,
    olm_sessions: HashMap<Curve25519PublicKey, Vec<OlmSessionRecord>>,
    room_keys: HashMap<(RoomId, String), Option<InboundGroupSessionRecord>>,
    seen: HashMap<(String, u32), Option<String>>,
    tracked_users: Option<BTreeMap<UserId, bool>>,
    /// Per room: one outbound session's id and its shares.
    shares: HashMap<RoomId, (String, Shares)>,
}

/// The machine's store and its read cache (see the [module documentation](self)).
pub(crate) struct CachedStore<B: Backend> {
    store: Store<B>,
    maps: RefCell<Maps>,
}

type Result<T> = ferrolm_store::Result<T>;

fn bounded<K, V>(map: &mut HashMap<K, V>, limit: usize) {
    if map.len() >= limit {
        map.clear();
    }
}

impl<B: Backend> CachedStore<B> {
    /// Puts a cache in front of `store`.
    pub(crate) fn new(store: Store<B>) -> Self {
        Self { store, maps: RefCell::new(Maps::default()) }
    }

    /// The store, without the cache.
    pub(crate) fn into_inner(self) -> Store<B> {
        self.store
    }

    /// Commits `changes`, then applies them to the cache.
    pub(crate) fn save_changes(&mut self, changes: &Changes) -> Result<u64> {
        let generation = self.store.save_changes(changes)?;
        self.maps.get_mut().apply(changes);
        Ok(generation)
    }

    fn with_devices<T>(&self, user_id: &UserId, f: impl FnOnce(&[CachedDevice]) -> T) -> Result<T> {
        let mut maps = self.maps.borrow_mut();
        if !maps.devices.contains_key(user_id) {
            let records = self.store.devices(user_id)?;
            bounded(&mut maps.devices, MAX_USERS);
            let mut cached: Vec<CachedDevice> = records
                .into_iter()
                .map(|record| CachedDevice { parsed: Device::from_record(&record), record })
                .collect();
            // One order whether read now or kept since: by device id.
            cached.sort_by(|a, b| a.record.device_id.cmp(&b.record.device_id));
            maps.devices.insert(user_id.clone(), cached);
        }
        Ok(f(maps.devices.get(user_id).map(Vec::as_slice).unwrap_or_default()))
    }

    /// Every device of a user (deleted ones too), as [`Store::devices`].
    pub(crate) fn devices(&self, user_id: &UserId) -> Result<Vec<DeviceRecord>> {
        self.with_devices(user_id, |d| d.iter().map(|d| d.record.clone()).collect())
    }

    /// One device, as [`Store::device`].
    pub(crate) fn device(&self, user_id: &UserId, device_id: &DeviceId) -> Result<Option<DeviceRecord>> {
        self.with_devices(user_id, |d| d.iter().find(|d| d.record.device_id == *device_id).map(|d| d.record.clone()))
    }

    /// A user's devices the machine stored, parsed (deleted ones too).
    pub(crate) fn known_devices(&self, user_id: &UserId) -> Result<Vec<Device>> {
        self.with_devices(user_id, |d| d.iter().filter_map(|d| d.parsed.clone()).collect())
    }

    /// One device the machine stored, parsed.
    pub(crate) fn known_device(&self, user_id: &UserId, device_id: &DeviceId) -> Result<Option<Device>> {
        self.with_devices(user_id, |d| {
            d.iter().find(|d| d.record.device_id == *device_id).and_then(|d| d.parsed.clone())
        })
    }

    /// The device of `user_id` whose Curve25519 identity key is `key`, parsed.
    pub(crate) fn known_device_by_curve25519_key(
        &self,
        user_id: &UserId,
        key: &Curve25519PublicKey,
    ) -> Result<Option<Device>> {
        self.with_devices(user_id, |d| {
            d.iter().find(|d| d.record.curve25519_key.as_ref() == Some(key)).and_then(|d| d.parsed.clone())
        })
    }

    /// The Olm sessions with the device of `sender_key`, as [`Store::olm_sessions`].
    pub(crate) fn olm_sessions(&self, sender_key: &Curve25519PublicKey) -> Result<Vec<OlmSessionRecord>> {
        let mut maps = self.maps.borrow_mut();
        if let Some(list) = maps.olm_sessions.get(sender_key) {
            return Ok(list.clone());
        }
        let mut list = self.store.olm_sessions(sender_key)?;
        // One order whether read now or kept since: by session id.
        list.sort_by_cached_key(OlmSessionRecord::session_id);
        bounded(&mut maps.olm_sessions, MAX_SESSION_LISTS);
        maps.olm_sessions.insert(*sender_key, list.clone());
        Ok(list)
    }

    /// Whether there is an Olm session with the device of `sender_key`.
    pub(crate) fn has_olm_session(&self, sender_key: &Curve25519PublicKey) -> Result<bool> {
        {
            let maps = self.maps.borrow();
            if let Some(list) = maps.olm_sessions.get(sender_key) {
                return Ok(!list.is_empty());
            }
        }
        Ok(!self.olm_sessions(sender_key)?.is_empty())
    }

    /// One room key, as [`Store::inbound_group_session`].
    pub(crate) fn inbound_group_session(
        &self,
        room_id: &RoomId,
        session_id: &str,
    ) -> Result<Option<InboundGroupSessionRecord>> {
        let mut maps = self.maps.borrow_mut();
        let key = (room_id.clone(), session_id.to_owned());
        if let Some(found) = maps.room_keys.get(&key) {
            return Ok(found.clone());
        }
        let found = self.store.inbound_group_session(room_id, session_id)?;
        bounded(&mut maps.room_keys, MAX_ROOM_KEYS);
        maps.room_keys.insert(key, found.clone());
        Ok(found)
    }

    /// The event a message index was first seen in, as [`Store::seen_message`].
    pub(crate) fn seen_message(&self, session_id: &str, message_index: u32) -> Result<Option<String>> {
        let mut maps = self.maps.borrow_mut();
        let key = (session_id.to_owned(), message_index);
        if let Some(found) = maps.seen.get(&key) {
            return Ok(found.clone());
        }
        let found = self.store.seen_message(session_id, message_index)?;
        bounded(&mut maps.seen, MAX_SEEN);
        maps.seen.insert(key, found.clone());
        Ok(found)
    }

    /// Every share of a room's outbound session, as [`Store::outbound_shares`] (ordered by
    /// user and device).
    pub(crate) fn outbound_shares(&self, room_id: &RoomId, session_id: &str) -> Result<Vec<OutboundShare>> {
        let mut maps = self.maps.borrow_mut();
        if let Some((id, shares)) = maps.shares.get(room_id) {
            if id == session_id {
                return Ok(shares.values().cloned().collect());
            }
        }
        let shares: Shares = self
            .store
            .outbound_shares(room_id, session_id)?
            .into_iter()
            .map(|s| ((s.user_id.clone(), s.device_id.clone()), s))
            .collect();
        let list = shares.values().cloned().collect();
        bounded(&mut maps.shares, MAX_SHARED_ROOMS);
        maps.shares.insert(room_id.clone(), (session_id.to_owned(), shares));
        Ok(list)
    }

    /// The tracked users, as [`Store::tracked_users`].
    pub(crate) fn tracked_users(&self) -> Result<Vec<TrackedUser>> {
        let mut maps = self.maps.borrow_mut();
        if maps.tracked_users.is_none() {
            let users = self.store.tracked_users()?.into_iter().map(|t| (t.user_id, t.dirty)).collect();
            maps.tracked_users = Some(users);
        }
        Ok(maps
            .tracked_users
            .iter()
            .flatten()
            .map(|(user_id, dirty)| TrackedUser { user_id: user_id.clone(), dirty: *dirty })
            .collect())
    }
}

impl Maps {
    /// What a committed change set does to the rows the cache holds: deletions first, then
    /// the saved records, as the store applies them.
    fn apply(&mut self, changes: &Changes) {
        let deletions = &changes.deletions;
        for (key, id) in &deletions.olm_sessions {
            if let Some(list) = self.olm_sessions.get_mut(key) {
                list.retain(|s| s.session_id() != *id);
            }
        }
        for (room, id) in &deletions.inbound_group_sessions {
            self.room_keys.insert((room.clone(), id.clone()), None);
        }
        for room in &deletions.outbound_group_sessions {
            self.shares.remove(room);
        }
        for session in &changes.outbound_group_sessions {
            // A new session for the room: the store forgets the old one's shares.
            if self.shares.get(&session.room_id).is_some_and(|(id, _)| *id != session.session_id()) {
                self.shares.remove(&session.room_id);
            }
        }
        for share in &changes.outbound_shares {
            if let Some((id, shares)) = self.shares.get_mut(&share.room_id) {
                if *id == share.session_id {
                    shares.insert((share.user_id.clone(), share.device_id.clone()), share.clone());
                }
            }
        }
        for (user, device) in &deletions.devices {
            if let Some(list) = self.devices.get_mut(user) {
                list.retain(|d| d.record.device_id != *device);
            }
        }
        if let Some(tracked) = self.tracked_users.as_mut() {
            for user in &deletions.tracked_users {
                tracked.remove(user);
            }
            for t in &changes.tracked_users {
                tracked.insert(t.user_id.clone(), t.dirty);
            }
        }
        for record in &changes.olm_sessions {
            if let Some(list) = self.olm_sessions.get_mut(&record.sender_key) {
                let id = record.session_id();
                match list.binary_search_by(|s| s.session_id().cmp(&id)) {
                    Ok(i) => {
                        if let Some(old) = list.get_mut(i) {
                            *old = record.clone();
                        }
                    }
                    Err(i) => list.insert(i, record.clone()),
                }
            }
        }
        for record in &changes.inbound_group_sessions {
            let key = (record.room_id.clone(), record.session_id());
            if self.room_keys.contains_key(&key) {
                self.room_keys.insert(key, Some(record.clone()));
            }
        }
        for record in &changes.devices {
            if let Some(list) = self.devices.get_mut(&record.user_id) {
                let cached = CachedDevice { parsed: Device::from_record(record), record: record.clone() };
                match list.binary_search_by(|d| d.record.device_id.cmp(&record.device_id)) {
                    Ok(i) => {
                        if let Some(old) = list.get_mut(i) {
                            *old = cached;
                        }
                    }
                    Err(i) => list.insert(i, cached),
                }
            }
        }
        for seen in &changes.seen_messages {
            let key = (seen.session_id.clone(), seen.message_index);
            if self.seen.contains_key(&key) {
                self.seen.insert(key, Some(seen.event_id.clone()));
            }
        }
    }
}

impl<B: Backend> std::ops::Deref for CachedStore<B> {
    type Target = Store<B>;

    fn deref(&self) -> &Store<B> {
        &self.store
    }
}
