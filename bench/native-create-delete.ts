/**
 * Time of `pve-smbgateway create` and `delete` in native mode against a real sandboxed smbd,
 * 20 runs each, through the CLI (what an admin waits for) and in-process (the gateway's own work,
 * without Node start-up). Prints p50 and p90 in ms.
 *   node --import tsx bench/native-create-delete.ts [runs]
 */
import { writeFile } from 'node:fs/promises';
import { invoke } from '../src/core/operation.ts';
import { join } from 'node:path';
import { createOp, deleteOp } from '../src/api/operations/shares.ts';
import { startGateway } from '../test/helpers/gateway.ts';

const runs = Number(process.argv[2] ?? 20);
const pct = (xs: number[], p: number) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!; };
const g = await startGateway();
try {
  const alice = g.user('alice');
  const pwFile = join(g.dir, 'pw');
  await writeFile(pwFile, 'Bench-pw-1234\n', { mode: 0o600 });
  const t = { cliCreate: [] as number[], cliDelete: [] as number[], create: [] as number[], del: [] as number[] };
  for (let i = 0; i < runs; i++) {
    let s = performance.now();
    const c = await g.cli(['create', `b${i}`, '--mode', 'native', '--path', join(g.storage, `b${i}`), '--user', alice, '--password-file', pwFile, '--json']);
    if (c.code !== 0) throw new Error(c.stdout);
    t.cliCreate.push(performance.now() - s);
    s = performance.now();
    const d = await g.cli(['delete', `b${i}`, '--purge', '--json']);
    if (d.code !== 0) throw new Error(d.stdout);
    t.cliDelete.push(performance.now() - s);
    s = performance.now();
    await invoke(createOp, { sharename: `p${i}`, mode: 'native', path: join(g.storage, `p${i}`), users: [alice], password: 'Bench-pw-1234' }, g.gw);
    t.create.push(performance.now() - s);
    s = performance.now();
    await invoke(deleteOp, { sharename: `p${i}`, purge: true }, g.gw);
    t.del.push(performance.now() - s);
  }
  const line = (name: string, xs: number[]) => console.log(`${name.padEnd(22)} p50=${pct(xs, 50).toFixed(0)}ms p90=${pct(xs, 90).toFixed(0)}ms (n=${xs.length})`);
  line('cli create', t.cliCreate);
  line('cli delete', t.cliDelete);
  line('in-process create', t.create);
  line('in-process delete', t.del);
  console.log(`create_p50_ms=${pct(t.cliCreate, 50).toFixed(0)} delete_p50_ms=${pct(t.cliDelete, 50).toFixed(0)} runs=${runs}`);
} finally {
  await g.cleanup();
}
