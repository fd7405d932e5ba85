"""ferrolm from Python, through uniffi's generated module (bindings/python/build.sh).

The FFI edge as the issue 10 review met it from Python, the same checks as Kotlin's Edge.kt,
Swift's EdgeTests.swift and JavaScript's edge.ts: error names that shadow nothing, human
messages in str(), Olm message types as Matrix's integers, v1 defaults and named version
mismatches, export_at of a forgotten index; and an Olm + Megolm round trip.
"""

import builtins
import pickle
import unittest

import ferrolm_ffi as f

ERRORS = [
    f.FerrolmOlmError, f.FerrolmMegolmError, f.FerrolmSasError, f.FerrolmPkError,
    f.FerrolmPickleError, f.FerrolmKeyExportError, f.FerrolmSecretStorageError, f.FerrolmUtilityError,
]


def one_time_keys(account, count):
    account.generate_one_time_keys(count)
    keys = list(account.one_time_keys().values())
    account.mark_keys_as_published()
    return keys


class Edge(unittest.TestCase):
    def assert_message(self, expected, error):
        self.assertEqual(str(error), expected)
        self.assertEqual(error.describe(), expected)
        self.assertIn(expected, repr(error))

    def test_error_names_shadow_no_builtin(self):
        for error in ERRORS:
            self.assertTrue(error.__name__.startswith("Ferrolm"), error.__name__)
            self.assertFalse(hasattr(builtins, error.__name__), error.__name__)
            self.assertFalse(hasattr(pickle, error.__name__), error.__name__)
            self.assertTrue(issubclass(error, Exception))
        self.assertFalse(hasattr(f, "KeyError"), "the module defines a KeyError")
        # The utility error is not a lookup error.
        with self.assertRaises(f.FerrolmUtilityError) as caught:
            f.base64_decode("b2x!")
        self.assertNotIsInstance(caught.exception, LookupError)

    def test_every_error_type_has_its_human_message(self):
        alice, bob = f.Account(), f.Account()
        session = alice.create_outbound_session(bob.curve25519_key(), one_time_keys(bob, 1)[0])
        first = session.encrypt(b"hi")
        bob_session = bob.create_inbound_session(alice.curve25519_key(), first.body).session
        reply = bytearray(f.base64_decode(bob_session.encrypt(b"x").body))
        reply[-12] ^= 1
        with self.assertRaises(f.FerrolmOlmError.InvalidMac) as caught:
            session.decrypt(f.OlmMessage(message_type=f.MessageType.NORMAL, body=f.base64_encode(bytes(reply))))
        self.assert_message("the message's MAC does not match: it was altered, or is not for this session", caught.exception)

        outbound = f.GroupSession()
        inbound = f.InboundGroupSession(outbound.session_key())
        messages = [outbound.encrypt(b"m") for _ in range(5)]
        late = f.InboundGroupSession.from_exported_key(inbound.export_at(3))
        with self.assertRaises(f.FerrolmMegolmError.UnknownMessageIndex) as caught:
            late.decrypt(messages[1])
        self.assert_message("index 1 is before this session's first known index 3", caught.exception)

        with self.assertRaises(f.FerrolmPickleError.InvalidKeyLength) as caught:
            alice.pickle(bytes(31))
        self.assert_message("the pickle key is 31 bytes long, not 32", caught.exception)
        sas = f.Sas()
        sas.diffie_hellman(f.Sas().public_key())
        with self.assertRaises(f.FerrolmSasError.AlreadyUsed) as caught:
            sas.diffie_hellman(f.Sas().public_key())
        self.assert_message("this SAS object's key was already used: each SAS key is used once", caught.exception)
        backup = f.PkEncryption.from_key(f.PkDecryption().public_key()).encrypt(bytes(4))
        with self.assertRaises(f.FerrolmPkError.InvalidMac) as caught:
            f.PkDecryption().decrypt(backup)
        self.assert_message("the MAC does not match: the message is for another backup key", caught.exception)
        with self.assertRaises(f.FerrolmSecretStorageError.InvalidKeyLength) as caught:
            f.SecretStorageKey.from_bytes(bytes(16))
        self.assert_message("the key is 16 bytes long, not 32", caught.exception)
        with self.assertRaises(f.FerrolmKeyExportError.MissingHeader) as caught:
            f.key_export_decrypt("hello", "x")
        self.assert_message("the file has no BEGIN MEGOLM SESSION DATA line", caught.exception)
        with self.assertRaises(f.FerrolmUtilityError.InvalidBase64) as caught:
            f.base64_decode("b2x!")
        self.assert_message("the input is not valid base64", caught.exception)

    def test_olm_message_types_cross_as_matrix_integers(self):
        self.assertEqual(f.message_type_to_int(f.MessageType.PRE_KEY), 0)
        self.assertEqual(f.message_type_to_int(f.MessageType.NORMAL), 1)
        self.assertEqual(f.message_type_from_int(0), f.MessageType.PRE_KEY)
        self.assertEqual(f.message_type_from_int(1), f.MessageType.NORMAL)
        with self.assertRaises(f.FerrolmOlmError.UnknownMessageType) as caught:
            f.message_type_from_int(2)
        self.assertEqual(caught.exception.message_type, 2)
        self.assert_message("unknown Olm message type 2: 0 is a pre-key message, 1 a normal message", caught.exception)

        alice, bob = f.Account(), f.Account()
        sent = alice.create_outbound_session(bob.curve25519_key(), one_time_keys(bob, 1)[0]).encrypt(b"as JSON")
        # {"type": 0, "body": "..."} as it arrives in a to-device event.
        event = {"type": f.message_type_to_int(sent.message_type), "body": sent.body}
        received = f.olm_message_from_parts(event["type"], event["body"])
        self.assertEqual(received, sent)
        self.assertEqual(bob.create_inbound_session(alice.curve25519_key(), received.body).plaintext, b"as JSON")
        with self.assertRaises(f.FerrolmOlmError.UnknownMessageType):
            f.olm_message_from_parts(7, sent.body)

    def test_session_versions_default_to_v1_and_a_mismatch_names_both(self):
        outbound = f.GroupSession()
        self.assertEqual(outbound.version(), f.SessionVersion.V1)
        inbound = f.InboundGroupSession(outbound.session_key())
        self.assertEqual(inbound.version(), f.SessionVersion.V1)
        alice, bob = f.Account(), f.Account()
        bob.generate_one_time_keys(2)
        (otk1_id, otk1), (otk2_id, otk2) = bob.one_time_keys().items()
        bob.mark_keys_as_published()
        self.assertEqual(alice.create_outbound_session(bob.curve25519_key(), otk1).version(), f.SessionVersion.V1)

        first = alice.create_outbound_session(bob.curve25519_key(), otk2, f.SessionVersion.V2).encrypt(b"v2")
        with self.assertRaises(f.FerrolmOlmError.VersionMismatch) as caught:
            bob.create_inbound_session(alice.curve25519_key(), first.body)
        self.assertEqual((caught.exception.expected, caught.exception.got), (f.SessionVersion.V1, f.SessionVersion.V2))
        self.assert_message("the message is a v2 message, but the session is v1", caught.exception)
        created = bob.create_inbound_session(alice.curve25519_key(), first.body, f.SessionVersion.V2)
        self.assertEqual(created.session.version(), f.SessionVersion.V2)
        self.assertEqual(created.consumed_key, f.ConsumedKey.ONE_TIME(key_id=otk2_id))

        v2 = f.InboundGroupSession(outbound.session_key(), f.SessionVersion.V2)
        with self.assertRaises(f.FerrolmMegolmError.VersionMismatch) as caught:
            v2.decrypt(outbound.encrypt(b"x"))
        self.assert_message("the message is a v1 message, but the session is v2", caught.exception)

    def test_export_at_an_unknown_index_raises(self):
        outbound = f.GroupSession()
        late = f.InboundGroupSession.from_exported_key(f.InboundGroupSession(outbound.session_key()).export_at(3))
        with self.assertRaises(f.FerrolmMegolmError.UnknownMessageIndex) as caught:
            late.export_at(2)
        self.assertEqual((caught.exception.first_known, caught.exception.requested), (3, 2))
        self.assert_message("index 2 is before this session's first known index 3", caught.exception)
        self.assertEqual(late.export_at(3), late.export_at_first_known_index())


class RoundTrip(unittest.TestCase):
    def test_olm_and_megolm(self):
        alice, bob = f.Account(), f.Account()
        alice_session = alice.create_outbound_session(bob.curve25519_key(), one_time_keys(bob, 1)[0])
        created = bob.create_inbound_session(alice.curve25519_key(), alice_session.encrypt(b"hello").body)
        self.assertEqual(created.plaintext, b"hello")
        bob_session = created.session
        for i in range(10):
            self.assertEqual(alice_session.decrypt(bob_session.encrypt(b"b%d" % i)), b"b%d" % i)
            self.assertEqual(bob_session.decrypt(alice_session.encrypt(b"a%d" % i)), b"a%d" % i)
        outbound = f.GroupSession()
        inbound = f.InboundGroupSession(bob_session.decrypt(alice_session.encrypt(outbound.session_key().encode())).decode())
        for i in range(10):
            decrypted = inbound.decrypt(outbound.encrypt(b"room %d" % i))
            self.assertEqual((decrypted.plaintext, decrypted.message_index), (b"room %d" % i, i))


if __name__ == "__main__":
    unittest.main()
