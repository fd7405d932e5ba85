// The end-to-end story (the same as bindings/kotlin/src/test/kotlin/Scenario.kt): Alice and Bob
// set up devices, talk over Olm with messages delivered out of order, share a Megolm room key
// over that channel, verify each other with SAS, and survive a restart through both pickle
// formats. Runs unchanged in Node and in the browser.
import {
  Account,
  GroupSession,
  InboundGroupSession,
  FerrolmMegolmError,
  FerrolmOlmError,
  Sas,
  FerrolmSasError,
  Session,
  base64Decode,
  base64Encode,
  ed25519Verify,
  type OlmMessage,
} from 'ferrolm';
import { type Check, CheckFailed, TestRandom, assertBytes, assertEquals, assertThrows, ensure, text, utf8 } from './harness.js';

export interface ScenarioLog {
  (line: string): void;
}

export function scenario(log: ScenarioLog = () => {}): Check[] {
  const random = new TestRandom(20240229);
  let alice!: Account;
  let bob!: Account;
  let aliceOlm!: Session;
  let bobOlm: Session | null = null;
  let roomOut!: GroupSession;
  let roomIn!: InboundGroupSession;
  let sentByAlice = 0;
  let sentByBob = 0;

  const aliceSays = (n: number) => utf8(`alice→bob #${n}: ${'x'.repeat(n)}`);
  const bobSays = (n: number) => utf8(`bob→alice #${n}`);

  /** Bob receives one of Alice's messages, creating his session from the first pre-key message. */
  function bobReceives(message: OlmMessage): Uint8Array {
    if (bobOlm === null) {
      assertEquals('PreKey', message.messageType, 'first message type');
      const created = bob.createInboundSession(alice.curve25519Key(), message.body);
      bobOlm = created.session;
      return created.plaintext;
    }
    if (message.messageType === 'PreKey') {
      ensure(bobOlm.matches(message.body), () => 'a pre-key message of this session does not match it');
    }
    return bobOlm.decrypt(message);
  }
  const bobSession = (): Session => {
    if (bobOlm === null) throw new CheckFailed('Bob has no session yet');
    return bobOlm;
  };

  function accounts(): void {
    alice = Account.create();
    bob = Account.create();
    for (const account of [alice, bob]) {
      const keys = account.identityKeys();
      assertEquals(43, keys.ed25519.length, 'ed25519 key length');
      assertEquals(43, keys.curve25519.length, 'curve25519 key length');
      const deviceKeys = utf8(`{"device_id":"DEV","keys":{"curve25519:DEV":"${keys.curve25519}"}}`);
      ed25519Verify(keys.ed25519, deviceKeys, account.sign(deviceKeys));
    }
    ensure(alice.curve25519Key() !== bob.curve25519Key(), () => 'two accounts share a key');
    const generated = bob.generateOneTimeKeys(bob.maxNumberOfOneTimeKeys());
    assertEquals(50, generated.created.length, 'created one-time keys');
    assertEquals(50, bob.oneTimeKeys().size, 'unpublished one-time keys');
    bob.generateFallbackKey();
    assertEquals(1, bob.fallbackKey().size, 'fallback keys');
  }

  function olmSession(): void {
    // Alice claims one of Bob's uploaded keys; then Bob marks them published.
    const claimed = bob.oneTimeKeys().values().next().value as string;
    bob.markKeysAsPublished();
    assertEquals(0, bob.oneTimeKeys().size, 'unpublished keys after publishing');
    aliceOlm = alice.createOutboundSession(bob.curve25519Key(), claimed, 'V1');
    assertEquals('V1', aliceOlm.version(), 'session version');
    ensure(!aliceOlm.hasReceivedMessage(), () => 'fresh session has received');
  }

  function olmConversation(): void {
    let held: [number, OlmMessage] | undefined;
    for (let round = 0; round < 5; round++) {
      // Alice sends ten; they arrive shuffled. One of the first round's is held back and
      // delivered two rounds (two ratchet steps) later.
      const fromAlice: [number, OlmMessage][] = [];
      for (let k = 0; k < 10; k++) fromAlice.push([sentByAlice + k, aliceOlm.encrypt(aliceSays(sentByAlice + k))]);
      sentByAlice += 10;
      const delivered = random.shuffled(fromAlice);
      if (round === 0) held = delivered.pop();
      if (round === 2 && held) delivered.push(held);
      for (const [n, message] of delivered) assertBytes(aliceSays(n), bobReceives(message), `alice's message ${n}`);

      const fromBob: [number, OlmMessage][] = [];
      for (let k = 0; k < 10; k++) fromBob.push([sentByBob + k, bobSession().encrypt(bobSays(sentByBob + k))]);
      sentByBob += 10;
      for (const [n, message] of random.shuffled(fromBob)) {
        assertEquals('Normal', message.messageType, "bob's message type");
        assertBytes(bobSays(n), aliceOlm.decrypt(message), `bob's message ${n}`);
      }
    }
    assertEquals(50, sentByAlice, 'messages from alice');
    assertEquals(50, sentByBob, 'messages from bob');
    ensure(aliceOlm.hasReceivedMessage() && bobSession().hasReceivedMessage(), () => 'both sides have received');
    assertEquals(aliceOlm.sessionId(), bobSession().sessionId(), 'session id');
    assertEquals(aliceOlm.sessionKeys(), bobSession().sessionKeys(), 'session keys');
    // Alice has heard back, so her messages are normal ones now (this one is never delivered).
    assertEquals('Normal', aliceOlm.encrypt(utf8('ping')).messageType, 'type after reply');
  }

  function megolm(): void {
    roomOut = GroupSession.create('V1');
    const roomKey = JSON.stringify({
      type: 'm.room_key',
      content: {
        algorithm: 'm.megolm.v1.aes-sha2',
        room_id: '!room:example.org',
        session_id: roomOut.sessionId(),
        session_key: roomOut.sessionKey(),
      },
    });
    // Over the Olm channel (Alice's pending "ping" above is simply never delivered).
    const toDevice = aliceOlm.encrypt(utf8(roomKey));
    const received = JSON.parse(text(bobSession().decrypt(toDevice))) as { content: { session_key: string } };
    roomIn = InboundGroupSession.create(received.content.session_key, 'V1');
    assertEquals(roomOut.sessionId(), roomIn.sessionId(), 'room session id');
    ensure(roomIn.isVerified(), () => 'a session from a signed key is verified');

    const texts = Array.from({ length: 100 }, (_, i) => `{"type":"m.room.message","content":{"body":"room message ${i}"}}`);
    const sent = texts.map((t) => roomOut.encrypt(utf8(t)));
    assertEquals(100, roomOut.messageIndex(), 'outbound index');
    // 0–89 one by one, each block of ten in shuffled order; 90–99 as one batch.
    for (let block = 0; block < 9; block++) {
      const indices = Array.from({ length: 10 }, (_, k) => block * 10 + k);
      for (const i of random.shuffled(indices)) {
        const decrypted = roomIn.decrypt(sent[i] as string);
        assertEquals(i, decrypted.messageIndex, 'message index');
        assertEquals(texts[i], text(decrypted.plaintext), `room message ${i}`);
      }
    }
    const batch = roomIn.decryptBatch(sent.slice(90, 100));
    assertEquals(10, batch.length, 'batch size');
    batch.forEach((result, k) => {
      if (result.tag !== 'Decrypted') throw new CheckFailed(`batch ${k}: ${result.tag}`);
      assertEquals(texts[90 + k], text(result.message.plaintext), `batch message ${90 + k}`);
    });
  }

  function sas(): void {
    const aliceSas = Sas.create();
    const bobSas = Sas.create();
    // m.key.verification.key carries each side's public key to the other.
    const aliceEst = aliceSas.diffieHellman(bobSas.publicKey());
    const bobEst = bobSas.diffieHellman(aliceSas.publicKey());
    const info =
      `MATRIX_KEY_VERIFICATION_SAS|@alice:example.org|ALICE|${aliceSas.publicKey()}|` +
      `@bob:example.org|BOB|${bobSas.publicKey()}|txn-1`;
    const aliceShows = aliceEst.bytes(info);
    const bobShows = bobEst.bytes(info);
    assertEquals(7, aliceShows.emojiIndices.length, 'emoji count');
    assertBytes(aliceShows.emojiIndices, bobShows.emojiIndices, 'emoji');
    ensure(aliceShows.emojiIndices.every((i) => i < 64), () => 'emoji index out of range');
    assertEquals(aliceShows.decimals, bobShows.decimals, 'decimals');
    ensure(
      Array.from(aliceShows.decimals).every((d) => Number(d) >= 1000 && Number(d) <= 9191),
      () => 'decimals out of range',
    );
    log(`SAS emoji indices [${Array.from(aliceShows.emojiIndices).join(', ')}], decimals [${Array.from(aliceShows.decimals).join(', ')}]`);

    // Users confirm; each side MACs its device key and the key list, the other verifies.
    const macInfo = (from: string, fromDevice: string, to: string, toDevice: string, id: string) =>
      `MATRIX_KEY_VERIFICATION_MAC${from}${fromDevice}${to}${toDevice}txn-1${id}`;
    const aliceKey = alice.ed25519Key();
    const aToB = (id: string) => macInfo('@alice:example.org', 'ALICE', '@bob:example.org', 'BOB', id);
    const bToA = (id: string) => macInfo('@bob:example.org', 'BOB', '@alice:example.org', 'ALICE', id);
    const aliceMac = aliceEst.calculateMac(aliceKey, aToB('ed25519:ALICE'));
    const aliceKeysMac = aliceEst.calculateMac('ed25519:ALICE', aToB('KEY_IDS'));
    bobEst.verifyMac(aliceKey, aToB('ed25519:ALICE'), aliceMac);
    bobEst.verifyMac('ed25519:ALICE', aToB('KEY_IDS'), aliceKeysMac);
    const bobKey = bob.ed25519Key();
    const bobMac = bobEst.calculateMac(bobKey, bToA('ed25519:BOB'));
    aliceEst.verifyMac(bobKey, bToA('ed25519:BOB'), bobMac);
    // A MAC over another key (a man in the middle) does not verify.
    assertThrows(FerrolmSasError, 'InvalidMac', () => aliceEst.verifyMac(Account.create().ed25519Key(), bToA('ed25519:BOB'), bobMac));
    // Each SAS key is used once.
    assertThrows(FerrolmSasError, 'AlreadyUsed', () => aliceSas.diffieHellman(bobSas.publicKey()));
    for (const o of [aliceSas, bobSas, aliceEst, bobEst]) o.free();
  }

  function pickleAndContinue(libolm: boolean): void {
    const key = libolm ? utf8('libolm pickle keys may have any length') : crypto.getRandomValues(new Uint8Array(32));
    const identity = alice.identityKeys();
    const aliceOlmId = aliceOlm.sessionId();
    if (libolm) {
      alice = Account.fromLibolmPickle(alice.toLibolmPickle(key), key);
      bob = Account.fromLibolmPickle(bob.toLibolmPickle(key), key);
      aliceOlm = Session.fromLibolmPickle(aliceOlm.toLibolmPickle(key), key);
      bobOlm = Session.fromLibolmPickle(bobSession().toLibolmPickle(key), key);
      roomOut = GroupSession.fromLibolmPickle(roomOut.toLibolmPickle(key), key);
      roomIn = InboundGroupSession.fromLibolmPickle(roomIn.toLibolmPickle(key), key);
    } else {
      alice = Account.fromPickle(alice.pickle(key), key);
      bob = Account.fromPickle(bob.pickle(key), key);
      aliceOlm = Session.fromPickle(aliceOlm.pickle(key), key);
      bobOlm = Session.fromPickle(bobSession().pickle(key), key);
      roomOut = GroupSession.fromPickle(roomOut.pickle(key), key);
      roomIn = InboundGroupSession.fromPickle(roomIn.pickle(key), key);
    }
    assertEquals(identity, alice.identityKeys(), 'restored identity keys');
    assertEquals(aliceOlmId, aliceOlm.sessionId(), 'restored session id');
    assertEquals(bobSession().sessionId(), aliceOlm.sessionId(), 'restored peer session id');

    // The restored objects carry on where the old ones stopped.
    for (let i = 0; i < 5; i++) {
      const a = aliceOlm.encrypt(utf8(`after restore a${i}`));
      assertEquals(`after restore a${i}`, text(bobSession().decrypt(a)), 'olm a→b after restore');
      const b = bobSession().encrypt(utf8(`after restore b${i}`));
      assertEquals(`after restore b${i}`, text(aliceOlm.decrypt(b)), 'olm b→a after restore');
    }
    const index = roomOut.messageIndex();
    for (let i = 0; i < 10; i++) {
      const decrypted = roomIn.decrypt(roomOut.encrypt(utf8(`room after restore ${i}`)));
      assertEquals(index + i, decrypted.messageIndex, 'megolm index after restore');
      assertEquals(`room after restore ${i}`, text(decrypted.plaintext), 'megolm after restore');
    }
    // The account still creates sessions from its (restored) keys.
    bob.generateOneTimeKeys(1);
    const keys = [...bob.oneTimeKeys().values()];
    assertEquals(1, keys.length, 'one new one-time key');
    bob.markKeysAsPublished();
    const fresh = alice.createOutboundSession(bob.curve25519Key(), keys[0] as string, 'V1');
    const created = bob.createInboundSession(alice.curve25519Key(), fresh.encrypt(utf8('hi again')).body);
    assertEquals('hi again', text(created.plaintext), 'new session after restore');
  }

  function malformedMessages(): void {
    const bobS = bobSession();
    assertThrows(FerrolmOlmError, 'Malformed', () => bobS.decrypt({ messageType: 'Normal', body: 'AwoA' }));
    assertThrows(FerrolmOlmError, 'InvalidBase64', () => bobS.decrypt({ messageType: 'Normal', body: 'not base64!' }));
    const good = aliceOlm.encrypt(utf8('the real one'));
    const bytes = base64Decode(good.body);
    bytes[bytes.length - 12] = (bytes[bytes.length - 12] as number) ^ 1;
    assertThrows(FerrolmOlmError, 'InvalidMac', () => bobS.decrypt({ messageType: good.messageType, body: base64Encode(bytes) }));
    // The session is unchanged by the failures: the real message still decrypts, once.
    assertEquals('the real one', text(bobS.decrypt(good)), 'after failures');
    const replay = assertThrows(FerrolmOlmError, 'MissingMessageKey', () => bobS.decrypt(good));
    log(`replay rejected: MissingMessageKey(index=${String(replay.index)})`);
    assertThrows(FerrolmOlmError, 'Malformed', () => bob.createInboundSession(alice.curve25519Key(), 'AwoA'));

    assertThrows(FerrolmMegolmError, 'Malformed', () => roomIn.decrypt(''));
    assertThrows(FerrolmMegolmError, 'InvalidBase64', () => roomIn.decrypt('%%%'));
    assertThrows(FerrolmMegolmError, 'InvalidSignature', () => roomIn.decrypt(GroupSession.create('V1').encrypt(new Uint8Array(3))));
    const room = roomOut.encrypt(utf8('still fine'));
    assertEquals('still fine', text(roomIn.decrypt(room).plaintext), 'megolm after failures');
  }

  return [
    { name: 'scenario: accounts, signed device keys, one-time keys', run: accounts },
    { name: 'scenario: Olm session from a claimed one-time key', run: olmSession },
    { name: 'scenario: 50 Olm messages each way, some out of order', run: olmConversation },
    { name: 'scenario: Megolm key over Olm, 100 room messages decrypted', run: megolm },
    { name: 'scenario: SAS with equal emoji, MACs verified both ways', run: sas },
    { name: 'scenario: pickle (ferrolm format), restore, continue', run: () => pickleAndContinue(false) },
    { name: 'scenario: pickle (libolm format), restore, continue', run: () => pickleAndContinue(true) },
    { name: 'scenario: malformed messages throw typed errors', run: malformedMessages },
  ];
}
