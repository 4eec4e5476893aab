// The gateway's opt-in delivery options through tickgate.js, against a real
// gateway: a rate cap, delta updates merged into complete quotes, freshness
// metadata, and resume after a reconnect.
// Run: node --test web/test/   (needs target/debug/tickgate or $TICKGATE_BIN)

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';

import { TickgateClient } from '../tickgate.js';
import { quoteTick, startFeed } from '../test-support/feed.js';
import { startGateway, waitFor } from '../test-support/gateway.js';

const FAST = { reconnect: { initialDelayMs: 100, maxDelayMs: 500 } };

describe('delivery options through the client library', () => {
  let gateway;
  const clients = [];
  const track = (client) => (clients.push(client), client);

  before(async () => {
    gateway = await startGateway({ args: ['--sim-rate', '20000'] });
  });

  after(async () => {
    for (const client of clients) client.close();
    await gateway?.stop();
  });

  test('maxRate caps updates per symbol and delta quotes merge into complete ones', async () => {
    const client = track(new TickgateClient(gateway.wsUrl, { WebSocket, ...FAST, delivery: { maxRate: 2, delta: true, meta: true } }));
    const arrivals = [];
    client.on('quote', (state, info) => {
      if (state.symbol === 'AAPL' && info.source === 'update') arrivals.push(Date.now());
    });
    await client.connect();
    await client.subscribe(['AAPL']);
    // Wait for the updates themselves (on a busy machine the simulator and
    // the gateway take longer to produce them), then check what the cap
    // promises: consecutive updates of the symbol at least 1/2 s apart
    // (400 ms leaves room for timer jitter), while 20k ticks/s keep AAPL
    // changing many times a second.
    await waitFor(() => arrivals.length >= 4, { what: 'four AAPL updates at 2 Hz', timeoutMs: 30_000 });
    for (let i = 1; i < arrivals.length; i++) assert.ok(arrivals[i] - arrivals[i - 1] >= 400, `updates ${arrivals[i] - arrivals[i - 1]} ms apart`);
    const aapl = client.get('AAPL').quote;
    for (const field of ['bid', 'ask', 'bid_size', 'ask_size', 'last', 'volume', 'ts']) assert.equal(typeof aapl[field], 'number', `${field} kept across delta updates`);
    assert.equal(typeof aapl.received_ts, 'number', 'meta fields arrive');
    assert.ok(aapl.conflated > 0, 'at 20k ticks/s a 2 Hz subscriber skips ticks');
  });

  test('resume after a reconnect keeps what did not change and refreshes what did', async () => {
    const client = track(new TickgateClient(gateway.wsUrl, { WebSocket, ...FAST, resume: true }));
    const snapshots = [];
    client.on('frame', (frame) => {
      if (frame.type === 'snapshot') snapshots.push(frame);
    });
    await client.connect();
    await client.subscribe(['AAPL', 'MSFT', 'NVDA']);
    await waitFor(() => ['AAPL', 'MSFT', 'NVDA'].every((s) => client.get(s)?.seq !== undefined), { what: 'snapshot' });
    client._socket.close(4000, "test: drop the link");
    await waitFor(() => snapshots.some((f) => f.resumed === true), { what: 'a resumed snapshot after reconnect' });
    const resumed = snapshots.find((f) => f.resumed === true);
    assert.equal(typeof resumed.unchanged, 'number');
    assert.ok(resumed.quotes.length + resumed.unchanged === 3, JSON.stringify(resumed));
    for (const symbol of ['AAPL', 'MSFT', 'NVDA']) assert.equal(typeof client.get(symbol).quote.bid, 'number');
  });
});

// A restarted gateway counts seq from 1 again: the same seq can carry a
// different value. The client echoes the gateway's epoch in `resume` and
// takes a same-seq quote from another epoch when it is newer.
describe('resume across a gateway restart', () => {
  let feed;
  let gateway;
  let client;

  before(async () => {
    feed = await startFeed();
    gateway = await startGateway({ args: ['--feed', feed.spec] });
    await feed.connected();
  });

  after(async () => {
    client?.close();
    await gateway?.stop();
    await feed?.stop();
  });

  test('a changed quote with the seq the client holds replaces the old value', async () => {
    client = new TickgateClient(gateway.wsUrl, { WebSocket, ...FAST, resume: true });
    const subscribed = [];
    client.on('frame', (frame) => {
      if (frame.type === 'subscribed') subscribed.push(frame);
    });
    await client.connect();
    await client.subscribe(['EPOCHX']);
    await feed.send([quoteTick('EPOCHX', 100)]);
    await waitFor(() => client.get('EPOCHX')?.quote.bid === 99.99, { what: 'the first process\'s quote' });
    const seq = client.get('EPOCHX').seq;

    const port = gateway.port;
    await gateway.stop();
    await waitFor(() => feed.connections === 0, { what: 'the feed to see the gateway go' });
    gateway = await startGateway({ port, args: ['--feed', feed.spec] });
    await waitFor(() => feed.connections === 1, { what: 'the restarted gateway to connect to the feed' });
    await feed.send([quoteTick('EPOCHX', 200)]);

    await waitFor(() => client.get('EPOCHX')?.quote.bid === 199.99, { what: 'the restarted process\'s value', timeoutMs: 20_000 });
    assert.equal(client.get('EPOCHX').seq, seq, 'the same seq in the new epoch');
    assert.equal(subscribed.length >= 2, true);
    assert.notEqual(subscribed.at(-1).epoch, subscribed[0].epoch, 'each process has its own epoch');
  });
});
