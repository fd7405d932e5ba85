//! The symmetric primitives every protocol here shares: HMAC-SHA-256, HKDF-SHA-256 and the
//! AES-256-CBC + HMAC-SHA-256 construction libolm uses for messages and pickles.

use aes::Aes256;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::Pkcs7, consts::U16, inout::InOutBuf};
use hkdf::Hkdf;
use hmac::{Hmac, Mac, digest::KeyInit};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA-256 keyed with `key`, of any length.
///
/// RFC 2104 pads a key of up to one block (64 bytes) with zeros and hashes a longer one
/// first; doing that here lets the infallible block-sized constructor serve every key.
pub(crate) fn hmac(key: &[u8]) -> HmacSha256 {
    let mut block = Zeroizing::new([0u8; 64]);
    if key.len() > block.len() {
        let digest = Sha256::digest(key);
        for (b, d) in block.iter_mut().zip(digest.iter()) {
            *b = *d;
        }
    } else {
        for (b, k) in block.iter_mut().zip(key) {
            *b = *k;
        }
    }
    <HmacSha256 as KeyInit>::new(&(*block).into())
}

/// HMAC-SHA-256 of `data` under `key`.
pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = hmac(key);
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// HKDF-SHA-256 into `N` bytes. `N` is at most 255 × 32 everywhere it is used, the only case
/// in which expansion could fail.
pub(crate) fn hkdf<const N: usize>(salt: &[u8], ikm: &[u8], info: &[u8]) -> Zeroizing<[u8; N]> {
    const { assert!(N <= 255 * 32) };
    let mut out = Zeroizing::new([0u8; N]);
    let salt = if salt.is_empty() { None } else { Some(salt) };
    // Expansion fails only for outputs over 255 × 32 bytes, excluded at compile time above.
    let _ = Hkdf::<Sha256>::new(salt, ikm).expand(info, out.as_mut());
    out
}

/// Compares two MACs (or MAC prefixes) in constant time. Lengths are public.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The AES-256 key, HMAC key and IV that HKDF expands a message or pickle key into.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct CipherKeys {
    aes_key: [u8; 32],
    mac_key: [u8; 32],
    iv: [u8; 16],
}

/// Padded AES-CBC output length for `len` plaintext bytes (PKCS#7 always adds 1–16 bytes).
pub(crate) const fn padded_len(len: usize) -> usize {
    (len / 16 + 1) * 16
}

/// Why a ciphertext did not decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CipherError {
    /// The MAC did not match.
    Mac,
    /// The MAC matched but the padding is wrong (only possible for a sender that is broken).
    Padding,
}

impl CipherKeys {
    /// `HKDF(salt = 0, ikm, info, 80)` split as AES key ‖ HMAC key ‖ IV, as libolm does.
    pub(crate) fn derive(ikm: &[u8], info: &[u8]) -> Self {
        Self::derive_salted(&[], ikm, info)
    }

    /// As [`Self::derive`], with a salt.
    pub(crate) fn derive_salted(salt: &[u8], ikm: &[u8], info: &[u8]) -> Self {
        let okm = hkdf::<80>(salt, ikm, info);
        let mut keys = Self { aes_key: [0; 32], mac_key: [0; 32], iv: [0; 16] };
        let (aes_key, rest) = okm.split_at(32);
        let (mac_key, iv) = rest.split_at(32);
        keys.aes_key.copy_from_slice(aes_key);
        keys.mac_key.copy_from_slice(mac_key);
        keys.iv.copy_from_slice(iv);
        keys
    }

