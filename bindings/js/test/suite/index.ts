// Every check of the JavaScript binding, in order: the scenario, bad input, the other modules,
// the FFI edge (messages, names, integers, versions).
// Imported by the Node tests (node.test.ts) and by the browser page (browser/page.ts), so it
// must stay free of Node-only modules.
import { edgeChecks } from './edge.js';
import { errorChecks } from './errors.js';
import type { Check } from './harness.js';
import { moduleChecks } from './modules.js';
import { scenario } from './scenario.js';

export type { Check } from './harness.js';

export function allChecks(log: (line: string) => void = () => {}): Check[] {
  return [...scenario(log), ...errorChecks(), ...moduleChecks(), ...edgeChecks()];
}

/** The outcome of one check, as the browser page reports it. */
export interface StepResult {
  name: string;
  ok: boolean;
  ms: number;
  error?: string;
}

/** Runs the checks in order; a failing check is recorded and the run goes on. */
export async function runChecks(checks: Check[], onStep: (step: StepResult) => void = () => {}): Promise<StepResult[]> {
  const results: StepResult[] = [];
  for (const check of checks) {
    const start = performance.now();
    let step: StepResult;
    try {
      await check.run();
      step = { name: check.name, ok: true, ms: Math.round(performance.now() - start) };
    } catch (e) {
      const error = e instanceof Error ? `${e.constructor.name}: ${e.message}\n${e.stack ?? ''}` : String(e);
      step = { name: check.name, ok: false, ms: Math.round(performance.now() - start), error };
    }
    results.push(step);
    onStep(step);
  }
  return results;
}
