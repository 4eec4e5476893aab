// Regenerates the dashboard pictures in docs/: dashboard.png (the README's,
// wide, light), dashboard-narrow.png (420 px) and dashboard-dark.png.
//
//   cargo build --bin tickgate && node web/screenshots.js
//
// Starts the gateway ($TICKGATE_BIN, default target/debug/tickgate) on its
// simulator with a fixed seed, opens the page in headless Chromium
// (/usr/bin/chromium or $CHROMIUM_BIN, playwright-core from web/node_modules),
// waits for prices and sparklines, takes the pictures and stops what it started.

import { join } from 'node:path';
import { chromium } from 'playwright-core';

import { CHROMIUM, CHROMIUM_ARGS } from './test-support/dashboard.js';
import { REPO_ROOT, startGateway } from './test-support/gateway.js';

const SYMBOLS = 'AAPL,MSFT,NVDA,AMZN,GOOGL,META,TSLA,AVGO,JPM,V,XOM,NFLX';
const VIEWS = [
  { file: 'dashboard.png', width: 1360, height: 640, theme: 'light', query: `?symbols=${SYMBOLS}&trades=NVDA` },
  { file: 'dashboard-narrow.png', width: 420, height: 760, theme: 'light', query: `?symbols=${SYMBOLS}` },
  { file: 'dashboard-dark.png', width: 1360, height: 560, theme: 'dark', query: `?symbols=${SYMBOLS}&theme=dark` },
];

const gateway = await startGateway({ args: ['--sim-rate', '2000', '--sim-seed', '7'] });
const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
try {
  for (const view of VIEWS) {
    const page = await browser.newPage({ viewport: { width: view.width, height: view.height }, colorScheme: view.theme });
    await page.goto(`${gateway.httpUrl}/${view.query}`);
    await page.locator('#conn[data-link="live"]').waitFor({ timeout: 15_000 });
    await page.waitForFunction(() => [...document.querySelectorAll('#rows [data-field="last"]')].every((td) => /\d/.test(td.textContent)), null, { timeout: 15_000 });
    // Sparklines and rates need a few seconds of data.
    await page.waitForTimeout(4000);
    await page.locator('#head-row [data-sort="change_pct"] button').click();
    await page.locator('#head-row [data-sort="change_pct"] button').click();
    await page.mouse.move(0, 0);
    const path = join(REPO_ROOT, 'docs', view.file);
    await page.screenshot({ path });
    console.log(`wrote ${path}`);
    await page.close();
  }
} finally {
  await browser.close();
  await gateway.stop();
}
