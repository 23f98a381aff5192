// The web console in headless Chromium against a running mesh (driven by
// tests/tests/console.rs, which starts the agents and deploys the application).
//
// Environment:
//   BASE_URL          the console's agent (no token needed), e.g. http://127.0.0.1:41234
//   TOKEN_BASE_URL    an agent of the same mesh started with --http-require-token
//   ROBOCONF_BIN      the roboconf binary (the CLI)
//   ROBOCONF_DATA_DIR the data dir of BASE_URL's agent, for the CLI
//   APP               the application shown (lamp)
//   SCREENSHOTS       where the screenshots go (created)
//   CHROMIUM          the browser (default /usr/bin/chromium)
//   CLI_PATH, CLICK_PATH, READONLY_PATH  optional: the instances the checks use
//                     (default: started leaves, then a started instance)
//
// Prints one line per check (`ok - ...` / `not ok - ...`) and exits 1 on the first
// failure, after a screenshot of the page as it was.

import { chromium } from 'playwright-core';
import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`not ok - the environment variable ${name} is not set`);
    process.exit(2);
  }
  return v;
}

const BASE = need('BASE_URL').replace(/\/$/, '');
const TOKEN_BASE = need('TOKEN_BASE_URL').replace(/\/$/, '');
const BIN = need('ROBOCONF_BIN');
const DATA_DIR = need('ROBOCONF_DATA_DIR');
const APP = process.env.APP || 'lamp';
const SHOTS = process.env.SCREENSHOTS || 'screenshots';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
mkdirSync(SHOTS, { recursive: true });

const started = Date.now();
const since = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
function ok(what) {
  console.log(`ok - ${what} (${since()})`);
}
function check(cond, what) {
  if (!cond) throw new Error(what);
}

/** roboconf --data-dir DATA_DIR ARGS; its stdout. */
async function cli(...args) {
  try {
    const { stdout } = await run(BIN, ['--data-dir', DATA_DIR, ...args], { timeout: 30000 });
    return stdout;
  } catch (e) {
    throw new Error(`roboconf ${args.join(' ')} failed: ${e.stderr || e.message}`);
  }
}
/** The state of `path` as the CLI's `status --json` says. */
async function cliState(path) {
  const s = JSON.parse(await cli('status', APP, '--json'));
  const apps = Array.isArray(s.apps) ? s.apps : [s];
  for (const a of apps) {
    for (const i of a.instances || []) if (i.path === path) return i.state;
  }
  return undefined;
}
async function waitCli(path, want, ms) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    last = await cliState(path);
    if (want.includes(last)) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the CLI shows ${path} ${last}, not ${want.join(' or ')}, after ${ms} ms`);
}
async function apiGet(base, path) {
  const r = await fetch(base + path);
  if (!r.ok) throw new Error(`GET ${path}: ${r.status} ${await r.text()}`);
  return r.json();
}

const row = (path) => `[data-path="${path.replace(/["\\]/g, '\\$&')}"]`;
const stateOf = (page, path) => page.locator(`${row(path)} > .state`).textContent({ timeout: 5000 });
/** Waits until the row of `path` shows one of `states`; the time it took (ms). */
async function waitRow(page, path, states, timeout) {
  const t0 = Date.now();
  await page.waitForFunction(
    ([sel, want]) => {
      const el = document.querySelector(sel);
      return !!el && want.includes(el.textContent);
    },
    [`${row(path)} > .state`, states],
    { timeout, polling: 'raf' },
  );
  return Date.now() - t0;
}

const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
const pageErrors = [];
let page;
let active; // the page a failure screenshot shows
let step = 'start';

async function newPage(options = {}) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...options });
  const p = await ctx.newPage();
  p.on('pageerror', (e) => pageErrors.push(`${e.message}`));
  p.on('dialog', (d) => d.accept());
  active = p;
  return p;
}

