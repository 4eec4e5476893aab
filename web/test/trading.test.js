// Trading status (halted / trading) in tickgate.js: the `trading` event, the
// per-symbol state a page reads (`SymbolState.trading`, `client.halted`),
// halts repeated after a resubscription, and hostile `trading` frames. The
// client logic is checked with a scripted socket; the last block runs it
// against a real gateway fed `{"symbol":…,"trading":"halted"}` lines.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';

import { TickgateClient } from '../tickgate.js';
import { connectedClient } from '../test-support/scripted-socket.js';
import { quoteTick, startFeed } from '../test-support/feed.js';
import { startGateway, waitFor } from '../test-support/gateway.js';

/** A scripted client holding `symbols`, each with one quote. */
async function holding(symbols) {
  const { client, sockets } = await connectedClient();
  const socket = sockets[0];
  const subscribed = client.subscribe(symbols);
  const { id } = socket.lastRequest('subscribe');
  socket.frame({ type: 'subscribed', id, symbols });
  socket.frame({ type: 'snapshot', quotes: symbols.map((symbol) => ({ symbol, seq: 1, bid: 10 })) });
  await subscribed;
  return { client, sockets, socket };
}

function recordTrading(client) {
  const events = [];
  client.on('trading', (event) => events.push({ state: event.state, symbols: event.symbols }));
  return events;
}

describe('trading status with a scripted socket', () => {
  test('a halt and its end reach the event, the symbol state and client.halted', async () => {
    const { client, socket } = await holding(['AAPL', 'MSFT']);
    const events = recordTrading(client);
    const perSymbol = [];
    client.onSymbol('AAPL', (state, info) => perSymbol.push([info.source, state.trading]));
    assert.equal(client.get('AAPL').trading, 'trading');
    assert.equal(client.get('AAPL').tradingSince, null);

    socket.frame({ type: 'trading', state: 'halted', symbols: ['AAPL'] });
    assert.equal(client.get('AAPL').trading, 'halted');
    assert.equal(typeof client.get('AAPL').tradingSince, 'number');
    assert.equal(client.get('MSFT').trading, 'trading');
    assert.deepEqual([...client.halted.keys()], ['AAPL']);
    // The same state again is no change.
    socket.frame({ type: 'trading', state: 'halted', symbols: ['AAPL'] });
    socket.frame({ type: 'trading', state: 'trading', symbols: ['AAPL'] });
    assert.equal(client.get('AAPL').trading, 'trading');
    assert.equal(client.halted.size, 0);
    assert.deepEqual(events, [{ state: 'halted', symbols: ['AAPL'] }, { state: 'trading', symbols: ['AAPL'] }]);
    assert.deepEqual(perSymbol, [['trading', 'halted'], ['trading', 'trading']]);
    client.close();
  });

  test('a halt that comes before the first quote is on the state the quote creates', async () => {
    const { client, sockets } = await connectedClient();
    const socket = sockets[0];
    const subscribed = client.subscribe(['NEW']);
    socket.frame({ type: 'subscribed', id: socket.lastRequest('subscribe').id, symbols: ['NEW'], no_data: ['NEW'] });
    socket.frame({ type: 'snapshot', quotes: [] });
    await subscribed;
    socket.frame({ type: 'trading', state: 'halted', symbols: ['NEW'] });
    assert.ok(client.halted.has('NEW'));
    socket.frame({ type: 'update', quotes: [{ symbol: 'NEW', seq: 1, bid: 5 }] });
    assert.equal(client.get('NEW').trading, 'halted');
    client.close();
  });

  test('after a reconnect a halt the gateway repeats stays, one it does not repeat ends', async () => {
    const { client, sockets, socket } = await holding(['AAPL', 'MSFT', 'IBM']);
    socket.frame({ type: 'trading', state: 'halted', symbols: ['AAPL', 'MSFT'] });
    const events = recordTrading(client);
    socket.drop(1001, 'restart');
    await waitFor(() => sockets.length === 2, { what: 'a reconnect' });
    const next = sockets[1];
    next.open();
    const resync = next.lastRequest('subscribe');
    next.frame({ type: 'subscribed', id: resync.id, symbols: resync.symbols });
    next.frame({ type: 'snapshot', quotes: [] });
    next.frame({ type: 'status', feed: 'test', state: 'stale', symbols: ['IBM'] });
    next.frame({ type: 'trading', state: 'halted', symbols: ['MSFT'] });
    assert.equal(client.get('AAPL').trading, 'halted', 'unchanged until the frames after the snapshot are over');
    next.frame({ type: 'heartbeat', ts: 1 });
    assert.equal(client.get('AAPL').trading, 'trading');
    assert.equal(client.get('MSFT').trading, 'halted');
    assert.deepEqual(events, [{ state: 'trading', symbols: ['AAPL'] }]);
    client.close();
  });

  test('unsubscribing forgets a halt', async () => {
    const { client, socket } = await holding(['AAPL']);
    socket.frame({ type: 'trading', state: 'halted', symbols: ['AAPL'] });
    void client.unsubscribe(['AAPL']).catch(() => {});
    assert.equal(client.halted.size, 0);
    client.close();
  });

  test('malformed, oversized and hostile trading frames are refused and quotes keep flowing', async () => {
    const { client, socket } = await holding(['AAPL']);
    const events = recordTrading(client);
    const errors = [];
    client.on('error', (err) => errors.push(err.code));
    const hostile = [
      { type: 'trading', state: 'paused', symbols: ['AAPL'] },
      { type: 'trading', state: 'halted' },
      { type: 'trading', state: 'halted', symbols: 'AAPL' },
      { type: 'trading', state: ['halted'], symbols: ['AAPL'] },
      { type: 'trading', state: '__proto__', symbols: ['AAPL'] },
      { type: 'trading', state: 'halted', symbols: [null, 7, { symbol: 'AAPL' }, ['AAPL']] },
      { type: 'trading', state: 'halted', symbols: Array.from({ length: 100_000 }, (_, i) => `X${i}`) },
      { type: 'trading', state: 'halted', symbols: ['__proto__', 'constructor'] },
    ];
    let seq = 1;
    for (const frame of hostile) {
      socket.frame(frame);
      socket.frame({ type: 'update', quotes: [{ symbol: 'AAPL', seq: ++seq, bid: seq }] });
    }
    socket.onmessage({ data: '{"type":"trading","state":"halted","symbols":["AAPL"' });
    socket.frame({ type: 'update', quotes: [{ symbol: 'AAPL', seq: ++seq, bid: seq }] });
    assert.deepEqual(events, []);
    assert.equal(client.halted.size, 0);
    assert.equal(client.get('AAPL').trading, 'trading');
    assert.equal(client.get('AAPL').seq, seq, 'every quote after a bad frame was taken');
    assert.equal(errors.filter((c) => c === 'bad_frame').length, 6);
    client.close();
  });
});

