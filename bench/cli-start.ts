/**
 * Start time and memory of the compiled CLI: `--help`, `help create`, `list` (no shares) and a native
 * `create` + `delete` against a sandboxed smbd, each run R times, the CLIs interleaved round by round;
 * wall time (p50, min) and maximum RSS (/usr/bin/time). With BEFORE=<dir holding an older dist/> that
 * CLI runs too, on the same gateway (before/after in one run). `node -e 0` is timed as the floor.
 *   node --import tsx bench/cli-start.ts [R=15]
 */
import { join } from 'node:path';
import { cliEntry, ROOT, sh, startGateway } from '../test/helpers/gateway.ts';

const R = Number(process.argv[2] ?? 15);
const clis: Record<string, string> = { after: cliEntry(ROOT) };
if (process.env.BEFORE) clis.before = cliEntry(process.env.BEFORE);
const stats = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return { p50: s[s.length >> 1] ?? NaN, min: s[0] ?? NaN }; };

const g = await startGateway();
try {
  const user = g.user('cs');
  const pwf = await g.passwordFile('Cli-start-pw1');
  const res = new Map<string, { ms: number[]; rssMb: number[] }>();
  const timed = async (key: string, args: string[]) => {
    const r = await sh('/usr/bin/time', ['-f', 'TIME %e %M', ...args], { env: { SMBGATEWAY_CONFIG: g.settingsFile } });
    const m = /TIME ([\d.]+) (\d+)/.exec(r.stderr);
    if (r.code !== 0 || !m) throw new Error(`${args.join(' ')}: ${r.stdout}${r.stderr}`);
    const e = res.get(key) ?? { ms: [], rssMb: [] };
    e.ms.push(Number(m[1]) * 1000);
    e.rssMb.push(Number(m[2]) / 1024);
    res.set(key, e);
  };
  const names = Object.keys(clis);
  for (let r = 0; r < R; r++) {
    await timed('node -e 0', ['node', '-e', '0']);
    for (const c of r % 2 ? [...names].reverse() : names) {
      const cli = clis[c]!;
      await timed(`${c} --help`, ['node', cli, '--help']);
      await timed(`${c} help create`, ['node', cli, 'help', 'create']);
      await timed(`${c} list`, ['node', cli, 'list']);
      await timed(`${c} create`, ['node', cli, 'create', `${c}${r}`, '--mode', 'native', '--path', join(g.storage, `${c}${r}`), '--user', user, '--password-file', pwf, '--json']);
      await timed(`${c} delete`, ['node', cli, 'delete', `${c}${r}`, '--json']);
    }
  }
  for (const [k, v] of res) {
    const t = stats(v.ms);
    console.log(`${k.padEnd(20)} p50 ${t.p50.toFixed(0).padStart(5)} ms  min ${t.min.toFixed(0).padStart(5)} ms  RSS ${stats(v.rssMb).p50.toFixed(0)} MB`);
  }
} finally {
  await g.cleanup();
}
