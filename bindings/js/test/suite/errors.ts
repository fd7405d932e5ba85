// Bad input of every kind reaches JavaScript as the module's typed error (`instanceof FerrolmOlmError`,
// …, with the variant in `e.variant.tag`), never as a WebAssembly trap (`RuntimeError`, which
// would mean a Rust panic) or a generic Error, and the module carries on. A port of
// bindings/kotlin/src/test/kotlin/Errors.kt, check for check.
import {
  Account,
  GroupSession,
  InboundGroupSession,
  FerrolmUtilityError,
  FerrolmKeyExportError,
  FerrolmMegolmError,
  FerrolmOlmError,
  FerrolmPickleError,
  PkDecryption,
  PkEncryption,
  FerrolmPkError,
  PkSigning,
  Sas,
  FerrolmSasError,
  FerrolmSecretStorageError,
  SecretStorageKey,
  Session,
  base64Decode,
  base64Encode,
  ed25519Verify,
  keyExportDecrypt,
} from 'ferrolm';
import { type Check, CheckFailed, TestRandom, assertEquals, assertThrows, ensure, utf8 } from './harness.js';

const pickleKey = Uint8Array.from({ length: 32 }, (_, i) => i);
const onlyKey = (map: Map<string, string>): string => {
  const values = [...map.values()];
  if (values.length !== 1) throw new CheckFailed(`expected one key, got ${values.length}`);
  return values[0] as string;
};
const resized = (bytes: Uint8Array, length: number): Uint8Array => {
  const out = new Uint8Array(length);
  out.set(bytes.subarray(0, length));
  return out;
};

function wrongLengthKeys(): void {
  const account = Account.create();
  const bob = Account.create();
  bob.generateOneTimeKeys(1);
  const otk = onlyKey(bob.oneTimeKeys());
  const short = base64Encode(new Uint8Array(31));
  const e = assertThrows(FerrolmOlmError, 'InvalidKeyLength', () => account.createOutboundSession(short, otk, 'V1'));
  assertEquals(32, e.expected, 'expected length');
  assertEquals(31, e.got, 'given length');
  assertThrows(FerrolmOlmError, 'InvalidKeyLength', () =>
    account.createOutboundSession(bob.curve25519Key(), base64Encode(new Uint8Array(33)), 'V1'),
  );
  assertThrows(FerrolmSasError, 'InvalidKeyLength', () => Sas.create().diffieHellman(short));
  assertThrows(FerrolmPkError, 'InvalidKeyLength', () => PkDecryption.fromBytes(new Uint8Array(31)));
  assertThrows(FerrolmPkError, 'InvalidKeyLength', () => PkSigning.fromSeed(new Uint8Array(64)));
  assertThrows(FerrolmPkError, 'InvalidKeyLength', () => PkEncryption.fromKey(short));
  assertThrows(FerrolmSecretStorageError, 'InvalidKeyLength', () => SecretStorageKey.fromBytes(new Uint8Array(16)));
  const p = assertThrows(FerrolmPickleError, 'InvalidKeyLength', () => account.pickle(new Uint8Array(16)));
  assertEquals(16, p.got, 'pickle key length');
  assertThrows(FerrolmPickleError, 'InvalidKeyLength', () => Account.fromPickle(account.pickle(pickleKey), new Uint8Array(0)));
  const sessionKey = base64Decode(GroupSession.create('V1').sessionKey());
  assertThrows(FerrolmMegolmError, 'InvalidKeyLength', () => InboundGroupSession.create(base64Encode(resized(sessionKey, 100)), 'V1'));
  assertThrows(FerrolmUtilityError, 'InvalidKeyLength', () => ed25519Verify(account.ed25519Key(), new Uint8Array(0), 'AAAA'));
}

