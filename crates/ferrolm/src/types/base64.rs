//! Unpadded base64, as Matrix uses it, through a constant-time codec.

use base64ct::{Base64, Base64Unpadded, Encoding};
use zeroize::Zeroizing;

/// The input was not valid base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the input is not valid base64")]
pub struct Base64DecodeError;

/// Encodes bytes as unpadded standard base64 (Matrix's encoding).
///
/// The codec runs in constant time, so it is safe for secret material.
///
/// ```
/// assert_eq!(ferrolm::types::base64_encode(b"olm"), "b2xt");
/// ```
pub fn base64_encode(bytes: impl AsRef<[u8]>) -> String {
    Base64Unpadded::encode_string(bytes.as_ref())
}

/// Decodes standard base64, unpadded (as Matrix sends it) or padded (as some clients do).
///
/// The codec runs in constant time, so it is safe for secret material.
///
/// ```
/// assert_eq!(ferrolm::types::base64_decode("b2xt").unwrap(), b"olm");
/// assert!(ferrolm::types::base64_decode("b2x!").is_err());
/// ```
pub fn base64_decode(input: impl AsRef<[u8]>) -> Result<Vec<u8>, Base64DecodeError> {
    let input = input.as_ref();
    if input.last() == Some(&b'=') {
        Base64::decode_vec(core::str::from_utf8(input).map_err(|_| Base64DecodeError)?)
    } else {
        Base64Unpadded::decode_vec(core::str::from_utf8(input).map_err(|_| Base64DecodeError)?)
    }
    .map_err(|_| Base64DecodeError)
}

/// [`base64_decode`] for secret material: the bytes are decoded into one zeroizing buffer, so
/// neither a valid input nor an invalid one (whose prefix is decoded before the error shows)
/// leaves decoded bytes in freed memory.
pub(crate) fn base64_decode_secret(input: &str) -> Result<Zeroizing<Vec<u8>>, Base64DecodeError> {
    // Four characters decode to at most three bytes.
    let mut out = Zeroizing::new(vec![0u8; input.len().div_ceil(4) * 3]);
    let decoded = if input.ends_with('=') {
        Base64::decode(input, out.as_mut_slice())
    } else {
        Base64Unpadded::decode(input, out.as_mut_slice())
    };
    let len = decoded.map_err(|_| Base64DecodeError)?.len();
    out.truncate(len);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_and_unpadded_inputs_decode_alike() {
        assert_eq!(base64_decode("b2xtIQ").unwrap(), b"olm!");
        assert_eq!(base64_decode("b2xtIQ==").unwrap(), b"olm!");
        assert_eq!(base64_encode(b"olm!"), "b2xtIQ");
    }

    #[test]
    fn garbage_is_an_error() {
        for bad in ["b2xtIQ=", "====", "b", "b2xtI\u{e9}", "b2xt IQ"] {
            assert!(base64_decode(bad).is_err(), "{bad}");
            assert!(base64_decode_secret(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secret_decoding_agrees_with_the_public_decoder() {
        for input in ["", "b2xt", "b2xtIQ", "b2xtIQ==", "b2xtISE", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"] {
            assert_eq!(base64_decode_secret(input).unwrap().as_slice(), base64_decode(input).unwrap(), "{input}");
        }
    }
}
