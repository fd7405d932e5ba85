// The FFI edge as a binding user meets it (issue 10, §4), the same checks as Swift's
// EdgeTests.swift and JavaScript's test/suite/edge.ts: every error has a human message (the
// Rust Display, as `e.message`), error names are ferrolm's own, Olm message types cross as
// Matrix's integers, session versions default to v1 and a mismatch names both versions, and
// `exportAt` of an unknown index throws like everything else.
package ferrolm.test

import ferrolm.*

fun edgeChecks(h: Harness) {
    h.check("edge: every error type carries its human message") {
        fun <E : Exception> expectMessage(expected: String, e: E, describe: (E) -> String) {
            assertEquals(expected, e.message, "${e::class.simpleName}.message")
            assertEquals(expected, describe(e), "${e::class.simpleName}.describe()")
            require(e.toString().endsWith(": $expected")) { "toString(): $e" }
        }
        val alice = Account()
        val bob = Account()
        bob.generateOneTimeKeys(1u)
        val session = alice.createOutboundSession(bob.curve25519Key(), bob.oneTimeKeys().values.single())
        val first = session.encrypt("hi".toByteArray())
        val bobSession = bob.createInboundSession(alice.curve25519Key(), first.body).session
        val reply = base64Decode(bobSession.encrypt("x".toByteArray()).body)
        reply[reply.size - 12] = (reply[reply.size - 12].toInt() xor 1).toByte()
        val olm = assertThrows<FerrolmOlmException.InvalidMac> { session.decrypt(OlmMessage(MessageType.NORMAL, base64Encode(reply))) }
        expectMessage("the message's MAC does not match: it was altered, or is not for this session", olm) { it.describe() }

        val outbound = GroupSession()
        val inbound = InboundGroupSession(outbound.sessionKey())
        val messages = (0 until 5).map { outbound.encrypt(ByteArray(1)) }
        val late = InboundGroupSession.fromExportedKey(inbound.exportAt(3u))
        val megolm = assertThrows<FerrolmMegolmException.UnknownMessageIndex> { late.decrypt(messages[1]) }
        expectMessage("index 1 is before this session's first known index 3", megolm) { it.describe() }

        val pickle = assertThrows<FerrolmPickleException.InvalidKeyLength> { alice.pickle(ByteArray(31)) }
        expectMessage("the pickle key is 31 bytes long, not 32", pickle) { it.describe() }
        val sas = Sas()
        sas.diffieHellman(Sas().publicKey())
        val used = assertThrows<FerrolmSasException.AlreadyUsed> { sas.diffieHellman(Sas().publicKey()) }
        expectMessage("this SAS object's key was already used: each SAS key is used once", used) { it.describe() }
        val backup = PkEncryption.fromKey(PkDecryption().publicKey()).encrypt(ByteArray(4))
        val pk = assertThrows<FerrolmPkException.InvalidMac> { PkDecryption().decrypt(backup) }
        expectMessage("the MAC does not match: the message is for another backup key", pk) { it.describe() }
        val storage = assertThrows<FerrolmSecretStorageException.InvalidKeyLength> { SecretStorageKey.fromBytes(ByteArray(16)) }
        expectMessage("the key is 16 bytes long, not 32", storage) { it.describe() }
        val export = assertThrows<FerrolmKeyExportException.MissingHeader> { keyExportDecrypt("hello", "x") }
        expectMessage("the file has no BEGIN MEGOLM SESSION DATA line", export) { it.describe() }
        val utility = assertThrows<FerrolmUtilityException.InvalidBase64> { base64Decode("b2x!") }
        expectMessage("the input is not valid base64", utility) { it.describe() }
    }

    h.check("edge: error names are ferrolm's own") {
        val names = listOf(
            FerrolmOlmException::class, FerrolmMegolmException::class, FerrolmSasException::class,
            FerrolmPkException::class, FerrolmPickleException::class, FerrolmKeyExportException::class,
            FerrolmSecretStorageException::class, FerrolmUtilityException::class,
        ).map { it.simpleName }
        assertEquals(
            listOf(
                "FerrolmOlmException", "FerrolmMegolmException", "FerrolmSasException", "FerrolmPkException",
                "FerrolmPickleException", "FerrolmKeyExportException", "FerrolmSecretStorageException",
                "FerrolmUtilityException",
            ),
            names, "exception names",
        )
        // Not the JDK's key or security exceptions, which crypto code imports.
        val e = assertThrows<FerrolmUtilityException> { ed25519Verify(Account().ed25519Key(), ByteArray(0), "AAAA") }
        for (jdk in listOf(java.security.GeneralSecurityException::class.java, IllegalArgumentException::class.java)) {
            require(!jdk.isAssignableFrom(e.javaClass)) { "${e::class} is a ${jdk.name}" }
        }
    }

    h.check("edge: Olm message types cross as Matrix integers") {
        assertEquals(0u, messageTypeToInt(MessageType.PRE_KEY), "pre-key type")
        assertEquals(1u, messageTypeToInt(MessageType.NORMAL), "normal type")
        assertEquals(MessageType.PRE_KEY, messageTypeFromInt(0u), "type 0")
        assertEquals(MessageType.NORMAL, messageTypeFromInt(1u), "type 1")
        val unknown = assertThrows<FerrolmOlmException.UnknownMessageType> { messageTypeFromInt(2u) }
        assertEquals(2u, unknown.messageType, "unknown type")
        assertEquals("unknown Olm message type 2: 0 is a pre-key message, 1 a normal message", unknown.message, "message")

        val alice = Account()
        val bob = Account()
        bob.generateOneTimeKeys(1u)
        val session = alice.createOutboundSession(bob.curve25519Key(), bob.oneTimeKeys().values.single())
        val sent = session.encrypt("as JSON".toByteArray())
        // {"type": 0, "body": "…"} as it arrives in a to-device event.
        val received = olmMessageFromParts(messageTypeToInt(sent.messageType), sent.body)
        assertEquals(sent, received, "message from parts")
        assertEquals("as JSON", String(bob.createInboundSession(alice.curve25519Key(), received.body).plaintext), "plaintext")
        val seven = assertThrows<FerrolmOlmException.UnknownMessageType> { olmMessageFromParts(7u, sent.body) }
        assertEquals(7u, seven.messageType, "unknown type 7")
        assertThrows<FerrolmOlmException.InvalidBase64> { olmMessageFromParts(0u, "%%") }
    }

    h.check("edge: session versions default to v1, a mismatch names both") {
        val outbound = GroupSession()
        assertEquals(SessionVersion.V1, outbound.version(), "GroupSession()")
        val inbound = InboundGroupSession(outbound.sessionKey())
        assertEquals(SessionVersion.V1, inbound.version(), "InboundGroupSession(key)")
        assertEquals(SessionVersion.V1, InboundGroupSession.fromExportedKey(inbound.exportAt(0u)).version(), "fromExportedKey(key)")
        val alice = Account()
        val bob = Account()
        bob.generateOneTimeKeys(2u)
        val (otk1, otk2) = bob.oneTimeKeys().values.toList()
        val otk2Id = bob.oneTimeKeys().entries.single { it.value == otk2 }.key
        assertEquals(SessionVersion.V1, alice.createOutboundSession(bob.curve25519Key(), otk1).version(), "createOutboundSession")

        // A v2 pre-key message is refused when the session is made (v1 expected by default)...
        val first = alice.createOutboundSession(bob.curve25519Key(), otk2, SessionVersion.V2).encrypt("v2".toByteArray())
        val olm = assertThrows<FerrolmOlmException.VersionMismatch> { bob.createInboundSession(alice.curve25519Key(), first.body) }
        assertEquals(SessionVersion.V1 to SessionVersion.V2, olm.expected to olm.got, "olm versions")
        assertEquals("the message is a v2 message, but the session is v1", olm.message, "olm message")
        // ... and accepted, with the same one-time key, when v2 is asked for.
        val created = bob.createInboundSession(alice.curve25519Key(), first.body, SessionVersion.V2)
        assertEquals(SessionVersion.V2, created.session.version(), "v2 session")
        assertEquals(ConsumedKey.OneTime(otk2Id), created.consumedKey, "the key the session used")

        // A Megolm session key carries no version: the first message names the mismatch.
        val v2 = InboundGroupSession(outbound.sessionKey(), SessionVersion.V2)
        val megolm = assertThrows<FerrolmMegolmException.VersionMismatch> { v2.decrypt(outbound.encrypt(ByteArray(1))) }
        assertEquals(SessionVersion.V2 to SessionVersion.V1, megolm.expected to megolm.got, "megolm versions")
        assertEquals("the message is a v1 message, but the session is v2", megolm.message, "megolm message")
    }

    h.check("edge: exportAt an unknown index throws") {
        val outbound = GroupSession()
        val inbound = InboundGroupSession(outbound.sessionKey())
        val late = InboundGroupSession.fromExportedKey(inbound.exportAt(3u))
        val e = assertThrows<FerrolmMegolmException.UnknownMessageIndex> { late.exportAt(2u) }
        assertEquals(3u to 2u, e.firstKnown to e.requested, "indices")
        assertEquals("index 2 is before this session's first known index 3", e.message, "message")
        assertEquals(late.exportAtFirstKnownIndex(), late.exportAt(3u), "the first known index exports")
    }
}
