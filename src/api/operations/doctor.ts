/**
 * `doctor`: what a node needs for the gateway, each finding with how to fix it. Reads only: it changes
 * nothing (the store lock is taken and released, nothing else).
 */
import { constants, existsSync } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { defineOperation } from '../../core/operation.ts';
import { includesManaged } from '../../samba/render.ts';
import { globalParam } from '../../monitor/collector.ts';
import { fullAuditLogged } from '../../monitor/logs.ts';
import type { Gateway } from '../../provision/context.ts';
import { detectBacking } from '../../provision/storage.ts';
import { AUDIT, SYS_MODIFY } from '../privileges.ts';
import { allOf } from '../../core/operation.ts';

const op = defineOperation<Gateway>();

export interface Finding { check: string; status: 'ok' | 'warn' | 'fail'; detail: string; fix?: string }

export async function doctor(g: Gateway): Promise<Finding[]> {
  const { run, settings, samba, store } = g;
  const out: Finding[] = [];
  const add = (check: string, status: Finding['status'], detail: string, fix?: string) => out.push({ check, status, detail, ...(fix ? { fix } : {}) });

  // Samba
  const v = await run('smbd', ['--version'], { allowFail: true });
  const ver = /Version (\d+)\.(\d+)\S*/.exec(v.stdout);
  if (!ver) add('samba', 'fail', 'smbd is not installed', 'apt-get install samba');
  else if (Number(ver[1]) < 4 || (Number(ver[1]) === 4 && Number(ver[2]) < 16)) add('samba', 'warn', `Samba ${ver[0].slice(8)}: older than 4.16 (smbstatus --json, used by status and metrics, is missing)`, 'upgrade Samba to 4.16 or newer (Debian 12 has 4.17)');
  else add('samba', 'ok', `Samba ${ver[0].slice(8)}`);
  const conf = await readFile(settings.smbConf, 'utf8').catch(() => undefined);
  if (conf === undefined) add('include', 'fail', `${settings.smbConf} does not exist`, 'install samba, or set smb_conf in /etc/smbgateway/gateway.json');
  else if (!includesManaged(conf, settings.managedConf)) add('include', 'fail', `${settings.smbConf} does not load the gateway's shares`, `add the line "include = ${settings.managedConf}" at the end of ${settings.smbConf}`);
  else add('include', 'ok', `${settings.smbConf} includes ${settings.managedConf}`);
  if (conf !== undefined) {
    // testparm shows only the global level of `log level`: read it as written.
    const level = globalParam(settings.smbConf, 'log level');
    const logFile = await samba.parameter('log file').catch(() => '');
    const sample = 'log level = 1 auth_json_audit:3@/var/log/samba/auth.json full_audit:1@/var/log/samba/tcon.log';
    if (!fullAuditLogged(logFile, level)) add('logging', 'warn', `log level "${level || '0'}" keeps no full_audit lines: metrics place connections by polling only (a client that connects and leaves within a second is not counted for its share), and the audit preset records nothing`, `add "${sample}" to [global] of ${settings.smbConf} (docs/monitoring.md)`);
    else if (!/auth_json_audit:\d+@/.test(level)) add('logging', 'warn', 'no auth_json_audit file in log level: failed logons are not counted in the metrics', `add "${sample}" to [global] of ${settings.smbConf}`);
    else add('logging', 'ok', `log level "${level}": tree connects, audit records and failed logons are logged`);
  }
  if (existsSync(settings.managedConf)) {
    const c = await samba.checkText(await readFile(settings.managedConf, 'utf8')).then(() => undefined, (e: Error) => e.message);
    add('managed config', c ? 'fail' : 'ok', c ?? `${settings.managedConf} passes testparm`, c ? 'run `pve-smbgateway repair`, or update any share to render it again' : undefined);
  }
  add('smbd', (await samba.running()) ? 'ok' : 'warn', (await samba.running()) ? 'smbd answers smbcontrol ping' : 'smbd is not running (shares are configured but not served)', 'systemctl enable --now smbd');

  // Store, lock, secrets
  const storeDir = settings.storeDir;
  const w = await access(storeDir, constants.W_OK).then(() => undefined, (e: NodeJS.ErrnoException) => e.code);
  if (w === 'ENOENT') add('store', 'warn', `${storeDir} does not exist yet (made by the first create)`);
  else if (w) add('store', 'fail', `${storeDir} is not writable (${w})`, settings.isPve ? 'pmxcfs (pve-cluster) must be running and the cluster quorate: systemctl status pve-cluster; pvecm status' : `check the permissions of ${storeDir}`);
  else {
    const shares = await store.list().then((s) => `${s.length} share(s)`, (e: Error) => `unreadable: ${e.message}`);
    add('store', shares.startsWith('unreadable') ? 'fail' : 'ok', `${store.cfgPath}: ${shares}`, shares.startsWith('unreadable') ? `fix or restore ${store.cfgPath}` : undefined);
  }
  const lock = await store.locked(async () => undefined, 5_000).then(() => undefined, (e: Error) => e.message);
  add('lock', lock ? 'fail' : 'ok', lock ?? `the lock in ${settings.lockDir} can be taken`, lock ? 'another operation holds it, or an interrupted one left changes: `pve-smbgateway repair`' : undefined);
  if (settings.isPve) {
    const priv = existsSync('/etc/pve/priv');
    add('pmxcfs private dir', priv ? 'ok' : 'fail', priv ? '/etc/pve/priv exists (secrets stay private to root across the cluster)' : '/etc/pve/priv is missing: pmxcfs is not mounted', 'systemctl restart pve-cluster');
  }
  const pst = await stat(store.privDir).catch(() => undefined);
  if (pst && (pst.mode & 0o077) !== 0 && !settings.isPve) add('secrets', 'fail', `${store.privDir} is readable by others (mode ${(pst.mode & 0o777).toString(8)})`, `chmod 700 ${store.privDir}`);
  else if (pst) add('secrets', 'ok', `${store.privDir} is private`);

  // CTDB (only where a share uses HA)
  const ha = (await store.list().catch(() => [])).some((s) => s.ha_enabled);
  if (ha) {
    const c = await run('ctdb', ['status'], { allowFail: true, timeoutMs: 10_000 });
    if (c.code !== 0) add('ctdb', 'fail', `ctdb status failed: ${(c.stderr || c.stdout).trim().split('\n')[0]}`, 'systemctl start ctdb; see docs/ha.md');
    else add('ctdb', /UNHEALTHY|DISCONNECTED|BANNED|STOPPED/.test(c.stdout) ? 'warn' : 'ok', c.stdout.split('\n').filter((l) => /^pnn:/.test(l.trim())).map((l) => l.trim()).join('; ') || 'ctdb answers', 'see docs/ha.md (ctdb status shows each node\'s flags)');
  } else add('ctdb', 'ok', 'no share uses HA: CTDB is not needed');

  // Each allowed root: quotas and snapshots
  for (const root of settings.allowedRoots) {
    const st = await stat(root).catch(() => undefined);
    if (!st?.isDirectory()) { add(`root ${root}`, 'fail', 'does not exist or is not a directory', `create it, or remove it from allowed_roots in gateway.json`); continue; }
    const b = await detectBacking(run, root, true).catch(() => undefined);
    if (b?.kind === 'zfs') add(`root ${root}`, 'ok', `ZFS dataset ${b.dataset}: quotas and snapshots`);
    else if (b?.kind === 'btrfs') add(`root ${root}`, 'ok', 'btrfs: quotas (qgroups) and snapshots');
    else add(`root ${root}`, 'warn', `${b?.kind === 'plain' ? b.fstype : 'unknown filesystem'}: no quotas and no snapshots (create --quota and backup are refused here)`, 'use a ZFS dataset or a btrfs filesystem for shares that need quotas or Previous Versions');
    const acl = await run('getfacl', ['-n', '--', root], { allowFail: true });
    if (acl.code !== 0 && /not supported/i.test(acl.stderr)) add(`acl ${root}`, 'warn', 'no POSIX ACLs: a share belongs to its first user, the others get in only where unix permissions allow', 'zfs set acltype=posixacl <dataset>');
  }

  // The daemon's certificate
  const certs = ['/etc/pve/local/pveproxy-ssl.pem', '/etc/pve/local/pve-ssl.pem', join(settings.stateDir, 'tls', 'smbgatewayd.pem')];
  const cert = certs.find((c) => existsSync(c));
  if (!cert) add('certificate', 'warn', 'no certificate yet: the daemon makes a self-signed one when it first starts', 'start pve-smbgatewayd (or give tls_cert/tls_key in daemon.json)');
  else {
    const e = await run('openssl', ['x509', '-enddate', '-noout', '-in', cert], { allowFail: true });
    const end = Date.parse(e.stdout.replace(/^notAfter=/, '').trim());
    if (Number.isNaN(end)) add('certificate', 'fail', `${cert} cannot be read as a certificate`, 'replace it (or remove the self-signed one so the daemon makes a new one)');
    else if (end < Date.now() + 30 * 86_400_000) add('certificate', end < Date.now() ? 'fail' : 'warn', `${cert} expires ${new Date(end).toISOString().slice(0, 10)}`, settings.isPve ? 'pvecm updatecerts --force' : `remove ${cert} and its key; the daemon makes a new one`);
    else add('certificate', 'ok', `${cert}, valid until ${new Date(end).toISOString().slice(0, 10)}`);
  }
  return out;
}

export const doctorOp = op({
  command: ['doctor'],
  method: 'GET',
  path: '/nodes/{node}/smbgateway/doctor',
  description: 'Check this node: Samba and the include line, the store and its lock, the private directory, CTDB, quota and snapshot support of each allowed root, the daemon\'s certificate; each finding with how to fix it.',
  parameters: {},
  returns: { description: 'Findings', schema: { type: 'array', items: { type: 'object', properties: { check: { type: 'string' }, status: { type: 'string' }, detail: { type: 'string' }, fix: { type: 'string' } } } } },
  privilege: allOf(AUDIT, SYS_MODIFY),
  handler: async (_p, g) => doctor(g),
});
