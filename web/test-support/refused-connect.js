// Child process of web/test/connect-error.test.js: a client on Node's
// built-in WebSocket (Node 20 needs --experimental-websocket) dials a closed
// port. Prints one JSON line: every event in order, once three attempts
// have failed or after `guardMs`. Usage: node --experimental-websocket
// refused-connect.js PORT CONNECT_TIMEOUT_MS GUARD_MS

import { TickgateClient } from '../tickgate.js';

const [port, connectTimeoutMs, guardMs] = process.argv.slice(2).map(Number);
const events = [];
const startedAt = Date.now();
const client = new TickgateClient(`ws://127.0.0.1:${port}/ws`, {
  connectTimeoutMs,
  heartbeatTimeoutMs: 0,
  reconnect: { initialDelayMs: 20, maxDelayMs: 20, jitter: 0 },
});
const finish = (why) => {
  client.close();
  process.stdout.write(`${JSON.stringify({ why, ms: Date.now() - startedAt, global: typeof globalThis.WebSocket, events })}\n`);
  process.exit(0);
};
client.on('state', ({ state, dialing, attempt }) => events.push({ event: 'state', state, dialing: Boolean(dialing), attempt }));
client.on('error', (err) => events.push({ event: 'error', code: err.code }));
client.on('disconnect', ({ code, reason }) => {
  events.push({ event: 'disconnect', code, reason });
  if (events.filter((e) => e.event === 'disconnect').length >= 3) finish('three attempts failed');
});
client.connect().catch(() => {});
setTimeout(() => finish('guard'), guardMs);
