#!/usr/bin/env node
/**
 * pve-smbgatewayd: the REST API (server.ts) and the metrics collector (monitor/) of one node.
 * Settings: the gateway's (SMBGATEWAY_CONFIG) plus the daemon's own JSON file
 * (SMBGATEWAYD_CONFIG, default /etc/smbgateway/daemon.json); see docs/api.md.
 */
import { existsSync, readFileSync } from 'node:fs';
import { GatewayError } from '../core/errors.ts';
import { execRunner } from '../core/exec.ts';
import { loadSettings, type Settings } from '../core/settings.ts';
import { Collector } from '../monitor/collector.ts';
import { closeMetricsDbs, metricsDbFor, releaseMetricsDb, type MetricsDb } from '../monitor/db.ts';
import { Authenticator, type PveAuthConfig } from './auth.ts';
import { makeGateway, type Gateway } from './context.ts';
import { metricsDbPath } from './operations/metrics.ts';
import { formatRepair, repairInterrupted, type RepairResult } from './operations/repair.ts';
import { nodeCertificate, pveClusterPeer, startApiServer, type ApiServer, type Peer } from './server.ts';
import { TokenStore } from './tokens.ts';

export interface DaemonConfig {
  /** Address to listen on (default :: on Proxmox VE, else 127.0.0.1). */
  listen: string;
  port: number;
  /** Collection interval and tick, seconds. */
  interval: number;
  tick: number;
  /** How often ZFS/btrfs usage is read again, seconds. */
  usage_refresh: number;
  tls_cert?: string;
  tls_key?: string;
  /** The local PVE API (Proxmox VE nodes). */
  pve_api?: string;
  pve_ca?: string;
  pve_www_key: string;
  /** Other nodes' daemons: node -> {url, fingerprint}. On Proxmox VE, found from the cluster. */
  peers: Record<string, Peer>;
  metrics_db?: string;
}

export const DEFAULT_PORT = 8116;

export function defaultDaemonConfig(settings: Settings): DaemonConfig {
  return {
    listen: settings.isPve ? '::' : '127.0.0.1',
    port: DEFAULT_PORT,
    interval: 10,
    tick: 1,
    usage_refresh: 60,
    pve_api: settings.isPve ? 'https://localhost:8006' : undefined,
    pve_ca: settings.isPve ? '/etc/pve/pve-root-ca.pem' : undefined,
    pve_www_key: '/etc/pve/priv/pve-www.key',
    peers: {},
  };
}

export function loadDaemonConfig(settings: Settings, file = process.env.SMBGATEWAYD_CONFIG ?? '/etc/smbgateway/daemon.json'): DaemonConfig {
  const c = defaultDaemonConfig(settings);
  if (!existsSync(file)) return c;
  let raw: Record<string, unknown>;
  try { raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>; } catch (e) {
    throw new GatewayError('invalid', `${file}: not valid JSON (${(e as Error).message})`);
  }
  for (const [k, v] of Object.entries(raw)) {
    if (!(k in c) && !['tls_cert', 'tls_key', 'pve_api', 'pve_ca', 'metrics_db'].includes(k)) throw new GatewayError('invalid', `${file}: unknown setting "${k}"`, k);
    (c as unknown as Record<string, unknown>)[k] = v;
  }
  if (!Number.isFinite(c.interval) || c.interval < 1) throw new GatewayError('invalid', `${file}: interval must be at least 1 (seconds)`, 'interval');
  return c;
}

export interface Daemon {
  api: ApiServer;
  collector: Collector;
  db: MetricsDb;
  gateway: Gateway;
  config: DaemonConfig;
  /** What the repair on start did with operations a crash had interrupted (undefined: it failed, see repairError). */
  repair?: RepairResult;
  repairError?: string;
  stop: () => Promise<void>;
}

export async function startDaemon(opts: { settings?: Settings; config?: Partial<DaemonConfig>; log?: (m: string) => void } = {}): Promise<Daemon> {
  const settings = opts.settings ?? loadSettings();
  const config = { ...(opts.settings ? defaultDaemonConfig(settings) : loadDaemonConfig(settings)), ...(opts.config ?? {}) };
  const gateway = makeGateway(settings, execRunner, opts.log ?? (() => undefined));
  // Operations a crash interrupted (this daemon's tasks, a killed command) are repaired before serving.
  let repairError: string | undefined;
  const repair = await repairInterrupted(gateway).catch((e: Error) => { repairError = e.message; return undefined; });
  const db = metricsDbFor(config.metrics_db ?? metricsDbPath(gateway));
  const collector = new Collector(gateway, { db, intervalMs: config.interval * 1000, tickMs: config.tick * 1000, usageRefreshMs: config.usage_refresh * 1000 });
  const pve: PveAuthConfig | undefined = config.pve_api
    ? { url: config.pve_api, ca: config.pve_ca && existsSync(config.pve_ca) ? readFileSync(config.pve_ca) : undefined, wwwKeyFile: config.pve_www_key }
    : undefined;
  const auth = new Authenticator(new TokenStore(settings), pve);
  const tls = await nodeCertificate(settings, gateway.run, { cert: config.tls_cert, key: config.tls_key });
  const cluster = settings.isPve ? pveClusterPeer(config.port) : undefined;
  const api = await startApiServer({
    gateway, auth, collector, tls, host: config.listen, port: config.port,
    peer: (node) => config.peers[node] ?? cluster?.(node),
  });
  collector.start();
  return {
    api, collector, db, gateway, config, repair, repairError,
    stop: async () => {
      await collector.stop();
      await api.close();
      releaseMetricsDb(db.path);
    },
  };
}

async function main(): Promise<void> {
  const verbose = process.argv.includes('--verbose') || !!process.env.SMBGW_VERBOSE;
  const log = (m: string) => process.stderr.write(`${new Date().toISOString()} ${m}\n`);
  const d = await startDaemon({ log: verbose ? log : undefined });
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

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/pve-smbgatewayd') || process.argv[1]?.endsWith('/api/daemon.js')) {
  main().catch((e: Error) => { process.stderr.write(`pve-smbgatewayd: ${e.message}\n`); process.exit(1); });
}
