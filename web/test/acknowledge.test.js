// Acknowledgements in tickgate.js: every `acknowledgeEvery` messages the
// client tells the gateway how many it has read, counting afresh on each
// connection; against a real gateway with a window of 2 messages, a client
// that acknowledges keeps receiving and ends on the latest values.
// Run: node --test web/test/   (needs target/debug/tickgate or $TICKGATE_BIN)

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';

import { TickgateClient } from '../tickgate.js';
import { quoteTick, startFeed } from '../test-support/feed.js';
import { startGateway, waitFor, writeConfig } from '../test-support/gateway.js';
import { connectedClient } from '../test-support/scripted-socket.js';

describe('acknowledgements with a scripted socket', () => {
  test('every acknowledgeEvery messages, counting every message, afresh per connection', async () => {
    const { client, sockets } = await connectedClient({ acknowledgeEvery: 4 });
    const socket = sockets[0];
    socket.frame({ type: 'heartbeat', ts: 1 });
    socket.frame({ type: 'heartbeat', ts: 2 });
    socket.frame('not an object');
    assert.deepEqual(socket.requests('ack'), []);
    socket.frame({ type: 'update', quotes: [] });
    assert.deepEqual(socket.requests('ack'), [{ op: 'ack', frames: 4 }]);
    for (let i = 0; i < 4; i += 1) socket.frame({ type: 'heartbeat', ts: 10 + i });
    assert.deepEqual(socket.requests('ack').map((a) => a.frames), [4, 8]);
    // A new connection counts from 0.
    socket.drop(1006);
    await waitFor(() => sockets.length === 2, { what: 'a reconnect' });
    sockets[1].open();
    await waitFor(() => client.state === 'open', { what: 'open again' });
    for (let i = 0; i < 4; i += 1) sockets[1].frame({ type: 'heartbeat', ts: 20 + i });
    assert.deepEqual(sockets[1].requests('ack'), [{ op: 'ack', frames: 4 }]);
    client.close();
  });

  test('none by default', async () => {
    const { client, sockets } = await connectedClient();
    for (let i = 0; i < 20; i += 1) sockets[0].frame({ type: 'heartbeat', ts: i });
    assert.deepEqual(sockets[0].requests('ack'), []);
    client.close();
  });
});

describe('acknowledgements against a running gateway', () => {
  let feed;
  let gateway;
  const clients = [];

  before(async () => {
    feed = await startFeed();
    const config = writeConfig('[connection]\nack_window_frames = 2\n');
    gateway = await startGateway({ args: ['--config', config, '--feed', feed.spec] });
    await feed.connected();
  });

  after(async () => {
    for (const client of clients) client.close();
    await gateway?.stop();
    await feed?.stop();
  });

  test('a client acknowledging every 2 messages keeps receiving and ends on the latest values', async () => {
    const client = new TickgateClient(gateway.wsUrl, { WebSocket, acknowledgeEvery: 2 });
    clients.push(client);
    await feed.send([quoteTick('AAPL', 100), quoteTick('MSFT', 200)]);
    await client.connect();
    await client.subscribe(['AAPL', 'MSFT']);
    for (let i = 1; i <= 200; i += 1) {
      await feed.send([quoteTick('AAPL', 100 + i), quoteTick('MSFT', 200 + i)]);
    }
    await waitFor(
      () => client.get('AAPL')?.quote.bid === 300 - 0.01 && client.get('MSFT')?.quote.bid === 400 - 0.01,
      { what: 'the latest values' },
    );
    assert.ok(client._acknowledged >= 2, `acknowledged ${client._acknowledged}`);
  });
});
