//! The one adapter between the store and the core's pickles.
//!
//! Every core object the store keeps (accounts, Olm sessions, inbound and outbound group
//! sessions, the backup decryption key) is stored as the core's own authenticated pickle
//! (`pickle_bytes` / `from_pickle_bytes`), under a pickle key derived from the store key and
//! bound to the associated data `table id ‖ row key` of the row that holds it. The record
//! around it is sealed with the same binding, so a pickle moved to another row fails twice.
//! Only this module changes when the core's pickle API does.

use ferrolm::megolm::{GroupSession, InboundGroupSession};
use ferrolm::olm::{Account, Session};
use ferrolm::pickle::{PickleError, PickleKey};
use ferrolm::pk::PkDecryption;

/// A core object stored as its pickle.
pub(crate) trait StoredPickle: Sized {
    /// The pickle, bound to `associated_data`.
    fn to_stored(&self, key: &PickleKey, associated_data: &[u8]) -> Vec<u8>;
    /// The object back from its pickle; fails on a wrong key, binding or corrupted pickle.
    fn from_stored(pickle: &[u8], key: &PickleKey, associated_data: &[u8]) -> Result<Self, PickleError>;
}

macro_rules! byte_pickles {
    ($($ty:ty),*) => {$(
        impl StoredPickle for $ty {
            fn to_stored(&self, key: &PickleKey, associated_data: &[u8]) -> Vec<u8> {
                self.pickle_bytes(key, associated_data)
            }

            fn from_stored(pickle: &[u8], key: &PickleKey, associated_data: &[u8]) -> Result<Self, PickleError> {
                <$ty>::from_pickle_bytes(pickle, key, associated_data)
            }
        }
    )*};
}

byte_pickles!(Account, Session, InboundGroupSession, GroupSession, PkDecryption);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pickles_are_bound_to_their_row() {
        let key = PickleKey::from_bytes([1; 32]);
        let account = Account::new();
        let stored = account.to_stored(&key, b"\x01account");
        let back = Account::from_stored(&stored, &key, b"\x01account").unwrap();
        assert_eq!(back.identity_keys(), account.identity_keys());
        assert_eq!(Account::from_stored(&stored, &key, b"\x01other").unwrap_err(), PickleError::Mac);
        assert_eq!(
            Account::from_stored(&stored, &PickleKey::from_bytes([2; 32]), b"\x01account").unwrap_err(),
            PickleError::Mac
        );
    }
}
