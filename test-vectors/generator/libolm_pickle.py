"""libolm's pickle encryption, in Python, for building pickles libolm itself cannot reach.

libolm encrypts a pickle as follows (libolm's `pickle_encoding.c`, `cipher.cpp`):

    AES key (32) | HMAC key (32) | IV (16) = HKDF-SHA-256(salt = empty, ikm = pickle key, info = "Pickle", 80)
    pickle = unpadded base64( AES-256-CBC/PKCS#7(plaintext) | HMAC-SHA-256(ciphertext)[0..8] )

The generator uses this codec for one purpose only: to move an outbound Megolm session to a
high message index (2^16, 2^24, 2^32 - 2) without 2^24 encryptions. It opens a pickle that
libolm wrote, replaces the ratchet and counter with the ratchet that libolm itself exported
at that index (`olm_export_inbound_group_session`), seals it again, and hands it back to
`olm_unpickle_outbound_group_session`, which checks the MAC. `selftest` checks that this codec
reproduces libolm's own pickles byte for byte before any edited pickle is trusted.
"""

import base64
import hashlib
import hmac

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def hkdf_sha256(salt, ikm, info, length):
    """RFC 5869 HKDF with SHA-256 (an empty salt means 32 zero bytes, as the RFC says)."""
    prk = hmac.new(salt if salt else bytes(32), ikm, hashlib.sha256).digest()
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


def b64encode(data):
    return base64.b64encode(data).decode().rstrip("=")


def b64decode(text):
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _keys(pickle_key):
    okm = hkdf_sha256(b"", pickle_key, b"Pickle", 80)
    return okm[:32], okm[32:64], okm[64:80]


def seal(plaintext, pickle_key):
    aes_key, mac_key, iv = _keys(pickle_key)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(aes_key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    mac = hmac.new(mac_key, ciphertext, hashlib.sha256).digest()[:8]
    return b64encode(ciphertext + mac)


def open_(pickle, pickle_key):
    aes_key, mac_key, iv = _keys(pickle_key)
    raw = b64decode(pickle)
    ciphertext, mac = raw[:-8], raw[-8:]
    if not hmac.compare_digest(hmac.new(mac_key, ciphertext, hashlib.sha256).digest()[:8], mac):
        raise ValueError("pickle MAC mismatch")
    decryptor = Cipher(algorithms.AES(aes_key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def selftest(pickle, pickle_key):
    """Re-sealing the opened pickle must give libolm's pickle back, byte for byte."""
    if seal(open_(pickle, pickle_key), pickle_key) != pickle:
        raise AssertionError("the Python pickle codec does not reproduce libolm's pickle")


def outbound_group_at(pickle, pickle_key, exported_key):
    """An outbound group session pickle moved to the exported key's index and ratchet.

    Outbound group session pickle (version 1): version (u32 BE) | ratchet (128) |
    counter (u32 BE) | Ed25519 public key (32) | Ed25519 expanded secret key (64).
    Exported key: 0x01 | index (u32 BE) | ratchet (128) | Ed25519 public key (32).
    """
    selftest(pickle, pickle_key)
    plain = open_(pickle, pickle_key)
    assert len(plain) == 4 + 128 + 4 + 32 + 64 and plain[:4] == (1).to_bytes(4, "big")
    exported = b64decode(exported_key)
    assert len(exported) == 165 and exported[0] == 1
    index, ratchet, public = exported[1:5], exported[5:133], exported[133:165]
    assert public == plain[136:168], "the exported key belongs to another session"
    edited = plain[:4] + ratchet + index + plain[136:]
    return seal(edited, pickle_key)
