//! Key export files: the passphrase-protected files clients exchange room keys in
//! ("Export E2E room keys" in Element).
//!
//! ```text
//! -----BEGIN MEGOLM SESSION DATA-----
//! base64 of: 0x01 ‖ salt (16) ‖ IV (16) ‖ rounds (u32 BE) ‖ AES-256-CTR ciphertext ‖ HMAC-SHA-256 (32)
//! -----END MEGOLM SESSION DATA-----
//! ```
//!
//! `PBKDF2-HMAC-SHA-512(passphrase, salt, rounds, 64 bytes)` gives the AES key and the HMAC
//! key; the HMAC covers everything before it and is checked, in constant time, before
//! anything is decrypted. The plaintext is the JSON array of exported room keys; this module
//! encrypts and decrypts bytes and leaves the JSON to the caller.
//!
//! ```
//! use ferrolm::key_export;
//! let file = key_export::encrypt(b"[]", "correct horse", 1_000)?; // use DEFAULT_ROUNDS in practice
//! assert!(file.starts_with("-----BEGIN MEGOLM SESSION DATA-----"));
//! assert_eq!(key_export::decrypt(&file, "correct horse")?.as_slice(), b"[]");
//! assert_eq!(key_export::decrypt(&file, "wrong"), Err(key_export::KeyExportError::Mac));
//! # Ok::<(), key_export::KeyExportError>(())
//! ```

use aes::Aes256;
use aes::cipher::{KeyIvInit, StreamCipher};
use rand_core::CryptoRngCore;
use sha2::Sha512;
use zeroize::Zeroizing;

use crate::crypto::{ct_eq, hmac_sha256};

/// The number of PBKDF2 rounds new files use (as Element does).
pub const DEFAULT_ROUNDS: u32 = 500_000;
/// The most rounds a file may ask for: a file is untrusted input, and each round costs the
/// reader time. Twenty times the default.
pub const MAX_ROUNDS: u32 = 10_000_000;

const HEADER: &str = "-----BEGIN MEGOLM SESSION DATA-----";
const FOOTER: &str = "-----END MEGOLM SESSION DATA-----";
const VERSION: u8 = 1;
const HEADER_LENGTH: usize = 1 + 16 + 16 + 4;
const MAC_LENGTH: usize = 32;
/// Characters per armoured line, as Element writes them (96 payload bytes).
const LINE_LENGTH: usize = 128;

/// Why a key export file could not be written or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyExportError {
    /// The `-----BEGIN MEGOLM SESSION DATA-----` line is missing.
    #[error("the file has no BEGIN MEGOLM SESSION DATA line")]
    MissingHeader,
    /// The `-----END MEGOLM SESSION DATA-----` line is missing (a truncated file?).
    #[error("the file has no END MEGOLM SESSION DATA line (truncated?)")]
    MissingFooter,
    /// The armoured body is not valid base64.
    #[error("the file's body is not valid base64")]
    Base64,
    /// The payload is too short to hold its header and MAC.
    #[error("the file is too short ({0} bytes of payload)")]
    TooShort(usize),
    /// The payload's version byte is not 1.
    #[error("unsupported key export version {0}")]
    UnknownVersion(u8),
    /// The round count is zero or above [`MAX_ROUNDS`].
    #[error("unsupported PBKDF2 round count {0}")]
    InvalidRounds(u32),
    /// The MAC does not match: a wrong passphrase or an altered file (the two cannot be told
    /// apart). Nothing was decrypted.
    #[error("the MAC does not match: wrong passphrase, or the file was altered")]
    Mac,
}

struct Keys {
    aes: Zeroizing<[u8; 32]>,
    mac: Zeroizing<[u8; 32]>,
}

fn derive(passphrase: &str, salt: &[u8], rounds: u32) -> Keys {
    let mut okm = Zeroizing::new([0u8; 64]);
    pbkdf2::pbkdf2_hmac::<Sha512>(passphrase.as_bytes(), salt, rounds, okm.as_mut());
    let mut keys = Keys { aes: Zeroizing::new([0; 32]), mac: Zeroizing::new([0; 32]) };
    let (aes, mac) = okm.split_at(32);
    keys.aes.copy_from_slice(aes);
    keys.mac.copy_from_slice(mac);
    keys
}

