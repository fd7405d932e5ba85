// The package's entry point: everything uniffi-bindgen-js generated from crates/ferrolm-ffi
// (classes, records, string-union enums, error classes), the module's free functions also at
// the top level (`base64Encode(…)` as well as `FerrolmFfi.base64Encode(…)`), and the counters
// of the randomness import.
//
// Importing the package loads and instantiates ferrolm_ffi.wasm (top-level await): in Node
// from the file next to this one, in browsers with fetch() relative to this module's URL.
import { FerrolmFfi } from './ferrolm_ffi.js';

export * from './ferrolm_ffi.js';
export { UniffiPanicError } from './uniffi_runtime.js';
export { randomStats, type RandomStats } from './random.js';

export const {
  base64Decode,
  base64Encode,
  ed25519Verify,
  keyExportDecrypt,
  keyExportDefaultRounds,
  keyExportEncrypt,
  keyExportRounds,
  messageTypeFromInt,
  messageTypeToInt,
  olmMessageFromParts,
} = FerrolmFfi;
