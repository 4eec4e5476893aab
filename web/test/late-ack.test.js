// A subscribe that timed out is rejected; when the gateway acks it later the
// client unsubscribes what it no longer wants, so the gateway stops sending
// it. Checked on the wire against a real gateway paused with SIGSTOP.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';

import { TickgateClient } from '../tickgate.js';
import { scriptedSockets } from '../test-support/scripted-socket.js';
import { startGateway, waitFor } from '../test-support/gateway.js';

const KEEP = ['AAPL', 'NVDA', 'AMZN', 'GOOGL', 'META', 'TSLA'];

let gateway;
before(async () => {
  gateway = await startGateway({ args: ['--sim-rate', '5000'] });
});
after(async () => {
  await gateway?.stop();
});

test('a late ack after a timeout is undone: the gateway stops sending the symbol', async () => {
  const client = new TickgateClient(gateway.wsUrl, { WebSocket, heartbeatTimeoutMs: 0 });
  const frames = [];
  client.on('frame', (frame) => frames.push(frame));
  const sent = [];
  client.on('state', ({ state }) => {
    if (state !== 'open') return;
    const socket = client._socket;
    const send = socket.send.bind(socket);
    socket.send = (text) => (sent.push(JSON.parse(text)), send(text));
  });
  try {
    await client.connect();
    await client.subscribe(KEEP);
    const [row] = await gateway.connections();
    assert.equal(row.subscriptions, KEEP.length);

    // Short timeouts only for the request made while the gateway is stopped.
    client.options.requestTimeoutMs = 300;
    await gateway.pause();
    let rejected;
    try {
      await client.subscribe(['MSFT']);
    } catch (err) {
      rejected = err;
    } finally {
      gateway.resume();
    }
    assert.equal(rejected?.code, 'timeout');
    assert.equal(client.desired.has('MSFT'), false);

    // The gateway now acks the old request and starts sending MSFT...
    const lateId = sent.find((m) => m.op === 'subscribe' && m.symbols.includes('MSFT')).id;
    await waitFor(() => frames.some((f) => f.type === 'subscribed' && f.id === lateId), { what: 'the late subscribed ack' });
    // ...and the client takes it back.
    const undo = await waitFor(() => sent.find((m) => m.op === 'unsubscribe'), { what: 'an unsubscribe on the wire' });
    assert.deepEqual(undo.symbols, ['MSFT']);
    const ackAt = await waitFor(() => {
      const i = frames.findIndex((f) => f.type === 'unsubscribed' && f.id === undo.id);
      return i >= 0 ? i + 1 : 0;
    }, { what: 'the unsubscribed ack' });
    await waitFor(async () => (await gateway.connections())[0]?.subscriptions === KEEP.length, { what: 'the gateway back to the kept symbols' });
    // From the ack on, MSFT never comes again while the others keep flowing.
    await waitFor(() => frames.slice(ackAt).filter((f) => f.type === 'update').length >= 30, { timeoutMs: 20_000, what: '30 updates after the unsubscribe' });
    const afterAck = frames.slice(ackAt).filter((f) => f.type === 'update' || f.type === 'snapshot');
    assert.ok(!afterAck.some((f) => f.quotes.some((q) => q.symbol === 'MSFT')), 'MSFT after its unsubscribed ack');
    assert.equal(client.get('MSFT'), undefined);
  } finally {
    client.close();
  }
});

test('a late ack keeps a symbol that was subscribed again meanwhile', async () => {
  const { sockets, ScriptedSocket } = scriptedSockets();
  const client = new TickgateClient('ws://gateway.test/ws', { WebSocket: ScriptedSocket, heartbeatTimeoutMs: 0, requestTimeoutMs: 20, reconnect: { initialDelayMs: 1, maxDelayMs: 1, jitter: 0 } });
  const opened = client.connect();
  sockets[0].open();
  await opened;
  const socket = sockets[0];
  await assert.rejects(client.subscribe(['MSFT', 'IBM']), { code: 'timeout' });
  const first = socket.lastRequest('subscribe');
  const again = client.subscribe(['MSFT']);
  const second = socket.lastRequest('subscribe');
  socket.frame({ type: 'subscribed', id: first.id, symbols: ['MSFT', 'IBM'] });
  socket.frame({ type: 'snapshot', quotes: [] });
  socket.frame({ type: 'subscribed', id: second.id, symbols: ['MSFT'] });
  socket.frame({ type: 'snapshot', quotes: [{ symbol: 'MSFT', seq: 1, bid: 1 }] });
  assert.deepEqual((await again).symbols, ['MSFT']);
  assert.deepEqual(socket.requests('unsubscribe').map((m) => m.symbols), [['IBM']]);
  assert.equal(client.get('MSFT')?.seq, 1);
  // A connection that replaced the one a request timed out on never held
  // its symbols: an ack with that id there is not undone.
  await assert.rejects(client.subscribe(['ORCL']), { code: 'timeout' });
  const orcl = socket.lastRequest('subscribe');
  socket.drop(1006);
  await waitFor(() => sockets.length === 2, { what: 'a reconnect' });
  sockets[1].open();
  sockets[1].frame({ type: 'subscribed', id: orcl.id, symbols: ['ORCL'] });
  assert.deepEqual(sockets[1].requests('unsubscribe'), []);
  client.close();
});
