// tickgate.js logic that a live gateway cannot be made to show on demand:
// seq reconciliation across a reconnect, status frames, data age, backoff.
// Driven by a scripted in-process socket; no network.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { backoffDelay, symbolError } from '../tickgate.js';
import { connectedClient as connected } from '../test-support/scripted-socket.js';

const quote = (symbol, seq, ts, extra = {}) => ({ symbol, seq, ts, bid: 1, ask: 2, last: 1.5, ...extra });
const tick = () => new Promise((done) => setImmediate(done));

async function subscribeAll(client, socket, symbols, quotes) {
  const pending = client.subscribe(symbols);
  const request = socket.lastRequest('subscribe');
  socket.frame({ type: 'subscribed', id: request.id, symbols });
  socket.frame({ type: 'snapshot', quotes });
  return pending;
}

async function reconnect(client, sockets) {
  const before = sockets.length;
  sockets.at(-1).drop(1001, 'server shutting down');
  await new Promise((done) => setTimeout(done, 10));
  assert.equal(sockets.length, before + 1, 'a new socket was opened');
  const socket = sockets.at(-1);
  socket.open();
  const resync = socket.lastRequest('subscribe');
  return { socket, resync };
}

test('quotes with a seq not above the held one are dropped', async () => {
  const { client, sockets } = await connected();
  await subscribeAll(client, sockets[0], ['AAPL'], [quote('AAPL', 10, 1000, { last: 100 })]);
  sockets[0].frame({ type: 'update', quotes: [quote('AAPL', 9, 2000, { last: 90 }), quote('AAPL', 10, 3000, { last: 95 })] });
  assert.equal(client.get('AAPL').quote.last, 100);
  assert.equal(client.stats.dropped, 2);
  sockets[0].frame({ type: 'update', quotes: [quote('AAPL', 14, 4000, { last: 101 })] });
  assert.equal(client.get('AAPL').quote.last, 101);
  assert.equal(client.get('AAPL').conflated, 3);
  client.close();
});

test('partial quotes merge field by field', async () => {
  const { client, sockets } = await connected();
  await subscribeAll(client, sockets[0], ['AAPL'], [quote('AAPL', 1, 1000, { volume: 500 })]);
  const infos = [];
  client.onSymbol('AAPL', (state, info) => infos.push(info));
  sockets[0].frame({ type: 'update', quotes: [{ symbol: 'AAPL', seq: 2, bid: 1.25 }] });
  const state = client.get('AAPL');
  assert.deepEqual(state.quote, { symbol: 'AAPL', seq: 2, ts: 1000, bid: 1.25, ask: 2, last: 1.5, volume: 500 });
  assert.deepEqual(infos[0].changed.sort(), ['bid', 'seq']);
  assert.equal(infos[0].previous.bid, 1);
  client.close();
});

test('after a reconnect a lower seq with a newer ts rebases the symbol (gateway restarted)', async () => {
  const { client, sockets } = await connected();
  await subscribeAll(client, sockets[0], ['AAPL', 'MSFT'], [quote('AAPL', 500, 1000, { last: 100 }), quote('MSFT', 500, 1000, { last: 200 })]);
  const { socket, resync } = await reconnect(client, sockets);
  assert.deepEqual(resync.symbols.sort(), ['AAPL', 'MSFT']);
  socket.frame({ type: 'subscribed', id: resync.id, symbols: ['AAPL', 'MSFT'] });
  // AAPL: the restarted gateway has a newer quote under a low seq -> taken.
  // MSFT: a low seq with an OLDER ts -> kept out; the held value stays.
  socket.frame({ type: 'snapshot', quotes: [quote('AAPL', 3, 2000, { last: 110 }), quote('MSFT', 3, 900, { last: 150 })] });
  assert.equal(client.get('AAPL').quote.last, 110);
  assert.equal(client.get('AAPL').seq, 3);
  assert.equal(client.get('MSFT').quote.last, 200);
  assert.equal(client.get('MSFT').seq, 500);
  assert.equal(client.stats.rebased, 1);
  // Once rebased, the new connection's seq order rules again.
  socket.frame({ type: 'update', quotes: [quote('AAPL', 2, 3000, { last: 1 }), quote('AAPL', 4, 3100, { last: 111 })] });
  assert.equal(client.get('AAPL').quote.last, 111);
  // MSFT catches up as soon as the new gateway has something newer.
  socket.frame({ type: 'update', quotes: [quote('MSFT', 4, 1100, { last: 201 })] });
  assert.equal(client.get('MSFT').quote.last, 201);
  assert.equal(client.get('MSFT').seq, 4);
  client.close();
});

test('after a reconnect to the same gateway a higher seq simply continues', async () => {
  const { client, sockets } = await connected();
  await subscribeAll(client, sockets[0], ['AAPL'], [quote('AAPL', 5, 1000)]);
  const { socket, resync } = await reconnect(client, sockets);
  socket.frame({ type: 'subscribed', id: resync.id, symbols: ['AAPL'] });
  socket.frame({ type: 'snapshot', quotes: [quote('AAPL', 5, 1000)] });
  assert.equal(client.stats.dropped, 1, 'the same quote again is not news');
  socket.frame({ type: 'update', quotes: [quote('AAPL', 9, 2000)] });
  assert.equal(client.get('AAPL').seq, 9);
  assert.equal(client.get('AAPL').conflated, 0, 'ticks missed while disconnected are not conflation');
  client.close();
});

