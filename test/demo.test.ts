/**
 * `npm run demo -- --json`: one JSON line once the share answers; SMB works with what it prints;
 * SIGTERM removes everything the demo made.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { groupAlive, ROOT, sh, waitFor } from './helpers/gateway.ts';

describe('npm run demo', () => {
  it('serves a demo share on a private smbd and removes everything on SIGTERM', async () => {
    const demo = spawn('npm', ['run', '--silent', 'demo', '--', '--json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    let err = '';
    demo.stdout.on('data', (d) => (out += d));
    demo.stderr.on('data', (d) => (err += d));
    const exited = new Promise<number | null>((res) => demo.once('exit', (c) => res(c)));
    const tmp = await mkdtemp(join(tmpdir(), 'smbgw-demotest-'));
    try {
      await waitFor(() => out.includes('\n'), 120_000, `the demo's JSON line (stderr: ${err})`);
      const lines = out.trim().split('\n');
      assert.equal(lines.length, 1, `exactly one line: ${out}`);
      const info = JSON.parse(lines[0]!) as { host: string; port: number; share: string; user: string; password: string };
      assert.equal(info.host, '127.0.0.1');
      assert.equal(info.share, 'demo');
      assert.ok(info.port > 0 && info.user && info.password.length >= 12);

      const data = randomBytes(256 * 1024);
      await writeFile(join(tmp, 'in'), data);
      const r = await sh('smbclient', ['-s', '/dev/null', `//${info.host}/${info.share}`, '-p', String(info.port), '-U', `${info.user}%${info.password}`,
        '-c', `put ${join(tmp, 'in')} f.bin; get f.bin ${join(tmp, 'out')}`]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.ok(data.equals(await readFile(join(tmp, 'out'))));
      // The host's own smb.conf is not involved: the demo's smbd has its own.
      assert.doesNotMatch(await readFile('/etc/samba/smb.conf', 'utf8').catch(() => ''), /smbgw-demo/);

      // As Ctrl-C would: the signal reaches the whole foreground group (npm, sh, node).
      process.kill(-demo.pid!, 'SIGTERM');
      await exited;
      await waitFor(async () => (await sh('getent', ['passwd', info.user])).code === 2, 20_000, 'the demo user to be removed');
      await waitFor(async () => {
        const ls = await sh('smbclient', ['-s', '/dev/null', `//${info.host}/${info.share}`, '-p', String(info.port), '-U', `${info.user}%${info.password}`, '-c', 'ls']);
        return /NT_STATUS_CONNECTION_REFUSED/.test(ls.stderr + ls.stdout);
      }, 20_000, 'the demo smbd to be gone');
    // ...and let the demo finish removing its directory before the final SIGKILL below.
    await waitFor(async () => !(await groupAlive(demo.pid!)), 30_000, 'the demo process to exit');
    } finally {
      try { process.kill(-demo.pid!, 'SIGKILL'); } catch { /* already gone */ }
      await rm(tmp, { recursive: true, force: true });
    }
  });
});
