// Shared by the dashboard tests: Chromium launch flags, page helpers, and
// axe-core run inside the live page.
//
// Needs /usr/bin/chromium (Debian package `chromium`), playwright-core and
// axe-core from web/node_modules; web/run-tests.sh installs them.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

export const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/**
 * Runs axe-core (WCAG 2.0/2.1 A and AA rules plus best practices) on the page
 * as it is now and fails on any serious or critical violation, naming the
 * rule and the elements.
 */
export async function assertAccessible(page, what) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.addScriptTag({ content: AXE_SOURCE });
  const result = await page.evaluate(() =>
    window.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
      resultTypes: ['violations'],
    }),
  );
  const serious = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const described = serious.map((v) => `${v.impact} ${v.id}: ${v.help}\n  ${v.nodes.slice(0, 5).map((n) => `${n.target.join(' ')} — ${n.failureSummary.replace(/\s+/g, ' ')}`).join('\n  ')}`);
  assert.deepEqual(described, [], `axe on ${what}`);
  return result.violations;
}

/** Text of one cell of a row. */
export const cellText = (page, symbol, field) => page.locator(`#rows [data-symbol="${symbol}"] [data-field="${field}"]`).textContent();

/** Symbols in the order the rows are shown. */
export const shownOrder = (page) => page.evaluate(() => [...document.querySelectorAll('#rows .row')].map((tr) => tr.dataset.symbol));

/** Waits until every listed row shows a number in its Last column. */
export async function waitForPrices(page, symbols, timeout = 15_000) {
  await page.waitForFunction(
    (list) => list.every((s) => /\d/.test(document.querySelector(`#rows [data-symbol="${s}"] [data-field="last"]`)?.textContent ?? '')),
    symbols,
    { timeout },
  );
}
