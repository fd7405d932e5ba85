// The other modules (PK, secret storage, key export, Megolm import/export), as in the Kotlin
// moduleChecks, plus what is particular to JavaScript: where the randomness comes from and
// how objects are freed.
import {
  Account,
  GroupSession,
  InboundGroupSession,
  FerrolmUtilityError,
  FerrolmKeyExportError,
  PkDecryption,
  PkEncryption,
  FerrolmPkError,
  PkSigning,
  FerrolmSecretStorageError,
  SecretStorageKey,
  ed25519Verify,
  keyExportDecrypt,
  keyExportDefaultRounds,
  keyExportEncrypt,
  keyExportRounds,
  randomStats,
} from 'ferrolm';
import { type Check, CheckFailed, assertEquals, assertThrows, ensure, text, utf8 } from './harness.js';

function pk(): void {
  const backup = PkDecryption.create();
  const message = PkEncryption.fromKey(backup.publicKey()).encrypt(utf8('{"session_key":"..."}'));
  assertEquals('{"session_key":"..."}', text(backup.decrypt(message)), 'backup plaintext');
  assertThrows(FerrolmPkError, 'InvalidMac', () => PkDecryption.create().decrypt(message));
  const restored = PkDecryption.fromBytes(backup.toBytes());
  assertEquals(backup.publicKey(), restored.publicKey(), 'restored backup key');
  // A whole backup at once: one result per message, in order; a bad one fails alone.
  const encryption = PkEncryption.fromKey(backup.publicKey());
  const many = Array.from({ length: 600 }, (_, i) => encryption.encrypt(utf8(`session ${i}`)));
  many[7] = { ...many[7]!, mac: '%' };
  const results = backup.decryptMany(many);
  assertEquals(600, results.length, 'decryptMany results');
  results.forEach((result, i) => {
    if (i === 7) {
      if (result.tag !== 'Failed') throw new CheckFailed('message 7 decrypted');
      ensure(result.error instanceof FerrolmPkError, () => 'a FerrolmPkError');
      assertEquals('InvalidBase64', result.error.variant.tag, 'message 7');
    } else {
      if (result.tag !== 'Decrypted') throw new CheckFailed(`message ${i}: ${result.tag}`);
      assertEquals(`session ${i}`, text(result.plaintext), `message ${i}`);
    }
  });
  const key = utf8('k');
  assertEquals(backup.publicKey(), PkDecryption.fromLibolmPickle(backup.toLibolmPickle(key), key).publicKey(), 'libolm pickle');
  const signing = PkSigning.fromSeed(new Uint8Array(32).fill(1));
  ed25519Verify(signing.publicKey(), utf8('{}'), signing.sign(utf8('{}')));
  assertThrows(FerrolmUtilityError, 'InvalidSignature', () => ed25519Verify(signing.publicKey(), utf8('[]'), signing.sign(utf8('{}'))));
}

function secretStorage(): void {
  const key = SecretStorageKey.create();
  const secret = key.encrypt('m.cross_signing.master', utf8('seed'));
  assertEquals('seed', text(key.decrypt('m.cross_signing.master', secret)), 'secret');
  assertThrows(FerrolmSecretStorageError, 'InvalidMac', () => key.decrypt('m.megolm_backup.v1', secret));
  const recovery = key.toRecoveryKey();
  const restored = SecretStorageKey.fromRecoveryKey(recovery);
  restored.verifyKeyCheck(key.keyCheck());
  assertEquals(key.toBytes(), restored.toBytes(), 'recovery key round trip');
  const typo = recovery.replace(/[A-Za-z1-9]/, '0');
  const e = assertThrows(FerrolmSecretStorageError, 'InvalidRecoveryKeyCharacter', () => SecretStorageKey.fromRecoveryKey(typo));
  assertEquals('0', e.character, 'bad character');
  assertThrows(FerrolmSecretStorageError, 'InvalidMac', () => SecretStorageKey.create().verifyKeyCheck(key.keyCheck()));
}

