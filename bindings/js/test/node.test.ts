// The shared checks under Node, one node:test test each, against the package installed from
// the npm tarball (`import … from 'ferrolm'` resolves to build/consumer/node_modules/ferrolm).
import { test } from 'node:test';
import { allChecks } from './suite/index.js';

for (const check of allChecks((line) => console.log(`     ${line}`))) {
  test(`node: ${check.name}`, async () => {
    await check.run();
  });
}
