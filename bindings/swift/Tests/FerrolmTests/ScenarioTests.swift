// The end-to-end story, one XCTest method per step: Alice and Bob set up devices, talk over
// Olm with messages delivered out of order, share a Megolm room key over that channel, verify
// each other with SAS, survive a restart through both pickle formats, and get typed errors for
// malformed messages. The steps share one `Story`; a step run on its own (`swift test --filter`)
// first runs the steps before it, and a step after a failed one fails at once.
import Foundation
import XCTest
import Ferrolm

final class ScenarioTests: XCTestCase {
    private static let story = Story()

    func test1_accountsSignedDeviceKeysOneTimeKeys() throws { try Self.story.run(.accounts, in: self) }
    func test2_olmSessionFromClaimedOneTimeKey() throws { try Self.story.run(.olmSession, in: self) }
    func test3_fiftyOlmMessagesEachWaySomeOutOfOrder() throws { try Self.story.run(.olmConversation, in: self) }
    func test4_megolmKeyOverOlmHundredRoomMessages() throws { try Self.story.run(.megolm, in: self) }
    func test5_sasEqualEmojiAndMacsVerified() throws { try Self.story.run(.sas, in: self) }
    func test6_pickleFerrolmFormatRestoreContinue() throws { try Self.story.run(.pickleFerrolm, in: self) }
    func test7_pickleLibolmFormatRestoreContinue() throws { try Self.story.run(.pickleLibolm, in: self) }
    func test8_malformedMessagesThrowTypedErrors() throws { try Self.story.run(.malformed, in: self) }
}

struct StepFailed: Error, CustomStringConvertible {
    let description: String
}

final class Story {
    enum Step: Int, CaseIterable, Comparable {
        case accounts = 1, olmSession, olmConversation, megolm, sas, pickleFerrolm, pickleLibolm, malformed

        static func < (a: Step, b: Step) -> Bool { a.rawValue < b.rawValue }
    }

    private var passed = Set<Step>()
    private var failed = Set<Step>()

    private var random = SeededGenerator(seed: 20_240_229)
    private var alice: Account!
    private var bob: Account!
    private var aliceOlm: Session!
    private var bobOlm: Session?
    private var roomOut: GroupSession!
    private var roomIn: InboundGroupSession!
    private var sentByAlice = 0
    private var sentByBob = 0

    /// Runs `step`, after the steps before it that have not run yet. A step that threw or
    /// recorded an assertion failure is failed, and so is every step after it.
    func run(_ step: Step, in test: XCTestCase) throws {
        for earlier in Step.allCases where earlier <= step && !passed.contains(earlier) {
            if let broken = failed.min() {
                throw StepFailed(description: "scenario step \(broken) failed before, so \(step) cannot run")
            }
            let failuresBefore = test.testRun?.totalFailureCount ?? 0
            do {
                try perform(earlier)
            } catch {
                failed.insert(earlier)
                throw error
            }
            if (test.testRun?.totalFailureCount ?? 0) > failuresBefore {
                failed.insert(earlier)
                return
            }
            passed.insert(earlier)
        }
    }

    private func perform(_ step: Step) throws {
        switch step {
        case .accounts: try accounts()
        case .olmSession: try olmSession()
        case .olmConversation: try olmConversation()
        case .megolm: try megolm()
        case .sas: try sas()
        case .pickleFerrolm: try pickleAndContinue(libolm: false)
        case .pickleLibolm: try pickleAndContinue(libolm: true)
        case .malformed: try malformedMessages()
        }
    }

    // MARK: - 1. Accounts

