// Bad input of every kind reaches Swift as the module's own error enum, in the expected case
// (never uniffi's internal error, which would mean a Rust panic), and the process carries on.
import Foundation
import XCTest
import Ferrolm

final class ErrorTests: XCTestCase {
    private let pickleKey = Data((0..<32).map { UInt8($0) })

    func testWrongLengthKeys() throws {
        let account = Account()
        let bob = Account()
        _ = bob.generateOneTimeKeys(count: 1)
        let otk = try XCTUnwrap(bob.oneTimeKeys().values.first)
        let short = base64Encode(bytes: Data(count: 31))
        assertThrows(
            FerrolmOlmError.InvalidKeyLength(expected: 32, got: 31),
            try account.createOutboundSession(identityKey: short, oneTimeKey: otk, version: .v1)
        )
        assertThrows(
            FerrolmOlmError.InvalidKeyLength(expected: 32, got: 33),
            try account.createOutboundSession(identityKey: bob.curve25519Key(), oneTimeKey: base64Encode(bytes: Data(count: 33)), version: .v1)
        )
        assertThrows(FerrolmSasError.InvalidKeyLength(expected: 32, got: 31), try Sas().diffieHellman(theirPublicKey: short))
        assertThrows(FerrolmPkError.InvalidKeyLength(expected: 32, got: 31), try PkDecryption.fromBytes(secretKey: Data(count: 31)))
        assertThrows(FerrolmPkError.InvalidKeyLength(expected: 32, got: 64), try PkSigning.fromSeed(seed: Data(count: 64)))
        assertThrows(FerrolmPkError.InvalidKeyLength(expected: 32, got: 31), try PkEncryption.fromKey(publicKey: short))
        assertThrows(FerrolmSecretStorageError.InvalidKeyLength(expected: 32, got: 16), try SecretStorageKey.fromBytes(key: Data(count: 16)))
        assertThrows(FerrolmPickleError.InvalidKeyLength(expected: 32, got: 16), try account.pickle(pickleKey: Data(count: 16)))
        assertThrows(
            FerrolmPickleError.InvalidKeyLength(expected: 32, got: 0),
            try Account.fromPickle(pickle: account.pickle(pickleKey: pickleKey), pickleKey: Data())
        )
        let sessionKey = try base64Decode(input: GroupSession(version: .v1).sessionKey())
        XCTAssertEqual(sessionKey.count, 229, "a signed session key's length")
        assertThrows(
            FerrolmMegolmError.InvalidKeyLength(expected: 229, got: 100),
            try InboundGroupSession(sessionKey: base64Encode(bytes: sessionKey.prefix(100)), version: .v1)
        )
        assertThrows(
            FerrolmUtilityError.InvalidKeyLength(expected: 64, got: 3),
            try ed25519Verify(publicKey: account.ed25519Key(), message: Data(), signature: "AAAA")
        )
    }

    func testInvalidBase64() throws {
        let account = Account()
        assertThrows(FerrolmOlmError.InvalidBase64, try account.createOutboundSession(identityKey: "!!", oneTimeKey: "!!", version: .v1))
        assertThrows(FerrolmOlmError.InvalidBase64, try account.createInboundSession(identityKey: account.curve25519Key(), preKeyMessage: "not base64"))
        assertThrows(FerrolmMegolmError.InvalidBase64, try InboundGroupSession(sessionKey: "@@@", version: .v1))
        assertThrows(FerrolmMegolmError.InvalidBase64, try InboundGroupSession.fromExportedKey(exportedKey: "@@@", version: .v1))
        assertThrows(FerrolmSasError.InvalidBase64, try Sas().diffieHellman(theirPublicKey: "#"))
        assertThrows(
            FerrolmPkError.InvalidBase64(field: "ciphertext"),
            try PkDecryption().decrypt(message: PkMessage(ciphertext: "*", mac: "AAAAAAAAAAA", ephemeralKey: account.curve25519Key()))
        )
        assertThrows(
            FerrolmSecretStorageError.InvalidBase64(field: "IV"),
            try SecretStorageKey().decrypt(name: "m.x", secret: EncryptedSecret(iv: "*", ciphertext: "", mac: ""))
        )
        assertThrows(FerrolmUtilityError.InvalidBase64, try base64Decode(input: "b2x!"))
        assertThrows(
            FerrolmKeyExportError.InvalidBase64,
            try keyExportDecrypt(file: "-----BEGIN MEGOLM SESSION DATA-----\n%%%%\n-----END MEGOLM SESSION DATA-----", passphrase: "pw")
        )
    }

