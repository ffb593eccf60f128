// Browser tests of the web pages: Debian's chromium driven by playwright-core.
//
// Starts `digitflow serve` on a free loopback port with a fresh state directory (the
// first administrator made with `digitflow user add --password-stdin`), then goes through
// the pages as a person would: register, submit a folder of synthetic checks, watch the
// job reach done on the jobs page, open its results (strings and overlay images), cancel
// a running job, see a 413 explained, review digits from the keyboard, draw a 7 on the
// pad and upload a photo, create and revoke API tokens, change the password and log in
// again, manage users as the administrator; a second user cannot see the first user's
// job. Every page must load without a Content-Security-Policy violation, script error,
// unexpected failed request or a stray "null"/"undefined" on screen, and fit a phone's
// width. A full-page screenshot of each page (desktop, phone width, dark) goes to
// --screenshots.
//
// Usage: node pages.test.mjs --digitflow build/apps/digitflow [--screenshots DIR]
//        [--url http://127.0.0.1:PORT  (use a server that is already running)]
// Exit status 0 when every check passed. Chromium and node_modules must be there
// (scripts/deps.sh and scripts/test.sh install them); a missing one is a failure.

import {spawn, execFileSync} from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = parseArgs(process.argv.slice(2));
const digitflow = path.resolve(args.digitflow || path.join(here, '../../build/apps/digitflow'));
const shots = path.resolve(args.screenshots || path.join(here, '../../build/screenshots'));
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const stepTimeout = 30_000;
const ADMIN_PASSWORD = 'admin password for the browser test';
const USER_PASSWORD = 'violet harbour 4417';

let passed = 0;
let failed = 0;
const problems = []; // CSP violations, console errors, page errors, unexpected failed requests
const expected = []; // {status, pathPattern}: failed responses that a step provokes on purpose

function parseArgs(list) {
  const out = {};
  for (let i = 0; i < list.length; i++) {
    const m = /^--([a-z-]+)$/.exec(list[i]);
    if (!m) throw new Error('unknown argument ' + list[i]);
    out[m[1]] = list[++i];
  }
  return out;
}

function fatal(message) {
  console.error('browser: ' + message);
  console.log('0 passed, 1 failed');
  process.exit(1);
}

async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (err) {
    failed++;
    console.log(`FAIL ${name}: ${err && err.stack ? err.stack : err}`);
  }
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const {port} = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function waitForServer(base, proc, ms) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (proc && proc.exitCode !== null) throw new Error('digitflow serve exited with ' + proc.exitCode);
    try {
      const res = await fetch(base + '/login');
      if (res.ok) return;
    } catch (e) {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('digitflow serve did not answer on ' + base + ' within ' + ms / 1000 + ' s');
}

// ---- preconditions: missing tools fail, never skip --------------------------------

if (!fs.existsSync(chromiumPath)) fatal(`no chromium at ${chromiumPath}: install it with scripts/deps.sh`);
let chromium;
try {
  ({chromium} = await import('playwright-core'));
} catch (e) {
  fatal('playwright-core is missing: run `npm ci` in tests/browser (scripts/test.sh does)');
}
if (!args.url && !fs.existsSync(digitflow)) fatal(`no digitflow binary at ${digitflow}: build it first`);

fs.mkdirSync(shots, {recursive: true});
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'digitflow-browser-'));
const stateDir = path.join(tmp, 'state');
const jobDir = path.join(tmp, 'checks');

let server = null;
let base = args.url;
let serverLog = '';
let browser = null;

async function shutdown() {
  if (browser) await browser.close().catch(() => {});
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    await new Promise((r) => {
      const t = setTimeout(() => {
        server.kill('SIGKILL');
        r();
      }, 10_000);
      server.on('exit', () => {
        clearTimeout(t);
        r();
      });
    });
  }
  fs.rmSync(tmp, {recursive: true, force: true});
}

