// The shared test cases in headless Chromium (Debian's, driven by playwright-core), against
// the same example gateways as client.test.mjs. The page is served from clients/js/ by a
// static server on 127.0.0.1, which also lets the page stop and restart the restartable
// gateway (/control/kill, /control/start). playwright-core is looked up in
// NESTFORGE_JS_TOOLS (as .ci/js-client installs it) or .ci/browser's cache; without it, or
// without Chromium, the file is skipped (and fails under CI=true or
// NESTFORGE_JS_BROWSER=required, as .ci/js-client sets).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { cases } from './cases.mjs';
import { freePort, startGateways } from './gateways.mjs';

const root = fileURLToPath(new URL('..', import.meta.url)); // clients/js/
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const flags = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

function playwright() {
  const cache = process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache');
  const dirs = [process.env.NESTFORGE_JS_TOOLS, join(cache, 'nestforge-edge-browser')];
  for (const dir of dirs.filter(Boolean)) {
    try {
      return createRequire(join(dir, 'package.json'))('playwright-core');
    } catch {
      // next
    }
  }
  return null;
}

const pw = playwright();
const missing = !pw ? 'playwright-core not installed' : !existsSync(chromiumPath) && `no ${chromiumPath}`;
const required = process.env.CI === 'true' || process.env.NESTFORGE_JS_BROWSER === 'required';
if (missing && required) throw new Error(`browser tests cannot run: ${missing}`);

const types = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript' };

/** Serves clients/js/ (GET) and the restartable gateway's controls (POST). */
function staticServer(restartable) {
  return createServer(async (request, response) => {
    const path = decodeURIComponent(new URL(request.url, 'http://x').pathname);
    try {
      if (request.method === 'POST' && path === '/control/kill') await restartable.kill();
      else if (request.method === 'POST' && path === '/control/start') await restartable.start();
      else {
        const file = normalize(join(root, path));
        if (!file.startsWith(root) || !types[extname(file)] || file.includes(`${sep}.`)) {
          response.writeHead(404).end();
          return;
        }
        const body = await readFile(file);
        response.writeHead(200, { 'content-type': types[extname(file)], 'cache-control': 'no-store' });
        response.end(body);
        return;
      }
      response.writeHead(204).end();
    } catch (error) {
      response.writeHead(error.code === 'ENOENT' ? 404 : 500).end(String(error));
    }
  });
}

describe('headless Chromium', { skip: missing }, () => {
  const gateways = [];
  let server;
  let browser;
  let page;
  const pageLog = [];

  before(async () => {
    const { events, push, restartable } = await startGateways();
    gateways.push(events, push, restartable);
    server = staticServer(restartable).listen(0, '127.0.0.1');
    await once(server, 'listening');
    const query = new URLSearchParams({
      events: events.url,
      push: push.url,
      restartable: restartable.url,
      unused: `ws://127.0.0.1:${await freePort()}/ws`,
    });
    browser = await pw.chromium.launch({ executablePath: chromiumPath, args: flags });
    page = await browser.newPage();
    page.on('console', (message) => pageLog.push(`${message.type()}: ${message.text()}`));
    page.on('pageerror', (error) => pageLog.push(`pageerror: ${error}`));
    await page.goto(`http://127.0.0.1:${server.address().port}/test/browser.html?${query}`);
    await page.waitForFunction(() => Array.isArray(window.caseNames), null, { timeout: 10000 });
    assert.deepEqual(
      await page.evaluate(() => window.caseNames),
      cases.map((c) => c.name),
      'the page runs the same cases',
    );
  });

  after(async () => {
    await browser?.close();
    server?.close();
    for (const gateway of gateways) await gateway.stop();
  });

  for (const c of cases) {
    test(c.name, { timeout: 30000 }, async () => {
      const failure = await page.evaluate((name) => window.runCase(name), c.name);
      assert.equal(failure, null, `${failure}\npage console:\n${pageLog.join('\n')}`);
    });
  }
});
