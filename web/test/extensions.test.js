// The protocol extensions in tickgate.js, driven by a scripted socket (no
// network): trades and trades_lost frames, setPriority requests and replies,
// ranks and trades restored after a reconnect, slow-consumer notices and the
// 4008 close. The same paths against a real gateway: trades.test.js and
// priority.test.js.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { CLOSE_SLOW_CONSUMER } from '../tickgate.js';
import { connectedClient as connected } from '../test-support/scripted-socket.js';

const quote = (symbol, seq, extra = {}) => ({ symbol, seq, ts: 1_764_000_000_000_000 + seq, bid: 1, ask: 2, last: 1.5, ...extra });
const trade = (symbol, seq, price) => ({ symbol, seq, price, size: 100, ts: 1_764_000_000_000_000 + seq });
const settle = () => new Promise((done) => setTimeout(done, 10));

/** Subscribes and answers like the gateway. */
async function subscribed(client, socket, symbols, options) {
  const pending = client.subscribe(symbols, options);
  const request = socket.lastRequest('subscribe');
  socket.frame({ type: 'subscribed', id: request.id, symbols });
  socket.frame({ type: 'snapshot', quotes: symbols.map((s) => quote(s, 1)) });
  await pending;
  return request;
}

/** Drops the socket (default: gateway restart) and opens the next one. */
async function reconnect(client, sockets, code = 1001, reason = 'server shutting down') {
  const before = sockets.length;
  sockets.at(-1).drop(code, reason);
  await settle();
  assert.equal(sockets.length, before + 1, 'a new socket was opened');
  sockets.at(-1).open();
  return sockets.at(-1);
}

test('subscribe sends trades and priority only for the symbols of that request', async () => {
  const { client, sockets } = await connected();
  const first = await subscribed(client, sockets[0], ['AAPL'], { trades: true, priority: 'visible' });
  assert.equal(first.trades, true);
  assert.equal(first.priority, 'visible');
  assert.equal(client.hasTrades('AAPL'), true);
  assert.equal(client.priorities.get('AAPL'), 'visible');
  const second = await subscribed(client, sockets[0], ['MSFT']);
  assert.equal('trades' in second, false);
  assert.equal('priority' in second, false);
  // Subscribing again to a held symbol replaces its options but keeps its
  // rank, as on the gateway.
  await subscribed(client, sockets[0], ['AAPL']);
  assert.equal(client.hasTrades('AAPL'), false);
  assert.equal(client.priorities.get('AAPL'), 'visible');
  await assert.rejects(client.subscribe(['IBM'], { priority: 'urgent' }), { code: 'bad_request' });
  client.close();
});

test('the delivery.trades option is the default of every subscribe', async () => {
  const { client, sockets } = await connected({ delivery: { trades: true } });
  const request = await subscribed(client, sockets[0], ['AAPL']);
  assert.equal(request.trades, true);
  const off = await subscribed(client, sockets[0], ['MSFT'], { trades: false });
  assert.equal('trades' in off, false);
  client.close();
});

test('trades frames are emitted in order; trades_lost is announced; unsubscribed symbols are ignored', async () => {
  const { client, sockets } = await connected();
  await subscribed(client, sockets[0], ['AAPL', 'MSFT'], { trades: true });
  const events = [];
  client.on('trades', (trades) => events.push(['trades', trades.map((t) => `${t.symbol}@${t.price}`)]));
  client.on('tradesLost', (event) => events.push(['lost', event]));
  sockets[0].frame({ type: 'update', quotes: [quote('AAPL', 3), quote('MSFT', 2)] });
  sockets[0].frame({ type: 'trades', trades: [trade('AAPL', 2, 10), trade('MSFT', 2, 20), trade('AAPL', 3, 11)] });
  sockets[0].frame({ type: 'trades_lost', lost: 15, symbols: { AAPL: 12, MSFT: 3 } });
  sockets[0].frame({ type: 'trades', trades: [trade('NOTMINE', 1, 1), trade('AAPL', 20, 12)] });
  assert.deepEqual(events, [
    ['trades', ['AAPL@10', 'MSFT@20', 'AAPL@11']],
    ['lost', { lost: 15, symbols: { AAPL: 12, MSFT: 3 } }],
    ['trades', ['AAPL@12']],
  ]);
  assert.equal(client.stats.trades, 4);
  assert.equal(client.stats.tradesLost, 15);
  client.close();
});

test('setPriority sends the non-empty lists and resolves with the reply', async () => {
  const { client, sockets } = await connected();
  await subscribed(client, sockets[0], ['AAPL', 'MSFT', 'NVDA']);
  const pending = client.setPriority({ visible: ['AAPL', 'NVDA'], normal: [], background: ['MSFT'] });
  const sent = sockets[0].lastRequest('priority');
  assert.deepEqual(sent, { op: 'priority', id: sent.id, visible: ['AAPL', 'NVDA'], background: ['MSFT'] });
  sockets[0].frame({ type: 'priority', id: sent.id, visible: ['AAPL', 'NVDA'], background: ['MSFT'] });
  assert.deepEqual(await pending, { visible: ['AAPL', 'NVDA'], normal: [], background: ['MSFT'], rejected: [] });
  assert.deepEqual([...client.priorities], [['AAPL', 'visible'], ['NVDA', 'visible'], ['MSFT', 'background']]);
  client.close();
});

