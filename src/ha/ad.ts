/**
 * Active Directory for the CTDB cluster (docs/ad.md, HA), as clustered Samba does it: one computer
 * account for the cluster's NetBIOS name, joined once (`net ads join` on one node, with `clustering =
 * yes` and the member settings in every node's smb.conf); the machine secret lands in secrets.tdb,
 * which CTDB replicates to every node as a persistent database. Each node then gets its keytab entries
 * from that secret (`net ads keytab create -P`), proves the account works there (`net ads testjoin`),
 * and runs its own winbindd (idmap `rid`: the same uids on every node, nothing else to replicate).
 */
import { rm } from 'node:fs/promises';
import { GatewayError, invalid } from '../core/errors.ts';
import type { Runner } from '../core/exec.ts';
import { applyPlan, describePlan, failAtFromEnv, type Step } from '../core/plan.ts';
import { atomicWrite } from '../core/store.ts';
import { adStatePath, IDMAP, MAX_SKEW, readAdState, type AdCredentials, type AdState } from '../samba/ads.ts';
import { checkIdmap, domainShares } from '../provision/ad.ts';
import type { Gateway } from '../provision/context.ts';
import { loadHaConfig, requireHaConfig, saveHaConfig, type HaAdMembership, type HaConfig } from './config.ts';
import { ctdbRunning, type HaNode } from './ctdb.ts';
import type { ClusterNode } from './plan.ts';
import { defaultRunnerFor, deployHaLocked } from './service.ts';
import { clusterFqdn, dropWinbind, ensureWinbind, nodeAds, vipAddresses } from './winbind.ts';

export interface HaAdJoinRequest { domain: string; cred: AdCredentials; dc?: string; dry_run?: boolean }

const localState = (m: HaAdMembership): AdState => ({
  mode: 'ha', domain: m.domain, realm: m.realm, workgroup: m.workgroup, netbios: m.netbios, idmap: m.idmap, nsswitch_added: false, joined_at: m.joined_at,
  ...(m.dc ? { dc: m.dc } : {}),
});

/** The node that talks to the DC: this one (a member, checked). */
function pickNode(g: Gateway, nodes: readonly HaNode[]): HaNode {
  return nodes.find((n) => n.name === g.settings.node) ?? nodes[0]!;
}

/**
 * Join the cluster: checks first (a DC answers, its NetBIOS domain, the clock, the idmap ranges, the
 * credentials, the cluster's computer name free), then: every node's smb.conf gets the member settings
 * (redeploy), `net ads join` once, on every node the keytab from the replicated secret and `net ads
 * testjoin`, winbindd and nsswitch. Each step is undone if a later one fails (the join by `net ads leave`).
 */
