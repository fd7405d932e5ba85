// The modules outside the scenario: PK (backups, signing), secret storage, key export files,
// Megolm export/import/compare/merge, and the SAS extras.
import Foundation
import XCTest
import Ferrolm

final class ModuleTests: XCTestCase {
    func testPkBackupRoundTripAndSigning() throws {
        let backup = PkDecryption()
        let message = try PkEncryption.fromKey(publicKey: backup.publicKey()).encrypt(plaintext: bytes(#"{"session_key":"..."}"#))
        XCTAssertEqual(text(try backup.decrypt(message: message)), #"{"session_key":"..."}"#, "backup plaintext")
        assertThrows(FerrolmPkError.InvalidMac, try PkDecryption().decrypt(message: message))
        let restored = try PkDecryption.fromBytes(secretKey: backup.toBytes())
        XCTAssertEqual(restored.publicKey(), backup.publicKey(), "restored backup key")
        // A whole backup at once: one result per message, in order; a bad one fails alone.
        let encryption = try PkEncryption.fromKey(publicKey: backup.publicKey())
        var many = (0..<600).map { encryption.encrypt(plaintext: bytes("session \($0)")) }
        many[7].mac = "%"
        let results = backup.decryptMany(messages: many)
        XCTAssertEqual(results.count, 600, "decryptMany results")
        for (i, result) in results.enumerated() {
            switch result {
            case .decrypted(let plaintext):
                XCTAssertNotEqual(i, 7, "message 7 decrypted")
                XCTAssertEqual(text(plaintext), "session \(i)", "message \(i)")
            case .failed(let error):
                XCTAssertEqual(i, 7, "message \(i) failed: \(error)")
                guard case FerrolmPkError.InvalidBase64 = error else { return XCTFail("message 7: \(error)") }
            }
        }
        let key = bytes("k")
        XCTAssertEqual(
            try PkDecryption.fromLibolmPickle(pickle: backup.toLibolmPickle(pickleKey: key), pickleKey: key).publicKey(),
            backup.publicKey(),
            "libolm pickle"
        )
        let pickleKey = Data(repeating: 9, count: 32)
        XCTAssertEqual(try PkDecryption.fromPickle(pickle: backup.pickle(pickleKey: pickleKey), pickleKey: pickleKey).toBytes(), backup.toBytes())
        let signing = try PkSigning.fromSeed(seed: Data(repeating: 1, count: 32))
        XCTAssertEqual(signing.seed(), Data(repeating: 1, count: 32))
        try ed25519Verify(publicKey: signing.publicKey(), message: bytes("{}"), signature: signing.sign(message: bytes("{}")))
        assertThrows(FerrolmUtilityError.InvalidSignature, try ed25519Verify(publicKey: signing.publicKey(), message: bytes("[]"), signature: signing.sign(message: bytes("{}"))))
    }

    func testSecretStorageSecretsRecoveryKeyKeyCheck() throws {
        let key = SecretStorageKey()
        let secret = key.encrypt(name: "m.cross_signing.master", secret: bytes("seed"))
        XCTAssertEqual(text(try key.decrypt(name: "m.cross_signing.master", secret: secret)), "seed", "secret")
        assertThrows(FerrolmSecretStorageError.InvalidMac, try key.decrypt(name: "m.megolm_backup.v1", secret: secret))
        let recovery = key.toRecoveryKey()
        let restored = try SecretStorageKey.fromRecoveryKey(recoveryKey: recovery)
        try restored.verifyKeyCheck(check: key.keyCheck())
        XCTAssertEqual(restored.toBytes(), key.toBytes(), "recovery key round trip")
        XCTAssertEqual(try SecretStorageKey.fromBytes(key: key.toBytes()).toRecoveryKey(), recovery)
        // A typo: the first letter or digit becomes "0", which base58 does not have.
        let typoAt = try XCTUnwrap(recovery.firstIndex { $0.isLetter || ("1"..."9").contains($0) })
        var typo = recovery
        typo.replaceSubrange(typoAt...typoAt, with: "0")
        assertThrows(FerrolmSecretStorageError.InvalidRecoveryKeyCharacter(character: "0"), try SecretStorageKey.fromRecoveryKey(recoveryKey: typo))
        assertThrows(FerrolmSecretStorageError.InvalidMac, try SecretStorageKey().verifyKeyCheck(check: key.keyCheck()))
    }

    func testKeyExportFilesRoundTripWrongPassphrase() throws {
        let file = try keyExportEncrypt(plaintext: bytes("[]"), passphrase: "correct horse", rounds: 1000)
        XCTAssertTrue(file.hasPrefix("-----BEGIN MEGOLM SESSION DATA-----"), "armour")
        XCTAssertEqual(try keyExportRounds(file: file), 1000, "rounds")
        XCTAssertEqual(text(try keyExportDecrypt(file: file, passphrase: "correct horse")), "[]", "plaintext")
        assertThrows(FerrolmKeyExportError.InvalidMac, try keyExportDecrypt(file: file, passphrase: "battery staple"))
        assertThrows(FerrolmKeyExportError.MissingHeader, try keyExportDecrypt(file: "hello", passphrase: "x"))
        assertThrows(FerrolmKeyExportError.InvalidRounds(rounds: 0), try keyExportEncrypt(plaintext: Data(), passphrase: "x", rounds: 0))
        XCTAssertEqual(keyExportDefaultRounds(), 500_000, "default rounds")
    }

    func testMegolmExportImportCompareMerge() throws {
        let outbound = GroupSession(version: .v1)
        let inbound = try InboundGroupSession(sessionKey: outbound.sessionKey(), version: .v1)
        for _ in 0..<5 {
            _ = outbound.encrypt(plaintext: Data(count: 1))
        }
        let late = try InboundGroupSession.fromExportedKey(exportedKey: inbound.exportAt(index: 3), version: .v1)
        XCTAssertEqual(inbound.compare(other: late), .better, "compare")
        XCTAssertEqual(late.compare(other: inbound), .worse, "compare reversed")
        XCTAssertEqual(inbound.compare(other: inbound), .equal, "compare with itself")
        let merged = try XCTUnwrap(late.merge(other: inbound))
        XCTAssertTrue(merged.isVerified(), "merged with a verified session")
        XCTAssertEqual(merged.firstKnownIndex(), 0, "merged first index")
        let other = try InboundGroupSession(sessionKey: GroupSession(version: .v1).sessionKey(), version: .v1)
        XCTAssertEqual(other.compare(other: inbound), .unconnected, "unconnected")
        XCTAssertNil(other.merge(other: inbound), "unconnected sessions do not merge")
        XCTAssertTrue(late.advanceTo(index: 4), "advance forwards")
        XCTAssertFalse(late.advanceTo(index: 1), "advance backwards")
        assertThrows(FerrolmMegolmError.UnknownMessageIndex(firstKnown: 4, requested: 3), try late.exportAt(index: 3))
        XCTAssertEqual(late.exportAtFirstKnownIndex(), try inbound.exportAt(index: 4))
    }

    func testSasGeneratedBytesLegacyMacOutputLimit() throws {
        let alice = Sas()
        let bob = Sas()
        let aliceEst = try alice.diffieHellman(theirPublicKey: bob.publicKey())
        let bobEst = try bob.diffieHellman(theirPublicKey: alice.publicKey())
        XCTAssertEqual(try aliceEst.generateBytes(info: "info", length: 32), try bobEst.generateBytes(info: "info", length: 32))
        XCTAssertEqual(try aliceEst.generateBytes(info: "info", length: 8160).count, 8160)
        assertThrows(FerrolmSasError.OutputTooLong(max: 8160), try aliceEst.generateBytes(info: "info", length: 8161))
        let legacy = aliceEst.calculateMacInvalidBase64(input: "key", info: "legacy")
        try bobEst.verifyMacInvalidBase64(input: "key", info: "legacy", mac: legacy)
        assertThrows(FerrolmSasError.InvalidMac, try bobEst.verifyMacInvalidBase64(input: "other key", info: "legacy", mac: legacy))
        assertThrows(FerrolmSasError.MalformedMac, try bobEst.verifyMac(input: "key", info: "info", mac: "AAAA"))
        // A small-order key is refused, and consumes the ephemeral secret.
        let sas = Sas()
        assertThrows(FerrolmSasError.NonContributoryKey, try sas.diffieHellman(theirPublicKey: base64Encode(bytes: Data(count: 32))))
        assertThrows(FerrolmSasError.AlreadyUsed, try sas.diffieHellman(theirPublicKey: alice.publicKey()))
    }
}
