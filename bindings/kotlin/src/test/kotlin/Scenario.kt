// The end-to-end story: Alice and Bob set up devices, talk over Olm with messages delivered
// out of order, share a Megolm room key over that channel, verify each other with SAS, and
// survive a restart through both pickle formats.
package ferrolm.test

import ferrolm.*
import java.security.SecureRandom
import kotlin.random.Random

class Scenario(private val h: Harness) {
    private val random = Random(20240229)
    private lateinit var alice: Account
    private lateinit var bob: Account
    private lateinit var aliceOlm: Session
    private lateinit var bobOlm: Session
    private lateinit var roomOut: GroupSession
    private lateinit var roomIn: InboundGroupSession
    private var sentByAlice = 0
    private var sentByBob = 0

    fun run() {
        h.check("scenario: accounts, signed device keys, one-time keys") { accounts() }
        h.check("scenario: Olm session from a claimed one-time key") { olmSession() }
        h.check("scenario: 50 Olm messages each way, some out of order") { olmConversation() }
        h.check("scenario: Megolm key over Olm, 100 room messages decrypted") { megolm() }
        h.check("scenario: SAS with equal emoji, MACs verified both ways") { sas() }
        h.check("scenario: pickle (ferrolm format), restore, continue") { pickleAndContinue(libolm = false) }
        h.check("scenario: pickle (libolm format), restore, continue") { pickleAndContinue(libolm = true) }
        h.check("scenario: malformed messages throw typed exceptions") { malformedMessages() }
    }

    private fun accounts() {
        alice = Account()
        bob = Account()
        for (account in listOf(alice, bob)) {
            val keys = account.identityKeys()
            assertEquals(43, keys.ed25519.length, "ed25519 key length")
            assertEquals(43, keys.curve25519.length, "curve25519 key length")
            val deviceKeys = """{"device_id":"DEV","keys":{"curve25519:DEV":"${keys.curve25519}"}}""".toByteArray()
            ed25519Verify(keys.ed25519, deviceKeys, account.sign(deviceKeys))
        }
        val generated = bob.generateOneTimeKeys(bob.maxNumberOfOneTimeKeys())
        assertEquals(50, generated.created.size, "created one-time keys")
        assertEquals(50, bob.oneTimeKeys().size, "unpublished one-time keys")
        bob.generateFallbackKey()
        assertEquals(1, bob.fallbackKey().size, "fallback keys")
    }

    private fun olmSession() {
        // Alice claims one of Bob's uploaded keys; then Bob marks them published.
        val claimed = bob.oneTimeKeys().values.first()
        bob.markKeysAsPublished()
        require(bob.oneTimeKeys().isEmpty()) { "keys still unpublished" }
        aliceOlm = alice.createOutboundSession(bob.curve25519Key(), claimed, SessionVersion.V1)
        assertEquals(SessionVersion.V1, aliceOlm.version(), "session version")
        require(!aliceOlm.hasReceivedMessage()) { "fresh session has received" }
    }

    private fun aliceSays(n: Int) = "alice→bob #$n: ${"x".repeat(n)}".toByteArray()
    private fun bobSays(n: Int) = "bob→alice #$n".toByteArray()

    /** Bob receives one of Alice's messages, creating his session from the first pre-key message. */
    private fun bobReceives(message: OlmMessage): ByteArray {
        if (!this::bobOlm.isInitialized) {
            assertEquals(MessageType.PRE_KEY, message.messageType, "first message type")
            val created = bob.createInboundSession(alice.curve25519Key(), message.body)
            bobOlm = created.session
            return created.plaintext
        }
        if (message.messageType == MessageType.PRE_KEY) {
            require(bobOlm.matches(message.body)) { "a pre-key message of this session does not match it" }
        }
        return bobOlm.decrypt(message)
    }

