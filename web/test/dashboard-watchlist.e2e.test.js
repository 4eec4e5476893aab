// The dashboard as a desk watchlist, in headless Chromium against real
// gateways: sorting (mouse and keyboard), sizes and spread, day
// open/high/low, price precision per instrument, per-row age going amber and
// red when a feed goes silent, trading status, the honest link indicator
// (gateway paused with SIGSTOP, then killed), named watchlists kept across
// reloads, errors that clear, keyboard paths, the narrow layout, and axe-core
// on the live page (wide, narrow, dark, stale rows).
//
// Most data-exact tests use a gateway fed only by a TCP feed the test writes
// (web/test-support/feed.js), so every price on the page is known.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';

import { assertAccessible, cellText, CHROMIUM, CHROMIUM_ARGS, shownOrder, waitForPrices } from '../test-support/dashboard.js';
import { startFeed } from '../test-support/feed.js';
import { REPO_ROOT, startGateway } from '../test-support/gateway.js';

const ARTIFACTS = join(REPO_ROOT, 'web', 'test-artifacts');

/** The feed's book: every value the page should show. */
const BOOK = [
  { symbol: 'AAPL', bid: 231.38, ask: 231.43, bid_size: 700, ask_size: 1300, last: 231.41, last_size: 100, open: 224.1, high: 231.9, low: 223.8, prev_close: 224.18 },
  { symbol: 'PENNY', bid: 0.1234, ask: 0.1236, bid_size: 250000, ask_size: 90000, last: 0.1235, prev_close: 0.12 },
  { symbol: 'BIG', bid: 101.5, ask: 101.75, bid_size: 5, ask_size: 12, last: 101.6 },
  { symbol: 'NOLAST', bid: 50, ask: 50.5, bid_size: 100, ask_size: 100 },
];
const BOOK_SYMBOLS = BOOK.map((q) => q.symbol);

