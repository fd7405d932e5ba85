// Gives ferrolm's JavaScript errors their human message.
//
// uniffi-bindgen-js 0.2.1 generates each error class as
//     export class FerrolmOlmError extends Error {
//       …
//       constructor(public readonly variant: FerrolmOlmErrorVariant) {
//         const { tag, ...fields } = variant;
//         …
//         super(msg ? `${tag}: ${msg}` : tag, { cause: variant });
//       }
// so `e.message` is the variant's tag and a dump of its fields ("InvalidMac",
// "InvalidKeyLength: expected=32, got=31"), and it has no option to use the Rust `Display`.
// Every ferrolm error exports that `Display` as the method `describe()`, which the generator
// does render on the class; this adds, after the `super(…)` call of each `Ferrolm…Error`
// class's constructor, a `message` that reads `describe()` when it is asked for (not when the
// error is made, so lifting an error from the module costs no extra call). `e.message`,
// `String(e)` and consoles then show the same text as Kotlin's `message` and Swift's
// `localizedDescription`.
//
// Every `Ferrolm…Error` class must be patched exactly once, and each must have `describe()`,
// or this fails (so a generator upgrade cannot silently bring the tags back).
// Usage: node patch-errors.mjs IN OUT
import { readFileSync, writeFileSync } from 'node:fs';

const [input, output] = process.argv.slice(2);
if (!input || !output) {
  console.error('usage: node patch-errors.mjs IN OUT');
  process.exit(2);
}
let text = readFileSync(input, 'utf8');

const classes = [...text.matchAll(/^export class (Ferrolm[A-Za-z]+Error) extends Error \{$/gm)].map((m) => m[1]);
if (classes.length === 0) {
  console.error('patch-errors: no `export class Ferrolm…Error extends Error` in the generated code');
  process.exit(1);
}
let failed = false;
for (const name of classes) {
  const start = text.indexOf(`export class ${name} extends Error {`);
  const end = text.indexOf('\n}\n', start);
  const body = text.slice(start, end);
  const constructor = /(\n( *)constructor\(public readonly variant: [A-Za-z]+\) \{\n(?: +[^\n]*\n)*? +super\([^\n]*\);\n)/g;
  const found = body.match(constructor) ?? [];
  if (found.length !== 1 || !/\n\s*describe\(\): string \{/.test(body)) {
    console.error(`patch-errors: ${name}: ${found.length} constructors matched, describe() ${/describe\(\)/.test(body) ? 'found' : 'missing'}`);
    failed = true;
    continue;
  }
  const patched = body.replace(
    constructor,
    "$1$2  // ferrolm: the human message (patched in by bindings/js/tools/patch-errors.mjs).\n" +
      "$2  Object.defineProperty(this, 'message', { get: () => this.describe(), configurable: true, enumerable: false });\n",
  );
  text = text.slice(0, start) + patched + text.slice(end);
}
if (failed) process.exit(1);
writeFileSync(output, text);
console.log(`patch-errors: ${classes.length} error classes take their message from describe(): ${classes.join(', ')}`);
