// tickgate.js against a real gateway: acks, snapshot + update merging, error
// surfacing, seq order, reconnect after a restart, the heartbeat watchdog.
// Run: node --test web/test/   (needs target/debug/tickgate or $TICKGATE_BIN)

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';

import { TickgateClient, TickgateError } from '../tickgate.js';
import { sleep, startGateway, waitFor } from '../test-support/gateway.js';

const FAST = { reconnect: { initialDelayMs: 100, maxDelayMs: 500 } };

function newClient(gateway, options = {}) {
  return new TickgateClient(gateway.wsUrl, { WebSocket, ...FAST, ...options });
}

/** Records every accepted quote per symbol, to check ordering afterwards. */
function recordQuotes(client) {
  const seen = new Map();
  client.on('quote', (state, info) => {
    if (info.source === 'status') return;
    let list = seen.get(state.symbol);
    if (!list) seen.set(state.symbol, (list = []));
    list.push({ seq: state.seq, ts: state.quote.ts, last: state.quote.last, rebased: info.rebased, source: info.source, at: state.receivedAt });
  });
  return seen;
}

describe('client library against a running gateway', () => {
  let gateway;
  const clients = [];
  const track = (client) => (clients.push(client), client);

  before(async () => {
    gateway = await startGateway();
  });

  after(async () => {
    for (const client of clients) client.close();
    await gateway?.stop();
  });

  test('subscribe resolves with the ack and the snapshot fills every symbol', async () => {
    const client = track(newClient(gateway));
    const states = [];
    client.on('state', (event) => states.push(event.state));
    await client.connect();
    assert.equal(client.state, 'open');
    const result = await client.subscribe(['AAPL', 'MSFT']);
    assert.deepEqual(result.symbols.sort(), ['AAPL', 'MSFT']);
    assert.deepEqual(result.rejected, []);
    await waitFor(() => client.get('AAPL')?.seq !== undefined && client.get('MSFT')?.seq !== undefined, { what: 'snapshot quotes' });
    const aapl = client.get('AAPL');
    assert.equal(aapl.quote.symbol, 'AAPL');
    for (const field of ['bid', 'ask', 'last', 'volume', 'ts']) assert.equal(typeof aapl.quote[field], 'number', field);
    assert.equal(aapl.stale, false);
    assert.deepEqual(states, ['connecting', 'open']);
  });

  test('updates are merged in strictly increasing seq order and gaps count conflation', async () => {
    const client = track(newClient(gateway));
    const seen = recordQuotes(client);
    await client.connect();
    await client.subscribe(['AAPL', 'MSFT', 'NVDA']);
    await waitFor(() => [...seen.values()].every((list) => list.length >= 5) && seen.size === 3, { what: 'five quotes per symbol' });
    for (const [symbol, list] of seen) {
      assert.equal(list[0].source, 'snapshot', `${symbol} starts with its snapshot`);
      for (let i = 1; i < list.length; i++) assert.ok(list[i].seq > list[i - 1].seq, `${symbol} seq ${list[i - 1].seq} -> ${list[i].seq}`);
      const state = client.get(symbol);
      assert.equal(state.seq, list.at(-1).seq);
      assert.equal(state.quote.last, list.at(-1).last);
      const gaps = list.slice(1).reduce((sum, q, i) => sum + (q.seq - list[i].seq - 1), 0);
      assert.equal(state.conflated, gaps, `${symbol} conflated count`);
    }
  });

  test('per-symbol listeners see only their symbol', async () => {
    const client = track(newClient(gateway));
    await client.connect();
    const symbols = new Set();
    const off = client.onSymbol('MSFT', (state) => symbols.add(state.symbol));
    await client.subscribe(['AAPL', 'MSFT']);
    await waitFor(() => client.get('AAPL')?.updates > 3 && client.get('MSFT')?.updates > 3, { what: 'updates' });
    off();
    assert.deepEqual([...symbols], ['MSFT']);
  });

  test('a partly invalid subscribe resolves with the refused symbols and raises an error event', async () => {
    const client = track(newClient(gateway, { validateSymbols: false }));
    const errors = [];
    client.on('error', (err) => errors.push(err));
    await client.connect();
    const result = await client.subscribe(['AAPL', 'BAD$']);
    assert.deepEqual(result.symbols, ['AAPL']);
    assert.equal(result.rejected.length, 1);
    assert.ok(result.rejected[0] instanceof TickgateError);
    assert.equal(result.rejected[0].code, 'invalid_symbol');
    assert.deepEqual(result.rejected[0].symbols, ['BAD$']);
    assert.equal(errors.length, 1);
    assert.equal(errors[0].code, 'invalid_symbol');
    assert.equal(errors[0].id, result.rejected[0].id);
    assert.ok(!client.desired.has('BAD$'));
  });

  test('a subscribe the gateway refuses entirely rejects with its error', async () => {
    const client = track(newClient(gateway, { validateSymbols: false }));
    await client.connect();
    await assert.rejects(client.subscribe(['??', 'BAD$']), (err) => {
      assert.ok(err instanceof TickgateError);
      assert.equal(err.code, 'invalid_symbol');
      assert.ok(err.message.length > 0, 'carries the gateway message');
      assert.deepEqual(err.errors.flatMap((e) => e.symbols).sort(), ['??', 'BAD$']);
      return true;
    });
    assert.equal(client.desired.size, 0);
    // The connection stays usable.
    const ok = await client.subscribe(['MSFT']);
    assert.deepEqual(ok.symbols, ['MSFT']);
  });

  test('local validation refuses malformed symbols without a round trip', async () => {
    const client = track(newClient(gateway));
    const gatewayErrors = [];
    client.on('frame', (frame) => frame.type === 'error' && gatewayErrors.push(frame));
    await client.connect();
    await assert.rejects(client.subscribe(['no spaces']), { code: 'invalid_symbol' });
    const result = await client.subscribe(['AAPL', 'x'.repeat(33)]);
    assert.deepEqual(result.symbols, ['AAPL']);
    assert.equal(result.rejected[0].code, 'invalid_symbol');
    assert.deepEqual(gatewayErrors, [], 'nothing malformed reached the gateway');
  });

  test('a well-formed symbol without data is acked as noData and shows no quote', async () => {
    const client = track(newClient(gateway));
    await client.connect();
    const result = await client.subscribe(['AAPL', 'ZZNODATA9']);
    assert.deepEqual(result.symbols.sort(), ['AAPL', 'ZZNODATA9']);
    assert.deepEqual(result.noData, ['ZZNODATA9']);
    assert.equal(client.get('ZZNODATA9'), undefined);
  });

  test('unsubscribe resolves with the ack and the symbol stops updating', async () => {
    const client = track(newClient(gateway));
    await client.connect();
    await client.subscribe(['AAPL', 'MSFT']);
    await waitFor(() => client.get('MSFT')?.updates > 1, { what: 'MSFT updates' });
    const late = [];
    const result = await client.unsubscribe(['MSFT']);
    client.onSymbol('MSFT', (state) => late.push(state.seq));
    client.on('quote', (state) => state.symbol === 'MSFT' && late.push(state.seq));
    assert.deepEqual(result.symbols, ['MSFT']);
    assert.equal(client.get('MSFT'), undefined);
    assert.ok(!client.desired.has('MSFT'));
    const before = client.get('AAPL').updates;
    await waitFor(() => client.get('AAPL').updates > before + 3, { what: 'AAPL still updating' });
    assert.deepEqual(late, []);
  });

  test('ping resolves with the gateway time', async () => {
    const client = track(newClient(gateway));
    await client.connect();
    const { ts, rttMs } = await client.ping();
    assert.ok(Math.abs(ts / 1000 - Date.now()) < 60_000, 'ts is microseconds since the epoch');
    assert.ok(rttMs >= 0 && rttMs < 5000);
  });

  test('requests time out when the gateway never answers', async () => {
    const client = track(newClient(gateway, { requestTimeoutMs: 300, heartbeatTimeoutMs: 0 }));
    await client.connect();
    gateway.pause();
    await sleep(100); // SIGSTOP lands asynchronously on a running process
    try {
      await assert.rejects(client.ping(), { code: 'timeout' });
    } finally {
      gateway.resume();
    }
  });
});

