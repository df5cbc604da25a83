/** The pure smb.conf renderer: exact text, profiles, and no way to inject a line. */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { parseShare, parseSize, shareNameRule } from '../src/core/share.ts';
import { includesManaged, renderManagedConf } from '../src/samba/render.ts';
import { execRunner } from '../src/core/exec.ts';
import { Samba } from '../src/samba/samba.ts';

const share = (over: Record<string, unknown> = {}) => parseShare({ sharename: 'projects', mode: 'native', path: '/tank/projects', users: ['alice'], read_users: ['bob'], groups: ['team'], ...over });

describe('smb.conf renderer', () => {
  it('renders the global hardening and one section per share, sorted', () => {
    const text = renderManagedConf([share({ sharename: 'zeta', path: '/tank/z', security_profile: 'high' }), share({ comment: 'Team files', options: ['hide_dot_files=yes'] })]);
    assert.equal(text, `# Managed by pve-smbgateway: do not edit; changes are overwritten.

[global]
   server min protocol = SMB2_10
   server signing = mandatory
   restrict anonymous = 2
   map to guest = Never
   ntlm auth = ntlmv2-only
   server schannel = yes

[projects]
   path = /tank/projects
   comment = Team files
   read only = yes
   write list = alice @team
   valid users = alice @team bob
   invalid users = root
   guest ok = no
   vfs objects = full_audit
   full_audit:syslog = no
   full_audit:prefix = smbgw-tcon|%d
   full_audit:success = connect
   full_audit:failure = none
   aio read size = 0
   aio write size = 0
   hide dot files = yes

[zeta]
   path = /tank/z
   read only = yes
   write list = alice @team
   valid users = alice @team bob
   invalid users = root
   guest ok = no
   smb encrypt = required
   vfs objects = full_audit
   full_audit:syslog = no
   full_audit:prefix = smbgw-tcon|%d
   full_audit:success = connect
   full_audit:failure = none
   aio read size = 0
   aio write size = 0
`);
  });

  it('raises the minimum protocol to SMB3 when every share is high, and maps guests only when a share allows them', () => {
    assert.match(renderManagedConf([share({ security_profile: 'high' })]), /server min protocol = SMB3\n/);
    assert.match(renderManagedConf([share({ guest_ok: true, users: [], read_users: [], groups: [] })]), /map to guest = Bad User\n/);
  });

  it('logs tree connects for the collector on monitored native shares only, after the other VFS modules', () => {
    assert.doesNotMatch(renderManagedConf([share({ monitoring_enabled: false })]), /full_audit/);
    assert.doesNotMatch(renderManagedConf([share()], { pathInside: () => '/srv/x' }), /full_audit/);
    const snap = renderManagedConf([{ ...share({ backup_enabled: true }), backing: 'zfs:tank/projects' }]);
    assert.match(snap, /vfs objects = shadow_copy2 full_audit\n/);
    assert.equal(snap.match(/vfs objects/g)?.length, 1);
  });

  it('an audited share has one full_audit setup: the audit preset\'s, which records connects with the pid for the collector too', () => {
    const text = renderManagedConf([share({ presets: ['audit'] })]);
    for (const k of ['prefix', 'success', 'failure', 'syslog']) assert.equal(text.match(new RegExp(`full_audit:${k} =`, 'g'))?.length, 1, k);
    assert.match(text, /full_audit:prefix = smbgw-audit\|%S\|%u\|%I\|%d\n/);
    assert.match(text, /full_audit:success = connect create_file /);
    assert.equal(text.match(/full_audit/g)?.length, 5);
  });

  it('a read-only share has no write list', () => {
    assert.doesNotMatch(renderManagedConf([share({ read_only: true })]), /write list/);
  });

  it('refuses a line break even when called with unchecked data', () => {
    const s = share();
    assert.throws(() => renderManagedConf([{ ...s, comment: 'x\n[global]\ninclude = /etc/evil' }]), /refusing to render a line break/);
    assert.throws(() => renderManagedConf([{ ...s, sharename: 'a]\n[b' }]), /refusing to render share name/);
  });

  it('what it renders passes testparm', async () => {
    const samba = new Samba(execRunner, { smbConf: '/dev/null', managedConf: '/dev/null', smbHost: '127.0.0.1', smbPort: 445 });
    await samba.checkText(renderManagedConf([share(), share({ sharename: 'b', path: '/b', security_profile: 'high', options: ['create_mask=0660', 'veto files=/.DS_Store/'] })]));
    await assert.rejects(samba.checkText('[x]\n   path = /x\n   wrtie list = a\n'), /testparm rejected .*Unknown parameter encountered: "wrtie list"/);
  });

  it('finds the include line', () => {
    assert.equal(includesManaged('[global]\n   include = /etc/samba/smbgateway.conf\n', '/etc/samba/smbgateway.conf'), true);
    assert.equal(includesManaged('[global]\n;  include = /etc/samba/smbgateway.conf\n', '/etc/samba/smbgateway.conf'), false);
  });
});

describe('share model rules', () => {
  it('share names follow Samba', () => {
    assert.equal(shareNameRule('Projects 2024'), undefined);
    assert.equal(shareNameRule('Ünïcode-ok'), undefined);
    assert.match(shareNameRule(' lead')!, /start or end with a space/);
    assert.match(shareNameRule('tab\there')!, /control characters/);
  });
  it('sizes', () => {
    assert.equal(parseSize('50G'), 50 * 2 ** 30);
    assert.equal(parseSize('1.5T'), 1.5 * 2 ** 40);
    assert.equal(parseSize('512'), 512);
    assert.equal(parseSize('0'), undefined);
    assert.equal(parseSize('-1G'), undefined);
    assert.equal(parseSize('abc'), undefined);
  });
});
