// First paint of an application's instance tree in headless Chromium: from the start of
// the navigation to the console's `tree-painted` mark (set by app.js in the first frame
// after the tree is in the document; `tree-rendered` is when it was built).
//
// Environment:
//   BASE_URL   the agent, e.g. http://127.0.0.1:41234
//   APP        the application (e.g. one with 1,000 instances)
//   INSTANCES  optional: how many rows the tree must show (checked)
//   RUNS       optional: how many page loads (default 5); the median is reported
//   MAX_MS     optional: fail (exit 1) when the median is above it
//   CHROMIUM   the browser (default /usr/bin/chromium)
//
// Prints `first_paint_ms=<median>` (and the runs), for benchmarks.

import { chromium } from 'playwright-core';

const BASE = (process.env.BASE_URL || '').replace(/\/$/, '');
const APP = process.env.APP;
if (!BASE || !APP) {
  console.error('BASE_URL and APP must be set');
  process.exit(2);
}
const RUNS = Math.max(1, Number(process.env.RUNS || 5));
const EXPECT = process.env.INSTANCES ? Number(process.env.INSTANCES) : null;
const MAX_MS = process.env.MAX_MS ? Number(process.env.MAX_MS) : null;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

const median = (xs) => {
  const s = xs.slice().sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
const painted = [];
const rendered = [];
let rows = 0;
try {
  for (let k = 0; k < RUNS; k++) {
    // A fresh context each time: nothing cached, no session.
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await ctx.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${BASE}/roboconf-web-administration/#/app/${encodeURIComponent(APP)}`);
    await page.waitForFunction(() => performance.getEntriesByName('tree-painted').length > 0, null, { timeout: 30000 });
    const m = await page.evaluate(() => ({
      painted: performance.getEntriesByName('tree-painted')[0].startTime,
      rendered: performance.getEntriesByName('tree-rendered')[0].startTime,
      rows: document.querySelectorAll('.tree .row[data-path]').length,
    }));
    if (errors.length) throw new Error(`errors in the page: ${errors.join('; ')}`);
    rows = m.rows;
    if (EXPECT !== null && rows !== EXPECT) throw new Error(`the tree shows ${rows} instances, not ${EXPECT}`);
    painted.push(m.painted);
    rendered.push(m.rendered);
    console.log(`run ${k + 1}: tree rendered at ${m.rendered.toFixed(1)} ms, painted at ${m.painted.toFixed(1)} ms (${rows} rows)`);
    await ctx.close();
  }
} catch (e) {
  console.error(`first paint: ${e.message}`);
  await browser.close();
  process.exit(1);
}
await browser.close();
const fp = Math.round(median(painted));
console.log(`rows=${rows}`);
console.log(`tree_rendered_ms=${Math.round(median(rendered))}`);
console.log(`first_paint_ms=${fp}`);
if (MAX_MS !== null && fp > MAX_MS) {
  console.error(`the first paint (${fp} ms) is above ${MAX_MS} ms`);
  process.exit(1);
}