describe('client library across gateway restarts', () => {
  let gateway;
  const clients = [];

  before(async () => {
    gateway = await startGateway();
  });

  after(async () => {
    for (const client of clients) client.close();
    await gateway?.stop();
  });

  test('reconnects after a restart on the same port, resubscribes, and never rolls a symbol back', async () => {
    const client = new TickgateClient(gateway.wsUrl, { WebSocket, ...FAST });
    clients.push(client);
    const seen = recordQuotes(client);
    const states = [];
    const disconnects = [];
    client.on('state', (event) => states.push(event));
    client.on('disconnect', (event) => disconnects.push(event));
    await client.connect();
    await client.subscribe(['AAPL', 'MSFT', 'NVDA', 'ZZNODATA9']);
    await waitFor(() => ['AAPL', 'MSFT', 'NVDA'].every((s) => client.get(s)?.updates > 2), { what: 'quotes before the restart' });

    const port = gateway.port;
    await gateway.stop();
    await waitFor(() => client.state === 'reconnecting', { what: 'reconnecting state' });
    assert.equal(disconnects[0].code, 1001, 'the gateway says it is going away');
    for (const s of ['AAPL', 'MSFT', 'NVDA']) {
      assert.equal(client.get(s).stale, true);
      assert.equal(client.get(s).staleReason, 'disconnected');
    }
    const frozen = Object.fromEntries(['AAPL', 'MSFT', 'NVDA'].map((s) => [s, { ...client.get(s).quote }]));

    // A subscribe while down waits for the next connection.
    const whileDown = client.subscribe(['AMZN']);
    await sleep(600); // a few failed attempts against the closed port
    const restartedAt = Date.now();
    gateway = await startGateway({ port });
    const result = await whileDown;
    assert.deepEqual(result.symbols, ['AMZN']);
    await waitFor(() => client.state === 'open', { what: 'open again' });
    assert.equal(client.stats.reconnects, 1);

    await waitFor(() => ['AAPL', 'MSFT', 'NVDA', 'AMZN'].every((s) => client.get(s)?.receivedAt > restartedAt && !client.get(s).stale), {
      what: 'fresh quotes after the restart',
    });
    assert.deepEqual([...client.desired].sort(), ['AAPL', 'AMZN', 'MSFT', 'NVDA', 'ZZNODATA9']);

    // Never rolled back: every accepted quote has a higher seq than the one
    // before it, or (once, after the restart) a newer ts.
    for (const [symbol, list] of seen) {
      for (let i = 1; i < list.length; i++) {
        const [prev, cur] = [list[i - 1], list[i]];
        if (cur.rebased) assert.ok(cur.ts > prev.ts, `${symbol} rebased onto an older quote`);
        else assert.ok(cur.seq > prev.seq, `${symbol} seq went ${prev.seq} -> ${cur.seq}`);
        assert.ok(cur.ts >= prev.ts, `${symbol} ts went back`);
      }
    }
    for (const s of ['AAPL', 'MSFT', 'NVDA']) {
      assert.ok(client.get(s).quote.ts > frozen[s].ts, `${s} moved on from the frozen quote`);
    }
    assert.ok(states.some((e) => e.state === 'reconnecting' && e.delayMs !== undefined && e.delayMs <= 500), 'backoff within its cap');
  });

  test('the heartbeat watchdog drops a silent link and reconnects', async () => {
    const client = new TickgateClient(gateway.wsUrl, { WebSocket, ...FAST, heartbeatTimeoutMs: 1200 });
    clients.push(client);
    const errors = [];
    client.on('error', (err) => errors.push(err));
    await client.connect();
    await client.subscribe(['AAPL']);
    await waitFor(() => client.get('AAPL')?.updates > 1, { what: 'quotes' });

    gateway.pause(); // the process stops: the socket stays open but goes silent
    try {
      await waitFor(() => client.state === 'reconnecting', { timeoutMs: 5000, what: 'watchdog to fire' });
      assert.ok(errors.some((e) => e.code === 'heartbeat_timeout'));
      assert.equal(client.get('AAPL').stale, true);
    } finally {
      gateway.resume();
    }
    const resumedAt = Date.now();
    await waitFor(() => client.state === 'open' && client.get('AAPL').receivedAt > resumedAt, { timeoutMs: 10_000, what: 'recovery' });
    assert.equal(client.get('AAPL').stale, false);
  });

  test('close() stops reconnecting and rejects what is pending', async () => {
    const client = new TickgateClient(gateway.wsUrl, { WebSocket, ...FAST });
    await client.connect();
    await client.subscribe(['AAPL']);
    client.close();
    assert.equal(client.state, 'closed');
    await assert.rejects(client.ping(), { code: 'closed' });
    await sleep(300);
    assert.equal(client.state, 'closed');
  });
});
