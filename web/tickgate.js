// tickgate client library: one WebSocket to a tickgate gateway, kept alive,
// holding the latest quote of every subscribed symbol.
//
// An ES module with no dependencies. Works in browsers and in Node 20 (pass
// the `ws` package as the `WebSocket` option there; Node 22 has a global one).
//
//   import { TickgateClient } from './tickgate.js';
//   const client = new TickgateClient('ws://127.0.0.1:8080/ws');
//   client.on('quote', (state) => console.log(state.symbol, state.quote.last));
//   await client.connect();
//   await client.subscribe(['AAPL', 'MSFT']);
//
// What it handles for you:
// - `subscribe`/`unsubscribe` return promises settled by the gateway's acks
//   and `error` frames carrying the same request id (see `subscribe` below).
// - `snapshot` and `update` quotes are merged field by field into one state
//   per symbol, in `seq` order: a quote whose `seq` is not newer than the one
//   held is dropped, so a symbol never rolls back to an older value.
// - A heartbeat watchdog: no frame for `heartbeatTimeoutMs` means the link is
//   dead; the socket is dropped and a new one opened.
// - Reconnect with capped exponential backoff and jitter; every symbol is
//   subscribed again on the new connection and reconciled by `seq` and `ts`
//   (see `RECONCILIATION` in docs/web.md and `#accept` below).
// - Stale/live per symbol, from the gateway's `status` frames, from data age
//   and from the connection being down.
// - Trading halts per symbol (`trading` frames): the `trading` event,
//   `client.halted` and `SymbolState.trading`.
// - A failed attempt ends on the socket's `error` (Node's built-in WebSocket
//   sends no `close` for a refused connection), and a subscribe acked after
//   its timeout is unsubscribed again so the gateway stops sending it.
// - Trades (`subscribe(symbols, { trades: true })`): every trade in order on
//   the `trades` event, losses announced on `tradesLost`.
// - Viewport priority (`setPriority`), remembered and sent again after every
//   reconnect, and the gateway's slow-consumer notices (`slow` event,
//   `client.slow`); a 4008 close (slow consumer) reconnects like any other.

/** Symbols the gateway accepts: 1-32 of A-Z a-z 0-9 . - _ / : ^ (case-sensitive). */
export const SYMBOL_PATTERN = /^[A-Za-z0-9.\-_/:^]{1,32}$/;

/** Connection states, in the order a healthy client goes through them. */
export const STATES = Object.freeze(['closed', 'connecting', 'open', 'reconnecting']);

/** Symbol ranks for the slow-consumer ladder, lowest first (docs/protocol.md). */
export const PRIORITIES = Object.freeze(['background', 'normal', 'visible']);

/** Close code of a connection the gateway dropped as a slow consumer. */
export const CLOSE_SLOW_CONSUMER = 4008;

/** Quote fields the gateway may send, besides `symbol` and `seq`. */
export const QUOTE_FIELDS = Object.freeze([
  'bid', 'ask', 'bid_size', 'ask_size', 'last', 'last_size', 'volume',
  'open', 'high', 'low', 'prev_close', 'change', 'change_pct', 'ts',
]);

const DEFAULTS = Object.freeze({
  heartbeatTimeoutMs: 15_000,
  connectTimeoutMs: 10_000,
  requestTimeoutMs: 10_000,
  staleAfterMs: 30_000,
  stableAfterMs: 5_000,
  validateSymbols: true,
  acknowledgeEvery: 0,
  reconnect: Object.freeze({ initialDelayMs: 250, maxDelayMs: 10_000, factor: 2, jitter: 0.5 }),
});

/** Timed-out subscribes remembered per connection, to undo a late ack (oldest forgotten first). */
const LATE_ACKS_KEPT = 256;

/** Trading states of the gateway's `trading` frames. */
export const TRADING_STATES = Object.freeze(['trading', 'halted']);

/** Browsers only allow 1000 and 3000-4999 as close codes sent by a client. */
const CLOSE_HEARTBEAT_TIMEOUT = 4000;

/** Returns null when `symbol` is acceptable to the gateway, else a reason. */
/** The WebSocket subprotocol of the gateway's binary encoding (docs/protocol.md). */
export const BINARY_SUBPROTOCOL = 'tickgate.v1.bin';

/** Fields a binary quote or trade may carry as an integer scaled by its `px`. */
const SCALED_PRICES = new Set(['bid', 'ask', 'last', 'open', 'high', 'low', 'prev_close', 'change', 'price']);

/**
 * Turns one decoded binary message (a MessagePack map, already decoded to
 * an object) back into the JSON protocol's message, in place: learns the
 * `defs` table into `ids` (id -> symbol, one Map per connection), puts
 * `symbol` back for `s`, and divides scaled prices by 10^`px`. Throws a
 * `bad_frame` TickgateError for an id the connection was never told.
 */
export function expandBinary(message, ids) {
  if (Array.isArray(message.defs)) {
    for (const entry of message.defs) {
      if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[1] !== 'string') {
        throw new TickgateError('bad_frame', 'malformed symbol table in a binary frame');
      }
      ids.set(Number(entry[0]), entry[1]);
    }
    delete message.defs;
  }
  for (const key of ['quotes', 'trades']) {
    const list = message[key];
    if (!Array.isArray(list)) continue;
    for (let i = 0; i < list.length; i += 1) {
      const quote = list[i];
      if (!quote || typeof quote !== 'object') continue;
      // A new object rather than `delete` on the decoded one: deleting keys
      // turns an object into a slow dictionary in every JS engine.
      let symbol;
      if (quote.s !== undefined) {
        symbol = ids.get(Number(quote.s));
        if (symbol === undefined) throw new TickgateError('bad_frame', `binary frame names unknown symbol id ${quote.s}`);
      }
      const px = Number.isInteger(quote.px) && quote.px > 0 && quote.px <= 9 ? quote.px : 0;
      const scale = 10 ** px;
      const out = symbol === undefined ? {} : { symbol };
      for (const field in quote) {
        if (field === 's' || field === 'px') continue;
        const value = quote[field];
        out[field] = px > 0 && SCALED_PRICES.has(field) && Number.isInteger(value) ? value / scale : value;
      }
      list[i] = out;
    }
  }
  return message;
}

export function symbolError(symbol) {
  if (typeof symbol !== 'string' || symbol.length === 0) return 'empty symbol';
  if (symbol.length > 32) return 'longer than 32 characters';
  if (!SYMBOL_PATTERN.test(symbol)) return 'only letters, digits and . - _ / : ^ are allowed';
  return null;
}

/**
 * An `error` frame from the gateway, or a local failure of a request
 * (`code` is then `timeout`, `closed` or `invalid_symbol` for a symbol that
 * failed local validation and was never sent).
 */
