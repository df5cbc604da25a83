/** The one parser of `smbstatus --json` (Samba 4.17's shape): sessions, tree connects with their smbd, open files per smbd and share path. */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSmbStatus, Samba } from '../src/samba/samba.ts';

const sample = JSON.stringify({
  sessions: {
    '3021': { session_id: '3021', server_id: { pid: '4711' }, username: 'alice', remote_machine: '127.0.0.1', session_dialect: 'SMB3_11', encryption: { degree: 'none' }, signing: { degree: 'partial' } },
  },
  tcons: {
    '1': { service: 'Team Data', server_id: { pid: '4711' }, session_id: '3021', machine: '127.0.0.1', encryption: { degree: 'none' } },
    '2': { service: 'other', server_id: { pid: '4712' }, session_id: '3022', machine: '127.0.0.1', encryption: { degree: 'full' } },
  },
  open_files: {
    '/srv/team/a.txt': { service_path: '/srv/team', opens: { '1': { server_id: { pid: '4711' } }, '2': { server_id: { pid: '4711' } } } },
    '/srv/other/b': { service_path: '/srv/other', opens: { '1': { server_id: { pid: '4712' } } } },
  },
});

test('sessions, tree connects with their smbd pid and encryption, open files per pid and path', () => {
  const st = parseSmbStatus(sample);
  assert.deepEqual(st.sessions.map((s) => [s.id, s.username, s.dialect, s.encrypted, s.signed]), [['3021', 'alice', 'SMB3_11', false, true]]);
  assert.deepEqual(st.tcons.map((t) => [t.service, t.sessionId, t.pid, t.encrypted]), [['Team Data', '3021', 4711, false], ['other', '3022', 4712, true]]);
  assert.equal(st.openFiles, 2);
  assert.deepEqual([...st.openByPidPath.get(4711)!], [['/srv/team', 2]]);
  assert.deepEqual([...st.openByPidPath.get(4712)!], [['/srv/other', 1]]);
  assert.deepEqual(parseSmbStatus('{}'), { sessions: [], tcons: [], openFiles: 0, openByPidPath: new Map() });
});

test("the admin's [global] as testparm reads it is kept by the text it read: asked again when smb.conf changes, always when it includes other files", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'smbgw-globals-'));
  try {
    const smbConf = join(dir, 'smb.conf');
    const managedConf = join(dir, 'managed.conf');
    let asked = 0;
    const run = async (tool: string, args: readonly string[]) => {
      assert.equal(tool, 'testparm');
      asked++;
      const text = await readFile(args[args.length - 1]!, 'utf8');
      return { code: 0, stdout: `[global]\n\tserver signing = ${/signing = (\w+)/.exec(text)?.[1] ?? 'default'}\n`, stderr: '' };
    };
    const samba = new Samba(run, { smbConf, managedConf, smbHost: '127.0.0.1', smbPort: 445, stateDir: join(dir, 'state') });
    await writeFile(smbConf, `[global]\nserver signing = mandatory\ninclude = ${managedConf}\n`);
    assert.deepEqual(await samba.adminGlobals(), { 'server signing': 'mandatory' });
    assert.deepEqual(await samba.adminGlobals(), { 'server signing': 'mandatory' });
    assert.equal(asked, 1, 'the same text: testparm asked once');
    await writeFile(smbConf, `[global]\nserver signing = auto\ninclude = ${managedConf}\n`);
    assert.deepEqual(await samba.adminGlobals(), { 'server signing': 'auto' });
    assert.equal(asked, 2, 'a changed smb.conf: asked again');
    await writeFile(smbConf, `[global]\nserver signing = auto\ninclude = /etc/samba/other.conf\ninclude = ${managedConf}\n`);
    await samba.adminGlobals();
    await samba.adminGlobals();
    assert.equal(asked, 4, 'an smb.conf that includes another file: asked every time');
    const noState = new Samba(run, { smbConf, managedConf, smbHost: '127.0.0.1', smbPort: 445 });
    await writeFile(smbConf, `[global]\nserver signing = mandatory\n`);
    await noState.adminGlobals();
    await noState.adminGlobals();
    assert.equal(asked, 6, 'no state directory: nothing kept');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
