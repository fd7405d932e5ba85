#!/usr/bin/python3
"""Generates ferrolm's known-answer test vectors from libolm 3.2.13 with fixed randomness.

Run it with Debian's /usr/bin/python3 (python3-olm provides the `_libolm` cffi module, which
exposes libolm's C API; python3-cryptography provides AES for the pickle codec and the
independent checks of the RFC vectors):

    /usr/bin/python3 test-vectors/generator/generate.py OUTPUT_DIR

Every byte of randomness comes from `Rng`, a SHA-256 counter stream keyed by the vector's id,
so running it again writes byte-identical files. See test-vectors/README.md for the schema.
"""

import hashlib
import hmac
import json
import os
import sys

from cryptography.hazmat.primitives.asymmetric import ed25519 as py_ed25519
from cryptography.hazmat.primitives.asymmetric import x25519 as py_x25519
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.hazmat.primitives.kdf.hkdf import HKDF as PyHKDF

import capi
import libolm_pickle
from libolm_pickle import b64decode, b64encode

SCHEMA = "ferrolm-test-vectors/1"
EXPECTED_LIBOLM = "3.2.13"


# ---------------------------------------------------------------------------------------------
# Deterministic randomness and the vector builder
# ---------------------------------------------------------------------------------------------


class Rng:
    """SHA-256(seed | counter as u32 BE) blocks, concatenated: a reproducible byte stream."""

    def __init__(self, seed):
        self.seed = seed.encode()
        self.counter = 0
        self.pending = b""

    def take(self, n):
        while len(self.pending) < n:
            self.pending += hashlib.sha256(self.seed + self.counter.to_bytes(4, "big")).digest()
            self.counter += 1
        out, self.pending = self.pending[:n], self.pending[n:]
        return out


class Vector:
    def __init__(self, vector_id, vector_type, description):
        self.rng = Rng(f"{SCHEMA} random {vector_id}")
        self.data = {"id": vector_id, "type": vector_type, "description": description, "steps": []}

    def random(self, n):
        return self.rng.take(n)

    def step(self, op, **fields):
        self.data["steps"].append({"op": op, **fields})


def pickle_key_for(vector_id, choice):
    """Pickle keys of several lengths: libolm accepts any length, ferrolm must too."""
    derived = Rng(f"{SCHEMA} pickle key {vector_id}")
    keys = [
        b"",
        b"secret",
        b"DEFAULT_KEY",
        derived.take(32),
        derived.take(16),
        derived.take(64),
        derived.take(100),
        "pickle key with ünïcode".encode(),
    ]
    return keys[choice % len(keys)]


def keys_json(text):
    """libolm's key JSON {"curve25519": {id: key}} as the inner object, sorted by key id."""
    inner = json.loads(text)["curve25519"]
    return {k: inner[k] for k in sorted(inner, key=lambda kid: b64decode(kid))}


def text_of(data):
    return data.decode("utf-8")


PLAINTEXTS = [
    "",
    "a",
    "Hello, Bob",
    "exactly 16 bytes",
    "seventeen bytes!!",
    "fifteen bytes..",
    '{"type":"m.room_key","content":{"algorithm":"m.megolm.v1.aes-sha2"}}',
    "ünïcödé ✓ 🔐 ½",
    "\u0000\u0001\u0002 control characters \t\n\r",
    "x" * 255,
    "lorem ipsum dolor sit amet " * 12,
    "A" * 1500,
]


def plaintext(i):
    return PLAINTEXTS[i % len(PLAINTEXTS)]


# ---------------------------------------------------------------------------------------------
# Primitives: RFC vectors, hard-coded from the RFC texts and checked here by computation
# ---------------------------------------------------------------------------------------------


def hx(text):
    return bytes.fromhex(text.replace(" ", ""))


def x25519_py(scalar, u):
    # The `cryptography` package masks the top bit of u, as RFC 7748 asks.
    return py_x25519.X25519PrivateKey.from_private_bytes(scalar).exchange(
        py_x25519.X25519PublicKey.from_public_bytes(u)
    )


