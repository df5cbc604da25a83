/**
 * Proxmox HA for guest shares: the HA resource parameters agree with the official PVE API schema,
 * and registering/unregistering the guest works against the Proxmox simulator (idempotent, rolled
 * back on failure, refused with Proxmox's error when the token lacks the privilege).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyPlan } from '../src/core/plan.ts';
import { parseShare, type Share } from '../src/core/share.ts';
import { guestHaRemoveSteps, guestHaSteps, haResourceParams, haResourceSid } from '../src/ha/pveha.ts';
import { pveClient } from '../src/pve/connect.ts';
import { apiSchema } from './pve-sim/sim.ts';
import { validateParams } from './pve-sim/schema.ts';
import { startSimGateway, TOKEN_PRIVS } from './pve-sim/gateway.ts';

function guestShare(mode: 'lxc' | 'vm', vmid: number): Share {
  const s = parseShare({ sharename: `g${vmid}`, mode, path: '/tank/g', users: ['alice'] });
  return { ...s, vmid } as Share;
}

test('HA resource parameters for a guest share follow the PVE 9 schema of POST /cluster/ha/resources', () => {
  const info = apiSchema().method('/cluster/ha/resources', 'POST');
  assert.ok(info, 'the schema has the endpoint');
  const ct = haResourceParams(guestShare('lxc', 120));
  assert.deepEqual(ct, { sid: 'ct:120', type: 'ct', state: 'started', max_restart: 1, max_relocate: 1, comment: 'pve-smbgateway share g120' });
  const vm = haResourceParams(guestShare('vm', 9001), { maxRestart: 2, maxRelocate: 3 });
  const asValues = (p: Record<string, string | number>) => Object.fromEntries(Object.entries(p).map(([k, v]) => [k, String(v)]));
  for (const p of [ct, vm]) assert.deepEqual(validateParams(info, asValues(p)), {}, JSON.stringify(p));
  // the check itself bites: a state Proxmox does not know is reported
  assert.ok(validateParams(info, asValues({ ...ct, state: 'running' })).state);
  assert.equal(vm.sid, 'vm:9001');
  assert.ok(!('group' in vm), 'no deprecated HA group');
  assert.throws(() => haResourceSid(parseShare({ sharename: 'n', mode: 'native', path: '/srv/n', users: ['alice'] })), /mode: share n is in native mode/);
  assert.throws(() => haResourceSid(parseShare({ sharename: 'x', mode: 'lxc', path: '/tank/x', users: ['alice'] })), /has no guest yet/);
  assert.throws(() => haResourceParams(guestShare('lxc', 120), { maxRestart: -1 }), /max_restart/);
});

test('the guest is registered as an HA resource on the simulator, idempotently, and rolled back on failure', async (t) => {
  const sg = await startSimGateway({ transport: 'token', tokenAcl: [{ path: '/', privs: [...TOKEN_PRIVS, 'Sys.Console'] }] });
  t.after(() => sg.cleanup());
  const node = sg.sim.localNode;
  sg.sim.guests.set(4321, { vmid: 4321, kind: 'lxc', node, config: { hostname: 'smbgw-g4321' }, status: 'running', template: false });
  const api = pveClient(sg.settings, sg.gw.run);
  const share = guestShare('lxc', 4321);
  const posts = () => sg.sim.requests.filter((r) => r.method === 'POST' && r.path === '/cluster/ha/resources').length;

  await applyPlan(guestHaSteps(api, share));
  const list = await api.get<{ sid: string; state: string; comment?: string }[]>('/cluster/ha/resources');
  assert.deepEqual(list.map((r) => [r.sid, r.state, r.comment]), [['ct:4321', 'started', 'pve-smbgateway share g4321']]);
  await applyPlan(guestHaSteps(api, share));
  assert.equal(posts(), 1, 'a second run does not register again');

  await applyPlan(guestHaRemoveSteps(api, share));
  assert.deepEqual(await api.get('/cluster/ha/resources'), []);

  // a later step fails: the registration is undone
  await assert.rejects(applyPlan([...guestHaSteps(api, share), { name: 'after', do: async () => { throw new Error('boom'); } }]), /boom \(rolled back\)/);
  assert.deepEqual(await api.get('/cluster/ha/resources'), []);
  // a guest that does not exist: Proxmox's own error
  await assert.rejects(applyPlan(guestHaSteps(api, guestShare('lxc', 4999))), /unable to find VM\/CT ct:4999/);
});

test('a token without Sys.Console on / cannot register HA resources: Proxmox\'s refusal reaches the user', async (t) => {
  const sg = await startSimGateway({ transport: 'token' });
  t.after(() => sg.cleanup());
  sg.sim.guests.set(4322, { vmid: 4322, kind: 'qemu', node: sg.sim.localNode, config: {}, status: 'running', template: false });
  const api = pveClient(sg.settings, sg.gw.run);
  await assert.rejects(applyPlan(guestHaSteps(api, guestShare('vm', 4322))), /Permission check failed/);
});

test('`ha guest <share>` on the CLI registers and removes the guest\'s HA resource', async (t) => {
  const sg = await startSimGateway({ transport: 'token', tokenAcl: [{ path: '/', privs: [...TOKEN_PRIVS, 'Sys.Console'] }] });
  t.after(() => sg.cleanup());
  sg.sim.guests.set(4323, { vmid: 4323, kind: 'qemu', node: sg.sim.localNode, config: {}, status: 'running', template: false });
  await sg.gw.store.write([guestShare('vm', 4323)]);
  const on = await sg.cli(['ha', 'guest', 'g4323', '--max-restart', '2', '--json']);
  assert.equal(on.code, 0, on.stdout + on.stderr);
  assert.deepEqual(on.json?.data, { sharename: 'g4323', sid: 'vm:4323', registered: true });
  assert.deepEqual([...sg.sim.ha.keys()], ['vm:4323']);
  const off = await sg.cli(['ha', 'guest', 'g4323', '--remove']);
  assert.equal(off.code, 0, off.stderr);
  assert.match(off.stdout, /g4323: vm:4323 is not an HA resource/);
  assert.equal(sg.sim.ha.size, 0);
});
