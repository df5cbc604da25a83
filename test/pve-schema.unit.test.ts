/**
 * The simulator's request validator is generic: driven by the official Proxmox VE schema
 * (../shared/pve-api/apidata.json). One test per rejection class, on real endpoints, plus what it accepts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiSchema, validateParams, type MethodInfo, type Values } from './pve-sim/schema.ts';

const schema = new ApiSchema();
function check(method: string, path: string, values: Values): Record<string, string> {
  const m = schema.match(path);
  assert.ok(m, `no endpoint for ${path}`);
  const info = m.info[method] as MethodInfo;
  assert.ok(info, `no ${method} on ${m.path}`);
  return validateParams(info, { ...m.pathParams, ...values });
}

const CT_OK: Values = { vmid: '200', ostemplate: 'local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst', rootfs: 'local-zfs:8', net0: 'name=eth0,bridge=vmbr0,ip=dhcp', mp0: '/tank/share,mp=/srv/share,backup=0', memory: '128', unprivileged: '1', onboot: '1' };

test('the schema has the endpoints the gateway uses, and matching prefers literal segments', () => {
  assert.ok(schema.endpoints.length > 300);
  assert.equal(schema.match('/nodes/pve1/lxc/100/status/current')?.path, '/nodes/{node}/lxc/{vmid}/status/current');
  assert.equal(schema.match('/cluster/mapping/dir')?.path, '/cluster/mapping/dir');
  assert.deepEqual(schema.match('/nodes/pve1/qemu/101/clone')?.pathParams, { node: 'pve1', vmid: '101' });
});

test('a well-formed container create is accepted', () => {
  assert.deepEqual(check('POST', '/nodes/pve1/lxc', CT_OK), {});
});

test('unknown parameter (additionalProperties 0) is rejected', () => {
  const e = check('POST', '/nodes/pve1/lxc', { ...CT_OK, apparmor: 'unconfined' });
  assert.match(e.apparmor!, /property is not defined in schema and the schema does not allow additional properties/);
});

test('wrong type: integer, boolean, number', () => {
  assert.match(check('POST', '/nodes/pve1/lxc', { ...CT_OK, memory: '128M' }).memory!, /type check \('integer'\) failed - got '128M'/);
  assert.match(check('POST', '/nodes/pve1/lxc', { ...CT_OK, onboot: 'maybe' }).onboot!, /type check \('boolean'\) failed/);
  assert.match(check('POST', '/nodes/pve1/lxc', { ...CT_OK, cpulimit: 'lots' }).cpulimit!, /type check \('number'\) failed/);
  assert.deepEqual(check('POST', '/nodes/pve1/lxc', { ...CT_OK, onboot: 'true', cpulimit: '1.5' }), {});
});

test('enum is enforced', () => {
  assert.match(check('POST', '/nodes/pve1/lxc', { ...CT_OK, ostype: 'windows' }).ostype!, /does not have a value in the enumeration 'debian, devuan/);
  assert.match(check('POST', '/cluster/ha/resources', { sid: 'ct:200', state: 'running' }).state!, /enumeration/);
});

test('pattern is enforced (Perl regex from the schema)', () => {
  const e = check('POST', '/nodes/pve1/lxc', { ...CT_OK, rootfs: 'local-zfs:8,mountoptions=noatime;sync' });
  assert.match(e.rootfs!, /rootfs\.mountoptions: value does not match the regex pattern/);
  assert.deepEqual(check('POST', '/nodes/pve1/lxc', { ...CT_OK, rootfs: 'local-zfs:8,mountoptions=noatime;nosuid' }), {});
});

test('minimum and maximum', () => {
  assert.match(check('POST', '/nodes/pve1/lxc', { ...CT_OK, memory: '8' }).memory!, /minimum value of 16/);
  assert.match(check('POST', '/nodes/pve1/lxc', { ...CT_OK, vmid: '99' }).vmid!, /minimum value of 100|valid VM ID/);
  assert.match(check('POST', '/nodes/pve1/lxc', { ...CT_OK, tty: '7' }).tty!, /maximum value of 6/);
  assert.match(check('POST', '/nodes/pve1/qemu/100/clone', { newid: '1000000000' }).newid!, /maximum|valid VM ID/);
});

test('missing required parameter', () => {
  const { ostemplate: _o, ...rest } = CT_OK;
  assert.match(check('POST', '/nodes/pve1/lxc', rest).ostemplate!, /property is missing and it is not optional/);
  assert.match(check('POST', '/nodes/pve1/qemu/100/clone', {}).newid!, /property is missing/);
});

test('maxLength and named formats', () => {
  assert.match(check('POST', '/nodes/pve1/lxc', { ...CT_OK, hostname: 'smb_bad name' }).hostname!, /valid DNS name/);
  assert.match(check('POST', '/nodes/pve1/lxc', { ...CT_OK, hostname: 'a'.repeat(256) }).hostname!, /255 characters/);
  assert.match(check('POST', '/cluster/mapping/dir', { id: '9bad', map: 'node=pve1,path=/tank/x' }).id!, /invalid configuration ID/);
  assert.match(check('GET', '/nodes/bad_node!/lxc', {}).node!, /valid node name/);
});

test('malformed mp[n]: unknown key, missing mp, bad path', () => {
  assert.match(check('POST', '/nodes/pve1/lxc', { ...CT_OK, mp0: '/tank/share,mp=/srv/share,nosuchkey=1' }).mp0!, /invalid key in comma-separated list property: nosuchkey/);
  assert.match(check('POST', '/nodes/pve1/lxc', { ...CT_OK, mp0: '/tank/share' }).mp0!, /mp0\.mp: property is missing/);
  assert.match(check('POST', '/nodes/pve1/lxc', { ...CT_OK, mp0: '/tank/share,mp=/srv/../etc' }).mp0!, /mp0\.mp: .*illegal character sequences/);
  assert.match(check('POST', '/nodes/pve1/lxc', { ...CT_OK, mp0: '/tank/share,mp=/srv/share,backup=perhaps' }).mp0!, /mp0\.backup: type check \('boolean'\)/);
});

test('malformed net[n] for containers and VMs', () => {
  assert.match(check('POST', '/nodes/pve1/lxc', { ...CT_OK, net0: 'bridge=vmbr0,ip=dhcp' }).net0!, /net0\.name: property is missing/);
  assert.match(check('POST', '/nodes/pve1/lxc', { ...CT_OK, net0: 'name=eth0,bridge=vmbr0,ip=10.1.2.3' }).net0!, /net0\.ip: .*IPv4/);
  assert.match(check('POST', '/nodes/pve1/lxc', { ...CT_OK, net0: 'name=eth0,ip=dhcp,ip=dhcp' }).net0!, /duplicate key/);
  assert.deepEqual(check('PUT', '/nodes/pve1/qemu/100/config', { net0: 'virtio,bridge=vmbr0' }), {});
  assert.deepEqual(check('PUT', '/nodes/pve1/qemu/100/config', { net0: 'virtio=BC:24:11:00:00:01,bridge=vmbr0' }), {});
  assert.match(check('PUT', '/nodes/pve1/qemu/100/config', { net0: 'rtl9999,bridge=vmbr0' }).net0!, /net0\.model: .*enumeration/);
});

test('malformed rootfs, ipconfig[n], virtiofs[n], cicustom', () => {
  assert.match(check('POST', '/nodes/pve1/lxc', { ...CT_OK, rootfs: 'local-zfs:8,quota=sometimes' }).rootfs!, /rootfs\.quota/);
  assert.match(check('PUT', '/nodes/pve1/qemu/100/config', { ipconfig0: 'ip=10.0.0.5' }).ipconfig0!, /ipconfig0\.ip/);
  assert.match(check('PUT', '/nodes/pve1/qemu/100/config', { ipconfig0: 'ip=dhcp,dns=1.1.1.1' }).ipconfig0!, /invalid key in comma-separated list property: dns/);
  assert.deepEqual(check('PUT', '/nodes/pve1/qemu/100/config', { ipconfig0: 'ip=10.0.0.5/24,gw=10.0.0.1' }), {});
  assert.match(check('PUT', '/nodes/pve1/qemu/100/config', { virtiofs0: 'dirid=share,cache=sometimes' }).virtiofs0!, /virtiofs0\.cache: .*enumeration/);
  assert.match(check('PUT', '/nodes/pve1/qemu/100/config', { virtiofs0: 'cache=auto' }).virtiofs0!, /virtiofs0\.dirid: property is missing/);
  assert.deepEqual(check('PUT', '/nodes/pve1/qemu/100/config', { virtiofs0: 'smbgw-101,expose-acl=1' }), {});
  assert.match(check('PUT', '/nodes/pve1/qemu/100/config', { cicustom: 'user=snippets/x.yaml' }).cicustom!, /cicustom\.user: unable to parse volume ID/);
});

test('array parameters and requires', () => {
  assert.deepEqual(check('POST', '/cluster/mapping/dir', { id: 'smbgw-101', map: ['node=pve1,path=/tank/a', 'node=pve2,path=/tank/a'] }), {});
  assert.match(check('POST', '/cluster/mapping/dir', { id: 'smbgw-101', map: 'node=pve1,path=relative' }).map!, /invalid path/);
  assert.match(check('POST', '/nodes/pve1/lxc', { ...CT_OK, unique: '1' }).restore!, /required by 'unique'/);
});
