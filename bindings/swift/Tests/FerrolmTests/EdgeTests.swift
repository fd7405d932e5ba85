// The FFI edge as a binding user meets it (issue 10, §4), the same checks as Kotlin's Edge.kt
// and JavaScript's test/suite/edge.ts: every error has a human message (the Rust Display, as
// `localizedDescription`, `description` and string interpolation), error names are ferrolm's
// own, Olm message types cross as Matrix's integers, session versions default to v1 and a
// mismatch names both versions, and `exportAt` of an unknown index throws like everything else.
import Foundation
import XCTest
import Ferrolm

final class EdgeTests: XCTestCase {
    /// `error`'s message, however Swift code asks for it, must be `expected`.
    private func assertMessage<E: Error & CustomStringConvertible>(
        _ expected: String,
        _ error: E?,
        file: StaticString = #filePath,
        line: UInt = #line
    ) {
        guard let error else { return }  // assertThrows has already failed the test
        XCTAssertEqual(error.localizedDescription, expected, "localizedDescription", file: file, line: line)
        XCTAssertEqual(error.description, expected, "description", file: file, line: line)
        XCTAssertEqual("\(error)", expected, "interpolation", file: file, line: line)
        XCTAssertEqual(String(reflecting: error), expected, "String(reflecting:)", file: file, line: line)
    }

    func testEveryErrorTypeCarriesItsHumanMessage() throws {
        let alice = Account()
        let bob = Account()
        _ = bob.generateOneTimeKeys(count: 1)
        let session = try alice.createOutboundSession(
            identityKey: bob.curve25519Key(), oneTimeKey: XCTUnwrap(bob.oneTimeKeys().values.first))
        let first = session.encrypt(plaintext: bytes("hi"))
        let bobSession = try bob.createInboundSession(identityKey: alice.curve25519Key(), preKeyMessage: first.body).session
        let reply = try base64Decode(input: bobSession.encrypt(plaintext: bytes("x")).body)
        let tampered = OlmMessage(messageType: .normal, body: base64Encode(bytes: reply.flippingBit(at: reply.count - 12)))
        let olm = assertThrows(FerrolmOlmError.self, try session.decrypt(message: tampered)) {
            if case .InvalidMac = $0 { true } else { false }
        }
        assertMessage("the message's MAC does not match: it was altered, or is not for this session", olm)
        XCTAssertEqual(olm?.describe(), "the message's MAC does not match: it was altered, or is not for this session")

        let outbound = GroupSession()
        let inbound = try InboundGroupSession(sessionKey: outbound.sessionKey())
        let messages = (0..<5).map { _ in outbound.encrypt(plaintext: Data(count: 1)) }
        let late = try InboundGroupSession.fromExportedKey(exportedKey: inbound.exportAt(index: 3))
        let megolm = assertThrows(FerrolmMegolmError.self, try late.decrypt(message: messages[1]))
        XCTAssertEqual(megolm, .UnknownMessageIndex(firstKnown: 3, requested: 1))
        assertMessage("index 1 is before this session's first known index 3", megolm)

        let pickle = assertThrows(FerrolmPickleError.self, try alice.pickle(pickleKey: Data(count: 31)))
        assertMessage("the pickle key is 31 bytes long, not 32", pickle)
        let sas = Sas()
        _ = try sas.diffieHellman(theirPublicKey: Sas().publicKey())
        let used = assertThrows(FerrolmSasError.self, try sas.diffieHellman(theirPublicKey: Sas().publicKey()))
        assertMessage("this SAS object's key was already used: each SAS key is used once", used)
        let backup = try PkEncryption.fromKey(publicKey: PkDecryption().publicKey()).encrypt(plaintext: Data(count: 4))
        let pk = assertThrows(FerrolmPkError.self, try PkDecryption().decrypt(message: backup))
        assertMessage("the MAC does not match: the message is for another backup key", pk)
        let storage = assertThrows(FerrolmSecretStorageError.self, try SecretStorageKey.fromBytes(key: Data(count: 16)))
        assertMessage("the key is 16 bytes long, not 32", storage)
        let export = assertThrows(FerrolmKeyExportError.self, try keyExportDecrypt(file: "hello", passphrase: "x"))
        assertMessage("the file has no BEGIN MEGOLM SESSION DATA line", export)
        let utility = assertThrows(FerrolmUtilityError.self, try base64Decode(input: "b2x!"))
        assertMessage("the input is not valid base64", utility)
    }

    func testErrorNamesAreFerrolmsOwn() throws {
        let names = [
            FerrolmOlmError.self, FerrolmMegolmError.self, FerrolmSasError.self, FerrolmPkError.self,
            FerrolmPickleError.self, FerrolmKeyExportError.self, FerrolmSecretStorageError.self,
            FerrolmUtilityError.self,
        ].map { String(describing: $0) }
        XCTAssertEqual(names, [
            "FerrolmOlmError", "FerrolmMegolmError", "FerrolmSasError", "FerrolmPkError", "FerrolmPickleError",
            "FerrolmKeyExportError", "FerrolmSecretStorageError", "FerrolmUtilityError",
        ])
        // Not Foundation's errors, which an app catches beside ours.
        let error = assertThrows(FerrolmUtilityError.self, try ed25519Verify(publicKey: Account().ed25519Key(), message: Data(), signature: "AAAA"))
        XCTAssertFalse(error as Any is CocoaError || error as Any is URLError || error as Any is DecodingError)
    }

