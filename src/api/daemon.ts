#!/usr/bin/env node
/**
 * pve-smbgatewayd: the REST API (server.ts) and the metrics collector (monitor/) of one node.
 * Settings: the gateway's (SMBGATEWAY_CONFIG) plus the daemon's own JSON file
 * (SMBGATEWAYD_CONFIG, default /etc/smbgateway/daemon.json); see docs/api.md.
 */
import { existsSync, readFileSync } from 'node:fs';
import { NODE_RE } from '../core/formats.ts';
import { validate, type Schema } from '../core/schema.ts';
import { GatewayError } from '../core/errors.ts';
import { execRunner } from '../core/exec.ts';
import { loadSettings, type Settings } from '../core/settings.ts';
import { Collector } from '../monitor/collector.ts';
import { metricsDbFor, releaseMetricsDb, type MetricsDb } from '../monitor/db.ts';
import { Authenticator, type PveAuthConfig } from './auth.ts';
import { makeGateway, type Gateway } from '../provision/context.ts';
import { metricsDbPath } from './operations/metrics.ts';
import { DEFAULT_LIMITS, startApiServer, type ApiServer, type AssetSource } from './server.ts';
import { nodeCertificate } from './tls.ts';
import { pveClusterPeer, type Peer } from '../pve/cluster.ts';
import { repairInterrupted, type RepairResult } from './operations/repair.ts';
import { TokenStore } from './tokens.ts';
import { BackupScheduler } from './scheduler.ts';
import { scheduleRecyclePurge } from './schedule.ts';

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
  /** Seconds to receive a request's headers (and the TLS handshake), and the whole request. */
  headers_timeout: number;
  request_timeout: number;
  /** Connections open at once. */
  max_connections: number;
  /** Largest request body, bytes. */
  max_body: number;
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
    headers_timeout: DEFAULT_LIMITS.headersTimeout / 1000,
    request_timeout: DEFAULT_LIMITS.requestTimeout / 1000,
    max_connections: DEFAULT_LIMITS.maxConnections,
    max_body: DEFAULT_LIMITS.maxBody,
  };
}

const FILE = { type: 'string', optional: true, check: (v: string) => (v.startsWith('/') ? undefined : 'must be an absolute path') } as const;

/** Other nodes' daemons: {"node": {"url": "https://...", "fingerprint": "AA:..."}}. */
function parsePeers(v: unknown): Record<string, Peer> {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('must be an object of node names to {url, fingerprint}');
  const out: Record<string, Peer> = {};
  for (const [node, p] of Object.entries(v)) {
    if (!NODE_RE.test(node)) throw new Error(`${JSON.stringify(node)} is not a node name`);
    const { url, fingerprint, ...rest } = (p ?? {}) as Record<string, unknown>;
    if (typeof url !== 'string' || !/^https:\/\/\S+$/.test(url)) throw new Error(`${node}: url must be an https:// URL`);
    if (typeof fingerprint !== 'string' || fingerprint.replace(/:/g, '').length !== 64) throw new Error(`${node}: fingerprint must be a SHA-256 fingerprint`);
    if (Object.keys(rest).length) throw new Error(`${node}: unknown key ${Object.keys(rest)[0]}`);
    out[node] = { url, fingerprint };
  }
  return out;
}

/** daemon.json, checked with the same schema machinery as every operation's parameters. */
export const daemonFileSchema = {
  listen: { type: 'string', optional: true, description: 'Address to listen on' },
  port: { type: 'integer', optional: true, minimum: 0, maximum: 65535, description: 'Port' },
  interval: { type: 'number', optional: true, minimum: 1, maximum: 3600, description: 'Metrics collection interval, seconds' },
  tick: { type: 'number', optional: true, minimum: 0.05, maximum: 3600, description: 'Collector tick, seconds' },
  usage_refresh: { type: 'number', optional: true, minimum: 1, maximum: 86400, description: 'How often usage is read again, seconds' },
  tls_cert: { ...FILE, description: 'Certificate (PEM)' },
  tls_key: { ...FILE, description: 'Key (PEM)' },
  pve_api: { type: 'string', optional: true, pattern: /^https:\/\/\S+$/, patternText: 'must be an https:// URL', description: 'The local PVE API' },
  pve_ca: { ...FILE, description: 'CA of the PVE API' },
  pve_www_key: { ...FILE, description: 'PVE\'s CSRF key' },
  peers: { type: 'json', optional: true, parse: parsePeers, description: 'Other nodes\' daemons' },
  metrics_db: { ...FILE, description: 'Metrics database' },
  headers_timeout: { type: 'number', optional: true, minimum: 0.05, description: 'Seconds to receive a request\'s headers' },
  request_timeout: { type: 'number', optional: true, minimum: 0.05, description: 'Seconds to receive a whole request' },
  max_connections: { type: 'integer', optional: true, minimum: 1, maximum: 1000000, description: 'Connections open at once' },
  max_body: { type: 'integer', optional: true, minimum: 1, maximum: 1073741824, description: 'Largest request body, bytes' },
} as const satisfies Schema;