    private fun olmConversation() {
        var held: Pair<Int, OlmMessage>? = null
        for (round in 0 until 5) {
            // Alice sends ten; they arrive shuffled. One of the first round's is held back
            // and delivered two rounds (two ratchet steps) later.
            val fromAlice = (0 until 10).map { sentByAlice + it to aliceOlm.encrypt(aliceSays(sentByAlice + it)) }
            sentByAlice += 10
            val delivered = fromAlice.shuffled(random).toMutableList()
            if (round == 0) held = delivered.removeAt(delivered.lastIndex)
            if (round == 2) delivered += held!!
            for ((n, message) in delivered) assertBytes(aliceSays(n), bobReceives(message), "alice's message $n")

            val fromBob = (0 until 10).map { sentByBob + it to bobOlm.encrypt(bobSays(sentByBob + it)) }
            sentByBob += 10
            for ((n, message) in fromBob.shuffled(random)) {
                assertEquals(MessageType.NORMAL, message.messageType, "bob's message type")
                assertBytes(bobSays(n), aliceOlm.decrypt(message), "bob's message $n")
            }
        }
        assertEquals(50, sentByAlice, "messages from alice")
        assertEquals(50, sentByBob, "messages from bob")
        require(aliceOlm.hasReceivedMessage() && bobOlm.hasReceivedMessage()) { "both sides have received" }
        assertEquals(aliceOlm.sessionId(), bobOlm.sessionId(), "session id")
        assertEquals(aliceOlm.sessionKeys(), bobOlm.sessionKeys(), "session keys")
        // Alice has heard back, so her messages are normal ones now (this one is never delivered).
        assertEquals(MessageType.NORMAL, aliceOlm.encrypt("ping".toByteArray()).messageType, "type after reply")
    }

    private fun megolm() {
        roomOut = GroupSession(SessionVersion.V1)
        val roomKey = """{"type":"m.room_key","content":{"algorithm":"m.megolm.v1.aes-sha2",""" +
            """"room_id":"!room:example.org","session_id":"${roomOut.sessionId()}",""" +
            """"session_key":"${roomOut.sessionKey()}"}}"""
        // Over the Olm channel (Alice's pending "ping" above is simply never delivered).
        val toDevice = aliceOlm.encrypt(roomKey.toByteArray())
        val received = String(bobOlm.decrypt(toDevice))
        val sessionKey = Regex("\"session_key\":\"([^\"]+)\"").find(received)!!.groupValues[1]
        roomIn = InboundGroupSession(sessionKey, SessionVersion.V1)
        assertEquals(roomOut.sessionId(), roomIn.sessionId(), "room session id")
        require(roomIn.isVerified()) { "a session from a signed key is verified" }

        val texts = (0 until 100).map { """{"type":"m.room.message","content":{"body":"room message $it"}}""" }
        val sent = texts.map { roomOut.encrypt(it.toByteArray()) }
        assertEquals(100u, roomOut.messageIndex(), "outbound index")
        // 0–89 one by one, each block of ten in shuffled order; 90–99 as one batch.
        for (block in 0 until 9) {
            for (i in (block * 10 until block * 10 + 10).shuffled(random)) {
                val decrypted = roomIn.decrypt(sent[i])
                assertEquals(i.toUInt(), decrypted.messageIndex, "message index")
                assertEquals(texts[i], String(decrypted.plaintext), "room message $i")
            }
        }
        val batch = roomIn.decryptBatch(sent.subList(90, 100))
        batch.forEachIndexed { k, result ->
            val message = (result as? BatchDecryption.Decrypted)?.message ?: throw CheckFailed("batch $k: $result")
            assertEquals(texts[90 + k], String(message.plaintext), "batch message ${90 + k}")
        }
    }

