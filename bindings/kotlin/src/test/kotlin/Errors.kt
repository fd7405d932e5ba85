// Bad input of every kind reaches Kotlin as a typed exception (a subclass of the module's
// exception, never uniffi's InternalException, which would mean a Rust panic), and the
// process carries on.
package ferrolm.test

import ferrolm.*
import kotlin.random.Random

fun errorChecks(h: Harness) {
    val pickleKey = ByteArray(32) { it.toByte() }

    h.check("errors: wrong-length keys") {
        val account = Account()
        val bob = Account()
        bob.generateOneTimeKeys(1u)
        val otk = bob.oneTimeKeys().values.single()
        val short = base64Encode(ByteArray(31))
        val e = assertThrows<FerrolmOlmException.InvalidKeyLength> { account.createOutboundSession(short, otk, SessionVersion.V1) }
        assertEquals(32u, e.expected, "expected length")
        assertEquals(31u, e.got, "given length")
        assertThrows<FerrolmOlmException.InvalidKeyLength> { account.createOutboundSession(bob.curve25519Key(), base64Encode(ByteArray(33)), SessionVersion.V1) }
        assertThrows<FerrolmSasException.InvalidKeyLength> { Sas().diffieHellman(short) }
        assertThrows<FerrolmPkException.InvalidKeyLength> { PkDecryption.fromBytes(ByteArray(31)) }
        assertThrows<FerrolmPkException.InvalidKeyLength> { PkSigning.fromSeed(ByteArray(64)) }
        assertThrows<FerrolmPkException.InvalidKeyLength> { PkEncryption.fromKey(short) }
        assertThrows<FerrolmSecretStorageException.InvalidKeyLength> { SecretStorageKey.fromBytes(ByteArray(16)) }
        val p = assertThrows<FerrolmPickleException.InvalidKeyLength> { account.pickle(ByteArray(16)) }
        assertEquals(16u, p.got, "pickle key length")
        assertThrows<FerrolmPickleException.InvalidKeyLength> { Account.fromPickle(account.pickle(pickleKey), ByteArray(0)) }
        val sessionKey = base64Decode(GroupSession(SessionVersion.V1).sessionKey())
        assertThrows<FerrolmMegolmException.InvalidKeyLength> { InboundGroupSession(base64Encode(sessionKey.copyOf(100)), SessionVersion.V1) }
        assertThrows<FerrolmUtilityException.InvalidKeyLength> { ed25519Verify(account.ed25519Key(), ByteArray(0), "AAAA") }
    }

    h.check("errors: invalid base64") {
        val account = Account()
        assertThrows<FerrolmOlmException.InvalidBase64> { account.createOutboundSession("!!", "!!", SessionVersion.V1) }
        assertThrows<FerrolmOlmException.InvalidBase64> { account.createInboundSession(account.curve25519Key(), "not base64") }
        assertThrows<FerrolmMegolmException.InvalidBase64> { InboundGroupSession("@@@", SessionVersion.V1) }
        assertThrows<FerrolmMegolmException.InvalidBase64> { InboundGroupSession.fromExportedKey("@@@", SessionVersion.V1) }
        assertThrows<FerrolmSasException.InvalidBase64> { Sas().diffieHellman("#") }
        val pk = assertThrows<FerrolmPkException.InvalidBase64> {
            PkDecryption().decrypt(PkMessage(ciphertext = "*", mac = "AAAAAAAAAAA", ephemeralKey = account.curve25519Key()))
        }
        assertEquals("ciphertext", pk.field, "PK field")
        assertThrows<FerrolmSecretStorageException.InvalidBase64> { SecretStorageKey().decrypt("m.x", EncryptedSecret("*", "", "")) }
        assertThrows<FerrolmUtilityException.InvalidBase64> { base64Decode("b2x!") }
        assertThrows<FerrolmKeyExportException.InvalidBase64> {
            keyExportDecrypt("-----BEGIN MEGOLM SESSION DATA-----\n%%%%\n-----END MEGOLM SESSION DATA-----", "pw")
        }
    }

    h.check("errors: malformed and mismatched pickles") {
        val account = Account()
        val pickle = account.pickle(pickleKey)
        assertThrows<FerrolmPickleException.InvalidBase64> { Account.fromPickle("not a pickle!", pickleKey) }
        assertThrows<FerrolmPickleException.TooShort> { Account.fromPickle("AAAA", pickleKey) }
        assertThrows<FerrolmPickleException.InvalidMac> { Account.fromPickle(pickle, ByteArray(32)) }
        val kind = assertThrows<FerrolmPickleException.WrongKind> { Session.fromPickle(pickle, pickleKey) }
        assertEquals("session" to "account", kind.expected to kind.got, "kinds")
        assertThrows<FerrolmPickleException.WrongKind> { GroupSession.fromPickle(pickle, pickleKey) }
        val truncated = pickle.substring(0, pickle.length - 8)
        assertThrows<FerrolmPickleException> { Account.fromPickle(truncated, pickleKey) }
        val libolm = account.toLibolmPickle("key".toByteArray())
        assertThrows<FerrolmPickleException.InvalidMac> { Account.fromLibolmPickle(libolm, "other key".toByteArray()) }
        assertThrows<FerrolmPickleException> { Session.fromLibolmPickle(libolm, "key".toByteArray()) }
        assertThrows<FerrolmPickleException.UnsupportedByLibolm> { GroupSession(SessionVersion.V2).toLibolmPickle(pickleKey) }
    }

    h.check("errors: olm session creation") {
        val alice = Account()
        val bob = Account()
        bob.generateOneTimeKeys(1u)
        val otk = bob.oneTimeKeys().values.single()
        assertThrows<FerrolmOlmException.NonContributoryKey> { alice.createOutboundSession(base64Encode(ByteArray(32)), otk, SessionVersion.V1) }
        val first = alice.createOutboundSession(bob.curve25519Key(), otk, SessionVersion.V1).encrypt("x".toByteArray())
        val mismatch = assertThrows<FerrolmOlmException.MismatchedIdentityKey> { bob.createInboundSession(Account().curve25519Key(), first.body) }
        assertEquals(alice.curve25519Key(), mismatch.got, "identity key in message")
        bob.createInboundSession(alice.curve25519Key(), first.body).session.close()
        val missing = assertThrows<FerrolmOlmException.MissingOneTimeKey> { bob.createInboundSession(alice.curve25519Key(), first.body) }
        assertEquals(otk, missing.key, "used one-time key")
    }

    h.check("errors: megolm indices, versions and signatures") {
        val outbound = GroupSession(SessionVersion.V1)
        val inbound = InboundGroupSession(outbound.sessionKey(), SessionVersion.V1)
        val messages = (0 until 60).map { outbound.encrypt("m$it".toByteArray()) }
        val imported = InboundGroupSession.fromExportedKey(inbound.exportAt(50u), SessionVersion.V1)
        require(!imported.isVerified()) { "an exported key is not verified" }
        val unknown = assertThrows<FerrolmMegolmException.UnknownMessageIndex> { imported.decrypt(messages[10]) }
        assertEquals(50u to 10u, unknown.firstKnown to unknown.requested, "indices")
        assertEquals("m55", String(imported.decrypt(messages[55]).plaintext), "imported decrypts later messages")
        val v2 = InboundGroupSession(outbound.sessionKey(), SessionVersion.V2)
        val mismatch = assertThrows<FerrolmMegolmException.VersionMismatch> { v2.decrypt(outbound.encrypt(ByteArray(1))) }
        assertEquals(SessionVersion.V2 to SessionVersion.V1, mismatch.expected to mismatch.got, "versions")
        val key = base64Decode(outbound.sessionKey())
        key[key.size - 1] = (key[key.size - 1].toInt() xor 1).toByte()
        assertThrows<FerrolmMegolmException.InvalidSignature> { InboundGroupSession(base64Encode(key), SessionVersion.V1) }
        // Batch: each message succeeds or fails alone.
        val results = inbound.decryptBatch(listOf(messages[1], "garbage!", GroupSession(SessionVersion.V1).encrypt(ByteArray(1)), messages[2]))
        require(results[0] is BatchDecryption.Decrypted && results[3] is BatchDecryption.Decrypted) { "good ones: $results" }
        assertEquals(FerrolmMegolmException.InvalidBase64::class, (results[1] as BatchDecryption.Failed).error::class, "batch garbage")
        assertEquals(FerrolmMegolmException.InvalidSignature::class, (results[2] as BatchDecryption.Failed).error::class, "batch forgery")
    }

    h.check("errors: 3,000 random inputs, typed exceptions only, no crash") {
        val random = Random(7)
        val account = Account()
        val outbound = GroupSession(SessionVersion.V1)
        val inbound = InboundGroupSession(outbound.sessionKey(), SessionVersion.V1)
        val bob = Account()
        bob.generateOneTimeKeys(1u)
        val session = account.createOutboundSession(bob.curve25519Key(), bob.oneTimeKeys().values.single(), SessionVersion.V1)
        val realOlm = base64Decode(session.encrypt(ByteArray(40)).body)
        val realMegolm = base64Decode(outbound.encrypt(ByteArray(40)))
        var typed = 0
        repeat(1000) { i ->
            // Random bytes, and real messages with a random byte changed or cut short.
            val junk = when (i % 3) {
                0 -> random.nextBytes(random.nextInt(0, 300))
                1 -> realOlm.copyOf().also { it[random.nextInt(it.size)] = random.nextInt(256).toByte() }
                else -> realMegolm.copyOf(random.nextInt(realMegolm.size))
            }
            val body = base64Encode(junk)
            for (attempt in listOf<() -> Unit>(
                { session.decrypt(OlmMessage(if (i % 2 == 0) MessageType.NORMAL else MessageType.PRE_KEY, body)) },
                { inbound.decrypt(body) },
                { Account.fromPickle(body, pickleKey) },
            )) {
                try {
                    attempt()
                } catch (e: FerrolmOlmException) {
                    typed++
                } catch (e: FerrolmMegolmException) {
                    typed++
                } catch (e: FerrolmPickleException) {
                    typed++
                }
            }
        }
        require(typed >= 2990) { "only $typed of 3000 junk inputs were refused" }
        // The objects still work.
        assertEquals(1u, inbound.decrypt(outbound.encrypt(ByteArray(1))).messageIndex, "inbound after junk")
    }
}

