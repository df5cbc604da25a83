/**
 * `npm run bench`: every benchmark in turn (each prints its own figures). The failover benchmark,
 * which builds a CTDB cluster in namespaces, runs on its own: `npm run bench:failover`.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

for (const b of ['native-create-delete.ts', 'monitor.ts', 'web-dashboard.ts']) {
  console.log(`\n== bench/${b}`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(import.meta.dirname, b)], { stdio: 'inherit' });
  if (r.status !== 0) process.exitCode = 1;
}
