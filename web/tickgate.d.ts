// Types for tickgate.js, the tickgate client library.

/** Symbols the gateway accepts: 1-32 of A-Z a-z 0-9 . - _ / : ^ (case-sensitive). */
export const SYMBOL_PATTERN: RegExp;

export type ConnectionState = 'closed' | 'connecting' | 'open' | 'reconnecting';
export const STATES: readonly ConnectionState[];

/** Quote fields the gateway may send besides `symbol` and `seq`. */
export const QUOTE_FIELDS: readonly (keyof Quote)[];

/** A symbol's rank for the gateway's slow-consumer ladder. */
export type Priority = 'background' | 'normal' | 'visible';
/** The ranks, lowest first. */
export const PRIORITIES: readonly Priority[];

/** Close code of a connection the gateway dropped as a slow consumer (it stopped reading). */
export const CLOSE_SLOW_CONSUMER: 4008;

/** Error codes sent by the gateway in `error` frames. */
export type GatewayErrorCode =
  | 'bad_request'
  | 'unknown_op'
  | 'invalid_symbol'
  | 'too_many_subscriptions'
  | 'not_entitled'
  | 'rate_limited'
  | 'unauthorized'
  | 'not_subscribed'; // setPriority named symbols the connection does not hold

/** Codes produced by the library itself. */
export type LocalErrorCode =
  | 'timeout'           // no reply within requestTimeoutMs
  | 'closed'            // close() was called, or the connection went away (ping)
  | 'heartbeat_timeout' // the watchdog judged the link dead (error event only)
  | 'connect_failed'    // the WebSocket constructor threw (error event only)
  | 'bad_frame'         // the gateway sent something that is not JSON, or a frame it cannot read (error event only)
  | 'late_ack'          // a subscribe that timed out was acked later; its symbols are unsubscribed again (error event only)
  | 'slow_consumer';    // the gateway closed the link with 4008 (error event only; a reconnect follows)

export type ErrorCode = GatewayErrorCode | LocalErrorCode | (string & {});

/** The latest market state of one symbol. Absent fields are unknown. */
export interface Quote {
  symbol: string;
  /** Per symbol, strictly increasing; a gap counts ticks conflated away. */
  seq?: number;
  bid?: number;
  ask?: number;
  bid_size?: number;
  ask_size?: number;
  last?: number;
  last_size?: number;
  volume?: number;
  open?: number;
  high?: number;
  low?: number;
  prev_close?: number;
  change?: number;
  change_pct?: number;
  /** Microseconds since the Unix epoch of the source event. */
  ts?: number;
  /** `meta` only: ticks of this symbol skipped since the previous quote (0 in a snapshot). */
  conflated?: number;
  /** `meta` only: gateway receive time, µs since the Unix epoch. */
  received_ts?: number;
  /** `meta` only: the feed serving the symbol was not live when the gateway sent this quote. */
  stale?: boolean;
  /** The gateway may add fields; they are merged like the others. */
  [field: string]: unknown;
}

/**
 * Why a symbol is stale. `feed_not_live`: the last quote of a `meta`
 * subscription carried `stale: true` (its feed was stale or down when the
 * gateway sent it) and no `status` frame said more.
 */
export type StaleReason = 'disconnected' | 'feed_stale' | 'feed_down' | 'feed_not_live' | 'age';

