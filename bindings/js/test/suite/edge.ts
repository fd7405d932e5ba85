// The FFI edge as a binding user meets it (issue 10, §4), the same checks as Kotlin's Edge.kt
// and Swift's EdgeTests.swift: every error has a human message (the Rust Display, as
// `e.message`), error names are ferrolm's own, Olm message types cross as Matrix's integers,
// session versions default to v1 and a mismatch names both versions, and `exportAt` of an
// unknown index throws like everything else.
import {
  Account,
  FerrolmKeyExportError,
  FerrolmMegolmError,
  FerrolmOlmError,
  FerrolmPickleError,
  FerrolmPkError,
  FerrolmSasError,
  FerrolmSecretStorageError,
  FerrolmUtilityError,
  GroupSession,
  InboundGroupSession,
  PkDecryption,
  PkEncryption,
  Sas,
  SecretStorageKey,
  base64Decode,
  base64Encode,
  ed25519Verify,
  keyExportDecrypt,
  messageTypeFromInt,
  messageTypeToInt,
  olmMessageFromParts,
} from 'ferrolm';
import { type Check, CheckFailed, assertEquals, ensure, text, utf8 } from './harness.js';

type FerrolmError = Error & { variant: { tag: string }; describe(): string };
type ErrorClass = abstract new (...args: never[]) => FerrolmError;