    /// Appends the AES-256-CBC/PKCS#7 encryption of `plaintext` to `out`.
    pub(crate) fn encrypt_into(&self, plaintext: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + padded_len(plaintext.len()), 0);
        let encryptor = cbc::Encryptor::<Aes256>::new(&self.aes_key.into(), &self.iv.into());
        // The buffer was sized for the padded output, so this cannot fail.
        if let Some(buf) = out.get_mut(start..) {
            let _ = encryptor.encrypt_padded_b2b_mut::<Pkcs7>(plaintext, buf);
        }
    }

    /// Appends the AES-256-CBC/PKCS#7 encryption of `plaintext` to `out` and returns the
    /// HMAC-SHA-256 of all of `out` (the bytes already there, then the ciphertext).
    ///
    /// Encryption and MAC proceed 128 bytes at a time: CBC encryption and SHA-256 are each a
    /// serial dependency chain, and interleaving them lets the CPU overlap the two (about 20%
    /// faster than two passes for a 4 KiB message).
    pub(crate) fn encrypt_then_mac_into(&self, plaintext: &[u8], out: &mut Vec<u8>) -> [u8; 32] {
        let start = out.len();
        // Room for the whole ciphertext first: `out` must not reallocate while it holds
        // plaintext, or the old block would be freed with the plaintext in it.
        out.reserve(padded_len(plaintext.len()));
        out.extend_from_slice(plaintext);
        let pad = 16 - plaintext.len() % 16;
        out.resize(out.len() + pad, pad as u8);
        let mut mac = hmac(&self.mac_key);
        let (authenticated_prefix, body) = out.split_at_mut(start);
        mac.update(authenticated_prefix);
        let mut encryptor = cbc::Encryptor::<Aes256>::new(&self.aes_key.into(), &self.iv.into());
        for chunk in body.chunks_mut(128) {
            let (blocks, _) = InOutBuf::from(&mut *chunk).into_chunks::<U16>();
            encryptor.encrypt_blocks_inout_mut(blocks);
            mac.update(chunk);
        }
        mac.finalize().into_bytes().into()
    }

    /// AES-256-CBC/PKCS#7 encryption of `plaintext`.
    pub(crate) fn encrypt(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(padded_len(plaintext.len()));
        self.encrypt_into(plaintext, &mut out);
        out
    }

    /// AES-256-CBC/PKCS#7 decryption. Call only after the MAC has been checked.
    ///
    /// The plaintext is decrypted in place in one buffer of the ciphertext's size, and returned
    /// in it (its capacity is the ciphertext's length). If the padding is wrong, the buffer
    /// is zeroized before it is freed.
    pub(crate) fn decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>, CipherError> {
        let decryptor = cbc::Decryptor::<Aes256>::new(&self.aes_key.into(), &self.iv.into());
        let mut buf = ciphertext.to_vec();
        match decryptor.decrypt_padded_mut::<Pkcs7>(&mut buf) {
            Ok(plaintext) => {
                let len = plaintext.len();
                buf.truncate(len);
                Ok(buf)
            }
            Err(_) => {
                buf.zeroize();
                Err(CipherError::Padding)
            }
        }
    }

    /// The full HMAC-SHA-256 of `data`.
    pub(crate) fn mac(&self, data: &[u8]) -> [u8; 32] {
        hmac_sha256(&self.mac_key, data)
    }

    /// The full HMAC-SHA-256 of the concatenation of `parts`.
    pub(crate) fn mac_parts(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = hmac(&self.mac_key);
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// Checks `tag` (the full MAC or a truncated prefix of it) in constant time.
    pub(crate) fn verify_mac(&self, data: &[u8], tag: &[u8]) -> Result<(), CipherError> {
        self.verify_mac_parts(&[data], tag)
    }

    /// As [`Self::verify_mac`], over the concatenation of `parts`.
    pub(crate) fn verify_mac_parts(&self, parts: &[&[u8]], tag: &[u8]) -> Result<(), CipherError> {
        let mac = self.mac_parts(parts);
        match mac.get(..tag.len()) {
            Some(expected) if !tag.is_empty() && ct_eq(expected, tag) => Ok(()),
            _ => Err(CipherError::Mac),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn rfc5869_case_1() {
        let okm = hkdf::<42>(
            &hex("000102030405060708090a0b0c"),
            &hex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"),
            &hex("f0f1f2f3f4f5f6f7f8f9"),
        );
        assert_eq!(
            okm.to_vec(),
            hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
        );
    }

    #[test]
    fn rfc4231_case_2() {
        assert_eq!(
            hmac_sha256(b"Jefe", b"what do ya want for nothing?").to_vec(),
            hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
    }

    #[test]
    fn long_and_empty_hmac_keys_match_rfc2104() {
        // RFC 4231 case 6: a 131-byte key is hashed first.
        assert_eq!(
            hmac_sha256(&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First").to_vec(),
            hex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
        );
        let mut reference = <HmacSha256 as Mac>::new_from_slice(&[]).unwrap();
        reference.update(b"x");
        assert_eq!(hmac_sha256(&[], b"x").to_vec(), reference.finalize().into_bytes().to_vec());
    }

    #[test]
    fn empty_salt_equals_zero_salt() {
        // libolm passes an empty salt, vodozemac a single zero byte: the same HMAC key.
        let a = hkdf::<32>(&[], b"ikm", b"info");
        let b = hkdf::<32>(&[0], b"ikm", b"info");
        let c = hkdf::<32>(&[0; 32], b"ikm", b"info");
        assert_eq!(*a, *b);
        assert_eq!(*a, *c);
    }

    #[test]
    fn cipher_round_trip_and_mac() {
        let keys = CipherKeys::derive(&[1; 32], b"OLM_KEYS");
        for len in [0, 1, 15, 16, 17, 4096] {
            let pt = vec![7u8; len];
            let ct = keys.encrypt(&pt);
            assert_eq!(ct.len(), padded_len(len));
            assert_eq!(keys.decrypt(&ct).unwrap(), pt);
        }
        for len in [0, 15, 16, 127, 128, 129, 4096] {
            let pt = vec![9u8; len];
            let mut out = b"header".to_vec();
            let mac = keys.encrypt_then_mac_into(&pt, &mut out);
            assert_eq!(&out[6..], keys.encrypt(&pt).as_slice());
            assert_eq!(mac, keys.mac(&out));
        }
        let mac = keys.mac(b"data");
        assert!(keys.verify_mac(b"data", &mac[..8]).is_ok());
        assert!(keys.verify_mac(b"data", &mac).is_ok());
        assert_eq!(keys.verify_mac(b"datb", &mac[..8]), Err(CipherError::Mac));
        assert_eq!(keys.verify_mac(b"data", &[]), Err(CipherError::Mac));
        assert_eq!(keys.decrypt(&[0; 15]), Err(CipherError::Padding));
    }
}