try {
  // ---- Applications
  step = 'applications';
  const instances = await apiGet(BASE, `/roboconf-dm/app/${encodeURIComponent(APP)}/instances?all-children=true`);
  check(Array.isArray(instances) && instances.length > 0, `the API lists no instance of ${APP}`);
  page = await newPage();
  await page.goto(`${BASE}/`);
  check(page.url().includes('/roboconf-web-administration/'), `/ does not lead to the console (${page.url()})`);
  const card = page.locator(`[data-app="${APP}"]`);
  await card.waitFor({ timeout: 10000 });
  await page.screenshot({ path: join(SHOTS, 'apps.png'), fullPage: true });
  ok(`the applications page lists ${APP}: ${(await card.innerText()).replace(/\s+/g, ' ')}`);

  // ---- The tree: every instance, with its state
  step = 'tree';
  await card.click();
  await page.waitForFunction((n) => document.querySelectorAll('.tree .row[data-path]').length === n, instances.length, { timeout: 10000 });
  for (const i of instances) {
    const shown = await stateOf(page, i.path);
    check(typeof shown === 'string' && shown.length > 0, `${i.path} has no state in the tree`);
  }
  await page.locator('#live[data-live="on"]').waitFor({ timeout: 10000 });
  await page.screenshot({ path: join(SHOTS, 'app-tree.png'), fullPage: true });
  ok(`the tree shows all ${instances.length} instances of ${APP} with their states, live events on`);

  // The instances the next checks act on.
  const fresh = await apiGet(BASE, `/roboconf-dm/app/${encodeURIComponent(APP)}/instances?all-children=true`);
  const isStarted = (i) => (i.status || i.state) === 'DEPLOYED_STARTED';
  const paths = new Set(fresh.map((i) => i.path));
  const leaves = fresh.filter((i) => isStarted(i) && ![...paths].some((p) => p.startsWith(`${i.path}/`)));
  const cliPath = process.env.CLI_PATH || leaves[0]?.path;
  const clickPath = process.env.CLICK_PATH || leaves.find((i) => i.path !== cliPath)?.path;
  check(cliPath && clickPath, 'two started leaves are needed');

  // ---- A change made with the CLI shows without reload, within 1 s
  step = 'cli change';
  await page.evaluate(() => { window.__sameDocument = true; });
  check((await stateOf(page, cliPath)) === 'DEPLOYED_STARTED', `${cliPath} is not shown started`);
  await cli('instance', 'stop', APP, cliPath);
  const firstChange = await waitRow(page, cliPath, ['STOPPING', 'DEPLOYED_STOPPED'], 1000).catch(async () => {
    throw new Error(`${cliPath} still shows ${await stateOf(page, cliPath)} 1 s after the CLI stopped it`);
  });
  const stoppedAfter = await waitRow(page, cliPath, ['DEPLOYED_STOPPED'], 30000);
  check(await page.evaluate(() => window.__sameDocument === true), 'the page was reloaded');
  ok(`the CLI's stop of ${cliPath} shows in ${firstChange} ms without reload (DEPLOYED_STOPPED after ${firstChange + stoppedAfter} ms)`);

  // ---- A Stop clicked in the console
  step = 'click stop';
  await page.locator(`${row(clickPath)} .name`).click();
  const detail = page.locator(`.detail[data-detail="${clickPath.replace(/["\\]/g, '\\$&')}"]`);
  await detail.waitFor({ timeout: 5000 });
  await page.waitForFunction(() => {
    const b = document.querySelector('.detail .runs-body');
    return !!b && !b.textContent.includes('Loading');
  }, null, { timeout: 5000 });
  await page.screenshot({ path: join(SHOTS, 'instance-detail.png'), fullPage: true });
  const t0 = Date.now();
  await detail.locator('[data-action="stop"]').click();
  await waitRow(page, clickPath, ['DEPLOYED_STOPPED'], 30000);
  const shownIn = Date.now() - t0;
  await waitCli(clickPath, ['DEPLOYED_STOPPED'], 10000);
  check(await page.locator('#error-banner').isHidden(), `an error shows: ${await page.locator('#error-banner').innerText()}`);
  ok(`Stop clicked on ${clickPath}: DEPLOYED_STOPPED in the page after ${shownIn} ms, and in the CLI's status`);

  // ---- Members, coordinator, events
  step = 'members';
  await page.goto(`${BASE}/roboconf-web-administration/#/members`);
  await page.waitForFunction(() => document.querySelectorAll('tr[data-member]').length >= 3, null, { timeout: 10000 });
  await page.screenshot({ path: join(SHOTS, 'members.png'), fullPage: true });
  ok(`the members page lists ${await page.locator('tr[data-member]').count()} members`);
  step = 'coordinator';
  await page.locator('[data-nav="coordinator"]').click();
  await page.locator('.term').waitFor({ timeout: 10000 });
  await page.screenshot({ path: join(SHOTS, 'coordinator.png'), fullPage: true });
  ok(`the coordinator page shows term ${await page.locator('.term').innerText()}`);
  step = 'events';
  await page.goto(`${BASE}/roboconf-web-administration/#/app/${encodeURIComponent(APP)}`);
  await page.locator('#live[data-live="on"]').waitFor({ timeout: 10000 });
  await page.waitForFunction(() => document.querySelectorAll('.tree .row').length > 0, null, { timeout: 10000 });
  // Live events for the events page: the CLI-stopped instance started again.
  await cli('instance', 'start', APP, cliPath);
  await waitRow(page, cliPath, ['DEPLOYED_STARTED'], 30000);
  await page.locator('[data-nav="events"]').click();
  await page.waitForFunction(() => document.querySelectorAll('.events li').length > 0, null, { timeout: 5000 });
  await page.screenshot({ path: join(SHOTS, 'events.png'), fullPage: true });
  ok(`the events page shows ${await page.locator('.events li').count()} live events`);

  // ---- A read-only token: a Stop is refused with 403 in the banner; nothing changes
  step = 'read-only token';
  const words = (await cli('http', 'token', '--read-only', '--ttl', '10m')).trim().split(/\s+/);
  const token = words[words.length - 1];
  check(token, 'roboconf http token printed nothing');
  const ro = await newPage();
  await ro.goto(`${TOKEN_BASE}/roboconf-web-administration/#/app/${encodeURIComponent(APP)}`);
  await ro.locator('#token-input').waitFor({ state: 'visible', timeout: 10000 });
  await ro.screenshot({ path: join(SHOTS, 'token.png') });
  await ro.fill('#token-input', token);
  await ro.click('#token-save');
  await ro.waitForFunction((n) => document.querySelectorAll('.tree .row[data-path]').length === n, instances.length, { timeout: 10000 });
  await ro.locator('#live[data-live="on"]').waitFor({ timeout: 10000 });
  const now = await apiGet(BASE, `/roboconf-dm/app/${encodeURIComponent(APP)}/instances?all-children=true`);
  const roPath = process.env.READONLY_PATH || now.find(isStarted)?.path;
  check(roPath, 'a started instance is needed');
  await ro.locator(`${row(roPath)} .name`).click();
  const roDetail = ro.locator(`.detail[data-detail="${roPath.replace(/["\\]/g, '\\$&')}"]`);
  await roDetail.locator('[data-action="stop"]').click();
  const bannerEl = ro.locator('#error-banner');
  await bannerEl.waitFor({ state: 'visible', timeout: 5000 });
  const banner = (await bannerEl.innerText()).replace(/\s+/g, ' ');
  check(banner.includes('403'), `the banner does not tell the 403: ${banner}`);
  await ro.waitForTimeout(1500);
  check((await stateOf(ro, roPath)) === 'DEPLOYED_STARTED', `${roPath} shows ${await stateOf(ro, roPath)} after the refused Stop`);
  check((await cliState(roPath)) === 'DEPLOYED_STARTED', `${roPath} changed after the refused Stop`);
  await ro.screenshot({ path: join(SHOTS, 'read-only-403.png'), fullPage: true });
  ok(`a read-only token's Stop of ${roPath} is refused: "${banner}"; still DEPLOYED_STARTED`);

  // ---- A phone, dark
  step = 'phone';
  const phone = await newPage({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, colorScheme: 'dark' });
  await phone.goto(`${BASE}/roboconf-web-administration/#/app/${encodeURIComponent(APP)}?instance=${encodeURIComponent(clickPath)}`);
  await phone.locator('.detail').waitFor({ timeout: 10000 });
  await phone.screenshot({ path: join(SHOTS, 'phone-dark-detail.png') });
  await phone.locator('.detail-close').tap();
  await phone.locator('.detail').waitFor({ state: 'detached', timeout: 5000 });
  await phone.screenshot({ path: join(SHOTS, 'phone-dark-tree.png') });
  ok('on a phone (dark): the detail opens as a sheet and closes');

  check(pageErrors.length === 0, `errors in the page: ${pageErrors.join('; ')}`);
  ok(`no script error in the pages; screenshots in ${SHOTS}`);
  await browser.close();
  process.exit(0);
} catch (e) {
  console.log(`not ok - ${step}: ${e.message}`);
  if (pageErrors.length) console.log(`# errors in the page: ${pageErrors.join('; ')}`);
  if (active) await active.screenshot({ path: join(SHOTS, `failure-${step.replace(/\W+/g, '-')}.png`), fullPage: true }).catch(() => {});
  await browser.close().catch(() => {});
  process.exit(1);
}