fn ctr(keys: &Keys, iv: &[u8; 16], data: &mut [u8]) {
    let mut cipher = ctr::Ctr128BE::<Aes256>::new(keys.aes.as_ref().into(), iv.into());
    cipher.apply_keystream(data);
}

/// Encrypts `plaintext` (the JSON array of room keys) into an armoured key export file.
pub fn encrypt(plaintext: &[u8], passphrase: &str, rounds: u32) -> Result<String, KeyExportError> {
    encrypt_inner(plaintext, passphrase, rounds, &mut crate::rng::os_rng())
}

/// [`encrypt`] with the caller's randomness: 16 bytes of salt, then 16 of IV.
#[cfg(feature = "caller-supplied-randomness")]
pub fn encrypt_with_rng(
    plaintext: &[u8],
    passphrase: &str,
    rounds: u32,
    rng: &mut impl CryptoRngCore,
) -> Result<String, KeyExportError> {
    encrypt_inner(plaintext, passphrase, rounds, rng)
}

fn encrypt_inner(
    plaintext: &[u8],
    passphrase: &str,
    rounds: u32,
    rng: &mut impl CryptoRngCore,
) -> Result<String, KeyExportError> {
    if rounds == 0 || rounds > MAX_ROUNDS {
        return Err(KeyExportError::InvalidRounds(rounds));
    }
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    rng.fill_bytes(&mut salt);
    rng.fill_bytes(&mut iv);
    // Clear bit 63 of the counter block, as Element does, so the low 64-bit half can never
    // wrap in implementations that only count in it.
    iv[8] &= 0x7f;
    let keys = derive(passphrase, &salt, rounds);

    let mut payload = Vec::with_capacity(HEADER_LENGTH + plaintext.len() + MAC_LENGTH);
    payload.push(VERSION);
    payload.extend_from_slice(&salt);
    payload.extend_from_slice(&iv);
    payload.extend_from_slice(&rounds.to_be_bytes());
    let start = payload.len();
    payload.extend_from_slice(plaintext);
    if let Some(body) = payload.get_mut(start..) {
        ctr(&keys, &iv, body);
    }
    let mac = hmac_sha256(keys.mac.as_ref(), &payload);
    payload.extend_from_slice(&mac);

    let encoded = <base64ct::Base64 as base64ct::Encoding>::encode_string(&payload);
    let mut file = String::with_capacity(encoded.len() + encoded.len() / LINE_LENGTH + HEADER.len() + FOOTER.len() + 4);
    file.push_str(HEADER);
    file.push('\n');
    for line in encoded.as_bytes().chunks(LINE_LENGTH) {
        file.push_str(core::str::from_utf8(line).unwrap_or_default());
        file.push('\n');
    }
    file.push_str(FOOTER);
    file.push('\n');
    Ok(file)
}

/// Decrypts an armoured key export file. The MAC is checked before anything is decrypted;
/// no partial plaintext is ever returned.
pub fn decrypt(file: &str, passphrase: &str) -> Result<Zeroizing<Vec<u8>>, KeyExportError> {
    let (payload, salt, iv, rounds) = parse(file)?;
    let keys = derive(passphrase, &salt, rounds);
    let (authenticated, mac) = payload.split_at(payload.len() - MAC_LENGTH);
    if !ct_eq(&hmac_sha256(keys.mac.as_ref(), authenticated), mac) {
        return Err(KeyExportError::Mac);
    }
    let mut plaintext = Zeroizing::new(authenticated.get(HEADER_LENGTH..).unwrap_or_default().to_vec());
    ctr(&keys, &iv, &mut plaintext);
    Ok(plaintext)
}

/// The PBKDF2 round count a file asks for, without decrypting it (to warn the user how long
/// [`decrypt`] will take).
pub fn rounds(file: &str) -> Result<u32, KeyExportError> {
    parse(file).map(|(_, _, _, rounds)| rounds)
}

type Parsed = (Vec<u8>, [u8; 16], [u8; 16], u32);