    func testMalformedAndMismatchedPickles() throws {
        let account = Account()
        let pickle = try account.pickle(pickleKey: pickleKey)
        assertThrows(FerrolmPickleError.InvalidBase64, try Account.fromPickle(pickle: "not a pickle!", pickleKey: pickleKey))
        assertThrows(FerrolmPickleError.TooShort, try Account.fromPickle(pickle: "AAAA", pickleKey: pickleKey))
        assertThrows(FerrolmPickleError.InvalidMac, try Account.fromPickle(pickle: pickle, pickleKey: Data(count: 32)))
        assertThrows(FerrolmPickleError.WrongKind(expected: "session", got: "account"), try Session.fromPickle(pickle: pickle, pickleKey: pickleKey))
        assertThrows(FerrolmPickleError.self, try GroupSession.fromPickle(pickle: pickle, pickleKey: pickleKey)) {
            if case let .WrongKind(_, got) = $0 { got == "account" } else { false }
        }
        let truncated = String(pickle.dropLast(8))
        assertThrows(FerrolmPickleError.self, try Account.fromPickle(pickle: truncated, pickleKey: pickleKey))
        let libolm = try account.toLibolmPickle(pickleKey: bytes("key"))
        assertThrows(FerrolmPickleError.InvalidMac, try Account.fromLibolmPickle(pickle: libolm, pickleKey: bytes("other key")))
        assertThrows(FerrolmPickleError.self, try Session.fromLibolmPickle(pickle: libolm, pickleKey: bytes("key")))
        assertThrows(FerrolmPickleError.self, try GroupSession(version: .v2).toLibolmPickle(pickleKey: pickleKey)) {
            if case .UnsupportedByLibolm = $0 { true } else { false }
        }
        // The account pickled at the start is still good after all that.
        XCTAssertEqual(try Account.fromPickle(pickle: pickle, pickleKey: pickleKey).identityKeys(), account.identityKeys())
    }

    func testOlmSessionCreationErrors() throws {
        let alice = Account()
        let bob = Account()
        let stranger = Account()
        _ = bob.generateOneTimeKeys(count: 1)
        let otk = try XCTUnwrap(bob.oneTimeKeys().values.first)
        assertThrows(
            FerrolmOlmError.NonContributoryKey,
            try alice.createOutboundSession(identityKey: base64Encode(bytes: Data(count: 32)), oneTimeKey: otk, version: .v1)
        )
        let first = try alice.createOutboundSession(identityKey: bob.curve25519Key(), oneTimeKey: otk, version: .v1)
            .encrypt(plaintext: bytes("x"))
        assertThrows(
            FerrolmOlmError.MismatchedIdentityKey(expected: stranger.curve25519Key(), got: alice.curve25519Key()),
            try bob.createInboundSession(identityKey: stranger.curve25519Key(), preKeyMessage: first.body)
        )
        let created = try bob.createInboundSession(identityKey: alice.curve25519Key(), preKeyMessage: first.body)
        XCTAssertEqual(text(created.plaintext), "x")
        assertThrows(
            FerrolmOlmError.MissingOneTimeKey(key: otk),
            try bob.createInboundSession(identityKey: alice.curve25519Key(), preKeyMessage: first.body)
        )
    }

