/**
 * The client side of a failover test: files written one after another through the VIP, each retried
 * until it is stored (as a copy tool does), then every one read back with the checksum it was written with.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ctdbStatus } from '../../src/ha/ctdb.ts';
import type { NetnsCluster, TestNode } from './netns.ts';

export const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

export interface Written { name: string; sum: string; at: number }

export interface Target { c: NetnsCluster; vip: string; share: string; auth: string }

/** Starts writing 48-64 KiB files from `local` through the VIP until `stop()`. */
export function continuousWriter({ c, vip, share, auth }: Target, local: string) {
  const written: Written[] = [];
  let failures = 0;
  let stopped = false;
  let seq = 0;
  const done = (async () => {
    while (!stopped) {
      const name = `w${String(++seq).padStart(4, '0')}.bin`;
      const body = randomBytes(48 * 1024 + Math.floor(Math.random() * 16384));
      await writeFile(join(local, name), body);
      for (;;) {
        const r = await c.smb(vip, share, auth, `put ${join(local, name)} ${name}`, 6_000);
        if (r.ok) { written.push({ name, sum: sha(body), at: Date.now() }); break; }
        failures++;
        if (stopped) return;
      }
    }
  })();
  return {
    written,
    failures: () => failures,
    /** Files stored after a time. */
    after: (t: number) => written.filter((w) => w.at > t),
    stop: async () => { stopped = true; await done; },
  };
}

/** Every file, read back through the VIP, has the checksum it was written with. */
export async function readBackAll({ c, vip, share, auth }: Target, written: readonly Written[], timeoutMs?: number): Promise<void> {
  const back = join(c.dir, 'back');
  await mkdir(back, { recursive: true });
  for (const w of written) {
    const g = await c.smb(vip, share, auth, `get ${w.name} ${join(back, w.name)}`, timeoutMs);
    assert.ok(g.ok, `${w.name}: ${g.output}`);
    assert.equal(sha(await readFile(join(back, w.name))), w.sum, `${w.name} checksum`);
  }
}

/**
 * The node to cut off in a partition test: neither the VIP's holder nor CTDB's leader (who holds the
 * cluster lock), asked of `members[0]`; with the holder, the others and where the victim's ctdbd log has got to.
 */
export async function bystander(c: NetnsCluster, members: readonly TestNode[], vip: string): Promise<{ victim: TestNode; holder: TestNode; rest: TestNode[]; victimLog: string; logBefore: number }> {
  const run = members[0]!.run;
  const leaderPnn = Number((await run('ctdb', ['leader'])).stdout.trim());
  const holder = (await c.holders(vip))[0]!;
  const st = await ctdbStatus(run);
  const victim = members.find((n) => n !== holder && st.find((s) => s.address === n.address)!.pnn !== leaderPnn)!;
  const victimLog = join(victim.dir, 'log-ctdb', 'log.ctdb');
  return { victim, holder, rest: members.filter((n) => n !== victim), victimLog, logBefore: (await readFile(victimLog, 'utf8')).length };
}
