//! The one adapter between the store and the core's pickles.
//!
//! Every core object the store keeps (accounts, Olm sessions, inbound and outbound group
//! sessions, the backup decryption key) is stored as the core's own authenticated pickle,
//! under a pickle key derived from the store key, bound to the associated data
//! `table id ‖ row key` of the row that holds it.
//!
//! Until the core's byte-pickle API with associated data lands, this writes the core's string
//! pickles (`pickle` / `from_pickle`) as UTF-8 bytes; the row binding then comes from the value
//! seal around the record, which covers the pickle too. Only this module changes when the core
//! API does.

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

macro_rules! string_pickles {
    ($($ty:ty),*) => {$(
        impl StoredPickle for $ty {
            fn to_stored(&self, key: &PickleKey, _associated_data: &[u8]) -> Vec<u8> {
                self.pickle(key).into_bytes()
            }

            fn from_stored(pickle: &[u8], key: &PickleKey, _associated_data: &[u8]) -> Result<Self, PickleError> {
                let text = core::str::from_utf8(pickle).map_err(|_| PickleError::Base64)?;
                <$ty>::from_pickle(text, key)
            }
        }
    )*};
}

string_pickles!(Account, Session, InboundGroupSession, GroupSession, PkDecryption);
