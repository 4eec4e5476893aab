// tickgate.d.ts under `tsc --strict --noEmit`: the usage files in
// web/test-types/ must compile, one with the DOM lib (the browser's
// WebSocket class) and one with Node's types and @types/ws (the `ws` class).
// TypeScript is a pinned dev dependency in web/package.json.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const WEB = join(dirname(fileURLToPath(import.meta.url)), '..');
const TSC = join(WEB, 'node_modules', 'typescript', 'bin', 'tsc');

function tsc(project) {
  return new Promise((resolve) => {
    execFile(process.execPath, [TSC, '-p', join(WEB, 'test-types', project)], { cwd: WEB, timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (error.code ?? 1) : 0, output: `${stdout}${stderr}` });
    });
  });
}

test('typescript is installed from web/package.json', () => {
  assert.ok(existsSync(TSC), `no ${TSC}: run npm ci in web/`);
});

test('the DOM WebSocket class is accepted under strict', async () => {
  const { code, output } = await tsc('tsconfig.dom.json');
  assert.equal(code, 0, output);
});

test('the ws package class is accepted under strict', async () => {
  const { code, output } = await tsc('tsconfig.node.json');
  assert.equal(code, 0, output);
});

test('a wrong WebSocket option is still refused', async () => {
  // The check must be able to fail: a class without send/close is not a socket.
  const { code, output } = await tsc('tsconfig.wrong.json');
  assert.notEqual(code, 0, 'a class that is no WebSocket compiled');
  assert.match(output, /TS2322|TS2345|TS2419|TS2741/, output);
});
