// Trades through tickgate.js against a real gateway fed by a TCP feed the
// test controls: every trade in order with its quote first, none for a
// subscription without `trades`, and a full trade buffer announced on
// `tradesLost` with nothing unaccounted for.
// Run: node --test web/test/   (needs target/debug/tickgate or $TICKGATE_BIN)

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';

import { TickgateClient } from '../tickgate.js';
import { quoteTick, startFeed, tradeTick } from '../test-support/feed.js';
import { sleep, startGateway, waitFor, writeConfig } from '../test-support/gateway.js';

const FAST = { reconnect: { initialDelayMs: 100, maxDelayMs: 500 } };

describe('trades through the client library', { timeout: 120_000 }, () => {
  let feed;
  let gateway; // default trade buffer (1,024)
  let small; // 16-trade buffer
  const clients = [];
  const track = (client) => (clients.push(client), client);

  before(async () => {
    // Both gateways read the same feed.
    feed = await startFeed();
    gateway = await startGateway({ args: ['--feed', feed.spec] });
    // A small trade buffer and socket send buffer, so a client that stops
    // reading overflows it quickly.
    const config = writeConfig('[connection]\ntrade_buffer = 16\nsend_buffer_bytes = 4096\n');
    small = await startGateway({ args: ['--config', config, '--feed', feed.spec] });
    await waitFor(() => feed.connections === 2, { what: 'both gateways to connect to the feed' });
  });

  after(async () => {
    for (const client of clients) client.close();
    await gateway?.stop();
    await small?.stop();
    await feed?.stop();
  });

  test('every trade arrives in order, after a quote at least as new; no trades without the option', async () => {
    await feed.send(['T1', 'T2', 'Q1'].map((s) => quoteTick(s, 1)));
    const client = track(new TickgateClient(gateway.wsUrl, { WebSocket, ...FAST }));
    const prices = { T1: [], T2: [], Q1: [] };
    const behind = [];
    let lost = 0;
    client.on('trades', (trades) => {
      for (const t of trades) {
        prices[t.symbol].push(t.price);
        assert.equal(t.size, 100);
        assert.equal(typeof t.ts, 'number');
        // The quote with the trade's seq (or newer) was delivered first.
        const held = client.get(t.symbol)?.seq;
        if (!(held >= t.seq)) behind.push({ trade: t, held });
      }
    });
    client.on('tradesLost', (event) => (lost += event.lost));
    await client.connect();
    await client.subscribe(['T1', 'T2'], { trades: true });
    await client.subscribe(['Q1']);
    await waitFor(() => client.get('T2')?.seq !== undefined && client.get('Q1')?.seq !== undefined, { what: 'snapshots' });

    // Quotes and trades interleaved, 5 batches of 80 per symbol.
    const TRADES = 400;
    for (let batch = 0; batch < 5; batch++) {
      const ticks = [];
      for (let i = 1; i <= 80; i++) {
        const n = batch * 80 + i;
        for (const s of ['T1', 'T2', 'Q1']) ticks.push(quoteTick(s, n), tradeTick(s, n));
      }
      await feed.send(ticks);
    }
    await waitFor(() => prices.T1.length >= TRADES && prices.T2.length >= TRADES, { what: `${TRADES} trades per symbol` });
    const expected = Array.from({ length: TRADES }, (_, i) => i + 1);
    assert.deepEqual(prices.T1, expected, 'every T1 trade, in order');
    assert.deepEqual(prices.T2, expected, 'every T2 trade, in order');
    assert.deepEqual(behind, [], 'no trade came before its quote');
    assert.deepEqual(prices.Q1, [], 'a subscription without trades gets none');
    assert.equal(lost, 0);
    assert.equal(client.stats.trades, 2 * TRADES);
    await waitFor(() => client.get('Q1')?.quote.last === TRADES, { what: 'Q1 quotes still flow' });
  });

  test('a client that stops reading loses the oldest trades and is told how many', async () => {
    await feed.send([quoteTick('FX', 1)]);
    const client = track(new TickgateClient(small.wsUrl, { WebSocket, ...FAST }));
    const received = [];
    const announced = [];
    client.on('trades', (trades) => received.push(...trades.filter((t) => t.symbol === 'FX').map((t) => t.price)));
    client.on('tradesLost', (event) => announced.push(event));
    await client.connect();
    await client.subscribe(['FX'], { trades: true });
    await waitFor(() => client.get('FX')?.seq !== undefined, { what: 'FX snapshot' });

    // Stop reading (the `ws` socket pauses its TCP socket) while far more
    // trades arrive than the socket buffers and the 16-trade buffer hold.
    const TRADES = 40_000;
    client._socket.pause();
    for (let batch = 0; batch < 40; batch++) {
      await feed.send(Array.from({ length: 1000 }, (_, i) => tradeTick('FX', batch * 1000 + i + 1)));
    }
    // A second client, reading normally, tells when the gateway has taken
    // the whole feed (the gateway counts lost trades only once it announces them).
    const watcher = track(new TickgateClient(small.wsUrl, { WebSocket, ...FAST }));
    await watcher.connect();
    await watcher.subscribe(['FX']);
    await waitFor(() => watcher.get('FX')?.quote.last === TRADES, { timeoutMs: 30_000, what: 'the gateway to take every trade' });
    await sleep(200);
    client._socket.resume();

    await waitFor(() => received.at(-1) === TRADES, { timeoutMs: 20_000, what: 'the newest trade' });
    const lost = announced.reduce((sum, e) => sum + e.lost, 0);
    assert.ok(lost > 0, 'the buffer overflowed');
    for (const event of announced) assert.equal(event.symbols.FX, event.lost, JSON.stringify(event));
    assert.equal(received.length + lost, TRADES, 'every trade is delivered or announced as lost');
    assert.ok(received.every((p, i) => i === 0 || p > received[i - 1]), 'what arrives is in order');
    assert.equal(client.stats.tradesLost, lost);
  });
});
