//! The double ratchet's keys and KDFs (libolm's `ratchet.cpp`, in Olm's specification terms).
//!
//! - root:    `R0 ‖ C0,0 = HKDF(salt = 0, ikm = S, "OLM_ROOT", 64)` from the 3DH secret `S`
//! - step:    `Ri ‖ Ci,0 = HKDF(salt = Ri-1, ikm = ECDH(Ti-1, Ti), "OLM_RATCHET", 64)`
//! - chain:   `Mi,j = HMAC(Ci,j, 0x01)`, `Ci,j+1 = HMAC(Ci,j, 0x02)`
//! - message: `HKDF(salt = 0, ikm = Mi,j, "OLM_KEYS", 80)` = AES key ‖ HMAC key ‖ IV

use hmac::Mac;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::crypto::{CipherKeys, hkdf, hmac};
use crate::types::SharedSecret;

const ROOT_INFO: &[u8] = b"OLM_ROOT";
const RATCHET_INFO: &[u8] = b"OLM_RATCHET";
const MESSAGE_KEY_INFO: &[u8] = b"OLM_KEYS";

/// The root key `Ri`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct RootKey(pub(crate) [u8; 32]);

/// A chain key `Ci,j` with its index `j`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct ChainKey {
    pub(crate) key: [u8; 32],
    pub(crate) index: u32,
}

/// A message key `Mi,j` with its index `j`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct MessageKey {
    pub(crate) key: [u8; 32],
    pub(crate) index: u32,
}

fn split(okm: &[u8; 64]) -> (RootKey, ChainKey) {
    let mut root = RootKey([0; 32]);
    let mut chain = ChainKey { key: [0; 32], index: 0 };
    let (r, c) = okm.split_at(32);
    root.0.copy_from_slice(r);
    chain.key.copy_from_slice(c);
    (root, chain)
}

/// The first root and chain key of a session, from the 96-byte 3DH secret.
pub(crate) fn derive_initial(shared: &[u8; 96]) -> (RootKey, ChainKey) {
    split(&hkdf::<64>(&[], shared, ROOT_INFO))
}

/// One step of the Diffie-Hellman ratchet.
pub(crate) fn ratchet_step(root: &RootKey, shared: &SharedSecret) -> (RootKey, ChainKey) {
    split(&hkdf::<64>(&root.0, shared.as_bytes(), RATCHET_INFO))
}

impl ChainKey {
    /// The message key for the current index, then advances the chain. One HMAC key
    /// schedule serves both derivations.
    pub(crate) fn next_message_key(&mut self) -> MessageKey {
        let keyed = hmac(&self.key);
        let mut message_mac = keyed.clone();
        message_mac.update(&[0x01]);
        let message = MessageKey { key: message_mac.finalize().into_bytes().into(), index: self.index };
        let mut advance = keyed;
        advance.update(&[0x02]);
        self.key = advance.finalize().into_bytes().into();
        self.index = self.index.wrapping_add(1);
        message
    }

    /// Advances the chain without deriving a message key.
    pub(crate) fn advance(&mut self) {
        let mut mac = hmac(&self.key);
        mac.update(&[0x02]);
        self.key = mac.finalize().into_bytes().into();
        self.index = self.index.wrapping_add(1);
    }
}

impl MessageKey {
    /// Expands the message key into the AES key, HMAC key and IV.
    pub(crate) fn cipher_keys(&self) -> CipherKeys {
        CipherKeys::derive(&self.key, MESSAGE_KEY_INFO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_message_key_equals_separate_derivations() {
        let mut chain = ChainKey { key: [9; 32], index: 5 };
        let start = chain.clone();
        let message = chain.next_message_key();
        assert_eq!(message.index, 5);
        assert_eq!(message.key, crate::crypto::hmac_sha256(&start.key, &[1]));
        assert_eq!(chain.key, crate::crypto::hmac_sha256(&start.key, &[2]));
        assert_eq!(chain.index, 6);
        let mut other = start.clone();
        other.advance();
        assert_eq!(other.key, chain.key);
        assert_eq!(other.index, chain.index);
    }
}
