/**
 * The web wizard in a real browser (Debian chromium driven by playwright-core) against the demo's
 * daemon: sign in with a token, create a share through the wizard, reach it over SMB, see field
 * errors from the API next to the field, delete it.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { colourStats, readPng } from './helpers/png.ts';
import { startDemo, type Demo } from '../src/demo/main.ts';
import { sh } from './helpers/gateway.ts';

describe('web wizard in chromium', () => {
  let demo: Demo;
  let browser: Browser;
  let page: Page;

  before(async () => {
    demo = await startDemo();
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
    page = await ctx.newPage();
  });
  after(async () => {
    await browser?.close();
    await demo?.stop();
  });

  it('refuses a wrong token, then lists the shares', async () => {
    await page.goto(demo.info.api + '/');
    await page.fill('#token', 'PVEAPIToken=smbgateway!demo=not-the-secret');
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#login-error:has-text("not accepted")');
    await page.fill('#token', demo.info.token);
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector(`#shares tr[data-share="${demo.info.share}"]`);
    assert.match(await page.textContent('#node') ?? '', new RegExp(demo.info.node));
  });

  it('shows the API\'s field error next to the field', async () => {
    await page.click('#new-share');
    try {
      await page.fill('#f-sharename', 'bad/name');
      await page.selectOption('#f-mode', 'native');
      await page.click('#next');
      await page.fill('#f-path', join(demo.gateway.settings.allowedRoots[0]!, 'x'));
      await page.click('#next');
      await page.fill('#f-users', demo.info.user);
      for (let i = 0; i < 2; i++) await page.click('#next');
      await page.click('#create');
      await page.waitForSelector('#err-sharename:has-text("must not contain the character")');
      assert.equal(await page.isVisible('#f-sharename'), true, 'the wizard went back to the step of the field');
    } finally {
      await page.click('#cancel');
    }
  });

  it('creates a share through the wizard that works over SMB, then deletes it', async () => {
    const storage = demo.gateway.settings.allowedRoots[0]!;
    await page.click('#new-share');
    await page.click('#next');
    assert.equal(await page.textContent('#err-sharename'), 'required', 'required fields are asked for');
    await page.fill('#f-sharename', 'webshare');
    await page.selectOption('#f-mode', 'native');
    await page.fill('#f-comment', 'Made in the browser');
    await page.click('#next');
    await page.fill('#f-path', join(storage, 'webshare'));
    await page.click('#next');
    await page.fill('#f-users', demo.info.user);
    await page.selectOption('#f-security_profile', 'high');
    await page.click('#next');
    await page.click('#next');
    assert.match(await page.textContent('#step-body') ?? '', /webshare[\s\S]*native[\s\S]*high/);
    const shot = join(demo.root, 'wizard.png');
    await page.screenshot({ path: shot });
    // What a person would see: a rendered page, not a blank or error screen.
    const img = readPng(await readFile(shot));
    const stats = colourStats(img);
    assert.ok(img.width >= 800 && img.height >= 500, `screenshot ${img.width}x${img.height}`);
    assert.ok(stats.colours > 30 && stats.foreground > 0.03, `the wizard looks blank: ${JSON.stringify(stats)}`);
    if (process.env.SMBGW_KEEP_SCREENSHOT) await writeFile(process.env.SMBGW_KEEP_SCREENSHOT, await readFile(shot));
    await page.click('#create');
    await page.waitForSelector('#shares tr[data-share="webshare"]', { timeout: 60_000 });
    assert.match(await page.textContent('#shares tr[data-share="webshare"]') ?? '', /native.*webshare.*high/);

    const tmp = join(demo.root, 'up.bin');
    const data = randomBytes(64 * 1024);
    await writeFile(tmp, data);
    const r = await sh('smbclient', ['-s', '/dev/null', '//127.0.0.1/webshare', '-p', String(demo.info.port), '-U', `${demo.info.user}%${demo.info.password}`,
      '--client-protection=encrypt', '-c', `put ${tmp} f.bin; get f.bin ${tmp}.back`]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.ok(data.equals(await readFile(`${tmp}.back`)));

    page.once('dialog', (d) => { void d.accept(); });
    await page.click('#shares tr[data-share="webshare"] button');
    await page.waitForSelector('#shares tr[data-share="webshare"]', { state: 'detached', timeout: 60_000 });
    assert.equal((await demo.gateway.store.list()).some((s) => s.sharename === 'webshare'), false);
  });

  it('serves the page with a strict content security policy', async () => {
    const r = await page.request.get(demo.info.api + '/');
    assert.match(r.headers()['content-security-policy'] ?? '', /default-src 'self'; script-src 'self'/);
    const data = await page.request.get(demo.info.api + '/api2/json/nodes/' + demo.info.node + '/smbgateway');
    assert.equal(data.status(), 401, 'no data without credentials');
  });
});
