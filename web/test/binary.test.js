// The binary encoding (subprotocol tickgate.v1.bin) in tickgate.js, against
// a real gateway fed only by a TCP feed this test writes: a client with
// `binary: { decode }` ends on exactly the quotes a JSON client holds, and
// an undecodable or inconsistent binary frame drops the connection instead
// of showing a wrong symbol.
// Run: node --test web/test/   (needs target/debug/tickgate or $TICKGATE_BIN)

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decode, encode } from '@msgpack/msgpack';
import WebSocket from 'ws';

import { BINARY_SUBPROTOCOL, TickgateClient, TickgateError, expandBinary } from '../tickgate.js';
import { quoteTick, startFeed } from '../test-support/feed.js';
import { startGateway, waitFor } from '../test-support/gateway.js';

const FAST = { reconnect: { initialDelayMs: 100, maxDelayMs: 500 } };

describe('binary encoding against a running gateway', () => {
  let feed;
  let gateway;
  const clients = [];
  const track = (client) => (clients.push(client), client);

  before(async () => {
    feed = await startFeed();
    gateway = await startGateway({ args: ['--feed', feed.spec] });
    await feed.connected();
  });

  after(async () => {
    for (const client of clients) client.close();
    await gateway?.stop();
    await feed?.stop();
  });

  test('a binary client ends on exactly the quotes a JSON client holds', async () => {
    const symbols = ['AAPL', 'MSFT', 'BRK.B'];
    await feed.send(symbols.map((s) => quoteTick(s, 100)));
    const binary = track(new TickgateClient(gateway.wsUrl, { WebSocket, ...FAST, binary: { decode } }));
    const json = track(new TickgateClient(gateway.wsUrl, { WebSocket, ...FAST }));
    const protocols = [];
    binary.on('frame', () => protocols.push(binary._socket?.protocol));
    for (const client of [binary, json]) {
      await client.connect();
      await client.subscribe(symbols);
    }
    // Prices of 1 to 4 decimals, one that is no short decimal, odd sizes.
    const prices = [231.38, 0.0001, 42.5, 99.1234, 1 / 3];
    for (const [i, price] of prices.entries()) {
      await feed.send(symbols.map((s) => ({ ...quoteTick(s, price), bid_size: 100 + i + 0.5, volume: 1000 * i })));
    }
    const done = (client) => symbols.every((s) => client.get(s)?.quote.bid === prices.at(-1) - 0.01);
    await waitFor(() => done(binary) && done(json), { what: 'the last prices on both clients' });
    for (const symbol of symbols) {
      assert.deepEqual(binary.get(symbol).quote, json.get(symbol).quote, symbol);
      assert.equal(binary.get(symbol).seq, json.get(symbol).seq, symbol);
    }
    assert.ok(protocols.length > 0 && protocols.every((p) => p === BINARY_SUBPROTOCOL), `negotiated: ${protocols}`);
    assert.equal(json._socket.protocol, '');
  });

  test('a frame naming an unknown symbol id drops the connection and reconnects', async () => {
    const client = track(new TickgateClient(gateway.wsUrl, { WebSocket, ...FAST, binary: { decode } }));
    await client.connect();
    await client.subscribe(['AAPL']);
    const errors = [];
    client.on('error', (err) => errors.push(err));
    const states = [];
    client.on('state', (event) => states.push(event.state));
    // As if the gateway had sent it: a quote for id 99, never defined.
    client._onBinaryFrame(encode({ type: 'update', quotes: [{ s: 99, seq: 1_000_000, bid: 1 }] }));
    client._onBinaryFrame(new Uint8Array([0xc1]));
    await waitFor(() => client.state === 'open' && states.includes('reconnecting'), { what: 'a reconnect' });
    assert.ok(errors.length >= 1 && errors.every((e) => e instanceof TickgateError && e.code === 'bad_frame'), String(errors));
    assert.notEqual(client.get('AAPL')?.seq, 1_000_000);
    await waitFor(() => client.get('AAPL')?.quote.bid !== undefined, { what: 'AAPL again after the reconnect' });
  });
});

describe('expandBinary', () => {
  test('restores symbols and exact prices, learning ids across frames', () => {
    const ids = new Map();
    const first = expandBinary(
      { type: 'snapshot', defs: [[0, 'AAPL']], quotes: [{ s: 0, seq: 7, bid: 23138, ask: 23140, px: 2, bid_size: 300, ts: 17 }] },
      ids,
    );
    assert.deepEqual(first, { type: 'snapshot', quotes: [{ symbol: 'AAPL', seq: 7, bid: 231.38, ask: 231.4, bid_size: 300, ts: 17 }] });
    const second = expandBinary({ type: 'update', quotes: [{ s: 0, seq: 8, bid: 1.5 }] }, ids);
    assert.deepEqual(second.quotes, [{ symbol: 'AAPL', seq: 8, bid: 1.5 }]);
    assert.throws(() => expandBinary({ type: 'update', quotes: [{ s: 5, seq: 1 }] }, ids), /unknown symbol id 5/);
    assert.throws(() => expandBinary({ type: 'update', defs: [[1]] }, ids), /malformed symbol table/);
    const control = { type: 'subscribed', id: 1, symbols: ['AAPL'] };
    assert.deepEqual(expandBinary({ ...control }, ids), control);
  });
});