/** What the client holds for one subscribed symbol (the same object is updated in place). */
export interface SymbolState {
  symbol: string;
  /** Every field received so far, merged field by field. */
  quote: Quote;
  /** seq of the quote last accepted; undefined before the first one. */
  seq: number | undefined;
  /** Date.now() when the last quote was accepted (0: none yet). */
  receivedAt: number;
  /** Quotes accepted. */
  updates: number;
  /** Ticks the gateway conflated away (sum of seq gaps within a connection). */
  conflated: number;
  stale: boolean;
  staleReason: StaleReason | null;
  /** Set when a `status` frame reported this symbol's feed stale or down. */
  feedState: { feed: string; state: 'stale' | 'down' } | null;
  /**
   * The `stale` flag of the last quote (`meta` subscriptions only): its feed
   * was not live when the gateway sent it. Cleared by a fresh quote, a
   * `status` of `live` naming the symbol, or a reconnect.
   */
  quoteStale: boolean;
  /** The gateway had no quote for it when subscribing; one arrives later. */
  noData: boolean;
  /**
   * Whether the venue halted the symbol (`trading` frames): `'trading'`
   * unless the gateway said `halted`. A halted symbol gets no new quotes;
   * its last quote is the current one.
   */
  trading: TradingState;
  /** Date.now() when `trading` last changed (null: no `trading` frame yet). */
  tradingSince: number | null;
}

/** A symbol's trading state as the gateway reports it. */
export type TradingState = 'trading' | 'halted';
/** The trading states. */
export const TRADING_STATES: readonly TradingState[];

/** A `trading` frame changed the state of these held symbols. */
export interface TradingEvent {
  state: TradingState;
  /** The subscribed symbols whose state changed (never empty). */
  symbols: string[];
  /** Date.now() when it arrived. */
  at: number;
}

export interface QuoteInfo {
  /** 'status' when only the stale flag changed, 'trading' when only the trading state did. */
  source: 'snapshot' | 'update' | 'status' | 'trading';
  /** Fields whose value changed with this quote. */
  changed: string[];
  /** Values of the changed fields before this quote. */
  previous: Partial<Quote>;
  /** Ticks conflated away since the previous quote of this symbol. */
  gap: number;
  /** The quote had a lower seq but a newer ts on a new connection (gateway restart). */
  rebased: boolean;
  stale?: StaleEvent;
}

export interface StateEvent {
  state: ConnectionState;
  previous: ConnectionState;
  /** Reconnect attempt number (1 = first retry). */
  attempt?: number;
  /** Delay before the next attempt, when one was just scheduled. */
  delayMs?: number;
  /** true when a new socket is being opened (as opposed to waiting). */
  dialing?: boolean;
  /** Close code and reason of the connection that ended. */
  code?: number;
  reason?: string;
  /** On 'open': true when this is a reconnect. */
  reconnected?: boolean;
  /** With `code`: true when the gateway closed the link as a slow consumer (4008). */
  slowConsumer?: boolean;
}

/** One trade, as the gateway sends it. */
export interface Trade {
  symbol: string;
  /** The symbol's quote seq once this trade was applied; that quote (or a newer one) arrived before. */
  seq: number;
  price: number;
  /** Absent when the feed gave none. */
  size?: number;
  /** Microseconds since the Unix epoch of the trade at the source. */
  ts: number;
}

/** Trades the gateway dropped from this connection's full trade buffer (the oldest ones). */
export interface TradesLostEvent {
  /** How many, in total. */
  lost: number;
  /** How many per symbol. */
  symbols: Record<string, number>;
}

/** One `slow` frame from the gateway. */
export interface SlowNotice {
  state: 'slowed' | 'restored' | (string & {});
  /** On `slowed`: the class just limited. */
  priority: Priority | null;
  /** On `slowed`: updates per second per symbol of that class. */
  rateHz: number | null;
  /** On `slowed`: the symbols of that class. */
  symbols: string[];
  /** How long the connection had been behind. */
  behindMs: number | null;
  /** The gateway's explanation, for people. */
  message: string;
  /** Date.now() when the notice arrived. */
  at: number;
}

/** `client.slow` while the gateway holds this connection's symbols to a lower rate. */
export interface SlowState {
  state: 'slowed';
  /** Date.now() of the first `slowed` notice. */
  since: number;
  /** The latest class slowed. */
  priority: Priority | null;
  rateHz: number | null;
  /** Every symbol slowed so far. */
  symbols: string[];
  /** Each `slowed` notice, in order (background, then normal, then visible). */
  classes: { priority: Priority | null; rateHz: number | null; symbols: string[] }[];
  behindMs: number | null;
  message: string;
}