/** Runs `body`, which must throw a `cls` with `variant.tag` `tag`; returns the error itself. */
function thrown<C extends ErrorClass>(cls: C, tag: string, body: () => unknown): InstanceType<C> {
  try {
    body();
  } catch (e) {
    if (e instanceof cls && (e as FerrolmError).variant.tag === tag) return e as InstanceType<C>;
    throw new CheckFailed(`expected ${cls.name}.${tag}, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
  }
  throw new CheckFailed(`expected ${cls.name}.${tag}, nothing was thrown`);
}

/** `e`'s message, however JavaScript code asks for it, must be `expected`. */
function expectMessage(expected: string, e: FerrolmError): void {
  assertEquals(expected, e.message, `${e.name}.message`);
  assertEquals(expected, e.describe(), `${e.name}.describe()`);
  assertEquals(`${e.name}: ${expected}`, String(e), `String(${e.name})`);
}

function humanMessages(): void {
  const alice = Account.create();
  const bob = Account.create();
  bob.generateOneTimeKeys(1);
  const [otk] = bob.oneTimeKeys().values();
  if (otk === undefined) throw new CheckFailed('no one-time key');
  const session = alice.createOutboundSession(bob.curve25519Key(), otk);
  const first = session.encrypt(utf8('hi'));
  const bobSession = bob.createInboundSession(alice.curve25519Key(), first.body).session;
  const reply = base64Decode(bobSession.encrypt(utf8('x')).body);
  reply[reply.length - 12] = (reply[reply.length - 12] as number) ^ 1;
  const olm = thrown(FerrolmOlmError, 'InvalidMac', () => session.decrypt({ messageType: 'Normal', body: base64Encode(reply) }));
  expectMessage("the message's MAC does not match: it was altered, or is not for this session", olm);

  const outbound = GroupSession.create();
  const inbound = InboundGroupSession.create(outbound.sessionKey());
  const messages = Array.from({ length: 5 }, () => outbound.encrypt(new Uint8Array(1)));
  const late = InboundGroupSession.fromExportedKey(inbound.exportAt(3));
  const megolm = thrown(FerrolmMegolmError, 'UnknownMessageIndex', () => late.decrypt(messages[1] as string));
  expectMessage("index 1 is before this session's first known index 3", megolm);

  expectMessage('the pickle key is 31 bytes long, not 32', thrown(FerrolmPickleError, 'InvalidKeyLength', () => alice.pickle(new Uint8Array(31))));
  const sas = Sas.create();
  sas.diffieHellman(Sas.create().publicKey());
  expectMessage(
    "this SAS object's key was already used: each SAS key is used once",
    thrown(FerrolmSasError, 'AlreadyUsed', () => sas.diffieHellman(Sas.create().publicKey())),
  );
  const backup = PkEncryption.fromKey(PkDecryption.create().publicKey()).encrypt(new Uint8Array(4));
  expectMessage(
    'the MAC does not match: the message is for another backup key',
    thrown(FerrolmPkError, 'InvalidMac', () => PkDecryption.create().decrypt(backup)),
  );
  expectMessage(
    'the key is 16 bytes long, not 32',
    thrown(FerrolmSecretStorageError, 'InvalidKeyLength', () => SecretStorageKey.fromBytes(new Uint8Array(16))),
  );
  expectMessage(
    'the file has no BEGIN MEGOLM SESSION DATA line',
    thrown(FerrolmKeyExportError, 'MissingHeader', () => keyExportDecrypt('hello', 'x')),
  );
  expectMessage('the input is not valid base64', thrown(FerrolmUtilityError, 'InvalidBase64', () => base64Decode('b2x!')));
}

function errorNames(): void {
  const classes = [
    FerrolmOlmError, FerrolmMegolmError, FerrolmSasError, FerrolmPkError,
    FerrolmPickleError, FerrolmKeyExportError, FerrolmSecretStorageError, FerrolmUtilityError,
  ];
  assertEquals(
    [
      'FerrolmOlmError', 'FerrolmMegolmError', 'FerrolmSasError', 'FerrolmPkError',
      'FerrolmPickleError', 'FerrolmKeyExportError', 'FerrolmSecretStorageError', 'FerrolmUtilityError',
    ],
    classes.map((c) => c.name),
    'error class names',
  );
  // The error's own `name` (what consoles print) is the class's, not a global's.
  const e = thrown(FerrolmUtilityError, 'InvalidKeyLength', () => ed25519Verify(Account.create().ed25519Key(), new Uint8Array(0), 'AAAA'));
  assertEquals('FerrolmUtilityError', e.name, 'error name');
  ensure(!(e instanceof TypeError || e instanceof RangeError || e instanceof SyntaxError), () => `${e.name} is a built-in error`);
}

function messageTypesAsIntegers(): void {
  assertEquals(0, messageTypeToInt('PreKey'), 'pre-key type');
  assertEquals(1, messageTypeToInt('Normal'), 'normal type');
  assertEquals('PreKey', messageTypeFromInt(0), 'type 0');
  assertEquals('Normal', messageTypeFromInt(1), 'type 1');
  const unknown = thrown(FerrolmOlmError, 'UnknownMessageType', () => messageTypeFromInt(2));
  assertEquals({ tag: 'UnknownMessageType', messageType: 2 }, unknown.variant, 'unknown type');
  expectMessage('unknown Olm message type 2: 0 is a pre-key message, 1 a normal message', unknown);

  const alice = Account.create();
  const bob = Account.create();
  bob.generateOneTimeKeys(1);
  const [otk] = bob.oneTimeKeys().values();
  if (otk === undefined) throw new CheckFailed('no one-time key');
  const sent = alice.createOutboundSession(bob.curve25519Key(), otk).encrypt(utf8('as JSON'));
  // {"type": 0, "body": "…"} as it arrives in a to-device event.
  const received = olmMessageFromParts(messageTypeToInt(sent.messageType), sent.body);
  assertEquals(sent, received, 'message from parts');
  assertEquals('as JSON', text(bob.createInboundSession(alice.curve25519Key(), received.body).plaintext), 'plaintext');
  const seven = thrown(FerrolmOlmError, 'UnknownMessageType', () => olmMessageFromParts(7, sent.body));
  assertEquals({ tag: 'UnknownMessageType', messageType: 7 }, seven.variant, 'unknown type 7');
  thrown(FerrolmOlmError, 'InvalidBase64', () => olmMessageFromParts(0, '%%'));
}

function sessionVersions(): void {
  const outbound = GroupSession.create();
  assertEquals('V1', outbound.version(), 'GroupSession.create()');
  const inbound = InboundGroupSession.create(outbound.sessionKey());
  assertEquals('V1', inbound.version(), 'InboundGroupSession.create(key)');
  assertEquals('V1', InboundGroupSession.fromExportedKey(inbound.exportAt(0)).version(), 'fromExportedKey(key)');
  const alice = Account.create();
  const bob = Account.create();
  bob.generateOneTimeKeys(2);
  const entries = [...bob.oneTimeKeys()];
  const [otk1, otk2] = entries.map(([, key]) => key);
  const otk2Id = entries[1]?.[0];
  if (otk1 === undefined || otk2 === undefined || otk2Id === undefined) throw new CheckFailed('no one-time keys');
  assertEquals('V1', alice.createOutboundSession(bob.curve25519Key(), otk1).version(), 'createOutboundSession');

  // A v2 pre-key message is refused when the session is made (v1 expected by default)...
  const first = alice.createOutboundSession(bob.curve25519Key(), otk2, 'V2').encrypt(utf8('v2'));
  const olm = thrown(FerrolmOlmError, 'VersionMismatch', () => bob.createInboundSession(alice.curve25519Key(), first.body));
  assertEquals({ tag: 'VersionMismatch', expected: 'V1', got: 'V2' }, olm.variant, 'olm versions');
  expectMessage('the message is a v2 message, but the session is v1', olm);
  // ... and accepted, with the same one-time key, when v2 is asked for.
  const created = bob.createInboundSession(alice.curve25519Key(), first.body, 'V2');
  assertEquals('V2', created.session.version(), 'v2 session');
  assertEquals({ tag: 'OneTime', keyId: otk2Id }, created.consumedKey, 'the key the session used');

  // A Megolm session key carries no version: the first message names the mismatch.
  const v2 = InboundGroupSession.create(outbound.sessionKey(), 'V2');
  const megolm = thrown(FerrolmMegolmError, 'VersionMismatch', () => v2.decrypt(outbound.encrypt(new Uint8Array(1))));
  assertEquals({ tag: 'VersionMismatch', expected: 'V2', got: 'V1' }, megolm.variant, 'megolm versions');
  expectMessage('the message is a v1 message, but the session is v2', megolm);
}

function exportAtUnknownIndex(): void {
  const outbound = GroupSession.create();
  const inbound = InboundGroupSession.create(outbound.sessionKey());
  const late = InboundGroupSession.fromExportedKey(inbound.exportAt(3));
  const e = thrown(FerrolmMegolmError, 'UnknownMessageIndex', () => late.exportAt(2));
  assertEquals({ tag: 'UnknownMessageIndex', firstKnown: 3, requested: 2 }, e.variant, 'indices');
  expectMessage("index 2 is before this session's first known index 3", e);
  assertEquals(late.exportAtFirstKnownIndex(), late.exportAt(3), 'the first known index exports');
}

export function edgeChecks(): Check[] {
  return [
    { name: 'edge: every error type carries its human message', run: humanMessages },
    { name: "edge: error names are ferrolm's own", run: errorNames },
    { name: 'edge: Olm message types cross as Matrix integers', run: messageTypesAsIntegers },
    { name: 'edge: session versions default to v1, a mismatch names both', run: sessionVersions },
    { name: 'edge: exportAt an unknown index throws', run: exportAtUnknownIndex },
  ];
}
