// A refused connection is a failed attempt at once, whichever WebSocket the
// client runs on. Node's built-in WebSocket fires only `error` (no `close`)
// when the connection is refused; the client used to ignore it and wait out
// the whole connect timeout before retrying.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

import { TickgateClient } from '../tickgate.js';
import { scriptedSockets } from '../test-support/scripted-socket.js';
import { waitFor } from '../test-support/gateway.js';

const CHILD = join(dirname(fileURLToPath(import.meta.url)), '..', 'test-support', 'refused-connect.js');
const CONNECT_TIMEOUT_MS = 60_000;

/** A loopback port nothing listens on (bound, then released). */
async function closedPort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const disconnects = (events) => events.filter((e) => e.event === 'disconnect');
const dials = (events) => events.filter((e) => e.event === 'state' && e.dialing);

test('with Node\'s built-in WebSocket a refused connection fails the attempt without waiting for the connect timeout', async () => {
  const port = await closedPort();
  const guardMs = 30_000; // well under the connect timeout: only `error` can end an attempt
  const result = await new Promise((resolve, reject) => {
    execFile(process.execPath, ['--experimental-websocket', CHILD, String(port), String(CONNECT_TIMEOUT_MS), String(guardMs)], { timeout: guardMs + 20_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${error.message}\n${stderr}`));
      else resolve(JSON.parse(stdout.trim().split('\n').at(-1)));
    });
  });
  assert.equal(result.global, 'function', 'the child runs on the global WebSocket');
  const { events } = result;
  assert.equal(result.why, 'three attempts failed', JSON.stringify(events));
  assert.ok(disconnects(events).every((e) => e.code === 1006 && e.reason === 'connection failed'), JSON.stringify(events));
  assert.ok(!events.some((e) => e.reason === 'connect timeout'), 'no attempt waited for the connect timeout');
  // Each attempt: dial, connect_failed, disconnect, a scheduled retry; never two drops for one dial.
  assert.equal(dials(events).length, 3, JSON.stringify(events));
  const kinds = events.map((e) => (e.event === 'state' ? (e.dialing ? 'dial' : e.state) : e.event === 'error' ? e.code : e.event));
  assert.deepEqual(kinds.slice(0, 8), ['dial', 'connect_failed', 'disconnect', 'reconnecting', 'dial', 'connect_failed', 'disconnect', 'reconnecting']);
  assert.ok(result.ms < CONNECT_TIMEOUT_MS, `${result.ms} ms`);
});

test('with the ws package (error, then close) each refused attempt is counted once', async () => {
  const port = await closedPort();
  const events = [];
  const client = new TickgateClient(`ws://127.0.0.1:${port}/ws`, {
    WebSocket,
    connectTimeoutMs: CONNECT_TIMEOUT_MS,
    heartbeatTimeoutMs: 0,
    reconnect: { initialDelayMs: 20, maxDelayMs: 20, jitter: 0 },
  });
  client.on('state', ({ dialing }) => dialing && events.push({ event: 'dial' }));
  client.on('disconnect', ({ code, reason }) => events.push({ event: 'disconnect', code, reason }));
  client.connect().catch(() => {});
  try {
    await waitFor(() => disconnects(events).length >= 3, { timeoutMs: 20_000, what: 'three failed attempts' });
  } finally {
    client.close();
  }
  const upToThird = events.slice(0, events.findIndex((e, i) => e.event === 'disconnect' && disconnects(events.slice(0, i + 1)).length === 3) + 1);
  assert.deepEqual(upToThird.map((e) => e.event), ['dial', 'disconnect', 'dial', 'disconnect', 'dial', 'disconnect']);
});

test('an error after the socket opened drops it once, and the close that follows is ignored', async () => {
  const { sockets, ScriptedSocket } = scriptedSockets();
  const client = new TickgateClient('ws://gateway.test/ws', { WebSocket: ScriptedSocket, heartbeatTimeoutMs: 0, reconnect: { initialDelayMs: 1, maxDelayMs: 1, jitter: 0 } });
  const drops = [];
  client.on('disconnect', (event) => drops.push(event));
  const opened = client.connect();
  sockets[0].open();
  await opened;
  sockets[0].error();
  sockets[0].drop(1006, 'late close');
  assert.deepEqual(drops.map((d) => [d.code, d.reason]), [[1006, 'socket error']]);
  await waitFor(() => sockets.length === 2, { what: 'a new attempt' });
  client.close();
});