// The gateway turns a feed line {"symbol":"AAPL","trading":"halted"} into a
// `trading` frame for that symbol's subscribers.
describe('trading status against a real gateway', { timeout: 60_000 }, () => {
  let feed;
  let gateway;
  const clients = [];
  const newClient = () => {
    const client = new TickgateClient(gateway.wsUrl, { WebSocket, heartbeatTimeoutMs: 0 });
    clients.push(client);
    return client;
  };

  before(async () => {
    feed = await startFeed();
    gateway = await startGateway({ args: ['--feed', feed.spec] });
    await feed.connected();
    await feed.send([quoteTick('AAPL', 230), quoteTick('MSFT', 410)]);
  });
  after(async () => {
    for (const client of clients) client.close();
    await gateway?.stop();
    await feed?.stop();
  });

  test('a halt reaches subscribers once, a new subscriber right after its snapshot, and trading resumes', async () => {
    const watcher = newClient();
    const events = recordTrading(watcher);
    await watcher.connect();
    await watcher.subscribe(['AAPL', 'MSFT']);
    await waitFor(() => watcher.get('AAPL')?.seq && watcher.get('MSFT')?.seq, { what: 'both snapshots' });

    await feed.send([{ symbol: 'AAPL', trading: 'halted' }]);
    await waitFor(() => watcher.get('AAPL').trading === 'halted', { what: 'AAPL halted' });
    assert.equal(watcher.get('MSFT').trading, 'trading');

    const late = newClient();
    const frames = [];
    late.on('frame', (frame) => frames.push(frame.type));
    await late.connect();
    await late.subscribe(['AAPL']);
    await waitFor(() => late.get('AAPL')?.trading === 'halted', { what: 'the halt for a new subscriber' });
    assert.deepEqual(frames.slice(0, 3), ['subscribed', 'snapshot', 'trading']);

    await feed.send([{ symbol: 'AAPL', trading: 'trading' }, quoteTick('AAPL', 231)]);
    await waitFor(() => watcher.get('AAPL').trading === 'trading' && watcher.get('AAPL').quote.bid === 230.99, { what: 'AAPL trading again' });
    assert.deepEqual(events, [{ state: 'halted', symbols: ['AAPL'] }, { state: 'trading', symbols: ['AAPL'] }]);
  });
});
