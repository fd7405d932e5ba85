//! Entry points for the fuzz target `store_value`: arbitrary bytes, sealed under a fixed key
//! for a row of each table, go through that table's record decoder; the same bytes are fed to
//! the value opener as if they were a sealed value. Nothing may panic, and whatever decodes
//! must encode back to the same bytes (a record of an older format: to a canonical encoding in
//! the current one).

use crate::cipher::{StoreCipher, associated_data};
use crate::codec::Writer;
use crate::records::{
    self, AccountRecord, BackupRecord, Ctx, DeviceRecord, IdentityRecord, InboundGroupSessionRecord, OlmSessionRecord,
    OutboundGroupSessionRecord, OutboundShare, OutgoingRequest, OutgoingToDevice, PrivateCrossSigningKeys,
    ReceivedSecret, Record, RoomSettings, SeenMessage, SyncToken, TrackedUser, WithheldNotice,
};

/// What one input did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// How many decoders accepted the input behind a valid seal.
    pub accepted: usize,
    /// How many of those gave different bytes when the record was encoded again (must be 0).
    pub round_trip_mismatches: usize,
    /// How many times the bytes were accepted as a sealed value themselves (a forgery; must be 0).
    pub forgeries: usize,
}

const ROW: &[u8] = b"fuzzed row";

fn one<R: Record>(cipher: &StoreCipher, data: &[u8], report: &mut Report) {
    // Behind a valid seal: the decoder sees the bytes as authenticated plaintext.
    if let Ok(opened) = cipher.seal(R::TABLE, ROW, data).and_then(|sealed| cipher.open(R::TABLE, ROW, &sealed))
        && let Ok(record) = records::decode_plaintext::<R>(cipher, ROW, &opened)
    {
        report.accepted += 1;
        // Records holding a core pickle re-encode with a fresh nonce; the others are canonical.
        if !R::HOLDS_PICKLE {
            let ad = associated_data(R::TABLE, ROW);
            let ctx = Ctx { cipher, table: R::TABLE, associated_data: &ad };
            let encode = |record: &R| {
                let mut w = Writer::with_capacity(data.len());
                record.encode(&mut w, &ctx);
                w.into_inner()
            };
            let encoded = encode(&record);
            // A record of the current format must give back its bytes. One of an older format
            // (its first byte) is read into the current record and written in the current
            // format: that encoding must then be canonical itself.
            let canonical = encoded.as_slice() == data
                || (encoded.first() != data.first()
                    && records::decode_plaintext::<R>(cipher, ROW, &encoded)
                        .is_ok_and(|again| encode(&again) == encoded));
            if !canonical {
                report.round_trip_mismatches += 1;
            }
        }
    }
    // As a sealed value itself: a forgery, to be refused.
    if records::open_record::<R>(cipher, ROW, data).is_ok() {
        report.forgeries += 1;
    }
}

/// Feeds `data` to every record decoder behind a valid seal, and to the value opener. The
/// first byte also picks one decoder that gets the rest of the input.
pub fn decode_values(data: &[u8]) -> Report {
    static CIPHER: std::sync::OnceLock<StoreCipher> = std::sync::OnceLock::new();
    let cipher = CIPHER.get_or_init(|| StoreCipher::new(&[0x5a; 32]));
    let all: [fn(&StoreCipher, &[u8], &mut Report); 17] = [
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
        one::<OutgoingToDevice>,
    ];
    let mut report = Report::default();
    if let Some((&selector, body)) = data.split_first()
        && let Some(decoder) = all.get(usize::from(selector) % all.len())
    {
        decoder(cipher, body, &mut report);
    }
    for decoder in all {
        decoder(cipher, data, &mut report);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_plaintexts_decode_and_round_trip() {
        // Selector 8 (tracked users) ‖ version 1 ‖ "@a:x" ‖ dirty.
        let report = decode_values(&[8, 1, 4, b'@', b'a', b':', b'x', 1]);
        assert_eq!(report, Report { accepted: 1, round_trip_mismatches: 0, forgeries: 0 });
        // A sync token record is accepted by its own decoder when given whole.
        let report = decode_values(&[1, 2, b'h', b'i']);
        assert_eq!(report.accepted, 1, "the sync-token decoder reads the whole input");
        assert_eq!(report.round_trip_mismatches, 0);
    }

    #[test]
    fn an_older_record_format_decodes_to_a_canonical_current_one() {
        // Selector 5 (devices) ‖ a format-1 device record (schema 2: no `m.no_olm` flag):
        // "@a:x", "D", no keys, unset trust, not deleted. It is written back in format 2.
        let v1 = [5, 1, 4, b'@', b'a', b':', b'x', 1, b'D', 0, 0, 0, 0, 0];
        let report = decode_values(&v1);
        assert!(report.accepted >= 1);
        assert_eq!(report.round_trip_mismatches, 0);
        // The input the fuzzer found (a format-1 record read by another table's decoder).
        assert_eq!(decode_values(&[0x01, 0, 0, 0, 0, 0x01, 0]).round_trip_mismatches, 0);
    }

    #[test]
    fn garbage_decodes_to_nothing() {
        for input in [&b""[..], b"\xff\xff\xff", &[0u8; 64], &[1u8; 200]] {
            let report = decode_values(input);
            assert_eq!(report.forgeries, 0);
            assert_eq!(report.round_trip_mismatches, 0);
        }
    }
}
