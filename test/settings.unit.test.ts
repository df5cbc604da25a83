/** gateway.json and daemon.json are checked by the same schema machinery as the operations: each error names the setting and the rule. */
import { strict as assert } from 'node:assert';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { loadDaemonConfig } from '../src/api/daemon.ts';
import { defaultSettings, loadSettings } from '../src/core/settings.ts';

let dir: string;
before(async () => { dir = await mkdtemp(join(tmpdir(), 'smbgw-settings-')); });
after(async () => { await rm(dir, { recursive: true, force: true }); });

const settingsWith = async (o: unknown) => { const f = join(dir, 'gateway.json'); await writeFile(f, JSON.stringify(o)); return () => loadSettings(f); };
const daemonWith = async (o: unknown) => { const f = join(dir, 'daemon.json'); await writeFile(f, JSON.stringify(o)); return () => loadDaemonConfig(defaultSettings(), f); };

test('gateway.json: values of the right type are taken; anything else names the setting and the rule', async () => {
  const s = (await settingsWith({ smb_port: 4450, allowed_roots: ['/tank', '/srv'], is_pve: false, node: 'pve2', account_uid_min: 2000, account_uid_max: 3000 }))();
  assert.deepEqual([s.smbPort, s.allowedRoots, s.isPve, s.node, s.accountUidMin, s.accountUidMax], [4450, ['/tank', '/srv'], false, 'pve2', 2000, 3000]);
  const bad: [unknown, RegExp][] = [
    [{ smb_port: 'lots' }, /gateway\.json: smb_port: must be an integer$/],
    [{ smb_port: 70000 }, /smb_port: must be at most 65535/],
    [{ allowed_roots: ['/'] }, /allowed_roots: "\/": must be an absolute path other than \//],
    [{ allowed_roots: 'srv' }, /allowed_roots: "srv": must be an absolute path/],
    [{ node: 'bad node' }, /node: must be a node name/],
    [{ store_dir: 'relative' }, /store_dir: must be an absolute path/],
    [{ pve_transport: 'ssh' }, /pve_transport: must be one of pvesh, api/],
    [{ colour: 'red' }, /colour: unknown parameter \(known: node, /],
    [{ account_uid_min: 5000, account_uid_max: 4000 }, /account_uid_min must not be above account_uid_max/],
    [['not', 'an', 'object'], /must be a JSON object/],
  ];
  for (const [o, rule] of bad) assert.throws(await settingsWith(o), rule, JSON.stringify(o));
});

test('daemon.json: numbers, peers and unknown settings', async () => {
  const c = (await daemonWith({ interval: 2, tick: 0.5, peers: { pve2: { url: 'https://10.0.0.2:8116', fingerprint: 'AB:'.repeat(31) + 'AB' } } }))();
  assert.deepEqual([c.interval, c.tick, c.peers.pve2?.url], [2, 0.5, 'https://10.0.0.2:8116']);
  const bad: [unknown, RegExp][] = [
    [{ interval: 0 }, /daemon\.json: interval: must be at least 1$/],
    [{ port: 'http' }, /port: must be an integer/],
    [{ peers: { pve2: { url: 'http://x' } } }, /peers: pve2: url must be an https:\/\/ URL/],
    [{ peers: { 'bad node': {} } }, /peers: "bad node" is not a node name/],
    [{ interval_s: 5 }, /interval_s: unknown setting/],
  ];
  for (const [o, rule] of bad) assert.throws(await daemonWith(o), rule, JSON.stringify(o));
});

test('secrets live in pmxcfs\' private area on a Proxmox VE node, beside the store elsewhere, one file per (share, user)', async () => {
  const { privDirOf } = await import('../src/core/settings.ts');
  const { ShareStore } = await import('../src/core/store.ts');
  assert.equal(privDirOf({ storeDir: '/etc/pve/smbgateway' }), '/etc/pve/priv/smbgateway');
  assert.equal(privDirOf({ storeDir: '/etc/smbgateway' }), '/etc/smbgateway/priv');
  assert.equal(privDirOf({ storeDir: '/srv/x', privDir: '/root/secrets' }), '/root/secrets');
  const store = new ShareStore({ storeDir: '/etc/pve/smbgateway', lockDir: '/tmp/l' });
  assert.equal(store.secretPath('Team Data', 'alice'), '/etc/pve/priv/smbgateway/team%20data+alice.pw');
  // names that used to collide (share "a.b" user "c" and share "a" user "b.c") no longer do
  assert.notEqual(store.secretPath('a.b', 'c'), store.secretPath('a', 'b.c'));
});
