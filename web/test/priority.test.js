// Viewport priority and the slow-consumer ladder through tickgate.js against
// a real gateway: setPriority replies and not_subscribed refusals, ranks
// restored after a gateway restart, and a client that stops reading: the
// `slow` notice, `restored` once it reads again, then the 4008 close, the
// reconnect and the ranks sent again on the new connection.
// Run: node --test web/test/   (needs target/debug/tickgate or $TICKGATE_BIN)

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';

import { TickgateClient } from '../tickgate.js';
import { REPO_ROOT, startGateway, waitFor, writeConfig } from '../test-support/gateway.js';

const FAST = { reconnect: { initialDelayMs: 100, maxDelayMs: 500 } };

/** The simulator's symbols (every one ticks). */
const UNIVERSE = readFileSync(join(REPO_ROOT, 'feeds', 'src', 'universe.txt'), 'utf8').split(/\s+/).filter(Boolean);

/** The admin row of the only connection holding `symbols` subscriptions. */
/** The gateway's count of slow-consumer ladder steps of one kind. */
async function slowSteps(gateway, step) {
  const metrics = await (await fetch(`${gateway.adminUrl}/metrics`)).text();
  const line = metrics.split('\n').find((l) => l.startsWith(`tickgate_slow_consumer_steps_total{step="${step}"}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

async function connectionRow(gateway, subscriptions) {
  const rows = await gateway.connections();
  return rows.find((row) => row.subscriptions === subscriptions);
}

describe('viewport priority through the client library', { timeout: 120_000 }, () => {
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

  test('setPriority resolves with the reply and the gateway holds the ranks', async () => {
    const client = track(new TickgateClient(gateway.wsUrl, { WebSocket, ...FAST }));
    await client.connect();
    await client.subscribe(['AAPL', 'MSFT', 'NVDA', 'TSLA', 'AMZN']);
    const result = await client.setPriority({ visible: ['AAPL', 'NVDA'], background: ['MSFT', 'TSLA'] });
    assert.deepEqual(result, { visible: ['AAPL', 'NVDA'], normal: [], background: ['MSFT', 'TSLA'], rejected: [] });
    assert.deepEqual(Object.fromEntries(client.priorities), { AAPL: 'visible', NVDA: 'visible', MSFT: 'background', TSLA: 'background' });
    const row = await connectionRow(gateway, 5);
    assert.equal(row.mode.visible, 2, JSON.stringify(row));
    assert.equal(row.mode.background, 2);
    // Moving one back to normal.
    assert.deepEqual((await client.setPriority({ normal: ['TSLA'] })).normal, ['TSLA']);
    assert.equal((await connectionRow(gateway, 5)).mode.background, 1);
  });

  test('symbols not subscribed are refused with not_subscribed', async () => {
    const client = track(new TickgateClient(gateway.wsUrl, { WebSocket, ...FAST }));
    const errors = [];
    client.on('error', (err) => errors.push(err));
    await client.connect();
    await client.subscribe(['AAPL']);
    const partly = await client.setPriority({ background: ['AAPL', 'MSFT'] });
    assert.deepEqual(partly.background, ['AAPL']);
    assert.equal(partly.rejected.length, 1);
    assert.equal(partly.rejected[0].code, 'not_subscribed');
    assert.deepEqual(partly.rejected[0].symbols, ['MSFT']);
    assert.ok(!client.priorities.has('MSFT'));
    await assert.rejects(client.setPriority({ visible: ['NVDA', 'TSLA'] }), (err) => {
      assert.equal(err.code, 'not_subscribed');
      assert.equal(err.op, 'priority');
      assert.deepEqual(err.symbols, ['NVDA', 'TSLA']);
      assert.ok(err.message.length > 0, 'carries the gateway message');
      return true;
    });
    assert.deepEqual(errors.map((e) => e.code), ['not_subscribed', 'not_subscribed']);
    // A rank given with subscribe counts too.
    await client.subscribe(['NVDA'], { priority: 'visible' });
    assert.equal(client.priorities.get('NVDA'), 'visible');
    await waitFor(async () => (await connectionRow(gateway, 2))?.mode.visible === 1, { what: 'NVDA visible on the gateway' });
  });

  test('after a gateway restart the client resubscribes, then ranks its symbols again', async () => {
    const client = track(new TickgateClient(gateway.wsUrl, { WebSocket, ...FAST }));
    const replies = [];
    client.on('frame', (frame) => {
      if (frame.type === 'subscribed' || frame.type === 'priority') replies.push(frame.type);
    });
    await client.connect();
    await client.subscribe(['AAPL', 'MSFT', 'NVDA']);
    await client.setPriority({ visible: ['AAPL'], background: ['MSFT', 'NVDA'] });
    for (const other of clients) if (other !== client) other.close();

    const port = gateway.port;
    await gateway.stop();
    await waitFor(() => client.state === 'reconnecting', { what: 'reconnecting' });
    replies.length = 0;
    gateway = await startGateway({ port });
    await waitFor(() => replies.includes('priority'), { timeoutMs: 15_000, what: 'the ranks sent again' });
    assert.deepEqual(replies, ['subscribed', 'priority'], 'subscribe first, then priority');
    const row = await connectionRow(gateway, 3);
    assert.equal(row.mode.visible, 1, JSON.stringify(row));
    assert.equal(row.mode.background, 2);
    assert.deepEqual(Object.fromEntries(client.priorities), { AAPL: 'visible', MSFT: 'background', NVDA: 'background' });
  });
});

describe('the slow-consumer ladder through the client library', { timeout: 120_000 }, () => {
  let gateway;
  const clients = [];
  const visible = UNIVERSE.slice(0, 5);
  const background = UNIVERSE.slice(5);

  before(async () => {
    // Thresholds short enough for a test; a small socket send buffer keeps
    // the backlog in the gateway, where the ladder sees it.
    const config = writeConfig([
      '[connection]',
      'send_buffer_bytes = 4096',
      '[slow_consumer]',
      'blocked_write_ms = 50',
      'notice_after_ms = 300',
      'reduced_rate_hz = 2.0',
      'recover_after_ms = 1000',
      'close_after_ms = 6000',
      '',
    ].join('\n'));
    gateway = await startGateway({ args: ['--config', config, '--sim-rate', '5000'] });
  });

  after(async () => {
    for (const client of clients) client.close();
    await gateway?.stop();
  });

  // A fresh connection holding every symbol, ranked, with what it is told
  // recorded. Fresh matters: the kernel grows a socket's receive buffer (up
  // to tcp_rmem's 32 MiB here) only while the client reads fast, and a
  // paused socket must fill that buffer before the gateway's writes block.
  async function rankedClient() {
    const client = new TickgateClient(gateway.wsUrl, { WebSocket, ...FAST });
    clients.push(client);
    const seen = { notices: [], disconnects: [], states: [], errors: [] };
    client.on('slow', (notice, state) => seen.notices.push({ notice, state }));
    client.on('disconnect', (event) => seen.disconnects.push(event));
    client.on('state', (event) => seen.states.push(event));
    client.on('error', (err) => seen.errors.push(err));
    await client.connect();
    await client.subscribe(UNIVERSE);
    await client.setPriority({ visible, background });
    await waitFor(() => client.get('AAPL')?.seq !== undefined, { what: 'quotes' });
    return { client, ...seen };
  }

  // Stops reading until the gateway's count of `step` moves (how long the
  // socket takes to block depends on buffers the kernel sizes, so no fixed
  // time), then reads again; returns how long it stalled.
  async function stallUntil(client, step, timeoutMs) {
    const before = await slowSteps(gateway, step);
    const stalledAt = Date.now();
    client._socket.pause();
    await waitFor(async () => (await slowSteps(gateway, step)) > before, {
      timeoutMs,
      intervalMs: 100,
      what: `the gateway's "${step}" step for the stalled connection`,
    });
    const stalled = Date.now() - stalledAt;
    client._socket.resume();
    return stalled;
  }

  test('slowed while it stops reading, restored once it reads again', async () => {
    const { client, notices } = await rankedClient();

    // 1. Stop reading for a while: the gateway's writes block, it slows the
    //    background symbols and says so. The notice is read once reading resumes.
    await stallUntil(client, 'slowed', 30_000);
    await waitFor(() => notices.some((n) => n.notice.state === 'slowed'), { what: 'a slowed notice' });
    const first = notices.find((n) => n.notice.state === 'slowed');
    assert.equal(first.notice.priority, 'background');
    assert.equal(first.notice.rateHz, 2);
    assert.deepEqual([...first.notice.symbols].sort(), [...background].sort());
    assert.ok(first.notice.behindMs >= 300, `behind ${first.notice.behindMs} ms`);
    assert.match(first.notice.message, /not keeping up/);
    assert.equal(first.state.state, 'slowed');

    // 2. Reading at full speed again: restored, client.slow cleared.
    await waitFor(() => notices.some((n) => n.notice.state === 'restored'), { timeoutMs: 10_000, what: 'a restored notice' });
    assert.equal(client.slow, null);
    assert.equal(notices.at(-1).state, null);
    assert.equal(client.state, 'open');
    client.close();
  });

  test('closed 4008 when it stops for good, then reconnected and ranked again', async () => {
    const { client, disconnects, states, errors } = await rankedClient();

    // 3. Stop reading for longer than close_after_ms: close 4008, surfaced,
    //    then a reconnect like after any other close.
    const before = client.stats.reconnects;
    const stalled = await stallUntil(client, 'closed', 60_000);
    assert.ok(stalled >= 6000, `closed after ${stalled} ms, before close_after_ms`);
    await waitFor(() => disconnects.length > 0, { timeoutMs: 10_000, what: 'the 4008 close' });
    assert.equal(disconnects[0].code, 4008);
    assert.match(disconnects[0].reason, /^slow consumer/);
    assert.equal(disconnects[0].slowConsumer, true);
    assert.deepEqual(client.lastClose, disconnects[0]);
    assert.ok(errors.some((e) => e.code === 'slow_consumer'));
    const reconnecting = states.find((e) => e.state === 'reconnecting' && e.code === 4008);
    assert.ok(reconnecting, 'the reconnecting state carries the close code');
    assert.equal(reconnecting.slowConsumer, true);
    await waitFor(() => client.state === 'open' && client.stats.reconnects === before + 1, { what: 'reconnected' });
    assert.equal(client.slow, null, 'a new connection starts at full rate');

    // 4. The new connection holds the ranks again.
    await waitFor(async () => {
      const row = await connectionRow(gateway, UNIVERSE.length);
      return row && row.mode.visible === visible.length && row.mode.background === background.length;
    }, { what: 'ranks on the new connection' });
    const metrics = await (await fetch(`${gateway.adminUrl}/metrics`)).text();
    for (const step of ['slowed', 'restored', 'closed']) {
      assert.match(metrics, new RegExp(`tickgate_slow_consumer_steps_total\\{step="${step}"\\} [1-9]`), step);
    }
  });
});