function invalidBase64(): void {
  const account = Account.create();
  assertThrows(FerrolmOlmError, 'InvalidBase64', () => account.createOutboundSession('!!', '!!', 'V1'));
  assertThrows(FerrolmOlmError, 'InvalidBase64', () => account.createInboundSession(account.curve25519Key(), 'not base64'));
  assertThrows(FerrolmMegolmError, 'InvalidBase64', () => InboundGroupSession.create('@@@', 'V1'));
  assertThrows(FerrolmMegolmError, 'InvalidBase64', () => InboundGroupSession.fromExportedKey('@@@', 'V1'));
  assertThrows(FerrolmSasError, 'InvalidBase64', () => Sas.create().diffieHellman('#'));
  const pk = assertThrows(FerrolmPkError, 'InvalidBase64', () =>
    PkDecryption.create().decrypt({ ciphertext: '*', mac: 'AAAAAAAAAAA', ephemeralKey: account.curve25519Key() }),
  );
  assertEquals('ciphertext', pk.field, 'PK field');
  assertThrows(FerrolmSecretStorageError, 'InvalidBase64', () => SecretStorageKey.create().decrypt('m.x', { iv: '*', ciphertext: '', mac: '' }));
  assertThrows(FerrolmUtilityError, 'InvalidBase64', () => base64Decode('b2x!'));
  assertThrows(FerrolmKeyExportError, 'InvalidBase64', () =>
    keyExportDecrypt('-----BEGIN MEGOLM SESSION DATA-----\n%%%%\n-----END MEGOLM SESSION DATA-----', 'pw'),
  );
}

function pickles(): void {
  const account = Account.create();
  const pickle = account.pickle(pickleKey);
  assertThrows(FerrolmPickleError, 'InvalidBase64', () => Account.fromPickle('not a pickle!', pickleKey));
  assertThrows(FerrolmPickleError, 'TooShort', () => Account.fromPickle('AAAA', pickleKey));
  assertThrows(FerrolmPickleError, 'InvalidMac', () => Account.fromPickle(pickle, new Uint8Array(32)));
  const kind = assertThrows(FerrolmPickleError, 'WrongKind', () => Session.fromPickle(pickle, pickleKey));
  assertEquals(['session', 'account'], [kind.expected, kind.got], 'kinds');
  assertThrows(FerrolmPickleError, 'WrongKind', () => GroupSession.fromPickle(pickle, pickleKey));
  const truncated = pickle.substring(0, pickle.length - 8);
  assertThrows(FerrolmPickleError, null, () => Account.fromPickle(truncated, pickleKey));
  const libolm = account.toLibolmPickle(utf8('key'));
  assertThrows(FerrolmPickleError, 'InvalidMac', () => Account.fromLibolmPickle(libolm, utf8('other key')));
  assertThrows(FerrolmPickleError, null, () => Session.fromLibolmPickle(libolm, utf8('key')));
  assertThrows(FerrolmPickleError, 'UnsupportedByLibolm', () => GroupSession.create('V2').toLibolmPickle(pickleKey));
}

function sessionCreation(): void {
  const alice = Account.create();
  const bob = Account.create();
  bob.generateOneTimeKeys(1);
  const otk = onlyKey(bob.oneTimeKeys());
  assertThrows(FerrolmOlmError, 'NonContributoryKey', () => alice.createOutboundSession(base64Encode(new Uint8Array(32)), otk, 'V1'));
  const first = alice.createOutboundSession(bob.curve25519Key(), otk, 'V1').encrypt(utf8('x'));
  const mismatch = assertThrows(FerrolmOlmError, 'MismatchedIdentityKey', () => bob.createInboundSession(Account.create().curve25519Key(), first.body));
  assertEquals(alice.curve25519Key(), mismatch.got, 'identity key in message');
  bob.createInboundSession(alice.curve25519Key(), first.body).session.free();
  const missing = assertThrows(FerrolmOlmError, 'MissingOneTimeKey', () => bob.createInboundSession(alice.curve25519Key(), first.body));
  assertEquals(otk, missing.key, 'used one-time key');
}