export class TickgateError extends Error {
  constructor(code, message, { id, symbols, op, errors } = {}) {
    super(message);
    this.name = 'TickgateError';
    this.code = code;
    this.id = id;
    this.symbols = symbols ?? [];
    this.op = op;
    this.errors = errors ?? [this];
  }
}

/**
 * Delay before reconnect attempt number `attempt` (0-based): exponential,
 * capped at `maxDelayMs`, with up to `jitter` of it taken off at random so
 * many dashboards reconnecting after a gateway restart spread out.
 */
export function backoffDelay(attempt, options = DEFAULTS.reconnect, random = Math.random) {
  const { initialDelayMs, maxDelayMs, factor, jitter } = { ...DEFAULTS.reconnect, ...options };
  const ceiling = Math.min(maxDelayMs, initialDelayMs * factor ** Math.min(attempt, 64));
  return Math.round(ceiling * (1 - jitter * random()));
}

export class TickgateClient {
  /**
   * @param {string} url `ws://host:port/ws` or `wss://…`
   * @param {object} [options] see tickgate.d.ts `ClientOptions`
   */
  constructor(url, options = {}) {
    this.url = url;
    this.options = {
      ...DEFAULTS,
      ...options,
      reconnect: { ...DEFAULTS.reconnect, ...(options.reconnect ?? {}) },
    };
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (typeof this.WebSocket !== 'function') {
      throw new TypeError('no WebSocket constructor: pass { WebSocket } (for example the `ws` package in Node 20)');
    }
    /** @type {'closed'|'connecting'|'open'|'reconnecting'} */
    this.state = 'closed';
    /** Symbols this client wants; sent again after every reconnect. */
    this.desired = new Set();
    /** Latest state per symbol. */
    this.quotes = new Map();
    /** Feed name -> last `status` state seen. */
    this.feeds = new Map();
    /** Symbol -> rank sent with `setPriority` (or the `priority` subscribe option); sent again after every reconnect. */
    this.priorities = new Map();
    /** The gateway's slow-consumer state of this connection: null, or the `slowed` notices since the last `restored`. */
    this.slow = null;
    /** Counters for dashboards and tests. */
    this.stats = {
      frames: 0, quotes: 0, dropped: 0, conflated: 0, rebased: 0, reconnects: 0,
      trades: 0, tradesLost: 0, slowNotices: 0, slowConsumerCloses: 0,
    };
    /** Close code and reason of the last connection that ended. */
    this.lastClose = null;

    this._tradeSymbols = new Set(); // desired symbols subscribed with `trades`

    this._listeners = new Map();
    this._symbolListeners = new Map();
    this._socket = null;
    this._epoch = 0; // one per WebSocket opened
    // The gateway's epoch (docs/protocol.md, Epochs) from the last `subscribed`
    // reply: seqs compare only within one.
    this._gatewayEpoch = null;
    this._nextId = 1;
    this._pending = new Map(); // id -> in-flight request
    // Subscribes that timed out on the current socket, id -> symbols: if the
    // gateway acks one late, what it took and we no longer want is
    // unsubscribed. Emptied when the socket ends; at most LATE_ACKS_KEPT.
    this._timedOut = new Map();
    /** Symbols the gateway reported halted (`trading` frames), symbol -> Date.now() of the halt. */
    this.halted = new Map();
    // After a resubscription: symbols held as halted that the gateway has not
    // confirmed yet (it repeats a halt right after the snapshot).
    this._haltsToConfirm = null;
    this._waiting = []; // requests made while no socket was open
    this._attempt = 0;
    this._lastFrameAt = 0;
    this._timers = { reconnect: null, watchdog: null, stable: null, connect: null, stale: null };
    this._connectWaiters = [];
  }

  // ---- events ------------------------------------------------------------

  /** Adds a listener; returns a function that removes it. */
  on(type, listener) {
    let set = this._listeners.get(type);
    if (!set) this._listeners.set(type, (set = new Set()));
    set.add(listener);
    return () => this.off(type, listener);
  }

  off(type, listener) {
    this._listeners.get(type)?.delete(listener);
  }

