#!/usr/bin/env node
/**
 * pve-smbgatewayd: the REST daemon (api/daemon.ts) with the web UI's files served at /.
 * The entry point lives here, the one folder that may use both the API and the UI.
 */
import { closeMetricsDbs } from '../monitor/db.ts';
import { startDaemon } from '../api/daemon.ts';
import { webAsset } from './static.ts';
import { formatRepair } from '../api/operations/repair.ts';

async function main(): Promise<void> {
  const verbose = process.argv.includes('--verbose') || !!process.env.SMBGW_VERBOSE;
  const log = (m: string) => process.stderr.write(`${new Date().toISOString()} ${m}\n`);
  const d = await startDaemon({ log: verbose ? log : undefined, assets: webAsset });
  if (d.repairError) log(`repair of interrupted operations failed: ${d.repairError} (run pve-smbgateway repair)`);
  else if (d.repair && (d.repair.repaired.length || d.repair.skipped.length)) log(`repair of interrupted operations:\n${formatRepair(d.repair)}`);
  log(`pve-smbgatewayd on ${d.api.url}${d.config.listen !== '127.0.0.1' ? ` (listening on ${d.config.listen})` : ''}, node ${d.gateway.settings.node}, collecting every ${d.config.interval} s into ${d.db.path}`);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await d.stop();
    closeMetricsDbs();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/pve-smbgatewayd') || process.argv[1]?.endsWith('/web/main.js')) {
  main().catch((e: Error) => { process.stderr.write(`pve-smbgatewayd: ${e.message}\n`); process.exit(1); });
}
