/**
 * Where the time of a native create goes, and what of it grows with the number of shares: N shares are
 * created in-process (no Node start) with a Runner that times every external command and a log that
 * times every plan step; the create of share #1..K and of the last K are printed side by side, per step
 * and per tool (ms, median over the K creates).
 *   node --import tsx bench/create-profile.ts [N=500] [K=20]
 */
import { join } from 'node:path';
import { invoke } from '../src/core/operation.ts';
import { execRunner, type Runner } from '../src/core/exec.ts';
import { makeGateway } from '../src/provision/context.ts';
import { createOp } from '../src/api/operations/shares.ts';
import { startGateway } from '../test/helpers/gateway.ts';

const N = Number(process.argv[2] ?? 500);
const K = Number(process.argv[3] ?? 20);
const med = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[s.length >> 1]! : 0; };

type Prof = Map<string, number>;
let cur: Prof = new Map();
const add = (k: string, ms: number) => cur.set(k, (cur.get(k) ?? 0) + ms);
const timed: Runner = async (tool, args, opts) => {
  const t = performance.now();
  try { return await execRunner(tool, args, opts); } finally { add(`tool ${tool} ${tool === 'smbcontrol' || tool === 'testparm' ? args.filter((a) => !a.startsWith('/') && !a.startsWith('-')).slice(-2).join(' ') : ''}`.trimEnd(), performance.now() - t); }
};
let stepName = '';
let stepT = 0;
const log = (m: string) => {
  const now = performance.now();
  if (stepName) add(`step ${stepName}`, now - stepT);
  stepName = m.startsWith('step ') ? m.slice(5) : '';
  stepT = now;
};

const g = await startGateway();
try {
  const gw = makeGateway(g.settings, timed, log);
  const user = g.user('cp');
  const profs: Prof[] = [];
  for (let i = 0; i < N; i++) {
    cur = new Map();
    const t = performance.now();
    stepName = 'lock+load+plan';
    stepT = t;
    await invoke(createOp, { sharename: `cp${i}`, mode: 'native', path: join(g.storage, `cp${i}`), users: [user], password: 'Cre4te-profile' }, gw);
    log('end');
    add('total', performance.now() - t);
    profs.push(cur);
    if ((i + 1) % 100 === 0) console.error(`created ${i + 1}`);
  }
  const first = profs.slice(0, K);
  const last = profs.slice(-K);
  const keys = [...new Set(profs.flatMap((p) => [...p.keys()]))];
  console.log(`${'what'.padEnd(44)} ${'first'.padStart(7)} ${'last'.padStart(7)}   (ms, median of ${K}; last = shares ${N - K + 1}..${N})`);
  for (const k of keys) console.log(`${k.padEnd(44)} ${med(first.map((p) => p.get(k) ?? 0)).toFixed(1).padStart(7)} ${med(last.map((p) => p.get(k) ?? 0)).toFixed(1).padStart(7)}`);
} finally {
  await g.cleanup();
}