test('requests in flight when the link drops are answered by the resubscription', async () => {
  const { client, sockets } = await connected();
  const pending = client.subscribe(['AAPL', 'MSFT']);
  const { socket, resync } = await reconnect(client, sockets);
  assert.deepEqual(resync.symbols.sort(), ['AAPL', 'MSFT']);
  socket.frame({ type: 'error', id: resync.id, code: 'not_entitled', message: 'no MSFT for you', symbols: ['MSFT'] });
  socket.frame({ type: 'subscribed', id: resync.id, symbols: ['AAPL'] });
  const result = await pending;
  assert.deepEqual(result.symbols, ['AAPL']);
  assert.equal(result.rejected[0].code, 'not_entitled');
  assert.ok(!client.desired.has('MSFT'));
  client.close();
});

test('an error without symbols rejects the whole request and keeps earlier subscriptions', async () => {
  const { client, sockets } = await connected();
  await subscribeAll(client, sockets[0], ['AAPL'], [quote('AAPL', 1, 1)]);
  const pending = client.subscribe(['AAPL', 'MSFT']);
  const request = sockets[0].lastRequest('subscribe');
  sockets[0].frame({ type: 'error', id: request.id, code: 'rate_limited', message: 'slow down' });
  await assert.rejects(pending, { code: 'rate_limited', message: 'slow down' });
  assert.deepEqual([...client.desired], ['AAPL']);
  client.close();
});

test('a reply to a later request settles an earlier one the gateway answered only with errors', async () => {
  const { client, sockets } = await connected();
  const first = client.subscribe(['AAPL', 'MSFT']);
  const firstId = sockets[0].lastRequest('subscribe').id;
  sockets[0].frame({ type: 'error', id: firstId, code: 'too_many_subscriptions', message: 'limit 1', symbols: ['MSFT'] });
  const second = client.unsubscribe(['NVDA']);
  const secondId = sockets[0].lastRequest('unsubscribe').id;
  sockets[0].frame({ type: 'unsubscribed', id: secondId, symbols: ['NVDA'] });
  await assert.rejects(first, { code: 'too_many_subscriptions' });
  assert.deepEqual((await second).symbols, ['NVDA']);
  client.close();
});

test('status frames mark listed symbols stale and live again; without symbols they cover the feed', async () => {
  const { client, sockets } = await connected({ staleAfterMs: 0 });
  await subscribeAll(client, sockets[0], ['AAPL', 'MSFT'], [quote('AAPL', 1, 1), quote('MSFT', 1, 1)]);
  const events = [];
  client.on('stale', (event) => events.push(`${event.symbol}:${event.reason}`));
  sockets[0].frame({ type: 'status', feed: 'sim', state: 'stale', symbols: ['AAPL'] });
  assert.equal(client.get('AAPL').stale, true);
  assert.equal(client.get('MSFT').stale, false);
  sockets[0].frame({ type: 'status', feed: 'sim', state: 'live', symbols: ['AAPL'] });
  assert.equal(client.get('AAPL').stale, false);
  sockets[0].frame({ type: 'status', feed: 'sim', state: 'down' });
  assert.equal(client.get('AAPL').staleReason, 'feed_down');
  assert.equal(client.get('MSFT').staleReason, 'feed_down');
  assert.equal(client.feeds.get('sim'), 'down');
  sockets[0].frame({ type: 'status', feed: 'sim', state: 'live' });
  assert.equal(client.get('MSFT').stale, false);
  assert.deepEqual(events, ['AAPL:feed_stale', 'AAPL:null', 'AAPL:feed_down', 'MSFT:feed_down', 'AAPL:null', 'MSFT:null']);
  client.close();
});

test('a symbol with no quote for staleAfterMs goes stale, and live with the next quote', async () => {
  const { client, sockets } = await connected({ staleAfterMs: 60 });
  await subscribeAll(client, sockets[0], ['AAPL'], [quote('AAPL', 1, 1)]);
  await new Promise((done) => setTimeout(done, 250));
  assert.equal(client.get('AAPL').staleReason, 'age');
  sockets[0].frame({ type: 'update', quotes: [quote('AAPL', 2, 2)] });
  assert.equal(client.get('AAPL').stale, false);
  client.close();
});

test('the token goes on the URL as a query parameter', async () => {
  const { client, sockets } = await connected({ token: 'a b&c' });
  assert.equal(sockets[0].url, 'ws://gateway.test/ws?token=a%20b%26c');
  client.close();
  await tick();
});

test('backoff grows exponentially, is capped, and jitter only shortens it', () => {
  const options = { initialDelayMs: 100, maxDelayMs: 2000, factor: 2, jitter: 0.5 };
  assert.deepEqual([0, 1, 2, 3, 4, 5, 10, 1000].map((a) => backoffDelay(a, options, () => 0)), [100, 200, 400, 800, 1600, 2000, 2000, 2000]);
  for (let attempt = 0; attempt < 50; attempt++) {
    const delay = backoffDelay(attempt, options);
    const ceiling = Math.min(2000, 100 * 2 ** attempt);
    assert.ok(delay <= ceiling && delay >= ceiling / 2, `attempt ${attempt}: ${delay}`);
  }
});

test('symbol validation matches the gateway rules', () => {
  for (const ok of ['AAPL', 'BRK.B', 'ES_F', 'EUR/USD', 'X:Y', '^SPX', 'a-b', 'Z'.repeat(32)]) assert.equal(symbolError(ok), null, ok);
  for (const bad of ['', 'Z'.repeat(33), 'A B', 'BAD$', '??', 'é', 7]) assert.notEqual(symbolError(bad), null, String(bad));
});