test('setPriority: not_subscribed symbols are dropped; all refused rejects; a refused request puts ranks back', async () => {
  const { client, sockets } = await connected();
  const errors = [];
  client.on('error', (err) => errors.push(err.code));
  await subscribed(client, sockets[0], ['AAPL']);

  const partly = client.setPriority({ background: ['AAPL', 'MSFT'] });
  let sent = sockets[0].lastRequest('priority');
  sockets[0].frame({ type: 'error', id: sent.id, code: 'not_subscribed', message: 'subscribe first', symbols: ['MSFT'] });
  sockets[0].frame({ type: 'priority', id: sent.id, background: ['AAPL'] });
  const result = await partly;
  assert.deepEqual(result.background, ['AAPL']);
  assert.equal(result.rejected[0].code, 'not_subscribed');
  assert.deepEqual(result.rejected[0].symbols, ['MSFT']);
  assert.equal(client.priorities.has('MSFT'), false);

  const none = client.setPriority({ visible: ['TSLA'] });
  sent = sockets[0].lastRequest('priority');
  sockets[0].frame({ type: 'error', id: sent.id, code: 'not_subscribed', message: 'subscribe first', symbols: ['TSLA'] });
  await assert.rejects(none, (err) => err.code === 'not_subscribed' && err.op === 'priority' && err.symbols[0] === 'TSLA');

  const limited = client.setPriority({ visible: ['AAPL'] });
  assert.equal(client.priorities.get('AAPL'), 'visible', 'remembered at once');
  sent = sockets[0].lastRequest('priority');
  sockets[0].frame({ type: 'error', id: sent.id, code: 'rate_limited', message: 'slow down' });
  await assert.rejects(limited, { code: 'rate_limited' });
  assert.equal(client.priorities.get('AAPL'), 'background', 'the refused request changed nothing');

  await assert.rejects(client.setPriority({ visible: [] }), { code: 'bad_request' });
  await assert.rejects(client.setPriority({ visible: ['no spaces'] }), { code: 'invalid_symbol' });
  assert.deepEqual(errors, ['not_subscribed', 'not_subscribed', 'rate_limited']);
  client.close();
});

test('after a reconnect: one subscribe per trades setting, then the remembered ranks once acked', async () => {
  const { client, sockets } = await connected();
  await subscribed(client, sockets[0], ['AAPL', 'MSFT'], { trades: true });
  await subscribed(client, sockets[0], ['NVDA', 'TSLA']);
  let sent;
  const ranked = client.setPriority({ visible: ['AAPL', 'NVDA'], background: ['TSLA'] });
  sent = sockets[0].lastRequest('priority');
  sockets[0].frame({ type: 'priority', id: sent.id, visible: ['AAPL', 'NVDA'], background: ['TSLA'] });
  await ranked;

  const socket = await reconnect(client, sockets);
  const subs = socket.requests('subscribe');
  assert.equal(subs.length, 2);
  const plain = subs.find((r) => !r.trades);
  const withTrades = subs.find((r) => r.trades === true);
  assert.deepEqual(plain.symbols.sort(), ['NVDA', 'TSLA']);
  assert.deepEqual(withTrades.symbols.sort(), ['AAPL', 'MSFT']);
  assert.equal(socket.requests('priority').length, 0, 'ranks wait for the resubscription');

  // A rank changed while the resubscription is in flight joins the re-send.
  const whileResyncing = client.setPriority({ normal: ['MSFT'] });
  sent = socket.lastRequest('priority');
  socket.frame({ type: 'priority', id: sent.id, normal: ['MSFT'] });
  await whileResyncing;

  socket.frame({ type: 'subscribed', id: plain.id, symbols: plain.symbols });
  socket.frame({ type: 'snapshot', quotes: [] });
  assert.equal(socket.requests('priority').length, 1, 'still waiting for the second ack');
  socket.frame({ type: 'subscribed', id: withTrades.id, symbols: withTrades.symbols });
  socket.frame({ type: 'snapshot', quotes: [] });
  const restore = socket.lastRequest('priority');
  assert.deepEqual(restore.visible.sort(), ['AAPL', 'NVDA']);
  assert.deepEqual(restore.normal, ['MSFT']);
  assert.deepEqual(restore.background, ['TSLA']);
  client.close();
});

