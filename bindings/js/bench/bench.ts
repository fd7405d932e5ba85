// The JavaScript half of the FFI overhead measurement: the same loop as
// crates/ferrolm-ffi/examples/megolm_loop.rs and bindings/kotlin/src/bench/kotlin/Bench.kt
// (N Megolm encrypt + decrypt, 160-byte plaintext, best of R runs after a warm-up), through the
// generated bindings and the WebAssembly module, in Node.
// It also times two single calls, to show what one crossing costs on its own: a method that
// returns a number (no buffers) and one that takes bytes and returns a string.
// Usage: node bench.js [N] [R]   (prints "js ms=…" and "js-call ns: …")
import { GroupSession, InboundGroupSession, base64Encode } from 'ferrolm';

const plaintext = Uint8Array.from({ length: 160 }, (_, i) => 'a'.charCodeAt(0) + (i % 26));

function loop(n: number): number {
  const start = performance.now();
  const outbound = GroupSession.create('V1');
  const inbound = InboundGroupSession.create(outbound.sessionKey(), 'V1');
  for (let i = 0; i < n; i++) {
    const decrypted = inbound.decrypt(outbound.encrypt(plaintext));
    if (decrypted.messageIndex !== i) throw new Error(`index ${decrypted.messageIndex} != ${i}`);
  }
  inbound.free();
  outbound.free();
  return performance.now() - start;
}

const n = Number(process.argv[2] ?? 10_000);
const reps = Number(process.argv[3] ?? 5);
// Warm up V8's tiers (and the wasm tier-up) before timing, as the Rust and Kotlin sides do.
for (let i = 0; i < 3; i++) loop(1_000);
let best = Infinity;
for (let r = 0; r < reps; r++) best = Math.min(best, loop(n));
console.log(`js ms=${best.toFixed(1)}`);

// Nanoseconds per call, best of R batches of 100,000 calls.
function perCall(call: () => void): number {
  for (let i = 0; i < 20_000; i++) call();
  let fastest = Infinity;
  for (let r = 0; r < reps; r++) {
    const start = performance.now();
    for (let i = 0; i < 100_000; i++) call();
    fastest = Math.min(fastest, performance.now() - start);
  }
  return (fastest * 1e6) / 100_000;
}
const session = GroupSession.create('V1');
const index = perCall(() => session.messageIndex());
const bytes = perCall(() => base64Encode(plaintext));
session.free();
console.log(`js-call ns: messageIndex()=${index.toFixed(0)} base64Encode(160 B)=${bytes.toFixed(0)}`);
