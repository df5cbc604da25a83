/**
 * `npm run demo`: the gateway serving a demo share without Proxmox VE and without touching the
 * host's own Samba: a private smbd on 127.0.0.1 (free port, private config and state), a share
 * made through the same code path as `pve-smbgateway create`, served until SIGINT/SIGTERM, then
 * everything it created is removed. The gateway daemon (REST API and metrics collector) runs too,
 * on 127.0.0.1 with a free port and an API token for the demo share. `--json` prints one line
 * {host,port,share,user,password,api,node,token}: token is a whole Authorization header value.
 */
import { randomBytes } from 'node:crypto';
import { invoke } from '../core/operation.ts';
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeGateway, type Gateway } from '../provision/context.ts';
import { createOp, deleteOp } from '../api/operations/shares.ts';
import { startDaemon, type Daemon, type DaemonConfig } from '../api/daemon.ts';
import { webAsset } from '../web/static.ts';
import { TokenStore } from '../api/tokens.ts';
import { defaultSettings } from '../core/settings.ts';
import { startSandbox, type Sandbox } from './sandbox.ts';

export interface Demo {
  info: { host: string; port: number; share: string; user: string; password: string; api: string; node: string; token: string };
  daemon: Daemon;
  gateway: Gateway;
  sandbox: Sandbox;
  root: string;
  stop: () => Promise<void>;
}

export interface DemoOptions {
  share?: string;
  log?: (m: string) => void;
  /** A storage root to use (e.g. a btrfs mount) instead of a directory under the demo's own. */
  storage?: string;
  /** Daemon settings to override (e.g. a shorter metrics interval). */
  daemon?: Partial<DaemonConfig>;
}

export async function startDemo(opts: DemoOptions = {}): Promise<Demo> {
  const root = await mkdtemp(join(tmpdir(), 'smbgw-demo-'));
  await chmod(root, 0o755); // the share's users must be able to reach the storage below it
  const sandbox = await startSandbox(join(root, 'samba'));
  const storage = opts.storage ?? join(root, 'storage');
  await mkdir(storage, { recursive: true });
  const settings = {
    ...defaultSettings(),
    isPve: false,
    storeDir: join(root, 'etc'),
    lockDir: join(root, 'lock'),
    stateDir: join(root, 'state'),
    smbConf: sandbox.smbConf,
    managedConf: sandbox.managedConf,
    smbHost: sandbox.host,
    smbPort: sandbox.port,
    allowedRoots: [storage],
  };
  const gateway = makeGateway(settings, undefined, opts.log);
  const share = opts.share ?? 'demo';
  const user = 'smbdemo' + randomBytes(3).toString('hex');
  const password = randomBytes(12).toString('base64url');
  let daemon: Daemon | undefined;
  const cleanup = async () => {
    await daemon?.stop().catch(() => undefined);
    await invoke(deleteOp, { sharename: share, purge: true }, gateway).catch(() => undefined);
    await sandbox.stop();
    await rm(root, { recursive: true, force: true });
  };
  try {
    await invoke(createOp, {
      sharename: share, mode: 'native', path: join(storage, share), users: [user], password,
      comment: 'pve-smbgateway demo share',
    }, gateway);
    // The daemon: its API on a free loopback port, its collector writing to <root>/state/metrics.db.
    daemon = await startDaemon({ settings, assets: webAsset, config: { listen: '127.0.0.1', port: Number(process.env.SMBGW_DEMO_API_PORT ?? 0), ...opts.daemon }, log: opts.log });
    const token = await new TokenStore(settings).create('demo', ['Datastore.Audit', 'Datastore.Allocate'], { comment: 'demo share' });
    return {
      info: { host: sandbox.host, port: sandbox.port, share, user, password, api: daemon.api.url, node: settings.node, token: token.header },
      gateway, sandbox, root, daemon, stop: cleanup,
    };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

async function main(): Promise<void> {
  const json = process.argv.includes('--json');
  const demo = await startDemo({ log: json ? undefined : (m) => console.error(`  ${m}`) });
  const { host, port, share, user, password, api, node, token } = demo.info;
  if (json) {
    process.stdout.write(JSON.stringify(demo.info) + '\n');
  } else {
    console.log(`\npve-smbgateway demo: share "${share}" served by a private smbd on ${host}:${port}`);
    console.log(`  user ${user}, password ${password}`);
    console.log(`  try: smbclient //${host}/${share} -p ${port} -U '${user}%${password}' -c 'ls'`);
    console.log(`  API: ${api}/api2/json/nodes/${node}/smbgateway (self-signed certificate)`);
    console.log(`  try: curl -k -H 'Authorization: ${token}' ${api}/api2/json/nodes/${node}/smbgateway/${share}/metrics`);
    console.log(`       curl -k -H 'Authorization: ${token}' ${api}/metrics`);
    console.log('  stop with Ctrl-C (everything the demo made is removed)\n');
  }
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await demo.stop();
    if (!json) console.log('demo stopped; everything it created was removed');
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  setInterval(() => undefined, 1 << 30);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e: Error) => { console.error(`demo failed: ${e.message}`); process.exit(1); });
}