fun moduleChecks(h: Harness) {
    h.check("pk: backup encryption round trip, signing") {
        val backup = PkDecryption()
        val message = PkEncryption.fromKey(backup.publicKey()).encrypt("""{"session_key":"..."}""".toByteArray())
        assertEquals("""{"session_key":"..."}""", String(backup.decrypt(message)), "backup plaintext")
        assertThrows<FerrolmPkException.InvalidMac> { PkDecryption().decrypt(message) }
        val restored = PkDecryption.fromBytes(backup.toBytes())
        assertEquals(backup.publicKey(), restored.publicKey(), "restored backup key")
        // A whole backup at once: one result per message, in order; a bad one fails alone.
        val encryption = PkEncryption.fromKey(backup.publicKey())
        val many = (0 until 600).map { encryption.encrypt("session $it".toByteArray()) }.toMutableList()
        many[7] = many[7].copy(mac = "%")
        val results = backup.decryptMany(many)
        assertEquals(600, results.size, "decryptMany results")
        results.forEachIndexed { i, result ->
            if (i == 7) {
                require(result is PkBatchDecryption.Failed && result.error is FerrolmPkException.InvalidBase64) { "message 7: $result" }
            } else {
                require(result is PkBatchDecryption.Decrypted && String(result.plaintext) == "session $i") { "message $i: $result" }
            }
        }
        val key = "k".toByteArray()
        assertEquals(backup.publicKey(), PkDecryption.fromLibolmPickle(backup.toLibolmPickle(key), key).publicKey(), "libolm pickle")
        val signing = PkSigning.fromSeed(ByteArray(32) { 1 })
        ed25519Verify(signing.publicKey(), "{}".toByteArray(), signing.sign("{}".toByteArray()))
        assertThrows<FerrolmUtilityException.InvalidSignature> { ed25519Verify(signing.publicKey(), "[]".toByteArray(), signing.sign("{}".toByteArray())) }
    }

    h.check("secret storage: secrets, recovery key, key check") {
        val key = SecretStorageKey()
        val secret = key.encrypt("m.cross_signing.master", "seed".toByteArray())
        assertEquals("seed", String(key.decrypt("m.cross_signing.master", secret)), "secret")
        assertThrows<FerrolmSecretStorageException.InvalidMac> { key.decrypt("m.megolm_backup.v1", secret) }
        val recovery = key.toRecoveryKey()
        val restored = SecretStorageKey.fromRecoveryKey(recovery)
        restored.verifyKeyCheck(key.keyCheck())
        require(restored.toBytes().contentEquals(key.toBytes())) { "recovery key round trip" }
        val typo = recovery.replaceFirst(Regex("[A-Za-z1-9]"), "0")
        val e = assertThrows<FerrolmSecretStorageException.InvalidRecoveryKeyCharacter> { SecretStorageKey.fromRecoveryKey(typo) }
        assertEquals("0", e.character, "bad character")
        assertThrows<FerrolmSecretStorageException.InvalidMac> { SecretStorageKey().verifyKeyCheck(key.keyCheck()) }
    }

    h.check("key export: files round trip, wrong passphrase") {
        val file = keyExportEncrypt("[]".toByteArray(), "correct horse", 1000u)
        require(file.startsWith("-----BEGIN MEGOLM SESSION DATA-----")) { "armour" }
        assertEquals(1000u, keyExportRounds(file), "rounds")
        assertEquals("[]", String(keyExportDecrypt(file, "correct horse")), "plaintext")
        assertThrows<FerrolmKeyExportException.InvalidMac> { keyExportDecrypt(file, "battery staple") }
        assertThrows<FerrolmKeyExportException.MissingHeader> { keyExportDecrypt("hello", "x") }
        assertThrows<FerrolmKeyExportException.InvalidRounds> { keyExportEncrypt(ByteArray(0), "x", 0u) }
        assertEquals(500_000u, keyExportDefaultRounds(), "default rounds")
    }

    h.check("megolm: export, import, compare and merge") {
        val outbound = GroupSession(SessionVersion.V1)
        val inbound = InboundGroupSession(outbound.sessionKey(), SessionVersion.V1)
        repeat(5) { outbound.encrypt(ByteArray(1)) }
        val late = InboundGroupSession.fromExportedKey(inbound.exportAt(3u), SessionVersion.V1)
        assertEquals(SessionOrdering.BETTER, inbound.compare(late), "compare")
        assertEquals(SessionOrdering.WORSE, late.compare(inbound), "compare reversed")
        assertEquals(SessionOrdering.EQUAL, inbound.compare(inbound), "compare with itself")
        val merged = late.merge(inbound)!!
        require(merged.isVerified() && merged.firstKnownIndex() == 0u) { "merged" }
        val other = InboundGroupSession(GroupSession(SessionVersion.V1).sessionKey(), SessionVersion.V1)
        assertEquals(SessionOrdering.UNCONNECTED, other.compare(inbound), "unconnected")
        require(other.merge(inbound) == null) { "unconnected sessions do not merge" }
        require(late.advanceTo(4u) && !late.advanceTo(1u)) { "advanceTo" }
        listOf(outbound, inbound, late, merged, other).forEach { it.close() }
    }

    h.check("threads: one group session shared by 4 JVM threads") {
        val outbound = GroupSession(SessionVersion.V1)
        val inbound = InboundGroupSession(outbound.sessionKey(), SessionVersion.V1)
        val messages = java.util.concurrent.ConcurrentLinkedQueue<String>()
        val threads = (0 until 4).map { t ->
            Thread { repeat(50) { messages.add(outbound.encrypt("t$t".toByteArray())) } }.also { it.start() }
        }
        threads.forEach { it.join() }
        val indices = messages.map { inbound.decrypt(it).messageIndex }.toSet()
        assertEquals((0u until 200u).toSet(), indices, "indices")
    }
}
