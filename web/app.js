// tickgate demo dashboard: a live watchlist built on tickgate.js alone.
//
// Quotes only mark rows dirty; the DOM is touched once per animation frame,
// so hundreds of symbols updating many times a second stay smooth.
//
// Query parameters:
//   ?url=ws://host:port/ws   gateway WebSocket (default: this page's host, /ws)
//   ?token=...               token sent to the gateway
//   ?symbols=AAPL,MSFT       watchlist to show (instead of the saved ones; nothing is saved)
//   ?symbols=200             the first N symbols of the simulator universe
//   ?theme=dark|light        force a theme
//   ?staleAfter=10           seconds without a quote before a symbol is stale
//   ?validate=0              send symbols unchecked (shows the gateway's errors)
//   ?trades=AAPL             open the trades tape for a symbol (click a symbol to switch)
//
// Rows on screen are ranked `visible` with the gateway and the others
// `background`, so if this page falls behind the gateway slows the rows no
// one sees first; its `slow` notices show in a small banner.

import { TickgateClient, symbolError } from './tickgate.js';

const DEFAULT_WATCHLIST = ['AAPL', 'MSFT', 'NVDA', 'AMZN', 'GOOGL', 'META', 'TSLA', 'AVGO', 'JPM', 'V', 'XOM', 'NFLX'];

// The first 200 symbols of the simulator universe (feeds/src/universe.txt).
const TOP_200 = (
  'AAPL MSFT NVDA AMZN GOOGL GOOG META BRK.B TSLA AVGO LLY JPM V UNH XOM MA JNJ PG HD COST ABBV MRK ' +
  'ORCL CVX WMT BAC KO PEP NFLX CRM ADBE AMD TMO LIN MCD ACN CSCO ABT WFC DHR INTC DIS TXN PM VZ CMCSA ' +
  'NEE INTU AMGN IBM QCOM CAT UNP GE SPGI HON AMAT NOW LOW BA RTX GS ISRG PFE BKNG ELV T SYK MS BLK ' +
  'MDT PLD LMT DE TJX SCHW ADP GILD VRTX MMC ADI CB C REGN LRCX MDLZ BX CI SBUX AMT PGR ETN MU BSX ZTS ' +
  'SO PANW FI SNPS BMY CME KLAC SLB DUK EQIX CDNS ITW NOC MO AON SHW CL WM ICE CSX APD TGT MCK USB FCX ' +
  'BDX CMG PNC ORLY EOG MMM PYPL HCA ANET MPC PSX MAR NXPI EMR ROP PH FDX GD AJG WELL TDG MSI ECL CTAS ' +
  'NSC TT ADSK MCO OXY AZO PCAR HLT AIG CARR SRE COF TFC VLO AFL NEM ROST JCI MET PSA KMB CHTR DHI TRV ' +
  'SPG PAYX DXCM O HUM CCI ALL F GM AEP D MCHP FTNT KMI DOW LHX MSCI MNST BK CPRT IQV FIS AMP A KDP ' +
  'OKE PRU TEL LEN HES CTVA YUM'
).split(' ');

const SPARK_POINTS = 60;
const SPARK_REDRAW_MS = 250;
/** The single list saved before named watchlists: read once, as the list "Main". */
const LEGACY_WATCHLIST_KEY = 'tickgate.watchlist';
/** `{ current, lists: { name: [symbol, …] } }` */
const WATCHLISTS_KEY = 'tickgate.watchlists';
const THEME_KEY = 'tickgate.theme';
/** The link shows amber when no frame (quote or heartbeat) came for this long; the gateway sends a heartbeat every 5 s. */
const QUIET_AFTER_MS = 7000;
/** Prices show at least this many decimals, and at most MAX_DECIMALS (more is float noise). */
const MIN_DECIMALS = 2;
const MAX_DECIMALS = 6;

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const el = {
  conn: $('conn'), connText: $('conn-text'), age: $('age'), ageValue: $('age-value'), rate: $('rate'),
  banner: $('banner'), form: $('add-form'), input: $('symbol-input'), formError: $('form-error'),
  rows: $('rows'), empty: $('empty'), themeToggle: $('theme-toggle'), loadTop: $('load-top'), clearAll: $('clear-all'),
  statSymbols: $('stat-symbols'), statFrames: $('stat-frames'), statConflated: $('stat-conflated'),
  statReconnects: $('stat-reconnects'), statUrl: $('stat-url'), slowBanner: $('slow-banner'),
  tape: $('tape'), tapeTitle: $('tape-title'), tapeList: $('tape-list'), tapeClose: $('tape-close'),
  linkAnnounce: $('link-announce'), headRow: $('head-row'),
  lists: $('lists'), listSelect: $('list-select'), listName: $('list-name'), listDelete: $('list-delete'),
};

// ---- settings from the URL ------------------------------------------------------

