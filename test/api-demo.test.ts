/**
 * The demo runs the daemon and its collector too: `npm run demo -- --json` adds "api", "node" and
 * "token" to its line, and that token is accepted by the API for the demo share.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { test } from 'node:test';
import { groupAlive, ROOT, waitFor } from './helpers/gateway.ts';
import { call } from './helpers/https.ts';

test('the demo\'s JSON line names the API, the node and a working Authorization header', async () => {
  const demo = spawn('npm', ['run', '--silent', 'demo', '--', '--json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  let err = '';
  demo.stdout.on('data', (d) => (out += d));
  demo.stderr.on('data', (d) => (err += d));
  const exited = new Promise<void>((res) => demo.once('exit', () => res()));
  try {
    for (const end = Date.now() + 120_000; !out.includes('\n'); ) {
      assert.ok(Date.now() < end && demo.exitCode === null, `no JSON line from the demo (stderr: ${err})`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const info = JSON.parse(out.trim()) as Record<string, string | number>;
    for (const k of ['host', 'port', 'share', 'user', 'password']) assert.ok(info[k], `keeps ${k}`);
    assert.match(String(info.api), /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.match(String(info.node), /^[a-zA-Z0-9-]+$/);
    assert.match(String(info.token), /^PVEAPIToken=smbgateway!demo=[0-9a-f-]{36}$/);
    const base = `/api2/json/nodes/${info.node}/smbgateway/${info.share}`;
    const auth = { authorization: String(info.token) };
    const st = await call(String(info.api), undefined, 'GET', base, { headers: auth });
    assert.equal(st.status, 200, st.text);
    assert.equal(st.json.data.sharename, info.share);
    // The collector's first sample is there (it runs at start, then every 10 s).
    let pts: unknown[] = [];
    for (const end = Date.now() + 30_000; !pts.length; ) {
      assert.ok(Date.now() < end, 'no metrics sample for the demo share');
      const m = await call(String(info.api), undefined, 'GET', `${base}/metrics?timeframe=hour`, { headers: auth });
      assert.equal(m.status, 200, m.text);
      pts = m.json.data;
      if (!pts.length) await new Promise((r) => setTimeout(r, 500));
    }
    const prom = await call(String(info.api), undefined, 'GET', '/metrics', { headers: auth });
    assert.match(prom.text, new RegExp(`smbgateway_sessions\\{share="${info.share}",node="${info.node}",mode="native"\\}`));
    assert.equal((await call(String(info.api), undefined, 'GET', base)).status, 401);
    process.kill(-demo.pid!, 'SIGTERM');
    await exited;
    const refused = (port: number) => new Promise<boolean>((res) => {
      const c = connect(port, '127.0.0.1');
      c.once('connect', () => { c.destroy(); res(false); });
      c.once('error', () => res(true));
    });
    // npm exits first; the demo itself is still removing what it made: wait for it (its smbd last).
    await waitFor(async () => (await refused(Number(new URL(String(info.api)).port))) && (await refused(Number(info.port))), 30_000, 'the demo to stop its API and smbd');
    // ...and let the demo finish removing its directory before the final SIGKILL below.
    await waitFor(async () => !(await groupAlive(demo.pid!)), 30_000, 'the demo process to exit');
  } finally {
    try { process.kill(-demo.pid!, 'SIGKILL'); } catch { /* gone */ }
  }
});
