// Drives tests/interop/browser.html in headless Chromium (playwright-core, Debian chromium)
// against examples/tls_gateway over TLS, from a page with an https:// origin: a secure
// context, where a page may open wss:// but not ws:// sockets (mixed content).
//
// The page is loaded over HTTPS from the gateway itself (its /healthz answer), then its
// document is replaced by browser.html (same origin, same URL), which opens wss://. The
// self-signed certificate is accepted with --ignore-certificate-errors; device.test is
// mapped to 127.0.0.1 inside Chromium (a loopback name would be exempt from the mixed
// content rule). Exits 0 when the page reports PASS and ws:// was refused.
// usage: node browser_wss.js PORT
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');
(async () => {
  const port = process.argv[2];
  const host = `device.test:${port}`;
  const html = fs.readFileSync(path.join(__dirname, 'browser.html'), 'utf8');
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox','--disable-gpu','--disable-quic','--no-first-run','--disable-background-networking','--disable-component-update','--disable-sync',
      '--ignore-certificate-errors', '--host-resolver-rules=MAP device.test 127.0.0.1'] });
  const page = await browser.newPage();
  const response = await page.goto(`https://${host}/healthz?url=wss://${host}/ws`);
  const tls = await response.securityDetails();
  if (!response.ok() || !tls) throw new Error(`https page: ${response.status()} ${JSON.stringify(tls)}`);
  await page.setContent(html);
  await page.waitForFunction(() => document.getElementById('result').textContent !== 'RUNNING', null, { timeout: 10000 });
  const text = await page.textContent('#result');
  const context = await page.evaluate((host) => {
    let plain;
    try { new WebSocket(`ws://${host}/ws`).close(); plain = 'allowed'; } catch (e) { plain = e.name; }
    return { secure: window.isSecureContext, origin: location.origin, plain };
  }, host);
  console.log(text);
  console.log(`page ${context.origin} (${tls.protocol}): isSecureContext=${context.secure}, ws:// from it: ${context.plain}`);
  await browser.close();
  const ok = text.startsWith('PASS') && context.secure && context.origin === `https://${host}`
    && context.plain === 'SecurityError';
  console.log(ok ? 'chromium wss ok' : 'chromium wss FAILED');
  process.exit(ok ? 0 : 1);
})().catch(e => { console.error(e); process.exit(2); });
