/**
 * Messages to smbd (reload-config, close-share) go out with one smbcontrol on the usual path; smbd is
 * pinged only when the message failed: not running is no error (it reads its config when it starts),
 * running but refusing the message twice is.
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import type { Runner } from '../src/core/exec.ts';
import { Samba } from '../src/samba/samba.ts';

function fake(answers: Record<string, number[]>): { run: Runner; calls: string[] } {
  const calls: string[] = [];
  const run: Runner = async (tool, args, opts) => {
    const what = args.slice(3).join(' ');
    calls.push(what);
    const code = answers[what]?.shift() ?? 0;
    const out = { code, stdout: what === 'ping' && code === 0 ? 'PONG from pid 1\n' : '', stderr: code ? 'Can\'t find pid for destination \'smbd\'\n' : '' };
    if (code && !opts?.allowFail) throw new Error(`${tool} ${what} failed`);
    return out;
  };
  return { run, calls };
}
const target = { smbConf: '/x/smb.conf', managedConf: '/x/m.conf', smbHost: '127.0.0.1', smbPort: 445 };

test('reload-config: one smbcontrol when smbd takes it', async () => {
  const f = fake({});
  await new Samba(f.run, target).reload();
  assert.deepEqual(f.calls, ['reload-config']);
});

test('reload-config and close-share with smbd not running: pinged once, no error', async () => {
  const f = fake({ 'reload-config': [1], ping: [1, 1], 'close-share docs': [1] });
  await new Samba(f.run, target).reload();
  await new Samba(f.run, target).closeShare('docs');
  assert.deepEqual(f.calls, ['reload-config', 'ping', 'close-share docs', 'ping']);
});

test('smbd answers the ping but refuses the message twice: an error', async () => {
  const f = fake({ 'reload-config': [1, 1] });
  await assert.rejects(new Samba(f.run, target).reload(), /reload-config failed/);
  assert.deepEqual(f.calls, ['reload-config', 'ping', 'reload-config']);
});