  /** Listens to changes of one symbol only; returns a remover. */
  onSymbol(symbol, listener) {
    let set = this._symbolListeners.get(symbol);
    if (!set) this._symbolListeners.set(symbol, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this._symbolListeners.get(symbol) === set) this._symbolListeners.delete(symbol);
    };
  }

  _emit(type, ...args) {
    const set = this._listeners.get(type);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(...args);
      } catch (err) {
        if (type !== 'listenerError') this._emit('listenerError', err, type);
      }
    }
  }

  _emitSymbol(symbol, ...args) {
    const set = this._symbolListeners.get(symbol);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(...args);
      } catch (err) {
        this._emit('listenerError', err, 'symbol');
      }
    }
  }

  // ---- connection ---------------------------------------------------------

  /** Opens the connection; resolves once it is open (it keeps retrying). */
  connect() {
    const opened = new Promise((resolve, reject) => {
      if (this.state === 'open') resolve();
      else this._connectWaiters.push({ resolve, reject });
    });
    if (this.state === 'closed') {
      this._attempt = 0;
      this._startStaleTimer();
      this._open('connecting');
    }
    return opened;
  }

  /** Closes for good: no reconnect. Pending requests reject with `closed`. */
  close(code = 1000, reason = 'client closed') {
    if (this.state === 'closed') return;
    this._clearTimers();
    const socket = this._socket;
    this._socket = null;
    if (socket) {
      this._detach(socket);
      try {
        socket.close(code, reason);
      } catch {
        // already closing
      }
    }
    const err = new TickgateError('closed', 'client closed');
    this._failPending(err);
    for (const waiter of this._waiting.splice(0)) waiter.reject(err);
    for (const waiter of this._connectWaiters.splice(0)) waiter.reject(err);
    this._markAllStale('disconnected');
    this._setState('closed', { code, reason });
  }

  _socketUrl() {
    if (!this.options.token) return this.url;
    const sep = this.url.includes('?') ? '&' : '?';
    return `${this.url}${sep}token=${encodeURIComponent(this.options.token)}`;
  }

  _open(state) {
    this._setState(state, { attempt: this._attempt, dialing: true });
    let socket;
    try {
      const binary = this.options.binary?.decode;
      socket = binary
        ? new this.WebSocket(this._socketUrl(), [BINARY_SUBPROTOCOL])
        : new this.WebSocket(this._socketUrl());
      if (binary) socket.binaryType = 'arraybuffer';
    } catch (err) {
      this._emit('error', new TickgateError('connect_failed', String(err?.message ?? err)));
      this._scheduleReconnect();
      return;
    }
    this._socket = socket;
    this._binaryIds = new Map();
    // Messages read on this socket, and the count last acknowledged.
    this._received = 0;
    this._acknowledged = 0;
    this._epoch += 1;
    this._timers.connect = setTimeout(() => {
      if (this._socket === socket && this.state !== 'open') this._drop(socket, 4001, 'connect timeout');
    }, this.options.connectTimeoutMs);
    socket.onopen = () => {
      if (this._socket !== socket) return;
      clearTimeout(this._timers.connect);
      this._onOpen();
    };
    socket.onmessage = (event) => {
      if (this._socket !== socket) return;
      this._received += 1;
      if (typeof event.data === 'string') this._onFrame(event.data);
      else if (this.options.binary?.decode) this._onBinaryFrame(event.data);
      else this._onFrame(String(event.data));
      if (this._socket === socket) this._acknowledge();
    };
    socket.onerror = () => {
      // A failed attempt or a broken link. Browsers and `ws` follow with
      // `onclose`, but Node's built-in WebSocket (undici) fires only `error`
      // for a refused connection: waiting for a close that never comes would
      // hold every attempt for the whole connect timeout. Drop the socket
      // now; a close that still follows is ignored (the socket is detached).
      if (this._socket !== socket) return;
      const opened = this.state === 'open';
      if (!opened) this._emit('error', new TickgateError('connect_failed', `cannot connect to ${this.url}`));
      this._drop(socket, 1006, opened ? 'socket error' : 'connection failed');
    };
    socket.onclose = (event) => {
      if (this._socket !== socket) return;
      this._drop(socket, event?.code ?? 1006, event?.reason ?? '');
    };
  }

  _onOpen() {
    clearTimeout(this._timers.reconnect);
    this._lastFrameAt = Date.now();
    this._armWatchdog();
    this._timers.stable = setTimeout(() => {
      this._attempt = 0;
    }, this.options.stableAfterMs);
    const wasReconnect = this.state === 'reconnecting';
    if (wasReconnect) this.stats.reconnects += 1;
    this.slow = null; // the ladder is per connection
    this._setState('open', { reconnected: wasReconnect });
    // Feed status is per connection: the gateway reports stale feeds to each
    // new connection, and age-based staleness covers the rest.
    for (const held of this.quotes.values()) {
      held.feedState = null;
      held.quoteStale = false;
    }
    this._markAllStale();
    for (const waiter of this._connectWaiters.splice(0)) waiter.resolve();
    this._resync();
  }

  /** The socket is gone (closed by the peer, or judged dead by us). */
  _drop(socket, code, reason) {
    if (this._socket !== socket) return;
    this._socket = null;
    this._detach(socket);
    try {
      socket.close(code >= 3000 && code < 5000 ? code : 1000, reason);
    } catch {
      // already closed
    }
    clearTimeout(this._timers.watchdog);
    clearTimeout(this._timers.stable);
    clearTimeout(this._timers.connect);
    const slowConsumer = code === CLOSE_SLOW_CONSUMER;
    this.lastClose = { code, reason, slowConsumer };
    this.slow = null;
    // Requests in flight are answered by the resubscription on the next socket.
    const requeue = new Set();
    for (const request of this._pending.values()) {
      clearTimeout(request.timer);
      if (request.op === 'ping') request.reject(new TickgateError('closed', 'connection lost', { id: request.id, op: 'ping' }));
      else if (request.waiters) for (const w of request.waiters) requeue.add(w);
      else if (!request.internal) requeue.add(request);
    }
    this._waiting.push(...requeue);
    this._pending.clear();
    this._timedOut.clear(); // a new connection holds nothing
    this._markAllStale('disconnected');
    if (slowConsumer) {
      // The gateway gave up on this connection (it stopped reading); the
      // reconnect below works like after any other close.
      this.stats.slowConsumerCloses += 1;
      this._emit('error', new TickgateError('slow_consumer', reason || 'closed by the gateway as a slow consumer'));
    }
    this._emit('disconnect', { code, reason, slowConsumer });
    this._scheduleReconnect();
  }

  _detach(socket) {
    socket.onopen = socket.onmessage = socket.onerror = socket.onclose = null;
    // Keep an error listener so a late socket error is never unhandled (Node `ws`).
    if (typeof socket.on === 'function') socket.on('error', () => {});
  }

  _scheduleReconnect() {
    const delayMs = backoffDelay(this._attempt, this.options.reconnect);
    this._attempt += 1;
    this._setState('reconnecting', { attempt: this._attempt, delayMs, ...(this.lastClose ?? {}) });
    clearTimeout(this._timers.reconnect);
    this._timers.reconnect = setTimeout(() => this._open('reconnecting'), delayMs);
  }

  _armWatchdog() {
    clearTimeout(this._timers.watchdog);
    const timeout = this.options.heartbeatTimeoutMs;
    if (!(timeout > 0)) return;
    // Check at a third of the timeout; at half of it, ask for a pong so even a
    // gateway that sends no heartbeats keeps a healthy link alive.
    const check = () => {
      const socket = this._socket;
      if (!socket || this.state !== 'open') return;
      const silentFor = Date.now() - this._lastFrameAt;
      if (silentFor >= timeout) {
        this._emit('error', new TickgateError('heartbeat_timeout', `no frame for ${silentFor} ms`));
        this._drop(socket, CLOSE_HEARTBEAT_TIMEOUT, 'heartbeat timeout');
        return;
      }
      if (silentFor >= timeout / 2) this._send({ op: 'ping', id: this._nextId++ });
      this._timers.watchdog = setTimeout(check, Math.max(50, timeout / 3));
      this._timers.watchdog.unref?.();
    };
    this._timers.watchdog = setTimeout(check, Math.max(50, timeout / 3));
    this._timers.watchdog.unref?.();
  }

  _setState(state, detail = {}) {
    const previous = this.state;
    this.state = state;
    if (previous !== state || state === 'reconnecting') this._emit('state', { state, previous, ...detail });
  }

  _clearTimers() {
    for (const key of Object.keys(this._timers)) {
      clearTimeout(this._timers[key]);
      clearInterval(this._timers[key]);
      this._timers[key] = null;
    }
  }

  /**
   * Tells the gateway how many messages this socket has read, every
   * `acknowledgeEvery` of them: the gateway then keeps at most its window
   * unacknowledged and sends the latest values after that, not a backlog
   * (docs/protocol.md, Acknowledgements).
   */
  _acknowledge() {
    const every = this.options.acknowledgeEvery;
    if (!every || this._received - this._acknowledged < every) return;
    if (this._send({ op: 'ack', frames: this._received })) this._acknowledged = this._received;
  }

  _send(message) {
    const socket = this._socket;
    if (!socket || this.state !== 'open') return false;
    try {
      socket.send(JSON.stringify(message));
      return true;
    } catch {
      return false;
    }
  }

  // ---- requests -------------------------------------------------------------

  /**
   * Subscribes to `symbols`. Resolves with `{ symbols, noData, rejected }`
   * once the gateway acks: `symbols` are now subscribed, `noData` have no
   * quote yet (they arrive later as updates), `rejected` are the errors for
   * the symbols the gateway refused. Rejects with a TickgateError when
   * nothing could be subscribed (every symbol refused, or the whole request
   * refused, e.g. `rate_limited`); its `errors` lists every error frame.
   * Symbols that fail local validation are never sent; they appear in
   * `rejected` with code `invalid_symbol`.
   * While disconnected, the request waits and is answered by the
   * resubscription after the next connect.
   *
   * `options` apply to these symbols (subscribing again to a held symbol
   * replaces them, as on the gateway):
   * - `trades`: every trade of these symbols on the `trades` event
   *   (default: the `delivery.trades` client option, else false);
   * - `priority`: `visible`, `normal` or `background`, their rank for the
   *   slow-consumer ladder (see `setPriority`). Without it a held symbol
   *   goes back to `normal`.
   */
  subscribe(symbols, options = {}) {
    const rank = options?.priority;
    if (rank !== undefined && !PRIORITIES.includes(rank)) {
      return Promise.reject(new TickgateError('bad_request', `priority must be one of ${PRIORITIES.join(', ')}`, { op: 'subscribe' }));
    }
    return this._request('subscribe', symbols, options ?? {});
  }

  /**
   * Ranks subscribed symbols for the gateway's slow-consumer ladder:
   * `{ visible, normal, background }`, each a list of symbols (give the ones
   * that change). Under pressure the gateway slows `background` first and
   * keeps `visible` at full rate as long as it can; ranking also opts this
   * connection into `slow` notices. Resolves with the gateway's reply
   * `{ visible, normal, background, rejected }` (the symbols it ranked, and
   * errors such as `not_subscribed` for the others); rejects when nothing
   * was ranked. The ranks are remembered (`priorities`) and sent again after
   * every reconnect, once the symbols are subscribed again. While
   * disconnected, the call is answered by that re-send.
   */
  setPriority(ranks) {
    if (!ranks || typeof ranks !== 'object') {
      return Promise.reject(new TickgateError('bad_request', 'setPriority takes { visible, normal, background }', { op: 'priority' }));
    }
    const lists = { visible: [], normal: [], background: [] };
    const localErrors = [];
    const ranked = new Map();
    // The gateway applies the lists in this order: a symbol in two takes the last.
    for (const rank of ['visible', 'normal', 'background']) {
      const given = ranks[rank];
      if (given === undefined || given === null) continue;
      for (const symbol of new Set(Array.isArray(given) ? given : [given])) {
        const reason = this._symbolProblem(symbol);
        if (reason) localErrors.push(new TickgateError('invalid_symbol', `${String(symbol)}: ${reason}`, { symbols: [String(symbol)], op: 'priority' }));
        else ranked.set(symbol, rank);
      }
    }
    if (ranked.size === 0) {
      const first = localErrors[0] ?? new TickgateError('bad_request', 'setPriority needs symbols in visible, normal or background', { op: 'priority' });
      return Promise.reject(new TickgateError(first.code, first.message, { symbols: first.symbols, op: 'priority', errors: localErrors }));
    }
    const previous = new Map();
    for (const [symbol, rank] of ranked) {
      previous.set(symbol, this.priorities.get(symbol));
      this.priorities.set(symbol, rank);
      lists[rank].push(symbol);
    }
    return new Promise((resolve, reject) => {
      const request = { op: 'priority', lists, symbols: [...ranked.keys()], previous, errors: [...localErrors], resolve, reject };
      if (this.state === 'open') this._sendRequest(request);
      else this._waiting.push(request);
    });
  }

  /** Unsubscribes; resolves with `{ symbols, rejected }` like `subscribe`. */
  unsubscribe(symbols) {
    return this._request('unsubscribe', symbols);
  }

  /** Round trip to the gateway: resolves with `{ ts, rttMs }`. */
  ping() {
    return new Promise((resolve, reject) => {
      const id = this._nextId++;
      const sentAt = Date.now();
      if (!this._send({ op: 'ping', id })) {
        reject(new TickgateError('closed', 'not connected', { id, op: 'ping' }));
        return;
      }
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new TickgateError('timeout', 'no pong', { id, op: 'ping' }));
      }, this.options.requestTimeoutMs);
      this._pending.set(id, { id, op: 'ping', sentAt, resolve, reject, timer, errors: [] });
    });
  }

  _symbolProblem(symbol) {
    return this.options.validateSymbols ? symbolError(symbol) : (typeof symbol === 'string' ? null : 'not a string');
  }

  _request(op, input, options = {}) {
    const list = Array.isArray(input) ? input : [input];
    const symbols = [];
    const localErrors = [];
    for (const symbol of new Set(list)) {
      const reason = this._symbolProblem(symbol);
      if (reason) localErrors.push(new TickgateError('invalid_symbol', `${String(symbol)}: ${reason}`, { symbols: [String(symbol)], op }));
      else symbols.push(symbol);
    }
    if (symbols.length === 0) {
      const first = localErrors[0] ?? new TickgateError('bad_request', 'no symbols', { op });
      return Promise.reject(new TickgateError(first.code, first.message, { symbols: first.symbols, op, errors: localErrors }));
    }
    let added = [];
    let previous;
    const trades = op === 'subscribe' && Boolean(options.trades ?? this.options.delivery?.trades ?? false);
    const priority = op === 'subscribe' ? options.priority : undefined;
    if (op === 'subscribe') {
      added = symbols.filter((s) => !this.desired.has(s));
      // What the gateway will hold for these symbols once it acks; put back
      // for held symbols if it refuses the whole request.
      previous = new Map(symbols.map((s) => [s, { trades: this._tradeSymbols.has(s), priority: this.priorities.get(s) }]));
      for (const s of symbols) {
        this.desired.add(s);
        if (trades) this._tradeSymbols.add(s);
        else this._tradeSymbols.delete(s);
        // Without a `priority` option the gateway keeps a held symbol's rank.
        if (priority) this.priorities.set(s, priority);
      }
    } else {
      for (const s of symbols) this._forget(s);
    }
    return new Promise((resolve, reject) => {
      const request = { op, symbols, added, previous, trades, priority, errors: [...localErrors], resolve, reject };
      if (this.state === 'open') this._sendRequest(request);
      else this._waiting.push(request);
    });
  }

  _sendRequest(request) {
    request.id = this._nextId++;
    request.timer = setTimeout(() => this._timeout(request.id), this.options.requestTimeoutMs);
    this._pending.set(request.id, request);
    let message;
    if (request.op === 'priority') {
      message = { op: 'priority', id: request.id };
      for (const rank of ['visible', 'normal', 'background']) if (request.lists[rank].length > 0) message[rank] = request.lists[rank];
    } else {
      message = { op: request.op, symbols: request.symbols, id: request.id };
      if (request.op === 'subscribe') Object.assign(message, this._deliveryOptions(request));
    }
    this._send(message);
  }

  /**
   * The gateway's opt-in delivery options (docs/protocol.md): `maxRate`,
   * `delta`, `meta` from the `delivery` option, and on a reconnect with
   * `resume` the seq held per symbol, so the snapshot carries only what
   * changed. Deltas need no special handling: quotes merge field by field
   * and `null` removes a field.
   */
  _deliveryOptions(request) {
    const delivery = this.options.delivery ?? {};
    const extra = {};
    if (delivery.maxRate) extra.max_rate = delivery.maxRate;
    if (delivery.delta) extra.delta = true;
    if (delivery.meta) extra.meta = true;
    if (request.trades) extra.trades = true;
    if (request.priority) extra.priority = request.priority;
    if (this.options.resume && request.internal) {
      // Only seqs from the gateway epoch last seen can be compared; the
      // gateway answers a resume from any other epoch with full quotes.
      const resume = {};
      for (const symbol of request.symbols) {
        const held = this.quotes.get(symbol);
        if (held && Number.isInteger(held.seq) && held.gatewayEpoch === this._gatewayEpoch) resume[symbol] = held.seq;
      }
      if (Object.keys(resume).length > 0 && this._gatewayEpoch) {
        extra.resume = resume;
        extra.epoch = this._gatewayEpoch;
      }
    }
    return extra;
  }

  _timeout(id) {
    const request = this._pending.get(id);
    if (!request) return;
    this._pending.delete(id);
    if (request.op === 'subscribe') {
      this._timedOut.set(id, request.symbols);
      if (this._timedOut.size > LATE_ACKS_KEPT) this._timedOut.delete(this._timedOut.keys().next().value);
    }
    this._settle(request, null, new TickgateError('timeout', `no reply to ${request.op} within ${this.options.requestTimeoutMs} ms`, { id, op: request.op, symbols: request.symbols }));
  }

  /**
   * On every (re)connect: one subscribe for everything wanted (two when some
   * symbols take trades and others do not), then, once acked, one `priority`
   * request with every remembered rank. They answer the requests that were
   * waiting for a connection; unsubscribes that were waiting resolve at once
   * (a new connection holds nothing).
   */
  _resync() {
    const waiting = this._waiting.splice(0);
    for (const request of waiting.filter((r) => r.op === 'unsubscribe')) {
      request.resolve({ symbols: request.symbols, rejected: request.errors });
    }
    const waiters = waiting.filter((r) => r.op === 'subscribe');
    const priorityWaiters = waiting.filter((r) => r.op === 'priority');
    if (this.desired.size === 0) {
      for (const w of waiters) w.reject(new TickgateError('closed', 'unsubscribed before the connection opened', { op: 'subscribe', symbols: w.symbols }));
      this._answerPriorityWaiters(priorityWaiters, null, null);
      return;
    }
    const all = [...this.desired];
    const groups = [
      { trades: false, symbols: all.filter((s) => !this._tradeSymbols.has(s)) },
      { trades: true, symbols: all.filter((s) => this._tradeSymbols.has(s)) },
    ].filter((group) => group.symbols.length > 0);
    // Every request of this resync carries all its waiters, so whichever is
    // still in flight when the link drops hands them to the next resync.
    const carried = [...waiters, ...priorityWaiters];
    const outcomes = [];
    const settled = () => {
      if (outcomes.length < groups.length) return;
      const ok = outcomes.filter((o) => o.result);
      const failures = outcomes.filter((o) => o.err).map((o) => o.err);
      const failed = failures.flatMap((e) => e.errors ?? [e]);
      const result = ok.length === 0 ? null : {
        symbols: ok.flatMap((o) => o.result.symbols),
        noData: ok.flatMap((o) => o.result.noData),
        rejected: [...ok.flatMap((o) => o.result.rejected), ...failed],
      };
      const err = result ? null : new TickgateError(failures[0].code, failures[0].message, { op: 'subscribe', errors: failed });
      this._answerWaiters(waiters, result, err);
      this._restorePriorities(priorityWaiters);
    };
    for (const group of groups) {
      this._sendRequest({
        op: 'subscribe',
        symbols: group.symbols,
        trades: group.trades,
        added: [],
        errors: [],
        internal: true,
        waiters: carried,
        resolve: (result) => (outcomes.push({ result }), settled()),
        reject: (err) => (outcomes.push({ err }), settled()),
      });
    }
  }

  /** After a resubscription: ranks every remembered symbol again. */
  _restorePriorities(waiters) {
    if (this.state !== 'open') {
      this._waiting.push(...waiters);
      return;
    }
    const lists = { visible: [], normal: [], background: [] };
    for (const [symbol, rank] of this.priorities) {
      if (this.desired.has(symbol)) lists[rank].push(symbol);
      else this.priorities.delete(symbol);
    }
    const symbols = [...lists.visible, ...lists.normal, ...lists.background];
    if (symbols.length === 0) {
      this._answerPriorityWaiters(waiters, null, null);
      return;
    }
    this._sendRequest({
      op: 'priority',
      lists,
      symbols,
      previous: new Map(),
      errors: [],
      internal: true,
      waiters,
      resolve: (result) => this._answerPriorityWaiters(waiters, result, null),
      reject: (err) => this._answerPriorityWaiters(waiters, null, err),
    });
  }

  _answerPriorityWaiters(waiters, result, err) {
    for (const w of waiters) {
      const mine = new Set(w.symbols);
      const errors = [...w.errors, ...(result?.rejected ?? err?.errors ?? []).filter((e) => e.symbols.length === 0 || e.symbols.some((s) => mine.has(s)))];
      const lists = {};
      for (const rank of ['visible', 'normal', 'background']) lists[rank] = (result?.[rank] ?? []).filter((s) => mine.has(s));
      // Symbols no longer subscribed were left out of the re-send.
      const answered = new Set([...lists.visible, ...lists.normal, ...lists.background, ...errors.flatMap((e) => e.symbols)]);
      const missing = w.symbols.filter((s) => !answered.has(s) && !this.desired.has(s));
      if (missing.length > 0) errors.push(new TickgateError('not_subscribed', 'not subscribed', { symbols: missing, op: 'priority' }));
      if (lists.visible.length + lists.normal.length + lists.background.length > 0) {
        w.resolve({ ...lists, rejected: errors });
        continue;
      }
      const first = errors[0] ?? err ?? new TickgateError('not_subscribed', 'none of these symbols is subscribed', { op: 'priority', symbols: w.symbols });
      w.reject(new TickgateError(first.code, first.message, { id: first.id, symbols: first.symbols, op: 'priority', errors: errors.length > 0 ? errors : [first] }));
    }
  }

  _answerWaiters(waiters, result, err) {
    for (const w of waiters) {
      const mine = new Set(w.symbols);
      const errors = [...w.errors, ...(result?.rejected ?? err?.errors ?? []).filter((e) => e.symbols.length === 0 || e.symbols.some((s) => mine.has(s)))];
      const ok = result ? result.symbols.filter((s) => mine.has(s) && this.desired.has(s)) : [];
      if (ok.length > 0) w.resolve({ symbols: ok, noData: result.noData.filter((s) => mine.has(s)), rejected: errors });
      else {
        const first = errors[0] ?? err ?? new TickgateError('closed', 'not subscribed', { op: 'subscribe' });
        w.reject(new TickgateError(first.code, first.message, { id: first.id, symbols: first.symbols, op: 'subscribe', errors }));
      }
    }
  }

  /** Settles `request` with an ack (`reply`) or a failure (`failure`). */
  _settle(request, reply, failure) {
    clearTimeout(request.timer);
    if (request.op === 'ping') {
      if (reply) request.resolve({ ts: reply.ts, rttMs: Date.now() - request.sentAt });
      else request.reject(failure);
      return;
    }
    const refused = new Set(request.errors.flatMap((e) => e.symbols));
    if (failure && request.op === 'subscribe') {
      // The whole request was refused: drop what it added, keep older wishes.
      for (const s of request.added) if (!refused.has(s)) this._forget(s);
      for (const [s, before] of request.previous ?? []) {
        if (!this.desired.has(s) || refused.has(s) || request.added.includes(s)) continue;
        if (before.trades) this._tradeSymbols.add(s);
        else this._tradeSymbols.delete(s);
        if (before.priority) this.priorities.set(s, before.priority);
        else this.priorities.delete(s);
      }
    }
    if (failure && request.op === 'priority' && failure.code !== 'timeout') {
      // Nothing was ranked: put back the ranks this request changed.
      for (const [s, before] of request.previous ?? []) {
        if (refused.has(s)) continue;
        if (before) this.priorities.set(s, before);
        else this.priorities.delete(s);
      }
    }
    if (request.op === 'priority') {
      const lists = {};
      for (const rank of ['visible', 'normal', 'background']) lists[rank] = Array.isArray(reply?.[rank]) ? reply[rank] : [];
      if (reply && lists.visible.length + lists.normal.length + lists.background.length > 0) {
        request.resolve({ ...lists, rejected: request.errors });
        return;
      }
    } else {
      const acked = reply ? (reply.symbols ?? []) : [];
      if (acked.length > 0 || (reply && request.errors.length === 0)) {
        const result = { symbols: acked, rejected: request.errors };
        if (request.op === 'subscribe') result.noData = reply.no_data ?? [];
        request.resolve(result);
        return;
      }
    }
    const errors = failure && !request.errors.includes(failure) ? [...request.errors, failure] : request.errors;
    const first = errors[0] ?? new TickgateError('bad_request', `${request.op} acknowledged nothing`, { id: request.id, op: request.op });
    request.reject(new TickgateError(first.code, first.message, { id: request.id, symbols: first.symbols, op: request.op, errors }));
  }

  _failPending(err) {
    for (const request of this._pending.values()) {
      clearTimeout(request.timer);
      if (request.waiters) for (const w of request.waiters) w.reject(err);
      else if (!request.internal) request.reject(err);
    }
    this._pending.clear();
  }

  /**
   * The gateway answers in order, so a reply to `id` means every older
   * request that got only errors will get no ack: settle those now.
   */
  _settleOlder(id) {
    if (typeof id !== 'number') return;
    for (const [otherId, request] of this._pending) {
      if (otherId >= id || request.errors.length === 0) continue;
      this._pending.delete(otherId);
      this._settle(request, null, request.errors[0] ?? new TickgateError('bad_request', `no reply to ${request.op}`, { id: otherId, op: request.op }));
    }
  }

  // ---- frames -------------------------------------------------------------------

  _onBinaryFrame(data) {
    this._lastFrameAt = Date.now();
    this.stats.frames += 1;
    let frame;
    try {
      const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : data;
      frame = this.options.binary.decode(bytes);
      if (!frame || typeof frame !== 'object' || Array.isArray(frame)) throw new TickgateError('bad_frame', 'a binary frame must be a map');
      expandBinary(frame, this._binaryIds);
    } catch (err) {
      // An id never defined or an undecodable frame: what this connection
      // holds can no longer be trusted; start over on a new one.
      this._emit('error', err instanceof TickgateError ? err : new TickgateError('bad_frame', `undecodable binary frame: ${err?.message ?? err}`));
      if (this._socket) this._drop(this._socket, 4002, 'bad binary frame');
      return;
    }
    this._onMessage(frame);
  }

  _onFrame(text) {
    this._lastFrameAt = Date.now();
    this.stats.frames += 1;
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      this._emit('error', new TickgateError('bad_frame', 'gateway sent a frame that is not JSON'));
      return;
    }
    this._onMessage(frame);
  }

  _onMessage(frame) {
    if (!frame || typeof frame !== 'object') return;
    this._emit('frame', frame);
    switch (frame.type) {
      case 'snapshot':
      case 'update':
        this._onQuotes(frame.quotes, frame.type);
        break;
      case 'subscribed':
      case 'unsubscribed':
      case 'pong':
      case 'priority':
        this._onAck(frame);
        break;
      case 'trades':
        this._onTrades(frame);
        break;
      case 'trades_lost':
        this._onTradesLost(frame);
        break;
      case 'slow':
        this._onSlow(frame);
        break;
      case 'error':
        this._onError(frame);
        break;
      case 'status':
        this._onStatus(frame);
        break;
      case 'trading':
        this._onTrading(frame);
        break;
      case 'heartbeat':
      default:
        break;
    }
    if (frame.type !== 'snapshot' && frame.type !== 'status' && frame.type !== 'trading' && frame.type !== 'subscribed') this._settleHaltsToConfirm();
  }

  _onAck(frame) {
    if (frame.type === 'subscribed' && typeof frame.epoch === 'string') this._gatewayEpoch = frame.epoch;
    this._settleOlder(frame.id);
    if (frame.type === 'subscribed') this._undoLateSubscribe(frame);
    const request = this._pending.get(frame.id);
    if (!request) return;
    if (request.internal && request.op === 'subscribe' && frame.type === 'subscribed') this._expectHaltsRepeated(frame.symbols);
    this._pending.delete(frame.id);
    if (frame.type === 'subscribed' && frame.no_data) {
      for (const s of frame.no_data) {
        const held = this.quotes.get(s);
        if (held) held.noData = true;
      }
    }
    this._settle(request, frame, null);
  }

  /**
   * The gateway acked a subscribe we had already given up on (it timed out
   * and was rejected): it now holds symbols the page was told it does not
   * have, and would send their quotes for nothing. Unsubscribe those that
   * are still unwanted; a symbol subscribed again meanwhile stays.
   */
  _undoLateSubscribe(frame) {
    const asked = this._timedOut.get(frame.id);
    if (!asked) return;
    this._timedOut.delete(frame.id);
    const acked = Array.isArray(frame.symbols) ? frame.symbols : asked;
    const unwanted = acked.filter((s) => typeof s === 'string' && !this.desired.has(s));
    if (unwanted.length === 0) return;
    this._emit('error', new TickgateError('late_ack', `late ack of subscribe ${frame.id}: unsubscribing ${unwanted.join(', ')}`, { id: frame.id, symbols: unwanted, op: 'subscribe' }));
    this._sendRequest({ op: 'unsubscribe', symbols: unwanted, added: [], errors: [], internal: true, resolve: () => {}, reject: () => {} });
  }

  _onError(frame) {
    const err = new TickgateError(frame.code ?? 'unknown', frame.message ?? frame.code ?? 'error', {
      id: frame.id,
      symbols: Array.isArray(frame.symbols) ? frame.symbols : [],
    });
    const request = frame.id === undefined ? undefined : this._pending.get(frame.id);
    if (request) {
      err.op = request.op;
      this._settleOlder(frame.id);
      request.errors.push(err);
      if (err.symbols.length > 0 && request.op === 'subscribe') {
        for (const s of err.symbols) this._forget(s);
      }
      if (err.symbols.length > 0 && request.op === 'priority') {
        // Not ranked by the gateway (not subscribed, or malformed).
        for (const s of err.symbols) if (request.lists && Object.values(request.lists).some((l) => l.includes(s))) this.priorities.delete(s);
      }
      // Without symbols the error is about the whole request: no ack follows.
      // When every symbol was refused, the gateway sends no ack either.
      const refused = new Set(request.errors.flatMap((e) => e.symbols));
      if (err.symbols.length === 0 || request.symbols.every((s) => refused.has(s))) {
        this._pending.delete(frame.id);
        this._settle(request, null, err);
      }
    }
    this._emit('error', err);
  }

  _onStatus(frame) {
    const { feed = '', state } = frame;
    this.feeds.set(feed, state);
    const listed = Array.isArray(frame.symbols) ? frame.symbols : null;
    const targets = listed ?? [...this.quotes.keys()];
    for (const symbol of targets) {
      const held = this.quotes.get(symbol);
      if (!held) continue;
      if (state === 'live') {
        if (listed || held.feedState?.feed === feed) held.feedState = null;
        if (listed) held.quoteStale = false;
      } else {
        held.feedState = { feed, state };
      }
      this._refreshStale(held, Date.now());
    }
    this._emit('status', { feed, state, symbols: listed });
  }

  /**
   * A `trading` frame: `{"type":"trading","state":"halted"|"trading","symbols":[…]}`,
   * sent once per change, and right after the snapshot for a halted symbol
   * a connection subscribes to. Held per symbol in `halted` and on its
   * SymbolState (`trading`, `tradingSince`), even before its first quote.
   */
  _onTrading(frame) {
    const state = frame.state;
    if (!TRADING_STATES.includes(state) || !Array.isArray(frame.symbols)) {
      this._emit('error', new TickgateError('bad_frame', 'trading frame without a known state and a symbol list'));
      return;
    }
    const now = Date.now();
    const changed = [];
    for (const symbol of frame.symbols) {
      if (typeof symbol !== 'string' || !this.desired.has(symbol)) continue;
      this._haltsToConfirm?.delete(symbol);
      if (this._setTrading(symbol, state, now)) changed.push(symbol);
    }
    if (changed.length > 0) this._emit('trading', { state, symbols: changed, at: now });
  }

  /** Records one symbol's trading state; true when it changed. */
  _setTrading(symbol, state, now) {
    const wasHalted = this.halted.has(symbol);
    if ((state === 'halted') === wasHalted) return false;
    if (state === 'halted') this.halted.set(symbol, now);
    else this.halted.delete(symbol);
    const held = this.quotes.get(symbol);
    if (held) {
      held.trading = state;
      held.tradingSince = now;
      this._emitSymbol(symbol, held, { source: 'trading', changed: [], previous: {}, gap: 0, rebased: false });
    }
    return true;
  }

  /**
   * After a resubscription the gateway repeats the halt of every symbol still
   * halted, right after the snapshot. Symbols held as halted that it does not
   * repeat resumed trading while we were away.
   */
  _expectHaltsRepeated(symbols) {
    const acked = new Set(Array.isArray(symbols) ? symbols : []);
    const held = [...this.halted.keys()].filter((s) => acked.has(s));
    if (held.length === 0) return;
    this._haltsToConfirm ??= new Set();
    for (const s of held) this._haltsToConfirm.add(s);
  }

  /** The frames right after the snapshot are over: what was not repeated is trading again. */
  _settleHaltsToConfirm() {
    const pending = this._haltsToConfirm;
    if (!pending) return;
    this._haltsToConfirm = null;
    const now = Date.now();
    const resumed = [...pending].filter((s) => this._setTrading(s, 'trading', now));
    if (resumed.length > 0) this._emit('trading', { state: 'trading', symbols: resumed, at: now });
  }

  /** Trades in feed order; the quote of each symbol at least as new arrived before. */
  _onTrades(frame) {
    if (!Array.isArray(frame.trades)) return;
    const trades = frame.trades.filter((t) => t && typeof t.symbol === 'string' && this.desired.has(t.symbol));
    if (trades.length === 0) return;
    this.stats.trades += trades.length;
    this._emit('trades', trades);
  }

  _onTradesLost(frame) {
    const lost = Number.isFinite(frame.lost) ? frame.lost : 0;
    const symbols = frame.symbols && typeof frame.symbols === 'object' ? frame.symbols : {};
    this.stats.tradesLost += lost;
    this._emit('tradesLost', { lost, symbols });
  }

  /**
   * The slow-consumer ladder: `slowed` notices add up (background, then
   * normal, then visible) in `this.slow` until `restored` clears it. A new
   * connection starts at full rate (`slow` is null again).
   */
  _onSlow(frame) {
    const notice = {
      state: frame.state,
      priority: frame.priority ?? null,
      rateHz: typeof frame.rate_hz === 'number' ? frame.rate_hz : null,
      symbols: Array.isArray(frame.symbols) ? frame.symbols : [],
      behindMs: typeof frame.behind_ms === 'number' ? frame.behind_ms : null,
      message: typeof frame.message === 'string' ? frame.message : '',
      at: Date.now(),
    };
    this.stats.slowNotices += 1;
    if (notice.state === 'slowed') {
      const previous = this.slow;
      const classes = [...(previous?.classes ?? []), { priority: notice.priority, rateHz: notice.rateHz, symbols: notice.symbols }];
      this.slow = {
        state: 'slowed',
        since: previous?.since ?? notice.at,
        priority: notice.priority,
        rateHz: notice.rateHz,
        symbols: [...new Set(classes.flatMap((c) => c.symbols))],
        classes,
        behindMs: notice.behindMs,
        message: notice.message,
      };
    } else if (notice.state === 'restored') {
      this.slow = null;
    }
    this._emit('slow', notice, this.slow);
  }

  _onQuotes(quotes, source) {
    if (!Array.isArray(quotes)) return;
    const now = Date.now();
    for (const quote of quotes) {
      if (!quote || typeof quote.symbol !== 'string' || !this.desired.has(quote.symbol)) continue;
      this.stats.quotes += 1;
      this._accept(quote, source, now);
    }
  }

  /**
   * Reconciliation by seq. Within one connection a quote is taken only when
   * its `seq` is higher than the one held. The first quote of a symbol on a
   * new connection may carry a LOWER seq if the gateway restarted (or another
   * replica answers): it is taken when its `ts` is newer than the held one,
   * and the held seq is rebased onto it; otherwise it is dropped and the held
   * value stays until the new connection delivers something newer. Either
   * way a symbol never goes back to an older value. A quote from another
   * gateway epoch with the SAME seq is a different value in another seq
   * space (a restarted gateway counts afresh), so it is treated the same way.
   */
  _accept(quote, source, now) {
    const symbol = quote.symbol;
    let held = this.quotes.get(symbol);
    let gap = 0;
    let rebased = false;
    if (held && held.seq !== undefined) {
      const seq = quote.seq;
      if (typeof seq === 'number' && seq > held.seq) {
        gap = held.epoch === this._epoch ? seq - held.seq - 1 : 0;
      } else if (held.epoch !== this._epoch && typeof seq === 'number' && (seq < held.seq || (seq === held.seq && held.gatewayEpoch !== this._gatewayEpoch)) && (quote.ts === undefined || held.quote.ts === undefined || quote.ts > held.quote.ts)) {
        rebased = true;
      } else {
        this.stats.dropped += 1;
        return;
      }
    }
    if (!held) {
      held = {
        symbol,
        quote: { symbol },
        seq: undefined,
        epoch: this._epoch,
        gatewayEpoch: this._gatewayEpoch,
        receivedAt: 0,
        updates: 0,
        conflated: 0,
        stale: false,
        staleReason: null,
        feedState: null,
        quoteStale: false,
        noData: false,
        trading: this.halted.has(symbol) ? 'halted' : 'trading',
        tradingSince: this.halted.get(symbol) ?? null,
      };
      this.quotes.set(symbol, held);
    }
    const changed = [];
    const previous = {};
    for (const key of Object.keys(quote)) {
      if (key === 'symbol') continue;
      const value = quote[key];
      if (held.quote[key] === value) continue;
      previous[key] = held.quote[key];
      if (value === null) delete held.quote[key];
      else held.quote[key] = value;
      changed.push(key);
    }
    if (typeof quote.seq === 'number') held.seq = quote.seq;
    held.epoch = this._epoch;
    held.gatewayEpoch = this._gatewayEpoch;
    held.receivedAt = now;
    held.updates += 1;
    held.conflated += gap;
    held.noData = false;
    // `meta` subscriptions: each quote says whether its feed was live when
    // the gateway sent it, so no status frame needs to be tracked for it.
    if (typeof quote.stale === 'boolean') held.quoteStale = quote.stale;
    this.stats.conflated += gap;
    if (rebased) this.stats.rebased += 1;
    this._refreshStale(held, now);
    const info = { source, changed, previous, gap, rebased };
    this._emitSymbol(symbol, held, info);
    this._emit('quote', held, info);
  }

  /** Removes a symbol from the wanted set and the held state. */
  _forget(symbol) {
    this.desired.delete(symbol);
    this.halted.delete(symbol);
    this._haltsToConfirm?.delete(symbol);
    this.quotes.delete(symbol);
    this._tradeSymbols.delete(symbol);
    this.priorities.delete(symbol);
  }

  /** Whether `symbol` is subscribed with `trades`. */
  hasTrades(symbol) {
    return this._tradeSymbols.has(symbol);
  }

  // ---- staleness ------------------------------------------------------------------

  _startStaleTimer() {
    clearInterval(this._timers.stale);
    if (!(this.options.staleAfterMs > 0)) return;
    const every = Math.min(1000, Math.max(50, this.options.staleAfterMs / 4));
    this._timers.stale = setInterval(() => {
      const now = Date.now();
      for (const held of this.quotes.values()) this._refreshStale(held, now);
    }, every);
    this._timers.stale.unref?.();
  }

  _markAllStale() {
    const now = Date.now();
    for (const held of this.quotes.values()) this._refreshStale(held, now);
  }

  /** Recomputes one symbol's stale flag: disconnected, then feed status, then the quote's own `stale` flag, then age. */
  _refreshStale(held, now) {
    let reason = null;
    if (this.state !== 'open' || !this._socket) reason = 'disconnected';
    else if (held.feedState) reason = held.feedState.state === 'down' ? 'feed_down' : 'feed_stale';
    else if (held.quoteStale) reason = 'feed_not_live';
    else if (this.options.staleAfterMs > 0 && held.receivedAt > 0 && now - held.receivedAt > this.options.staleAfterMs) reason = 'age';
    const stale = reason !== null;
    if (stale === held.stale && reason === held.staleReason) return;
    held.stale = stale;
    held.staleReason = reason;
    const event = { symbol: held.symbol, stale, reason };
    this._emit('stale', event, held);
    this._emitSymbol(held.symbol, held, { source: 'status', changed: [], previous: {}, gap: 0, rebased: false, stale: event });
  }

  /** The held state of `symbol`, if any. */
  get(symbol) {
    return this.quotes.get(symbol);
  }

  /** Milliseconds since the last frame of any kind. */
  get silentForMs() {
    return this._lastFrameAt ? Date.now() - this._lastFrameAt : Infinity;
  }
}
