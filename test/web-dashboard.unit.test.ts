/** The dashboard's judgement of a share (pure): which problems it names, and that those shares come first. */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { problemsFirst, problemsOf, type DashboardRow } from '../src/api/operations/dashboard.ts';

const base: Omit<DashboardRow, 'problems'> = {
  sharename: 'a', mode: 'native', path: '/tank/a', comment: '', served: true, sessions: 0, used: 10, limit: 100, quota: true,
  throughput_read: 0, throughput_write: 0, errors: 0, ha: null, last_snapshot: null,
};

test('a healthy share has no problems; not served, quota over 90 %, failed logons and HA trouble are named', () => {
  assert.deepEqual(problemsOf(base), []);
  assert.deepEqual(problemsOf({ ...base, served: false }), ['not served']);
  assert.deepEqual(problemsOf({ ...base, used: 91 }), ['quota 91 % used']);
  assert.deepEqual(problemsOf({ ...base, used: 95, quota: false }), [], 'a full filesystem without a quota is not a quota problem');
  assert.match(problemsOf({ ...base, errors: 3 })[0]!, /3 failed logons/);
  assert.deepEqual(problemsOf({ ...base, ha: { holder: 'pve2', ok: false } }), ['CTDB cluster unhealthy']);
  assert.deepEqual(problemsOf({ ...base, ha: { holder: null, ok: false } }), ['no node holds the VIP']);
  assert.deepEqual(problemsOf({ ...base, served: null }), [], 'unknown (guest shares) is not a problem here');
});

test('shares with problems come first, each group by name', () => {
  const row = (sharename: string, bad: boolean): DashboardRow => ({ ...base, sharename, problems: bad ? ['not served'] : [] });
  assert.deepEqual(problemsFirst([row('a', false), row('z', true), row('m', false), row('b', true)]).map((r) => r.sharename), ['b', 'z', 'a', 'm']);
});

test('the wizard\'s storages: the node\'s file storages inside the allowed roots, then the roots', async () => {
  const { storageChoices } = await import('../src/api/operations/sessions.ts');
  const cfg = 'dir: local\n\tpath /var/lib/vz\n\tcontent iso\n\nzfspool: tank\n\tpool tank/data\n\tmountpoint /tank/data\n\nnfs: far\n\tpath /mnt/pve/far\n\tnodes pve2\n\nlvmthin: lvm\n\tthinpool data\n\tvgname pve\n\ndir: elsewhere\n\tpath /opt/x\n';
  assert.deepEqual(storageChoices(cfg, 'pve1', ['/tank', '/var/lib/vz', '/mnt']), [
    { path: '/var/lib/vz', storage: 'local', type: 'dir' },
    { path: '/tank/data', storage: 'tank', type: 'zfspool' },
    { path: '/tank', storage: null, type: null },
    { path: '/mnt', storage: null, type: null },
  ]);
});
