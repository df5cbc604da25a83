/**
 * The real-guest backend of the PVE simulator, container side, driven the way the simulator drives it:
 * create from the (placeholder) standard template, check Samba is there, turn it into a template,
 * linked clone per share with a bind mount point and a static address on a bridge, push smb.conf,
 * create the user, reload, and probe over SMB; then delete. Pure helpers are checked too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { bindMounts, propString, RealGuestBackend } from './guests/pve-backend.ts';
import { since, waitFor } from './guests/common.ts';
import type { SimGuest } from './pve-sim/backend.ts';

test('property strings and bind mount points of a CT config', () => {
  assert.deepEqual(propString('name=eth0,bridge=vmbr0,ip=10.9.0.5/24,gw=10.9.0.1'), { name: 'eth0', bridge: 'vmbr0', ip: '10.9.0.5/24', gw: '10.9.0.1' });
  assert.deepEqual(bindMounts({ mp0: '/tank/a,mp=/srv/share', mp1: 'local-zfs:subvol-100-disk-1,mp=/data', mp2: '/tank/b,mp=/ro,ro=1', net0: 'x' }), [
    { host: '/tank/a', path: '/srv/share' },
    { host: '/tank/b', path: '/ro', readOnly: true },
  ]);
});

test('real backend: CT from template, linked clone with mp0 + static net0, Samba configured by exec/push, SMB probe', { timeout: 300_000 }, async (t) => {
  const work = await mkdtemp('/tmp/smbgw-rbt-');
  await chmod(work, 0o755);
  t.after(() => rm(work, { recursive: true, force: true }));
  const placeholder = join(work, 'debian-12-standard_12.7-1_amd64.tar.zst');
  await writeFile(placeholder, 'fake ostemplate\n');
  const data = join(work, 'share');
  await mkdir(data);
  await chown(data, 101000, 101000);

  const b = new RealGuestBackend({ dir: join(work, 'backend') });
  t.after(() => b.close());
  await b.prepare();
  const tpl: SimGuest = { vmid: 9000, kind: 'lxc', node: 'pve1', status: 'stopped', template: false, config: { hostname: 'smbgw-tpl', memory: '128', unprivileged: '1' } };
  let t0 = Date.now();
  await b.ctCreate(tpl, placeholder);
  const createS = since(t0);
  await b.ctStart(tpl);
  const dpkg = await b.ctExec(tpl, ['dpkg-query', '-W', '-f', '${Status}', 'samba']);
  assert.equal(dpkg.stdout, 'install ok installed');
  await b.ctStop(tpl);

  const ip = '10.61.3.20';
  const ct: SimGuest = {
    vmid: 101, kind: 'lxc', node: 'pve1', status: 'stopped', template: false,
    config: { hostname: 'smb-docs', memory: '128', unprivileged: '1', mp0: `${data},mp=/srv/share`, net0: `name=eth0,bridge=vmbr0,ip=${ip}/24,gw=10.61.3.1` },
  };
  t0 = Date.now();
  await b.ctClone(tpl, ct, true);
  const cloneS = since(t0);
  t0 = Date.now();
  await b.ctStart(ct);
  const startS = since(t0);
  const pw = `Pw-${randomBytes(5).toString('hex')}`;
  await b.ctPush(ct, Buffer.from('[global]\n   server role = standalone server\n   disable netbios = yes\n[docs]\n   path = /srv/share\n   read only = no\n   valid users = alice\n'), '/etc/samba/smb.conf', 0o644);
  assert.equal((await b.ctExec(ct, ['useradd', '-M', '-u', '1000', 'alice'])).code, 0);
  assert.equal((await b.ctExec(ct, ['smbpasswd', '-s', '-a', 'alice'], Buffer.from(`${pw}\n${pw}\n`))).code, 0);
  await b.ctExec(ct, ['smbcontrol', 'smbd', 'reload-config']);
  assert.equal((await b.ctExec(ct, ['hostname'])).stdout.trim(), 'smb-docs');
  const ifs = await b.ctInterfaces(ct);
  assert.equal(ifs.find((i) => i.name === 'eth0')?.inet, `${ip}/24`);

  const ok = await waitFor('probe ok', async () => { const r = await b.probe(ip, 'docs', 'alice', pw); return r.ok ? r : undefined; }, 30_000, 100);
  assert.match(ok.output, /blocks of size/);
  const bad = await b.probe(ip, 'docs', 'alice', 'wrong');
  assert.equal(bad.ok, false);
  assert.match(bad.output, /NT_STATUS_LOGON_FAILURE/);
  // The clone is copy-on-write: the template's rootfs did not get the clone's smb.conf.
  assert.doesNotMatch(await readFile(join(work, 'backend/ct/9000/rootfs/etc/samba/smb.conf'), 'utf8'), /\[docs\]/);
  t.diagnostic(`backend figures: ${JSON.stringify({ ctCreateFromTemplateSeconds: createS, linkedCloneSeconds: cloneS, startSeconds: startS })}`);

  await b.ctDestroy(ct);
  await assert.rejects(stat(join(work, 'backend/ct/101')));
  assert.equal((await stat(data)).uid, 101000, 'the bind-mounted host dir itself is left alone');
});