function megolmErrors(): void {
  const outbound = GroupSession.create('V1');
  const inbound = InboundGroupSession.create(outbound.sessionKey(), 'V1');
  const messages = Array.from({ length: 60 }, (_, i) => outbound.encrypt(utf8(`m${i}`)));
  const exported = inbound.exportAt(50);
  const imported = InboundGroupSession.fromExportedKey(exported, 'V1');
  ensure(!imported.isVerified(), () => 'an exported key is not verified');
  const unknown = assertThrows(FerrolmMegolmError, 'UnknownMessageIndex', () => imported.decrypt(messages[10] as string));
  assertEquals([50, 10], [unknown.firstKnown, unknown.requested], 'indices');
  assertEquals('m55', new TextDecoder().decode(imported.decrypt(messages[55] as string).plaintext), 'imported decrypts later messages');
  const v2 = InboundGroupSession.create(outbound.sessionKey(), 'V2');
  const mismatch = assertThrows(FerrolmMegolmError, 'VersionMismatch', () => v2.decrypt(outbound.encrypt(new Uint8Array(1))));
  assertEquals(['V2', 'V1'], [mismatch.expected, mismatch.got], 'versions');
  const key = base64Decode(outbound.sessionKey());
  key[key.length - 1] = (key[key.length - 1] as number) ^ 1;
  assertThrows(FerrolmMegolmError, 'InvalidSignature', () => InboundGroupSession.create(base64Encode(key), 'V1'));
  // Batch: each message succeeds or fails alone.
  const results = inbound.decryptBatch([
    messages[1] as string,
    'garbage!',
    GroupSession.create('V1').encrypt(new Uint8Array(1)),
    messages[2] as string,
  ]);
  const tags = results.map((r) => r.tag);
  assertEquals(['Decrypted', 'Failed', 'Failed', 'Decrypted'], tags, 'batch results');
  const failure = (i: number): FerrolmMegolmError => {
    const r = results[i];
    if (r?.tag !== 'Failed') throw new CheckFailed(`batch ${i} did not fail`);
    return r.error;
  };
  ensure(failure(1) instanceof FerrolmMegolmError, () => 'batch error is a FerrolmMegolmError');
  assertEquals('InvalidBase64', failure(1).variant.tag, 'batch garbage');
  assertEquals('InvalidSignature', failure(2).variant.tag, 'batch forgery');
}

function randomInputs(): void {
  const random = new TestRandom(7);
  const account = Account.create();
  const outbound = GroupSession.create('V1');
  const inbound = InboundGroupSession.create(outbound.sessionKey(), 'V1');
  const bob = Account.create();
  bob.generateOneTimeKeys(1);
  const session = account.createOutboundSession(bob.curve25519Key(), onlyKey(bob.oneTimeKeys()), 'V1');
  const realOlm = base64Decode(session.encrypt(new Uint8Array(40)).body);
  const realMegolm = base64Decode(outbound.encrypt(new Uint8Array(40)));
  let typed = 0;
  for (let i = 0; i < 1000; i++) {
    // Random bytes, and real messages with a random byte changed or cut short.
    let junk: Uint8Array;
    if (i % 3 === 0) junk = random.bytes(random.int(0, 300));
    else if (i % 3 === 1) {
      junk = realOlm.slice();
      junk[random.int(0, junk.length)] = random.int(0, 256);
    } else junk = realMegolm.slice(0, random.int(0, realMegolm.length));
    const body = base64Encode(junk);
    const attempts: (() => unknown)[] = [
      () => session.decrypt({ messageType: i % 2 === 0 ? 'Normal' : 'PreKey', body }),
      () => inbound.decrypt(body),
      () => Account.fromPickle(body, pickleKey),
    ];
    for (const attempt of attempts) {
      try {
        attempt();
      } catch (e) {
        // Anything else (a RuntimeError from a trap, a generic Error) fails the check.
        if (e instanceof FerrolmOlmError || e instanceof FerrolmMegolmError || e instanceof FerrolmPickleError) typed++;
        else throw e;
      }
    }
  }
  ensure(typed >= 2990, () => `only ${typed} of 3000 junk inputs were refused`);
  // The objects still work.
  assertEquals(1, inbound.decrypt(outbound.encrypt(new Uint8Array(1))).messageIndex, 'inbound after junk');
}

export function errorChecks(): Check[] {
  return [
    { name: 'errors: wrong-length keys', run: wrongLengthKeys },
    { name: 'errors: invalid base64', run: invalidBase64 },
    { name: 'errors: malformed and mismatched pickles', run: pickles },
    { name: 'errors: olm session creation', run: sessionCreation },
    { name: 'errors: megolm indices, versions and signatures', run: megolmErrors },
    { name: 'errors: 3,000 random inputs, typed errors only, no crash', run: randomInputs },
  ];
}