    func testMegolmIndicesVersionsAndSignatures() throws {
        let outbound = GroupSession(version: .v1)
        let inbound = try InboundGroupSession(sessionKey: outbound.sessionKey(), version: .v1)
        let messages = (0..<60).map { outbound.encrypt(plaintext: bytes("m\($0)")) }
        let imported = try InboundGroupSession.fromExportedKey(exportedKey: inbound.exportAt(index: 50), version: .v1)
        XCTAssertFalse(imported.isVerified(), "an exported key is not verified")
        XCTAssertEqual(imported.firstKnownIndex(), 50)
        assertThrows(FerrolmMegolmError.UnknownMessageIndex(firstKnown: 50, requested: 10), try imported.decrypt(message: messages[10]))
        XCTAssertEqual(text(try imported.decrypt(message: messages[55]).plaintext), "m55", "the import decrypts later messages")
        let v2 = try InboundGroupSession(sessionKey: outbound.sessionKey(), version: .v2)
        assertThrows(FerrolmMegolmError.VersionMismatch(expected: .v2, got: .v1), try v2.decrypt(message: outbound.encrypt(plaintext: Data(count: 1))))
        let key = try base64Decode(input: outbound.sessionKey())
        assertThrows(
            FerrolmMegolmError.InvalidSignature,
            try InboundGroupSession(sessionKey: base64Encode(bytes: key.flippingBit(at: key.count - 1)), version: .v1)
        )
        // Batch: each message succeeds or fails alone.
        let forged = GroupSession(version: .v1).encrypt(plaintext: Data(count: 1))
        let results = inbound.decryptBatch(messages: [messages[1], "garbage!", forged, messages[2]])
        XCTAssertEqual(results, [
            .decrypted(message: DecryptedMessage(plaintext: bytes("m1"), messageIndex: 1)),
            .failed(error: .InvalidBase64),
            .failed(error: .InvalidSignature),
            .decrypted(message: DecryptedMessage(plaintext: bytes("m2"), messageIndex: 2)),
        ])
    }

    func testThreeThousandRandomInputsTypedErrorsOnlyNoCrash() throws {
        var random = SeededGenerator(seed: 7)
        let account = Account()
        let outbound = GroupSession(version: .v1)
        let inbound = try InboundGroupSession(sessionKey: outbound.sessionKey(), version: .v1)
        let bob = Account()
        _ = bob.generateOneTimeKeys(count: 1)
        let session = try account.createOutboundSession(
            identityKey: bob.curve25519Key(),
            oneTimeKey: XCTUnwrap(bob.oneTimeKeys().values.first),
            version: .v1
        )
        let realOlm = try base64Decode(input: session.encrypt(plaintext: Data(count: 40)).body)
        let realMegolm = try base64Decode(input: outbound.encrypt(plaintext: Data(count: 40)))
        var typed = 0
        var untyped: [String] = []
        for i in 0..<1000 {
            // Random bytes, and real messages with a random byte changed or cut short.
            let junk: Data
            switch i % 3 {
            case 0:
                junk = Data.random(count: Int.random(in: 0..<300, using: &random), using: &random)
            case 1:
                var copy = realOlm
                copy[copy.startIndex + Int.random(in: 0..<copy.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
                junk = copy
            default:
                junk = realMegolm.prefix(Int.random(in: 0..<realMegolm.count, using: &random))
            }
            let body = base64Encode(bytes: junk)
            let attempts: [() throws -> Void] = [
                { _ = try session.decrypt(message: OlmMessage(messageType: i % 2 == 0 ? .normal : .preKey, body: body)) },
                { _ = try inbound.decrypt(message: body) },
                { _ = try Account.fromPickle(pickle: body, pickleKey: self.pickleKey) },
            ]
            for attempt in attempts {
                do {
                    try attempt()
                } catch is FerrolmOlmError {
                    typed += 1
                } catch is FerrolmMegolmError {
                    typed += 1
                } catch is FerrolmPickleError {
                    typed += 1
                } catch {
                    untyped.append("\(type(of: error)): \(error)")
                }
            }
        }
        XCTAssertEqual(untyped, [], "errors that are not the module's own")
        XCTAssertGreaterThanOrEqual(typed, 2990, "junk inputs refused with a typed error")
        // The objects still work.
        XCTAssertEqual(try inbound.decrypt(message: outbound.encrypt(plaintext: Data(count: 1))).messageIndex, 1, "inbound after junk")
    }
}
