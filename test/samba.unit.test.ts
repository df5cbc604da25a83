/** The one parser of `smbstatus --json` (Samba 4.17's shape): sessions, tree connects with their smbd, open files per smbd and share path. */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { parseSmbStatus } from '../src/samba/samba.ts';

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
