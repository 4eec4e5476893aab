// Peer (b): a Node.js fan-out server on the npm `ws` package, written the way
// dashboards' servers usually are: a map symbol -> set of sockets, one
// ws.send() per tick per subscriber.
//
// Usage: node ws-server.js LISTEN_HOST:PORT FEED_HOST:PORT
// Speaks the common peer contract of benches/README.md.
'use strict';
const net = require('net');
const { WebSocketServer } = require('ws');

const [listen, feed] = process.argv.slice(2);
const [host, port] = listen.split(':');
const bySymbol = new Map();

const wss = new WebSocketServer({ host, port: Number(port), perMessageDeflate: false });
wss.on('listening', () => {
  console.log(JSON.stringify({ event: 'listening', client: `${host}:${wss.address().port}` }));
});
wss.on('connection', (ws) => {
  const mine = new Set();
  ws.on('message', (data) => {
    let request;
    try { request = JSON.parse(data); } catch { return; }
    if (request.op !== 'subscribe' || !Array.isArray(request.symbols)) return;
    for (const s of request.symbols) {
      if (!bySymbol.has(s)) bySymbol.set(s, new Set());
      bySymbol.get(s).add(ws);
      mine.add(s);
    }
    ws.send('{"type":"subscribed"}');
  });
  ws.on('close', () => { for (const s of mine) bySymbol.get(s).delete(ws); });
  ws.on('error', () => {});
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
      const subs = bySymbol.get(tick.symbol);
      if (!subs) continue;
      const frame = `{"type":"update","quotes":[${line}]}`;
      for (const ws of subs) ws.send(frame);
    }
  });
  socket.on('error', () => setTimeout(connectFeed, 100));
}
connectFeed();