export interface StaleEvent {
  symbol: string;
  stale: boolean;
  reason: StaleReason | null;
}

export interface StatusEvent {
  feed: string;
  state: 'stale' | 'live' | 'down' | (string & {});
  /** null: the frame named no symbols, meaning every symbol of that feed. */
  symbols: string[] | null;
}

export interface SubscribeResult {
  /** Symbols the gateway acknowledged. */
  symbols: string[];
  /** Acknowledged symbols without a quote yet; they arrive later as updates. */
  noData: string[];
  /** Errors for the symbols that were refused (by the gateway or locally). */
  rejected: TickgateError[];
}

export interface SubscribeOptions {
  /** Every trade of these symbols on the `trades` event (default: `delivery.trades`, else false). */
  trades?: boolean;
  /** Their rank for the slow-consumer ladder; without it a held symbol goes back to `normal`. */
  priority?: Priority;
}

/** Lists of symbols by rank; give only the ones that change. */
export interface PriorityLists {
  visible?: string[];
  normal?: string[];
  background?: string[];
}

export interface PriorityResult {
  /** The symbols the gateway ranked, by rank (empty lists when none). */
  visible: string[];
  normal: string[];
  background: string[];
  /** Errors for the symbols it did not rank (`not_subscribed`, `invalid_symbol`). */
  rejected: TickgateError[];
}

export interface UnsubscribeResult {
  symbols: string[];
  rejected: TickgateError[];
}

export interface PingResult {
  /** Gateway time in microseconds since the Unix epoch. */
  ts: number;
  rttMs: number;
}

export interface ReconnectOptions {
  /** First retry delay ceiling (default 250). */
  initialDelayMs?: number;
  /** Cap of the retry delay (default 10000). */
  maxDelayMs?: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /** Fraction of the delay taken off at random, 0..1 (default 0.5). */
  jitter?: number;
}

export interface ClientOptions {
  /** WebSocket constructor; defaults to globalThis.WebSocket (pass `ws` in Node 20). */
  WebSocket?: WebSocketConstructor;
  /** Sent as `?token=` on the WebSocket URL. */
  token?: string;
  /** No frame for this long: the link is dead, reconnect (default 15000; 0 disables). */
  heartbeatTimeoutMs?: number;
  /** Give up on a socket that has not opened after this long (default 10000). */
  connectTimeoutMs?: number;
  /** subscribe/unsubscribe/ping reject with `timeout` after this long (default 10000). */
  requestTimeoutMs?: number;
  /** A symbol with no accepted quote for this long is stale (default 30000; 0 disables). */
  staleAfterMs?: number;
  /** A connection open this long resets the backoff (default 5000). */
  stableAfterMs?: number;
  /**
   * Check symbols locally before sending (default true): a malformed one is
   * refused with `invalid_symbol` without a round trip. Turn off for a
   * gateway whose symbol rules are wider, or to see the gateway's own errors.
   */
  validateSymbols?: boolean;
  reconnect?: ReconnectOptions;
  /** Opt-in delivery options sent with every subscribe (docs/protocol.md). */
  delivery?: DeliveryOptions;
  /**
   * On reconnect, send the seq held per symbol (`resume`) so the snapshot
   * carries only symbols that changed meanwhile (default false).
   */
  resume?: boolean;
  /**
   * Acknowledge what was read (`{"op":"ack"}`) after every this many
   * messages (default 0: off; 4 suits the gateway's default window). The
   * gateway then keeps at most its `ack_window_frames` (8) unacknowledged
   * and sends the latest values after that, so a slow page gets fresh
   * quotes instead of a backlog; a page that stops reading for good is then
   * not closed 4008 (it stalls only itself). Keep it at most the window.
   */
  acknowledgeEvery?: number;
  /**
   * Ask for the gateway's binary encoding (subprotocol `tickgate.v1.bin`,
   * MessagePack frames, docs/protocol.md) and decode it with `decode`, a
   * MessagePack decoder such as `decode` of the `@msgpack/msgpack` package.
   * Everything the client emits is the same as with JSON. A gateway that does
   * not accept the subprotocol answers in JSON, which is read as usual.
   */
  binary?: BinaryOptions;
}

