/**
 * Create and delete through the CLI at share #1..R and at share #(N-R+1)..N, side by side in one run:
 * two gateways, one starting empty and one filled with N-R shares first (as N-R creates would leave
 * it: shares.cfg, the accounts, the directories, the managed smb.conf, smbd reloaded), and creates
 * on the two interleaved round by round so that both see the same load on this shared machine.
 * With BEFORE=<dir holding an older dist/> the older CLI runs too, interleaved with this one on the same
 * gateways (before/after in one run).
 *   node --import tsx bench/scale-compare.ts [N=500] [R=50]
 * Needs dist/ (npm run build). Last line: `create_p50_ms first=<a> last=<b>` per CLI.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseShare } from '../src/core/share.ts';
import { atomicWrite } from '../src/core/store.ts';
import { renderManagedConf } from '../src/samba/render.ts';
import { cliEntry, ROOT, sh, startGateway, type TestGateway } from '../test/helpers/gateway.ts';

const N = Number(process.argv[2] ?? 500);
const R = Number(process.argv[3] ?? 50);
const p50 = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[s.length >> 1] ?? NaN; };
const clis: Record<string, string> = { after: cliEntry(ROOT) };
if (process.env.BEFORE) clis.before = cliEntry(process.env.BEFORE);
const PW = 'Sc4le-compare-pw';

const gws: TestGateway[] = [];
try {
  const small = await startGateway();
  gws.push(small);
  const large = await startGateway();
  gws.push(large);
  const users = new Map<TestGateway, string>([[small, small.user('cmp')], [large, large.user('cmp')]]);
  const pwf = new Map<TestGateway, string>([[small, await small.passwordFile(PW)], [large, await large.passwordFile(PW)]]);
  const run = async (cli: string, g: TestGateway, args: string[]) => {
    const t = performance.now();
    const r = await sh('node', [cli, ...args, '--json'], { env: { SMBGATEWAY_CONFIG: g.settingsFile } });
    if (r.code !== 0) throw new Error(`${args.join(' ')}: ${r.stdout}${r.stderr}`);
    return performance.now() - t;
  };
  const createArgs = (g: TestGateway, name: string) => ['create', name, '--mode', 'native', '--path', join(g.storage, name), '--user', users.get(g)!, '--password-file', pwf.get(g)!];
  // The large gateway: one real create (the account), then N-R-1 shares as creates leave them.
  await run(clis.after!, large, createArgs(large, 'fill0'));
  const st = await large.gw.store.load();
  for (let i = 1; i < N - R; i++) {
    const path = join(large.storage, `fill${i}`);
    await mkdir(path);
    st.shares.push(parseShare({ sharename: `fill${i}`, mode: 'native', path, users: [users.get(large)!], created: [{ kind: 'dir', path }], backing: 'dir' }, { allowInternal: true }));
  }
  await large.gw.store.write(st.shares, st.accounts);
  await atomicWrite(large.settings.managedConf, renderManagedConf(st.shares, { adminGlobals: await large.gw.samba.adminGlobals() }));
  await large.gw.samba.reload();
  console.log(`large gateway filled with ${st.shares.length} shares`);

  const targets = Object.keys(clis).flatMap((c) => [{ cli: c, g: small, at: 'first' }, { cli: c, g: large, at: 'last' }]);
  const times = new Map<string, { create: number[]; del: number[] }>(targets.map((t) => [`${t.cli} ${t.at}`, { create: [], del: [] }]));
  const made: { t: (typeof targets)[number]; name: string }[] = [];
  const rounds = Math.floor(R / Object.keys(clis).length);
  for (let r = 0; r < rounds; r++) {
    const order = targets.map((_, i) => targets[(i + r) % targets.length]!);
    for (const t of order) {
      const name = `${t.cli}${r}`;
      times.get(`${t.cli} ${t.at}`)!.create.push(await run(clis[t.cli]!, t.g, createArgs(t.g, name)));
      made.push({ t, name });
    }
    if ((r + 1) % 10 === 0) console.log(`round ${r + 1}/${rounds}: ${[...times].map(([k, v]) => `${k} ${p50(v.create).toFixed(0)} ms`).join(', ')}`);
  }
  // list and status with N shares (the large gateway), the CLIs interleaved.
  const reads = new Map<string, number[]>();
  for (let i = 0; i < 5; i++) {
    for (const c of i % 2 ? Object.keys(clis).reverse() : Object.keys(clis)) {
      for (const [what, a] of [['list', ['list']], ['status', ['status', 'fill7']]] as const) {
        const k = `${c} ${what}`;
        reads.set(k, [...(reads.get(k) ?? []), await run(clis[c]!, large, [...a])]);
      }
    }
  }
  for (const [k, v] of reads) console.log(`${k} with ${N} shares: p50 ${p50(v).toFixed(0)} ms (min ${Math.min(...v).toFixed(0)})`);
  // Deletes, interleaved the same way (the small gateway back down to 0, the large one to N-R).
  for (let i = made.length - 1; i >= 0; i--) {
    const { t, name } = made[i]!;
    times.get(`${t.cli} ${t.at}`)!.del.push(await run(clis[t.cli]!, t.g, ['delete', name]));
  }
  const shares = { first: `1..${rounds * Object.keys(clis).length}`, last: `${N - R + 1}..${N - R + rounds * Object.keys(clis).length}` };
  for (const [k, v] of times) console.log(`${k.padEnd(12)} (shares ${shares[k.split(' ')[1] as 'first' | 'last']}): create p50 ${p50(v.create).toFixed(0)} ms (min ${Math.min(...v.create).toFixed(0)}), delete p50 ${p50(v.del).toFixed(0)} ms, n=${v.create.length}`);
  for (const c of Object.keys(clis)) console.log(`cli=${c} create_p50_ms first=${p50(times.get(`${c} first`)!.create).toFixed(0)} last=${p50(times.get(`${c} last`)!.create).toFixed(0)} delete_p50_ms first=${p50(times.get(`${c} first`)!.del).toFixed(0)} last=${p50(times.get(`${c} last`)!.del).toFixed(0)}`);
} finally {
  for (const g of gws) await g.cleanup();
}
