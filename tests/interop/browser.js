// Drives tests/interop/browser.html in headless Chromium (playwright-core, Debian chromium);
// exits 0 when the page reports PASS. usage: node browser.js file:///.../browser.html?url=ws://...
const { chromium } = require('playwright-core');
(async () => {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox','--disable-gpu','--disable-quic','--no-first-run','--disable-background-networking','--disable-component-update','--disable-sync'] });
  const page = await browser.newPage();
  await page.goto(process.argv[2]);
  await page.waitForFunction(() => document.getElementById('result').textContent !== 'RUNNING', null, { timeout: 10000 });
  const text = await page.textContent('#result');
  console.log(text);
  await browser.close();
  process.exit(text.startsWith('PASS') ? 0 : 1);
})().catch(e => { console.error(e); process.exit(2); });