try {
  execFileSync(digitflow, ['synth', '--out', jobDir, '--pages', '2', '--seed', '3', '--kind', 'checks'], {
    stdio: 'pipe',
  });
  // The pages and the folder's own template.yaml: the truth is not part of a scanned batch.
  fs.rmSync(path.join(jobDir, 'truth.jsonl'), {force: true});

  if (!base) {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    fs.mkdirSync(stateDir, {recursive: true});
    // the first administrator comes from the shell, as in a real installation
    execFileSync(
      digitflow,
      ['user', 'add', 'root', '--admin', '--email', 'root@example.org', '--password-stdin', '--state-dir', stateDir],
      {input: ADMIN_PASSWORD + '\n', stdio: ['pipe', 'pipe', 'pipe']},
    );
    server = spawn(
      digitflow,
      // a 4 MB file limit: the pages are under it, the test's oversized file is not
      ['serve', '--listen', `127.0.0.1:${port}`, '--state-dir', stateDir, '--workers', '1', '--set', 'web.max_file_mb=4',
        '--set', 'jobs.heartbeat_seconds=1'],
      {stdio: ['ignore', 'pipe', 'pipe']},
    );
    server.stdout.on('data', (d) => (serverLog += d));
    server.stderr.on('data', (d) => (serverLog += d));
    await waitForServer(base, server, 60_000);
  }

  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  await run();
} catch (err) {
  failed++;
  console.log('FAIL setup: ' + (err && err.stack ? err.stack : err));
} finally {
  if (failed && serverLog) console.log('---- digitflow serve output (last 4000 characters) ----\n' + serverLog.slice(-4000));
  await shutdown();
}
console.log(`screenshots: ${shots}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);

// ---- the walk through the pages ---------------------------------------------------

async function newContext(options = {}) {
  const context = await browser.newContext({
    baseURL: base,
    viewport: {width: 1280, height: 860},
    deviceScaleFactor: 1,
    ...options,
  });
  // Records CSP violations on every page (the init script is not subject to the CSP).
  await context.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile}:${e.lineNumber}`);
    });
  });
  context.setDefaultTimeout(stepTimeout);
  return context;
}

function expectFailure(status, pathPattern) {
  expected.push({status, pathPattern});
}

function watch(page, label) {
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    // Chromium logs every 4xx/5xx response as a console error; those are judged below
    // by the response listener, against what the step expected.
    if (/^Failed to load resource: the server responded with a status of \d+/.test(text)) return;
    problems.push(`${label} ${page.url()}: console error: ${text}`);
  });
  page.on('pageerror', (err) => problems.push(`${label} ${page.url()}: script error: ${err.message}`));
  page.on('response', (res) => {
    if (res.status() < 400) return;
    const url = new URL(res.url());
    if (expected.some((e) => e.status === res.status() && e.pathPattern.test(url.pathname))) return;
    problems.push(`${label}: ${res.request().method()} ${url.pathname}${url.search} answered ${res.status()}`);
  });
  page.on('requestfailed', (req) => {
    const failure = req.failure() ? req.failure().errorText : '';
    if (/ERR_ABORTED/.test(failure)) return; // navigations away from a polling page
    problems.push(`${label}: ${req.method()} ${req.url()} failed: ${failure}`);
  });
}

async function cspViolations(page) {
  return page.evaluate(() => window.__csp || []).catch(() => []);
}

async function shot(page, name) {
  const v = await cspViolations(page);
  for (const line of v) problems.push(`${name}: CSP violation: ${line}`);
  await page.evaluate(() => (window.__csp = [])).catch(() => {});
  const stray = await page.evaluate(() => (document.body.innerText.match(/\b(null|undefined|NaN|\[object Object\])\b/) || [])[0]);
  if (stray) problems.push(`${name}: the page shows "${stray}"`);
  // load the lazy images below the fold, then take the page from its top
  await page.evaluate(async () => {
    for (let y = 0; y < document.documentElement.scrollHeight; y += window.innerHeight / 2) {
      window.scrollTo(0, y);
      await new Promise((r) => requestAnimationFrame(() => r()));
    }
    window.scrollTo(0, 0);
  });
  await page
    .waitForFunction(() => Array.from(document.images).every((img) => img.complete), null, {timeout: 10_000})
    .catch(() => {});
  await page.screenshot({path: path.join(shots, name + '.png'), fullPage: true, animations: 'disabled'});
}