    private fun sas() {
        val aliceSas = Sas()
        val bobSas = Sas()
        // m.key.verification.key carries each side's public key to the other.
        val aliceEst = aliceSas.diffieHellman(bobSas.publicKey())
        val bobEst = bobSas.diffieHellman(aliceSas.publicKey())
        val info = "MATRIX_KEY_VERIFICATION_SAS|@alice:example.org|ALICE|${aliceSas.publicKey()}|" +
            "@bob:example.org|BOB|${bobSas.publicKey()}|txn-1"
        val aliceShows = aliceEst.bytes(info)
        val bobShows = bobEst.bytes(info)
        assertEquals(7, aliceShows.emojiIndices.size, "emoji count")
        assertBytes(aliceShows.emojiIndices, bobShows.emojiIndices, "emoji")
        assertEquals(aliceShows.decimals, bobShows.decimals, "decimals")
        require(aliceShows.decimals.all { it.toInt() in 1000..9191 }) { "decimals out of range" }
        println("     SAS emoji indices ${aliceShows.emojiIndices.toList()}, decimals ${aliceShows.decimals}")

        // Users confirm; each side MACs its device key and the key list, the other verifies.
        fun macInfo(from: String, fromDevice: String, to: String, toDevice: String, id: String) =
            "MATRIX_KEY_VERIFICATION_MAC$from$fromDevice$to${toDevice}txn-1$id"
        val aliceKey = alice.ed25519Key()
        val aliceMac = aliceEst.calculateMac(aliceKey, macInfo("@alice:example.org", "ALICE", "@bob:example.org", "BOB", "ed25519:ALICE"))
        val aliceKeysMac = aliceEst.calculateMac("ed25519:ALICE", macInfo("@alice:example.org", "ALICE", "@bob:example.org", "BOB", "KEY_IDS"))
        bobEst.verifyMac(aliceKey, macInfo("@alice:example.org", "ALICE", "@bob:example.org", "BOB", "ed25519:ALICE"), aliceMac)
        bobEst.verifyMac("ed25519:ALICE", macInfo("@alice:example.org", "ALICE", "@bob:example.org", "BOB", "KEY_IDS"), aliceKeysMac)
        val bobKey = bob.ed25519Key()
        val bobMac = bobEst.calculateMac(bobKey, macInfo("@bob:example.org", "BOB", "@alice:example.org", "ALICE", "ed25519:BOB"))
        aliceEst.verifyMac(bobKey, macInfo("@bob:example.org", "BOB", "@alice:example.org", "ALICE", "ed25519:BOB"), bobMac)
        // A MAC over another key (a man in the middle) does not verify.
        assertThrows<FerrolmSasException.InvalidMac> {
            aliceEst.verifyMac(Account().ed25519Key(), macInfo("@bob:example.org", "BOB", "@alice:example.org", "ALICE", "ed25519:BOB"), bobMac)
        }
        // Each SAS key is used once.
        assertThrows<FerrolmSasException.AlreadyUsed> { aliceSas.diffieHellman(bobSas.publicKey()) }
        listOf(aliceSas, bobSas, aliceEst, bobEst).forEach { it.close() }
    }