test('setPriority while disconnected is answered by the re-send after the next connect', async () => {
  const { client, sockets } = await connected();
  await subscribed(client, sockets[0], ['AAPL', 'MSFT']);
  sockets[0].drop(1006, '');
  const pending = client.setPriority({ visible: ['AAPL'], background: ['MSFT', 'GONE'] });
  await settle();
  const socket = sockets.at(-1);
  socket.open();
  const sub = socket.lastRequest('subscribe');
  assert.equal(socket.requests('priority').length, 0);
  socket.frame({ type: 'subscribed', id: sub.id, symbols: sub.symbols });
  const restore = socket.lastRequest('priority');
  assert.deepEqual(restore.visible, ['AAPL']);
  assert.deepEqual(restore.background, ['MSFT'], 'a symbol not subscribed is not sent');
  socket.frame({ type: 'priority', id: restore.id, visible: ['AAPL'], background: ['MSFT'] });
  const result = await pending;
  assert.deepEqual(result.visible, ['AAPL']);
  assert.deepEqual(result.background, ['MSFT']);
  assert.deepEqual(result.rejected.map((e) => [e.code, e.symbols]), [['not_subscribed', ['GONE']]]);
  assert.deepEqual([...client.priorities.keys()].sort(), ['AAPL', 'MSFT']);
  client.close();
});

test('a priority request in flight when the link drops is answered by the re-send', async () => {
  const { client, sockets } = await connected();
  await subscribed(client, sockets[0], ['AAPL']);
  const pending = client.setPriority({ visible: ['AAPL'] });
  const socket = await reconnect(client, sockets, 1006, '');
  const sub = socket.lastRequest('subscribe');
  socket.frame({ type: 'subscribed', id: sub.id, symbols: ['AAPL'] });
  const restore = socket.lastRequest('priority');
  socket.frame({ type: 'priority', id: restore.id, visible: ['AAPL'] });
  assert.deepEqual((await pending).visible, ['AAPL']);
  client.close();
});

test('slow notices add up in client.slow, restored clears it, and a new connection starts at full rate', async () => {
  const { client, sockets } = await connected();
  await subscribed(client, sockets[0], ['AAPL', 'MSFT', 'NVDA']);
  const notices = [];
  client.on('slow', (notice, state) => notices.push([notice.state, notice.priority, state?.symbols ?? null]));
  assert.equal(client.slow, null);
  sockets[0].frame({ type: 'slow', state: 'slowed', priority: 'background', rate_hz: 1.0, symbols: ['MSFT'], behind_ms: 2040, message: 'not keeping up' });
  assert.equal(client.slow.state, 'slowed');
  assert.equal(client.slow.priority, 'background');
  assert.equal(client.slow.rateHz, 1);
  assert.equal(client.slow.behindMs, 2040);
  assert.equal(client.slow.message, 'not keeping up');
  const since = client.slow.since;
  sockets[0].frame({ type: 'slow', state: 'slowed', priority: 'normal', rate_hz: 1.0, symbols: ['NVDA'], behind_ms: 4100, message: 'still not' });
  assert.equal(client.slow.priority, 'normal');
  assert.equal(client.slow.since, since);
  assert.deepEqual(client.slow.classes.map((c) => c.priority), ['background', 'normal']);
  sockets[0].frame({ type: 'slow', state: 'restored', behind_ms: 5210, message: 'caught up' });
  assert.equal(client.slow, null);
  assert.deepEqual(notices, [
    ['slowed', 'background', ['MSFT']],
    ['slowed', 'normal', ['MSFT', 'NVDA']],
    ['restored', null, null],
  ]);

  sockets[0].frame({ type: 'slow', state: 'slowed', priority: 'background', rate_hz: 1.0, symbols: ['MSFT'], behind_ms: 2000, message: 'x' });
  assert.notEqual(client.slow, null);
  await reconnect(client, sockets);
  assert.equal(client.slow, null, 'reset on reconnect');
  assert.equal(client.stats.slowNotices, 4);
  client.close();
});

test('a 4008 close is surfaced on disconnect, state and error, and reconnects with backoff', async () => {
  const { client, sockets } = await connected();
  await subscribed(client, sockets[0], ['AAPL']);
  const disconnects = [];
  const states = [];
  const errors = [];
  client.on('disconnect', (event) => disconnects.push(event));
  client.on('state', (event) => states.push(event));
  client.on('error', (err) => errors.push(err));
  const reason = 'slow consumer: stopped reading for longer than the gateway allows';
  sockets[0].drop(CLOSE_SLOW_CONSUMER, reason);
  assert.deepEqual(disconnects, [{ code: 4008, reason, slowConsumer: true }]);
  assert.deepEqual(client.lastClose, { code: 4008, reason, slowConsumer: true });
  const reconnecting = states.find((e) => e.state === 'reconnecting');
  assert.equal(reconnecting.code, 4008);
  assert.equal(reconnecting.slowConsumer, true);
  assert.ok(reconnecting.delayMs >= 0);
  assert.equal(errors[0].code, 'slow_consumer');
  assert.equal(errors[0].message, reason);
  assert.equal(client.stats.slowConsumerCloses, 1);
  await settle();
  sockets.at(-1).open();
  assert.equal(client.state, 'open');
  assert.equal(sockets.at(-1).lastRequest('subscribe').symbols[0], 'AAPL');
  sockets.at(-1).drop(1001, 'server shutting down');
  assert.equal(disconnects.at(-1).slowConsumer, false);
  client.close();
});