describe('dashboard watchlist in headless Chromium', { timeout: 240_000 }, () => {
  let browser;
  let feed;
  let fed; // gateway fed by `feed` only
  let sim; // gateway on its simulator
  const pageErrors = [];

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium (web/run-tests.sh does)`);
    mkdirSync(ARTIFACTS, { recursive: true });
    feed = await startFeed();
    fed = await startGateway({ args: ['--feed', feed.spec] });
    await feed.connected();
    await feed.send(BOOK);
    sim = await startGateway({ args: ['--sim-rate', '2000'] });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  });

  after(async () => {
    await browser?.close();
    await fed?.stop();
    await sim?.stop();
    await feed?.stop();
  });

  /** A page in a fresh browser context (its own localStorage). */
  async function openPage(gateway, query = '', { width = 1200, height = 760, context } = {}) {
    const ctx = context ?? (await browser.newContext({ viewport: { width, height }, colorScheme: 'light' }));
    const page = await ctx.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(`${gateway.httpUrl}/${query}`);
    await page.locator('#conn[data-state="open"]').waitFor({ timeout: 15_000 });
    return page;
  }

  test('bid and ask sizes, spread, day open/high/low at each instrument\'s precision', async () => {
    const page = await openPage(fed, `?symbols=${BOOK_SYMBOLS.join(',')}`);
    await waitForPrices(page, ['AAPL', 'PENNY', 'BIG']);
    assert.equal(await cellText(page, 'AAPL', 'bid'), '231.38');
    assert.equal(await cellText(page, 'AAPL', 'ask'), '231.43');
    assert.equal(await cellText(page, 'AAPL', 'size'), '700 × 1,300');
    assert.equal(await cellText(page, 'AAPL', 'spread'), '0.05');
    assert.equal(await cellText(page, 'AAPL', 'open'), '224.10');
    assert.equal(await cellText(page, 'AAPL', 'high'), '231.90');
    assert.equal(await cellText(page, 'AAPL', 'low'), '223.80');
    assert.equal(await cellText(page, 'AAPL', 'change'), '+7.23');
    // Four decimals seen: the whole row speaks in four.
    assert.equal(await cellText(page, 'PENNY', 'bid'), '0.1234');
    assert.equal(await cellText(page, 'PENNY', 'ask'), '0.1236');
    assert.equal(await cellText(page, 'PENNY', 'spread'), '0.0002');
    assert.equal(await cellText(page, 'PENNY', 'size'), '250.0K × 90,000');
    // 101.5 is quoted in cents like its ask: two decimals, not "101.5".
    assert.equal(await cellText(page, 'BIG', 'bid'), '101.50');
    assert.equal(await cellText(page, 'BIG', 'spread'), '0.25');
    assert.equal(await cellText(page, 'NOLAST', 'last'), '–');
    await page.context().close();
  });

  test('columns sort by click, again in reverse, and from the keyboard; aria-sort follows', async () => {
    const page = await openPage(fed, `?symbols=${BOOK_SYMBOLS.join(',')}`);
    await waitForPrices(page, ['AAPL', 'PENNY', 'BIG']);
    assert.deepEqual(await shownOrder(page), BOOK_SYMBOLS, 'watchlist order before any sort');
    const lastHeader = page.locator('#head-row [data-sort="last"]');
    await lastHeader.locator('button').click();
    assert.equal(await lastHeader.getAttribute('aria-sort'), 'ascending');
    assert.deepEqual(await shownOrder(page), ['PENNY', 'BIG', 'AAPL', 'NOLAST'], 'ascending, no value last');
    await lastHeader.locator('button').click();
    assert.equal(await lastHeader.getAttribute('aria-sort'), 'descending');
    assert.deepEqual(await shownOrder(page), ['AAPL', 'BIG', 'PENNY', 'NOLAST'], 'descending, no value still last');

    const symbolHeader = page.locator('#head-row [data-sort="symbol"]');
    await symbolHeader.locator('button').focus();
    await page.keyboard.press('Enter');
    assert.equal(await symbolHeader.getAttribute('aria-sort'), 'ascending');
    assert.equal(await lastHeader.getAttribute('aria-sort'), null, 'only one column is sorted');
    assert.deepEqual(await shownOrder(page), ['AAPL', 'BIG', 'NOLAST', 'PENNY']);
    await page.keyboard.press(' ');
    assert.equal(await symbolHeader.getAttribute('aria-sort'), 'descending');
    assert.deepEqual(await shownOrder(page), ['PENNY', 'NOLAST', 'BIG', 'AAPL']);

    const spreadHeader = page.locator('#head-row [data-sort="spread"] button');
    await spreadHeader.click();
    assert.deepEqual(await shownOrder(page), ['PENNY', 'AAPL', 'BIG', 'NOLAST']);
    await page.context().close();
  });

  test('a row\'s age is visible and turns amber, then red with a stale mark, when its feed goes silent', async () => {
    // staleAfter 6 s: amber from 3 s, red from 6 s. Heartbeats keep the link live meanwhile.
    const page = await openPage(fed, '?symbols=AGE1,AAPL&staleAfter=6');
    await feed.send([{ symbol: 'AGE1', bid: 10, ask: 10.02, last: 10.01 }]);
    await waitForPrices(page, ['AGE1']);
    const age = page.locator('#rows [data-symbol="AGE1"] [data-field="age"]');
    assert.match(await age.textContent(), /^\d+(\.\d)? s$/);
    await page.locator('#rows [data-symbol="AGE1"] [data-field="age"][data-level="warn"]').waitFor({ timeout: 15_000 });
    const amber = await age.evaluate((td) => getComputedStyle(td).color);
    await page.locator('#rows [data-symbol="AGE1"] [data-field="age"][data-level="stale"]').waitFor({ timeout: 15_000 });
    const red = await age.evaluate((td) => getComputedStyle(td).color);
    assert.equal(amber, 'rgb(138, 82, 0)', 'amber text');
    assert.equal(red, 'rgb(196, 43, 43)', 'red text');
    await page.locator('#rows [data-symbol="AGE1"][data-stale="true"]').waitFor();
    assert.equal(await page.locator('#rows [data-symbol="AGE1"] .badge').textContent(), 'stale');
    assert.equal(await page.locator('#conn').getAttribute('data-link'), 'live', 'a silent feed is not a silent link');
    // Dimmed stale rows keep AA contrast.
    await assertAccessible(page, 'stale rows');
    await page.screenshot({ path: join(ARTIFACTS, 'watchlist-stale.png') });

    // The feed speaks again: the row is fresh and green-level at once.
    await feed.send([{ symbol: 'AGE1', bid: 10.01, ask: 10.03, last: 10.02 }]);
    await page.locator('#rows [data-symbol="AGE1"][data-stale="false"] [data-field="age"][data-level="ok"]').waitFor({ timeout: 15_000 });
    await page.context().close();
  });

  test('trading status frames mark rows halted and back; malformed ones change nothing', async () => {
    // The page's side of the `trading` extension, fed to the page's client as
    // the gateway would send it (the gateway path is the next test).
    const page = await openPage(sim, '?symbols=AAPL,MSFT,NVDA');
    await waitForPrices(page, ['AAPL', 'MSFT', 'NVDA']);
    const frame = (f) => page.evaluate((text) => window.tickgate.client._onFrame(text), typeof f === 'string' ? f : JSON.stringify(f));
    assert.equal(await cellText(page, 'AAPL', 'trading'), 'trading');
    await frame({ type: 'trading', state: 'halted', symbols: ['AAPL'] });
    await page.locator('#rows [data-symbol="AAPL"][data-trading="halted"]').waitFor();
    assert.equal(await cellText(page, 'AAPL', 'trading'), 'halted');
    assert.equal(await page.locator('#rows [data-symbol="AAPL"] .badge').textContent(), 'halted');
    assert.equal(await page.locator('#rows [data-symbol="MSFT"]').getAttribute('data-trading'), 'trading');
    await assertAccessible(page, 'a halted row');

    // Hostile and malformed frames: ignored, the page keeps updating.
    for (const bad of [
      { type: 'trading', state: 'closed', symbols: ['MSFT'] },
      { type: 'trading', state: 'halted', symbols: 'MSFT' },
      { type: 'trading', state: 'halted', symbols: [null, 7, { s: 'MSFT' }, 'NOT_ON_LIST', 'x'.repeat(100_000)] },
      { type: 'trading', state: 'halted' },
      { type: 'trading', symbols: ['MSFT'] },
      '{"type":"trading","state":"halted","symbols":["MSFT"',
    ]) {
      await frame(bad);
    }
    const before = await cellText(page, 'MSFT', 'last');
    await page.waitForFunction((prev) => document.querySelector('#rows [data-symbol="MSFT"] [data-field="last"]').textContent !== prev, before, { timeout: 15_000 });
    assert.equal(await page.locator('#rows [data-symbol="MSFT"]').getAttribute('data-trading'), 'trading');
    assert.equal(await page.locator('#rows [data-symbol="NOT_ON_LIST"]').count(), 0);

    await frame({ type: 'trading', state: 'trading', symbols: ['AAPL'] });
    await page.locator('#rows [data-symbol="AAPL"][data-trading="trading"]').waitFor();
    assert.equal(await page.locator('#rows [data-symbol="AAPL"] .badge').textContent(), '');
    await page.context().close();
  });

  test(
    'a halted symbol shows halted from the gateway right after its snapshot',
    async () => {
      await feed.send([{ symbol: 'HALT1', bid: 5, ask: 5.01, last: 5 }, { symbol: 'HALT1', trading: 'halted' }]);
      const page = await openPage(fed, '?symbols=HALT1,AAPL');
      await waitForPrices(page, ['HALT1']);
      try {
        await page.locator('#rows [data-symbol="HALT1"][data-trading="halted"]').waitFor({ timeout: 10_000 });
        assert.equal(await page.locator('#rows [data-symbol="AAPL"]').getAttribute('data-trading'), 'trading');
        await feed.send([{ symbol: 'HALT1', trading: 'trading' }]);
        await page.locator('#rows [data-symbol="HALT1"][data-trading="trading"]').waitFor({ timeout: 10_000 });
      } finally {
        await page.context().close();
      }
    },
  );

  test('the link goes amber while the gateway is paused, back to live, red when it is killed; only changes are announced', async () => {
    const own = await startGateway({ args: ['--sim-rate', '200'] });
    const page = await openPage(own, '?symbols=AAPL,MSFT');
    try {
      await waitForPrices(page, ['AAPL', 'MSFT']);
      // Record every link state the pill shows and every change of a live region.
      await page.evaluate(() => {
        const log = { links: [], live: [], pillTexts: new Set() };
        window.linkLog = log;
        const conn = document.getElementById('conn');
        new MutationObserver(() => {
          if (log.links.at(-1) !== conn.dataset.link) log.links.push(conn.dataset.link);
          log.pillTexts.add(conn.textContent.trim());
        }).observe(conn, { attributes: true, childList: true, subtree: true, characterData: true });
        for (const region of document.querySelectorAll('[aria-live], [role="status"], [role="alert"]')) {
          new MutationObserver(() => log.live.push(`${region.id}: ${region.textContent.trim()}`)).observe(region, { childList: true, subtree: true, characterData: true });
        }
      });
      assert.equal(await page.locator('#conn').getAttribute('data-link'), 'live');

      own.pause();
      await page.waitForFunction(() => window.linkLog.links.includes('quiet'), null, { timeout: 30_000 });
      assert.match(await page.locator('#conn-text').textContent(), /no data for \d+ s|reconnecting/);
      own.resume();
      await page.locator('#conn[data-link="live"]').waitFor({ timeout: 30_000 });
      await page.screenshot({ path: join(ARTIFACTS, 'watchlist-link-live.png') });

      process.kill(own.pid, 'SIGKILL');
      await own.exited;
      await page.locator('#conn[data-link="down"]').waitFor({ timeout: 30_000 });
      // The countdown ticks in the pill…
      await page.waitForFunction(() => [...window.linkLog.pillTexts].filter((t) => /reconnecting in/.test(t)).length >= 4, null, { timeout: 30_000 });
      const log = await page.evaluate(() => ({ links: window.linkLog.links, live: window.linkLog.live }));
      // …but no live region repeats it.
      assert.deepEqual(log.live.filter((line) => /reconnecting in|\d+(\.\d)? s\b/.test(line)), [], 'no countdown in a live region');
      const announced = log.live.filter((line) => line.startsWith('link-announce:'));
      assert.ok(announced.length <= 4, `announced ${announced.length} times: ${announced.join(' | ')}`);
      assert.ok(announced.some((line) => /No data from the gateway/.test(line)), 'quiet announced');
      assert.ok(announced.at(-1).includes('Disconnected'), 'down announced last');
      const colours = await page.locator('#conn').evaluate((conn) => getComputedStyle(conn).color);
      assert.equal(colours, 'rgb(196, 43, 43)', 'red when down');
    } finally {
      await page.context().close();
      await own.stop();
    }
  });

  test('named watchlists: create, switch, delete, kept across reloads', async () => {
    const context = await browser.newContext({ viewport: { width: 1200, height: 760 }, colorScheme: 'light' });
    // The older single saved list becomes "Main".
    await context.addInitScript(() => {
      if (!sessionStorage.getItem('seeded')) {
        sessionStorage.setItem('seeded', '1');
        localStorage.setItem('tickgate.watchlist', JSON.stringify(['IBM', 'ORCL']));
      }
    });
    const page = await openPage(sim, '', { context });
    await waitForPrices(page, ['IBM', 'ORCL']);
    assert.equal(await page.locator('#list-select').inputValue(), 'Main');

    // A hostile name is only text; a duplicate name is refused inline, and the error clears on edit.
    const hostile = '<img src=x onerror="window.pwned=1">';
    await page.locator('#list-name').fill(hostile);
    await page.locator('#list-create').click();
    assert.equal(await page.locator('#list-select').inputValue(), hostile);
    assert.equal(await page.locator('#rows .row').count(), 0);
    await page.locator('#list-name').fill('Main');
    await page.locator('#list-create').click();
    await page.locator('#form-error', { hasText: 'exists' }).waitFor();
    assert.equal(await page.locator('#list-name').getAttribute('aria-invalid'), 'true');
    await page.locator('#list-name').fill('Tech');
    assert.equal((await page.locator('#form-error').textContent()).trim(), '');
    assert.equal(await page.locator('#list-name').getAttribute('aria-invalid'), null);
    await page.locator('#list-create').click();
    assert.equal(await page.locator('#list-select').inputValue(), 'Tech');
    await page.locator('#symbol-input').fill('nvda amd');
    await page.locator('#symbol-input').press('Enter');
    await waitForPrices(page, ['NVDA', 'AMD']);

    await page.locator('#list-select').selectOption('Main');
    assert.deepEqual(await shownOrder(page), ['IBM', 'ORCL']);
    await waitForPrices(page, ['IBM', 'ORCL']);
    await page.waitForFunction(() => !window.tickgate.client.desired.has('NVDA'), null, { timeout: 10_000 });

    await page.reload();
    await page.locator('#conn[data-state="open"]').waitFor();
    assert.equal(await page.locator('#list-select').inputValue(), 'Main');
    assert.deepEqual(await page.locator('#list-select option').evaluateAll((os) => os.map((o) => o.value)), ['Main', hostile, 'Tech']);
    assert.deepEqual(await shownOrder(page), ['IBM', 'ORCL']);
    await page.locator('#list-select').selectOption('Tech');
    assert.deepEqual(await shownOrder(page), ['NVDA', 'AMD']);
    await waitForPrices(page, ['NVDA', 'AMD']);

    await page.locator('#list-delete').click();
    assert.deepEqual(await page.locator('#list-select option').evaluateAll((os) => os.map((o) => o.value)), ['Main', hostile]);
    await page.locator('#list-select').selectOption(hostile);
    await page.locator('#list-delete').click();
    assert.equal(await page.locator('#list-delete').isDisabled(), true, 'the last list stays');
    await page.reload();
    await page.locator('#conn[data-state="open"]').waitFor();
    assert.deepEqual(await page.locator('#list-select option').evaluateAll((os) => os.map((o) => o.value)), ['Main']);
    assert.deepEqual(await shownOrder(page), ['IBM', 'ORCL']);
    assert.equal(await page.evaluate(() => window.pwned), undefined);

    // Corrupt storage: the page starts anyway, on the default list.
    await page.evaluate(() => localStorage.setItem('tickgate.watchlists', '{"lists":{"A":"not a list"},"current":7'));
    await page.reload();
    await page.locator('#conn[data-state="open"]').waitFor();
    assert.equal(await page.locator('#list-select').inputValue(), 'Main');
    await waitForPrices(page, ['IBM']);
    await context.close();
  });

  test('"already on the watchlist" clears as soon as the input changes', async () => {
    const page = await openPage(sim, '?symbols=AAPL,MSFT');
    await waitForPrices(page, ['AAPL']);
    await page.locator('#symbol-input').fill('aapl');
    await page.locator('#symbol-input').press('Enter');
    await page.locator('#form-error', { hasText: 'already on the watchlist' }).waitFor();
    assert.equal(await page.locator('#symbol-input').getAttribute('aria-invalid'), 'true');
    await page.locator('#symbol-input').pressSequentially('n');
    assert.equal((await page.locator('#form-error').textContent()).trim(), '');
    assert.equal(await page.locator('#symbol-input').getAttribute('aria-invalid'), null);
    await page.context().close();
  });

  test('Tab reaches the input, buttons, column headers, rows and the trades tape; arrows move between rows', async () => {
    const page = await openPage(sim, '?symbols=AAPL,MSFT,NVDA,AMZN&trades=AAPL');
    await waitForPrices(page, ['AAPL', 'MSFT', 'NVDA', 'AMZN']);
    await page.locator('#tape:not([hidden])').waitFor();
    const describe = () =>
      page.evaluate(() => {
        const a = document.activeElement;
        if (a.classList.contains('row')) return `row:${a.dataset.symbol}`;
        if (a.closest('#head-row')) return `sort:${a.closest('[data-sort]').dataset.sort}`;
        return a.id || a.tagName.toLowerCase();
      });
    await page.locator('#theme-toggle').focus();
    const stops = [];
    for (let i = 0; i < 40; i++) {
      await page.keyboard.press('Tab');
      const stop = await describe();
      if (stops.includes(stop)) break;
      stops.push(stop);
    }
    for (const wanted of ['symbol-input', 'add-button', 'load-top', 'clear-all', 'list-select', 'list-create', 'tape-close', 'tape-list', 'sort:symbol', 'sort:last', 'row:AAPL']) {
      assert.ok(stops.includes(wanted), `Tab never reached ${wanted}: ${stops.join(' → ')}`);
    }
    assert.equal(stops.filter((s) => s.startsWith('row:')).length, 1, `the rows are one Tab stop: ${stops.join(' → ')}`);
    assert.ok(stops.indexOf('symbol-input') < stops.indexOf('row:AAPL'));

    await page.locator('#rows [data-symbol="AAPL"]').focus();
    await page.keyboard.press('ArrowDown');
    assert.equal(await describe(), 'row:MSFT');
    await page.keyboard.press('ArrowDown');
    assert.equal(await describe(), 'row:NVDA');
    await page.keyboard.press('ArrowUp');
    assert.equal(await describe(), 'row:MSFT');
    await page.keyboard.press('End');
    assert.equal(await describe(), 'row:AMZN');
    await page.keyboard.press('Home');
    assert.equal(await describe(), 'row:AAPL');
    await page.keyboard.press('ArrowUp');
    assert.equal(await describe(), 'row:AAPL', 'stays on the first row');
    // Enter opens the focused row's tape; Tab from the page start still finds that one row.
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('Enter');
    assert.equal(await page.locator('#tape-title').textContent(), 'Trades · MSFT');
    assert.equal(await page.locator('#rows .row[tabindex="0"]').getAttribute('data-symbol'), 'MSFT');
    // Delete removes the focused row and focus moves to the next one.
    await page.keyboard.press('Delete');
    assert.equal(await page.locator('#rows [data-symbol="MSFT"]').count(), 0);
    assert.equal(await describe(), 'row:NVDA');
    await page.context().close();
  });

  test('at 420 px bid and ask stay; the least important columns give way; axe finds nothing serious', async () => {
    const page = await openPage(sim, '?symbols=AAPL,MSFT,NVDA,TSLA,BRK.B', { width: 420, height: 800 });
    await waitForPrices(page, ['AAPL', 'MSFT']);
    for (const field of ['bid', 'ask', 'last', 'change_pct']) {
      assert.equal(await page.locator(`#rows [data-symbol="AAPL"] [data-field="${field}"]`).isVisible(), true, `${field} visible at 420 px`);
      assert.match(await cellText(page, 'AAPL', field), /\d/, `${field} shows a number`);
    }
    for (const field of ['ups', 'open', 'size', 'volume']) {
      assert.equal(await page.locator(`#rows [data-symbol="AAPL"] [data-field="${field}"]`).isVisible(), false, `${field} gives way at 420 px`);
    }
    const overflow = await page.evaluate(() => {
      const wrap = document.querySelector('.table-wrap');
      return { page: document.documentElement.scrollWidth - window.innerWidth, table: wrap.scrollWidth - wrap.clientWidth };
    });
    assert.ok(overflow.page <= 1 && overflow.table <= 1, `sideways overflow ${JSON.stringify(overflow)}`);
    await assertAccessible(page, 'the 420 px layout');
    await page.screenshot({ path: join(ARTIFACTS, 'watchlist-narrow.png') });
    await page.context().close();
  });

  test('axe finds no serious or critical violation on the live page, light and dark', async () => {
    for (const theme of ['light', 'dark']) {
      const page = await openPage(sim, `?symbols=AAPL,MSFT,NVDA,AMZN,GOOGL,META&theme=${theme}&trades=AAPL`);
      await waitForPrices(page, ['AAPL', 'MSFT', 'NVDA']);
      await page.waitForFunction(() => document.querySelectorAll('#tape-list li').length >= 1, null, { timeout: 15_000 });
      await page.locator('#head-row [data-sort="change_pct"] button').click();
      await assertAccessible(page, `the ${theme} theme`);
      await page.context().close();
    }
  });

  test('no script errors on any page', () => {
    assert.deepEqual(pageErrors, []);
  });
});
