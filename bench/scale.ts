/**
 * Many shares through the CLI, as an admin scripts it: N native shares created one after the other
 * (one account, a password file), `list` and `status` timed with all of them, then all deleted.
 * Prints create/delete p50 over the first and the last 50, and list/status times.
 *   node --import tsx bench/scale.ts [N=500]
 * Uses the compiled CLI (dist/, `npm run build`) when it is current, as bin/pve-smbgateway does.
 */
import { join } from 'node:path';
import { startGateway } from '../test/helpers/gateway.ts';

const N = Number(process.argv[2] ?? 500);
const p50 = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[s.length >> 1] ?? NaN; };
const g = await startGateway();
try {
  const user = g.user('sc');
  const pwf = await g.passwordFile('Sc4le-bench-pass');
  const create: number[] = [];
  const del: number[] = [];
  const timed = async (args: string[]) => {
    const t = performance.now();
    const r = await g.cli(args);
    if (r.code !== 0) throw new Error(`${args.join(' ')}: ${r.stdout}${r.stderr}`);
    return performance.now() - t;
  };
  for (let i = 0; i < N; i++) {
    create.push(await timed(['create', `sc${i}`, '--mode', 'native', '--path', join(g.storage, `sc${i}`), '--user', user, '--password-file', pwf, '--json']));
    if ((i + 1) % 50 === 0) console.log(`created ${i + 1}: p50 of the last 50 ${p50(create.slice(-50)).toFixed(0)} ms`);
  }
  const list = [await timed(['list']), await timed(['list']), await timed(['list'])];
  const status = [await timed(['status', `sc${N - 1}`]), await timed(['status', `sc${N - 1}`]), await timed(['status', `sc${N - 1}`])];
  for (let i = N - 1; i >= 0; i--) del.push(await timed(['delete', `sc${i}`, '--json']));
  const first = (xs: number[]) => p50(xs.slice(0, 50)).toFixed(0);
  const last = (xs: number[]) => p50(xs.slice(-50)).toFixed(0);
  console.log(`create p50: first 50 ${first(create)} ms, last 50 ${last(create)} ms; delete p50 (from ${N} shares down): first 50 ${first(del)} ms, last 50 ${last(del)} ms`);
  console.log(`with ${N} shares: list ${p50(list).toFixed(0)} ms, status ${p50(status).toFixed(0)} ms (p50 of 3)`);
  console.log(`shares=${N} create_p50_first_ms=${first(create)} create_p50_last_ms=${last(create)} delete_p50_first_ms=${first(del)} delete_p50_last_ms=${last(del)} list_ms=${p50(list).toFixed(0)} status_ms=${p50(status).toFixed(0)}`);
} finally {
  await g.cleanup();
}
