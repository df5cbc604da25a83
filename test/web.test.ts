/**
 * The web UI in a real browser (Debian chromium driven by playwright-core) against the demo's daemon,
 * a real smbd and a btrfs storage on a loop device: sign in with a gateway token (off Proxmox VE) and
 * with a Proxmox VE user against the PVE API stand-in (ticket, CSRF, the same PVEAuthCookie as a PVE
 * session, expiry, logout); create a share through the wizard; write 20 MiB over SMB and read the
 * throughput chart's data; see the session and disconnect it; take a snapshot and restore it; edit
 * the comment; delete with purge. Screenshots go to test-artifacts/web/ (ignored by git).
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { startDaemon, type Daemon } from '../src/api/daemon.ts';
import { startDemo, type Demo } from '../src/demo/main.ts';
import { webAsset } from '../src/web/static.ts';
import { btrfsLoop, type TestFs } from './helpers/fs.ts';
import { ROOT, sh } from './helpers/gateway.ts';
import { colourStats, readPng } from './helpers/png.ts';
import { openSession, type SmbSession } from './helpers/smbsession.ts';
import { startPveStandin, type PveStandin } from './helpers/pvestandin.ts';

const ARTIFACTS = join(ROOT, 'test-artifacts/web');
const PVE_PASSWORD = 'Pve-root-pass1';
const SHARE = 'webui';

describe('web UI in chromium', () => {
  let dir: string;
  let fs: TestFs;
  let demo: Demo;
  let standin: PveStandin;
  let pveDaemon: Daemon;
  let browser: Browser;
  let ctx: BrowserContext;
  let page: Page;
  let held: SmbSession | undefined;
  const outside: string[] = [];
  const smb = (cmds: string) => sh('smbclient', ['-s', '/dev/null', `//127.0.0.1/${SHARE}`, '-p', String(demo.info.port), '-U', `${demo.info.user}%${demo.info.password}`, '-c', cmds]);

  async function shot(p: Page, name: string): Promise<string> {
    const file = join(ARTIFACTS, name);
    await p.screenshot({ path: file });
    const img = readPng(await readFile(file));
    const stats = colourStats(img);
    assert.ok(stats.colours > 30 && stats.foreground > 0.02, `${name} looks blank: ${JSON.stringify(stats)}`);
    return file;
  }

  before(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    dir = await mkdtemp(join(tmpdir(), 'smbgw-web-'));
    await chmod(dir, 0o755); // the share's users must reach the storage below it
    fs = await btrfsLoop(dir, join(dir, 'tank'), 400);
    await chmod(fs.mountpoint, 0o755);
    demo = await startDemo({ storage: fs.mountpoint, daemon: { interval: 2, tick: 0.5, usage_refresh: 2 } });
    standin = await startPveStandin(dir, {}, {}, { 'root@pam': PVE_PASSWORD });
    // The same gateway, served by a daemon that signs in Proxmox VE users (as on a PVE node).
    pveDaemon = await startDaemon({
      settings: demo.gateway.settings, assets: webAsset,
      config: { listen: '127.0.0.1', port: 0, interval: 3600, tick: 3600, pve_api: standin.url, pve_ca: standin.caFile, pve_www_key: standin.wwwKeyFile, metrics_db: join(dir, 'pve-metrics.db') },
    });
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
    page = await ctx.newPage();
    // Nothing the page loads may come from elsewhere (no CDN).
    page.on('request', (r) => { if (!r.url().startsWith(demo.info.api) && !r.url().startsWith('data:')) outside.push(r.url()); });
  });

  after(async () => {
    await held?.close();
    await browser?.close();
    await pveDaemon?.stop();
    standin?.close();
    await demo?.stop();
    await fs?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('signs in with a gateway token off Proxmox VE; a wrong one is refused', async () => {
    await page.goto(demo.info.api + '/');
    await page.waitForSelector('#token-fields:not([hidden])');
    assert.equal(await page.isVisible('#username'), false, 'no PVE login off Proxmox VE');
    await page.fill('#token', 'PVEAPIToken=smbgateway!demo=not-the-secret');
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#login-error:has-text("Login failed")');
    await page.fill('#token', demo.info.token);
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector(`#shares tr[data-share="${demo.info.share}"] .status.ok`);
    assert.match(await page.textContent('#node') ?? '', new RegExp(demo.info.node));
  });

  it('signs in a Proxmox VE user through the node\'s PVE API: ticket cookie, CSRF on writes, an existing PVE session, expiry, logout', async () => {
    const pctx = await browser.newContext({ ignoreHTTPSErrors: true });
    try {
      const p = await pctx.newPage();
      await p.goto(pveDaemon.api.url + '/');
      await p.waitForSelector('#username');
      await p.fill('#username', 'root');
      await p.fill('#password', 'wrong-password');
      await p.selectOption('#realm', 'pam');
      await p.click('#login-form button[type=submit]');
      await p.waitForSelector('#login-error:has-text("Login failed")');
      await p.fill('#password', PVE_PASSWORD);
      await p.click('#login-form button[type=submit]');
      await p.waitForSelector(`#shares tr[data-share="${demo.info.share}"]`);
      assert.equal(await p.textContent('#whoami'), 'root@pam');
      const cookie = (await pctx.cookies()).find((c) => c.name === 'PVEAuthCookie');
      assert.ok(cookie && decodeURIComponent(cookie.value).startsWith('PVE:root@pam:'), 'the PVE ticket is the PVEAuthCookie');
      const logins = standin.seen.filter((s) => s.method === 'POST' && s.url === '/api2/json/access/ticket');
      assert.equal(logins.length, 2);
      assert.deepEqual(logins.flatMap((s) => s.problems), [], 'POST /access/ticket as the PVE API schema takes it');

      // Renewal as PVE's GUI does it (every 15 minutes): the ticket posted as the password gives a new one.
      const renewed = await p.evaluate(async () => {
        const t = decodeURIComponent(/PVEAuthCookie=([^;]+)/.exec(document.cookie)![1]!);
        const r = await fetch('/api2/json/access/ticket', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'root@pam', password: t }) });
        return { status: r.status, old: t, now: decodeURIComponent(/PVEAuthCookie=([^;]+)/.exec(document.cookie)![1]!) };
      });
      assert.equal(renewed.status, 200);
      assert.notEqual(renewed.now, renewed.old, 'a new ticket replaced the old one');

      // A write with the ticket: the page sends the CSRF prevention token.
      await p.goto(`${pveDaemon.api.url}/#/share/${demo.info.share}`);
      await p.click('#share-tabs [data-tab="Options"]');
      await p.fill('#f-comment', 'set by root@pam');
      await p.click('#save-options');
      await p.waitForSelector('#share-msg:has-text("Saved.")');
      assert.equal((await demo.gateway.store.require(demo.info.share)).comment, 'set by root@pam');

      await p.click('#logout');
      await p.waitForSelector('#login:not([hidden])');
      assert.equal((await pctx.cookies()).some((c) => c.name === 'PVEAuthCookie' && c.value), false, 'logout clears the ticket');
      await p.reload();
      await p.waitForSelector('#username');
      assert.equal(await p.isVisible('#app'), false);

      // Signed in to PVE's own GUI on this host (cookies are per host, not per port): not asked again.
      await pctx.addCookies([{ name: 'PVEAuthCookie', value: encodeURIComponent(standin.issue('root@pam')), url: pveDaemon.api.url + '/', secure: true, sameSite: 'Lax' }]);
      await p.goto(pveDaemon.api.url + '/#/');
      await p.reload();
      await p.waitForSelector(`#shares tr[data-share="${demo.info.share}"]`);
      assert.equal(await p.textContent('#whoami'), 'root@pam');

      // A ticket older than PVE's 2 hours: asked to sign in again.
      await pctx.clearCookies();
      await pctx.addCookies([{ name: 'PVEAuthCookie', value: encodeURIComponent(standin.issue('root@pam', 7300)), url: pveDaemon.api.url + '/', secure: true, sameSite: 'Lax' }]);
      await p.reload();
      await p.waitForSelector('#username');
      assert.equal(await p.isVisible('#app'), false);
    } finally {
      await pctx.close();
    }
  });

  it('creates a native share through the wizard: fields follow the mode, API errors next to the field, plan, progress, connection strings', async () => {
    await page.goto(demo.info.api + '/');
    await page.waitForSelector('#shares tbody tr');
    // Keyboard: the wizard opens from the focused button.
    await page.focus('#new-share');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#f-sharename');
    await page.click('#next');
    assert.equal(await page.textContent('#err-sharename'), 'required');
    assert.equal(await page.isVisible('#f-vm_memory'), false);
    await page.fill('#f-sharename', 'bad/name');
    await page.click('#next');
    await page.waitForSelector('#err-sharename:has-text("must not contain the character")');
    await page.fill('#f-sharename', SHARE);
    await page.fill('#f-comment', 'Made in the browser');
    await page.click('#next');
    // The path from the node's storages.
    await page.waitForSelector('#storage');
    await page.selectOption('#storage', fs.mountpoint);
    assert.equal(await page.inputValue('#f-path'), join(fs.mountpoint, SHARE));
    await page.click('#next');
    await page.fill('#f-users', demo.info.user);
    await page.click('#next');
    // Advanced: only native options (no guest fields).
    await page.waitForSelector('#f-monitoring_enabled');
    for (const guest of ['vm_template', 'bridge', 'ct_memory', 'vm_cores']) assert.equal(await page.$(`#f-${guest}`), null, `${guest} is not asked for native shares`);
    await page.click('#next');
    await page.waitForSelector('#plan li strong');
    const plan = await page.textContent('#plan') ?? '';
    assert.match(plan, /undo: yes/, plan);
    const review = await page.textContent('.review') ?? '';
    assert.match(review, new RegExp(`sharename${SHARE}`));
    assert.match(review, /modenative/);
    const wizardShot = await shot(page, 'wizard-confirm.png');
    await page.click('#create');
    await page.waitForSelector('#connect', { timeout: 90_000 });
    // The progress came from the task log (kept on the done page).
    assert.match(await page.textContent('#task-log-done') ?? '', /reload-smbd/);
    assert.equal(await page.textContent('#connect tr[data-os="Windows"] code'), `\\\\127.0.0.1\\${SHARE}`);
    assert.equal(await page.textContent('#connect tr[data-os="macOS"] code'), `smb://127.0.0.1:${demo.info.port}/${SHARE}`);
    assert.match(await page.textContent('#connect tr[data-os="Linux"] code') ?? '', new RegExp(`^mount -t cifs //127.0.0.1/${SHARE} /mnt/${SHARE} -o username=${demo.info.user},port=${demo.info.port}$`));
    await shot(page, 'wizard-done.png');
    await page.click('#finish');
    await page.waitForSelector(`#shares tr[data-share="${SHARE}"] .status.ok`);
    await shot(page, 'dashboard.png');
    console.log(`# screenshots: ${wizardShot} and the others in ${ARTIFACTS}`);
  });

  it('shows 20 MiB written over SMB in the throughput chart\'s data', async () => {
    const file = join(dir, 'twenty.bin');
    await writeFile(file, randomBytes(20 * 1024 * 1024));
    // Right after the wizard, as an admin would: no waiting for the collector to know the new share first.
    // A client that stays connected, as Explorer does (kept for the sessions test).
    held = await openSession(demo.info.port, SHARE, demo.info.user, demo.info.password);
    held.send(`put ${file} twenty.bin`);
    await held.waitFor(/putting file/, 60_000);
    await page.click(`#shares tr[data-share="${SHARE}"] a`);
    await page.waitForSelector('#chart-throughput');
    // The chart's own data (uPlot's [times, read, write]): the bytes written, integrated over time.
    const written = async () => page.evaluate(() => {
      const d = (window as unknown as { smbgwCharts: Record<string, { data: (number | null)[][] }> }).smbgwCharts.throughput!.data;
      let sum = 0;
      // Each sample is the rate over the interval before it; the first one's interval is the next one's length.
      for (let i = 0; i < d[0]!.length; i++) sum += (d[2]![i] ?? 0) * (i > 0 ? d[0]![i]! - d[0]![i - 1]! : d[0]!.length > 1 ? d[0]![1]! - d[0]![0]! : 0);
      return sum;
    });
    const end = Date.now() + 60_000;
    let got = 0;
    while ((got = await written()) < 18 * 1024 * 1024 && Date.now() < end) await page.waitForTimeout(1000);
    if (got < 18 * 1024 * 1024) {
      // What the daemon knew, to tell a chart fault from a collector one.
      const hist = await page.request.get(`${demo.info.api}/api2/json/nodes/${demo.info.node}/smbgateway/${SHARE}/metrics`, { headers: { authorization: demo.info.token } });
      const prom = await page.request.get(`${demo.info.api}/metrics`, { headers: { authorization: demo.info.token } });
      console.log('# metrics:', (await hist.text()).slice(-1500), '\n# prometheus:', (await prom.text()).split('\n').filter((l) => /unattributed|written|cycle/.test(l)).join('\n'));
    }
    assert.ok(got >= 18 * 1024 * 1024 && got <= 24 * 1024 * 1024, `the chart shows ${(got / 1048576).toFixed(1)} MiB written`);
    // Proxmox's timeframes, year included; the year view loads (one point a day from the daily rollups).
    assert.deepEqual(await page.$$eval('#timeframe option', (o) => o.map((x) => (x as HTMLOptionElement).value)), ['hour', 'day', 'week', 'month', 'year']);
    const yearAnswer = page.waitForResponse((r) => r.url().includes('/metrics?timeframe=year'));
    await page.selectOption('#timeframe', 'year');
    assert.equal((await yearAnswer).status(), 200);
    await page.selectOption('#timeframe', 'hour');
    await shot(page, 'share-page.png');
  });

  it('lists the session with dialect, signing and encryption, and disconnects it: the client\'s next command fails', async () => {
    const s = held!;
    try {
      s.send('ls');
      await s.waitFor(/twenty\.bin/);
      await page.click('#share-tabs [data-tab="Sessions"]');
      const row = `#sessions tbody tr:has(td:text-is("${demo.info.user}"))`;
      await page.waitForSelector(row, { timeout: 15_000 });
      const cells = await page.$$eval(`${row} td`, (tds) => tds.map((t) => t.textContent));
      assert.match(cells[2] ?? '', /SMB3/);
      assert.equal(cells[3], 'yes', 'signed');
      await shot(page, 'share-sessions.png');
      await page.click(`${row} button.disconnect`);
      assert.match(await page.textContent('#confirm-body') ?? '', /Disconnect .* from share webui/);
      await page.click('#confirm-yes');
      await page.waitForSelector('#share-msg:has-text("Disconnected")');
      await page.waitForSelector(row, { state: 'detached', timeout: 15_000 });
      const before = s.output().length;
      s.send('ls');
      await s.waitFor(/NT_STATUS_[A-Z_]+/);
      assert.match(s.output().slice(before), /NT_STATUS_(NETWORK_NAME_DELETED|CONNECTION_DISCONNECTED|INVALID_HANDLE|USER_SESSION_DELETED)/);
    } finally {
      await s.close();
      held = undefined;
    }
  });

  it('takes a snapshot on btrfs and restores it through the UI: the old content is back over SMB', async () => {
    const v1 = join(dir, 'v1.txt');
    const v2 = join(dir, 'v2.txt');
    await writeFile(v1, 'version one\n');
    await writeFile(v2, 'version two, written after the snapshot\n');
    assert.equal((await smb(`put ${v1} doc.txt`)).code, 0);
    await page.click('#share-tabs [data-tab="Snapshots"]');
    await page.click('#take-snapshot');
    await page.waitForSelector('#share-msg:has-text("taken")');
    const snap = await page.getAttribute('#snapshots tbody tr[data-snapshot]', 'data-snapshot');
    assert.ok(snap);
    assert.equal((await smb(`put ${v2} doc.txt`)).code, 0);
    await page.click(`#snapshots tr[data-snapshot="${snap}"] button.restore`);
    const says = await page.textContent('#confirm-body') ?? '';
    assert.match(says, new RegExp(`back to snapshot ${snap}`));
    assert.match(says, /current state is first saved as a new snapshot/);
    await shot(page, 'restore-confirm.png');
    await page.click('#confirm-yes');
    await page.waitForSelector('#share-msg:has-text("Restored")', { timeout: 60_000 });
    const back = join(dir, 'back.txt');
    const r = await smb(`get doc.txt ${back}`);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(await readFile(back, 'utf8'), 'version one\n');
  });

  it('edits the comment through update', async () => {
    await page.click('#share-tabs [data-tab="Options"]');
    await page.fill('#f-comment', 'Edited in the browser');
    await page.click('#save-options');
    await page.waitForSelector('#share-msg:has-text("Saved.")');
    assert.equal((await demo.gateway.store.require(SHARE)).comment, 'Edited in the browser');
    const conf = await readFile(demo.gateway.settings.managedConf, 'utf8');
    assert.match(conf, /comment = Edited in the browser/);
    await page.click('#share-tabs [data-tab="Task History"]');
    await page.waitForSelector('#tasks tbody tr td:text-is("update")');
  });

  it('deletes the share with purge: gone from the list and from the disk', async () => {
    const path = join(fs.mountpoint, SHARE);
    await page.click('#delete-share');
    await page.check('#purge');
    await page.click('#confirm-yes');
    await page.waitForSelector('#shares', { timeout: 60_000 });
    await page.waitForSelector(`#shares tr[data-share="${SHARE}"]`, { state: 'detached' });
    assert.equal((await demo.gateway.store.list()).some((s) => s.sharename === SHARE), false);
    await assert.rejects(stat(path), 'the subvolume is purged');
  });

  it('works at phone width', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    try {
      await page.goto(demo.info.api + '/#/');
      await page.waitForSelector(`#shares tr[data-share="${demo.info.share}"]`);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone`);
      await shot(page, 'dashboard-phone.png');
    } finally {
      await page.setViewportSize({ width: 1280, height: 800 });
    }
  });

  it('serves the page with a strict content security policy and no data without credentials', async () => {
    const r = await page.request.get(demo.info.api + '/');
    assert.match(r.headers()['content-security-policy'] ?? '', /default-src 'self'; script-src 'self'/);
    const js = await page.request.get(demo.info.api + '/ui/app.js');
    assert.equal(js.status(), 200);
    assert.match(await js.text(), /uPlot|u-legend/, 'uPlot is bundled');
    assert.deepEqual(outside, [], 'the page loaded nothing from elsewhere (no CDN)');
    const data = await page.request.get(demo.info.api + '/api2/json/nodes/' + demo.info.node + '/smbgateway/dashboard', { headers: { cookie: '' } });
    assert.equal(data.status(), 401, 'no data without credentials');
  });
});
