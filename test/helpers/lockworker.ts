/**
 * One process contending for a lock (test/lock.test.ts): waits until a common start time, then runs
 * `waiters` concurrent withLock calls; each appends "enter <id>" and "leave <id>" to the log around a
 * short critical section.
 */
import { appendFile } from 'node:fs/promises';
import { withLock } from '../../src/core/lock.ts';

const [lockDir, name, log, id, startAt, holdMs, waiters] = process.argv.slice(2);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
while (Date.now() < Number(startAt)) await sleep(Math.min(5, Number(startAt) - Date.now()));
await Promise.all(Array.from({ length: Number(waiters) }, (_, k) => withLock(lockDir!, name!, async () => {
  await appendFile(log!, `enter ${id}.${k}\n`);
  await sleep(Number(holdMs));
  await appendFile(log!, `leave ${id}.${k}\n`);
}, { timeoutMs: 60_000, staleMs: 10_000, retryMs: 5 })));
