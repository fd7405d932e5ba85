//! `m.sas.v1` across ferrolm and vodozemac.

use ferrolm::sas::{EstablishedSas, Sas, SasError, SasMac};
use ferrolm::types::Curve25519PublicKey;
use vodozemac::sas as vs;

/// How many exchanges the property-style tests run (each is fresh randomness on both sides).
const EXCHANGES: usize = 48;

/// The SAS info string of the specification, for a verification between Alice (ferrolm, the
/// side that started) and Bob (vodozemac).
fn sas_info(ferrolm_key: &str, vodozemac_key: &str, transaction: &str) -> String {
    format!(
        "MATRIX_KEY_VERIFICATION_SAS|@alice:example.org|ALICEDEVICE|{ferrolm_key}|@bob:example.org|BOBDEVICE|{vodozemac_key}|{transaction}"
    )
}

/// The MAC info string of the specification, for keys Alice's device sends Bob.
fn mac_info(transaction: &str, what: &str) -> String {
    format!("MATRIX_KEY_VERIFICATION_MAC@alice:example.orgALICEDEVICE@bob:example.orgBOBDEVICE{transaction}{what}")
}

/// One exchange: each side's public key crosses as base64, as in `m.key.verification.key`.
fn exchange() -> (EstablishedSas, vs::EstablishedSas) {
    let ours = Sas::new();
    let theirs = vs::Sas::new();
    let our_key = ours.public_key().to_base64();
    let their_key = theirs.public_key().to_base64();
    let ours = ours.diffie_hellman(Curve25519PublicKey::from_base64(&their_key).unwrap()).unwrap();
    let theirs = theirs.diffie_hellman_with_raw(&our_key).unwrap();
    assert_eq!(ours.our_public_key().to_base64(), theirs.their_public_key().to_base64());
    assert_eq!(ours.their_public_key().to_base64(), theirs.our_public_key().to_base64());
    (ours, theirs)
}

fn infos(ours: &EstablishedSas) -> Vec<String> {
    let (a, b) = (ours.our_public_key().to_base64(), ours.their_public_key().to_base64());
    vec![
        sas_info(&a, &b, "txn-1234"),
        sas_info(&b, &a, "txn-1234"),
        String::new(),
        "MATRIX_KEY_VERIFICATION_SAS|ünïcödé|🔑".to_owned(),
        "x".repeat(1000),
    ]
}

#[test]
fn sas_bytes_emoji_and_decimals_agree() {
    for _ in 0..EXCHANGES {
        let (ours, theirs) = exchange();
        for info in infos(&ours) {
            let (a, b) = (ours.bytes(&info), theirs.bytes(&info));
            assert_eq!(a.as_bytes(), b.as_bytes(), "{info:?}");
            assert_eq!(a.emoji_indices(), b.emoji_indices(), "{:02x?}", a.as_bytes());
            assert_eq!(a.decimals(), b.decimals(), "{:02x?}", a.as_bytes());
            for index in a.emoji_indices() {
                assert!(index < 64);
            }
            let (d1, d2, d3) = a.decimals();
            for d in [d1, d2, d3] {
                assert!((1000..=9191).contains(&d));
            }
        }
        // Different info strings, different bytes (the order of the two sides matters).
        let infos = infos(&ours);
        assert_ne!(ours.bytes(&infos[0]).as_bytes(), ours.bytes(&infos[1]).as_bytes());
    }
}

#[test]
fn generated_bytes_agree_for_every_length() {
    let (ours, theirs) = exchange();
    for info in infos(&ours) {
        for length in [0, 1, 5, 6, 7, 31, 32, 33, 64, 65, 1000, 255 * 32] {
            let a = ours.generate_bytes(&info, length).unwrap();
            let b = theirs.bytes_raw(&info, length).unwrap();
            assert_eq!(a.as_slice(), b.as_slice(), "length {length}");
        }
        // One byte past HKDF's limit: refused by both.
        assert!(ours.generate_bytes(&info, 255 * 32 + 1).is_none());
        assert!(theirs.bytes_raw(&info, 255 * 32 + 1).is_err());
        // The 6 SAS bytes are the first 6 of the stream.
        assert_eq!(&ours.generate_bytes(&info, 32).unwrap()[..6], theirs.bytes(&info).as_bytes());
    }
}

