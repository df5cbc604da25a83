#!/usr/bin/env node
/**
 * pve-smbgatewayd: the REST daemon (api/daemon.ts) with the web UI's files served at /.
 * The entry point lives here, the one folder that may use both the API and the UI.
 */
import { closeMetricsDbs } from '../monitor/db.ts';
import { loadDaemonConfig, startDaemon, type Daemon } from '../api/daemon.ts';
import { loadSettings } from '../core/settings.ts';
import { webAsset } from './static.ts';
import { formatRepair } from '../api/operations/repair.ts';

async function main(): Promise<void> {
  const verbose = process.argv.includes('--verbose') || !!process.env.SMBGW_VERBOSE;
  const log = (m: string) => process.stderr.write(`${new Date().toISOString()} ${m}\n`);
  const start = async () => {
    const d = await startDaemon({ log: verbose ? log : undefined, assets: webAsset });
    if (d.repairError) log(`repair of interrupted operations failed: ${d.repairError} (run pve-smbgateway repair)`);
    else if (d.repair && (d.repair.repaired.length || d.repair.skipped.length)) log(`repair of interrupted operations:\n${formatRepair(d.repair)}`);
    log(`pve-smbgatewayd on ${d.api.url}${d.config.listen !== '127.0.0.1' ? ` (listening on ${d.config.listen})` : ''}, node ${d.gateway.settings.node}, collecting every ${d.config.interval} s into ${d.db.path}`);
    return d;
  };
  let d: Daemon | undefined;
  let stopping = false;
  let reloading: Promise<void> | undefined;
  // SIGHUP (systemctl reload): the settings are read again and checked first; a file with an error is
  // reported and the running daemon keeps its settings. Valid ones restart the daemon's parts in this
  // process (same pid, as systemd expects), so every setting takes effect, listen address and TLS too.
  const reload = async () => {
    if (!d) return; // still starting: it reads the settings as they are now
    try {
      loadDaemonConfig(loadSettings());
    } catch (e) {
      log(`reload refused, keeping the running settings: ${(e as Error).message}`);
      return;
    }
    log('reloading: settings read again');
    await d.stop();
    closeMetricsDbs();
    try {
      d = await start();
    } catch (e) {
      log(`reload failed: ${(e as Error).message}; exiting`);
      process.exit(1);
    }
  };
  // Registered before the first start: a SIGHUP meanwhile must not end the process (its default action).
  process.on('SIGHUP', () => {
    if (stopping) return;
    reloading = (reloading ?? Promise.resolve()).then(reload);
  });
  d = await start();
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await reloading;
    await d?.stop();
    closeMetricsDbs();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/pve-smbgatewayd') || process.argv[1]?.endsWith('/web/main.js')) {
  main().catch((e: Error) => { process.stderr.write(`pve-smbgatewayd: ${e.message}\n`); process.exit(1); });
}
