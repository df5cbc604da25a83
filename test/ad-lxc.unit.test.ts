/** lxc mode with Active Directory, the pure parts: the container's computer name, its ids on the host, its config. */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { parseShare } from '../src/core/share.ts';
import { checkLxcDomainShare, domainAclSpec, domainGuestIds, lxcNetbiosName } from '../src/provision/lxc-ad.ts';
import { ctConfigParams, guestManagedConf } from '../src/provision/lxc.ts';
import { checkNewShare } from '../src/api/operations/shares.ts';
import { IDMAP } from '../src/samba/ads.ts';

const share = (o: Record<string, unknown> = {}) => parseShare({ sharename: 'docs', mode: 'lxc', path: '/tank/docs', ad_domain: 'lab.example', users: ['LAB\\alice'], groups: ['LAB\\staff'], ...o });

describe('AD in lxc mode', () => {
  it('names the container SMB-<share> when that fits 15 characters, else a stable shortened name', () => {
    assert.equal(lxcNetbiosName('docs'), 'SMB-DOCS');
    assert.equal(lxcNetbiosName('Team_Files'), 'SMB-TEAM-FILES');
    const long = lxcNetbiosName('engineering-archive');
    assert.match(long, /^SMB-ENGINE-[0-9A-F]{4}$/);
    assert.equal(lxcNetbiosName('engineering-archive'), long, 'deterministic');
    assert.notEqual(lxcNetbiosName('engineering-archive2'), long);
    for (const n of ['a', 'x'.repeat(80), 'a-b-c-d-e-f-g-h-i', '---']) assert.match(lxcNetbiosName(n), /^[A-Z0-9][A-Z0-9-]{0,14}$/);
  });
  it('refuses local names, guest access and a computer name another share\'s container has', () => {
    assert.throws(() => checkLxcDomainShare(share({ users: ['alice'] }), []), /^.*users: alice is a local name: an lxc share with ad_domain takes domain principals only/);
    assert.throws(() => checkLxcDomainShare(share({ guest_ok: true }), []), /guest_ok/);
    const other = share({ sharename: 'DOCS' });
    assert.throws(() => checkLxcDomainShare(share(), [other]), /sharename: its container's computer name would be SMB-DOCS, which share DOCS's container has already/);
    checkLxcDomainShare(share(), [share({ sharename: 'other' })]);
  });
  it('vm and lxc take ad_domain (the VM of a vm share joins through the guest agent, test/ad-vm.test.ts); their computer names must differ', () => {
    checkNewShare(share({ mode: 'vm', groups: [] }));
    checkNewShare(share());
    assert.throws(() => checkLxcDomainShare(share({ mode: 'vm', groups: [] }), [share({ sharename: 'DOCS' })]), /computer name would be SMB-DOCS/);
    assert.equal(domainAclSpec({ ...share({ mode: 'vm', groups: [] }), guest_uids: ['LAB\\alice:1001103'] }, 0), 'u:1001103:rwx,d:u:1001103:rwx', 'a VM\'s ids unshifted (virtiofs)');
  });
  it('grants the principals\' ids as the host sees them (100000 + 10000 + RID)', () => {
    const s = share();
    const ids = new Map([['LAB\\alice', 10000 + 1103], ['LAB\\staff', 10000 + 1106]]);
    const stored = { ...s, guest_uids: domainGuestIds(s, ids) };
    assert.deepEqual(stored.guest_uids, ['LAB\\alice:11103', '@LAB\\staff:11106']);
    assert.equal(domainAclSpec(stored), 'u:111103:rwx,d:u:111103:rwx,g:111106:rwx,d:g:111106:rwx');
    assert.equal(domainAclSpec(s), '', 'nothing before the ids are known');
    assert.ok(IDMAP.lxc.domain[1] + 100000 < 165536, 'inside the container\'s host range');
  });
  it('renders the member settings with the container\'s own computer name, and its DNS', () => {
    const s = share();
    const conf = guestManagedConf(s, { realm: 'LAB.EXAMPLE', workgroup: 'LAB', idmap: IDMAP.lxc, netbios: 'SMB-DOCS' });
    for (const l of ['netbios name = SMB-DOCS', 'security = ads', 'idmap config LAB : range = 10000-59999', 'idmap config * : range = 60000-64999', 'valid users = LAB\\alice @LAB\\staff']) assert.ok(conf.includes(l), l);
    const p = ctConfigParams(share({ nameserver: '192.0.2.10 192.0.2.11' }), '/tank/docs', 'vmbr0');
    assert.equal(p.nameserver, '192.0.2.10 192.0.2.11');
    assert.equal(p.searchdomain, 'lab.example');
    assert.throws(() => share({ nameserver: '192.0.2.10,192.0.2.11' }), /nameserver: must be 1 to 3 IPv4 addresses/);
  });
});