export interface BinaryOptions {
  /** Decodes one MessagePack value (a binary frame's bytes). */
  decode(bytes: Uint8Array): unknown;
}

/** The WebSocket subprotocol of the binary encoding. */
export const BINARY_SUBPROTOCOL: 'tickgate.v1.bin';

/**
 * Turns one decoded binary message back into the JSON protocol's message,
 * in place (learns `defs` into `ids`, restores `symbol`, unscales prices).
 * Throws a `bad_frame` TickgateError for an unknown symbol id.
 */
export function expandBinary<T extends object>(message: T, ids: Map<number, string>): T;

/** The gateway's opt-in per-subscription delivery options. */
export interface DeliveryOptions {
  /** At most this many updates per second per symbol (the latest at each slot). */
  maxRate?: number;
  /** Updates carry only changed fields (merged transparently). */
  delta?: boolean;
  /** Quotes (snapshots and updates) carry `conflated`, `received_ts` and `stale`. */
  meta?: boolean;
  /** Default of the `trades` subscribe option. */
  trades?: boolean;
}

/**
 * A socket event handler as the client assigns it. Declared through a method
 * so that `strict` TypeScript compares its parameter bivariantly: the DOM's
 * `(this: WebSocket, ev: MessageEvent) => any` and the `ws` package's
 * `(event: WebSocket.MessageEvent) => void` both fit, although each names a
 * narrower event type than the fields the client reads.
 */
export type SocketHandler<E> = { bivarianceHack(event: E): void }['bivarianceHack'];

/**
 * The part of the WebSocket interface the client uses. The browser's
 * `WebSocket`, Node 22's global one (Node 20 with `--experimental-websocket`)
 * and the `ws` package's class all satisfy it.
 */
export interface WebSocketLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: SocketHandler<unknown> | null;
  onmessage: SocketHandler<{ data: unknown }> | null;
  onerror: SocketHandler<unknown> | null;
  onclose: SocketHandler<{ code?: number; reason?: string }> | null;
  /** Set to `'arraybuffer'` when the binary encoding is asked for. */
  binaryType?: string;
}

/** A WebSocket class: `new WebSocket(url)`, as the DOM and `ws` declare it. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface ClientEvents {
  /** Connection state changed (also on every scheduled reconnect attempt). */
  state: (event: StateEvent) => void;
  /** A quote was accepted for a symbol. */
  quote: (state: SymbolState, info: QuoteInfo) => void;
  /** A symbol went stale or live. */
  stale: (event: StaleEvent, state: SymbolState) => void;
  /** A `status` frame arrived. */
  status: (event: StatusEvent) => void;
  /** Symbols were halted or resume trading (`trading` frames). */
  trading: (event: TradingEvent) => void;
  /** Every `error` frame from the gateway, and local link failures. */
  error: (error: TickgateError) => void;
  /** A socket ended; a reconnect follows unless close() was called. */
  disconnect: (event: { code: number; reason: string; slowConsumer: boolean }) => void;
  /** Trades of symbols subscribed with `trades`, in feed order (one call per frame). */
  trades: (trades: Trade[]) => void;
  /** The gateway dropped trades from a full buffer; comes before the next `trades`. */
  tradesLost: (event: TradesLostEvent) => void;
  /** A slow-consumer notice; `state` is `client.slow` after it (null once restored). */
  slow: (notice: SlowNotice, state: SlowState | null) => void;
  /** Every parsed frame, before it is handled. */
  frame: (frame: Record<string, unknown>) => void;
  /** A listener threw; the client carries on. */
  listenerError: (error: unknown, eventType: string) => void;
}