async function imagesLoaded(page, selector) {
  // lazy images load when scrolled to: visit each one
  const count = await page.locator(selector).count();
  for (let i = 0; i < count; i++) await page.locator(selector).nth(i).scrollIntoViewIfNeeded();
  await page.waitForFunction(
    (sel) => Array.from(document.querySelectorAll(sel)).every((img) => img.complete && img.naturalWidth > 0),
    selector,
    {timeout: stepTimeout},
  );
  await page.evaluate(() => window.scrollTo(0, 0));
  return count;
}

async function register(page, name) {
  await page.goto('/register');
  await page.fill('#username', name);
  await page.fill('#email', name + '@example.org');
  await page.fill('#password', USER_PASSWORD);
  await page.fill('#password2', USER_PASSWORD);
  await Promise.all([page.waitForURL('**/jobs'), page.click('#register-submit')]);
}

async function run() {
  const context = await newContext();
  const page = await context.newPage();
  watch(page, 'ana');
  let jobUrl = null;

  await check('a page without a session goes to the login page', async () => {
    await page.goto('/jobs');
    await page.waitForURL(/\/login/);
    await page.locator('#login-form').waitFor();
    await shot(page, 'login');
  });

  await check('login shows the server’s error for a wrong password', async () => {
    expectFailure(401, /^\/api\/v1\/login$/);
    await page.fill('#username', 'nobody');
    await page.fill('#password', 'not the password');
    await page.click('#login-submit');
    const err = page.locator('#form-error');
    await err.waitFor({state: 'visible'});
    assert((await err.textContent()).trim().length > 5, 'no error text shown');
    await shot(page, 'login-error');
  });

  await check('register explains the password rules and refuses a short one', async () => {
    await page.goto('/register');
    await page.fill('#username', 'ana');
    await page.fill('#email', 'ana@example.org');
    await page.fill('#password', 'short');
    await page.fill('#password2', 'short');
    await page.click('#register-submit');
    await page.locator('#form-error').waitFor({state: 'visible'});
    assert(/10 characters/.test(await page.textContent('#form-error')), 'the rule is not named');
    await shot(page, 'register');
  });

  await check('register through the form lands on an empty jobs page', async () => {
    await register(page, 'ana');
    await page.locator('#jobs-empty').waitFor({state: 'visible'});
    assert((await page.textContent('#nav-name')) === 'ana', 'the navigation does not name the user');
    assert((await page.textContent('#nav-role')).trim().length > 0, 'the navigation shows no role');
    await shot(page, 'jobs-empty');
  });

  await check('submit a folder of pages through the submit page', async () => {
    await page.goto('/submit');
    await page.waitForFunction(() => document.querySelector('#template').options.length >= 1);
    const files = listFiles(jobDir);
    try {
      await page.setInputFiles('#input-folder', jobDir);
    } catch (e) {
      // older drivers: several files with their relative paths are the same job
      await page.setInputFiles('#input-files', files);
    }
    await page.locator('#file-summary').waitFor({state: 'visible'});
    const count = await page.textContent('#file-count');
    assert(/^3 files \(2 pages\)/.test(count), `the selection says "${count}", not 3 files (2 pages)`);
    await page.fill('#name', 'Checks, December batch');
    // The folder's own template is offered under its title and chosen.
    const chosen = await page.$eval('#template', (s) => s.value);
    assert(/^file:(.*\/)?template\.yaml$/.test(chosen), `the folder's template.yaml is not chosen (${chosen})`);
    await page.waitForFunction(() => /synthetic check/.test(document.querySelector('#template').selectedOptions[0].textContent));
    const note = await page.textContent('#file-list li.not-page .note');
    assert(note === 'the template', `the template file's row says "${note}"`);
    await shot(page, 'submit');
    await Promise.all([page.waitForURL(/\/jobs\/[^/]+$/), page.click('#start-job')]);
    jobUrl = new URL(page.url()).pathname;
  });

  await check('the job reaches done on the jobs page, which updates itself', async () => {
    assert(jobUrl, 'no job was submitted');
    await page.goto('/jobs');
    const row = page.locator('#jobs-body tr').first();
    await row.waitFor();
    await row.locator('.state-done').waitFor({timeout: 180_000});
    assert(/2 \/ 2 pages/.test(await row.textContent()), 'the row does not say 2 / 2 pages');
    await shot(page, 'jobs');
  });

  await check('the job page shows the strings read and the overlay images', async () => {
    await Promise.all([page.waitForURL(/\/jobs\/[^/]+$/), page.locator('#jobs-body a.job-name').first().click()]);
    await page.locator('#job-state .state-done').waitFor();
    await page.locator('.page-item').first().waitFor();
    assert((await page.locator('.page-item').count()) === 2, 'not 2 pages listed');
    assert(/synthetic check/.test(await page.textContent('#job-meta')), 'the job page does not name its template');
    const digits = await page.locator('.strings-table .digits').allTextContents();
    assert(digits.length > 0 && digits.every((t) => /\d/.test(t)), 'no strings of digits shown');
    const imgs = await imagesLoaded(page, '.overlay-link img');
    assert(imgs === 2, `expected 2 overlay images, saw ${imgs}`);
    assert((await page.getAttribute('#dl-csv', 'href')).includes('format=csv'), 'no CSV download');
    const csv = await page.evaluate(async (href) => (await fetch(href)).text(), await page.getAttribute('#dl-csv', 'href'));
    assert(csv.split('\n').length > 2, 'results.csv is empty');
    await shot(page, 'job');
    // A thumbnail opens its overlay over the job page; the arrow goes to the next page and
    // Esc comes back.
    await page.locator('.overlay-link').first().click();
    await page.locator('#viewer[open]').waitFor();
    await page.waitForFunction(() => document.querySelector('#viewer-img').naturalWidth > 0);
    await shot(page, 'job-overlay');
    await page.keyboard.press('ArrowRight');
    const titles = await page.$$eval('.overlay-link', (as) => as.map((a) => a.dataset.label));
    assert((await page.textContent('#viewer-title')) === titles[1], 'the arrow did not show the next page');
    // On the last page (its next button disabled) the other arrow still goes back.
    await page.keyboard.press('ArrowLeft');
    assert((await page.textContent('#viewer-title')) === titles[0], 'the arrow did not go back a page');
    await page.keyboard.press('Escape');
    await page.locator('#viewer').waitFor({state: 'hidden'});
    assert(page.url().endsWith(jobUrl), 'the overlay left the job page');
    await page.click('.filters button[data-filter="failed"]');
    await page.waitForFunction(() => document.querySelectorAll('.page-item').length === 0);
    await page.click('.filters button[data-filter="all"]');
    await page.locator('.page-item').first().waitFor();
  });

  await check('a running job can be cancelled from its page', async () => {
    // thirty pages (the JPEG check over and over) keep the worker busy for several seconds;
    // the worker sees a cancel at its next heartbeat (1 s here)
    const many = path.join(tmp, 'many');
    fs.mkdirSync(many, {recursive: true});
    const jpeg = listFiles(jobDir).find((f) => /\.jpe?g$/.test(f));
    for (let k = 0; k < 30; k++) fs.copyFileSync(jpeg, path.join(many, `copy${k}.jpg`));
    await page.goto('/submit');
    await page.setInputFiles('#input-files', listFiles(many));
    await page.fill('#name', 'To be cancelled');
    assert(/30 files/.test(await page.textContent('#file-count')), 'not 30 files chosen');
    await Promise.all([page.waitForURL(/\/jobs\/[^/]+$/), page.click('#start-job')]);
    page.once('dialog', (d) => d.accept());
    await page.click('#cancel-job', {timeout: 5_000});
    await page.locator('#job-state .state-cancelled').waitFor();
    await page.locator('#job-state', {hasText: /^Cancelled$/}).waitFor({timeout: 60_000});
    assert(await page.locator('#cancel-job').isHidden(), 'the cancel button is still there');
  });

  await check('submit: a zip lists its files and offers its own template', async () => {
    const zip = path.join(tmp, 'checks.zip');
    fs.writeFileSync(zip, zipOf(jobDir, 'checks'));
    await page.goto('/submit');
    await page.setInputFiles('#input-zip', zip);
    await page.waitForFunction(() => /: /.test(document.querySelector('#file-count').textContent));
    const count = await page.textContent('#file-count');
    assert(/^One zip, .*: 3 files \(2 pages\)$/.test(count), `the zip's summary says "${count}"`);
    const chosen = await page.$eval('#template', (s) => s.value);
    assert(chosen === 'file:checks/template.yaml', `the zip's template.yaml is not chosen (${chosen})`);
    const note = await page.textContent('#file-list li.not-page .note');
    assert(note === 'the template', `the template file's row says "${note}"`);
    // A file that is no zip is only named: the server says what is wrong with it.
    const notZip = path.join(tmp, 'not-a.zip');
    fs.writeFileSync(notZip, 'plain text');
    await page.setInputFiles('#input-zip', notZip);
    await page.waitForFunction(() => /^One zip, /.test(document.querySelector('#file-count').textContent));
    assert((await page.$eval('#template', (s) => s.value)) === '', 'a template stayed chosen from the zip before');
  });

  await check('submit: an upload over a limit shows the server’s 413 message', async () => {
    if (args.url) return; // the limit is set where the test starts the server
    const big = path.join(tmp, 'too-big', 'scan.png');
    fs.mkdirSync(path.dirname(big), {recursive: true});
    fs.writeFileSync(big, Buffer.alloc(5 * 1024 * 1024, 7));
    expectFailure(413, /^\/api\/v1\/jobs$/);
    await page.goto('/submit');
    await page.setInputFiles('#input-files', [big]);
    await page.click('#start-job');
    const err = page.locator('#form-error');
    await err.waitFor({state: 'visible'});
    const text = await err.textContent();
    assert(/Too large/.test(text) && /max_file_mb|MB/.test(text), 'no clear 413 message: ' + text);
    await shot(page, 'submit-too-large');
  });

  await check('review: Enter confirms the guess, x says not a digit, from the keyboard', async () => {
    await page.goto('/review');
    await page.waitForFunction(
      () => document.querySelector('.review-card') || !document.querySelector('#review-empty').hidden,
    );
    const cards = await page.locator('.review-card').count();
    if (cards > 0) {
      await imagesLoaded(page, '.review-card img');
      await shot(page, 'review');
      await page.locator('.review-card.current').focus();
      await page.keyboard.press('Enter');
      await page.waitForFunction(() => document.querySelector('#count-done').textContent === '1');
      if (cards > 1) {
        await page.keyboard.press('x');
        await page.waitForFunction(() => document.querySelector('#count-done').textContent === '2');
      }
      if (cards <= 2) {
        await page.locator('#review-empty').waitFor({state: 'visible'});
        assert(/caught up/i.test(await page.textContent('#empty-title')), 'no caught-up message');
        await shot(page, 'review-done');
      }
    } else {
      await shot(page, 'review');
    }
  });

  await check('pad: a digit drawn with the mouse is read', async () => {
    await page.goto('/pad');
    const box = await page.locator('#pad').boundingBox();
    const at = (fx, fy) => [box.x + fx * box.width, box.y + fy * box.height];
    // a plain "7": a bar and a stroke down to the left
    await strokeOf(page, [at(0.08, 0.2), at(0.2, 0.2), at(0.12, 0.85)]);
    await page.waitForFunction(() => !document.querySelector('#result-text').classList.contains('placeholder'), null, {
      timeout: 15_000,
    });
    const text = (await page.textContent('#result-text')).trim();
    assert(text === '7', 'a drawn 7 was read as ' + text);
    const timing = await page.textContent('#timing');
    assert(/Round trip \d+ ms/.test(timing), 'no round-trip time shown');
    console.log('     pad: ' + timing);
    await shot(page, 'pad');
  });

  await check('pad: a photo of a number is read too', async () => {
    const photo = listFiles(jobDir).find((f) => f.endsWith('.png'));
    await page.setInputFiles('#photo', photo);
    await page.waitForFunction(() => document.querySelectorAll('#digit-boxes .digit-box').length >= 8, null, {
      timeout: 15_000,
    });
    await shot(page, 'pad-photo');
  });

  await check('model page draws its charts', async () => {
    await page.goto('/model');
    await page.waitForFunction(() => document.querySelector('#st-acc').textContent !== '–' || !document.querySelector('#banner').hidden);
    await page.locator('#chart-acc svg').waitFor();
    await shot(page, 'model');
  });

  await check('account: an API token is shown once and listed', async () => {
    await page.goto('/account');
    await page.fill('#token-name', 'nightly scanner');
    await page.click('#token-form button[type="submit"]');
    await page.locator('#new-token').waitFor({state: 'visible'});
    assert((await page.textContent('#new-token-value')).trim().length >= 16, 'no token shown');
    await page.locator('#tokens-body tr').first().waitFor();
    await shot(page, 'account');
    await page.fill('#token-name', 'to revoke');
    await page.click('#token-form button[type="submit"]');
    await page.locator('#tokens-body tr', {hasText: 'to revoke'}).waitFor();
    page.once('dialog', (d) => d.accept());
    await page.locator('#tokens-body tr', {hasText: 'to revoke'}).locator('button', {hasText: 'Revoke'}).click();
    await page.locator('#tokens-body tr', {hasText: 'to revoke'}).waitFor({state: 'detached'});
    assert((await page.locator('#tokens-body tr').count()) === 1, 'the other token went too');
  });

  await check('admin page for a user who is not an administrator', async () => {
    await page.goto('/admin');
    await page.locator('#not-admin').waitFor({state: 'visible'});
    assert(!(await page.locator('.nav-links a[href="/admin"]').count()), 'a user sees the Admin link');
    await shot(page, 'admin-not-admin');
  });

  await check('phone width: the pages fit without sideways scrolling', async () => {
    const phone = await newContext({viewport: {width: 390, height: 844}, isMobile: true, hasTouch: true});
    const p = await phone.newPage();
    watch(p, 'ana-phone');
    await phone.addCookies(await context.cookies());
    for (const [name, url] of [
      ['jobs', '/jobs'],
      ['job', jobUrl],
      ['submit', '/submit'],
      ['review', '/review'],
      ['pad', '/pad'],
      ['model', '/model'],
      ['account', '/account'],
    ]) {
      await p.goto(url);
      await p.waitForLoadState('networkidle').catch(() => {});
      await p.waitForTimeout(300);
      const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert(overflow <= 1, `${name} is ${overflow} px wider than the phone screen`);
      await shot(p, 'phone-' + name);
    }
    await phone.close();
  });

  await check('dark colour scheme', async () => {
    const dark = await newContext({colorScheme: 'dark'});
    const p = await dark.newPage();
    watch(p, 'ana-dark');
    await dark.addCookies(await context.cookies());
    for (const [name, url] of [
      ['jobs', '/jobs'],
      ['job', jobUrl],
      ['submit', '/submit'],
      ['review', '/review'],
      ['pad', '/pad'],
      ['model', '/model'],
      ['account', '/account'],
      ['login', '/login'],
    ]) {
      await p.goto(url);
      await p.waitForLoadState('networkidle').catch(() => {});
      await p.waitForTimeout(300);
      await shot(p, 'dark-' + name);
    }
    await dark.close();
  });

  await check('another user cannot see the first user’s job', async () => {
    const other = await newContext();
    const p = await other.newPage();
    watch(p, 'ben');
    await register(p, 'ben');
    await p.locator('#jobs-empty').waitFor({state: 'visible'});
    expectFailure(404, /^\/api\/v1\/jobs\/[^/]+/);
    await p.goto(jobUrl);
    await p.locator('#job-missing').waitFor({state: 'visible'});
    assert(!(await p.locator('.page-item').count()), 'ben sees ana’s pages');
    await shot(p, 'job-other-user');
    await other.close();
  });

  await check('a wrong current password is said on the form, and the session stays', async () => {
    expectFailure(401, /^\/api\/v1\/password$/);
    await page.goto('/account');
    await page.fill('#current', 'not my password at all');
    await page.fill('#new', 'amber lantern 9021');
    await page.fill('#new2', 'amber lantern 9021');
    await page.click('#password-form button[type="submit"]');
    await page.locator('#password-error').waitFor({state: 'visible'});
    const said = await page.locator('#password-error').innerText();
    assert(/current password is not right/.test(said), 'the form says: ' + said);
    assert(/\/account$/.test(page.url()), 'left the account page for ' + page.url());
  });

  await check('change the password, log out, log in with the new one', async () => {
    const next = 'amber lantern 9021';
    await page.goto('/account');
    await page.fill('#current', USER_PASSWORD);
    await page.fill('#new', next);
    await page.fill('#new2', next);
    await page.click('#password-form button[type="submit"]');
    await page.locator('#password-ok').waitFor({state: 'visible'});
    await page.goto('/jobs');
    await Promise.all([page.waitForURL(/\/login/), page.click('#logout')]);
    await page.goto('/jobs');
    await page.waitForURL(/\/login/);
    await page.fill('#username', 'ana');
    await page.fill('#password', next);
    await Promise.all([page.waitForURL(/\/jobs$/), page.click('#login-submit')]);
    await page.locator('#jobs-body tr').first().waitFor();
  });

  await check('an administrator logs in, sees every job and manages users', async () => {
    if (args.url) return; // a server started elsewhere has no known administrator
    const admin = await newContext();
    const p = await admin.newPage();
    watch(p, 'root');
    await p.goto('/login?next=%2Fadmin');
    await p.fill('#username', 'root');
    await p.fill('#password', ADMIN_PASSWORD);
    await Promise.all([p.waitForURL('**/admin'), p.click('#login-submit')]);
    await p.locator('#users-body tr').nth(2).waitFor();
    const ben = p.locator('#users-body tr', {hasText: 'ben'});
    await ben.locator('button', {hasText: 'Disable'}).click();
    await ben.locator('.badge', {hasText: 'disabled'}).waitFor();
    await shot(p, 'admin');
    await ben.locator('button', {hasText: 'Enable'}).click();
    await ben.locator('.badge', {hasText: 'enabled'}).waitFor();
    await p.goto('/jobs');
    await p.locator('#jobs-body tr').first().waitFor();
    assert(!(await p.locator('th.col-owner').isHidden()), 'an administrator sees no owner column');
    assert((await p.locator('#jobs-body tr').first().textContent()).includes('ana'), 'the owner is not shown');
    await shot(p, 'jobs-admin');
    await p.goto('/model');
    await p.locator('#retrain-card').waitFor({state: 'visible'});
    await admin.close();
  });

  await check('no CSP violation, script error or unexpected failed request on any page', async () => {
    assert(problems.length === 0, problems.length + ' problem(s):\n  ' + problems.join('\n  '));
  });

  await context.close();
}

async function strokeOf(page, points) {
  await page.mouse.move(points[0][0], points[0][1]);
  await page.mouse.down();
  for (let i = 1; i < points.length; i++) await page.mouse.move(points[i][0], points[i][1], {steps: 12});
  await page.mouse.up();
}

function listFiles(dir) {
  const out = [];
  for (const entry of fs.readdirSync(dir, {withFileTypes: true})) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listFiles(p));
    else out.push(p);
  }
  return out;
}

// A zip (stored, not compressed) of the files under `dir`, their names under `top/`, as a
// user's archiver writes one: local headers, the central directory, its end record.
function zipOf(dir, top) {
  const crcTable = Array.from({length: 256}, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc32 = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const locals = [];
  const centrals = [];
  let offset = 0;
  for (const file of listFiles(dir)) {
    const name = Buffer.from(top + '/' + path.relative(dir, file).split(path.sep).join('/'));
    const data = fs.readFileSync(file);
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, data);
    centrals.push(central, name);
    offset += 30 + name.length + data.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(centrals.length / 2, 8);
  end.writeUInt16LE(centrals.length / 2, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

