/**
 * The web UI's dashboard with 50 shares in Debian chromium: time from navigation to the first paint
 * (FCP) and to the 50 rows drawn (the dashboard call included), the dashboard API call alone, and
 * the bundle's size. The demo's smbd serves the 50 native shares (plain directories).
 * Run: node --import tsx bench/web-dashboard.ts
 */
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { invoke } from '../src/core/operation.ts';
import { createOp } from '../src/api/operations/shares.ts';
import { startDemo } from '../src/demo/main.ts';
import { webAsset } from '../src/web/static.ts';

const N = 50;
const demo = await startDemo();
try {
  const storage = demo.gateway.settings.allowedRoots[0]!;
  const t0 = performance.now();
  for (let i = 1; i < N; i++) {
    await invoke(createOp, { sharename: `bench${String(i).padStart(2, '0')}`, mode: 'native', path: join(storage, `bench${i}`), users: [demo.info.user] }, demo.gateway);
  }
  console.log(`created ${N - 1} more shares in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const js = webAsset('/ui/app.js', 'x')!.body;
  const css = webAsset('/ui/app.css', 'x')!.body;
  const { gzipSync } = await import('node:zlib');
  console.log(`bundle: app.js ${js.length} B (${gzipSync(js).length} B gzip), app.css ${css.length} B (${gzipSync(css).length} B gzip)`);

  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] });
  try {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
    await ctx.addInitScript((t) => sessionStorage.setItem('smbgw-token', t), demo.info.token);
    const page = await ctx.newPage();
    const runs: { fcp: number; rows: number }[] = [];
    for (let i = 0; i < 6; i++) {
      await page.goto(demo.info.api + '/');
      await page.waitForFunction((n) => document.querySelectorAll('#shares tbody tr').length >= n, N, { polling: 'raf' });
      const r = await page.evaluate(() => ({
        rows: performance.now(),
        fcp: performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN,
      }));
      runs.push(r);
    }
    const warm = runs.slice(1);
    const med = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    console.log(`dashboard with ${N} shares: first contentful paint ${med(warm.map((r) => r.fcp)).toFixed(0)} ms, ${N} rows drawn ${med(warm.map((r) => r.rows)).toFixed(0)} ms after navigation (median of ${warm.length} warm loads; first load ${runs[0]!.rows.toFixed(0)} ms)`);
    const api = [];
    for (let i = 0; i < 5; i++) {
      const a = performance.now();
      const res = await page.request.get(`${demo.info.api}/api2/json/nodes/${demo.info.node}/smbgateway/dashboard`, { headers: { authorization: demo.info.token } });
      if (!res.ok()) throw new Error(await res.text());
      api.push(performance.now() - a);
    }
    console.log(`GET .../smbgateway/dashboard (${N} shares): median ${med(api).toFixed(0)} ms`);
  } finally {
    await browser.close();
  }
} finally {
  await demo.stop();
}
