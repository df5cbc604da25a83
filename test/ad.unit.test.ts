/** Active Directory, the pure parts: principals, the member's [global], idmap ranges, nsswitch edits, net ads parsing. */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { parseShare, principalRule } from '../src/core/share.ts';
import { adGlobalParams, adsFailure, IDMAP, nsswitchHasWinbind, nsswitchWithoutWinbind, nsswitchWithWinbind, overlaps, parseAdsInfo, parseAdsLookup, parseSubIds } from '../src/samba/ads.ts';
import { renderManagedConf } from '../src/samba/render.ts';

describe('AD: domain principals in shares', () => {
  it('takes DOMAIN\\name in users and groups, local names as before, and refuses malformed ones', () => {
    assert.equal(principalRule('LAB\\alice'), undefined);
    assert.equal(principalRule('EXAMPLE-CORP\\j.doe'), undefined);
    assert.equal(principalRule('alice'), undefined);
    assert.match(principalRule('LAB\\')!, /DOMAIN\\name/);
    assert.equal(principalRule('LAB\\Domain Users'), undefined);
    assert.match(principalRule('LAB\\Domain  Users') ?? '', /single spaces/);
    assert.match(principalRule('LAB\\Domain ')!, /single spaces/);
    assert.match(principalRule('@LAB\\staff')!, /without @/);
    assert.match(principalRule('\\alice')!, /DOMAIN\\name/);
    assert.match(principalRule('A\\B\\c')!, /DOMAIN\\name/);
    assert.match(principalRule('root')!, /system account/);
  });
  it('needs ad_domain for a domain principal, and renders it as smb.conf and winbind name it', () => {
    assert.throws(() => parseShare({ sharename: 's', mode: 'native', path: '/tank/s', users: ['LAB\\alice'] }), /users: LAB\\alice is a domain principal: give ad_domain/);
    const s = parseShare({ sharename: 's', mode: 'native', path: '/tank/s', ad_domain: 'lab.example', users: ['LAB\\alice'], read_groups: ['LAB\\staff'] });
    const text = renderManagedConf([s], { ad: { realm: 'LAB.EXAMPLE', workgroup: 'LAB', idmap: IDMAP.native } });
    assert.match(text, /^   valid users = LAB\\alice @LAB\\staff$/m);
    assert.match(text, /^   write list = LAB\\alice$/m);
  });
});

describe('AD: the member\'s [global]', () => {
  it('is security = ads with realm and workgroup, keytab, ticket refresh and explicit idmap ranges', () => {
    const p = Object.fromEntries(adGlobalParams({ realm: 'lab.example', workgroup: 'lab', idmap: IDMAP.native }));
    assert.deepEqual(p, {
      security: 'ads', 'server role': 'member server', workgroup: 'LAB', realm: 'LAB.EXAMPLE', 'kerberos method': 'secrets and keytab',
      'winbind use default domain': 'no', 'winbind refresh tickets': 'yes', 'winbind enum users': 'no', 'winbind enum groups': 'no',
      'idmap config * : backend': 'tdb', 'idmap config * : range': '2000000-2099999', 'idmap config LAB : backend': 'rid', 'idmap config LAB : range': '1000000-1999999',
    });
  });
  it('idmap ranges never overlap each other, local accounts, Proxmox container ids; lxc fits in 65536 ids below nobody', () => {
    for (const m of [IDMAP.native, IDMAP.lxc]) assert.ok(!overlaps(m.domain, m.other));
    assert.ok(!overlaps(IDMAP.native.domain, [1000, 60000]) && !overlaps(IDMAP.native.other, [1000, 60000]));
    assert.ok(!overlaps(IDMAP.native.domain, [100000, 165535]) && !overlaps(IDMAP.native.other, [100000, 165535]));
    assert.ok(IDMAP.lxc.other[1] < 65534 && IDMAP.lxc.domain[0] > 1000 + 8999);
    assert.deepEqual(parseSubIds('root:100000:65536\n# x\nbad\n'), [{ owner: 'root', range: [100000, 165535] }]);
  });
});

describe('AD: nsswitch.conf', () => {
  const base = '# comment\npasswd:         files systemd\ngroup:          files systemd\nshadow:         files\nhosts: files dns\n';
  it('adds winbind to passwd and group once, and removes exactly that again', () => {
    const w = nsswitchWithWinbind(base);
    assert.equal(w, '# comment\npasswd:         files systemd winbind\ngroup:          files systemd winbind\nshadow:         files\nhosts: files dns\n');
    assert.equal(nsswitchWithWinbind(w), w);
    assert.ok(nsswitchHasWinbind(w) && !nsswitchHasWinbind(base));
    assert.equal(nsswitchWithoutWinbind(w), base);
  });
});

describe('AD: net ads output', () => {
  it('reads the NetBIOS domain and DC from net ads lookup, the clock offset from net ads info', () => {
    const l = parseAdsLookup('Information for Domain Controller: 10.0.0.10\n\nForest: lab.example\nDomain: lab.example\nDomain Controller: dc1.lab.example\nPre-Win2k Domain: LAB\n');
    assert.deepEqual(l, { dc: 'dc1.lab.example', dcAddress: '10.0.0.10', domain: 'lab.example', forest: 'lab.example', workgroup: 'LAB' });
    assert.equal(parseAdsLookup('Didn\'t find the cldap server!'), undefined);
    assert.deepEqual(parseAdsInfo('LDAP server name: dc1.lab.example\nRealm: LAB.EXAMPLE\nServer time offset: -3600\n'), { realm: 'LAB.EXAMPLE', ldapServer: 'dc1.lab.example', offset: -3600 });
  });
  it('tells wrong credentials, clock skew and an unreachable DC apart, without echoing the prompt', () => {
    const ctx = { realm: 'LAB.EXAMPLE', user: 'LAB\\Administrator' };
    const bad = adsFailure('joining', 'Password for [LAB\\Administrator]:\nkerberos_kinit_password Administrator@LAB.EXAMPLE failed: Preauthentication failed', ctx);
    assert.equal(bad.field, 'password');
    assert.doesNotMatch(bad.message, /Password for/);
    assert.match(adsFailure('joining', 'krb5: Clock skew too great', ctx).message, /clock differs/);
    assert.equal(adsFailure('joining', "Didn't find the cldap server!", ctx).code, 'unreachable');
  });
});

describe('AD: the clustered smb.conf of a joined CTDB cluster', () => {
  it('keeps clustering, the registry and the cluster\'s NetBIOS name, and becomes a member server with one workgroup', async () => {
    const { renderClusteredSmbConf } = await import('../src/ha/plan.ts');
    const text = renderClusteredSmbConf({ netbiosName: 'ha1', ad: { realm: 'lab.example', workgroup: 'lab', idmap: IDMAP.native } });
    for (const l of ['clustering = yes', 'netbios name = HA1', 'workgroup = LAB', 'server role = member server', 'security = ads', 'realm = LAB.EXAMPLE', 'idmap config LAB : backend = rid', 'include = registry']) {
      assert.ok(text.includes(`   ${l}\n`), `${l} in\n${text}`);
    }
    assert.equal(text.match(/workgroup =/g)!.length, 1);
    assert.equal(text.match(/server role =/g)!.length, 1);
    assert.doesNotMatch(renderClusteredSmbConf({ netbiosName: 'ha1' }), /security = ads|realm/);
  });
});
