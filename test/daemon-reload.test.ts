/**
 * `systemctl reload pve-smbgatewayd` is SIGHUP: the real daemon (bin/pve-smbgatewayd) reads its
 * settings again in the same process, every setting taking effect (here: the port and the interval);
 * a broken daemon.json is refused with the reason and the daemon goes on with the running settings.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { request } from 'node:https';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startGateway } from './helpers/gateway.ts';

const DAEMON = new URL('../bin/pve-smbgatewayd', import.meta.url).pathname;

function get(port: number): Promise<number> {
  return new Promise((res, rej) => {
    const r = request({ host: '127.0.0.1', port, path: '/', rejectUnauthorized: false }, (m) => { m.resume(); res(m.statusCode ?? 0); });
    r.on('error', rej);
    r.end();
  });
}

test('SIGHUP reloads the daemon in place; a broken daemon.json is refused and the daemon keeps serving', { timeout: 120_000 }, async (t) => {
  const g = await startGateway();
  t.after(g.cleanup);
  const conf = join(g.dir, 'daemon.json');
  await writeFile(conf, JSON.stringify({ port: 0, interval: 10 }));
  const d = spawn(DAEMON, [], { env: { ...process.env, SMBGATEWAY_CONFIG: g.settingsFile, SMBGATEWAYD_CONFIG: conf }, stdio: ['ignore', 'ignore', 'pipe'] });
  t.after(() => { if (d.exitCode === null) d.kill('SIGKILL'); });
  let log = '';
  d.stderr.setEncoding('utf8').on('data', (c: string) => { log += c; });
  const waitLog = async (re: RegExp, n = 1) => {
    const deadline = Date.now() + 30_000;
    while ((log.match(new RegExp(re, 'g')) ?? []).length < n) {
      if (d.exitCode !== null) throw new Error(`daemon exited ${d.exitCode}: ${log}`);
      if (Date.now() > deadline) throw new Error(`no ${re} in: ${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const ports = () => [...log.matchAll(/pve-smbgatewayd on https:\/\/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]));

  await waitLog(/pve-smbgatewayd on https:/);
  const port1 = ports()[0]!;
  assert.match(log, /collecting every 10 s/);
  assert.equal(await get(port1), 200);

  await writeFile(conf, JSON.stringify({ port: 0, interval: 7 }));
  d.kill('SIGHUP');
  await waitLog(/pve-smbgatewayd on https:/, 2);
  assert.match(log, /reloading: settings read again/);
  assert.match(log, /collecting every 7 s/, 'the new interval took effect');
  const port2 = ports()[1]!;
  assert.equal(d.exitCode, null, 'same process');
  assert.equal(await get(port2), 200, 'serving on the new listener');

  await writeFile(conf, '{"port": "eighty"}');
  d.kill('SIGHUP');
  await waitLog(/reload refused, keeping the running settings: .*port/);
  assert.equal(await get(port2), 200, 'still serving with the running settings');
  assert.equal(ports().length, 2, 'no restart on a refused reload');

  d.kill('SIGTERM');
  const [code] = await once(d, 'exit');
  assert.equal(code, 0);
});
