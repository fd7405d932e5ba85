// The checks' own little assertion library. Shared by Node (node:test) and the browser page,
// so it uses nothing but the language and the Web platform's TextEncoder/TextDecoder.

/** One named check; checks of a suite run in order and may share state. */
export interface Check {
  name: string;
  run: () => void | Promise<void>;
}

export class CheckFailed extends Error {
  override readonly name = 'CheckFailed';
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export const utf8 = (text: string): Uint8Array => encoder.encode(text);
export const text = (bytes: Uint8Array): string => decoder.decode(bytes);

export function ensure(condition: boolean, message: () => string): void {
  if (!condition) throw new CheckFailed(message());
}

function show(value: unknown): string {
  if (value instanceof Uint8Array) return `Uint8Array[${Array.from(value).join(',')}]`;
  if (value instanceof Map) return `Map{${[...value].map(([k, v]) => `${show(k)}=>${show(v)}`).join(', ')}}`;
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(show).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.entries(value).map(([k, v]) => `${k}: ${show(v)}`).join(', ')}}`;
  }
  return String(value);
}

/** Structural equality for what the bindings return: primitives, bigint, bytes, arrays, maps, records. */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && a.length === b.length && a.every((x, i) => x === b[i]);
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  }
  if (a instanceof Map || b instanceof Map) {
    if (!(a instanceof Map && b instanceof Map) || a.size !== b.size) return false;
    for (const [k, v] of a) if (!b.has(k) || !deepEqual(v, b.get(k))) return false;
    return true;
  }
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a).sort();
    const kb = Object.keys(b).sort();
    return deepEqual(ka, kb) && ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
  }
  return false;
}

export function assertEquals<T>(expected: T, actual: T, what = 'value'): void {
  if (!deepEqual(expected, actual)) throw new CheckFailed(`${what}: expected <${show(expected)}>, got <${show(actual)}>`);
}

export function assertBytes(expected: Uint8Array, actual: Uint8Array, what = 'bytes'): void {
  if (!deepEqual(expected, actual)) {
    throw new CheckFailed(`${what}: expected <${decoder.decode(expected)}>, got <${new TextDecoder().decode(actual)}>`);
  }
}

/** An error class of the bindings: `instanceof` works and the variant is in `variant.tag`. */
type ErrorClass = abstract new (...args: never[]) => Error & { variant: { tag: string } };

/**
 * Runs `body`, which must throw an instance of `cls` whose `variant.tag` is `tag` (any tag if
 * `tag` is null). Returns the variant, so the caller can check its fields.
 */
export function assertThrows<C extends ErrorClass>(
  cls: C,
  tag: string | null,
  body: () => unknown,
): InstanceType<C>['variant'] & Record<string, unknown> {
  let result: unknown;
  try {
    result = body();
  } catch (e) {
    if (!(e instanceof cls)) {
      const kind = e instanceof Error ? `${e.constructor.name}: ${e.message}` : show(e);
      throw new CheckFailed(`expected ${cls.name}${tag ? `.${tag}` : ''}, got ${kind}`);
    }
    const variant = (e as InstanceType<C>).variant;
    if (tag !== null && variant.tag !== tag) {
      throw new CheckFailed(`expected ${cls.name}.${tag}, got ${cls.name}.${variant.tag} (${show(variant)})`);
    }
    return variant as InstanceType<C>['variant'] & Record<string, unknown>;
  }
  throw new CheckFailed(`expected ${cls.name}${tag ? `.${tag}` : ''}, nothing was thrown (returned ${show(result)})`);
}

/** A small deterministic generator for shuffling and junk (test data, not cryptography). */
export class TestRandom {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** mulberry32 */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [from, until). */
  int(from: number, until: number): number {
    return from + Math.floor(this.next() * (until - from));
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(0, 256);
    return out;
  }
  shuffled<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(0, i + 1);
      [out[i], out[j]] = [out[j] as T, out[i] as T];
    }
    return out;
  }
}
