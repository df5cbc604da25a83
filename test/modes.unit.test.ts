/** Each mode takes its own options (SectionConfig-style): another mode's option is refused, not stored and ignored. */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { MODE_OPTIONS, parseShare } from '../src/core/share.ts';

const base = (mode: string) => ({ sharename: 's', mode, path: '/srv/s', users: ['alice'] });

test('an option of another mode is refused naming the field and the modes it applies to', () => {
  assert.throws(() => parseShare({ ...base('native'), vm_memory: 4096 }), /^GatewayError: vm_memory: is not an option of native shares \(it applies to vm mode\)$/);
  assert.throws(() => parseShare({ ...base('native'), bridge: 'vmbr1' }), /bridge: is not an option of native shares \(it applies to lxc and vm mode\)/);
  assert.throws(() => parseShare({ ...base('lxc'), ha_enabled: true }), /ha_enabled: is not an option of lxc shares \(it applies to native mode\)/);
  assert.throws(() => parseShare({ ...base('vm'), groups: ['team'] }), /groups: is not an option of vm shares/);
  assert.throws(() => parseShare({ ...base('lxc'), vm_cores: 4 }), /vm_cores: is not an option of lxc shares/);
});

test('defaults are not carried into modes that do not use them; each mode keeps its own', () => {
  const n = parseShare(base('native'));
  assert.equal(n.vm_memory, undefined);
  assert.equal(n.vm_cores, undefined);
  assert.equal(parseShare({ ...base('vm'), vm_memory: 4096, vm_cores: 4 }).vm_memory, 4096);
  assert.equal(parseShare({ ...base('lxc'), ct_memory: 64 }).ct_memory, 64);
  assert.equal(parseShare({ ...base('native'), groups: ['team'], ha_enabled: true, ctdb_vip: 'auto' }).ha_enabled, true);
});

test('what update may change is declared per mode; every mode option list only names schema keys', () => {
  // Guest shares: their Samba settings live in the guest; their backups (on the host) can change, and
  // their users and presets (changed inside the container or VM, provision/access-guest.ts).
  const guest = ['monitoring_enabled', 'backup_enabled', 'backup_schedule', 'backup_prune', 'backup_storage', 'users', 'read_users', 'presets', 'timemachine_max_size', 'recycle_keep_days'];
  assert.deepEqual(MODE_OPTIONS.lxc.updatable, guest);
  assert.deepEqual(MODE_OPTIONS.vm.updatable, guest);
  assert.ok(MODE_OPTIONS.native.updatable.includes('comment'));
  for (const m of Object.values(MODE_OPTIONS)) for (const k of m.updatable) assert.ok(m.options.includes(k), k);
});
