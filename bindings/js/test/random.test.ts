// Node only: what happens when there is no good randomness. Each case runs in a child process
// (a trapped WebAssembly instance is not reusable, and the cases tamper with globalThis.crypto),
// importing the installed package from build/consumer.
//
// - No crypto.getRandomValues at all: importing the package fails with ferrolm's own error;
//   there is no fallback generator and no fixed seed.
// - getRandomValues starts failing after the module loaded: creating an account throws (a
//   WebAssembly trap: Rust's OsRng refuses to go on without random bytes), no account is
//   returned, and randomStats().lastError holds the cause.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CONSUMER = fileURLToPath(new URL('..', import.meta.url));

function runModule(source: string): { stdout: string; stderr: string; status: number | null } {
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', source], { cwd: CONSUMER, encoding: 'utf8', timeout: 60_000 });
  return { stdout: child.stdout.trim(), stderr: child.stderr.trim(), status: child.status };
}

test('node: randomness: without crypto.getRandomValues the package refuses to load', () => {
  const out = runModule(`
    Object.defineProperty(globalThis, 'crypto', { value: undefined, configurable: true });
    try {
      await import('ferrolm');
      console.log('LOADED');
    } catch (e) {
      console.log('REFUSED ' + e.message);
    }`);
  assert.match(out.stdout, /^REFUSED ferrolm: globalThis\.crypto\.getRandomValues is not available/, `child said: ${out.stdout} ${out.stderr}`);
});

test('node: randomness: a failing getRandomValues makes key generation throw, never succeed', () => {
  const out = runModule(`
    const ferrolm = await import('ferrolm');
    const before = ferrolm.Account.create().curve25519Key();
    globalThis.crypto.getRandomValues = () => { throw new Error('entropy source failed'); };
    try {
      const account = ferrolm.Account.create();
      console.log('CREATED ' + account.curve25519Key() + ' ' + before);
    } catch (e) {
      console.log('THREW ' + e.constructor.name + ' / ' + ferrolm.randomStats().lastError?.message);
    }`);
  assert.equal(out.stdout, 'THREW RuntimeError / entropy source failed', `child said: ${out.stdout} ${out.stderr}`);
  assert.equal(out.status, 0, `the child process itself must survive: ${out.stderr}`);
});
