/**
 * Security profiles proven on the wire with smbclient against a real smbd.
 */
import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startGateway, sh, type TestGateway } from './helpers/gateway.ts';

describe('security profiles on the wire', () => {
  let g: TestGateway;
  let alice: string;
  const pw = 'Profile-pw-42';
  const ok = (r: { code: number; stdout: string; stderr: string }, what: string) => assert.equal(r.code, 0, `${what}: ${r.stdout}${r.stderr}`);
  const refused = (r: { code: number; stdout: string; stderr: string }, what: string, status: RegExp) => {
    assert.notEqual(r.code, 0, `${what} should be refused: ${r.stdout}`);
    assert.match(r.stdout + r.stderr, status, what);
  };

  before(async () => {
    g = await startGateway();
    alice = g.user('alice');
    const pwFile = await g.passwordFile(pw);
    for (const [name, profile] of [['std', 'standard'], ['secret', 'high']] as const) {
      const r = await g.cli(['create', name, '--mode', 'native', '--path', join(g.storage, name), '--user', alice, '--password-file', pwFile, '--profile', profile, '--json']);
      ok(r, `create ${name}`);
    }
  });
  after(async () => { await g?.cleanup(); });

  for (const share of ['std', 'secret']) {
    it(`${share}: refuses SMB1, anonymous listing, guest and NTLMv1`, async () => {
      refused(await g.smb(share, alice, pw, 'ls', ['-m', 'NT1', '--option=client min protocol=NT1']), 'SMB1', /No compatible protocol selected by server|NT_STATUS_INVALID_NETWORK_RESPONSE/);
      refused(await sh('smbclient', ['-s', '/dev/null', '-L', '//127.0.0.1', '-p', String(g.sandbox.port), '-N']), 'anonymous listing', /NT_STATUS_ACCESS_DENIED|NT_STATUS_LOGON_FAILURE/);
      refused(await sh('smbclient', ['-s', '/dev/null', `//127.0.0.1/${share}`, '-p', String(g.sandbox.port), '-N', '-c', 'ls']), 'anonymous tree connect', /NT_STATUS_ACCESS_DENIED|NT_STATUS_LOGON_FAILURE/);
      refused(await g.smb(share, 'nosuchuser', 'whatever', 'ls'), 'unknown user mapped to guest', /NT_STATUS_LOGON_FAILURE/);
      // Raw NTLM (no SPNEGO) works with NTLMv2 and is refused with NTLMv1: the only difference is the response type.
      const extra = share === 'secret' ? ['--client-protection=encrypt'] : [];
      ok(await g.smb(share, alice, pw, 'ls', ['--option=client use spnego=no', ...extra]), 'NTLMv2 without SPNEGO');
      refused(await g.smb(share, alice, pw, 'ls', ['--option=client ntlmv2 auth=no', '--option=client use spnego=no', ...extra]), 'NTLMv1', /NT_STATUS_LOGON_FAILURE|NT_STATUS_WRONG_PASSWORD/);
    });
  }

  it('standard: SMB2.1+ with signing; SMB2.02 is refused', async () => {
    refused(await g.smb('std', alice, pw, 'ls', ['-m', 'SMB2_02']), 'SMB2.02', /protocol negotiation failed: NT_STATUS_\w+/);
    ok(await g.smb('std', alice, pw, 'ls', ['-m', 'SMB2_10']), 'SMB2.1');
    ok(await g.smb('std', alice, pw, 'ls', ['-m', 'SMB3']), 'SMB3');
    // A client that does not ask for signing gets a signed session all the same.
    const h = await g.holdSession('std', alice, pw, ['--client-protection=off']);
    const st = await g.gw.samba.status();
    h.close();
    const mine = st.sessions.filter((s) => s.username === alice);
    assert.ok(mine.length > 0, JSON.stringify(st));
    for (const s of mine) assert.equal(s.signed, true, `session ${s.id} is not signed`);
  });

  it('high: SMB3 with encryption; a client that cannot encrypt is refused', async () => {
    // SMB2.1 has no encryption: such a client is refused at tree connect, while the standard share lets it in.
    refused(await g.smb('secret', alice, pw, 'ls', ['-m', 'SMB2_10']), 'SMB2.1 (no encryption in SMB2)', /NT_STATUS_ACCESS_DENIED/);
    ok(await g.smb('std', alice, pw, 'ls', ['-m', 'SMB2_10']), 'SMB2.1 on the standard share');
    ok(await g.smb('secret', alice, pw, 'ls', ['--client-protection=encrypt']), 'SMB3 encrypted');
    ok(await g.smb('secret', alice, pw, 'ls'), 'SMB3, client encrypts when asked');
    const h = await g.holdSession('secret', alice, pw);
    const st = await g.gw.samba.status();
    h.close();
    const tcons = st.tcons.filter((t) => t.service === 'secret');
    assert.ok(tcons.length > 0, JSON.stringify(st));
    for (const t of tcons) assert.equal(t.encrypted, true, 'the tree connect is encrypted');
  });

  it('guest access is opt-in per share (standard only), read-only, and other shares stay closed', async () => {
    const r = await g.cli(['create', 'pub', '--mode', 'native', '--path', join(g.storage, 'pub'), '--guest', '--json']);
    ok(r, 'create guest share');
    ok(await sh('smbclient', ['-s', '/dev/null', '//127.0.0.1/pub', '-p', String(g.sandbox.port), '-N', '-c', 'ls']), 'guest reads the guest share');
    const put = await sh('smbclient', ['-s', '/dev/null', '//127.0.0.1/pub', '-p', String(g.sandbox.port), '-N', '-c', `put ${g.settingsFile} x`]);
    assert.match(put.stdout + put.stderr, /NT_STATUS_ACCESS_DENIED/, 'guests cannot write');
    refused(await sh('smbclient', ['-s', '/dev/null', '//127.0.0.1/std', '-p', String(g.sandbox.port), '-N', '-c', 'ls']), 'guest on a normal share', /NT_STATUS_ACCESS_DENIED|NT_STATUS_LOGON_FAILURE/);
    refused(await g.smb('std', alice, 'wrong-password', 'ls'), 'a wrong password is not turned into guest', /NT_STATUS_LOGON_FAILURE/);
  });
});