export function loadDaemonConfig(settings: Settings, file = process.env.SMBGATEWAYD_CONFIG ?? '/etc/smbgateway/daemon.json'): DaemonConfig {
  const c = defaultDaemonConfig(settings);
  if (!existsSync(file)) return c;
  let raw: Record<string, unknown>;
  try { raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>; } catch (e) {
    throw new GatewayError('invalid', `${file}: not valid JSON (${(e as Error).message})`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new GatewayError('invalid', `${file}: must be a JSON object`);
  try {
    Object.assign(c, validate(daemonFileSchema, raw, { defaults: false }));
  } catch (e) {
    const err = e as GatewayError;
    throw new GatewayError('invalid', `${file}: ${err.message.replace(/unknown parameter$/, 'unknown setting')}`, err.field);
  }
  checkLimits(c, file);
  return c;
}

/** The server limits must be positive numbers, the headers' time within the request's. */
export function checkLimits(c: Pick<DaemonConfig, 'headers_timeout' | 'request_timeout' | 'max_connections' | 'max_body'>, where = 'daemon config'): void {
  for (const k of ['headers_timeout', 'request_timeout', 'max_connections', 'max_body'] as const) {
    if (typeof c[k] !== 'number' || !Number.isFinite(c[k]) || c[k] <= 0) throw new GatewayError('invalid', `${where}: ${k} must be a positive number`, k);
  }
  if (!Number.isInteger(c.max_connections) || !Number.isInteger(c.max_body)) throw new GatewayError('invalid', `${where}: max_connections and max_body must be whole numbers`, Number.isInteger(c.max_body) ? 'max_connections' : 'max_body');
  if (c.headers_timeout > c.request_timeout) throw new GatewayError('invalid', `${where}: headers_timeout must not be longer than request_timeout`, 'headers_timeout');
}

export interface Daemon {
  api: ApiServer;
  collector: Collector;
  /** Scheduled backups (backup_schedule). */
  scheduler: BackupScheduler;
  db: MetricsDb;
  gateway: Gateway;
  config: DaemonConfig;
  /** What the repair on start did with operations a crash had interrupted (undefined: it failed, see repairError). */
  repair?: RepairResult;
  repairError?: string;
  stop: () => Promise<void>;
}

export interface DaemonOptions {
  settings?: Settings;
  config?: Partial<DaemonConfig>;
  log?: (m: string) => void;
  /** Static files served at / (the web UI, wired in by web/main.ts). */
  assets?: AssetSource;
  /** The scheduler's clock (epoch ms; default Date.now), its tick (ms) and whether schedules are read in UTC. */
  clock?: () => number;
  backupTickMs?: number;
  backupUtc?: boolean;
}

export async function startDaemon(opts: DaemonOptions = {}): Promise<Daemon> {
  const settings = opts.settings ?? loadSettings();
  const config = { ...(opts.settings ? defaultDaemonConfig(settings) : loadDaemonConfig(settings)), ...(opts.config ?? {}) };
  checkLimits(config);
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
    storageCfg: settings.storageCfg,
    assets: opts.assets,
    limits: {
      headersTimeout: config.headers_timeout * 1000, requestTimeout: config.request_timeout * 1000,
      maxConnections: config.max_connections, maxBody: config.max_body,
    },
  });
  collector.start();
  const scheduler = new BackupScheduler(gateway, api.tasks, { now: opts.clock, tickMs: opts.backupTickMs, utc: opts.backupUtc });
  scheduler.start();
  const stopRecycle = scheduleRecyclePurge(gateway);
  return {
    api, collector, scheduler, db, gateway, config, repair, repairError,
    stop: async () => {
      stopRecycle();
      await scheduler.stop();
      await collector.stop();
      await api.close();
      releaseMetricsDb(db.path);
    },
  };
}
