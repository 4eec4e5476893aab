// A generic JSON-lines feed the tests control (docs/feeds.md): a TCP server
// the gateway connects out to (`--feed tcp://127.0.0.1:PORT`). Ticks written
// here are the only data the gateway has, so a test knows every quote and
// trade it should see.

import { createServer } from 'node:net';

export async function startFeed() {
  const connections = new Set();
  let onConnection = [];
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('error', () => {});
    socket.on('close', () => connections.delete(socket));
    // The gateway sends nothing; keep reading so the socket stays healthy.
    socket.resume();
    connections.add(socket);
    for (const resolve of onConnection.splice(0)) resolve();
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  return {
    port,
    /** The `--feed` argument for the gateway. */
    spec: `tcp://127.0.0.1:${port}?name=test`,
    /** Gateways connected right now. */
    get connections() {
      return connections.size;
    },
    /** Resolves once the gateway is connected. */
    connected() {
      if (connections.size > 0) return Promise.resolve();
      return new Promise((resolve) => onConnection.push(resolve));
    },
    /** Writes ticks (objects) as one JSON line each; resolves when flushed. */
    send(ticks) {
      const text = ticks.map((t) => JSON.stringify(t)).join('\n') + '\n';
      return Promise.all([...connections].map((socket) => new Promise((resolve) => socket.write(text, resolve))));
    },
    async stop() {
      onConnection = [];
      for (const socket of connections) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

export const quoteTick = (symbol, price) => ({ symbol, kind: 'quote', bid: price - 0.01, ask: price + 0.01, bid_size: 100, ask_size: 100 });
export const tradeTick = (symbol, price, size = 100) => ({ symbol, kind: 'trade', last: price, last_size: size });
