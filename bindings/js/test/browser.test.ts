// The shared checks in headless Chromium. A tiny HTTP server (WebAssembly cannot be fetched
// from file://) serves the consumer folder: the package as installed from the npm tarball
// (node_modules/ferrolm) and the compiled checks (test/). Chromium opens
// test/browser/index.html, which imports the package through an import map and runs every
// check; this file reads the page's outcome (`window.ferrolmResult`) and turns each step into
// a node:test test, so the browser's steps count in the summary like the Node ones.
//
// Chromium is Debian's (/usr/bin/chromium, or FERROLM_CHROMIUM), driven by playwright-core.
// If it cannot be launched, the launch test fails: there is no silent skip.
import { createServer, type Server } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import type { StepResult } from './suite/index.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url)); // build/consumer/
const CHROMIUM = process.env.FERROLM_CHROMIUM ?? '/usr/bin/chromium';
const TIMEOUT_MS = Number(process.env.FERROLM_BROWSER_TIMEOUT_MS ?? 300_000);
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.map': 'application/json',
  '.ts': 'text/plain; charset=utf-8',
};

function serve(root: string): Promise<{ server: Server; url: string }> {
  const server = createServer((request, response) => {
    void (async () => {
      const path = decodeURIComponent(new URL(request.url ?? '/', 'http://localhost').pathname);
      const file = normalize(join(root, path));
      if (!file.startsWith(root.endsWith(sep) ? root : root + sep) || request.method !== 'GET') {
        response.writeHead(403).end();
        return;
      }
      try {
        if (!(await stat(file)).isFile()) throw new Error('not a file');
        const body = await readFile(file);
        response.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
        response.end(body);
      } catch {
        response.writeHead(404).end();
      }
    })();
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') return reject(new Error('no port'));
      resolve({ server, url: `http://127.0.0.1:${address.port}` });
    });
  });
}

interface Outcome {
  error: Error | null;
  loaded: boolean;
  loadError: string | null;
  steps: StepResult[];
  userAgent: string;
  console: string[];
}

async function runInChromium(): Promise<Outcome> {
  const outcome: Outcome = { error: null, loaded: false, loadError: null, steps: [], userAgent: '', console: [] };
  const { server, url } = await serve(ROOT);
  let browser: Awaited<ReturnType<typeof chromium.launch>> | null = null;
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = await browser.newPage();
    page.on('console', (message) => outcome.console.push(`[${message.type()}] ${message.text()}`));
    page.on('pageerror', (error) => outcome.console.push(`[pageerror] ${error.message}`));
    await page.goto(`${url}/test/browser/index.html`);
    await page.waitForFunction(() => window.ferrolmResult?.done === true, undefined, { timeout: TIMEOUT_MS, polling: 200 });
    const result = await page.evaluate(() => window.ferrolmResult);
    outcome.loaded = result.loaded;
    outcome.loadError = result.loadError;
    outcome.steps = result.steps;
    outcome.userAgent = result.userAgent;
  } catch (e) {
    outcome.error = e instanceof Error ? e : new Error(String(e));
  } finally {
    await browser?.close().catch(() => {});
    server.close();
  }
  return outcome;
}

const outcome = await runInChromium();

test('chromium: launches, loads the package from the tarball, runs the checks', () => {
  if (outcome.error) {
    throw new Error(`Chromium run failed (${CHROMIUM}): ${outcome.error.message}\n${outcome.console.join('\n')}`, {
      cause: outcome.error,
    });
  }
  assert.ok(outcome.loaded, `the page could not load ferrolm: ${outcome.loadError}\n${outcome.console.join('\n')}`);
  assert.ok(outcome.steps.length > 0, 'the page ran no checks');
  const ms = outcome.steps.reduce((sum, step) => sum + step.ms, 0);
  console.log(`     ${outcome.userAgent}: ${outcome.steps.length} checks in ${ms} ms`);
});

for (const step of outcome.steps) {
  test(`chromium: ${step.name}`, () => {
    if (!step.ok) throw new Error(`failed in the browser (${step.ms} ms): ${step.error ?? ''}`);
  });
}