fn parse(file: &str) -> Result<Parsed, KeyExportError> {
    let start = file.find(HEADER).ok_or(KeyExportError::MissingHeader)? + HEADER.len();
    let body = file.get(start..).unwrap_or_default();
    let end = body.find(FOOTER).ok_or(KeyExportError::MissingFooter)?;
    let base64: String = body.get(..end).unwrap_or_default().chars().filter(|c| !c.is_whitespace()).collect();
    let payload = crate::types::base64_decode(&base64).map_err(|_| KeyExportError::Base64)?;
    if payload.len() < HEADER_LENGTH + MAC_LENGTH {
        return Err(KeyExportError::TooShort(payload.len()));
    }
    let mut reader = crate::codec::PickleReader::new(&payload);
    let version = reader.u8().map_err(|_| KeyExportError::TooShort(payload.len()))?;
    if version != VERSION {
        return Err(KeyExportError::UnknownVersion(version));
    }
    let (salt, iv, rounds) = (|| Some((reader.array().ok()?, reader.array().ok()?, reader.u32().ok()?)))()
        .ok_or(KeyExportError::TooShort(payload.len()))?;
    if rounds == 0 || rounds > MAX_ROUNDS {
        return Err(KeyExportError::InvalidRounds(rounds));
    }
    Ok((payload, salt, iv, rounds))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUNDS: u32 = 1000;

    #[test]
    fn round_trip_and_layout() {
        let file = encrypt(b"[{\"session_id\":\"x\"}]", "pass", ROUNDS).unwrap();
        assert!(file.starts_with(HEADER) && file.trim_end().ends_with(FOOTER));
        assert!(file.lines().all(|l| l.len() <= LINE_LENGTH || l.starts_with("-----")));
        assert_eq!(rounds(&file), Ok(ROUNDS));
        assert_eq!(decrypt(&file, "pass").unwrap().as_slice(), b"[{\"session_id\":\"x\"}]");
        // Line breaks and surrounding text do not matter.
        let reflowed = format!("some text\n{}\n", file.replace('\n', "\r\n"));
        assert_eq!(decrypt(&reflowed, "pass").unwrap().as_slice(), b"[{\"session_id\":\"x\"}]");
        let long = vec![b'x'; 1000];
        assert_eq!(decrypt(&encrypt(&long, "p", ROUNDS).unwrap(), "p").unwrap().as_slice(), long.as_slice());
    }

    #[test]
    fn each_defect_has_its_error() {
        let file = encrypt(b"[]", "pass", ROUNDS).unwrap();
        assert_eq!(decrypt(&file, "wrong"), Err(KeyExportError::Mac));
        assert_eq!(decrypt(&file.replace(HEADER, ""), "pass"), Err(KeyExportError::MissingHeader));
        assert_eq!(decrypt(&file.replace(FOOTER, ""), "pass"), Err(KeyExportError::MissingFooter));
        assert_eq!(decrypt(&format!("{HEADER}\n!!!!\n{FOOTER}"), "pass"), Err(KeyExportError::Base64));
        assert_eq!(decrypt(&format!("{HEADER}\nAQID\n{FOOTER}"), "pass"), Err(KeyExportError::TooShort(3)));
        assert_eq!(encrypt(b"", "p", 0), Err(KeyExportError::InvalidRounds(0)));

        let (payload, ..) = parse(&file).unwrap();
        let armour =
            |p: &[u8]| format!("{HEADER}\n{}\n{FOOTER}", <base64ct::Base64 as base64ct::Encoding>::encode_string(p));
        let mut wrong_version = payload.clone();
        wrong_version[0] = 2;
        assert_eq!(decrypt(&armour(&wrong_version), "pass"), Err(KeyExportError::UnknownVersion(2)));
        let mut huge_rounds = payload.clone();
        huge_rounds[33..37].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(decrypt(&armour(&huge_rounds), "pass"), Err(KeyExportError::InvalidRounds(u32::MAX)));
        for i in [5, 20, 37, payload.len() - 1] {
            let mut flipped = payload.clone();
            flipped[i] ^= 1;
            assert_eq!(decrypt(&armour(&flipped), "pass"), Err(KeyExportError::Mac), "flip at {i}");
        }
        // Truncated: the footer is gone with the tail.
        assert_eq!(decrypt(&file[..file.len() / 2], "pass"), Err(KeyExportError::MissingFooter));
    }
}
