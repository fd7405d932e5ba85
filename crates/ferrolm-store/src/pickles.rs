//! The one adapter between the store and the core's serialized objects.
//!
//! Every core object the store keeps (accounts, Olm sessions, inbound and outbound group
//! sessions, the backup decryption key) is stored inside a record that the store seals with
//! XChaCha20-Poly1305, bound to `table id ‖ row key`. Two forms exist:
//!
//! - [`Form::State`] (what the store writes): the core's unencrypted state
//!   (`to_unencrypted_state` / `from_unencrypted_state`), so the object is encrypted once, by
//!   the record's seal. The state is secret; it only ever sits in zeroizing buffers and, sealed,
//!   in the value.
//! - [`Form::Pickle`] (read from rows written by earlier versions): the core's own
//!   authenticated pickle (`pickle_bytes` / `from_pickle_bytes`) under a pickle key derived from
//!   the store key, bound to the same associated data.
//!
//! Which form a record holds is given by its record format version (see `records.rs`). Only
//! this module changes when the core's API does.

use ferrolm::megolm::{GroupSession, InboundGroupSession};
use ferrolm::olm::{Account, Session};
use ferrolm::pickle::{PickleError, PickleKey};
use ferrolm::pk::PkDecryption;
use zeroize::Zeroizing;

/// How a core object is serialized inside a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// The core's authenticated pickle under the store's pickle key (the first record formats).
    Pickle,
    /// The core's unencrypted state, protected by the record's seal only.
    State,
}

/// A core object stored inside a record.
pub(crate) trait StoredPickle: Sized {
    /// The object as new records hold it: its unencrypted state ([`Form::State`]).
    fn to_stored(&self) -> Zeroizing<Vec<u8>>;
    /// The object back from `form` (a pickle is checked against `key` and `associated_data`);
    /// fails on a wrong key, binding or corrupted bytes.
    fn from_stored(form: Form, bytes: &[u8], key: &PickleKey, associated_data: &[u8]) -> Result<Self, PickleError>;
}

macro_rules! stored_objects {
    ($($ty:ty),*) => {$(
        impl StoredPickle for $ty {
            fn to_stored(&self) -> Zeroizing<Vec<u8>> {
                self.to_unencrypted_state()
            }

            fn from_stored(form: Form, bytes: &[u8], key: &PickleKey, associated_data: &[u8]) -> Result<Self, PickleError> {
                match form {
                    Form::State => <$ty>::from_unencrypted_state(bytes),
                    Form::Pickle => <$ty>::from_pickle_bytes(bytes, key, associated_data),
                }
            }
        }
    )*};
}

stored_objects!(Account, Session, InboundGroupSession, GroupSession, PkDecryption);

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolm::megolm::SessionConfig;

    #[test]
    fn old_pickles_are_bound_to_their_row() {
        let key = PickleKey::from_bytes([1; 32]);
        let account = Account::new();
        let stored = account.pickle_bytes(&key, b"\x01account");
        let back = Account::from_stored(Form::Pickle, &stored, &key, b"\x01account").unwrap();
        assert_eq!(back.identity_keys(), account.identity_keys());
        assert_eq!(Account::from_stored(Form::Pickle, &stored, &key, b"\x01other").unwrap_err(), PickleError::Mac);
        assert_eq!(
            Account::from_stored(Form::Pickle, &stored, &PickleKey::from_bytes([2; 32]), b"\x01account").unwrap_err(),
            PickleError::Mac
        );
        // A pickle is not a state, and the other way round.
        assert!(Account::from_stored(Form::State, &stored, &key, b"\x01account").is_err());
        assert!(Account::from_stored(Form::Pickle, &account.to_stored(), &key, b"\x01account").is_err());
    }

    #[test]
    fn objects_are_stored_as_their_state() {
        let key = PickleKey::from_bytes([1; 32]);
        let account = Account::new();
        let state = account.to_stored();
        assert_eq!(state.as_slice(), account.to_unencrypted_state().as_slice());
        let back = Account::from_stored(Form::State, &state, &key, b"").unwrap();
        assert_eq!(back.identity_keys(), account.identity_keys());

        let pk = PkDecryption::new();
        let back = PkDecryption::from_stored(Form::State, &pk.to_stored(), &key, b"").unwrap();
        assert_eq!(back.public_key(), pk.public_key());

        let outbound = GroupSession::new(SessionConfig::version_1());
        let back = GroupSession::from_stored(Form::State, &outbound.to_stored(), &key, b"").unwrap();
        assert_eq!(back.session_id(), outbound.session_id());
        let inbound = InboundGroupSession::new(&outbound.session_key(), SessionConfig::version_1());
        let back = InboundGroupSession::from_stored(Form::State, &inbound.to_stored(), &key, b"").unwrap();
        assert_eq!(back.session_id(), inbound.session_id());
        // The state says what it is: an inbound session's state is no outbound session.
        assert!(GroupSession::from_stored(Form::State, &inbound.to_stored(), &key, b"").is_err());
    }
}
