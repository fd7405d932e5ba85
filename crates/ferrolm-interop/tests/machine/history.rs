//! The history-sharing flag of room keys (`shared_history` in `m.room_key`, Matrix v1.19;
//! MSC3061), both ways.

use ferrolm_machine::EncryptionSettings;
use matrix_sdk_crypto::EncryptionSettings as MscSettings;

use crate::common::{World, fe_read, fe_share};
use crate::msc::block_on;

#[test]
fn ferrolm_keeps_the_shared_history_flag_of_an_msc_room_key() {
    // msc's default settings (history visibility `shared`) mark its keys shared; it writes the
    // flag as `m.shared_history` (ruma's name in 0.16, not the spec's `shared_history`).
    let mut world = World::new();
    let members = world.members();
    let requests = world.msc.share(&mut world.hs, &world.room, &members, MscSettings::default());
    assert_eq!(requests.len(), 1);
    let (outcome, _) = fe_read(&mut world.hs, &mut world.fe.machine, &world.room);
    let [ferrolm_machine::RoomKeyOutcome::Accepted(info)] = outcome.room_keys.as_slice() else { panic!("{outcome:?}") };
    let record = world
        .fe
        .machine
        .store()
        .inbound_group_session(&ferrolm_store::RoomId::from(world.room.as_str()), &info.session_id)
        .unwrap()
        .unwrap();
    let own =
        block_on(world.msc.machine.store().get_inbound_group_session(&world.room, &info.session_id)).unwrap().unwrap();
    assert!(own.shared_history(), "msc marked its own key shared");
    assert!(record.shared_history, "ferrolm read msc's shared-history flag");
}

#[test]
fn msc_does_not_read_the_spec_shared_history_flag_of_a_ferrolm_room_key() {
    let mut world = World::new();
    let members = world.members();
    let settings = EncryptionSettings { shared_history: true, ..Default::default() };
    let shared = fe_share(&mut world.hs, &mut world.fe.machine, &world.room, &members, settings);
    let synced = world.msc.sync(&mut world.hs);
    assert_eq!(synced.room_keys.len(), 1);
    let session = block_on(world.msc.machine.store().get_inbound_group_session(&world.room, &shared.session_id))
        .unwrap()
        .unwrap();
    // matrix-sdk-crypto 0.18 reads the flag only as `m.shared_history` or
    // `org.matrix.msc3061.shared_history`, not as the spec's `shared_history` (the ruma
    // errata of ruma#2600): it sees ferrolm's shared key as not shared. An msc bug; ferrolm
    // writes the spec's name.
    assert!(!session.shared_history());
}
