//! Backup encryption (`m.megolm_backup.v1.curve25519-aes-sha2`), backup key pickles and
//! signing keys across ferrolm and vodozemac.

use aes::cipher::{BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use ferrolm::pickle::PickleError;
use ferrolm::pk::{PkDecryption, PkEncryption, PkError, PkMessage, PkSigning};
use ferrolm::types::{Curve25519PublicKey, Ed25519Signature, base64_decode, base64_encode};
use hmac::Mac as _;
use sha2::Sha256;
use vodozemac::pk_encryption as vp;

/// Plaintexts of the lengths that exercise CBC padding, and one like a backed-up room key.
fn plaintexts() -> Vec<Vec<u8>> {
    let mut plaintexts: Vec<Vec<u8>> =
        [0usize, 1, 15, 16, 17, 32, 1000].iter().map(|&n| (0..n).map(|i| (i * 13 + n) as u8).collect()).collect();
    plaintexts.push(
        br#"{"algorithm":"m.megolm.v1.aes-sha2","sender_key":"abc","session_key":"AQAAAA...","sender_claimed_keys":{}}"#
            .to_vec(),
    );
    plaintexts
}

/// The same backup key on both sides, from ferrolm's secret bytes.
fn key_pair() -> (PkDecryption, vp::PkDecryption) {
    let ours = PkDecryption::new();
    let theirs = vp::PkDecryption::from_key(vodozemac::Curve25519SecretKey::from_slice(&ours.to_bytes()));
    assert_eq!(ours.public_key().to_base64(), theirs.public_key().to_base64());
    (ours, theirs)
}

/// A vodozemac message as the three base64 fields of `session_data`, read by ferrolm.
fn to_ferrolm(message: &vp::Message) -> PkMessage {
    PkMessage::from_base64(
        &base64_encode(&message.ciphertext),
        &base64_encode(&message.mac),
        &message.ephemeral_key.to_base64(),
    )
    .unwrap()
}

/// A ferrolm message as the three base64 fields of `session_data`, read by vodozemac.
fn to_vodozemac(message: &PkMessage) -> vp::Message {
    let (ciphertext, mac, ephemeral_key) = message.to_base64();
    vp::Message::from_base64(&ciphertext, &mac, &ephemeral_key).unwrap()
}

/// libolm's backup MAC, computed here independently of both implementations: the key
/// material is `HKDF-SHA-256(salt = 0, X25519(secret, ephemeral), info = "", 80)`, split
/// AES key (32) ‖ HMAC key (32) ‖ IV (16), and the MAC is the HMAC of an *empty* input,
/// truncated to 8 bytes.
fn expected_mac(recipient: &vp::PkDecryption, ephemeral_key: &vodozemac::Curve25519PublicKey) -> Vec<u8> {
    let shared = recipient.secret_key().diffie_hellman(ephemeral_key).unwrap();
    let mut keys = [0u8; 80];
    hkdf::Hkdf::<Sha256>::new(None, shared.as_bytes()).expand(b"", &mut keys).unwrap();
    let mac = hmac::Hmac::<Sha256>::new_from_slice(&keys[32..64]).unwrap().finalize().into_bytes();
    mac[..8].to_vec()
}

#[test]
fn ferrolm_messages_decrypt_in_vodozemac() {
    let (ours, theirs) = key_pair();
    let recipient = Curve25519PublicKey::from_base64(&theirs.public_key().to_base64()).unwrap();
    let encryption = PkEncryption::from_key(recipient).unwrap();
    for plaintext in plaintexts() {
        let message = encryption.encrypt(&plaintext);
        assert_eq!(message.ciphertext.len(), (plaintext.len() / 16 + 1) * 16, "AES-CBC with PKCS#7");
        let received = to_vodozemac(&message);
        assert_eq!(received.mac, expected_mac(&theirs, &received.ephemeral_key));
        assert_eq!(theirs.decrypt(&received).unwrap(), plaintext);
        assert_eq!(ours.decrypt(&message).unwrap(), plaintext);
    }
}

#[test]
fn vodozemac_messages_decrypt_in_ferrolm() {
    let (ours, theirs) = key_pair();
    let encryption = vp::PkEncryption::from_key(theirs.public_key());
    for plaintext in plaintexts() {
        let message = encryption.encrypt(&plaintext).unwrap();
        assert_eq!(message.mac.len(), 8);
        assert_eq!(message.mac, expected_mac(&theirs, &message.ephemeral_key));
        let received = to_ferrolm(&message);
        assert_eq!(received.mac.as_slice(), message.mac.as_slice());
        assert_eq!(ours.decrypt(&received).unwrap(), plaintext);
        // The parallel decryption of a restore gives the same.
        assert_eq!(ours.decrypt_many(std::slice::from_ref(&received)), vec![Ok(plaintext.clone())]);
    }
    // A whole backup's worth, in parallel, in order.
    let messages: Vec<(Vec<u8>, PkMessage)> = (0..200u32)
        .map(|i| {
            let plaintext = format!("{{\"session\":{i}}}").into_bytes();
            let message = to_ferrolm(&encryption.encrypt(&plaintext).unwrap());
            (plaintext, message)
        })
        .collect();
    let received: Vec<PkMessage> = messages.iter().map(|(_, m)| m.clone()).collect();
    let decrypted = ours.decrypt_many(&received);
    for ((plaintext, _), result) in messages.iter().zip(decrypted) {
        assert_eq!(&result.unwrap(), plaintext);
    }
}

#[test]
fn wrong_keys_fail_the_mac_on_both_sides() {
    let (_, theirs) = key_pair();
    let (other_ours, other_theirs) = key_pair();
    let recipient = Curve25519PublicKey::from_base64(&theirs.public_key().to_base64()).unwrap();

    let ours_to_them = PkEncryption::from_key(recipient).unwrap().encrypt(b"room key");
    assert_eq!(other_ours.decrypt(&ours_to_them), Err(PkError::InvalidMac));
    assert!(matches!(other_theirs.decrypt(&to_vodozemac(&ours_to_them)), Err(vp::Error::Mac(_))));

    let theirs_to_them = to_ferrolm(&vp::PkEncryption::from_key(theirs.public_key()).encrypt(b"room key").unwrap());
    assert_eq!(other_ours.decrypt(&theirs_to_them), Err(PkError::InvalidMac));
    assert!(matches!(other_theirs.decrypt(&to_vodozemac(&theirs_to_them)), Err(vp::Error::Mac(_))));
}

#[test]
fn the_mac_covers_no_ciphertext_on_either_side() {
    // libolm's defect, kept by both: a message whose ciphertext was replaced still passes the
    // MAC; only the padding (if anything) notices.
    let (ours, theirs) = key_pair();
    let encryption = vp::PkEncryption::from_key(theirs.public_key());
    let original = encryption.encrypt(b"the real room key, 32 bytes long").unwrap();
    let forged_ciphertext = encryption.encrypt(b"attacker's choice").unwrap().ciphertext;

    let mut forged = to_ferrolm(&original);
    forged.ciphertext = forged_ciphertext.clone();
    match ours.decrypt(&forged) {
        Err(PkError::InvalidPadding) => {}
        Ok(plaintext) => assert_ne!(plaintext, b"the real room key, 32 bytes long"),
        Err(other) => panic!("the MAC should not notice: {other:?}"),
    }
    let forged = vp::Message { ciphertext: forged_ciphertext, ..original };
    assert!(!matches!(theirs.decrypt(&forged), Err(vp::Error::Mac(_))));
}

#[test]
fn ferrolm_insists_on_an_eight_byte_mac() {
    // vodozemac checks the MAC with `verify_truncated_left`, so it also accepts a prefix of
    // it (even a single byte); ferrolm, like libolm, wants exactly the 8 bytes libolm sends.
    let (ours, theirs) = key_pair();
    let message = vp::PkEncryption::from_key(theirs.public_key()).encrypt(b"room key").unwrap();
    for length in [1, 4, 7] {
        let short = vp::Message {
            ciphertext: message.ciphertext.clone(),
            mac: message.mac[..length].to_vec(),
            ephemeral_key: message.ephemeral_key,
        };
        assert_eq!(theirs.decrypt(&short).unwrap(), b"room key", "vodozemac accepts a {length}-byte MAC");
        let (ciphertext, _, ephemeral_key) = to_ferrolm(&message).to_base64();
        assert_eq!(
            PkMessage::from_base64(&ciphertext, &base64_encode(&message.mac[..length]), &ephemeral_key),
            Err(PkError::InvalidMacLength(length))
        );
    }
    assert_eq!(ours.decrypt(&to_ferrolm(&message)).unwrap(), b"room key");
}

/// Pickle keys of the lengths libolm users have been seen to use.
fn pickle_keys() -> [Vec<u8>; 4] {
    [Vec::new(), b"12345".to_vec(), (0..32).collect(), (0..100).map(|i| (i * 7) as u8).collect()]
}

#[test]
fn libolm_pickles_of_backup_keys_cross_and_are_byte_identical() {
    for pickle_key in pickle_keys() {
        let (ours, theirs) = key_pair();

        // libolm's envelope derives its IV from the pickle key, so identical states under
        // the same pickle key give identical pickles.
        let our_pickle = ours.to_libolm_pickle(&pickle_key);
        let their_pickle = theirs.to_libolm_pickle(&pickle_key).unwrap();
        assert_eq!(our_pickle, their_pickle);

        // ferrolm → vodozemac.
        let restored = vp::PkDecryption::from_libolm_pickle(&our_pickle, &pickle_key).unwrap();
        assert_eq!(*restored.secret_key().to_bytes(), *ours.to_bytes());
        assert_eq!(restored.public_key().to_base64(), ours.public_key().to_base64());
        let message = PkEncryption::from_key(ours.public_key()).unwrap().encrypt(b"after the restore");
        assert_eq!(restored.decrypt(&to_vodozemac(&message)).unwrap(), b"after the restore");

        // vodozemac → ferrolm.
        let restored = PkDecryption::from_libolm_pickle(&their_pickle, &pickle_key).unwrap();
        assert_eq!(*restored.to_bytes(), *theirs.secret_key().to_bytes());
        assert_eq!(restored.public_key().to_base64(), theirs.public_key().to_base64());
        let message = vp::PkEncryption::from_key(theirs.public_key()).encrypt(b"after the restore").unwrap();
        assert_eq!(restored.decrypt(&to_ferrolm(&message)).unwrap(), b"after the restore");

        // The wrong pickle key is refused by both.
        let wrong = [pickle_key.as_slice(), b"!"].concat();
        assert_eq!(PkDecryption::from_libolm_pickle(&their_pickle, &wrong).unwrap_err(), PickleError::Mac);
        assert!(vp::PkDecryption::from_libolm_pickle(&our_pickle, &wrong).is_err());
    }
}

/// A libolm `PkDecryption` pickle sealed here, independently of both implementations:
/// `HKDF-SHA-256(salt = 0, pickle key, "Pickle", 80)` gives the AES-256-CBC key, HMAC key and
/// IV; the output is unpadded base64 of ciphertext ‖ the first 8 bytes of its HMAC. The
/// plaintext is the version (u32, big-endian), the public key, then the secret key.
fn seal_libolm_pk_pickle(version: u32, public: &[u8; 32], secret: &[u8; 32], pickle_key: &[u8]) -> String {
    let mut plaintext = version.to_be_bytes().to_vec();
    plaintext.extend_from_slice(public);
    plaintext.extend_from_slice(secret);
    let mut keys = [0u8; 80];
    hkdf::Hkdf::<Sha256>::new(None, pickle_key).expand(b"Pickle", &mut keys).unwrap();
    let cipher = cbc::Encryptor::<aes::Aes256>::new(keys[..32].into(), keys[64..].into());
    let mut sealed = cipher.encrypt_padded_vec_mut::<Pkcs7>(&plaintext);
    let mac = hmac::Hmac::<Sha256>::new_from_slice(&keys[32..64]).unwrap().chain_update(&sealed).finalize();
    sealed.extend_from_slice(&mac.into_bytes()[..8]);
    base64_encode(sealed)
}

#[test]
fn independently_sealed_pickles_open_in_both() {
    for pickle_key in pickle_keys() {
        let (ours, theirs) = key_pair();
        let pickle = seal_libolm_pk_pickle(1, ours.public_key().as_bytes(), &ours.to_bytes(), &pickle_key);
        assert_eq!(pickle, ours.to_libolm_pickle(&pickle_key), "the envelope as libolm seals it");
        assert_eq!(*PkDecryption::from_libolm_pickle(&pickle, &pickle_key).unwrap().to_bytes(), *ours.to_bytes());
        let restored = vp::PkDecryption::from_libolm_pickle(&pickle, &pickle_key).unwrap();
        assert_eq!(*restored.secret_key().to_bytes(), *theirs.secret_key().to_bytes());

        // A version libolm never wrote is refused by both.
        let pickle = seal_libolm_pk_pickle(2, ours.public_key().as_bytes(), &ours.to_bytes(), &pickle_key);
        assert_eq!(PkDecryption::from_libolm_pickle(&pickle, &pickle_key).unwrap_err(), PickleError::UnknownVersion(2));
        assert!(vp::PkDecryption::from_libolm_pickle(&pickle, &pickle_key).is_err());
        // So is a truncated pickle.
        let pickle = seal_libolm_pk_pickle(1, ours.public_key().as_bytes(), &ours.to_bytes(), &pickle_key);
        let sealed = base64_decode(&pickle).unwrap();
        assert!(PkDecryption::from_libolm_pickle(&base64_encode(&sealed[..sealed.len() - 1]), &pickle_key).is_err());
    }
}

#[test]
fn a_pickle_whose_public_key_does_not_match_its_secret() {
    // A libolm pickle stores the public key beside the secret. vodozemac ignores the stored
    // public key and recomputes it from the secret; a backup key restored from such a pickle
    // must not report a public key it cannot decrypt for (a client compares it with the
    // backup's `auth_data.public_key`, and encrypts new backups to it).
    let (ours, theirs) = key_pair();
    let stranger = PkDecryption::new();
    let pickle = seal_libolm_pk_pickle(1, stranger.public_key().as_bytes(), &ours.to_bytes(), b"key");
    let restored_by_them = vp::PkDecryption::from_libolm_pickle(&pickle, b"key").unwrap();
    assert_eq!(restored_by_them.public_key().to_base64(), theirs.public_key().to_base64());
    match PkDecryption::from_libolm_pickle(&pickle, b"key") {
        Ok(restored) => {
            assert_eq!(*restored.to_bytes(), *ours.to_bytes());
            assert_eq!(
                restored.public_key(),
                ours.public_key(),
                "ferrolm reports the pickled public key, not the one of its secret"
            );
        }
        // Refusing the inconsistent pickle is fine too.
        Err(error) => eprintln!("ferrolm refuses the inconsistent pickle: {error}"),
    }
}

#[test]
fn signing_keys_from_the_same_seed_sign_identically() {
    let mut seeds: Vec<[u8; 32]> = vec![[0; 32], [1; 32], [0xff; 32], core::array::from_fn(|i| i as u8)];
    seeds.extend((0..16).map(|_| *vodozemac::Ed25519SecretKey::new().to_bytes()));
    let messages: [&[u8]; 4] = [
        b"",
        b"{}",
        br#"{"keys":{"ed25519:base64+master+public+key":"base64+master+public+key"},"usage":["master"],"user_id":"@alice:example.org"}"#,
        &[0xa5; 1000],
    ];
    for seed in seeds {
        let ours = PkSigning::from_seed(&seed);
        let theirs = vodozemac::Ed25519SecretKey::from_slice(&seed);
        assert_eq!(ours.public_key().to_base64(), theirs.public_key().to_base64());
        assert_eq!(*ours.seed(), seed);
        assert_eq!(*ours.seed(), *theirs.to_bytes());
        for message in messages {
            let a = ours.sign(message);
            let b = theirs.sign(message);
            // Ed25519 is deterministic: the same seed signs the same message identically.
            assert_eq!(a.to_bytes(), b.to_bytes());
            assert_eq!(a.to_base64(), b.to_base64());
            theirs
                .public_key()
                .verify(message, &vodozemac::Ed25519Signature::from_base64(&a.to_base64()).unwrap())
                .unwrap();
            ours.public_key().verify(message, &Ed25519Signature::from_base64(&b.to_base64()).unwrap()).unwrap();
            assert!(ours.public_key().verify(b"another message", &a).is_err());
        }
    }
}

/// ferrolm's backup messages decrypt in libolm (`olm_pk_decrypt`), and both derive the same
/// public key from the same secret.
#[test]
fn ferrolm_messages_decrypt_in_libolm() {
    use ferrolm_interop::libolm;
    for seed in 0..8u8 {
        let secret = [seed.wrapping_mul(37).wrapping_add(1); 32];
        let ours = PkDecryption::from_bytes(&secret);
        let mut theirs = libolm::PkDecryption::from_private_key(&secret).unwrap();
        assert_eq!(theirs.public_key(), ours.public_key().to_base64());
        let encryption = PkEncryption::from_key(ours.public_key()).unwrap();
        for plaintext in plaintexts() {
            let (c, m, e) = encryption.encrypt(&plaintext).to_base64();
            assert_eq!(theirs.decrypt(&e, &m, &c).unwrap(), plaintext);
        }
        // libolm refuses a message for another key, as ferrolm does.
        let other = PkEncryption::from_key(PkDecryption::new().public_key()).unwrap();
        let (c, m, e) = other.encrypt(b"not for you").to_base64();
        assert!(theirs.decrypt(&e, &m, &c).is_err());
    }
}