function keyExport(): void {
  const file = keyExportEncrypt(utf8('[]'), 'correct horse', 1000);
  ensure(file.startsWith('-----BEGIN MEGOLM SESSION DATA-----'), () => 'armour');
  assertEquals(1000, keyExportRounds(file), 'rounds');
  assertEquals('[]', text(keyExportDecrypt(file, 'correct horse')), 'plaintext');
  assertThrows(FerrolmKeyExportError, 'InvalidMac', () => keyExportDecrypt(file, 'battery staple'));
  assertThrows(FerrolmKeyExportError, 'MissingHeader', () => keyExportDecrypt('hello', 'x'));
  assertThrows(FerrolmKeyExportError, 'InvalidRounds', () => keyExportEncrypt(new Uint8Array(0), 'x', 0));
  assertEquals(500000, keyExportDefaultRounds(), 'default rounds');
}

function megolmImportExport(): void {
  const outbound = GroupSession.create('V1');
  const inbound = InboundGroupSession.create(outbound.sessionKey(), 'V1');
  for (let i = 0; i < 5; i++) outbound.encrypt(new Uint8Array(1));
  const exported = inbound.exportAt(3);
  const late = InboundGroupSession.fromExportedKey(exported, 'V1');
  assertEquals('Better', inbound.compare(late), 'compare');
  assertEquals('Worse', late.compare(inbound), 'compare reversed');
  assertEquals('Equal', inbound.compare(inbound), 'compare with itself');
  const merged = late.merge(inbound);
  if (merged === null) throw new CheckFailed('connected sessions did not merge');
  ensure(merged.isVerified() && merged.firstKnownIndex() === 0, () => 'merged');
  const other = InboundGroupSession.create(GroupSession.create('V1').sessionKey(), 'V1');
  assertEquals('Unconnected', other.compare(inbound), 'unconnected');
  ensure(other.merge(inbound) === null, () => 'unconnected sessions do not merge');
  ensure(late.advanceTo(4) && !late.advanceTo(1), () => 'advanceTo');
  for (const o of [outbound, inbound, late, merged, other]) o.free();
}

function randomness(): void {
  // Every random byte comes from crypto.getRandomValues through the module's import.
  const before = randomStats();
  const a = Account.create();
  const b = Account.create();
  const after = randomStats();
  ensure(after.calls > before.calls, () => `the randomness import was not called (calls ${before.calls} -> ${after.calls})`);
  // An account draws one Ed25519 and one Curve25519 secret key, 32 bytes each.
  ensure(after.bytes - before.bytes >= 2 * 64, () => `only ${after.bytes - before.bytes} random bytes for two accounts`);
  ensure(after.lastError === null, () => `the import failed: ${String(after.lastError)}`);
  ensure(a.curve25519Key() !== b.curve25519Key(), () => 'two fresh accounts have the same Curve25519 key');
  ensure(a.ed25519Key() !== b.ed25519Key(), () => 'two fresh accounts have the same Ed25519 key');
  // And so do one-time keys and session keys.
  a.generateOneTimeKeys(20);
  assertEquals(20, new Set(a.oneTimeKeys().values()).size, 'distinct one-time keys');
  assertEquals(
    10,
    new Set(Array.from({ length: 10 }, () => GroupSession.create('V1').sessionKey())).size,
    'distinct Megolm session keys',
  );
}

function lifetimes(): void {
  // free() releases the Rust object at once; it may be called twice; a freed object throws.
  const account = Account.create();
  const key = account.curve25519Key();
  account.free();
  account.free();
  let threw = false;
  try {
    account.curve25519Key();
  } catch (e) {
    threw = e instanceof Error && /freed/.test(e.message);
  }
  ensure(threw, () => 'a freed object did not throw');
  ensure(key.length === 43, () => 'key read before free');
  // Many objects created and freed (and many left to the FinalizationRegistry) do not break the module.
  for (let i = 0; i < 2000; i++) {
    const session = GroupSession.create('V1');
    session.encrypt(new Uint8Array(16));
    if (i % 2 === 0) session.free();
  }
  assertEquals(0, InboundGroupSession.create(GroupSession.create('V1').sessionKey(), 'V1').firstKnownIndex(), 'still works');
}

export function moduleChecks(): Check[] {
  return [
    { name: 'pk: backup encryption round trip, signing', run: pk },
    { name: 'secret storage: secrets, recovery key, key check', run: secretStorage },
    { name: 'key export: files round trip, wrong passphrase', run: keyExport },
    { name: 'megolm: export, import, compare and merge', run: megolmImportExport },
    { name: 'randomness: crypto.getRandomValues via the import, fresh keys differ', run: randomness },
    { name: 'objects: free(), use after free, 2,000 objects', run: lifetimes },
  ];
}