export async function haAdJoin(g: Gateway, req: HaAdJoinRequest, runnerFor: (n: ClusterNode) => Runner = defaultRunnerFor(g)) {
  return g.store.locked(async () => {
    const t0 = Date.now();
    const cfg = await requireHaConfig(g.settings.storeDir);
    const domain = req.domain.toLowerCase();
    const realm = domain.toUpperCase();
    if (cfg.ad) throw new GatewayError('exists', `domain: the HA cluster ${cfg.netbios_name} is already joined to ${cfg.ad.domain} (pve-smbgateway ha ad leave first)`, 'domain');
    const local = await readAdState(g.settings.stateDir);
    if (local) throw invalid('domain', `this node is joined to ${local.domain} on its own (pve-smbgateway ad leave first): a cluster node has the cluster's machine account only`);
    // the checks before the join use a scratch config in this node's /tmp: run on a node of the cluster
    if (!cfg.nodes.some((n) => n.name === g.settings.node)) throw invalid('node', `this node (${g.settings.node}) is not a node of the HA cluster (${cfg.nodes.map((n) => n.name).join(', ')}): run ha ad join on one of them`);
    const nodes: HaNode[] = cfg.nodes.map((n) => ({ ...n, run: runnerFor(n) }));
    for (const n of nodes) if (!(await ctdbRunning(n))) throw new GatewayError('unavailable', `node ${n.name} (${n.address}): ctdbd is not running: every node must be up to join (pve-smbgateway ha status; ha deploy)`);
    const joiner = pickNode(g, nodes);
    const ads = nodeAds(joiner, cfg.services);
    const dcInfo = await ads.lookup(realm, req.dc);
    if (dcInfo.domain.toLowerCase() !== domain) throw invalid('domain', `the domain controller that answers (${dcInfo.dc}) is for ${dcInfo.domain}, not ${domain}`);
    const info = await ads.info(realm, req.dc);
    if (info.offset !== undefined && Math.abs(info.offset) > MAX_SKEW) {
      throw new GatewayError('failed', `domain: clock skew: node ${joiner.name}'s clock is ${Math.abs(info.offset)} s ${info.offset > 0 ? 'behind' : 'ahead of'} the domain controller's (${dcInfo.dc}); Kerberos allows ${MAX_SKEW} s: synchronise the time on every node and retry`, 'domain');
    }
    const idmap = IDMAP.native;
    await checkIdmap(g, [idmap.domain, idmap.other]);
    const netbios = cfg.netbios_name.toUpperCase();
    if (await ads.computerExists(realm, dcInfo.workgroup, netbios, req.cred, req.dc)) {
      throw new GatewayError('exists', `netbios name: a computer account ${netbios}$ already exists in ${domain} (another machine or cluster may use this name): deploy the cluster with another netbios_name, or delete the stale account on the DC (samba-tool computer delete ${netbios}) and retry`, 'netbios_name');
    }
    const membership: HaAdMembership = {
      domain, realm, workgroup: dcInfo.workgroup.toUpperCase(), netbios, idmap, join_node: joiner.name, nsswitch_added: [], joined_at: '',
      ...(req.dc ? { dc: req.dc } : {}),
    };
    const before: HaConfig = cfg;
    const redeploy = () => deployHaLocked(g, { timeout: 120 }, runnerFor);
    let wb: { nsswitch: string[]; started: string[] } = { nsswitch: [], started: [] };
    const steps: Step[] = [
      {
        name: 'member-config',
        shows: `every node's smb.conf: security = ads, realm ${realm}, workgroup ${membership.workgroup}, idmap rid ${idmap.domain.join('-')} (clustering = yes stays)`,
        do: async () => { await saveHaConfig(g.settings.storeDir, { ...cfg, ad: membership }); await redeploy(); },
        undo: async () => { await saveHaConfig(g.settings.storeDir, before); await redeploy(); },
      },
      {
        name: 'ads-join',
        shows: `net ads join ${realm} on ${joiner.name} as ${membership.workgroup}\\${req.cred.user} (password on stdin): one computer account ${netbios}$ for the cluster`,
        do: async () => { await ads.join(realm, membership.workgroup, req.cred, req.dc); },
        undo: () => ads.leave(realm, membership.workgroup, req.cred, req.dc),
      },
      {
        name: 'node-keytabs',
        shows: 'on every node: keytab entries from the replicated machine secret (net ads keytab create -P), net ads testjoin',
        do: async () => {
          for (const n of nodes) {
            const a = nodeAds(n, cfg.services);
            if (n !== joiner) await a.keytabCreate();
            const tj = await a.testJoin();
            if (!tj.ok) throw new GatewayError('failed', `node ${n.name}: the cluster's machine account does not work there (net ads testjoin): ${tj.output.split('\n').slice(-1)[0]}; is secrets.tdb replicated (clustering = yes, ctdbd up)?`);
          }
        },
        undo: async () => { for (const n of nodes) await nodeAds(n, cfg.services).keytabFlush().catch(() => undefined); },
      },
      {
        name: 'cluster-dns',
        shows: `${clusterFqdn(netbios, domain)} in the domain's DNS: the VIPs (${vipAddresses(cfg.vips).join(' ') || 'none yet'}), not ${joiner.name}'s own addresses that net ads join registered`,
        do: async () => { membership.dns = vipAddresses(cfg.vips); await ads.dnsSet(clusterFqdn(netbios, domain), membership.dns); },
        undo: () => ads.dnsSet(clusterFqdn(netbios, domain), []),
      },
      {
        name: 'winbind',
        shows: 'on every node: winbind in nsswitch.conf (if missing), winbindd started and reaching the DC (wbinfo -P)',
        do: async () => { wb = await ensureWinbind(nodes, cfg.services); },
        undo: () => dropWinbind(nodes.filter((n) => wb.started.includes(n.name)), cfg.services, wb.nsswitch),
      },
      {
        name: 'save-membership',
        shows: `record the membership in ha.json and this node's ${adStatePath(g.settings.stateDir)}`,
        do: async () => {
          membership.joined_at = new Date().toISOString();
          membership.nsswitch_added = wb.nsswitch;
          const now = (await loadHaConfig(g.settings.storeDir)) ?? cfg;
          await saveHaConfig(g.settings.storeDir, { ...now, ad: membership });
          await atomicWrite(adStatePath(g.settings.stateDir), JSON.stringify(localState(membership), null, 2) + '\n', 0o600);
        },
        undo: () => rm(adStatePath(g.settings.stateDir), { force: true }),
      },
    ];
    const out = { domain, realm, workgroup: membership.workgroup, netbios_name: netbios, join_node: joiner.name, nodes: nodes.map((n) => n.name), idmap: { backend: idmap.backend, domain: idmap.domain.join('-'), other: idmap.other.join('-') }, checks: { dc: dcInfo.dc, dc_address: dcInfo.dcAddress, clock_offset: info.offset ?? null } };
    if (req.dry_run) return { dry_run: true, ...out, plan: describePlan(steps) };
    const done = await applyPlan(steps, { failAt: failAtFromEnv(), log: g.log });
    return { ...out, steps: done, seconds: (Date.now() - t0) / 1000 };
  });
}

