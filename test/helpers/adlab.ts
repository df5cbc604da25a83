/**
 * A real Active Directory lab on this host (after /work/shared/lab/ad-dc-join.sh): a Samba AD DC,
 * the gateway host and an SMB client, each in its own network namespace on one bridge, and each in a
 * private mount + UTS namespace where /etc is an overlay of the host's (writes stay private: krb5.conf,
 * nsswitch.conf, resolv.conf, hosts, smb.conf) and /var/lib/samba, /run/samba, /var/cache/samba,
 * /var/log/samba are bind mounts of the node's own directories. The host's files are never touched.
 *
 * The DC is provisioned once per process (template cached in the lab dir) and started from a copy.
 * Names carry a random id and the subnet is random, so runs can share the machine.
 */
import { spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { access, chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execRunner, type RunResult, type Runner } from '../../src/core/exec.ts';
import { prefixRunner } from '../../src/ha/transport.ts';

export const REALM = 'LAB.EXAMPLE';
export const DOMAIN = 'lab.example';
export const WORKGROUP = 'LAB';
export const ADMIN_PW = 'Adm1n.Lab.Pw!x';
export const USER_PW = 'Al1ce.Lab.Pw!x';

export interface LabNode { name: string; ns: string; address: string; dir: string; holderPid: number; run: Runner }

export interface AdLab {
  id: string;
  dir: string;
  /** The network namespace holding the lab's bridge br0 (to plug more into it, e.g. a guest network). */
  sw: string;
  dc: LabNode;
  gw: LabNode;
  client: LabNode;
  /** Start / stop the DC (samba -M single), by its pid. */
  startDc: () => Promise<void>;
  stopDc: () => Promise<void>;
  /** samba-tool against the DC's database (no network). */
  samba: (args: string[]) => Promise<RunResult>;
  computers: () => Promise<string[]>;
  cleanup: () => Promise<void>;
}

const ip = (args: string[]) => execRunner('ip', args);

async function pidsIn(ns: string): Promise<number[]> {
  const r = await execRunner('ip', ['netns', 'pids', ns], { allowFail: true });
  return r.stdout.split('\n').filter((l) => /^\d+$/.test(l.trim())).map(Number);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitUntil(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond().catch(() => false))) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}