    func testOlmMessageTypesCrossAsMatrixIntegers() throws {
        XCTAssertEqual(messageTypeToInt(messageType: .preKey), 0)
        XCTAssertEqual(messageTypeToInt(messageType: .normal), 1)
        XCTAssertEqual(try messageTypeFromInt(messageType: 0), .preKey)
        XCTAssertEqual(try messageTypeFromInt(messageType: 1), .normal)
        assertThrows(FerrolmOlmError.UnknownMessageType(messageType: 2), try messageTypeFromInt(messageType: 2))
        assertMessage(
            "unknown Olm message type 2: 0 is a pre-key message, 1 a normal message",
            assertThrows(FerrolmOlmError.self, try messageTypeFromInt(messageType: 2))
        )

        let alice = Account()
        let bob = Account()
        _ = bob.generateOneTimeKeys(count: 1)
        let session = try alice.createOutboundSession(
            identityKey: bob.curve25519Key(), oneTimeKey: XCTUnwrap(bob.oneTimeKeys().values.first))
        let sent = session.encrypt(plaintext: bytes("as JSON"))
        // {"type": 0, "body": "…"} as it arrives in a to-device event.
        let received = try olmMessageFromParts(messageType: messageTypeToInt(messageType: sent.messageType), body: sent.body)
        XCTAssertEqual(received, sent)
        XCTAssertEqual(text(try bob.createInboundSession(identityKey: alice.curve25519Key(), preKeyMessage: received.body).plaintext), "as JSON")
        assertThrows(FerrolmOlmError.UnknownMessageType(messageType: 7), try olmMessageFromParts(messageType: 7, body: sent.body))
        assertThrows(FerrolmOlmError.InvalidBase64, try olmMessageFromParts(messageType: 0, body: "%%"))
    }

    func testSessionVersionsDefaultToV1AndAMismatchNamesBoth() throws {
        let outbound = GroupSession()
        XCTAssertEqual(outbound.version(), .v1, "GroupSession()")
        let inbound = try InboundGroupSession(sessionKey: outbound.sessionKey())
        XCTAssertEqual(inbound.version(), .v1, "InboundGroupSession(sessionKey:)")
        XCTAssertEqual(try InboundGroupSession.fromExportedKey(exportedKey: inbound.exportAt(index: 0)).version(), .v1)
        let alice = Account()
        let bob = Account()
        _ = bob.generateOneTimeKeys(count: 2)
        let keys = Array(bob.oneTimeKeys().values)
        let secondId = try XCTUnwrap(bob.oneTimeKeys().first { $0.value == keys[1] }?.key)
        XCTAssertEqual(try alice.createOutboundSession(identityKey: bob.curve25519Key(), oneTimeKey: keys[0]).version(), .v1)

        // A v2 pre-key message is refused when the session is made (v1 expected by default)...
        let first = try alice.createOutboundSession(identityKey: bob.curve25519Key(), oneTimeKey: keys[1], version: .v2)
            .encrypt(plaintext: bytes("v2"))
        let olm = assertThrows(FerrolmOlmError.self, try bob.createInboundSession(identityKey: alice.curve25519Key(), preKeyMessage: first.body))
        XCTAssertEqual(olm, .VersionMismatch(expected: .v1, got: .v2))
        assertMessage("the message is a v2 message, but the session is v1", olm)
        // ... and accepted, with the same one-time key, when v2 is asked for.
        let created = try bob.createInboundSession(identityKey: alice.curve25519Key(), preKeyMessage: first.body, version: .v2)
        XCTAssertEqual(created.session.version(), .v2)
        XCTAssertEqual(created.consumedKey, .oneTime(keyId: secondId), "the key the session used")

        // A Megolm session key carries no version: the first message names the mismatch.
        let v2 = try InboundGroupSession(sessionKey: outbound.sessionKey(), version: .v2)
        let megolm = assertThrows(FerrolmMegolmError.self, try v2.decrypt(message: outbound.encrypt(plaintext: Data(count: 1))))
        XCTAssertEqual(megolm, .VersionMismatch(expected: .v2, got: .v1))
        assertMessage("the message is a v1 message, but the session is v2", megolm)
    }

    func testExportAtAnUnknownIndexThrows() throws {
        let outbound = GroupSession()
        let inbound = try InboundGroupSession(sessionKey: outbound.sessionKey())
        let late = try InboundGroupSession.fromExportedKey(exportedKey: inbound.exportAt(index: 3))
        let error = assertThrows(FerrolmMegolmError.self, try late.exportAt(index: 2))
        XCTAssertEqual(error, .UnknownMessageIndex(firstKnown: 3, requested: 2))
        assertMessage("index 2 is before this session's first known index 3", error)
        XCTAssertEqual(late.exportAtFirstKnownIndex(), try late.exportAt(index: 3))
    }
}
