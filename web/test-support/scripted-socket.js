// A WebSocket stand-in the tests drive by hand: no network. Each socket the
// client opens is pushed to `sockets`; the test opens it, feeds it frames,
// reads what the client sent and drops it with any close code.

import { TickgateClient } from '../tickgate.js';

/** A client on scripted sockets, its first connection open; fast reconnects,
 *  no heartbeat timeout. `options` override the client's. */
export async function connectedClient(options = {}) {
  const { sockets, ScriptedSocket } = scriptedSockets();
  const client = new TickgateClient('ws://gateway.test/ws', {
    WebSocket: ScriptedSocket,
    reconnect: { initialDelayMs: 1, maxDelayMs: 1, jitter: 0 },
    heartbeatTimeoutMs: 0,
    ...options,
  });
  const opened = client.connect();
  sockets[0].open();
  await opened;
  return { client, sockets };
}

export function scriptedSockets() {
  const sockets = [];
  class ScriptedSocket {
    constructor(url) {
      this.url = url;
      this.sent = [];
      this.closed = null;
      sockets.push(this);
    }
    send(text) {
      this.sent.push(JSON.parse(text));
    }
    close(code, reason) {
      this.closed = { code, reason };
    }
    // test side
    open() {
      this.onopen?.({});
    }
    frame(object) {
      this.onmessage?.({ data: JSON.stringify(object) });
    }
    error() {
      this.onerror?.({ type: 'error' });
    }
    drop(code = 1006, reason = '') {
      this.onclose?.({ code, reason });
    }
    lastRequest(op) {
      return this.sent.filter((m) => m.op === op).at(-1);
    }
    requests(op) {
      return this.sent.filter((m) => m.op === op);
    }
  }
  return { sockets, ScriptedSocket };
}