function gatewayUrl() {
  const explicit = params.get('url');
  if (explicit) return explicit;
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws`;
}

/**
 * Named watchlists. Saved in localStorage unless the URL names the symbols
 * (then that list is shown as "Link" and nothing is saved).
 */
function loadWatchlists() {
  const requested = params.get('symbols');
  if (requested) {
    const n = Number(requested);
    const symbols = Number.isInteger(n) && n > 0 ? TOP_200.slice(0, n) : parseSymbolInput(requested).symbols;
    return { current: 'Link', lists: { Link: symbols } };
  }
  try {
    const saved = JSON.parse(safeStorageGet(WATCHLISTS_KEY) ?? 'null');
    const lists = {};
    for (const [name, symbols] of Object.entries(saved?.lists ?? {})) {
      if (typeof name === 'string' && name.trim() && Array.isArray(symbols)) lists[name] = symbols.filter((s) => typeof s === 'string' && !symbolError(s));
    }
    const names = Object.keys(lists);
    if (names.length > 0) return { current: names.includes(saved.current) ? saved.current : names[0], lists };
  } catch {
    // storage unavailable or corrupt: start from the older single list or the default
  }
  try {
    const legacy = JSON.parse(safeStorageGet(LEGACY_WATCHLIST_KEY) ?? 'null');
    if (Array.isArray(legacy)) return { current: 'Main', lists: { Main: legacy.filter((s) => typeof s === 'string') } };
  } catch {
    // corrupt: use the default
  }
  return { current: 'Main', lists: { Main: [...DEFAULT_WATCHLIST] } };
}

const staleAfterSeconds = Number(params.get('staleAfter') ?? 10);
const validate = params.get('validate') !== '0';
const persist = !params.has('symbols');
const watchlists = loadWatchlists();

const client = new TickgateClient(gatewayUrl(), {
  token: params.get('token') ?? undefined,
  staleAfterMs: Number.isFinite(staleAfterSeconds) ? staleAfterSeconds * 1000 : 10_000,
  validateSymbols: validate,
});

// ---- theme ---------------------------------------------------------------------

function applyTheme(theme) {
  if (theme === 'dark' || theme === 'light') document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
}

function effectiveTheme() {
  const forced = document.documentElement.dataset.theme;
  if (forced) return forced;
  return matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

applyTheme(params.get('theme') ?? safeStorageGet(THEME_KEY));
el.themeToggle.addEventListener('click', () => {
  const next = effectiveTheme() === 'dark' ? 'light' : 'dark';
  applyTheme(next);
  safeStorageSet(THEME_KEY, next);
  for (const row of rows.values()) row.sparkDirty = true;
  scheduleRender();
});

function safeStorageGet(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

function safeStorageSet(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    // private mode or storage full: the setting just does not persist
  }
}

// ---- rows ------------------------------------------------------------------------

/** symbol -> row; insertion order is display order. */
const rows = new Map();
const dirty = new Set();

const CELLS = ['trading', 'bid', 'ask', 'size', 'spread', 'last', 'change', 'change_pct', 'open', 'high', 'low', 'volume', 'age', 'ups'];
const CELL_CLASS = {
  trading: 'c-state', bid: 'c-bid', ask: 'c-ask', size: 'c-size', spread: 'c-spread', last: 'c-last', change: 'c-chg',
  change_pct: 'c-pct', open: 'c-open', high: 'c-high', low: 'c-low', volume: 'c-vol', age: 'c-age', ups: 'c-ups',
};
const FLASHING = ['bid', 'ask', 'last'];
/** Quote fields whose decimals set the row's price precision. */
const PRICE_FIELDS = ['bid', 'ask', 'last', 'open', 'high', 'low', 'prev_close'];

function createRow(symbol) {
  const tr = document.createElement('div');
  tr.className = 'row';
  tr.setAttribute('role', 'row');
  tr.tabIndex = -1; // roving: the active row gets 0 (see the keyboard section)
  tr.dataset.symbol = symbol;
  tr.dataset.stale = 'false';
  tr.dataset.trading = 'unknown';
  const sym = document.createElement('div');
  sym.className = 'c-sym';
  sym.setAttribute('role', 'rowheader');
  const name = document.createElement('span');
  name.textContent = symbol;
  const badge = document.createElement('span');
  badge.className = 'badge';
  sym.append(name, badge);
  sym.title = `Trades of ${symbol}`;
  sym.addEventListener('click', () => selectTape(tapeSymbol === symbol ? null : symbol));
  tr.append(sym);
  const cells = {};
  for (const key of CELLS) {
    const td = document.createElement('div');
    td.className = key === 'trading' ? CELL_CLASS[key] : `num ${CELL_CLASS[key]}`;
    td.setAttribute('role', 'cell');
    td.dataset.field = key;
    td.textContent = key === 'ups' ? '0' : '–';
    cells[key] = td;
    tr.append(td);
  }
  const sparkCell = document.createElement('div');
  sparkCell.className = 'c-spark';
  sparkCell.setAttribute('role', 'cell');
  const canvas = document.createElement('canvas');
  canvas.setAttribute('aria-hidden', 'true');
  sparkCell.append(canvas);
  tr.insertBefore(sparkCell, cells.ups);
  const rm = document.createElement('div');
  rm.className = 'c-rm';
  rm.setAttribute('role', 'cell');
  const button = document.createElement('button');
  button.type = 'button';
  button.textContent = '×';
  button.title = `Remove ${symbol}`;
  button.setAttribute('aria-label', `Remove ${symbol}`);
  // Keyboard users remove the focused row with Delete: one Tab stop per row, not two.
  button.tabIndex = -1;
  button.addEventListener('click', () => removeSymbols([symbol]));
  rm.append(button);
  tr.append(rm);
  // Details on hover only: writing a title per frame would cost a style pass.
  tr.addEventListener('mouseenter', () => {
    const state = client.get(symbol);
    tr.title = state?.receivedAt
      ? `seq ${state.seq} · ${state.conflated} ticks conflated · updated ${ageText(Date.now() - state.receivedAt)} ago`
      : '';
  });
  return {
    symbol, tr, cells, badge, canvas, ctx: null,
    text: {}, flash: {},
    spark: new Float64Array(SPARK_POINTS), sparkLen: 0, sparkStart: 0, sparkDirty: false, sparkDrawnAt: 0,
    renderedAt: 0, ticks: 0, ups: 0, stale: false, staleReason: null, badgeText: '',
    decimals: MIN_DECIMALS, trading: null, ageLevel: '',
  };
}

function addRows(symbols) {
  const fresh = symbols.filter((s) => !rows.has(s));
  const fragment = document.createDocumentFragment();
  for (const symbol of fresh) {
    const row = createRow(symbol);
    rows.set(symbol, row);
    fragment.append(row.tr);
    row.badgeText = 'waiting';
    rowObserver.observe(row.tr);
    screenObserver.observe(row.tr);
    dirty.add(symbol);
  }
  el.rows.append(fragment);
  afterWatchlistChange();
  applyOrder();
  return fresh;
}

function dropRows(symbols) {
  for (const symbol of symbols) {
    const row = rows.get(symbol);
    if (!row) continue;
    rowObserver.unobserve(row.tr);
    screenObserver.unobserve(row.tr);
    visible.delete(row.tr);
    onScreen.delete(symbol);
    if (tapeSymbol === symbol) selectTape(null);
    row.tr.remove();
    for (const td of Object.values(row.cells)) flashing.delete(td);
    rows.delete(symbol);
    dirty.delete(symbol);
  }
  afterWatchlistChange();
}

/** While a list is being switched to, the rows do not describe any list yet. */
let switchingList = false;

function afterWatchlistChange() {
  el.empty.hidden = rows.size > 0;
  el.statSymbols.textContent = String(rows.size);
  ensureRovingRow();
  if (switchingList) return;
  watchlists.lists[watchlists.current] = [...rows.keys()];
  saveWatchlists();
  renderListControls();
}

function saveWatchlists() {
  if (persist) safeStorageSet(WATCHLISTS_KEY, JSON.stringify(watchlists));
}

// ---- named watchlists ----------------------------------------------------------------

function renderListControls() {
  const names = Object.keys(watchlists.lists);
  const options = names.map((name) => {
    const option = document.createElement('option');
    option.value = name;
    option.textContent = `${name} (${watchlists.lists[name].length})`;
    option.selected = name === watchlists.current;
    return option;
  });
  el.listSelect.replaceChildren(...options);
  el.listDelete.disabled = names.length < 2;
  el.listDelete.title = names.length < 2 ? 'The last watchlist cannot be deleted' : `Delete the watchlist ${watchlists.current}`;
}

/** Shows the list `name`: rows not on it go (and are unsubscribed), its symbols come in its order. */
function switchList(name) {
  const symbols = watchlists.lists[name];
  if (!symbols) return;
  switchingList = true;
  removeSymbols([...rows.keys()].filter((s) => !symbols.includes(s)));
  addSymbols(symbols); // adds its rows at once; the gateway's answer comes later
  const held = new Map(rows);
  rows.clear();
  for (const symbol of symbols) if (held.has(symbol)) rows.set(symbol, held.get(symbol));
  watchlists.current = name;
  switchingList = false;
  afterWatchlistChange();
  applyOrder();
  renderListControls();
}

el.listSelect.addEventListener('change', () => switchList(el.listSelect.value));

el.lists.addEventListener('submit', (event) => {
  event.preventDefault();
  const name = el.listName.value.trim();
  if (!name) {
    showFormError([{ symbol: 'list', message: 'type a name for the new watchlist' }], el.listName);
    return;
  }
  if (watchlists.lists[name]) {
    showFormError([{ symbol: name, message: 'a watchlist with this name exists' }], el.listName);
    return;
  }
  el.listName.value = '';
  showFormError([], el.listName);
  watchlists.lists[name] = [];
  saveWatchlists();
  switchList(name);
});

el.listName.addEventListener('input', () => showFormError([], el.listName));

el.listDelete.addEventListener('click', () => {
  const names = Object.keys(watchlists.lists);
  if (names.length < 2) return;
  const gone = watchlists.current;
  const next = names[names.indexOf(gone) === 0 ? 1 : names.indexOf(gone) - 1];
  switchList(next);
  delete watchlists.lists[gone];
  saveWatchlists();
  renderListControls();
});

// ---- adding and removing symbols ------------------------------------------------

/** Splits user input on spaces and commas, upper-cases it, validates each symbol. */
function parseSymbolInput(text) {
  const symbols = [];
  const invalid = [];
  for (const raw of text.split(/[\s,;]+/)) {
    if (!raw) continue;
    const symbol = raw.toUpperCase();
    const reason = validate ? symbolError(symbol) : null;
    if (reason) invalid.push({ symbol, reason });
    else if (!symbols.includes(symbol)) symbols.push(symbol);
  }
  return { symbols, invalid };
}

/** Names each problem under the form; `input` gets the invalid mark. An empty list clears both. */
function showFormError(parts, input = el.input) {
  el.formError.replaceChildren();
  el.input.removeAttribute('aria-invalid');
  el.listName.removeAttribute('aria-invalid');
  if (parts.length === 0) return;
  input.setAttribute('aria-invalid', 'true');
  parts.forEach((part, i) => {
    if (i > 0) el.formError.append(document.createTextNode(' · '));
    const code = document.createElement('code');
    code.textContent = part.symbol;
    el.formError.append(code, document.createTextNode(`: ${part.message}`));
  });
}

function describeError(err) {
  const code = err.code && err.code !== 'invalid_symbol' ? ` (${err.code})` : '';
  return `${err.message}${code}`;
}

async function addSymbols(symbols, { reportErrors = true } = {}) {
  const fresh = addRows(symbols);
  if (fresh.length === 0) return;
  scheduleRender();
  try {
    // Ranked background until the viewport says otherwise (see syncPriority).
    const result = await client.subscribe(fresh, { priority: 'background' });
    for (const s of result.symbols) rows.get(s)?.tr.setAttribute('data-priority', 'background');
    schedulePriority();
    for (const s of result.noData) {
      const row = rows.get(s);
      if (row && row.badgeText === 'waiting') row.badgeText = 'no data';
      dirty.add(s);
    }
    if (result.rejected.length > 0) handleRejected(result.rejected, reportErrors);
  } catch (err) {
    handleRejected(err.errors?.length ? err.errors : [err], reportErrors);
    dropRows(fresh.filter((s) => !client.desired.has(s)));
  }
  scheduleRender();
}

function handleRejected(errors, report) {
  const parts = [];
  for (const err of errors) {
    const symbols = err.symbols?.length ? err.symbols : ['request'];
    dropRows(err.symbols ?? []);
    for (const symbol of symbols) parts.push({ symbol, message: describeError(err) });
  }
  if (!report) return;
  showFormError(parts);
  // Put refused symbols back in the box so they can be corrected.
  const refused = errors.flatMap((err) => err.symbols ?? []);
  if (refused.length > 0 && el.input.value.trim() === '') el.input.value = refused.join(' ');
}

function removeSymbols(symbols) {
  if (symbols.length === 0) return;
  dropRows(symbols);
  client.unsubscribe(symbols).catch(() => {
    // already gone on the gateway side: nothing to show
  });
}

el.form.addEventListener('submit', (event) => {
  event.preventDefault();
  const { symbols, invalid } = parseSymbolInput(el.input.value);
  showFormError(invalid.map(({ symbol, reason }) => ({ symbol, message: reason })));
  if (symbols.length === 0 && invalid.length === 0) return;
  if (invalid.length > 0) {
    // Keep the bad ones in the box so they can be fixed.
    el.input.value = invalid.map((i) => i.symbol).join(' ');
  } else {
    el.input.value = '';
  }
  const already = symbols.filter((s) => rows.has(s));
  if (already.length > 0 && invalid.length === 0 && already.length === symbols.length) {
    showFormError(already.map((symbol) => ({ symbol, message: 'already on the watchlist' })));
  }
  addSymbols(symbols);
});

// Any edit of the box answers the error shown for it.
el.input.addEventListener('input', () => showFormError([]));

el.loadTop.addEventListener('click', () => addSymbols(TOP_200));
el.clearAll.addEventListener('click', () => removeSymbols([...rows.keys()]));

// ---- quotes ---------------------------------------------------------------------------

let quotesThisSecond = 0;
let framesAtLastSecond = 0;
let lastDataAt = 0;

client.on('quote', (state, info) => {
  const row = rows.get(state.symbol);
  if (!row) return;
  quotesThisSecond += 1;
  row.ticks += 1;
  lastDataAt = state.receivedAt;
  for (const field of FLASHING) {
    if (!(field in info.previous)) continue;
    const before = info.previous[field];
    const after = state.quote[field];
    if (typeof before === 'number' && typeof after === 'number' && before !== after) {
      row.flash[field] = after > before ? 'up' : 'down';
    }
  }
  if (info.changed.includes('last') && typeof state.quote.last === 'number') pushSpark(row, state.quote.last);
  for (const field of PRICE_FIELDS) {
    if (info.changed.includes(field)) row.decimals = Math.max(row.decimals, decimalsOf(state.quote[field]));
  }
  dirty.add(state.symbol);
});

/**
 * Decimals a price is quoted with: the instrument's tick precision, as far
 * as the prices seen tell (the protocol has no tick-size field). Binary
 * float noise (231.38000000000002) is cut at MAX_DECIMALS.
 */
function decimalsOf(value) {
  if (typeof value !== 'number' || !Number.isFinite(value)) return MIN_DECIMALS;
  const text = Math.abs(value).toFixed(MAX_DECIMALS).replace(/0+$/, '');
  return Math.min(MAX_DECIMALS, text.length - text.indexOf('.') - 1);
}

// Trading status (extension frame): {"type":"trading","state":"halted"|"trading","symbols":[…]}.
// The client library hands every frame to 'frame' listeners before it handles
// the types it knows; this one it does not know, so the page reads it here.
client.on('frame', (frame) => {
  if (frame.type !== 'trading') return;
  if (frame.state !== 'halted' && frame.state !== 'trading') return;
  if (!Array.isArray(frame.symbols)) return;
  for (const symbol of frame.symbols) {
    const row = typeof symbol === 'string' ? rows.get(symbol) : undefined;
    if (!row) continue;
    row.trading = frame.state;
    dirty.add(symbol);
  }
  scheduleRender();
});

client.on('stale', (event) => {
  if (rows.has(event.symbol)) dirty.add(event.symbol);
  scheduleRender();
});

function pushSpark(row, value) {
  const end = (row.sparkStart + row.sparkLen) % SPARK_POINTS;
  row.spark[end] = value;
  if (row.sparkLen < SPARK_POINTS) row.sparkLen += 1;
  else row.sparkStart = (row.sparkStart + 1) % SPARK_POINTS;
  row.sparkDirty = true;
}

// ---- connection state -------------------------------------------------------------------

let nextAttemptAt = 0;

client.on('state', (event) => {
  if (event.state === 'reconnecting' && event.delayMs !== undefined) nextAttemptAt = Date.now() + event.delayMs;
  // A new connection starts without trading status: the gateway sends
  // `halted` again right after the snapshot for symbols still halted.
  if (event.state === 'open') for (const row of rows.values()) row.trading = null;
  renderConnection();
  for (const symbol of rows.keys()) dirty.add(symbol);
  scheduleRender();
});

client.on('status', () => renderBanner());

/**
 * The link as a desk should read it: `live` while frames arrive, `quiet`
 * (amber) when the socket is open but nothing came for QUIET_AFTER_MS
 * (heartbeats come every 5 s, so the gateway or the network is stuck),
 * `down` (red) while disconnected, `connecting` at the start.
 */
function linkState() {
  const state = client.state;
  if (state === 'open') return client.silentForMs > QUIET_AFTER_MS ? 'quiet' : 'live';
  if (state === 'connecting' && client.stats.reconnects === 0 && !announcedLink) return 'connecting';
  return 'down';
}

const LINK_ANNOUNCEMENTS = {
  live: 'Connected to the gateway: prices are live.',
  quiet: 'No data from the gateway for 7 seconds: prices may be old.',
  down: 'Disconnected from the gateway: prices are frozen. Reconnecting.',
};
let announcedLink = null;

function renderConnection() {
  const state = client.state;
  const link = linkState();
  el.conn.dataset.state = state;
  el.conn.dataset.link = link;
  let text;
  if (link === 'quiet') text = `no data for ${Math.floor(client.silentForMs / 1000)} s`;
  else if (state === 'open') text = 'live';
  else if (state === 'connecting') text = 'connecting…';
  else if (state === 'closed') text = 'closed';
  else {
    const wait = Math.max(0, nextAttemptAt - Date.now());
    text = wait > 150 ? `reconnecting in ${(wait / 1000).toFixed(1)} s` : 'reconnecting…';
  }
  if (el.connText.textContent !== text) el.connText.textContent = text;
  el.conn.title = client.lastClose ? `Link to the gateway; last close: ${client.lastClose.code} ${client.lastClose.reason}` : 'Link to the gateway';
  // The live region speaks on a change of link state only, never per second of a countdown.
  if (link !== 'connecting' && link !== announcedLink) {
    announcedLink = link;
    el.linkAnnounce.textContent = LINK_ANNOUNCEMENTS[link];
  }
  renderBanner();
}

function renderBanner() {
  let message = '';
  let level = 'warn';
  if (client.state === 'reconnecting' || (client.state === 'closed' && rows.size > 0)) {
    const why = client.lastClose?.slowConsumer ? ' It closed this connection because the page stopped reading (slow consumer, 4008).' : '';
    // No attempt counter here: this is an alert, re-read on every change.
    message = `Disconnected from the gateway — prices are frozen at their last value.${why} Reconnecting…`;
    level = 'bad';
  } else {
    const bad = [...client.feeds].filter(([, state]) => state !== 'live');
    if (bad.length > 0) message = `Feed ${bad.map(([feed, state]) => `${feed || '(unnamed)'} is ${state}`).join(', ')}: affected prices are not updating.`;
  }
  if (el.banner.textContent !== message) el.banner.textContent = message;
  el.banner.hidden = message === '';
  el.banner.dataset.level = level;
  renderSlowBanner();
}

/** Shown while the gateway holds some of this page's symbols to a lower rate. */
function renderSlowBanner() {
  const slow = client.state === 'open' ? client.slow : null;
  let message = '';
  if (slow) {
    const classes = slow.classes.map((c) => (c.priority === 'background' ? 'off-screen' : c.priority === 'visible' ? 'on-screen' : c.priority));
    const rate = slow.rateHz === null ? 'a lower rate' : `${slow.rateHz} update${slow.rateHz === 1 ? '' : 's'}/s`;
    message = `This page is not keeping up: the gateway limits its ${classes.join(' and ')} symbols to ${rate} until it catches up.`;
  }
  if (el.slowBanner.textContent !== message) el.slowBanner.textContent = message;
  el.slowBanner.hidden = message === '';
}

client.on('slow', () => renderSlowBanner());

// ---- viewport priority ---------------------------------------------------------------------
//
// Rows on screen are `visible`, the rest `background`. Only changes are sent;
// the library remembers the ranks and sends them again after a reconnect.

const onScreen = new Set();
const screenObserver = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    const symbol = entry.target.dataset.symbol;
    if (entry.isIntersecting) onScreen.add(symbol);
    else onScreen.delete(symbol);
  }
  schedulePriority();
});

let priorityTimer = null;
function schedulePriority() {
  if (priorityTimer !== null) return;
  priorityTimer = setTimeout(() => {
    priorityTimer = null;
    syncPriority();
  }, 150);
}

function syncPriority() {
  const lists = { visible: [], background: [] };
  for (const [symbol, row] of rows) {
    const held = client.priorities.get(symbol);
    if (held === undefined) continue; // not acked yet: ranked background on subscribe
    const wanted = onScreen.has(symbol) ? 'visible' : 'background';
    if (held !== wanted) lists[wanted].push(symbol);
    row.tr.dataset.priority = wanted;
  }
  if (lists.visible.length === 0 && lists.background.length === 0) return;
  client.setPriority(lists).catch(() => {
    // a row removed meanwhile (not_subscribed): the next change catches up
  });
}

// ---- trades tape ---------------------------------------------------------------------------

const TAPE_LENGTH = 30;
let tapeSymbol = null;
let tapeTrades = [];
let tapeDirty = false;

/** Opens the tape for `symbol` (null closes it): its subscription takes trades, keeping its rank. */
function selectTape(symbol) {
  const previous = tapeSymbol;
  if (previous === symbol) return;
  tapeSymbol = symbol;
  tapeTrades = [];
  tapeDirty = true;
  if (previous && rows.has(previous)) {
    client.subscribe([previous], { trades: false, priority: client.priorities.get(previous) }).catch(() => {});
  }
  if (symbol) client.subscribe([symbol], { trades: true, priority: client.priorities.get(symbol) }).catch(() => {});
  for (const row of rows.values()) row.tr.classList.toggle('selected', row.symbol === symbol);
  el.tape.hidden = symbol === null;
  el.tapeTitle.textContent = symbol ? `Trades · ${symbol}` : '';
  scheduleRender();
}

client.on('trades', (trades) => {
  let added = false;
  for (const trade of trades) {
    if (trade.symbol !== tapeSymbol) continue;
    tapeTrades.push(trade);
    added = true;
  }
  if (!added) return;
  if (tapeTrades.length > TAPE_LENGTH) tapeTrades = tapeTrades.slice(-TAPE_LENGTH);
  tapeDirty = true;
});

client.on('tradesLost', (event) => {
  const lost = tapeSymbol ? event.symbols[tapeSymbol] : 0;
  if (!lost) return;
  tapeTrades.push({ symbol: tapeSymbol, lost });
  tapeDirty = true;
});

el.tapeClose.addEventListener('click', () => selectTape(null));

function renderTape() {
  tapeDirty = false;
  const items = [];
  let previousPrice;
  for (const trade of tapeTrades) {
    const li = document.createElement('li');
    if (trade.lost) {
      li.className = 'lost';
      li.textContent = `${trade.lost} trade${trade.lost === 1 ? '' : 's'} lost (this page fell behind)`;
    } else {
      const at = document.createElement('span');
      at.className = 'time';
      at.textContent = new Date(trade.ts / 1000).toLocaleTimeString([], { hour12: false });
      const price = document.createElement('span');
      price.className = 'num';
      if (previousPrice !== undefined && trade.price !== previousPrice) price.classList.add(trade.price > previousPrice ? 'pos' : 'neg');
      price.textContent = formatPrice(trade.price, rows.get(trade.symbol)?.decimals);
      const size = document.createElement('span');
      size.className = 'num';
      size.textContent = trade.size === undefined ? '' : formatVolume(trade.size);
      li.append(at, price, size);
      previousPrice = trade.price;
    }
    items.push(li);
  }
  el.tapeList.replaceChildren(...items.reverse()); // newest first
}

// ---- sorting -----------------------------------------------------------------------------
//
// A click (or Enter/Space: the headers are buttons) sorts by that column,
// again reverses it. Rows without a value go last either way. Without a
// sort, rows keep the watchlist's order.

let sortKey = null;
let sortDir = 1;

function sortValue(row, key, now) {
  if (key === 'symbol') return row.symbol;
  if (key === 'ups') return row.ups;
  if (key === 'trading') return row.trading ?? (client.get(row.symbol)?.seq !== undefined ? 'trading' : undefined);
  const state = client.get(row.symbol);
  const q = state?.quote ?? {};
  if (key === 'age') return state?.receivedAt ? now - state.receivedAt : undefined;
  if (key === 'spread') return spreadOf(q);
  if (key === 'change') return changeOf(q).change;
  if (key === 'change_pct') return changeOf(q).pct;
  return typeof q[key] === 'number' ? q[key] : undefined;
}

function compareRows(a, b) {
  if (a.value === undefined || b.value === undefined) return (a.value === undefined) - (b.value === undefined);
  const order = typeof a.value === 'string' ? a.value.localeCompare(b.value) : a.value - b.value;
  return order * sortDir;
}

/** Puts the row elements in display order; moves nothing when the order holds. */
function applyOrder() {
  let ordered = [...rows.values()];
  if (sortKey) {
    const now = Date.now();
    ordered = ordered
      .map((row) => ({ row, value: sortValue(row, sortKey, now) }))
      .sort(compareRows)
      .map((entry) => entry.row);
  }
  const shown = el.rows.children;
  if (shown.length === ordered.length && ordered.every((row, i) => shown[i] === row.tr)) return;
  const focused = document.activeElement;
  el.rows.append(...ordered.map((row) => row.tr));
  if (focused instanceof HTMLElement && focused !== document.activeElement && el.rows.contains(focused)) focused.focus({ preventScroll: true });
}

function setSort(key) {
  if (sortKey === key) sortDir = -sortDir;
  else {
    sortKey = key;
    sortDir = 1;
  }
  for (const header of el.headRow.querySelectorAll('[data-sort]')) {
    if (header.dataset.sort === sortKey) header.setAttribute('aria-sort', sortDir === 1 ? 'ascending' : 'descending');
    else header.removeAttribute('aria-sort');
  }
  applyOrder();
}

for (const header of el.headRow.querySelectorAll('[data-sort]')) {
  header.querySelector('button').addEventListener('click', () => setSort(header.dataset.sort));
}

// ---- keyboard on rows --------------------------------------------------------------------
//
// The rows are one Tab stop (a roving tabindex): arrows, Home and End move
// between rows, Enter or Space opens the row's trades tape, Delete removes it.

function ensureRovingRow() {
  const rowEls = [...el.rows.children];
  if (rowEls.some((tr) => tr.tabIndex === 0)) return;
  if (rowEls[0]) rowEls[0].tabIndex = 0;
}

function focusRow(tr) {
  if (!tr) return;
  for (const other of el.rows.querySelectorAll('.row[tabindex="0"]')) if (other !== tr) other.tabIndex = -1;
  tr.tabIndex = 0;
  tr.focus();
}

el.rows.addEventListener('focusin', (event) => {
  const tr = event.target.closest?.('.row');
  if (tr && tr.tabIndex !== 0) focusRow(tr);
});

el.rows.addEventListener('keydown', (event) => {
  const tr = event.target;
  if (!(tr instanceof HTMLElement) || !tr.classList.contains('row')) return;
  const symbol = tr.dataset.symbol;
  switch (event.key) {
    case 'ArrowDown':
      focusRow(tr.nextElementSibling);
      break;
    case 'ArrowUp':
      focusRow(tr.previousElementSibling);
      break;
    case 'Home':
      focusRow(el.rows.firstElementChild);
      break;
    case 'End':
      focusRow(el.rows.lastElementChild);
      break;
    case 'Enter':
    case ' ':
      selectTape(tapeSymbol === symbol ? null : symbol);
      break;
    case 'Delete':
    case 'Backspace': {
      const next = tr.nextElementSibling ?? tr.previousElementSibling;
      removeSymbols([symbol]);
      ensureRovingRow();
      if (next) focusRow(next);
      break;
    }
    default:
      return;
  }
  event.preventDefault();
});

// ---- rendering ----------------------------------------------------------------------------

/** A price at its instrument's precision (`decimals`, see decimalsOf). */
function formatPrice(v, decimals = MIN_DECIMALS) {
  return typeof v === 'number' ? v.toFixed(decimals) : '–';
}

function formatSize(v) {
  if (typeof v !== 'number') return '–';
  return Math.abs(v) >= 1e5 ? formatVolume(v) : Math.round(v).toLocaleString('en-US');
}

/** Change against the previous close: the gateway's, or computed from last and prev_close. */
function changeOf(q) {
  const change = typeof q.change === 'number' ? q.change
    : typeof q.last === 'number' && typeof q.prev_close === 'number' ? q.last - q.prev_close : undefined;
  const pct = typeof q.change_pct === 'number' ? q.change_pct
    : change !== undefined && q.prev_close ? (change / q.prev_close) * 100 : undefined;
  return { change, pct };
}

const spreadOf = (q) => (typeof q.bid === 'number' && typeof q.ask === 'number' ? q.ask - q.bid : undefined);

function formatSigned(v, digits, suffix = '') {
  if (typeof v !== 'number') return '–';
  const text = v.toFixed(digits);
  return `${v > 0 ? '+' : ''}${text}${suffix}`;
}

function formatVolume(v) {
  if (typeof v !== 'number') return '–';
  const abs = Math.abs(v);
  if (abs >= 1e9) return `${(v / 1e9).toFixed(2)}B`;
  if (abs >= 1e6) return `${(v / 1e6).toFixed(2)}M`;
  if (abs >= 1e4) return `${(v / 1e3).toFixed(1)}K`;
  return String(Math.round(v));
}

function setText(row, key, text) {
  if (row.text[key] === text) return;
  row.text[key] = text;
  row.cells[key].textContent = text;
}

function setSign(td, value) {
  const cls = typeof value === 'number' && value !== 0 ? (value > 0 ? 'pos' : 'neg') : '';
  if (td.dataset.sign === cls) return;
  td.dataset.sign = cls;
  td.classList.remove('pos', 'neg');
  if (cls) td.classList.add(cls);
}

function renderRow(row, now) {
  const state = client.get(row.symbol);
  const q = state?.quote ?? {};
  const d = row.decimals;
  setText(row, 'bid', formatPrice(q.bid, d));
  setText(row, 'ask', formatPrice(q.ask, d));
  setText(row, 'size', q.bid_size === undefined && q.ask_size === undefined ? '–' : `${formatSize(q.bid_size)} × ${formatSize(q.ask_size)}`);
  setText(row, 'spread', formatPrice(spreadOf(q), d));
  setText(row, 'last', formatPrice(q.last, d));
  const { change, pct } = changeOf(q);
  setText(row, 'change', formatSigned(change, d));
  setText(row, 'change_pct', formatSigned(pct, 2, '%'));
  setSign(row.cells.change, change);
  setSign(row.cells.change_pct, pct);
  setText(row, 'open', formatPrice(q.open, d));
  setText(row, 'high', formatPrice(q.high, d));
  setText(row, 'low', formatPrice(q.low, d));
  setText(row, 'volume', formatVolume(q.volume));
  const trading = row.trading ?? (state?.seq !== undefined ? 'trading' : null);
  setText(row, 'trading', trading ?? '–');
  if (row.tr.dataset.trading !== (trading ?? 'unknown')) row.tr.dataset.trading = trading ?? 'unknown';
  renderRowAge(row, state, now);

  for (const field of FLASHING) {
    const direction = row.flash[field];
    if (!direction) continue;
    row.flash[field] = undefined;
    startFlash(row.cells[field], direction, now);
  }

  const stale = state ? state.stale : client.state !== 'open';
  const reason = state ? state.staleReason : client.state !== 'open' ? 'disconnected' : null;
  if (row.stale !== stale) {
    row.stale = stale;
    row.tr.dataset.stale = String(stale);
  }
  let badge = '';
  if (stale) badge = reason === 'disconnected' ? 'offline' : reason === 'age' ? 'stale' : reason === 'feed_down' ? 'feed down' : 'stale';
  else if (row.trading === 'halted') badge = 'halted';
  else if (!state || state.seq === undefined) badge = row.badgeText === 'no data' ? 'no data' : 'waiting';
  if (badge !== row.badge.textContent) {
    row.badge.textContent = badge;
    row.badge.dataset.kind = badge === 'halted' || badge === 'offline' || badge === 'feed down' ? 'bad' : 'warn';
  }

  if (row.sparkDirty && now - row.sparkDrawnAt >= SPARK_REDRAW_MS) drawSpark(row, now);
}

/**
 * Cell flashes are two static steps (strong, then faint, then none) rather
 * than a CSS animation: an animated background costs a style pass every
 * frame for every flashing cell, a class change costs one.
 */
const FLASH_STRONG_MS = 250;
const FLASH_FAINT_MS = 650;
const flashing = new Map(); // td -> { direction, since, step }

function startFlash(td, direction, now) {
  const current = flashing.get(td);
  if (current && current.direction === direction && current.step === 'strong') {
    current.since = now;
    return;
  }
  setFlashClass(td, `flash-${direction}`);
  flashing.set(td, { direction, since: now, step: 'strong' });
}

function advanceFlashes(now) {
  for (const [td, flash] of flashing) {
    const age = now - flash.since;
    if (age >= FLASH_FAINT_MS) {
      setFlashClass(td, '');
      flashing.delete(td);
    } else if (age >= FLASH_STRONG_MS && flash.step === 'strong') {
      flash.step = 'faint';
      setFlashClass(td, `flash-${flash.direction}-faint`);
    }
  }
}

function setFlashClass(td, cls) {
  if (td.dataset.flash) td.classList.remove(td.dataset.flash);
  if (cls) td.classList.add(cls);
  td.dataset.flash = cls;
}

const sparkColors = { up: '', down: '', flat: '' };

function readSparkColors() {
  const css = getComputedStyle(document.documentElement);
  sparkColors.up = css.getPropertyValue('--up').trim() || '#0a7f3f';
  sparkColors.down = css.getPropertyValue('--down').trim() || '#c42b2b';
  sparkColors.flat = css.getPropertyValue('--muted').trim() || '#888';
  sparkColors.theme = effectiveTheme();
}

function drawSpark(row, now) {
  row.sparkDirty = false;
  row.sparkDrawnAt = now;
  if (sparkColors.theme !== effectiveTheme()) readSparkColors();
  const canvas = row.canvas;
  const { ratio, width, height } = sparkSize;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    row.ctx = null;
  }
  const ctx = row.ctx ?? (row.ctx = canvas.getContext('2d'));
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const n = row.sparkLen;
  if (n < 2) return;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = row.spark[(row.sparkStart + i) % SPARK_POINTS];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const first = row.spark[row.sparkStart];
  const last = row.spark[(row.sparkStart + n - 1) % SPARK_POINTS];
  const span = max - min || 1;
  const pad = 2;
  ctx.beginPath();
  for (let i = 0; i < n; i++) {
    const v = row.spark[(row.sparkStart + i) % SPARK_POINTS];
    const x = (i / (SPARK_POINTS - 1)) * (width - pad * 2) + pad;
    const y = height - pad - ((v - min) / span) * (height - pad * 2);
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  }
  ctx.lineWidth = 1.5;
  ctx.lineJoin = 'round';
  ctx.strokeStyle = last > first ? sparkColors.up : last < first ? sparkColors.down : sparkColors.flat;
  ctx.stroke();
}

/**
 * The row's age: time since its last quote arrived, amber from half the
 * stale threshold, red from the threshold on (or when the symbol is stale
 * for another reason: feed down, link down).
 */
function renderRowAge(row, state, now) {
  const receivedAt = state?.receivedAt ?? 0;
  const age = receivedAt ? now - receivedAt : undefined;
  const staleMs = staleAfterSeconds * 1000;
  let level = 'none';
  if (state?.stale || (age !== undefined && age >= staleMs)) level = 'stale';
  else if (age !== undefined) level = age >= staleMs / 2 ? 'warn' : 'ok';
  setText(row, 'age', age === undefined ? '–' : ageText(age));
  if (row.ageLevel !== level) {
    row.ageLevel = level;
    row.cells.age.dataset.level = level;
  }
}

/** Ages move on without quotes: refresh them on the rows on screen. */
function renderAges(now) {
  for (const tr of visible) {
    const row = rows.get(tr.dataset.symbol);
    if (row) renderRowAge(row, client.get(row.symbol), now);
  }
}

function ageText(ms) {
  if (ms < 1000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
  return `${Math.floor(ms / 60_000)} min`;
}

/** Rows on screen (or close to it); only these are drawn. */
const visible = new Set();
const ROW_MIN_INTERVAL_MS = 80;
const rowObserver = new IntersectionObserver(
  (entries) => {
    for (const entry of entries) {
      if (entry.isIntersecting) {
        visible.add(entry.target);
        dirty.add(entry.target.dataset.symbol);
      } else {
        visible.delete(entry.target);
      }
    }
    scheduleRender();
  },
  { rootMargin: '200px 0px' },
);

let renderQueued = false;
let lastSecond = 0;
let lastHeader = 0;

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(render);
}

/**
 * Sparkline canvas size in CSS pixels, read once (before any DOM write of a
 * frame) whenever the layout may have changed: reading it per row after
 * writing text would force one layout per row.
 */
const sparkSize = { ratio: 1, width: 80, height: 22, stale: true };
window.addEventListener('resize', () => {
  sparkSize.stale = true;
  for (const row of rows.values()) row.sparkDirty = true;
});

function measureSparks() {
  const first = rows.values().next().value;
  if (!first) return;
  sparkSize.ratio = window.devicePixelRatio || 1;
  sparkSize.width = first.canvas.clientWidth || 80;
  sparkSize.height = first.canvas.clientHeight || 22;
  sparkSize.stale = false;
}

function render(time) {
  renderQueued = false;
  const now = Date.now();
  if (sparkSize.stale) measureSparks();
  for (const symbol of dirty) {
    const row = rows.get(symbol);
    if (!row) {
      dirty.delete(symbol);
      continue;
    }
    // Off-screen rows stay dirty until they scroll into view; a row is
    // redrawn at most every ROW_MIN_INTERVAL_MS (its latest value then).
    if (!visible.has(row.tr)) {
      row.flash = {};
      continue;
    }
    if (now - row.renderedAt < ROW_MIN_INTERVAL_MS) continue;
    row.renderedAt = now;
    renderRow(row, now);
    dirty.delete(symbol);
  }
  advanceFlashes(now);
  if (tapeDirty) renderTape();
  // Sparklines throttled in renderRow still need a later frame.
  for (const row of rows.values()) if (row.sparkDirty && visible.has(row.tr)) dirty.add(row.symbol);

  if (now - lastHeader >= 200) {
    lastHeader = now;
    renderConnection();
    renderAge(now);
    renderAges(now);
  }
  if (now - lastSecond >= 1000) {
    const elapsed = lastSecond ? (now - lastSecond) / 1000 : 1;
    lastSecond = now;
    everySecond(elapsed);
  }
  // Keep ticking while anything is live; quotes also request frames.
  scheduleRender();
  void time;
}

function renderAge(now) {
  let level = 'none';
  let text = '–';
  if (lastDataAt) {
    const age = now - lastDataAt;
    text = ageText(age);
    level = client.state !== 'open' || age > staleAfterSeconds * 1000 ? 'stale' : age > 2000 ? 'warn' : 'ok';
  } else if (client.state !== 'open') {
    level = 'stale';
  }
  if (el.ageValue.textContent !== text) el.ageValue.textContent = text;
  if (el.age.dataset.level !== level) el.age.dataset.level = level;
}

function everySecond(elapsed) {
  for (const row of rows.values()) {
    const ups = Math.round(row.ticks / elapsed);
    row.ticks = 0;
    if (ups !== row.ups || row.text.ups === undefined) {
      row.ups = ups;
      setText(row, 'ups', String(ups));
    }
  }
  el.rate.textContent = String(Math.round(quotesThisSecond / elapsed));
  quotesThisSecond = 0;
  const frames = client.stats.frames;
  el.statFrames.textContent = String(Math.round((frames - framesAtLastSecond) / elapsed));
  framesAtLastSecond = frames;
  el.statConflated.textContent = String(client.stats.conflated);
  el.statReconnects.textContent = String(client.stats.reconnects);
  // A sorted list follows the prices, once a second so rows do not jitter.
  if (sortKey) applyOrder();
}

// ---- start -------------------------------------------------------------------------------------

el.statUrl.textContent = client.url;
readSparkColors();
matchMedia('(prefers-color-scheme: dark)').addEventListener?.('change', () => {
  for (const row of rows.values()) row.sparkDirty = true;
});

client.connect().catch(() => {});
renderListControls();
addSymbols(watchlists.lists[watchlists.current], { reportErrors: true }).then(() => {
  const tape = params.get('trades');
  if (tape && rows.has(tape.toUpperCase())) selectTape(tape.toUpperCase());
});
afterWatchlistChange();
renderConnection();
scheduleRender();

// For debugging from the console and for the end-to-end test.
window.tickgate = { client, rows, watchlists };
