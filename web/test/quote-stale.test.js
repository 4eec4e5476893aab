// The per-quote `stale` flag of `meta` subscriptions through tickgate.js: a
// snapshot taken during an outage marks the symbol stale without any status
// frame, and a fresh quote from a live feed clears it. Driven by a scripted
// in-process socket; no network.
// Run: node --test web/test/quote-stale.test.js

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { connectedClient as connected } from '../test-support/scripted-socket.js';

const quote = (symbol, seq, stale) => ({ symbol, seq, ts: 1000 + seq, bid: 1, conflated: 0, received_ts: 2000 + seq, stale });

async function subscribe(client, socket, symbols, quotes) {
  const pending = client.subscribe(symbols);
  const request = socket.lastRequest('subscribe');
  socket.frame({ type: 'subscribed', id: request.id, symbols });
  socket.frame({ type: 'snapshot', quotes });
  return pending;
}

test('a meta quote saying stale marks its symbol stale until a live quote arrives', async () => {
  const { client, sockets } = await connected({ delivery: { meta: true } });
  const events = [];
  client.on('stale', (event) => events.push(event));
  await subscribe(client, sockets[0], ['AAPL', 'MSFT'], [quote('AAPL', 5, true), quote('MSFT', 3, false)]);
  assert.equal(sockets[0].lastRequest('subscribe').meta, true, 'the subscribe asks for meta');
  assert.equal(client.get('AAPL').quoteStale, true);
  assert.equal(client.get('AAPL').stale, true);
  assert.equal(client.get('AAPL').staleReason, 'feed_not_live');
  assert.equal(client.get('MSFT').stale, false);

  sockets[0].frame({ type: 'update', quotes: [quote('AAPL', 6, false)] });
  assert.equal(client.get('AAPL').quoteStale, false);
  assert.equal(client.get('AAPL').stale, false);
  assert.deepEqual(events, [
    { symbol: 'AAPL', stale: true, reason: 'feed_not_live' },
    { symbol: 'AAPL', stale: false, reason: null },
  ]);
  client.close();
});

test('a status frame still takes precedence, and live naming the symbol clears the quote flag', async () => {
  const { client, sockets } = await connected({ delivery: { meta: true } });
  await subscribe(client, sockets[0], ['AAPL'], [quote('AAPL', 5, true)]);
  sockets[0].frame({ type: 'status', feed: 'sim', state: 'down', symbols: ['AAPL'] });
  assert.equal(client.get('AAPL').staleReason, 'feed_down');
  sockets[0].frame({ type: 'status', feed: 'sim', state: 'live', symbols: ['AAPL'] });
  assert.equal(client.get('AAPL').stale, false);
  assert.equal(client.get('AAPL').quoteStale, false);
  client.close();
});

test('plain quotes carry no flag and leave the symbol live', async () => {
  const { client, sockets } = await connected();
  await subscribe(client, sockets[0], ['AAPL'], [{ symbol: 'AAPL', seq: 1, ts: 1, bid: 1 }]);
  assert.equal(client.get('AAPL').quoteStale, false);
  assert.equal(client.get('AAPL').stale, false);
  client.close();
});