export class TickgateError extends Error {
  constructor(code: ErrorCode, message: string, extra?: { id?: number; symbols?: string[]; op?: string; errors?: TickgateError[] });
  code: ErrorCode;
  /** Request id the gateway echoed, if any. */
  id: number | string | undefined;
  /** Symbols the error is about (empty: the whole request). */
  symbols: string[];
  op: 'subscribe' | 'unsubscribe' | 'ping' | 'priority' | string | undefined;
  /** On a rejected request: every error it received. */
  errors: TickgateError[];
}

/** null when the gateway would accept `symbol`, else a human-readable reason. */
export function symbolError(symbol: unknown): string | null;

/** Reconnect delay for a 0-based attempt: capped exponential with jitter. */
export function backoffDelay(attempt: number, options?: ReconnectOptions, random?: () => number): number;

export class TickgateClient {
  constructor(url: string, options?: ClientOptions);
  readonly url: string;
  readonly state: ConnectionState;
  /** Symbols this client wants; subscribed again after every reconnect. */
  readonly desired: ReadonlySet<string>;
  /** Held state per symbol. */
  readonly quotes: ReadonlyMap<string, SymbolState>;
  /** Feed name -> last state from a `status` frame on this connection. */
  readonly feeds: ReadonlyMap<string, string>;
  /** Subscribed symbols the gateway reported halted -> Date.now() of the halt (also before their first quote). */
  readonly halted: ReadonlyMap<string, number>;
  readonly stats: {
    frames: number;
    quotes: number;
    /** Quotes ignored because their seq was not newer. */
    dropped: number;
    conflated: number;
    /** Symbols rebased after a gateway restart. */
    rebased: number;
    reconnects: number;
    /** Trades delivered on the `trades` event. */
    trades: number;
    /** Trades the gateway announced as lost. */
    tradesLost: number;
    /** `slow` frames received. */
    slowNotices: number;
    /** Connections the gateway closed with 4008. */
    slowConsumerCloses: number;
  };
  readonly lastClose: { code: number; reason: string; slowConsumer: boolean } | null;
  /** Remembered ranks (setPriority and the `priority` subscribe option), sent again after every reconnect. */
  readonly priorities: ReadonlyMap<string, Priority>;
  /** Slow-consumer state of the current connection: null at full rate (and on every new connection). */
  readonly slow: SlowState | null;
  /** Milliseconds since the last frame of any kind. */
  readonly silentForMs: number;

  /** Opens the connection (retrying forever); resolves when open, rejects if close() comes first. */
  connect(): Promise<void>;
  /** Closes for good; pending requests reject with code `closed`. */
  close(code?: number, reason?: string): void;
  /**
   * Resolves on the gateway's `subscribed` ack with the symbols it took and
   * the errors for those it refused; rejects when nothing was subscribed.
   * While disconnected, resolves after the next connect's resubscription.
   */
  subscribe(symbols: string | string[], options?: SubscribeOptions): Promise<SubscribeResult>;
  /**
   * Ranks subscribed symbols for the slow-consumer ladder (and opts into
   * `slow` notices). Resolves with the gateway's reply; rejects when no
   * symbol was ranked (e.g. `not_subscribed`). Remembered and sent again
   * after every reconnect; while disconnected, answered by that re-send.
   */
  setPriority(ranks: PriorityLists): Promise<PriorityResult>;
  /** Whether `symbol` is subscribed with `trades`. */
  hasTrades(symbol: string): boolean;
  unsubscribe(symbols: string | string[]): Promise<UnsubscribeResult>;
  ping(): Promise<PingResult>;
  get(symbol: string): SymbolState | undefined;

  on<K extends keyof ClientEvents>(type: K, listener: ClientEvents[K]): () => void;
  off<K extends keyof ClientEvents>(type: K, listener: ClientEvents[K]): void;
  /** Changes of one symbol: new quotes and stale/live flips. Returns a remover. */
  onSymbol(symbol: string, listener: (state: SymbolState, info: QuoteInfo) => void): () => void;
}
