// Peer (f): uWebSockets.js, the fan-out server tickgate has to beat, used the
// way its documentation shows pub/sub: one topic per symbol, a client's
// subscribe is ws.subscribe(symbol) per symbol, and each feed line is one
// app.publish(symbol, frame) as it arrives. uWS writes a published message
// straight into every subscriber's socket from the publishing call and only
// buffers for sockets that would block (up to maxBackpressure, 64 KiB by
// default, past which it drops silently). Library defaults throughout: no
// compression, maxPayloadLength 16 KiB, idleTimeout 120 s with automatic
// pings, maxBackpressure 64 KiB, closeOnBackpressureLimit false.
//
// Usage: node uws-server.js LISTEN_HOST:PORT FEED_HOST:PORT [--tls-cert FILE --tls-key FILE]
// With --tls-cert/--tls-key it serves wss (uWS's SSLApp) instead of ws.
// Speaks the common peer contract of benches/README.md. Beyond what
// ws-server.js does it echoes a request's `id` in the `subscribed` reply and
// honours `unsubscribe` (answered by `unsubscribed`): noisy_neighbour.py's
// hostile clients wait for those replies. Neither is on the measured path.
//
// npm package @trufflesuite/uws-js-unofficial (uWebSockets.js builds for
// Node 16/18/20). Its own entry point silently falls back to a pure-JS
// implementation on `ws` when the native binary does not load; this peer
// loads the native binary itself and exits when it cannot, so a run can never
// measure the fallback under uWS's name.
'use strict';
const net = require('net');
const path = require('path');

const PACKAGE = '@trufflesuite/uws-js-unofficial';

function loadNative() {
  const dir = path.dirname(require.resolve(`${PACKAGE}/package.json`));
  const binary = path.join(dir, 'binaries',
    `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`);
  try {
    return require(binary);
  } catch (e) {
    console.error(`uws-server: the native uWebSockets.js binary does not load on Node ${process.version} ` +
      `(${process.platform}/${process.arch}, ABI ${process.versions.modules}): ${e.message}`);
    process.exit(2);
  }
}

function parseArgs(argv) {
  const [listen, feed, ...rest] = argv;
  const usage = 'usage: node uws-server.js LISTEN_HOST:PORT FEED_HOST:PORT [--tls-cert FILE --tls-key FILE]';
  if (!listen || !feed) throw new Error(usage);
  const tls = {};
  for (let i = 0; i < rest.length; i += 2) {
    if (rest[i] === '--tls-cert') tls.cert = rest[i + 1];
    else if (rest[i] === '--tls-key') tls.key = rest[i + 1];
    else throw new Error(`unknown argument ${rest[i]}\n${usage}`);
  }
  if (Boolean(tls.cert) !== Boolean(tls.key)) throw new Error(`--tls-cert and --tls-key go together\n${usage}`);
  return { listen, feed, tls: tls.cert ? tls : null };
}

// A client request: {"op":"subscribe"|"unsubscribe","symbols":[...],"id"?}.
// Anything else (binary, not JSON, wrong types) is ignored, as ws-server.js
// does; uWS itself closes on protocol errors and frames over 16 KiB.
function parseRequest(message, isBinary) {
  if (isBinary) return null;
  let request;
  try { request = JSON.parse(Buffer.from(message).toString('utf8')); } catch { return null; }
  if (request === null || typeof request !== 'object') return null;
  if (request.op !== 'subscribe' && request.op !== 'unsubscribe') return null;
  if (!Array.isArray(request.symbols)) return null;
  const symbols = request.symbols.filter((s) => typeof s === 'string' && s.length > 0);
  const id = Number.isInteger(request.id) ? request.id : undefined;
  return { op: request.op, symbols, id };
}

function reply(type, id) {
  return id === undefined ? `{"type":"${type}"}` : `{"type":"${type}","id":${id}}`;
}

function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(e.message);
    process.exit(64);
  }
  const { listen, feed, tls } = args;
  const uWS = loadNative();
  const [host, port] = listen.split(':');
  const app = tls ? uWS.SSLApp({ cert_file_name: tls.cert, key_file_name: tls.key }) : uWS.App();

  app.ws('/*', {
    message: (ws, message, isBinary) => {
      const request = parseRequest(message, isBinary);
      if (!request) return;
      if (request.op === 'subscribe') {
        for (const s of request.symbols) ws.subscribe(s);
        ws.send(reply('subscribed', request.id));
      } else {
        for (const s of request.symbols) ws.unsubscribe(s);
        ws.send(reply('unsubscribed', request.id));
      }
    },
  });
  app.listen(host, Number(port), (token) => {
    if (!token) {
      console.error(`uws-server: cannot listen on ${listen}`);
      process.exit(1);
    }
    const scheme = tls ? 'wss' : 'ws';
    console.log(JSON.stringify({ event: 'listening', client: `${scheme}://${host}:${uWS.us_socket_local_port(token)}` }));
  });
  connectFeed(app, feed);
}

// The feed: JSON lines over TCP; each line is published verbatim, wrapped in
// an `update` frame, to the topic of its symbol.
function connectFeed(app, feed) {
  const [fhost, fport] = feed.split(':');
  const socket = net.connect(Number(fport), fhost);
  let rest = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk) => {
    const lines = (rest + chunk).split('\n');
    rest = lines.pop();
    for (const line of lines) {
      if (!line) continue;
      let tick;
      try { tick = JSON.parse(line); } catch { continue; }
      if (!tick || typeof tick.symbol !== 'string') continue;
      app.publish(tick.symbol, `{"type":"update","quotes":[${line}]}`, false);
    }
  });
  socket.on('error', () => setTimeout(() => connectFeed(app, feed), 100));
}

main();