def primitives():
    vectors = []

    def add(vector_id, vector_type, description, op, **fields):
        v = Vector(vector_id, vector_type, description)
        v.step(op, **fields)
        vectors.append(v.data)

    # RFC 7748, section 5.2: X25519 on given inputs.
    rfc7748_52 = [
        (
            "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
            "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
            "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
        ),
        (
            "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
            "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
            "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
        ),
    ]
    for n, (scalar, u, out) in enumerate(rfc7748_52, 1):
        assert x25519_py(hx(scalar), hx(u)) == hx(out), f"RFC 7748 5.2 #{n}"
        add(
            f"primitives/x25519/rfc7748-5.2-{n}",
            "x25519",
            f"RFC 7748 section 5.2, test vector {n}: X25519(scalar, u)"
            + (" (u has its top bit set, which X25519 must ignore)" if n == 2 else ""),
            "x25519.scalar_mult",
            scalar=scalar,
            u=u,
            output=out,
        )
    # RFC 7748, section 5.2: k = u = 9, then k, u = X25519(k, u), k.
    for iterations, out in [
        (1, "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079"),
        (1000, "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51"),
    ]:
        k = u = (9).to_bytes(32, "little")
        for _ in range(iterations):
            k, u = x25519_py(k, u), k
        assert k == hx(out), f"RFC 7748 iterated {iterations}"
        add(
            f"primitives/x25519/rfc7748-5.2-iterated-{iterations}",
            "x25519",
            f"RFC 7748 section 5.2: X25519 iterated {iterations} time(s) from k = u = 9",
            "x25519.iterate",
            iterations=iterations,
            output=out,
        )
    # RFC 7748, section 6.1: the Diffie-Hellman example.
    alice_private = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
    alice_public = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    bob_private = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"
    bob_public = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
    shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    for name, private, public in [("alice", alice_private, alice_public), ("bob", bob_private, bob_public)]:
        basepoint = (9).to_bytes(32, "little")
        assert x25519_py(hx(private), basepoint) == hx(public)
        # libolm agrees: a PK decryption key's public key is X25519(private, 9).
        assert b64decode(capi.PkDecryption(hx(private)).public_key) == hx(public)
        add(
            f"primitives/x25519/rfc7748-6.1-{name}-public",
            "x25519",
            f"RFC 7748 section 6.1: {name.capitalize()}'s public key from her private key",
            "x25519.public_key",
            private_key=private,
            public_key=public,
        )
    assert x25519_py(hx(alice_private), hx(bob_public)) == hx(shared)
    assert x25519_py(hx(bob_private), hx(alice_public)) == hx(shared)
    add(
        "primitives/x25519/rfc7748-6.1-alice-shared",
        "x25519",
        "RFC 7748 section 6.1: the shared secret K, from Alice's side",
        "x25519.scalar_mult",
        scalar=alice_private,
        u=bob_public,
        output=shared,
    )
    add(
        "primitives/x25519/rfc7748-6.1-bob-shared",
        "x25519",
        "RFC 7748 section 6.1: the shared secret K, from Bob's side",
        "x25519.scalar_mult",
        scalar=bob_private,
        u=alice_public,
        output=shared,
    )

    # RFC 8032, section 7.1: Ed25519.
    rfc8032 = [
        (
            "TEST 1",
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "",
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        ),
        (
            "TEST 2",
            "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            "72",
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        ),
        (
            "TEST 3",
            "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
            "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
            "af82",
            "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
        ),
        (
            "TEST SHA(abc)",
            "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
            "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
            hashlib.sha512(b"abc").hexdigest(),
            "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704",
        ),
    ]
    utility = capi.Utility()
    for name, seed, public, message, signature in rfc8032:
        key = py_ed25519.Ed25519PrivateKey.from_private_bytes(hx(seed))
        assert key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw) == hx(public), name
        assert key.sign(hx(message)) == hx(signature), name
        # libolm agrees: olm_pk_signing_key_from_seed and olm_pk_sign.
        signing = capi.PkSigning(hx(seed))
        assert b64decode(signing.public_key) == hx(public), name
        assert b64decode(signing.sign(hx(message))) == hx(signature), name
        assert utility.ed25519_verify(b64encode(hx(public)), hx(message), b64encode(hx(signature))), name
        add(
            "primitives/ed25519/rfc8032-" + name.lower().replace(" ", "-").replace("(", "").replace(")", ""),
            "ed25519",
            f"RFC 8032 section 7.1, Ed25519 {name}",
            "ed25519.sign",
            seed=seed,
            public_key=public,
            message=message,
            signature=signature,
        )

    # RFC 5869, appendix A: HKDF-SHA-256, test cases 1 to 3.
    rfc5869 = [
        (
            1,
            "0b" * 22,
            "000102030405060708090a0b0c",
            "f0f1f2f3f4f5f6f7f8f9",
            42,
            "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
        ),
        (
            2,
            bytes(range(0x00, 0x50)).hex(),
            bytes(range(0x60, 0xB0)).hex(),
            bytes(range(0xB0, 0x100)).hex(),
            82,
            "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
            "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
            "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
            "cc30c58179ec3e87c14c01d5c1f3434f1d87",
        ),
        (
            3,
            "0b" * 22,
            "",
            "",
            42,
            "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
        ),
    ]
    for case, ikm, salt, info, length, prk, okm in rfc5869:
        assert hmac.new(hx(salt) or bytes(32), hx(ikm), hashlib.sha256).digest() == hx(prk), case
        assert libolm_pickle.hkdf_sha256(hx(salt), hx(ikm), hx(info), length) == hx(okm), case
        derived = PyHKDF(hashes.SHA256(), length, hx(salt) or None, hx(info)).derive(hx(ikm))
        assert derived == hx(okm), case
        add(
            f"primitives/hkdf-sha256/rfc5869-case-{case}",
            "hkdf_sha256",
            f"RFC 5869 appendix A, test case {case} (HKDF-SHA-256)",
            "hkdf_sha256",
            ikm=ikm,
            salt=salt,
            info=info,
            length=length,
            prk=prk,
            okm=okm,
        )

    # RFC 4231, section 4: HMAC-SHA-256, test cases 1 to 7 (case 5 is truncated to 128 bits).
    rfc4231 = [
        (1, "0b" * 20, b"Hi There".hex(), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        (
            2,
            b"Jefe".hex(),
            b"what do ya want for nothing?".hex(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (3, "aa" * 20, "dd" * 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
        (
            4,
            bytes(range(1, 26)).hex(),
            "cd" * 50,
            "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
        ),
        (5, "0c" * 20, b"Test With Truncation".hex(), "a3b6167473100ee06e0c796c2955552b"),
        (
            6,
            "aa" * 131,
            b"Test Using Larger Than Block-Size Key - Hash Key First".hex(),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        ),
        (
            7,
            "aa" * 131,
            (
                b"This is a test using a larger than block-size key and a larger than block-size data. "
                b"The key needs to be hashed before being used by the HMAC algorithm."
            ).hex(),
            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
        ),
    ]
    for case, key, data, mac in rfc4231:
        full = hmac.new(hx(key), hx(data), hashlib.sha256).hexdigest()
        assert full.startswith(mac), case
        add(
            f"primitives/hmac-sha256/rfc4231-case-{case}",
            "hmac_sha256",
            f"RFC 4231 section 4, test case {case} (HMAC-SHA-256)"
            + (", output truncated to 128 bits" if len(mac) < 64 else ""),
            "hmac_sha256",
            key=key,
            data=data,
            mac=mac,
        )
    return vectors


# ---------------------------------------------------------------------------------------------
# Olm: accounts
# ---------------------------------------------------------------------------------------------


def create_account(v, name):
    random = v.random(64)
    account = capi.Account(random)
    v.step(
        "account.create", account=name, random=random.hex(), identity_keys=json.loads(account.identity_keys())
    )
    return account


def generate_otks(v, name, account, count):
    random = v.random(32 * count)
    account.generate_one_time_keys(count, random)
    v.step(
        "account.generate_one_time_keys",
        account=name,
        count=count,
        random=random.hex(),
        one_time_keys=keys_json(account.one_time_keys()),
    )


def generate_fallback(v, name, account):
    random = v.random(32)
    account.generate_fallback_key(random)
    v.step(
        "account.generate_fallback_key",
        account=name,
        random=random.hex(),
        fallback_key=keys_json(account.unpublished_fallback_key()),
    )


def account_keys(v, name, account):
    v.step(
        "account.keys",
        account=name,
        one_time_keys=keys_json(account.one_time_keys()),
        fallback_key=keys_json(account.unpublished_fallback_key()),
    )


def pickle_account(v, name, account, key):
    v.step("account.pickle", account=name, pickle_key=key.hex(), pickle=account.pickle(key))


SIGN_MESSAGES = [
    "",
    '{"algorithms":["m.olm.v1.curve25519-aes-sha2","m.megolm.v1.aes-sha2"],"device_id":"JLAFKJWSCS",'
    '"keys":{},"user_id":"@alice:example.com"}',
    "ünïcödé",
    "a" * 1000,
]


def olm_accounts():
    vectors = []
    # (one-time key batches, fallback keys, forget the old fallback, publish, messages to sign)
    plans = [
        ([], 0, False, False, 1),
        ([1], 0, False, False, 2),
        ([5], 0, False, True, 1),
        ([10], 1, False, True, 1),
        ([1, 1, 1], 0, False, False, 0),
        ([3, 2], 1, False, False, 1),
        ([], 1, False, False, 1),
        ([], 2, False, False, 0),
        ([], 3, True, False, 0),
        ([2], 2, True, True, 1),
        ([50], 0, False, False, 0),
        ([100], 1, False, False, 0),
        ([98], 1, False, True, 0),
        ([4], 1, False, True, 4),
        ([7], 2, False, False, 1),
        ([1], 1, True, True, 2),
        ([20, 20], 2, True, False, 1),
        ([0], 0, False, True, 1),
        ([6], 3, False, True, 0),
        ([2, 3, 4], 1, True, True, 1),
        ([9], 0, False, True, 3),
        ([1], 2, False, True, 1),
        ([12], 1, True, False, 2),
        ([3], 0, False, False, 4),
        ([8], 2, True, True, 0),
        ([30], 1, False, False, 1),
        ([1, 2, 3, 4, 5], 3, True, True, 2),
        ([64], 2, False, True, 1),
        ([2], 3, True, False, 3),
    ]
    for n, (batches, fallbacks, forget, publish, signs) in enumerate(plans, 1):
        vid = f"olm/account/{n:03}"
        parts = []
        if batches:
            parts.append(f"one-time keys in batches of {batches}")
        if fallbacks:
            parts.append(f"{fallbacks} fallback key(s)")
        if forget:
            parts.append("forgets the old fallback key")
        if publish:
            parts.append("marks keys as published")
        if signs:
            parts.append(f"signs {signs} message(s)")
        v = Vector(vid, "olm_account", "An account from fixed randomness; " + (", ".join(parts) or "nothing else"))
        account = create_account(v, "account")
        # Interleave one-time keys and fallback keys, so key ids interleave too.
        for i in range(max(len(batches), fallbacks)):
            if i < len(batches):
                generate_otks(v, "account", account, batches[i])
            if i < fallbacks:
                generate_fallback(v, "account", account)
        if forget:
            account.forget_old_fallback_key()
            v.step("account.forget_old_fallback_key", account="account")
            account_keys(v, "account", account)
        for i in range(signs):
            message = SIGN_MESSAGES[(n + i) % len(SIGN_MESSAGES)]
            v.step("account.sign", account="account", message=message, signature=account.sign(message))
        pickle_account(v, "account", account, pickle_key_for(vid, n))
        if publish:
            account.mark_keys_as_published()
            v.step("account.mark_keys_as_published", account="account")
            account_keys(v, "account", account)
            pickle_account(v, "account", account, pickle_key_for(vid, n + 1))
            # New keys after publishing are unpublished again.
            generate_otks(v, "account", account, 2)
            generate_fallback(v, "account", account)
            pickle_account(v, "account", account, pickle_key_for(vid, n + 2))
        vectors.append(v.data)

    # Edge-case randomness: every byte zero, every byte 0xff (libolm stores the raw bytes and
    # clamps when it multiplies).
    for label, byte in [("zeros", 0x00), ("ones", 0xFF), ("alternating", 0x55)]:
        vid = f"olm/account/edge-{label}"
        v = Vector(vid, "olm_account", f"An account whose every random byte is 0x{byte:02x}")
        random = bytes([byte]) * 64
        account = capi.Account(random)
        v.step(
            "account.create",
            account="account",
            random=random.hex(),
            identity_keys=json.loads(account.identity_keys()),
        )
        random = bytes([byte]) * 64
        account.generate_one_time_keys(2, random)
        v.step(
            "account.generate_one_time_keys",
            account="account",
            count=2,
            random=random.hex(),
            one_time_keys=keys_json(account.one_time_keys()),
        )
        v.step("account.sign", account="account", message="edge", signature=account.sign("edge"))
        pickle_account(v, "account", account, b"edge")
        vectors.append(v.data)
    return vectors


# ---------------------------------------------------------------------------------------------
# Olm: sessions
# ---------------------------------------------------------------------------------------------


def flip_last_byte(body):
    raw = bytearray(b64decode(body))
    raw[-1] ^= 0x01
    return b64encode(bytes(raw))


class Conversation:
    """Alice and Bob, their accounts and sessions, and every step recorded into a vector."""

    def __init__(self, v, *, bob_otks=1, use_fallback=False, claim=0, pickle_key=b"secret"):
        self.v = v
        self.pickle_key = pickle_key
        self.alice = create_account(v, "alice")
        self.bob = create_account(v, "bob")
        if use_fallback:
            if bob_otks:
                generate_otks(v, "bob", self.bob, bob_otks)
            generate_fallback(v, "bob", self.bob)
            claimed = list(keys_json(self.bob.unpublished_fallback_key()).values())[0]
        else:
            generate_otks(v, "bob", self.bob, bob_otks)
            claimed = list(keys_json(self.bob.one_time_keys()).values())[claim]
        self.bob.mark_keys_as_published()
        v.step("account.mark_keys_as_published", account="bob")
        self.alice_key = json.loads(self.alice.identity_keys())["curve25519"]
        self.bob_key = json.loads(self.bob.identity_keys())["curve25519"]
        random = v.random(64)
        self.sessions = {"alice": capi.Session.outbound(self.alice, self.bob_key, claimed, random), "bob": None}
        v.step(
            "session.create_outbound",
            account="alice",
            session="alice_session",
            their_identity_key=self.bob_key,
            their_one_time_key=claimed,
            random=random.hex(),
            session_id=self.sessions["alice"].session_id(),
        )
        self.sent = {"alice": [], "bob": []}

    def send(self, sender, text):
        session = self.sessions[sender]
        random = self.v.random(session.encrypt_random_length())
        message_type, body = session.encrypt(text, random)
        self.v.step(
            "session.encrypt",
            session=f"{sender}_session",
            plaintext=text,
            random=random.hex(),
            message_type=message_type,
            message=body,
        )
        self.sent[sender].append((message_type, body, text))
        return len(self.sent[sender]) - 1

    def deliver(self, sender, i, tamper=False):
        receiver = "bob" if sender == "alice" else "alice"
        message_type, body, text = self.sent[sender][i]
        if tamper:
            body = flip_last_byte(body)
        if self.sessions[receiver] is None:
            assert receiver == "bob" and message_type == 0
            session = capi.Session.inbound(self.bob, body, self.alice_key)
            try:
                decrypted = session.decrypt(message_type, body)
            except capi.OlmError as error:
                self.v.step(
                    "session.create_inbound",
                    account="bob",
                    session="bob_session",
                    their_identity_key=self.alice_key,
                    message=body,
                    error=str(error),
                )
                return
            self.bob.remove_one_time_keys(session)
            self.sessions["bob"] = session
            assert text_of(decrypted) == text
            self.v.step(
                "session.create_inbound",
                account="bob",
                session="bob_session",
                their_identity_key=self.alice_key,
                message=body,
                plaintext=text,
                session_id=session.session_id(),
            )
            return
        try:
            decrypted = self.sessions[receiver].decrypt(message_type, body)
        except capi.OlmError as error:
            self.v.step(
                "session.decrypt",
                session=f"{receiver}_session",
                message_type=message_type,
                message=body,
                error=str(error),
            )
            return
        assert text_of(decrypted) == text and not tamper
        self.v.step(
            "session.decrypt",
            session=f"{receiver}_session",
            message_type=message_type,
            message=body,
            plaintext=text,
        )

    def matches(self, sender, i):
        receiver = "bob" if sender == "alice" else "alice"
        message_type, body, _ = self.sent[sender][i]
        assert message_type == 0
        result = self.sessions[receiver].matches_inbound(body)
        self.v.step("session.matches_inbound", session=f"{receiver}_session", message=body, matches=result)

    def pickle(self, key=None):
        key = self.pickle_key if key is None else key
        for name in ["alice", "bob"]:
            if self.sessions[name] is not None:
                self.v.step(
                    "session.pickle",
                    session=f"{name}_session",
                    pickle_key=key.hex(),
                    pickle=self.sessions[name].pickle(key),
                )
        pickle_account(self.v, "bob", self.bob, key)


def run_script(c, script):
    """A: / B: send; >B n / >A n deliver the n-th message of the other side; more below."""
    for event in script:
        kind, _, arg = event.partition(" ")
        if kind == "A":
            c.send("alice", plaintext(int(arg)) if arg else "from Alice")
        elif kind == "B":
            c.send("bob", plaintext(int(arg)) if arg else "from Bob")
        elif kind == ">B":
            c.deliver("alice", int(arg))
        elif kind == ">A":
            c.deliver("bob", int(arg))
        elif kind == "!B":  # a tampered copy of Alice's n-th message, to Bob
            c.deliver("alice", int(arg), tamper=True)
        elif kind == "!A":
            c.deliver("bob", int(arg), tamper=True)
        elif kind == "?B":  # does Bob's session match Alice's n-th (pre-key) message?
            c.matches("alice", int(arg))
        elif kind == "P":
            c.pickle()
        else:
            raise ValueError(event)


def ping_pong(rounds, start=0):
    script = []
    for r in range(rounds):
        script += [f"A {start + 2 * r}", f">B {r}", f"B {start + 2 * r + 1}", f">A {r}"]
    return script


def gap_script(gaps):
    """Bursts of gap + 1 messages, alternately from Alice and Bob, each answered by its last
    message only (so the receiver stores gap skipped keys), with a pickle after each."""
    script = []
    a_sent = b_sent = 0
    for turn, gap in enumerate(gaps):
        if turn % 2 == 0:
            script += [f"A {k}" for k in range(gap + 1)]
            script += [f">B {a_sent + gap}"]
            a_sent += gap + 1
        else:
            script += [f"B {k}" for k in range(gap + 1)]
            script += [f">A {b_sent + gap}"]
            b_sent += gap + 1
        script += ["P"]
        if turn % 2 == 0:
            script += ["B 1", f">A {b_sent}"]
            b_sent += 1
        else:
            script += ["A 1", f">B {a_sent}"]
            a_sent += 1
    return script + ["P"]


def olm_sessions():
    vectors = []
    scenarios = []
    # Ping-pong: every message steps the ratchet.
    for rounds in range(1, 9):
        scenarios.append((f"ping-pong {rounds} round(s): every reply steps the ratchet", {}, ping_pong(rounds, rounds)))
    # Bursts: several messages per chain, both ways.
    for a, b in [(2, 1), (3, 3), (1, 4), (5, 2), (4, 4), (6, 1)]:
        script = []
        for k in range(a):
            script += [f"A {k}"]
        for k in range(a):
            script += [f">B {k}"]
        for k in range(b):
            script += [f"B {k + 3}"]
        for k in range(b):
            script += [f">A {k}"]
        script += ["A 7", f">B {a}", "B 8", f">A {b}", "P"]
        scenarios.append((f"bursts: {a} pre-key messages, then {b} replies, then one more each way", {}, script))
    # Out of order: skipped message keys are stored (and pickled) and used later.
    for order_a, order_b in [
        ([1, 0], [0]),
        ([2, 0, 1], [1, 0]),
        ([3, 1, 2, 0], [2, 0, 1]),
        ([0, 4, 2], [3, 0]),
        ([5, 0, 3, 1, 4, 2], [1]),
    ]:
        script = [f"A {k}" for k in range(max(order_a) + 1)]
        script += [f">B {order_a[0]}", "P"] + [f">B {k}" for k in order_a[1:]]
        script += [f"B {k + 2}" for k in range(max(order_b) + 1)]
        script += [f">A {order_b[0]}", "P"] + [f">A {k}" for k in order_b[1:]]
        script += ["A 9", f">B {max(order_a) + 1}", "P"]
        scenarios.append((f"out-of-order delivery: Bob receives {order_a}, Alice receives {order_b}", {}, script))
    # Skipped keys across several chains, then pickled (libolm keeps 40 per session).
    # (30, 1, 30): Bob skips 30 keys in each of two chains; libolm keeps the 40 newest of the
    # session, ferrolm 40 per chain and writes the 40 newest to libolm's pickle, which is then
    # libolm's pickle too (using a skipped key afterwards would not be: see the probes).
    for gaps, last in [
        ((10, 10), [">B 0"]),
        ((25, 20), [">B 0"]),
        ((39, 1), [">B 0"]),
        ((30, 30, 5), [">B 0"]),
        ((30, 1, 30), []),
    ]:
        scenarios.append(
            (
                f"skipped message keys across chains (gaps {gaps}), pickled"
                + (", then a skipped key used" if last else ""),
                {},
                gap_script(gaps) + last,
            )
        )
    # Several pre-key messages before the first reply; a late pre-key message after it.
    scenarios.append(("three pre-key messages, delivered in order, then a reply", {}, ["A 1", "A 2", "A 3", ">B 0", ">B 1", ">B 2", "B 4", ">A 0", "A 5", ">B 3", "P"]))
    scenarios.append(("a pre-key message delivered after the reply to a later one", {}, ["A 1", "A 2", ">B 1", "B 3", ">A 0", ">B 0", "A 4", ">B 2", "P"]))
    scenarios.append(("Alice keeps sending pre-key messages until Bob's reply arrives", {}, ["A 1", ">B 0", "B 2", "A 3", ">B 1", ">A 0", "A 4", ">B 2", "P"]))
    # Matching pre-key messages to sessions.
    scenarios.append(("a pre-key message matches the session it created", {}, ["A 1", ">B 0", "?B 0", "A 2", "?B 1", "P"]))
    # One-time key choice, several keys, fallback keys.
    for otks, claim in [(2, 1), (5, 4), (10, 3), (3, 0)]:
        scenarios.append((f"Bob has {otks} one-time keys and Alice claims key {claim}", {"bob_otks": otks, "claim": claim}, ping_pong(2) + ["P"]))
    for otks in [0, 1, 3]:
        scenarios.append((f"Alice claims Bob's fallback key (Bob also has {otks} one-time keys)", {"bob_otks": otks, "use_fallback": True}, ping_pong(2) + ["P"]))
    # Errors: a tampered MAC, a replayed message. The session must stay as it was.
    scenarios.append(("a tampered pre-key message is refused and keeps the one-time key", {}, ["A 1", "!B 0", "P", ">B 0", "B 2", ">A 0", "P"]))
    scenarios.append(("a tampered normal message is refused; the genuine one then decrypts", {}, ping_pong(1) + ["A 3", "!B 1", ">B 1", "B 4", "!A 1", ">A 1", "P"]))
    scenarios.append(("a replayed message is refused (its key was used)", {}, ping_pong(1) + ["A 3", ">B 1", ">B 1", "P", "B 4", ">A 1", ">A 1", "P"]))
    scenarios.append(("a tampered message that starts a new chain is refused; the ratchet does not step", {}, ["A 1", ">B 0", "B 2", "!A 0", "P", ">A 0", "A 3", ">B 1", "P"]))
    # Plaintext sizes: every entry of the plaintext table, both ways.
    for k in range(len(PLAINTEXTS)):
        scenarios.append((f"plaintext #{k} ({len(plaintext(k).encode())} bytes) both ways", {}, [f"A {k}", f">B 0", f"B {k}", f">A 0", f"A {k}", f">B 1", "P"]))
    # Long runs.
    scenarios.append(("20 messages from Alice in one chain, then 20 back", {}, [f"A {k}" for k in range(20)] + [f">B {k}" for k in range(20)] + [f"B {k}" for k in range(20)] + [f">A {k}" for k in range(20)] + ["P"]))
    scenarios.append(("50 single-message chains (ping-pong)", {}, ping_pong(25) + ["P"]))

    for n, (description, options, script) in enumerate(scenarios, 1):
        vid = f"olm/session/{n:03}"
        v = Vector(vid, "olm_session", description)
        c = Conversation(v, pickle_key=pickle_key_for(vid, n), **options)
        run_script(c, script)
        c.pickle(pickle_key_for(vid, n + 3))
        vectors.append(v.data)
    return vectors


# ---------------------------------------------------------------------------------------------
# Megolm
# ---------------------------------------------------------------------------------------------


def create_group(v, name):
    random = v.random(160)
    group = capi.OutboundGroupSession(random)
    v.step(
        "group.create",
        group=name,
        random=random.hex(),
        session_id=group.session_id(),
        session_key=group.session_key(),
        message_index=group.message_index(),
    )
    return group


def group_encrypt(v, name, group, text):
    message = group.encrypt(text)
    v.step("group.encrypt", group=name, plaintext=text, message=message)
    return message


def group_session_key(v, name, group):
    v.step("group.session_key", group=name, message_index=group.message_index(), session_key=group.session_key())


def inbound_create(v, name, session_key):
    inbound = capi.InboundGroupSession.create(session_key)
    v.step(
        "inbound.create",
        inbound=name,
        session_key=session_key,
        session_id=inbound.session_id(),
        first_known_index=inbound.first_known_index(),
    )
    return inbound


def inbound_import(v, name, exported):
    inbound = capi.InboundGroupSession.import_key(exported)
    v.step(
        "inbound.import",
        inbound=name,
        exported_key=exported,
        session_id=inbound.session_id(),
        first_known_index=inbound.first_known_index(),
    )
    return inbound


def inbound_decrypt(v, name, inbound, message, text=None):
    try:
        decrypted, index = inbound.decrypt(message)
    except capi.OlmError as error:
        v.step("inbound.decrypt", inbound=name, message=message, error=str(error))
        return
    if text is not None:
        assert text_of(decrypted) == text
    v.step("inbound.decrypt", inbound=name, message=message, plaintext=text_of(decrypted), message_index=index)


def inbound_export(v, name, inbound, index):
    exported = inbound.export(index)
    v.step("inbound.export", inbound=name, message_index=index, exported_key=exported)
    return exported


def inbound_verified(v, name, inbound):
    v.step("inbound.is_verified", inbound=name, verified=inbound.is_verified())


def megolm_outbound():
    vectors = []
    plans = [0, 1, 2, 3, 5, 8, 10, 12, 16, 20, 1, 4, 7, 11, 30, 2, 6, 9, 13, 25, 3, 14, 17, 19, 22, 40, 64, 5, 1, 0]
    for n, count in enumerate(plans, 1):
        vid = f"megolm/outbound/{n:03}"
        v = Vector(vid, "megolm_outbound", f"An outbound session from fixed randomness encrypts {count} message(s); a receiver decrypts them")
        group = create_group(v, "group")
        initial_key = group.session_key()
        messages = []
        for i in range(count):
            text = plaintext(n + i)
            messages.append((group_encrypt(v, "group", group, text), text))
            if i == count // 2:
                group_session_key(v, "group", group)
        group_session_key(v, "group", group)
        v.step("group.pickle", group="group", pickle_key=pickle_key_for(vid, n).hex(), pickle=group.pickle(pickle_key_for(vid, n)))
        inbound = inbound_create(v, "inbound", initial_key)
        # Decrypt in a scrambled order: later first, then earlier from the initial ratchet.
        order = list(range(count))
        order = order[count // 2 :] + order[: count // 2]
        for i in order:
            inbound_decrypt(v, "inbound", inbound, *messages[i])
        inbound_verified(v, "inbound", inbound)
        v.step("inbound.pickle", inbound="inbound", pickle_key=pickle_key_for(vid, n + 1).hex(), pickle=inbound.pickle(pickle_key_for(vid, n + 1)))
        for index in sorted({0, count // 2, count, count + 3}):
            inbound_export(v, "inbound", inbound, index)
        vectors.append(v.data)
    return vectors


def megolm_inbound():
    vectors = []
    # Late joiners: a session key shared after some messages cannot decrypt the earlier ones.
    for n, (before, after) in enumerate([(1, 1), (3, 2), (5, 5), (10, 1), (2, 8), (7, 3)], 1):
        vid = f"megolm/inbound/late-{n:03}"
        v = Vector(vid, "megolm_inbound", f"A receiver given the session key after {before} message(s) decrypts the {after} later one(s) only")
        group = create_group(v, "group")
        early = [(group_encrypt(v, "group", group, plaintext(i)), plaintext(i)) for i in range(before)]
        group_session_key(v, "group", group)
        inbound = inbound_create(v, "inbound", group.session_key())
        late = [(group_encrypt(v, "group", group, plaintext(before + i)), plaintext(before + i)) for i in range(after)]
        for message, text in late + early:
            inbound_decrypt(v, "inbound", inbound, message, text)
        v.step("inbound.pickle", inbound="inbound", pickle_key=pickle_key_for(vid, n).hex(), pickle=inbound.pickle(pickle_key_for(vid, n)))
        try:
            inbound_export(v, "inbound", inbound, 0)
            raise AssertionError("libolm exported an index before the first known one")
        except capi.OlmError as error:
            v.step("inbound.export", inbound="inbound", message_index=0, error=str(error))
        inbound_export(v, "inbound", inbound, before + after)
        vectors.append(v.data)
    # Forged and altered messages.
    for n in range(1, 5):
        vid = f"megolm/inbound/forged-{n:03}"
        v = Vector(vid, "megolm_inbound", "A message from another session (same index) and an altered message are refused; the genuine ones decrypt")
        group = create_group(v, "group")
        impostor = create_group(v, "impostor")
        inbound = inbound_create(v, "inbound", group.session_key())
        genuine = [group_encrypt(v, "group", group, plaintext(i + n)) for i in range(n)]
        forged = [group_encrypt(v, "impostor", impostor, plaintext(i)) for i in range(n)]
        inbound_decrypt(v, "inbound", inbound, forged[-1])
        inbound_decrypt(v, "inbound", inbound, flip_last_byte(genuine[-1]))
        for i, message in enumerate(genuine):
            inbound_decrypt(v, "inbound", inbound, message, plaintext(i + n))
        v.step("inbound.pickle", inbound="inbound", pickle_key=pickle_key_for(vid, n).hex(), pickle=inbound.pickle(pickle_key_for(vid, n)))
        vectors.append(v.data)
    # Exported keys (forwarded keys, backups): imported sessions are not verified at first.
    for n, (export_at, count) in enumerate([(0, 2), (1, 3), (3, 3), (5, 1), (0, 0), (2, 6)], 1):
        vid = f"megolm/inbound/import-{n:03}"
        v = Vector(vid, "megolm_inbound", f"A key exported at index {export_at} and imported decrypts from there on")
        group = create_group(v, "group")
        messages = [(group_encrypt(v, "group", group, plaintext(i)), plaintext(i)) for i in range(count + export_at)]
        inbound = inbound_create(v, "original", capi_group_key_at_zero(v))
        exported = inbound_export(v, "original", inbound, export_at)
        imported = inbound_import(v, "imported", exported)
        inbound_verified(v, "imported", imported)
        v.step("inbound.pickle", inbound="imported", pickle_key=pickle_key_for(vid, n).hex(), pickle=imported.pickle(pickle_key_for(vid, n)))
        for message, text in messages[export_at:]:
            inbound_decrypt(v, "imported", imported, message, text)
        if export_at:
            inbound_decrypt(v, "imported", imported, messages[0][0])
        inbound_export(v, "imported", imported, export_at + 1)
        vectors.append(v.data)
    return vectors


def capi_group_key_at_zero(v):
    """The session key at index 0 recorded by the vector's group.create step."""
    return v.data["steps"][0]["session_key"]


def megolm_import_decrypt():
    """libolm marks an imported session verified once a message decrypts with it."""
    vectors = []
    for n, (export_at, count) in enumerate([(0, 2), (2, 3)], 1):
        vid = f"probe/megolm/import-decrypt-{n:03}"
        v = Vector(vid, "megolm_inbound", f"A key exported at index {export_at}, imported, then decrypting {count} message(s): libolm then reports the session as verified")
        group = create_group(v, "group")
        messages = [(group_encrypt(v, "group", group, plaintext(i)), plaintext(i)) for i in range(count + export_at)]
        inbound = inbound_create(v, "original", capi_group_key_at_zero(v))
        exported = inbound_export(v, "original", inbound, export_at)
        imported = inbound_import(v, "imported", exported)
        inbound_verified(v, "imported", imported)
        for message, text in messages:
            inbound_decrypt(v, "imported", imported, message, text)
        inbound_verified(v, "imported", imported)
        v.step("inbound.pickle", inbound="imported", pickle_key=pickle_key_for(vid, n).hex(), pickle=imported.pickle(pickle_key_for(vid, n)))
        vectors.append(v.data)
    return vectors


def megolm_high_index():
    """The ratchet's turnovers: part 2 at 2^8, part 1 at 2^16, part 0 at 2^24, and the top.

    libolm cannot encrypt at index 2^24 without 2^24 encryptions, so the outbound session is
    moved there: libolm exports the ratchet at the start index from an inbound session
    (`olm_export_inbound_group_session`, libolm's own `megolm_advance_to`), and that ratchet
    replaces the one in libolm's pickle of the outbound session (see libolm_pickle.py).
    libolm then unpickles it and encrypts with single `megolm_advance` steps across the
    turnover, so the two ways libolm moves its ratchet check each other.
    """
    vectors = []
    turnovers = [
        (1 << 8, 2), (1 << 8, 40), (2 << 8, 3), (1 << 16, 2), (1 << 16, 300), (3 << 16, 1),
        (1 << 24, 2), (1 << 24, 257), (2 << 24, 3), ((1 << 24) + (1 << 16), 2), (1 << 31, 2),
        (0xFFFFFFFE, 0),
    ]
    for n, (turnover, before) in enumerate(turnovers, 1):
        start = turnover - before
        top = turnover == 0xFFFFFFFE
        count = 2 if top else min(before + 2, 5)
        vid = f"megolm/high-index/{n:03}"
        v = Vector(
            vid,
            "megolm_high_index",
            f"Around index {turnover:#x}: an outbound session moved to index {start:#x} encrypts "
            f"{count} message(s) from there; receivers from index 0 and from index {start:#x} decrypt them",
        )
        group = create_group(v, "group")
        exporter = inbound_create(v, "exporter", group.session_key())
        receiver = inbound_create(v, "from_zero", group.session_key()) if not top else None
        exports = {start, turnover - 1, turnover, turnover + 1, start + count}
        exports = sorted(i for i in exports if 0 <= i <= 0xFFFFFFFF)
        if exports[0] >= 1 << 31:
            # libolm exports at most 2^31 - 1 past its cached ratchet: step there first.
            exports.insert(0, (1 << 31) - 1)
        exported_at = {}
        for index in exports:
            exported_at[index] = inbound_export(v, "exporter", exporter, index)
        key = pickle_key_for(vid, n)
        moved = libolm_pickle.outbound_group_at(group.pickle(key), key, exported_at[start])
        group = capi.OutboundGroupSession.unpickle(key, moved)
        assert group.message_index() == start
        v.step(
            "group.unpickle",
            group="group",
            pickle_key=key.hex(),
            pickle=moved,
            session_id=group.session_id(),
            message_index=start,
            note="libolm's pickle of this session with its ratchet and counter replaced by those libolm "
            "exported at this index (generator/libolm_pickle.py); libolm unpickled it",
        )
        v.step("group.pickle", group="group", pickle_key=key.hex(), pickle=group.pickle(key))
        signed_at_start = group.session_key()
        v.step("group.session_key", group="group", message_index=start, session_key=signed_at_start)
        messages = [(group_encrypt(v, "group", group, plaintext(i)), plaintext(i)) for i in range(count)]
        group_session_key(v, "group", group)
        v.step("group.pickle", group="group", pickle_key=key.hex(), pickle=group.pickle(key))
        if not top:
            late = inbound_create(v, "late", group.session_key())
            v.step("inbound.pickle", inbound="late", pickle_key=key.hex(), pickle=late.pickle(key))
            inbound_export(v, "late", late, start + count)
            for message, text in messages:
                inbound_decrypt(v, "from_zero", receiver, message, text)
            v.step("inbound.pickle", inbound="from_zero", pickle_key=key.hex(), pickle=receiver.pickle(key))
        at_start = inbound_create(v, "at_start", signed_at_start)
        for message, text in reversed(messages):
            inbound_decrypt(v, "at_start", at_start, message, text)
        v.step("inbound.pickle", inbound="at_start", pickle_key=key.hex(), pickle=at_start.pickle(key))
        vectors.append(v.data)
    return vectors


def megolm_stepped_turnover():
    """Part 2's turnover at 2^8 reached by 260 single encryptions (no pickle editing)."""
    vid = "megolm/high-index/stepped-256"
    v = Vector(vid, "megolm_high_index", "An outbound session encrypts 260 messages one by one, across index 2^8; a receiver decrypts the last five and exports around the turnover")
    group = create_group(v, "group")
    receiver = inbound_create(v, "receiver", group.session_key())
    messages = [(group_encrypt(v, "group", group, f"message {i}"), f"message {i}") for i in range(260)]
    for message, text in messages[-5:] + messages[:2]:
        inbound_decrypt(v, "receiver", receiver, message, text)
    group_session_key(v, "group", group)
    v.step("group.pickle", group="group", pickle_key="00", pickle=group.pickle(b"\x00"))
    v.step("inbound.pickle", inbound="receiver", pickle_key="00", pickle=receiver.pickle(b"\x00"))
    for index in [254, 255, 256, 257, 260]:
        inbound_export(v, "receiver", receiver, index)
    return [v.data]


# ---------------------------------------------------------------------------------------------
# SAS
# ---------------------------------------------------------------------------------------------


def sas_vectors():
    vectors = []
    users = [
        ("@alice:example.org", "ALICEDEVICE", "@bob:example.org", "BOBDEVICE"),
        ("@a:b.c", "X", "@a:b.c", "Y"),
        ("@ünïcode:example.org", "DEV1", "@bob:matrix.org", "DEV2"),
    ]
    for n in range(1, 36):
        vid = f"sas/{n:03}"
        alice_user, alice_device, bob_user, bob_device = users[n % len(users)]
        transaction = f"txn{n:04}"
        v = Vector(vid, "sas", "Two SAS objects from fixed randomness exchange keys; bytes and both MAC methods, from both sides")
        random_a = v.random(32)
        alice = capi.Sas(random_a)
        v.step("sas.create", sas="alice", random=random_a.hex(), public_key=alice.public_key())
        random_b = v.random(32)
        bob = capi.Sas(random_b)
        v.step("sas.create", sas="bob", random=random_b.hex(), public_key=bob.public_key())
        alice.set_their_key(bob.public_key())
        v.step("sas.set_their_key", sas="alice", their_key=bob.public_key())
        bob.set_their_key(alice.public_key())
        v.step("sas.set_their_key", sas="bob", their_key=alice.public_key())
        info = (
            f"MATRIX_KEY_VERIFICATION_SAS|{alice_user}|{alice_device}|{alice.public_key()}|"
            f"{bob_user}|{bob_device}|{bob.public_key()}|{transaction}"
        )
        lengths = [6, 5, 32, 1, 100][n % 5 :: 2] or [6]
        for length in [6] + lengths:
            for name, sas in [("alice", alice), ("bob", bob)]:
                v.step("sas.generate_bytes", sas=name, info=info, length=length, bytes=sas.generate_bytes(info, length).hex())
        mac_info_base = f"MATRIX_KEY_VERIFICATION_MAC{alice_user}{alice_device}{bob_user}{bob_device}{transaction}"
        inputs = [
            ("ed25519:" + alice_device, alice.public_key()),
            ("KEY_IDS", f"ed25519:{alice_device},ed25519:masterkey"),
            ("", ""),
        ]
        for suffix, mac_input in inputs[: 1 + n % 3]:
            mac_info = mac_info_base + suffix
            for name, sas in [("alice", alice), ("bob", bob)]:
                v.step("sas.calculate_mac", sas=name, input=mac_input, info=mac_info, mac=sas.calculate_mac_fixed_base64(mac_input, mac_info))
                v.step("sas.calculate_mac_legacy", sas=name, input=mac_input, info=mac_info, mac=sas.calculate_mac_legacy(mac_input, mac_info))
        vectors.append(v.data)
    return vectors


# ---------------------------------------------------------------------------------------------
# PK encryption and signing
# ---------------------------------------------------------------------------------------------


def pk_vectors():
    vectors = []
    for n in range(1, 26):
        vid = f"pk/encryption/{n:03}"
        count = 1 + n % 3
        v = Vector(vid, "pk_encryption", f"A PK decryption key from fixed randomness; {count} message(s) encrypted to it with fixed ephemeral keys, then decrypted")
        random = v.random(32)
        decryption = capi.PkDecryption(random)
        v.step("pk_decryption.create", pk="backup", random=random.hex(), public_key=decryption.public_key)
        assert decryption.private_key() == random
        encryption = capi.PkEncryption(decryption.public_key)
        for i in range(count):
            text = plaintext(n + i)
            random = v.random(32)
            ciphertext, mac, ephemeral = encryption.encrypt(text, random)
            v.step(
                "pk_encryption.encrypt",
                recipient_key=decryption.public_key,
                plaintext=text,
                random=random.hex(),
                ciphertext=ciphertext,
                mac=mac,
                ephemeral_key=ephemeral,
            )
            assert text_of(decryption.decrypt(ciphertext, mac, ephemeral)) == text
            v.step("pk_decryption.decrypt", pk="backup", ciphertext=ciphertext, mac=mac, ephemeral_key=ephemeral, plaintext=text)
        if n % 5 == 0:
            # A message for another key: its MAC (over nothing) does not match.
            other = capi.PkDecryption(v.random(32))
            ciphertext, mac, ephemeral = capi.PkEncryption(other.public_key).encrypt("not for you", v.random(32))
            try:
                decryption.decrypt(ciphertext, mac, ephemeral)
                raise AssertionError("libolm decrypted a message for another key")
            except capi.OlmError as error:
                v.step("pk_decryption.decrypt", pk="backup", ciphertext=ciphertext, mac=mac, ephemeral_key=ephemeral, error=str(error))
        key = pickle_key_for(vid, n)
        v.step("pk_decryption.pickle", pk="backup", pickle_key=key.hex(), pickle=decryption.pickle(key))
        vectors.append(v.data)
    for n in range(1, 16):
        vid = f"pk/signing/{n:03}"
        v = Vector(vid, "pk_signing", "A PK signing key (cross-signing style) from a fixed seed signs messages")
        seed = v.random(32)
        signing = capi.PkSigning(seed)
        v.step("pk_signing.create", signing="key", seed=seed.hex(), public_key=signing.public_key)
        for i in range(1 + n % 3):
            message = SIGN_MESSAGES[(n + i) % len(SIGN_MESSAGES)] + (f" #{i}" if i else "")
            v.step("pk_signing.sign", signing="key", message=message, signature=signing.sign(message))
        vectors.append(v.data)
    return vectors


# ---------------------------------------------------------------------------------------------
# Pickles: libolm's pickles read back, re-pickled, and used
# ---------------------------------------------------------------------------------------------


def pickle_vectors():
    vectors = []
    # Accounts: unpickle, re-pickle under another key, keep going (key ids continue).
    for n in range(1, 9):
        vid = f"pickle/account/{n:03}"
        v = Vector(vid, "pickle", "A libolm account pickle is read, written again under another key, and the account keeps working")
        rng = Rng(f"{SCHEMA} setup {vid}")
        account = capi.Account(rng.take(64))
        account.generate_one_time_keys(n * 3, rng.take(32 * n * 3))
        for _ in range(n % 3):
            account.generate_fallback_key(rng.take(32))
        if n % 2:
            account.mark_keys_as_published()
        key_in, key_out = pickle_key_for(vid, n), pickle_key_for(vid, n + 1)
        v.step("account.unpickle", account="account", pickle_key=key_in.hex(), pickle=account.pickle(key_in), identity_keys=json.loads(account.identity_keys()))
        account_keys(v, "account", account)
        pickle_account(v, "account", account, key_out)
        v.step("account.sign", account="account", message="after unpickling", signature=account.sign("after unpickling"))
        generate_otks(v, "account", account, 2)
        generate_fallback(v, "account", account)
        pickle_account(v, "account", account, key_in)
        vectors.append(v.data)
    # Sessions: unpickled mid-conversation with skipped keys, then decrypt and encrypt.
    for n in range(1, 9):
        vid = f"pickle/session/{n:03}"
        v = Vector(vid, "pickle", "libolm session pickles taken mid-conversation (with skipped message keys) are read, written again, and the sessions continue")
        setup = Vector(f"{vid}/setup", "setup", "")
        c = Conversation(setup, pickle_key=b"setup")
        run_script(c, ping_pong(n % 3 + 1))
        held = [c.send("alice", plaintext(i)) for i in range(n + 1)]
        c.deliver("alice", held[-1])  # Bob stores n skipped keys
        key_in, key_out = pickle_key_for(vid, n), pickle_key_for(vid, n + 2)
        for name in ["alice", "bob"]:
            session = c.sessions[name]
            v.step("session.unpickle", session=f"{name}_session", pickle_key=key_in.hex(), pickle=session.pickle(key_in), session_id=session.session_id())
            v.step("session.pickle", session=f"{name}_session", pickle_key=key_out.hex(), pickle=session.pickle(key_out))
        # Continue the conversation in the vector itself.
        c.v = v
        for i in held[:-1]:
            c.deliver("alice", i)
        c.send("bob", plaintext(n + 4))
        c.deliver("bob", len(c.sent["bob"]) - 1)
        c.send("alice", plaintext(n + 5))
        c.deliver("alice", len(c.sent["alice"]) - 1)
        for name in ["alice", "bob"]:
            v.step("session.pickle", session=f"{name}_session", pickle_key=key_in.hex(), pickle=c.sessions[name].pickle(key_in))
        vectors.append(v.data)
    # Outbound and inbound group sessions.
    for n in range(1, 9):
        vid = f"pickle/group/{n:03}"
        v = Vector(vid, "pickle", "libolm group session pickles (outbound, and inbound after decrypting) are read, written again, and used")
        rng = Rng(f"{SCHEMA} setup {vid}")
        group = capi.OutboundGroupSession(rng.take(160))
        inbound = capi.InboundGroupSession.create(group.session_key())
        for i in range(n * 2):
            message = group.encrypt(plaintext(i))
            if i % 2:
                inbound.decrypt(message)
        key_in, key_out = pickle_key_for(vid, n), pickle_key_for(vid, n + 3)
        v.step("group.unpickle", group="group", pickle_key=key_in.hex(), pickle=group.pickle(key_in), session_id=group.session_id(), message_index=group.message_index())
        v.step("group.pickle", group="group", pickle_key=key_out.hex(), pickle=group.pickle(key_out))
        v.step("inbound.unpickle", inbound="inbound", pickle_key=key_in.hex(), pickle=inbound.pickle(key_in), session_id=inbound.session_id(), first_known_index=inbound.first_known_index())
        v.step("inbound.pickle", inbound="inbound", pickle_key=key_out.hex(), pickle=inbound.pickle(key_out))
        for i in range(2):
            message = group_encrypt(v, "group", group, plaintext(n + i))
            inbound_decrypt(v, "inbound", inbound, message, plaintext(n + i))
        v.step("group.pickle", group="group", pickle_key=key_in.hex(), pickle=group.pickle(key_in))
        v.step("inbound.pickle", inbound="inbound", pickle_key=key_in.hex(), pickle=inbound.pickle(key_in))
        inbound_export(v, "inbound", inbound, 1)
        vectors.append(v.data)
    # PK decryption keys.
    for n in range(1, 9):
        vid = f"pickle/pk-decryption/{n:03}"
        v = Vector(vid, "pickle", "A libolm PK decryption pickle is read, written again, and decrypts")
        rng = Rng(f"{SCHEMA} setup {vid}")
        decryption = capi.PkDecryption(rng.take(32))
        key_in, key_out = pickle_key_for(vid, n), pickle_key_for(vid, n + 1)
        v.step("pk_decryption.unpickle", pk="backup", pickle_key=key_in.hex(), pickle=decryption.pickle(key_in), public_key=decryption.public_key)
        v.step("pk_decryption.pickle", pk="backup", pickle_key=key_out.hex(), pickle=decryption.pickle(key_out))
        random = v.random(32)
        ciphertext, mac, ephemeral = capi.PkEncryption(decryption.public_key).encrypt(plaintext(n), random)
        v.step("pk_encryption.encrypt", recipient_key=decryption.public_key, plaintext=plaintext(n), random=random.hex(), ciphertext=ciphertext, mac=mac, ephemeral_key=ephemeral)
        v.step("pk_decryption.decrypt", pk="backup", ciphertext=ciphertext, mac=mac, ephemeral_key=ephemeral, plaintext=plaintext(n))
        vectors.append(v.data)
    # Wrong keys and altered pickles are refused, for every type.
    rng = Rng(f"{SCHEMA} setup pickle/errors")
    account = capi.Account(rng.take(64))
    group = capi.OutboundGroupSession(rng.take(160))
    inbound = capi.InboundGroupSession.create(group.session_key())
    decryption = capi.PkDecryption(rng.take(32))
    c = Conversation(Vector("pickle/errors/setup", "setup", ""))
    session = c.sessions["alice"]
    objects = [
        ("account", "account.unpickle", "account", account, capi.Account.unpickle),
        ("session", "session.unpickle", "session", session, capi.Session.unpickle),
        ("group", "group.unpickle", "group", group, capi.OutboundGroupSession.unpickle),
        ("inbound", "inbound.unpickle", "inbound", inbound, capi.InboundGroupSession.unpickle),
        ("pk-decryption", "pk_decryption.unpickle", "pk", decryption, capi.PkDecryption.unpickle),
    ]
    for label, op, field, obj, unpickle in objects:
        vid = f"pickle/errors/{label}"
        v = Vector(vid, "pickle", f"A {label} pickle under the wrong key, and one with a flipped ciphertext bit, are refused")
        pickle = obj.pickle(b"right key")
        altered = bytearray(b64decode(pickle))
        altered[len(altered) // 2] ^= 0x04
        altered = b64encode(bytes(altered))
        for key, text in [(b"wrong key", pickle), (b"right key", altered)]:
            try:
                unpickle(key, text)
                raise AssertionError("libolm accepted a bad pickle")
            except capi.OlmError as error:
                v.step(op, **{field: label}, pickle_key=key.hex(), pickle=text, error=str(error))
        vectors.append(v.data)
    return vectors


# ---------------------------------------------------------------------------------------------
# Olm: more than one session between the same two devices
# ---------------------------------------------------------------------------------------------


def olm_parallel_sessions():
    """Two sessions from Alice to Bob (two one-time keys): messages find their own session."""
    vectors = []
    for n in range(1, 7):
        vid = f"olm/parallel/{n:03}"
        v = Vector(vid, "olm_session", "Alice opens two sessions to Bob with two one-time keys; each pre-key message matches only its own session, and both sessions work side by side")
        alice = create_account(v, "alice")
        bob = create_account(v, "bob")
        generate_otks(v, "bob", bob, 3 + n % 3)
        otks = list(keys_json(bob.one_time_keys()).values())
        bob.mark_keys_as_published()
        v.step("account.mark_keys_as_published", account="bob")
        alice_key = json.loads(alice.identity_keys())["curve25519"]
        bob_key = json.loads(bob.identity_keys())["curve25519"]
        outbound, inbound, first = {}, {}, {}
        for k in (1, 2):
            random = v.random(64)
            outbound[k] = capi.Session.outbound(alice, bob_key, otks[k - 1 + (n % 2)], random)
            v.step("session.create_outbound", account="alice", session=f"alice_{k}", their_identity_key=bob_key, their_one_time_key=otks[k - 1 + (n % 2)], random=random.hex(), session_id=outbound[k].session_id())
        for k in (2, 1):
            random = v.random(outbound[k].encrypt_random_length())
            text = plaintext(n + k)
            message_type, body = outbound[k].encrypt(text, random)
            v.step("session.encrypt", session=f"alice_{k}", plaintext=text, random=random.hex(), message_type=message_type, message=body)
            first[k] = body
            session = capi.Session.inbound(bob, body, alice_key)
            assert text_of(session.decrypt(message_type, body)) == text
            bob.remove_one_time_keys(session)
            inbound[k] = session
            v.step("session.create_inbound", account="bob", session=f"bob_{k}", their_identity_key=alice_key, message=body, plaintext=text, session_id=session.session_id())
        for k in (1, 2):
            for j in (1, 2):
                v.step("session.matches_inbound", session=f"bob_{k}", message=first[j], matches=inbound[k].matches_inbound(first[j]))
        for k in (1, 2):
            random = v.random(inbound[k].encrypt_random_length())
            message_type, body = inbound[k].encrypt(f"reply on session {k}", random)
            v.step("session.encrypt", session=f"bob_{k}", plaintext=f"reply on session {k}", random=random.hex(), message_type=message_type, message=body)
            assert text_of(outbound[k].decrypt(message_type, body)) == f"reply on session {k}"
            v.step("session.decrypt", session=f"alice_{k}", message_type=message_type, message=body, plaintext=f"reply on session {k}")
        key = pickle_key_for(vid, n)
        for name, session in [("alice_1", outbound[1]), ("alice_2", outbound[2]), ("bob_1", inbound[1]), ("bob_2", inbound[2])]:
            v.step("session.pickle", session=name, pickle_key=key.hex(), pickle=session.pickle(key))
        pickle_account(v, "bob", bob, key)
        vectors.append(v.data)
    return vectors


# ---------------------------------------------------------------------------------------------
# Matrix formats outside libolm: key export files, secret storage, recovery keys
# ---------------------------------------------------------------------------------------------
#
# libolm has none of these, so these vectors come from an independent implementation of the
# Matrix specification written here with hashlib, hmac and python3-cryptography. Where the
# specification leaves a choice open, Element's (matrix-react-sdk's MegolmExportEncryption and
# matrix-js-sdk's secret storage) is taken; the README says which.

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
import base64 as _base64

BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def aes_ctr(key, iv, data):
    encryptor = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def base58(data):
    number = int.from_bytes(data, "big")
    out = ""
    while number:
        number, digit = divmod(number, 58)
        out = BASE58[digit] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def key_export_file(payload):
    """Element's armour: 96 payload bytes (128 base64 characters) per line, a final newline."""
    lines = ["-----BEGIN MEGOLM SESSION DATA-----"]
    for i in range(0, len(payload), 96):
        lines.append(_base64.b64encode(payload[i : i + 96]).decode())
    lines += ["-----END MEGOLM SESSION DATA-----", ""]
    return "\n".join(lines)


def matrix_vectors():
    vectors = []
    room_keys = [
        "[]",
        '[{"algorithm":"m.megolm.v1.aes-sha2","room_id":"!room:example.org","sender_key":"key","session_id":"id","session_key":"AQAAAAA","sender_claimed_keys":{},"forwarding_curve25519_key_chain":[]}]',
        "x" * 300,
        "ünïcödé",
    ]
    for n, (passphrase, rounds) in enumerate([("correct horse battery staple", 10), ("p", 1), ("ünïcode pass", 100), ("", 1000), ("long " * 30, 2), ("pass", 5000), ("x", 3), ("y", 7)], 1):
        vid = f"matrix/key-export/{n:03}"
        v = Vector(vid, "key_export", f"A key export file ({rounds} PBKDF2 rounds) from a fixed salt and IV")
        plain = room_keys[n % len(room_keys)]
        random = v.random(32)
        salt, iv = random[:16], bytearray(random[16:])
        iv[8] &= 0x7F
        keys = hashlib.pbkdf2_hmac("sha512", passphrase.encode(), salt, rounds, 64)
        body = b"\x01" + salt + bytes(iv) + rounds.to_bytes(4, "big") + aes_ctr(keys[:32], bytes(iv), plain.encode())
        payload = body + hmac.new(keys[32:], body, hashlib.sha256).digest()
        v.step("key_export.encrypt", passphrase=passphrase, rounds=rounds, plaintext=plain, random=random.hex(), payload=b64encode(payload), file=key_export_file(payload))
        vectors.append(v.data)
    for n in range(1, 13):
        vid = f"matrix/secret-storage/{n:03}"
        v = Vector(vid, "secret_storage", "A secret encrypted under a secret storage key (m.secret_storage.v1.aes-hmac-sha2) with a fixed IV, and the key's check")
        key = Rng(f"{SCHEMA} key {vid}").take(32)
        name = ["m.cross_signing.master", "m.cross_signing.self_signing", "m.cross_signing.user_signing", "m.megolm_backup.v1", "", "ünïcode.secret"][n % 6]
        secret = b64encode(Rng(f"{SCHEMA} secret {vid}").take(32)) if n % 3 else "a longer secret " * (n + 1)
        okm = libolm_pickle.hkdf_sha256(bytes(32), key, name.encode(), 64)
        random = v.random(16)
        iv = bytearray(random)
        iv[8] &= 0x7F
        ciphertext = aes_ctr(okm[:32], bytes(iv), secret.encode())
        mac = hmac.new(okm[32:], ciphertext, hashlib.sha256).digest()
        v.step("secret_storage.encrypt", key=key.hex(), name=name, secret=secret, random=random.hex(), iv=b64encode(bytes(iv)), ciphertext=b64encode(ciphertext), mac=b64encode(mac))
        random = v.random(16)
        iv = bytearray(random)
        iv[8] &= 0x7F
        okm = libolm_pickle.hkdf_sha256(bytes(32), key, b"", 64)
        mac = hmac.new(okm[32:], aes_ctr(okm[:32], bytes(iv), bytes(32)), hashlib.sha256).digest()
        v.step("secret_storage.key_check", key=key.hex(), random=random.hex(), iv=b64encode(bytes(iv)), mac=b64encode(mac))
        raw = b"\x8b\x01" + key
        parity = 0
        for b in raw:
            parity ^= b
        encoded = base58(raw + bytes([parity]))
        recovery = " ".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))
        v.step("secret_storage.recovery_key", key=key.hex(), recovery_key=recovery)
        vectors.append(v.data)
    for n, (passphrase, salt, iterations) in enumerate([("correct horse", "salt", 1), ("pässphrase", "0123456789abcdef0123456789abcdef", 1000), ("", "s", 10), ("x" * 100, "long salt " * 5, 2)], 1):
        vid = f"matrix/passphrase/{n:03}"
        v = Vector(vid, "secret_storage", "A secret storage key from a passphrase (m.pbkdf2: PBKDF2-HMAC-SHA-512, 256 bits)")
        key = hashlib.pbkdf2_hmac("sha512", passphrase.encode(), salt.encode(), iterations, 32)
        v.step("secret_storage.from_passphrase", passphrase=passphrase, salt=salt, iterations=iterations, key=key.hex())
        vectors.append(v.data)
    return vectors


# ---------------------------------------------------------------------------------------------
# Probes: libolm behaviour ferrolm deliberately does not reproduce (not part of the suite)
# ---------------------------------------------------------------------------------------------


def probe_vectors():
    vectors = list(megolm_import_decrypt())
    # libolm keeps at most 100 one-time keys and evicts the oldest; ferrolm keeps up to 5000
    # and refuses to write more than 100 into a libolm pickle.
    vid = "probe/account/101-one-time-keys"
    v = Vector(vid, "probe", "libolm evicts the oldest one-time key past 100; its pickle then holds the 100 newest")
    account = create_account(v, "account")
    generate_otks(v, "account", account, 100)
    account.mark_keys_as_published()
    v.step("account.mark_keys_as_published", account="account")
    generate_otks(v, "account", account, 2)
    pickle_account(v, "account", account, b"probe")
    vectors.append(v.data)
    # libolm's export moves the inbound session's cached ratchet forward (and so its pickle).
    vid = "probe/megolm/export-moves-the-cached-ratchet"
    v = Vector(vid, "probe", "libolm's olm_export_inbound_group_session advances the session's latest (cached) ratchet, which its pickle then shows")
    group = create_group(v, "group")
    inbound = inbound_create(v, "inbound", group.session_key())
    inbound_export(v, "inbound", inbound, 5)
    v.step("inbound.pickle", inbound="inbound", pickle_key="70726f6265", pickle=inbound.pickle(b"probe"))
    vectors.append(v.data)
    # libolm refuses to export or decrypt 2^31 or more indices past what it knows.
    vid = "probe/megolm/more-than-2^31-ahead"
    v = Vector(vid, "probe", "libolm refuses to export an index 2^31 or more past the session's ratchets; ferrolm exports it")
    group = create_group(v, "group")
    inbound = inbound_create(v, "inbound", group.session_key())
    try:
        inbound.export(1 << 31)
        raise AssertionError("libolm exported 2^31 ahead")
    except capi.OlmError as error:
        v.step("inbound.export", inbound="inbound", message_index=1 << 31, error=str(error))
    vectors.append(v.data)
    # libolm keeps 40 skipped message keys per session, ferrolm 40 per receiving chain.
    vid = "probe/olm/skipped-keys-pickled-after-use"
    v = Vector(vid, "probe", "After 30 + 30 skipped keys in two chains libolm holds the 40 newest; once two are used, libolm's pickle holds 38 and ferrolm's the 40 newest of the 58 it still has")
    c = Conversation(v)
    run_script(c, gap_script((30, 1, 30)) + [">B 25", ">B 40", "P"])
    vectors.append(v.data)
    vid = "probe/olm/skipped-keys-per-session"
    v = Vector(vid, "probe", "libolm keeps 40 skipped message keys per session: skipping 30 in each of two chains evicts the oldest of the first")
    c = Conversation(v)
    run_script(c, ["A 1", ">B 0", "B 1", ">A 0"] + [f"A {k}" for k in range(30)] + [">B 30", "B 2", ">A 1"] + [f"A {k}" for k in range(30)] + [">B 60", ">B 1"])
    vectors.append(v.data)
    return vectors


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


FILES = {
    "primitives.json": ("primitives", "RFC 7748 (X25519), RFC 8032 (Ed25519), RFC 5869 (HKDF-SHA-256) and RFC 4231 (HMAC-SHA-256) test vectors, copied from the RFCs and checked by computation", [primitives]),
    "olm.json": ("olm", "libolm accounts (identity, one-time and fallback keys, signatures) and Olm sessions (pre-key and normal messages, ratchet steps, out-of-order delivery, errors)", [olm_accounts, olm_sessions, olm_parallel_sessions]),
    "megolm.json": ("megolm", "libolm outbound and inbound Megolm sessions: creation, encryption, decryption, session keys, exports and imports, the 2^8, 2^16 and 2^24 turnovers", [megolm_outbound, megolm_inbound, megolm_stepped_turnover, megolm_high_index]),
    "sas.json": ("sas", "libolm SAS: ephemeral keys, generated bytes, hkdf-hmac-sha256.v2 MACs and the legacy hkdf-hmac-sha256 MACs", [sas_vectors]),
    "pk.json": ("pk", "libolm PK encryption (megolm_backup.v1) and PK signing", [pk_vectors]),
    "matrix.json": ("matrix", "Matrix formats libolm does not have (key export files, secret storage, recovery keys, passphrase keys), from an independent Python implementation of the specification", [matrix_vectors]),
    "pickles.json": ("pickles", "libolm pickles of every type read back, written again under other keys, and used; refused when the key is wrong or the pickle altered", [pickle_vectors]),
}


def write(path, category, description, source, vectors):
    document = {
        "schema": SCHEMA,
        "category": category,
        "description": description,
        "source": source,
        "generator": "test-vectors/generator/generate.py",
        "vector_count": len(vectors),
        "vectors": vectors,
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=1, ensure_ascii=False)
        f.write("\n")


def main():
    args = sys.argv[1:]
    probes_dir = None
    if len(args) == 3 and args[1] == "--probes":
        probes_dir = args[2]
        args = args[:1]
    if len(args) != 1:
        sys.exit("usage: generate.py OUTPUT_DIR [--probes PROBES_DIR]")
    out_dir = args[0]
    version = capi.library_version()
    if version != EXPECTED_LIBOLM:
        sys.exit(f"libolm {version} found, {EXPECTED_LIBOLM} expected")
    libolm_source = f"libolm {version} C API (Debian libolm3 3.2.13~dfsg-1, through python3-olm's cffi module)"
    sources = {
        "primitives": "RFC 7748, RFC 8032, RFC 5869, RFC 4231 (values copied from the RFCs, checked by computation)",
        "matrix": "the Matrix specification, implemented independently in the generator (hashlib, hmac, python3-cryptography)",
    }
    total = 0
    ids = set()
    for file_name, (category, description, builders) in FILES.items():
        vectors = [vector for build in builders for vector in build()]
        for vector in vectors:
            assert vector["id"] not in ids, vector["id"]
            ids.add(vector["id"])
        write(os.path.join(out_dir, file_name), category, description, sources.get(category, libolm_source), vectors)
        total += len(vectors)
        print(f"{file_name}: {len(vectors)} vectors")
    print(f"total: {total} vectors")
    if probes_dir is not None:
        vectors = probe_vectors()
        write(
            os.path.join(probes_dir, "probes.json"),
            "probes",
            "libolm behaviour that ferrolm deliberately does not reproduce: NOT part of the suite; replaying these shows the differences",
            libolm_source,
            vectors,
        )
        print(f"probes.json: {len(vectors)} probes (in {probes_dir})")


if __name__ == "__main__":
    main()
