// Randomness for the WebAssembly module: crypto.getRandomValues, handed to Rust as an import.
//
// The Rust side (crates/ferrolm-ffi/src/wasm_random.rs) registers getrandom's custom backend,
// which calls the import `ferrolm.fill_random(ptr, len) -> i32`: fill `len` bytes of the
// module's memory at `ptr` with random bytes and return 0, or return non-zero on failure.
// The generated loader (uniffi_runtime.ts, patched by build.sh) passes `wasmImports()` to
// WebAssembly.instantiate and calls `bindInstance()` with the new instance.
//
// No Node-only APIs here: `globalThis.crypto` is the Web Crypto API in browsers and in
// Node >= 19 (Node 20 is the tested minimum). Without it the package refuses to load.

type RandomSource = { getRandomValues<T extends ArrayBufferView | null>(array: T): T };

/** getRandomValues fills at most 65,536 bytes per call (QuotaExceededError beyond). */
const MAX_CHUNK = 65536;

let memory: WebAssembly.Memory | null = null;
let calls = 0;
let bytesFilled = 0;
let lastError: unknown = null;

function randomSource(): RandomSource {
  const source = (globalThis as { crypto?: Partial<RandomSource> }).crypto;
  if (!source || typeof source.getRandomValues !== 'function') {
    throw new Error(
      'ferrolm: globalThis.crypto.getRandomValues is not available (Node >= 19 or a browser is required); ' +
        'refusing to load without a secure random source',
    );
  }
  return source as RandomSource;
}

/** `ferrolm.fill_random`: called by Rust (getrandom's custom backend) whenever it needs randomness. */
function fillRandom(ptr: number, len: number): number {
  try {
    if (memory === null) throw new Error('ferrolm: randomness requested before the module was bound');
    const start = ptr >>> 0; // wasm32 pointers and sizes are unsigned
    const length = len >>> 0;
    if (start + length > memory.buffer.byteLength) throw new Error('ferrolm: random buffer outside memory');
    const source = randomSource();
    // Straight into wasm memory: the random bytes (often future key material) never sit in a
    // JavaScript-heap copy. Rust asks for at most 65,536 bytes at a time; chunk anyway.
    for (let offset = 0; offset < length; offset += MAX_CHUNK) {
      const n = Math.min(MAX_CHUNK, length - offset);
      source.getRandomValues(new Uint8Array(memory.buffer, start + offset, n));
    }
    calls += 1;
    bytesFilled += length;
    return 0;
  } catch (e) {
    // Never throw through Rust frames: report failure, and Rust turns it into an error (a trap
    // on this target, see wasm_random.rs) instead of using bytes that are not random.
    lastError = e;
    return 1;
  }
}

/** The import object for the ferrolm WebAssembly module. Throws if there is no secure random source. */
export function wasmImports(): WebAssembly.Imports {
  randomSource();
  return { ferrolm: { fill_random: fillRandom } };
}

/** Gives the import access to the instance's memory (called once, right after instantiation). */
export function bindInstance(instance: WebAssembly.Instance): void {
  const exported = instance.exports.memory;
  if (!(exported instanceof WebAssembly.Memory)) throw new Error('ferrolm: the module exports no memory');
  memory = exported;
}

/** How often Rust asked for randomness, how many bytes in all, and the last failure (if any). */
export interface RandomStats {
  calls: number;
  bytes: number;
  lastError: unknown;
}

/** Counters of the randomness import (for tests and diagnostics; never the bytes themselves). */
export function randomStats(): RandomStats {
  return { calls, bytes: bytesFilled, lastError };
}
