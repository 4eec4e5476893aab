// The dashboard in headless Chromium, served by a real gateway: live prices,
// adding symbols, inline errors (local and from the gateway), the
// disconnected indicator when the gateway stops and recovery when it comes
// back on the same port, 200 symbols ranked visible/background by what is on
// screen, the slow-consumer banner, the trades tape, phone width.
// Screenshots go to web/test-artifacts/.
//
// Needs /usr/bin/chromium (Debian package `chromium`) and playwright-core
// from web/node_modules; web/run-tests.sh installs both.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';

import { CHROMIUM, CHROMIUM_ARGS } from '../test-support/dashboard.js';
import { REPO_ROOT, startGateway, waitFor } from '../test-support/gateway.js';

const ARTIFACTS = join(REPO_ROOT, 'web', 'test-artifacts');

describe('dashboard in headless Chromium', { timeout: 180_000 }, () => {
  let gateway;
  let context;
  let userDataDir;
  const pageErrors = [];

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium (web/run-tests.sh does)`);
    mkdirSync(ARTIFACTS, { recursive: true });
    gateway = await startGateway({ args: ['--sim-rate', '2000'] });
    userDataDir = mkdtempSync(join(tmpdir(), 'tickgate-chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1200, height: 760 },
      colorScheme: 'light',
    });
  });

  after(async () => {
    await context?.close();
    await gateway?.stop();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  });

  async function openPage(query) {
    const page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(`${gateway.httpUrl}/${query}`);
    return page;
  }

  const lastPrice = (page, symbol) => page.locator(`[data-symbol="${symbol}"] [data-field="last"]`).textContent();

  /** Waits until every listed row shows a number in its Last column. */
  async function waitForPrices(page, symbols, timeout = 15_000) {
    await page.waitForFunction(
      (list) => list.every((s) => /\d/.test(document.querySelector(`[data-symbol="${s}"] [data-field="last"]`)?.textContent ?? '')),
      symbols,
      { timeout },
    );
  }

  /** Waits until some of `symbols` show a Last price different from `before`. */
  async function waitForPriceChange(page, before, timeout = 15_000) {
    await page.waitForFunction(
      (prev) => Object.entries(prev).some(([s, text]) => document.querySelector(`[data-symbol="${s}"] [data-field="last"]`)?.textContent !== text),
      before,
      { timeout },
    );
  }

  async function pricesOf(page, symbols) {
    return Object.fromEntries(await Promise.all(symbols.map(async (s) => [s, await lastPrice(page, s)])));
  }

  test('the page connects, shows live prices that change, and takes new symbols from the input', async () => {
    const page = await openPage('?symbols=AAPL,MSFT,NVDA,AMZN,GOOGL,META,TSLA,AVGO,JPM,V,XOM');
    await page.locator('#conn[data-state="open"]').waitFor({ timeout: 15_000 });
    await waitForPrices(page, ['AAPL', 'MSFT', 'NVDA']);
    const before = await pricesOf(page, ['AAPL', 'MSFT', 'NVDA', 'AMZN', 'GOOGL']);
    await waitForPriceChange(page, before);

    await page.locator('#symbol-input').fill('nflx, orcl');
    await page.locator('#symbol-input').press('Enter');
    await waitForPrices(page, ['NFLX', 'ORCL']);
    assert.equal(await page.locator('#rows .row').count(), 13);
    assert.equal(await page.locator('#symbol-input').inputValue(), '');
    assert.equal((await page.locator('#form-error').textContent()).trim(), '');

    // Let the sparklines and rates fill in, then keep a picture.
    await page.waitForTimeout(2500);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-light.png') });
    await page.locator('#theme-toggle').click();
    assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), 'dark');
    await page.waitForTimeout(400);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-dark.png') });

    await page.locator('[data-symbol="ORCL"] .c-rm button').click();
    assert.equal(await page.locator('[data-symbol="ORCL"]').count(), 0);
    await page.close();
  });

  test('a malformed symbol is refused inline before anything is sent', async () => {
    const page = await openPage('?symbols=AAPL');
    await page.locator('#conn[data-state="open"]').waitFor();
    await page.locator('#symbol-input').fill('IBM ??');
    await page.locator('#symbol-input').press('Enter');
    await page.locator('#form-error', { hasText: '??' }).waitFor();
    assert.equal(await page.locator('#symbol-input').getAttribute('aria-invalid'), 'true');
    assert.equal(await page.locator('#symbol-input').inputValue(), '??', 'the bad symbol stays in the box');
    await waitForPrices(page, ['IBM']);
    assert.equal(await page.locator('[data-symbol="??"]').count(), 0);
    await page.close();
  });

  test("the gateway's error for a refused symbol is shown inline", async () => {
    const page = await openPage('?symbols=AAPL&validate=0');
    await page.locator('#conn[data-state="open"]').waitFor();
    await page.locator('#symbol-input').fill('bad$');
    await page.locator('#add-button').click();
    const error = page.locator('#form-error', { hasText: 'BAD$' });
    await error.waitFor();
    const text = await error.textContent();
    assert.match(text, /BAD\$: .+/, 'symbol and the gateway message');
    await page.waitForFunction(() => !document.querySelector('[data-symbol="BAD$"]'));
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-inline-error.png') });
    await page.close();
  });

  test('stopping the gateway shows the disconnected state; restarting it on the same port recovers', async () => {
    const symbols = ['AAPL', 'MSFT', 'NVDA', 'AMZN'];
    const page = await openPage(`?symbols=${symbols.join(',')}`);
    await page.locator('#conn[data-state="open"]').waitFor();
    await waitForPrices(page, symbols);

    const port = gateway.port;
    await gateway.stop();
    await page.locator('#conn[data-state="reconnecting"]').waitFor({ timeout: 10_000 });
    await page.locator('#banner:not([hidden])').waitFor();
    assert.match(await page.locator('#banner').textContent(), /Disconnected/);
    await page.waitForFunction(() => [...document.querySelectorAll('#rows .row')].every((tr) => tr.dataset.stale === 'true'));
    await page.locator('#age[data-level="stale"]').waitFor();
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-disconnected.png') });
    const frozen = await pricesOf(page, symbols);

    gateway = await startGateway({ port, args: ['--sim-rate', '2000'] });
    await page.locator('#conn[data-state="open"]').waitFor({ timeout: 20_000 });
    await page.waitForFunction(() => [...document.querySelectorAll('#rows .row')].every((tr) => tr.dataset.stale === 'false'), null, { timeout: 15_000 });
    await waitForPriceChange(page, frozen);
    assert.equal(await page.locator('#banner').isHidden(), true);
    await page.waitForFunction(() => document.getElementById('stat-reconnects').textContent === '1');
    await page.close();
  });

  test('200 symbols render smoothly', async () => {
    const page = await openPage('?symbols=200');
    await page.locator('#conn[data-state="open"]').waitFor();
    assert.equal(await page.locator('#rows .row').count(), 200);
    await page.waitForFunction(() => [...window.tickgate.client.quotes.values()].filter((q) => q.seq !== undefined).length >= 190, null, { timeout: 20_000 });
    await waitForPrices(page, ['AAPL', 'MSFT']);
    const { fps, longestFrameMs } = await page.evaluate(
      () =>
        new Promise((done) => {
          const start = performance.now();
          let frames = 0;
          let previous = start;
          let longest = 0;
          const step = (now) => {
            frames += 1;
            longest = Math.max(longest, now - previous);
            previous = now;
            if (now - start < 3000) requestAnimationFrame(step);
            else done({ fps: (frames * 1000) / (now - start), longestFrameMs: longest });
          };
          requestAnimationFrame(step);
        }),
    );
    // A shared 2-core machine also runs the gateway: be generous, but a page
    // that renders per message or blocks the main thread falls far below this.
    assert.ok(fps >= 20, `only ${fps.toFixed(1)} frames/s with 200 symbols`);
    assert.ok(longestFrameMs < 1000, `a frame took ${longestFrameMs.toFixed(0)} ms`);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-200.png') });
    // Rows on screen are ranked visible with the gateway, the rest background.
    const rank = (symbol) => page.evaluate((s) => window.tickgate.client.priorities.get(s) ?? null, symbol);
    await page.waitForFunction(() => window.tickgate.client.priorities.get('AAPL') === 'visible', null, { timeout: 10_000 });
    assert.equal(await rank('YUM'), 'background');
    const ranks = async () => (await gateway.connections()).find((c) => c.subscriptions === 200)?.mode;
    await waitFor(async () => (await ranks())?.visible > 0, { what: 'visible rows on the gateway' });
    const mode = await ranks();
    assert.ok(mode.visible < 60, `${mode.visible} rows ranked visible`);
    assert.equal(mode.visible + mode.background, 200);
    // Rows off screen are drawn once they scroll into view, and ranks follow.
    await page.locator('[data-symbol="YUM"]').scrollIntoViewIfNeeded();
    await waitForPrices(page, ['YUM', 'CTVA']);
    await page.waitForFunction(() => window.tickgate.client.priorities.get('YUM') === 'visible', null, { timeout: 10_000 });
    assert.equal(await rank('AAPL'), 'background');
    assert.equal(await page.locator('[data-symbol="YUM"]').getAttribute('data-priority'), 'visible');
    await page.close();
  });

  test('a slow notice shows a banner until restored; a 4008 close is explained while reconnecting', async () => {
    const page = await openPage('?symbols=AAPL,MSFT');
    await page.locator('#conn[data-state="open"]').waitFor();
    await waitForPrices(page, ['AAPL', 'MSFT']);
    assert.equal(await page.locator('#slow-banner').isHidden(), true);
    // A gateway cannot be made to find a browser slow on demand: feed the
    // client the notices it would send.
    const frame = (f) => page.evaluate((text) => window.tickgate.client._onFrame(text), JSON.stringify(f));
    await frame({ type: 'slow', state: 'slowed', priority: 'background', rate_hz: 1.0, symbols: ['MSFT'], behind_ms: 2040, message: 'not keeping up' });
    await page.locator('#slow-banner:not([hidden])').waitFor();
    assert.match(await page.locator('#slow-banner').textContent(), /not keeping up.*off-screen symbols to 1 update\/s/);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-slow.png') });
    await frame({ type: 'slow', state: 'restored', behind_ms: 5210, message: 'caught up' });
    await page.locator('#slow-banner').waitFor({ state: 'hidden' });

    await page.evaluate(() => {
      const { client } = window.tickgate;
      client._drop(client._socket, 4008, 'slow consumer: stopped reading for longer than the gateway allows');
    });
    await page.locator('#banner', { hasText: '4008' }).waitFor();
    await page.locator('#conn[data-state="open"]').waitFor({ timeout: 15_000 });
    await page.locator('#banner').waitFor({ state: 'hidden' });
    await page.close();
  });

  test('the trades tape shows every trade of the selected symbol', async () => {
    const page = await openPage('?symbols=AAPL,MSFT,NVDA&trades=AAPL');
    await page.locator('#tape:not([hidden])').waitFor();
    assert.equal(await page.locator('#tape-title').textContent(), 'Trades · AAPL');
    await page.waitForFunction(() => document.querySelectorAll('#tape-list li').length >= 3, null, { timeout: 15_000 });
    const firstRow = await page.locator('#tape-list li').first().textContent();
    assert.match(firstRow, /\d{2}:\d{2}:\d{2}.*\d+\.\d{2}/);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-tape.png') });
    // Another symbol: the tape switches, and only that subscription takes trades.
    await page.locator('[data-symbol="MSFT"] .c-sym').click();
    assert.equal(await page.locator('#tape-title').textContent(), 'Trades · MSFT');
    await page.waitForFunction(() => window.tickgate.client.hasTrades('MSFT') && !window.tickgate.client.hasTrades('AAPL'));
    await page.waitForFunction(() => document.querySelectorAll('#tape-list li').length >= 1, null, { timeout: 15_000 });
    await waitFor(async () => (await gateway.connections()).some((c) => c.subscriptions === 3 && c.mode.trades === 1), { what: 'one trades subscription on the gateway' });
    await page.locator('#tape-close').click();
    await page.locator('#tape').waitFor({ state: 'hidden' });
    await page.waitForFunction(() => !window.tickgate.client.hasTrades('MSFT'));
    await page.close();
  });

  test('the page fits a phone screen', async () => {
    const page = await openPage('?symbols=AAPL,MSFT,NVDA,TSLA&theme=dark');
    await page.setViewportSize({ width: 390, height: 760 });
    await page.locator('#conn[data-state="open"]').waitFor();
    await waitForPrices(page, ['AAPL', 'MSFT']);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `page is ${overflow}px wider than the screen`);
    const tableOverflow = await page.evaluate(() => {
      const wrap = document.querySelector('.table-wrap');
      return wrap.scrollWidth - wrap.clientWidth;
    });
    assert.ok(tableOverflow <= 1, `the watchlist needs ${tableOverflow}px of sideways scrolling`);
    assert.equal(await page.locator('[data-symbol="AAPL"] [data-field="bid"]').isVisible(), true, 'bid stays on phones');
    assert.equal(await page.locator('[data-symbol="AAPL"] [data-field="ask"]').isVisible(), true, 'ask stays on phones');
    assert.equal(await page.locator('[data-symbol="AAPL"] [data-field="volume"]').isVisible(), false, 'volume gives way on phones');
    assert.equal(await page.locator('[data-symbol="AAPL"] [data-field="last"]').isVisible(), true);
    await page.waitForTimeout(1500);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-phone.png') });
    await page.close();
  });

  test('the theme follows the system setting until the toggle picks one', async () => {
    const page = await openPage('?symbols=AAPL');
    await page.evaluate(() => localStorage.removeItem('tickgate.theme'));
    const background = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.reload();
    assert.equal(await background(), 'rgb(15, 18, 22)');
    await page.emulateMedia({ colorScheme: 'light' });
    assert.equal(await background(), 'rgb(246, 247, 249)');
    await page.locator('#theme-toggle').click();
    assert.equal(await background(), 'rgb(15, 18, 22)');
    await page.reload();
    assert.equal(await background(), 'rgb(15, 18, 22)', 'the choice is remembered');
    await page.close();
  });

  test('no script errors on any page', () => {
    assert.deepEqual(pageErrors, []);
  });
});