    private fun pickleAndContinue(libolm: Boolean) {
        val key = if (libolm) "libolm pickle keys may have any length".toByteArray()
        else ByteArray(32).also { SecureRandom().nextBytes(it) }
        fun <T> roundTrip(pickle: (ByteArray) -> String, restore: (String, ByteArray) -> T) = restore(pickle(key), key)

        val identity = alice.identityKeys()
        val aliceOlmId = aliceOlm.sessionId()
        if (libolm) {
            alice = roundTrip(alice::toLibolmPickle, { p, k -> Account.fromLibolmPickle(p, k) })
            bob = roundTrip(bob::toLibolmPickle, { p, k -> Account.fromLibolmPickle(p, k) })
            aliceOlm = roundTrip(aliceOlm::toLibolmPickle, { p, k -> Session.fromLibolmPickle(p, k) })
            bobOlm = roundTrip(bobOlm::toLibolmPickle, { p, k -> Session.fromLibolmPickle(p, k) })
            roomOut = roundTrip(roomOut::toLibolmPickle, { p, k -> GroupSession.fromLibolmPickle(p, k) })
            roomIn = roundTrip(roomIn::toLibolmPickle, { p, k -> InboundGroupSession.fromLibolmPickle(p, k) })
        } else {
            alice = roundTrip(alice::pickle, { p, k -> Account.fromPickle(p, k) })
            bob = roundTrip(bob::pickle, { p, k -> Account.fromPickle(p, k) })
            aliceOlm = roundTrip(aliceOlm::pickle, { p, k -> Session.fromPickle(p, k) })
            bobOlm = roundTrip(bobOlm::pickle, { p, k -> Session.fromPickle(p, k) })
            roomOut = roundTrip(roomOut::pickle, { p, k -> GroupSession.fromPickle(p, k) })
            roomIn = roundTrip(roomIn::pickle, { p, k -> InboundGroupSession.fromPickle(p, k) })
        }
        assertEquals(identity, alice.identityKeys(), "restored identity keys")
        assertEquals(aliceOlmId, aliceOlm.sessionId(), "restored session id")
        assertEquals(bobOlm.sessionId(), aliceOlm.sessionId(), "restored peer session id")

        // The restored objects carry on where the old ones stopped.
        for (i in 0 until 5) {
            val a = aliceOlm.encrypt("after restore a$i".toByteArray())
            assertEquals("after restore a$i", String(bobOlm.decrypt(a)), "olm a→b after restore")
            val b = bobOlm.encrypt("after restore b$i".toByteArray())
            assertEquals("after restore b$i", String(aliceOlm.decrypt(b)), "olm b→a after restore")
        }
        val index = roomOut.messageIndex()
        for (i in 0 until 10) {
            val decrypted = roomIn.decrypt(roomOut.encrypt("room after restore $i".toByteArray()))
            assertEquals(index + i.toUInt(), decrypted.messageIndex, "megolm index after restore")
            assertEquals("room after restore $i", String(decrypted.plaintext), "megolm after restore")
        }
        // The account still creates sessions from its (restored) keys.
        bob.generateOneTimeKeys(1u)
        val otk = bob.oneTimeKeys().values.single()
        bob.markKeysAsPublished()
        val fresh = alice.createOutboundSession(bob.curve25519Key(), otk, SessionVersion.V1)
        val created = bob.createInboundSession(alice.curve25519Key(), fresh.encrypt("hi again".toByteArray()).body)
        assertEquals("hi again", String(created.plaintext), "new session after restore")
    }

    private fun malformedMessages() {
        assertThrows<FerrolmOlmException.Malformed> { bobOlm.decrypt(OlmMessage(MessageType.NORMAL, "AwoA")) }
        assertThrows<FerrolmOlmException.InvalidBase64> { bobOlm.decrypt(OlmMessage(MessageType.NORMAL, "not base64!")) }
        val good = aliceOlm.encrypt("the real one".toByteArray())
        val bytes = base64Decode(good.body)
        bytes[bytes.size - 12] = (bytes[bytes.size - 12].toInt() xor 1).toByte()
        assertThrows<FerrolmOlmException.InvalidMac> { bobOlm.decrypt(OlmMessage(good.messageType, base64Encode(bytes))) }
        // The session is unchanged by the failures: the real message still decrypts, once.
        assertEquals("the real one", String(bobOlm.decrypt(good)), "after failures")
        val replay = assertThrows<FerrolmOlmException.MissingMessageKey> { bobOlm.decrypt(good) }
        println("     replay rejected: MissingMessageKey(index=${replay.index})")
        val asPreKey = assertThrows<FerrolmOlmException> { bob.createInboundSession(alice.curve25519Key(), "AwoA") }
        require(asPreKey is FerrolmOlmException.Malformed) { "pre-key garbage: $asPreKey" }

        assertThrows<FerrolmMegolmException.Malformed> { roomIn.decrypt("") }
        assertThrows<FerrolmMegolmException.InvalidBase64> { roomIn.decrypt("%%%") }
        assertThrows<FerrolmMegolmException.InvalidSignature> { roomIn.decrypt(GroupSession(SessionVersion.V1).encrypt(ByteArray(3))) }
        val room = roomOut.encrypt("still fine".toByteArray())
        assertEquals("still fine", String(roomIn.decrypt(room).plaintext), "megolm after failures")
    }
}
