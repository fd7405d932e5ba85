//! Entry points for the fuzz target `store_value`: arbitrary bytes, sealed under a fixed key
//! for a row of each table, go through that table's record decoder, and the same bytes are
//! fed to the value opener as if they were a sealed value. Nothing may panic.

use crate::cipher::StoreCipher;
use crate::records::{
    self, AccountRecord, BackupRecord, DeviceRecord, IdentityRecord, InboundGroupSessionRecord, OlmSessionRecord,
    OutboundGroupSessionRecord, OutboundShare, OutgoingRequest, PrivateCrossSigningKeys, ReceivedSecret, Record,
    RoomSettings, SeenMessage, SyncToken, TrackedUser, WithheldNotice,
};

fn one<R: Record>(cipher: &StoreCipher, data: &[u8]) -> bool {
    let key = b"fuzzed row";
    // Behind a valid seal: the decoder sees the bytes as authenticated plaintext.
    let accepted = match cipher.seal(R::TABLE, key, data).and_then(|sealed| cipher.open(R::TABLE, key, &sealed)) {
        Ok(opened) => records::decode_plaintext::<R>(cipher, key, &opened).is_ok(),
        Err(_) => false,
    };
    // The whole path too (the row check refuses what decodes: the key is not the record's).
    let _ = cipher.seal(R::TABLE, key, data).map(|sealed| records::open_record::<R>(cipher, key, &sealed));
    // As a sealed value itself: a forgery, refused.
    let _ = records::open_record::<R>(cipher, key, data);
    accepted
}

/// Feeds `data` to every record decoder behind a valid seal, and to the value opener.
/// Returns how many decoders accepted it (so the target can check something).
pub fn decode_values(data: &[u8]) -> usize {
    let cipher = StoreCipher::new(&[0x5a; 32]);
    let selector = data.first().copied().unwrap_or(0);
    let body = data.get(1..).unwrap_or_default();
    // The first byte picks a decoder, so each input exercises one deeply; every decoder also
    // gets the whole input.
    let all: [fn(&StoreCipher, &[u8]) -> bool; 16] = [
        one::<AccountRecord>,
        one::<OlmSessionRecord>,
        one::<InboundGroupSessionRecord>,
        one::<OutboundGroupSessionRecord>,
        one::<OutboundShare>,
        one::<DeviceRecord>,
        one::<IdentityRecord>,
        one::<PrivateCrossSigningKeys>,
        one::<TrackedUser>,
        one::<SyncToken>,
        one::<BackupRecord>,
        one::<ReceivedSecret>,
        one::<OutgoingRequest>,
        one::<WithheldNotice>,
        one::<RoomSettings>,
        one::<SeenMessage>,
    ];
    let mut accepted = 0;
    if let Some(decoder) = all.get(usize::from(selector) % all.len()) {
        accepted += usize::from(decoder(&cipher, body));
    }
    for decoder in all {
        accepted += usize::from(decoder(&cipher, data));
    }
    accepted
}
