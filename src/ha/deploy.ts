/**
 * Deploying a CTDB cluster with clustered Samba to every node, as a plan of steps with undo:
 * write ctdb.conf / nodes / public_addresses / event scripts on each node, start ctdbd where it does
 * not run (restart where ctdb.conf changed), `ctdb reloadnodes` / `ctdb reloadips` where membership
 * or addresses changed, wait for all nodes OK, write the clustered smb.conf, put the HA shares into
 * CTDB's registry (`net conf`, replicated), start smbd, and validate: every node OK and each VIP
 * hosted exactly once, within a timeout. Re-running with the same input changes nothing.
 */
import { GatewayError } from '../core/errors.ts';
import { netConfApply, netConfDelete, netConfRestore, netConfShow } from '../samba/netconf.ts';
import { applyPlan, type Step } from '../core/plan.ts';
import type { Share } from '../core/share.ts';
import {
  ctdbReloadIps, ctdbReloadNodes, ctdbRunning, ctdbVersion, smbdReload, smbdRunning, startCtdb, startSmbd, stopCtdb, stopSmbd, waitHealthy, EVENT_SCRIPTS,
  type ClusterSnapshot, type HaNode, type Services,
} from './ctdb.ts';
import {
  CLUSTER_HEADER, clusteredShareParams, registryMatches, renderClusteredSmbConf, renderCtdbConf,
  renderNodesFile, renderPublicAddresses, type ClusteredSmbOptions, type CtdbConfOptions, type PublicAddress,
} from './plan.ts';
import { readNodeFile, removeNodeFile, syncNodeFile, writeNodeFile } from './transport.ts';
import { CEPH_EVICT_SCRIPT, renderCephEvictScript, type CephEvictOptions } from './cephevict.ts';

export interface DeployPaths {
  ctdbDir: string;
  smbConf: string;
  eventScriptsDir: string;
}

export const DEFAULT_PATHS: DeployPaths = {
  ctdbDir: '/etc/ctdb',
  smbConf: '/etc/samba/smb.conf',
  eventScriptsDir: '/usr/share/ctdb/events/legacy',
};

export interface HaDeployment {
  nodes: HaNode[];
  ctdb: CtdbConfOptions;
  smb: ClusteredSmbOptions & { includes?: string[] };
  publicAddresses: PublicAddress[];
  /** HA shares to hold in the replicated registry. */
  shares: Share[];
  /** Nodes that were members before and are being removed (stopped first, if reachable). */
  removed?: HaNode[];
  /** Registry shares the gateway put there before and that are no longer HA shares (removed). */
  dropShares?: string[];
  services: Services;
  /** CephFS HA shares: the event script that evicts dead nodes' CephFS sessions (removed when absent). */
  cephEvict?: CephEvictOptions;
  /**
   * CephFS HA shares: the files vfs_ceph reads on every node (the client's ceph.conf and its keyring,
   * at the same paths as here), and the client that must reach the cluster with them from each node.
   */
  cephClient?: { client: string; conf: string; files: { path: string; text: string; mode: string }[] };
  /** CTDB tunables written to ctdb.tunables (read by ctdbd at start). */
  tunables?: Record<string, number>;
  timeoutMs?: number;
  paths?: Partial<DeployPaths>;
  failAt?: string;
  log?: (m: string) => void;
}

export interface DeployReport {
  steps: string[];
  /** Per node, what was changed or started. */
  changes: Record<string, string[]>;
  cluster: ClusterSnapshot;
}

const BACKUP_SUFFIX = '.pre-smbgateway';

export function renderTunables(t: Record<string, number>): string {
  const lines = ['# Managed by pve-smbgateway'];
  for (const [k, v] of Object.entries(t).sort(([a], [b]) => a.localeCompare(b))) {
    if (!/^[A-Za-z]+$/.test(k) || !Number.isInteger(v) || v < 0) throw new GatewayError('invalid', `tunables: ${k}=${v} is not a CTDB tunable setting`, 'tunables');
    lines.push(`${k}=${v}`);
  }
  return lines.join('\n') + '\n';
}

