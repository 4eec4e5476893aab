// Peer (d): a Socket.IO server (npm `socket.io` 4, engine.io v4 / Socket.IO
// v5), WebSocket transport only, written the way Socket.IO apps usually are:
// a client joins one room per symbol, each tick is one `io.to(symbol).emit`
// (Socket.IO encodes a broadcast once and writes that frame to every member).
//
// Usage: node socketio-server.js LISTEN_HOST:PORT FEED_HOST:PORT
// Clients: ws://LISTEN_HOST:PORT/socket.io/?EIO=4&transport=websocket, emit
// `subscribe` with {"symbols":[...]}, receive `subscribed` and then `update`
// events whose argument is the feed's tick (symbol, seq, ts, ...).
// Otherwise the common peer contract of benches/README.md.
'use strict';
const http = require('http');
const net = require('net');
const { Server } = require('socket.io');

const [listen, feed] = process.argv.slice(2);
const [host, port] = listen.split(':');

// Socket.IO's defaults (25 s / 20 s); tests shorten them to exercise the
// client's pong.
const pingInterval = Number(process.env.SOCKETIO_PING_INTERVAL_MS) || 25000;
const pingTimeout = Number(process.env.SOCKETIO_PING_TIMEOUT_MS) || 20000;

const httpServer = http.createServer();
const io = new Server(httpServer, {
  transports: ['websocket'],
  pingInterval,
  pingTimeout,
  serveClient: false,
  perMessageDeflate: false,
  httpCompression: false,
});
io.on('connection', (socket) => {
  socket.on('subscribe', (request) => {
    const symbols = request && Array.isArray(request.symbols) ? request.symbols : [];
    socket.join(symbols);
    socket.emit('subscribed', { count: symbols.length });
  });
});
httpServer.listen(Number(port), host, () => {
  console.log(JSON.stringify({ event: 'listening', client: `${host}:${httpServer.address().port}` }));
});

function connectFeed() {
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
      if (typeof tick.symbol !== 'string') continue;
      io.to(tick.symbol).emit('update', tick);
    }
  });
  socket.on('error', () => setTimeout(connectFeed, 100));
}
connectFeed();