export async function startAdLab(): Promise<AdLab> {
  const id = randomBytes(2).toString('hex');
  // SMBGW_AD_TEMPLATE: keep the provisioned DC between runs (developing the tests); removed otherwise.
  // A kept template keeps its subnet (the DC's DNS records hold its address).
  const template = process.env.SMBGW_AD_TEMPLATE ?? join(tmpdir(), `smbgw-ad-template-${process.pid}`);
  const keptNet = (await readFile(join(template, 'subnet'), 'utf8').catch(() => '')).trim();
  const net = keptNet || `10.${randomInt(64, 250)}.${randomInt(1, 254)}`;
  const dir = await mkdtemp(join(tmpdir(), `smbgw-ad${id}-`));
  await chmod(dir, 0o755);
  const sw = `smbgwad${id}sw`;
  const created: string[] = [];
  let dcPid: number | undefined;
  const nodes: LabNode[] = [];
  const cleanup = async () => {
    for (let round = 0; round < 4; round++) {
      let any = false;
      for (const ns of created) for (const pid of await pidsIn(ns)) { any = true; try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
      if (!any) break;
      await sleep(200);
    }
    for (const ns of [...created].reverse()) await execRunner('ip', ['netns', 'del', ns], { allowFail: true });
    await sleep(100);
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  };
  try {
    await ip(['netns', 'add', sw]);
    created.push(sw);
    await ip(['-n', sw, 'link', 'add', 'br0', 'type', 'bridge']);
    await ip(['-n', sw, 'link', 'set', 'br0', 'up']);
    const hosts = [['dc1', 10], ['gw', 20], ['client', 30]] as const;
    const hostsFile = `127.0.0.1 localhost\n${hosts.map(([n, o]) => `${net}.${o} ${n}.${DOMAIN} ${n}`).join('\n')}\n`;
    for (const [name, octet] of hosts) {
      const ns = `smbgwad${id}${name}`;
      await ip(['netns', 'add', ns]);
      created.push(ns);
      const address = `${net}.${octet}`;
      await ip(['link', 'add', 'eth0', 'netns', ns, 'type', 'veth', 'peer', 'name', `v${name}`, 'netns', sw]);
      await ip(['-n', sw, 'link', 'set', `v${name}`, 'master', 'br0', 'up']);
      await ip(['-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
      await ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
      await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
      const nd = join(dir, name);
      for (const sub of ['etc-upper', 'etc-work', 'lib/private', 'run', 'cache', 'log']) await mkdir(join(nd, sub), { recursive: true });
      await chmod(join(nd, 'lib/private'), 0o700);
      const script = [
        'set -e',
        `mount -t overlay smbgwad${id}${name}-etc -o lowerdir=/etc,upperdir=${nd}/etc-upper,workdir=${nd}/etc-work /etc`,
        `mount --bind ${nd}/lib /var/lib/samba`,
        `mount --bind ${nd}/run /run/samba`,
        `mount --bind ${nd}/cache /var/cache/samba`,
        `mount --bind ${nd}/log /var/log/samba`,
        `hostname ${name}`,
        `touch ${nd}/ready`,
        'exec sleep infinity',
      ].join('\n');
      const holder = spawn('ip', ['netns', 'exec', ns, 'unshare', '-m', '-u', '--propagation', 'private', 'bash', '-c', script], { detached: true, stdio: 'ignore' });
      holder.unref();
      await waitUntil(async () => { await access(join(nd, 'ready')); return true; }, 5_000, `${name} namespace`);
      // the holder is bash exec'd into sleep: its pid is the one whose namespaces we enter
      const holderPid = holder.pid!;
      const run = prefixRunner(execRunner, name, 'nsenter', ['-t', String(holderPid), '-m', '-u', '-n', '--']);
      nodes.push({ name, ns, address, dir: nd, holderPid, run });
      // per-node /etc files, written through the overlay
      const krb5 = `[libdefaults]\n    default_realm = ${REALM}\n    dns_lookup_realm = false\n    dns_lookup_kdc = true\n    rdns = false\n`;
      await run('bash', ['-c', 'rm -f /etc/resolv.conf /etc/hosts /etc/krb5.conf /etc/samba/smb.conf && cat > /etc/hosts && printf "search %s\\nnameserver %s\\n" "$0" "$1" > /etc/resolv.conf && printf "%s" "$2" > /etc/krb5.conf', DOMAIN, `${net}.10`, krb5], { input: hostsFile });
    }
    const [dc, gw, client] = nodes as [LabNode, LabNode, LabNode];
    const dcDir = join(dir, 'dc');
    const samba = (args: string[]) => dc.run('samba-tool', [...args, '-H', join(dcDir, 'private/sam.ldb')], { allowFail: true, timeoutMs: 60_000 });
    // Provision once per process (the test file): ~5 s; every DC after is a 0.1 s copy.
    if (!(await access(join(template, 'etc/smb.conf')).then(() => true, () => false))) {
      await rm(template, { recursive: true, force: true });
      await dc.run('samba-tool', ['domain', 'provision', `--realm=${REALM}`, `--domain=${WORKGROUP}`, '--server-role=dc', '--dns-backend=SAMBA_INTERNAL', '--use-rfc2307',
        `--adminpass=${ADMIN_PW}`, '--host-name=dc1', `--host-ip=${dc.address}`, `--targetdir=${template}`,
        '--option=interfaces = lo eth0', '--option=bind interfaces only = yes', '--option=log level = 1'], { timeoutMs: 120_000 });
      await execRunner('sed', ['-i', '/dns forwarder/d', join(template, 'etc/smb.conf')]);
      const st = (args: string[]) => dc.run('samba-tool', [...args, '-H', join(template, 'private/sam.ldb')], { timeoutMs: 60_000 });
      await dc.run('samba-tool', ['domain', 'passwordsettings', 'set', '--max-pwd-age=0', '-s', join(template, 'etc/smb.conf'), '-H', join(template, 'private/sam.ldb')]);
      for (const u of ['alice', 'bob', 'carol']) await st(['user', 'create', u, USER_PW]);
      await st(['group', 'add', 'staff']);
      await st(['group', 'addmembers', 'staff', 'carol']);
      // The DC's TLS key, made here in ~0.1 s (samba -M single would spend seconds on its first start making one)
      const tls = join(template, 'private', 'tls');
      await mkdir(tls, { recursive: true });
      await execRunner('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(tls, 'key.pem'), '-out', join(tls, 'cert.pem'), '-days', '3650', '-subj', `/CN=dc1.${DOMAIN}`]);
      await execRunner('cp', [join(tls, 'cert.pem'), join(tls, 'ca.pem')]);
      await chmod(join(tls, 'key.pem'), 0o600);
      await writeFile(join(template, 'subnet'), net);
    }
    await execRunner('cp', ['-a', template, dcDir]);
    await execRunner('sed', ['-i', `s|${template}|${dcDir}|g`, join(dcDir, 'etc/smb.conf')]);
    await writeFile(join(dir, 'template'), template);

    const startDc = async () => {
      const c = spawn('nsenter', ['-t', String(dc.holderPid), '-m', '-u', '-n', '--', 'samba', '-F', '--no-process-group', '-M', 'single', '-s', join(dcDir, 'etc/smb.conf'), '--debug-stdout', '-d1'],
        { detached: true, stdio: ['ignore', 'ignore', 'ignore'] });
      c.unref();
      dcPid = c.pid;
      // ready: KDC, LDAP and the RPC server answer (a join before RPC is up fails with an internal error)
      await waitUntil(async () => (await gw.run('rpcclient', ['-U%', dc.address, '-c', 'dsroledominfo'], { allowFail: true, timeoutMs: 5_000 })).code === 0, 60_000, 'the DC');
      // and DNS + CLDAP as a member finds them (from the client: the gateway's caches stay untouched)
      await waitUntil(async () => (await client.run('net', ['-s', '/dev/null', 'ads', 'lookup', `--realm=${REALM}`], { allowFail: true, timeoutMs: 5_000 })).code === 0, 30_000, 'the DC\'s CLDAP');
    };
    const stopDc = async () => {
      if (!dcPid) return;
      const p = dcPid;
      dcPid = undefined;
      try { process.kill(p, 'SIGTERM'); } catch { /* gone */ }
      // everything left of the DC in its namespace (not its holder)
      await waitUntil(async () => { try { process.kill(p, 0); return false; } catch { return true; } }, 10_000, 'the DC to stop');
      for (const pid of await pidsIn(dc.ns)) if (pid !== dc.holderPid) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    };
    const computers = async () => (await samba(['computer', 'list'])).stdout.split('\n').map((l) => l.trim()).filter(Boolean);
    return { id, dir, sw, dc, gw, client, startDc, stopDc, samba, computers, cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/** Remove the per-process DC template (after the test file). */
export async function removeTemplate(lab: AdLab): Promise<void> {
  const t = (await readFile(join(lab.dir, 'template'), 'utf8').catch(() => '')).trim();
  if (t.startsWith(tmpdir()) && !process.env.SMBGW_AD_TEMPLATE) await rm(t, { recursive: true, force: true });
}