export async function deployCluster(d: HaDeployment): Promise<DeployReport> {
  const paths = { ...DEFAULT_PATHS, ...d.paths };
  const timeoutMs = d.timeoutMs ?? 120_000;
  const log = d.log ?? (() => undefined);
  const changes: Record<string, string[]> = Object.fromEntries(d.nodes.map((n) => [n.name, [] as string[]]));
  const note = (n: HaNode, what: string) => changes[n.name]!.push(what);
  const ctdbConf = renderCtdbConf(d.ctdb);
  const publicText = renderPublicAddresses(d.publicAddresses);
  const smbText = renderClusteredSmbConf(d.smb, d.smb.includes);
  const evictText = d.cephEvict ? renderCephEvictScript(d.cephEvict) : undefined;
  const vips = d.publicAddresses.map((a) => a.address);
  const f = (name: string) => `${paths.ctdbDir}/${name}`;

  // What each node looked like, to restore on rollback and to know what needs a restart/reload.
  const before = new Map<string, Map<string, string | undefined>>();
  const running = new Map<string, boolean>();
  const changedFiles = new Map<string, Set<string>>();
  let nodesText = '';
  const startedCtdb: HaNode[] = [];
  const startedSmbd: HaNode[] = [];
  let snap: ClusterSnapshot | undefined;

  const restoreFiles = async (n: HaNode, which?: string[]) => {
    for (const [path, text] of before.get(n.name) ?? []) {
      if (which && !which.includes(path)) continue;
      if (!changedFiles.get(n.name)?.has(path)) continue;
      if (text === undefined) await removeNodeFile(n.run, path);
      else await writeNodeFile(n.run, path, text, path.endsWith('.script') ? '0755' : '0644');
    }
  };

  const steps: Step[] = [
    {
      name: 'check-nodes',
      do: async () => {
        let previous: { node: string; text: string } | undefined;
        for (const n of d.nodes) {
          const probe = await ctdbVersion(n);
          if (!probe.ok) throw new GatewayError('failed', `node ${n.name} (${n.address}): ctdbd is not available (install the ctdb package): ${probe.why}`);
          running.set(n.name, await ctdbRunning(n));
          const nodesNow = await readNodeFile(n.run, f('nodes'));
          // The nodes file must be the same everywhere; a running node's file is the reference.
          if (nodesNow !== undefined && nodesNow.trim() !== '' && running.get(n.name)) {
            if (previous && previous.text !== nodesNow)
              throw new GatewayError('failed', `the CTDB nodes file differs between node ${previous.node} and node ${n.name}: make it identical on all nodes first`);
            previous = { node: n.name, text: nodesNow };
          }
        }
        if (!previous) for (const n of d.nodes) {
          const t = await readNodeFile(n.run, f('nodes'));
          if (t && t.trim()) { previous = { node: n.name, text: t }; break; }
        }
        nodesText = renderNodesFile(d.nodes, previous?.text);
      },
    },
    {
      name: 'write-ctdb-config',
      do: async () => {
        for (const n of d.nodes) {
          const b = new Map<string, string | undefined>();
          const ch = new Set<string>();
          before.set(n.name, b);
          changedFiles.set(n.name, ch);
          const files: [string, string, string?][] = [[f('ctdb.conf'), ctdbConf], [f('nodes'), nodesText], [f('public_addresses'), publicText]];
          if (d.tunables) files.push([f('ctdb.tunables'), renderTunables(d.tunables)]);
          const evictPath = `${paths.ctdbDir}/events/legacy/${CEPH_EVICT_SCRIPT}`;
          // executable: CTDB runs the legacy event scripts that are
          const evictBefore = evictText === undefined ? await readNodeFile(n.run, evictPath) : undefined;
          if (evictText !== undefined) files.push([evictPath, evictText, '0755']);
          else if (evictBefore !== undefined) {
            b.set(evictPath, evictBefore);
            ch.add(evictPath);
            await removeNodeFile(n.run, evictPath);
            note(n, `removed ${evictPath} (no CephFS HA share)`);
          }
          for (const [path, text, mode] of files) {
            const r = await syncNodeFile(n.run, path, text, mode);
            b.set(path, r.before);
            if (r.changed) { ch.add(path); note(n, `wrote ${path}`); }
          }
          for (const s of EVENT_SCRIPTS) {
            const link = `${paths.ctdbDir}/events/legacy/${s}.script`;
            const target = `${paths.eventScriptsDir}/${s}.script`;
            const cur = await n.run('readlink', ['--', link], { allowFail: true });
            if (cur.code === 0 && cur.stdout.trim() === target) continue;
            await n.run('mkdir', ['-p', `${paths.ctdbDir}/events/legacy`]);
            await n.run('ln', ['-sfn', target, link]);
            note(n, `enabled event script ${s}`);
          }
        }
      },
      undo: async () => { for (const n of d.nodes) await restoreFiles(n); },
    },
    {
      name: 'start-ctdb',
      do: async () => {
        // A node being removed is stopped first: CTDB does not drop a node that is still connected.
        for (const r of d.removed ?? []) {
          const up = await ctdbRunning(r).catch(() => false);
          if (up) { await stopCtdb(r, d.services); changes[r.name] = [...(changes[r.name] ?? []), 'stopped ctdbd (removed from the cluster)']; }
          // its clustered smbd cannot serve without ctdbd
          if (await smbdRunning(r).catch(() => false)) { await stopSmbd(r, d.services); (changes[r.name] ??= []).push('stopped smbd'); }
        }
        const toStart: HaNode[] = [];
        const reloadNodes: HaNode[] = [];
        const reloadIps: HaNode[] = [];
        for (const n of d.nodes) {
          const ch = changedFiles.get(n.name)!;
          if (!running.get(n.name)) { toStart.push(n); continue; }
          if (ch.has(f('ctdb.conf')) || ch.has(f('ctdb.tunables'))) {
            log(`restart ctdbd on ${n.name} (configuration changed)`);
            await stopCtdb(n, d.services);
            await startCtdb(n, d.services);
            note(n, 'restarted ctdbd');
            continue;
          }
          if (ch.has(f('nodes'))) reloadNodes.push(n);
          if (ch.has(f('public_addresses'))) reloadIps.push(n);
        }
        // Membership change: the nodes file is already identical everywhere; the running nodes re-read
        // it (one node tells all) before a new node starts.
        if (reloadNodes.length) {
          // While CTDB is still recovering (e.g. a node just rejoined) it cannot disable recoveries
          // and refuses; try again until the recovery is over.
          const deadline = Date.now() + timeoutMs;
          for (;;) {
            const r = await ctdbReloadNodes(reloadNodes[0]!);
            if (r.ok) break;
            const why = r.why;
            if (!/disable recoveries|recovery/i.test(why) || Date.now() > deadline) {
              throw new GatewayError('failed', `node ${reloadNodes[0]!.name}: ctdb reloadnodes failed (exit ${r.code}): ${why}`);
            }
            await new Promise((res) => setTimeout(res, 1000));
          }
          note(reloadNodes[0]!, 'ctdb reloadnodes');
        }
        for (const n of toStart) {
          log(`start ctdbd on ${n.name}`);
          await startCtdb(n, d.services);
          startedCtdb.push(n);
          note(n, 'started ctdbd');
        }
        if (reloadIps.length) {
          await waitHealthy(d.nodes, [], timeoutMs);
          await ctdbReloadIps(reloadIps[0]!);
          note(reloadIps[0]!, 'ctdb reloadips');
        }
      },
      undo: async () => { for (const n of startedCtdb.reverse()) await stopCtdb(n, d.services); },
    },
    {
      name: 'wait-ctdb',
      do: async () => { await waitHealthy(d.nodes, [], timeoutMs); },
    },
    {
      name: 'write-smb-conf',
      do: async () => {
        for (const n of d.nodes) {
          const cur = await readNodeFile(n.run, paths.smbConf);
          if (cur !== undefined && cur !== smbText && !cur.startsWith(CLUSTER_HEADER)) {
            // The admin's own smb.conf is kept beside, once, and named in the report.
            const bk = await readNodeFile(n.run, paths.smbConf + BACKUP_SUFFIX);
            if (bk === undefined) { await writeNodeFile(n.run, paths.smbConf + BACKUP_SUFFIX, cur); note(n, `kept the previous smb.conf as ${paths.smbConf}${BACKUP_SUFFIX}`); }
          }
          const r = await syncNodeFile(n.run, paths.smbConf, smbText);
          before.get(n.name)!.set(paths.smbConf, r.before);
          if (r.changed) { changedFiles.get(n.name)!.add(paths.smbConf); note(n, `wrote ${paths.smbConf}`); }
        }
      },
      undo: async () => { for (const n of d.nodes) await restoreFiles(n, [paths.smbConf]); },
    },
    (() => {
      const previous = new Map<string, [string, string][] | undefined>();
      const touched: Share[] = [];
      const dropped: string[] = [];
      const node = () => d.nodes[0]!;
      return {
        name: 'registry-shares',
        do: async () => {
          const n = node();
          for (const s of d.shares) {
            const params = await netConfShow(n.run, s.sharename);
            if (params && registryMatches(s, params)) continue;
            previous.set(s.sharename, params);
            await netConfApply(n.run, s.sharename, s.path, clusteredShareParams(s), params !== undefined);
            touched.push(s);
            note(n, `registry share ${s.sharename}`);
          }
          for (const name of d.dropShares ?? []) {
            if (d.shares.some((s) => s.sharename.toLowerCase() === name.toLowerCase())) continue;
            const cur = await netConfShow(n.run, name);
            if (!cur) continue;
            previous.set(name, cur);
            await netConfDelete(n.run, name);
            dropped.push(name);
            note(n, `removed registry share ${name}`);
          }
        },
        undo: async () => {
          const n = node();
          for (const name of [...touched.map((s) => s.sharename), ...dropped]) {
            await netConfDelete(n.run, name, { allowFail: true });
            const params = previous.get(name);
            if (params) await netConfRestore(n.run, name, params);
          }
        },
      } satisfies Step;
    })(),
    {
      // Every node's smbd reaches CephFS as the gateway's client: its ceph.conf and keyring must be
      // there (on Proxmox VE the private store is cluster-wide and nothing is written) and the cluster
      // must answer it from that node, or every tree connect there fails without saying why.
      name: 'ceph-client',
      do: async () => {
        const cc = d.cephClient;
        if (!cc) return;
        for (const n of d.nodes) {
          for (const f of cc.files) {
            const r = await syncNodeFile(n.run, f.path, f.text, f.mode);
            if (r.changed) note(n, `wrote ${f.path}`);
          }
          const id = cc.client.replace(/^client\./, '');
          const r = await n.run('ceph', ['--conf', cc.conf, '--id', id, '--connect-timeout', '15', 'fs', 'ls'], { allowFail: true, timeoutMs: 30_000 });
          if (r.code !== 0) {
            throw new GatewayError('failed', `node ${n.name}: the Ceph cluster does not answer ${cc.client} with ${cc.conf}, so its smbd cannot serve the CephFS shares: ${(r.stderr || r.stdout).trim().split('\n').slice(-1)[0] ?? `exit ${r.code}`}`);
          }
        }
      },
    },
    {
      name: 'start-smbd',
      do: async () => {
        for (const n of d.nodes) {
          if (await smbdRunning(n)) {
            if (changedFiles.get(n.name)!.has(paths.smbConf)) {
              await smbdReload(n);
              note(n, 'reloaded smbd');
            }
            continue;
          }
          await startSmbd(n, d.services);
          startedSmbd.push(n);
          note(n, 'started smbd');
        }
        // smbd answers once it has read its config from the cluster
        for (const n of startedSmbd) {
          const deadline = Date.now() + 30_000;
          while (!(await smbdRunning(n))) {
            if (Date.now() > deadline) throw new GatewayError('failed', `node ${n.name}: smbd did not start (see /var/log/samba/log.smbd on that node)`);
            await new Promise((r) => setTimeout(r, 200));
          }
        }
      },
      undo: async () => { for (const n of startedSmbd.reverse()) await stopSmbd(n, d.services); },
    },
    {
      name: 'validate-cluster',
      do: async () => {
        snap = await waitHealthy(d.nodes, vips, timeoutMs, { checkInterfaces: true });
        for (const n of d.nodes) if (!(await smbdRunning(n))) throw new GatewayError('failed', `node ${n.name}: smbd is not running`);
      },
    },
  ];
  const done = await applyPlan(steps, { failAt: d.failAt, log });
  return { steps: done, changes, cluster: snap! };
}
