// The uWebSockets.js peer against real clients (npm `ws`), a real TCP feed and,
// for wss, a certificate made by the openssl command line.
// Run: cd benches/peers && npm ci && node --test
// Every wait is for an event; the timeouts are failure guards only. Each
// test stops the server it started (by its handle).
'use strict';
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { test } = require('node:test');
const WebSocket = require('ws');

const SERVER = path.join(__dirname, 'uws-server.js');
const GUARD_MS = 15000;

function within(promise, what) {
  let timer;
  const guard = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${GUARD_MS} ms`)), GUARD_MS);
  });
  return Promise.race([promise, guard]).finally(() => clearTimeout(timer));
}

// A TCP feed the peer connects out to; `connected` resolves with its socket.
async function startFeed() {
  const server = net.createServer();
  const connected = new Promise((resolve) => server.once('connection', resolve));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, connected, addr: `127.0.0.1:${server.address().port}` };
}

// The peer on port 0; resolves once it printed its listening line.
async function startPeer(t, feedAddr, extra = []) {
  const child = spawn(process.execPath, [SERVER, '127.0.0.1:0', feedAddr, ...extra],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  t.after(() => { if (child.exitCode === null) child.kill(); });
  const line = await within(new Promise((resolve, reject) => {
    child.stdout.once('data', (d) => resolve(d.toString()));
    child.once('exit', (code) => reject(new Error(`peer exited ${code}: ${stderr}`)));
  }), 'listening line');
  const { event, client } = JSON.parse(line);
  assert.equal(event, 'listening');
  return { child, url: `${client}/ws`, stderr: () => stderr };
}

// A client whose text messages queue up for `next()`.
function client(url, options = {}) {
  const ws = new WebSocket(url, options);
  const queue = [];
  const waiters = [];
  ws.on('message', (data, isBinary) => {
    const m = isBinary ? data : data.toString();
    const w = waiters.shift();
    if (w) w(m); else queue.push(m);
  });
  const opened = within(new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  }), 'open');
  const closed = new Promise((resolve) => ws.once('close', (code) => resolve(code)));
  ws.on('error', () => {});
  return {
    ws,
    opened,
    closed,
    next: () => within(queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => waiters.push(r)), 'message'),
    send: (obj) => ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj)),
  };
}

async function subscribe(c, symbols, id) {
  c.send({ op: 'subscribe', symbols, id });
  assert.deepEqual(JSON.parse(await c.next()), { type: 'subscribed', id });
}

function line(symbol, seq) {
  return JSON.stringify({ symbol, seq, bid: 100 + seq, ask: 100.5 + seq, ts: 1764000000000000 + seq });
}

test('a subscriber gets each feed line of its symbols verbatim, in order, and nothing else', async (t) => {
  const feed = await startFeed();
  t.after(() => feed.server.close());
  const peer = await startPeer(t, feed.addr);
  const c = client(peer.url);
  t.after(() => c.ws.terminate());
  await c.opened;
  await subscribe(c, ['AAPL', 'MSFT'], 1);
  const socket = await within(feed.connected, 'feed connection');
  // Lines split across writes, a line of a symbol nobody wants, a blank line.
  const lines = [line('AAPL', 1), line('NVDA', 1), line('MSFT', 1), '', line('AAPL', 2), line('MSFT', 2)];
  const text = lines.join('\n') + '\n';
  socket.write(text.slice(0, 17));
  socket.write(text.slice(17));
  for (const expected of [line('AAPL', 1), line('MSFT', 1), line('AAPL', 2), line('MSFT', 2)]) {
    assert.equal(await c.next(), `{"type":"update","quotes":[${expected}]}`);
  }
});

test('unsubscribe stops a symbol; the reply echoes the id, and no id means none', async (t) => {
  const feed = await startFeed();
  t.after(() => feed.server.close());
  const peer = await startPeer(t, feed.addr);
  const c = client(peer.url);
  t.after(() => c.ws.terminate());
  await c.opened;
  c.send({ op: 'subscribe', symbols: ['AAPL', 'MSFT'] });
  assert.equal(await c.next(), '{"type":"subscribed"}');
  c.send({ op: 'unsubscribe', symbols: ['AAPL'], id: 7 });
  assert.deepEqual(JSON.parse(await c.next()), { type: 'unsubscribed', id: 7 });
  const socket = await within(feed.connected, 'feed connection');
  // One connection's messages arrive in publish order: MSFT 1 coming first
  // proves AAPL 1, published before it, was not sent.
  socket.write(`${line('AAPL', 1)}\n${line('MSFT', 1)}\n`);
  assert.equal(await c.next(), `{"type":"update","quotes":[${line('MSFT', 1)}]}`);
});

test('hostile clients are ignored or closed while a well-behaved client keeps receiving', async (t) => {
  const feed = await startFeed();
  t.after(() => feed.server.close());
  const peer = await startPeer(t, feed.addr);
  const good = client(peer.url);
  t.after(() => good.ws.terminate());
  await good.opened;
  await subscribe(good, ['AAPL'], 1);
  const socket = await within(feed.connected, 'feed connection');

  // Ignored, the connection stays open: junk the peer contract does not know.
  const junk = client(peer.url);
  t.after(() => junk.ws.terminate());
  await junk.opened;
  for (const m of ['not json', '[1,2]', 'null', '42', '{"op":"subscribe"}', '{"op":"subscribe","symbols":"AAPL"}',
    '{"op":"bogus","symbols":["AAPL"]}', '{"symbols":["AAPL"]}']) junk.send(m);
  junk.ws.send(Buffer.from('{"op":"subscribe","symbols":["AAPL"]}'), { binary: true });
  // Wrong-typed symbols are skipped, the string among them is taken.
  junk.send({ op: 'subscribe', symbols: [1, null, {}, [], '', 'MSFT'], id: 'x' });
  assert.equal(await junk.next(), '{"type":"subscribed"}', 'only the last request is answered');

  // Closed by uWS itself: a frame over its 16 KiB default maxPayloadLength,
  // and a text frame that is not UTF-8.
  const big = client(peer.url);
  await big.opened;
  big.send(JSON.stringify({ op: 'subscribe', symbols: Array.from({ length: 3000 }, (_, i) => `S${i}`) }));
  await within(big.closed, 'close of the oversized client');
  const invalid = client(peer.url);
  await invalid.opened;
  invalid.ws.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false });
  await within(invalid.closed, 'close of the invalid UTF-8 client');

  // A feed line that is not JSON, one without a symbol, then good ones.
  socket.write(`{"symbol":\n{"seq":1}\n["AAPL"]\n${line('AAPL', 1)}\n${line('MSFT', 1)}\n`);
  assert.equal(await good.next(), `{"type":"update","quotes":[${line('AAPL', 1)}]}`);
  assert.equal(await junk.next(), `{"type":"update","quotes":[${line('MSFT', 1)}]}`,
    'the junk client got MSFT only: AAPL came from none of its ignored requests');
  assert.equal(peer.child.exitCode, null, 'the peer is still running');
});

test('serves wss with the certificate files it is given (SSLApp)', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uws-peer-tls-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const cert = path.join(dir, 'server.pem');
  const key = path.join(dir, 'server-key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost'],
  { stdio: 'ignore' });
  const feed = await startFeed();
  t.after(() => feed.server.close());
  const peer = await startPeer(t, feed.addr, ['--tls-cert', cert, '--tls-key', key]);
  assert.match(peer.url, /^wss:\/\/127\.0\.0\.1:\d+\/ws$/);
  const port = new URL(peer.url).port;
  const c = client(`wss://localhost:${port}/ws`, { ca: fs.readFileSync(cert) });
  t.after(() => c.ws.terminate());
  await c.opened;
  await subscribe(c, ['AAPL'], 3);
  const socket = await within(feed.connected, 'feed connection');
  socket.write(`${line('AAPL', 1)}\n`);
  assert.equal(await c.next(), `{"type":"update","quotes":[${line('AAPL', 1)}]}`);
});

test('bad command lines exit 64 with a usage message', () => {
  for (const args of [[], ['127.0.0.1:0'], ['127.0.0.1:0', '127.0.0.1:1', '--tls-cert', 'a.pem'],
    ['127.0.0.1:0', '127.0.0.1:1', '--threads', '4']]) {
    let failed;
    try {
      execFileSync(process.execPath, [SERVER, ...args], { stdio: 'pipe', timeout: GUARD_MS });
    } catch (e) {
      failed = e;
    }
    assert.ok(failed, `exits non-zero for ${args.join(' ')}`);
    assert.equal(failed.status, 64, `exit status for ${args.join(' ')}`);
    assert.match(failed.stderr.toString(), /usage: node uws-server\.js/);
  }
});