/**
 * Leave: refused while HA shares rely on the domain, unless forced. The keytabs are flushed, `net ads
 * leave` runs once (the DC deletes the cluster's account; the secret goes from the replicated
 * secrets.tdb), winbindd stops, nsswitch and smb.conf go back (redeploy).
 */
export async function haAdLeave(g: Gateway, cred: AdCredentials, force: boolean, runnerFor: (n: ClusterNode) => Runner = defaultRunnerFor(g)) {
  return g.store.locked(async () => {
    const t0 = Date.now();
    const cfg = await requireHaConfig(g.settings.storeDir);
    const m = cfg.ad;
    if (!m?.joined_at) throw new GatewayError('not_found', `the HA cluster ${cfg.netbios_name} is not joined to a domain (by pve-smbgateway)`);
    const using = domainShares((await g.store.list()).filter((s) => s.ha_enabled));
    if (using.length && !force) throw invalid('force', `HA shares still rely on ${m.domain}: ${using.map((s) => s.sharename).join(', ')} (their domain users would lose access): delete them first, or leave anyway with force`);
    const nodes: HaNode[] = cfg.nodes.map((n) => ({ ...n, run: runnerFor(n) }));
    const up: HaNode[] = [];
    for (const n of nodes) if (await ctdbRunning(n)) up.push(n);
    if (!up.length) throw new GatewayError('unavailable', 'no node of the HA cluster runs ctdbd: start the cluster first (pve-smbgateway ha deploy)');
    const leaver = up.find((n) => n.name === g.settings.node) ?? up[0]!;
    const ads = nodeAds(leaver, cfg.services);
    const steps: Step[] = [
      { name: 'keytab-flush', shows: 'on every running node: net ads keytab flush -P', do: async () => { for (const n of up) await nodeAds(n, cfg.services).keytabFlush(); }, undo: async () => { for (const n of up) await nodeAds(n, cfg.services).keytabCreate(); } },
      { name: 'cluster-dns', shows: `remove ${clusterFqdn(m.netbios, m.domain)} from the domain's DNS`, do: () => ads.dnsSet(clusterFqdn(m.netbios, m.domain), []) },
      { name: 'ads-leave', shows: `net ads leave ${m.realm} on ${leaver.name} as ${m.workgroup}\\${cred.user} (password on stdin): the DC deletes ${m.netbios}$`, do: () => ads.leave(m.realm, m.workgroup, cred, m.dc) },
      { name: 'winbind', shows: 'on every node: stop winbindd, take winbind out of nsswitch.conf where the join put it', do: () => dropWinbind(nodes, cfg.services, m.nsswitch_added) },
      {
        name: 'member-config',
        shows: 'every node\'s smb.conf without the member settings (redeploy); forget the membership',
        do: async () => {
          const { ad: _ad, ...rest } = (await loadHaConfig(g.settings.storeDir)) ?? cfg;
          await saveHaConfig(g.settings.storeDir, rest);
          await rm(adStatePath(g.settings.stateDir), { force: true });
          await deployHaLocked(g, { timeout: 120 }, runnerFor);
        },
      },
    ];
    const done = await applyPlan(steps, { failAt: failAtFromEnv(), log: g.log });
    return { domain: m.domain, netbios_name: m.netbios, leave_node: leaver.name, steps: done, seconds: (Date.now() - t0) / 1000 };
  });
}
