//! The ferrolm side of the scenarios, and the meeting of the two machines.

use ferrolm_machine::ruma::events::AnySyncTimelineEvent;
use ferrolm_machine::ruma::serde::Raw;
use ferrolm_machine::ruma::{OwnedDeviceId, OwnedEventId, OwnedRoomId, OwnedUserId, RoomId};
use ferrolm_machine::{
    DecryptedRoomEvent, DecryptedToDeviceEvent, EncryptionSettings, OlmMachine, RoomKeyShare, SyncOutcome,
    ToDeviceOutcome, TrustRequirement, UnableToDecrypt,
};
use ferrolm_store::Backend;
use ferrolm_test_homeserver::Homeserver;
use ferrolm_test_homeserver::driver::{TestDevice, run_requests, send, sync_with_timelines};
use serde_json::{Value, json};

use crate::msc::MscDevice;

pub const FE_USER: &str = "@ferrolm:test.server";
pub const FE_DEVICE: &str = "FERROLM";
pub const MSC_USER: &str = "@msc:test.server";
pub const MSC_DEVICE: &str = "MSCDEVICE";

/// A ferrolm device and a matrix-sdk-crypto device, both on the homeserver with their keys
/// uploaded, in one room, tracking each other and knowing each other's devices.
pub struct World {
    pub hs: Homeserver,
    pub room: OwnedRoomId,
    pub fe: TestDevice,
    pub msc: MscDevice,
}

impl World {
    pub fn new() -> Self {
        let mut hs = Homeserver::new();
        let fe = TestDevice::new(&mut hs, FE_USER, FE_DEVICE, 1, 1_000_000).unwrap();
        let msc = MscDevice::new(&mut hs, MSC_USER, MSC_DEVICE);
        let room = hs.create_room(fe.machine.user_id()).unwrap();
        hs.join(&room, &msc.user_id());
        let mut world = Self { hs, room, fe, msc };
        world.meet();
        world
    }

    /// Both upload their keys, track the room's members and learn each other's devices.
    pub fn meet(&mut self) {
        self.fe.settle(&mut self.hs, 1).unwrap();
        self.msc.settle(&mut self.hs, 1);
        let members = self.members();
        self.fe.machine.update_tracked_users(&members).unwrap();
        self.msc.track(&members);
        self.settle();
    }

    /// Both send their requests and sync, twice (a device that queried before the other
    /// uploaded hears of it in its next sync).
    pub fn settle(&mut self) {
        for _ in 0..2 {
            self.fe.settle(&mut self.hs, 1).unwrap();
            self.msc.settle(&mut self.hs, 1);
        }
    }

    pub fn members(&self) -> Vec<OwnedUserId> {
        self.hs.members(&self.room)
    }
}

pub fn fe_id(fe: &TestDevice) -> (OwnedUserId, OwnedDeviceId) {
    (fe.machine.user_id().to_owned(), fe.machine.device_id().to_owned())
}

/// The ferrolm machine opens Olm sessions with every device of `users` it has none with;
/// returns how many it opened.
pub fn fe_open_sessions<B: Backend>(hs: &mut Homeserver, fe: &mut OlmMachine<B>, users: &[OwnedUserId]) -> usize {
    let Some(claim) = fe.get_missing_sessions(users).unwrap() else { return 0 };
    let outcome = send(hs, fe, &claim).unwrap();
    assert!(outcome.failed_claims.is_empty(), "{:?}", outcome.failed_claims);
    outcome.sessions_created
}

/// The ferrolm machine opens missing sessions, shares the room key with `members`, and sends
/// the to-device requests.
pub fn fe_share<B: Backend>(
    hs: &mut Homeserver,
    fe: &mut OlmMachine<B>,
    room: &RoomId,
    members: &[OwnedUserId],
    settings: EncryptionSettings,
) -> RoomKeyShare {
    fe_open_sessions(hs, fe, members);
    let shared = fe.share_room_key(room, members, settings).unwrap();
    run_requests(hs, fe).unwrap();
    shared
}

/// The ferrolm machine encrypts `m.room.message` with `body` and sends it; returns the event id.
pub fn fe_say<B: Backend>(hs: &mut Homeserver, fe: &mut OlmMachine<B>, room: &RoomId, body: &str) -> OwnedEventId {
    let content = fe.encrypt_room_event(room, "m.room.message", &json!({"msgtype": "m.text", "body": body})).unwrap();
    hs.send_room_event(room, fe.user_id(), "m.room.encrypted", content).unwrap()
}

/// The ferrolm machine syncs; returns the outcome and `room`'s new events.
pub fn fe_read<B: Backend>(
    hs: &mut Homeserver,
    fe: &mut OlmMachine<B>,
    room: &RoomId,
) -> (SyncOutcome, Vec<Raw<AnySyncTimelineEvent>>) {
    let (outcome, mut timelines) = sync_with_timelines(hs, fe).unwrap();
    (outcome, timelines.remove(room).unwrap_or_default())
}

pub fn fe_decrypt<B: Backend>(
    fe: &mut OlmMachine<B>,
    event: &Raw<AnySyncTimelineEvent>,
    room: &RoomId,
) -> Result<DecryptedRoomEvent, UnableToDecrypt> {
    fe.decrypt_room_event(event, room, TrustRequirement::Untrusted).unwrap()
}

pub fn fe_decrypted(outcome: &SyncOutcome) -> Vec<&DecryptedToDeviceEvent> {
    outcome
        .to_device
        .iter()
        .filter_map(|o| match o {
            ToDeviceOutcome::Decrypted(e) => Some(e),
            _ => None,
        })
        .collect()
}

/// The event's id, from its JSON.
pub fn event_id(event: &Raw<AnySyncTimelineEvent>) -> String {
    let value: Value = serde_json::from_str(event.json().get()).unwrap();
    value["event_id"].as_str().unwrap().to_owned()
}

/// The plaintext `content.body` of a decrypted matrix-sdk-crypto room event.
pub fn msc_body(event: &matrix_sdk_common::deserialized_responses::DecryptedRoomEvent) -> String {
    let value: Value = serde_json::from_str(event.event.json().get()).unwrap();
    value["content"]["body"].as_str().unwrap().to_owned()
}