    private func accounts() throws {
        alice = Account()
        bob = Account()
        for account in [alice!, bob!] {
            let keys = account.identityKeys()
            XCTAssertEqual(keys.ed25519.count, 43, "ed25519 key length")
            XCTAssertEqual(keys.curve25519.count, 43, "curve25519 key length")
            XCTAssertEqual(account.ed25519Key(), keys.ed25519)
            XCTAssertEqual(account.curve25519Key(), keys.curve25519)
            let deviceKeys = bytes(#"{"device_id":"DEV","keys":{"curve25519:DEV":"\#(keys.curve25519)"}}"#)
            try ed25519Verify(publicKey: keys.ed25519, message: deviceKeys, signature: account.sign(message: deviceKeys))
        }
        let generated = bob.generateOneTimeKeys(count: bob.maxNumberOfOneTimeKeys())
        XCTAssertEqual(generated.created.count, 50, "created one-time keys")
        XCTAssertEqual(generated.removed, [], "evicted one-time keys")
        XCTAssertEqual(bob.oneTimeKeys().count, 50, "unpublished one-time keys")
        XCTAssertEqual(Set(bob.oneTimeKeys().values), Set(generated.created), "published keys are the created ones")
        XCTAssertNil(bob.generateFallbackKey(), "no previous fallback key")
        XCTAssertEqual(bob.fallbackKey().count, 1, "fallback keys")
    }

    // MARK: - 2. Olm session

    private func olmSession() throws {
        // Alice claims one of Bob's uploaded keys; then Bob marks them published.
        let claimed = try XCTUnwrap(bob.oneTimeKeys().values.first)
        bob.markKeysAsPublished()
        XCTAssertTrue(bob.oneTimeKeys().isEmpty, "keys still unpublished")
        XCTAssertEqual(bob.storedOneTimeKeyCount(), 50, "stored one-time keys")
        aliceOlm = try alice.createOutboundSession(identityKey: bob.curve25519Key(), oneTimeKey: claimed, version: .v1)
        XCTAssertEqual(aliceOlm.version(), .v1, "session version")
        XCTAssertFalse(aliceOlm.hasReceivedMessage(), "a fresh session has received nothing")
        XCTAssertEqual(aliceOlm.sessionKeys().oneTimeKey, claimed, "session keys name the claimed key")
    }

    // MARK: - 3. 50 messages each way

    private func aliceSays(_ n: Int) -> Data { bytes("alice→bob #\(n): \(String(repeating: "x", count: n))") }
    private func bobSays(_ n: Int) -> Data { bytes("bob→alice #\(n)") }

    /// Bob receives one of Alice's messages, creating his session from the first pre-key message.
    private func bobReceives(_ message: OlmMessage) throws -> Data {
        guard let bobOlm else {
            XCTAssertEqual(message.messageType, .preKey, "first message type")
            let created = try bob.createInboundSession(identityKey: alice.curve25519Key(), preKeyMessage: message.body)
            self.bobOlm = created.session
            return created.plaintext
        }
        if message.messageType == .preKey {
            XCTAssertTrue(try bobOlm.matches(preKeyMessage: message.body), "a pre-key message of this session matches it")
        }
        return try bobOlm.decrypt(message: message)
    }

    private func olmConversation() throws {
        var held: (Int, OlmMessage)?
        for round in 0..<5 {
            // Alice sends ten; they arrive shuffled. One of the first round's is held back and
            // delivered two rounds (two ratchet steps) later.
            let fromAlice = (0..<10).map { (sentByAlice + $0, aliceOlm.encrypt(plaintext: aliceSays(sentByAlice + $0))) }
            sentByAlice += 10
            var delivered = fromAlice.shuffled(using: &random)
            if round == 0 {
                held = delivered.removeLast()
            }
            if round == 2, let held {
                delivered.append(held)
            }
            for (n, message) in delivered {
                XCTAssertEqual(try bobReceives(message), aliceSays(n), "alice's message \(n)")
            }
            let bobOlm = try XCTUnwrap(self.bobOlm)

            let fromBob = (0..<10).map { (sentByBob + $0, bobOlm.encrypt(plaintext: bobSays(sentByBob + $0))) }
            sentByBob += 10
            for (n, message) in fromBob.shuffled(using: &random) {
                XCTAssertEqual(message.messageType, .normal, "bob's message type")
                XCTAssertEqual(try aliceOlm.decrypt(message: message), bobSays(n), "bob's message \(n)")
            }
        }
        let bobOlm = try XCTUnwrap(self.bobOlm)
        XCTAssertEqual(sentByAlice, 50, "messages from alice")
        XCTAssertEqual(sentByBob, 50, "messages from bob")
        XCTAssertTrue(aliceOlm.hasReceivedMessage() && bobOlm.hasReceivedMessage(), "both sides have received")
        XCTAssertEqual(aliceOlm.sessionId(), bobOlm.sessionId(), "session id")
        XCTAssertEqual(aliceOlm.sessionKeys(), bobOlm.sessionKeys(), "session keys")
        // Alice has heard back, so her messages are normal ones now (this one is never delivered).
        XCTAssertEqual(aliceOlm.encrypt(plaintext: bytes("ping")).messageType, .normal, "type after a reply")
    }

    // MARK: - 4. Megolm over Olm

    private func megolm() throws {
        let bobOlm = try XCTUnwrap(self.bobOlm)
        roomOut = GroupSession(version: .v1)
        let roomKey: [String: Any] = [
            "type": "m.room_key",
            "content": [
                "algorithm": "m.megolm.v1.aes-sha2",
                "room_id": "!room:example.org",
                "session_id": roomOut.sessionId(),
                "session_key": roomOut.sessionKey(),
            ],
        ]
        // Over the Olm channel (Alice's pending "ping" above is simply never delivered).
        let toDevice = aliceOlm.encrypt(plaintext: try JSONSerialization.data(withJSONObject: roomKey))
        let received = try JSONSerialization.jsonObject(with: bobOlm.decrypt(message: toDevice)) as? [String: Any]
        let content = try XCTUnwrap(received?["content"] as? [String: Any])
        let sessionKey = try XCTUnwrap(content["session_key"] as? String)
        roomIn = try InboundGroupSession(sessionKey: sessionKey, version: .v1)
        XCTAssertEqual(roomIn.sessionId(), roomOut.sessionId(), "room session id")
        XCTAssertEqual(content["session_id"] as? String, roomIn.sessionId(), "session id in the event")
        XCTAssertTrue(roomIn.isVerified(), "a session from a signed key is verified")
        XCTAssertEqual(roomIn.firstKnownIndex(), 0)

        let texts = (0..<100).map { #"{"type":"m.room.message","content":{"body":"room message \#($0)"}}"# }
        let sent = texts.map { roomOut.encrypt(plaintext: bytes($0)) }
        XCTAssertEqual(roomOut.messageIndex(), 100, "outbound index")
        // 0–89 one by one, each block of ten in shuffled order; 90–99 as one batch.
        for block in 0..<9 {
            for i in (block * 10..<block * 10 + 10).shuffled(using: &random) {
                let decrypted = try roomIn.decrypt(message: sent[i])
                XCTAssertEqual(decrypted.messageIndex, UInt32(i), "message index")
                XCTAssertEqual(text(decrypted.plaintext), texts[i], "room message \(i)")
            }
        }
        let batch = roomIn.decryptBatch(messages: Array(sent[90..<100]))
        XCTAssertEqual(batch.count, 10)
        for (k, result) in batch.enumerated() {
            let expected = DecryptedMessage(plaintext: bytes(texts[90 + k]), messageIndex: UInt32(90 + k))
            XCTAssertEqual(result, .decrypted(message: expected), "batch message \(90 + k)")
        }
    }

    // MARK: - 5. SAS

    private func sas() throws {
        let aliceSas = Sas()
        let bobSas = Sas()
        // m.key.verification.key carries each side's public key to the other.
        let aliceEst = try aliceSas.diffieHellman(theirPublicKey: bobSas.publicKey())
        let bobEst = try bobSas.diffieHellman(theirPublicKey: aliceSas.publicKey())
        XCTAssertEqual(aliceEst.theirPublicKey(), bobEst.ourPublicKey())
        let info = "MATRIX_KEY_VERIFICATION_SAS|@alice:example.org|ALICE|\(aliceSas.publicKey())|"
            + "@bob:example.org|BOB|\(bobSas.publicKey())|txn-1"
        let aliceShows = aliceEst.bytes(info: info)
        let bobShows = bobEst.bytes(info: info)
        XCTAssertEqual(aliceShows.bytes.count, 6, "SAS byte count")
        XCTAssertEqual(aliceShows.emojiIndices.count, 7, "emoji count")
        XCTAssertEqual(aliceShows.emojiIndices, bobShows.emojiIndices, "emoji")
        XCTAssertEqual(aliceShows.decimals, bobShows.decimals, "decimals")
        XCTAssertEqual(aliceShows, bobShows, "the whole SAS")
        XCTAssertTrue(aliceShows.emojiIndices.allSatisfy { $0 < 64 }, "emoji indices out of range")
        XCTAssertTrue(aliceShows.decimals.allSatisfy { (1000...9191).contains($0) }, "decimals out of range")
        print("     SAS emoji indices \(Array(aliceShows.emojiIndices)), decimals \(aliceShows.decimals)")

        // Users confirm; each side MACs its device key and the key list, the other verifies.
        func macInfo(_ from: String, _ fromDevice: String, _ to: String, _ toDevice: String, _ id: String) -> String {
            "MATRIX_KEY_VERIFICATION_MAC\(from)\(fromDevice)\(to)\(toDevice)txn-1\(id)"
        }
        let aliceKey = alice.ed25519Key()
        let aliceKeyInfo = macInfo("@alice:example.org", "ALICE", "@bob:example.org", "BOB", "ed25519:ALICE")
        let aliceKeyIdsInfo = macInfo("@alice:example.org", "ALICE", "@bob:example.org", "BOB", "KEY_IDS")
        let aliceMac = aliceEst.calculateMac(input: aliceKey, info: aliceKeyInfo)
        let aliceKeysMac = aliceEst.calculateMac(input: "ed25519:ALICE", info: aliceKeyIdsInfo)
        try bobEst.verifyMac(input: aliceKey, info: aliceKeyInfo, mac: aliceMac)
        try bobEst.verifyMac(input: "ed25519:ALICE", info: aliceKeyIdsInfo, mac: aliceKeysMac)
        let bobKey = bob.ed25519Key()
        let bobKeyInfo = macInfo("@bob:example.org", "BOB", "@alice:example.org", "ALICE", "ed25519:BOB")
        let bobMac = bobEst.calculateMac(input: bobKey, info: bobKeyInfo)
        try aliceEst.verifyMac(input: bobKey, info: bobKeyInfo, mac: bobMac)
        // A MAC over another key (a man in the middle) does not verify.
        assertThrows(FerrolmSasError.InvalidMac, try aliceEst.verifyMac(input: Account().ed25519Key(), info: bobKeyInfo, mac: bobMac))
        // Each SAS key is used once.
        assertThrows(FerrolmSasError.AlreadyUsed, try aliceSas.diffieHellman(theirPublicKey: bobSas.publicKey()))
    }

    // MARK: - 6, 7. Pickle, restore, continue

    private func pickleAndContinue(libolm: Bool) throws {
        let bobOlm = try XCTUnwrap(self.bobOlm)
        let key = libolm ? bytes("libolm pickle keys may have any length") : Data.secureRandom(count: 32)
        let identity = alice.identityKeys()
        let aliceOlmId = aliceOlm.sessionId()
        let restoredBobOlm: Session
        if libolm {
            alice = try Account.fromLibolmPickle(pickle: alice.toLibolmPickle(pickleKey: key), pickleKey: key)
            bob = try Account.fromLibolmPickle(pickle: bob.toLibolmPickle(pickleKey: key), pickleKey: key)
            aliceOlm = try Session.fromLibolmPickle(pickle: aliceOlm.toLibolmPickle(pickleKey: key), pickleKey: key)
            restoredBobOlm = try Session.fromLibolmPickle(pickle: bobOlm.toLibolmPickle(pickleKey: key), pickleKey: key)
            roomOut = try GroupSession.fromLibolmPickle(pickle: roomOut.toLibolmPickle(pickleKey: key), pickleKey: key)
            roomIn = try InboundGroupSession.fromLibolmPickle(pickle: roomIn.toLibolmPickle(pickleKey: key), pickleKey: key)
        } else {
            alice = try Account.fromPickle(pickle: alice.pickle(pickleKey: key), pickleKey: key)
            bob = try Account.fromPickle(pickle: bob.pickle(pickleKey: key), pickleKey: key)
            aliceOlm = try Session.fromPickle(pickle: aliceOlm.pickle(pickleKey: key), pickleKey: key)
            restoredBobOlm = try Session.fromPickle(pickle: bobOlm.pickle(pickleKey: key), pickleKey: key)
            roomOut = try GroupSession.fromPickle(pickle: roomOut.pickle(pickleKey: key), pickleKey: key)
            roomIn = try InboundGroupSession.fromPickle(pickle: roomIn.pickle(pickleKey: key), pickleKey: key)
        }
        self.bobOlm = restoredBobOlm
        XCTAssertEqual(alice.identityKeys(), identity, "restored identity keys")
        XCTAssertEqual(aliceOlm.sessionId(), aliceOlmId, "restored session id")
        XCTAssertEqual(aliceOlm.sessionId(), restoredBobOlm.sessionId(), "restored peer session id")
        XCTAssertEqual(roomIn.sessionId(), roomOut.sessionId(), "restored room session id")

        // The restored objects carry on where the old ones stopped.
        for i in 0..<5 {
            let a = aliceOlm.encrypt(plaintext: bytes("after restore a\(i)"))
            XCTAssertEqual(text(try restoredBobOlm.decrypt(message: a)), "after restore a\(i)", "olm a→b after restore")
            let b = restoredBobOlm.encrypt(plaintext: bytes("after restore b\(i)"))
            XCTAssertEqual(text(try aliceOlm.decrypt(message: b)), "after restore b\(i)", "olm b→a after restore")
        }
        let index = roomOut.messageIndex()
        for i in 0..<10 {
            let decrypted = try roomIn.decrypt(message: roomOut.encrypt(plaintext: bytes("room after restore \(i)")))
            XCTAssertEqual(decrypted.messageIndex, index + UInt32(i), "megolm index after restore")
            XCTAssertEqual(text(decrypted.plaintext), "room after restore \(i)", "megolm after restore")
        }
        // The account still creates sessions from its (restored) keys.
        _ = bob.generateOneTimeKeys(count: 1)
        let otk = try XCTUnwrap(bob.oneTimeKeys().values.first)
        XCTAssertEqual(bob.oneTimeKeys().count, 1)
        bob.markKeysAsPublished()
        let fresh = try alice.createOutboundSession(identityKey: bob.curve25519Key(), oneTimeKey: otk, version: .v1)
        let created = try bob.createInboundSession(
            identityKey: alice.curve25519Key(),
            preKeyMessage: fresh.encrypt(plaintext: bytes("hi again")).body
        )
        XCTAssertEqual(text(created.plaintext), "hi again", "new session after restore")
    }

    // MARK: - 8. Malformed messages

    private func malformedMessages() throws {
        let bobOlm = try XCTUnwrap(self.bobOlm)
        assertThrows(FerrolmOlmError.self, try bobOlm.decrypt(message: OlmMessage(messageType: .normal, body: "AwoA"))) {
            if case .Malformed = $0 { true } else { false }
        }
        assertThrows(FerrolmOlmError.InvalidBase64, try bobOlm.decrypt(message: OlmMessage(messageType: .normal, body: "not base64!")))
        let good = aliceOlm.encrypt(plaintext: bytes("the real one"))
        let body = try base64Decode(input: good.body)
        let tampered = OlmMessage(messageType: good.messageType, body: base64Encode(bytes: body.flippingBit(at: body.count - 12)))
        assertThrows(FerrolmOlmError.InvalidMac, try bobOlm.decrypt(message: tampered))
        // The session is unchanged by the failures: the real message still decrypts, once.
        XCTAssertEqual(text(try bobOlm.decrypt(message: good)), "the real one", "after failures")
        let replay = assertThrows(FerrolmOlmError.self, try bobOlm.decrypt(message: good)) {
            if case .MissingMessageKey = $0 { true } else { false }
        }
        print("     replay rejected: \(String(describing: replay))")
        assertThrows(FerrolmOlmError.self, try bob.createInboundSession(identityKey: alice.curve25519Key(), preKeyMessage: "AwoA")) {
            if case .Malformed = $0 { true } else { false }
        }

        assertThrows(FerrolmMegolmError.self, try roomIn.decrypt(message: "")) {
            if case .Malformed = $0 { true } else { false }
        }
        assertThrows(FerrolmMegolmError.InvalidBase64, try roomIn.decrypt(message: "%%%"))
        let forged = GroupSession(version: .v1).encrypt(plaintext: Data(count: 3))
        assertThrows(FerrolmMegolmError.InvalidSignature, try roomIn.decrypt(message: forged))
        let room = roomOut.encrypt(plaintext: bytes("still fine"))
        XCTAssertEqual(text(try roomIn.decrypt(message: room).plaintext), "still fine", "megolm after failures")
    }
}