#[test]
fn v2_macs_are_identical_and_verify_across() {
    for _ in 0..EXCHANGES / 4 {
        let (ours, theirs) = exchange();
        let device_key = "ed25519:ALICEDEVICE";
        let key = vodozemac::Ed25519SecretKey::new().public_key().to_base64();
        for (input, info) in [
            (key.as_str(), mac_info("txn", device_key)),
            ("ed25519:ALICEDEVICE,ed25519:MASTERKEYID", mac_info("txn", "KEY_IDS")),
            ("", String::new()),
            ("ünïcödé", "🔑".to_owned()),
        ] {
            let a = ours.calculate_mac(input, &info);
            let b = theirs.calculate_mac(input, &info);
            assert_eq!(a.as_bytes().as_slice(), b.as_bytes());
            assert_eq!(a.to_base64(), b.to_base64());
            assert_eq!(a.to_base64().len(), 43, "unpadded base64 of 32 bytes");

            // ferrolm's MAC, as sent in `m.key.verification.mac`, verifies in vodozemac...
            theirs.verify_mac(input, &info, &vs::Mac::from_base64(&a.to_base64()).unwrap()).unwrap();
            assert!(theirs.verify_mac("other input", &info, &vs::Mac::from_base64(&a.to_base64()).unwrap()).is_err());
            // ...and vodozemac's in ferrolm.
            let received = SasMac::from_base64(&b.to_base64()).unwrap();
            ours.verify_mac(input, &info, &received).unwrap();
            assert_eq!(ours.verify_mac(input, "other info", &received), Err(SasError::InvalidMac));
            assert_eq!(ours.verify_mac("other input", &info, &received), Err(SasError::InvalidMac));
        }
        // A MAC from another exchange is refused by both.
        let (stranger, _) = exchange();
        let foreign = stranger.calculate_mac("input", "info");
        assert_eq!(ours.verify_mac("input", "info", &foreign), Err(SasError::InvalidMac));
        assert!(theirs.verify_mac("input", "info", &vs::Mac::from_slice(foreign.as_bytes())).is_err());
    }
}

#[test]
fn legacy_invalid_base64_macs_are_byte_identical() {
    for _ in 0..EXCHANGES {
        let (ours, theirs) = exchange();
        for (input, info) in [("ed25519:ALICEDEVICE", mac_info("t", "ed25519:ALICEDEVICE")), ("", String::new())] {
            let a = ours.calculate_mac_invalid_base64(input, &info);
            let b = theirs.calculate_mac_invalid_base64(input, &info);
            assert_eq!(a, b);
            assert_eq!(a.len(), 43);
            ours.verify_mac_invalid_base64(input, &info, &b).unwrap();
            assert_eq!(ours.verify_mac_invalid_base64("x", &info, &b), Err(SasError::InvalidMac));
            // Only the first 4 characters encode genuine MAC bytes, as with libolm.
            let v2 = ours.calculate_mac(input, &info).to_base64();
            assert_eq!(a[..4], v2[..4]);
        }
    }
}

/// The u-coordinates of small order (libsodium's list): 0, 1, the two points of order 8,
/// and p - 1, p, p + 1 (non-canonical encodings); each also with the unused top bit set.
fn small_order_points() -> Vec<[u8; 32]> {
    let mut points = vec![[0u8; 32], {
        let mut one = [0u8; 32];
        one[0] = 1;
        one
    }];
    points.push([
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09,
        0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00,
    ]);
    points.push([
        0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef, 0x5b, 0x04, 0x44,
        0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57,
    ]);
    for low in [0xec, 0xed, 0xee] {
        let mut p = [0xff; 32];
        p[0] = low;
        p[31] = 0x7f;
        points.push(p);
    }
    let with_top_bit: Vec<[u8; 32]> = points
        .iter()
        .map(|p| {
            let mut q = *p;
            q[31] |= 0x80;
            q
        })
        .collect();
    points.extend(with_top_bit);
    points
}

#[test]
fn non_contributory_keys_are_refused_by_both() {
    for point in small_order_points() {
        let as_base64 = ferrolm::types::base64_encode(point);
        assert_eq!(
            Sas::new().diffie_hellman(Curve25519PublicKey::from_base64(&as_base64).unwrap()).unwrap_err(),
            SasError::NonContributoryKey,
            "{point:02x?}"
        );
        assert!(
            matches!(vs::Sas::new().diffie_hellman_with_raw(&as_base64), Err(vodozemac::KeyError::NonContributoryKey)),
            "{point:02x?}"
        );
    }
    // An ordinary key is accepted by both (the list is not over-broad).
    let ordinary = vs::Sas::new().public_key().to_base64();
    assert!(Sas::new().diffie_hellman(Curve25519PublicKey::from_base64(&ordinary).unwrap()).is_ok());
}
