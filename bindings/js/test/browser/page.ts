// The browser side of the Chromium test: loads the package (through the import map in
// index.html), runs every shared check and publishes the outcome on `window.ferrolmResult`,
// which test/browser.test.ts reads through playwright-core.
import type { StepResult } from '../suite/index.js';

interface PageResult {
  done: boolean;
  loaded: boolean;
  loadError: string | null;
  steps: StepResult[];
  userAgent: string;
}

declare global {
  interface Window {
    ferrolmResult: PageResult;
  }
}

const result: PageResult = { done: false, loaded: false, loadError: null, steps: [], userAgent: navigator.userAgent };
window.ferrolmResult = result;
const logElement = document.getElementById('log');
const log = (line: string): void => {
  if (logElement) logElement.textContent += `${line}\n`;
};
if (logElement) logElement.textContent = '';

try {
  // Dynamic import, so that a package that fails to load (missing .wasm, no randomness, …)
  // is reported as such instead of leaving the page silent.
  const suite = await import('../suite/index.js');
  result.loaded = true;
  await suite.runChecks(suite.allChecks(log), (step) => {
    result.steps.push(step);
    log(`${step.ok ? 'ok  ' : 'FAIL'} ${step.name} (${step.ms} ms)${step.error ? `\n${step.error}` : ''}`);
  });
} catch (e) {
  result.loadError = e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ''}` : String(e);
  log(`load failed: ${result.loadError}`);
} finally {
  result.done = true;
}
