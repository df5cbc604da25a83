/**
 * The Debian package, for real: `scripts/package.sh` builds it (cached while its inputs are unchanged),
 * lintian checks it, and in a fresh Debian 12 and Debian 13 system container (LXC, systemd as init,
 * minimal debootstrap rootfs without Samba) it goes through an admin's life cycle:
 *   apt install ./pve-smbgateway.deb  (Samba, smbclient, acl... resolved from Debian's mirror),
 *   pve-smbgatewayd active under systemd, hardened, logging to the journal, `systemctl reload` works,
 *   `pve-smbgateway create` of a native share that a client on the host reaches over SMB,
 *   apt remove (share, config and data stay, Samba keeps serving), reinstall (the share is seen again,
 *   an older store format is migrated), apt purge (the gateway's config goes; data, accounts and
 *   smb.conf stay).
 * SMBGW_PKG_SUITES=bookworm limits the suites.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createContainer, type Container } from './guests/lxc.ts';
import { createNetwork } from './guests/netns.ts';
import { startAptRelay } from './guests/aptrelay.ts';
import { buildPkgRootfs, PKG_SUITES, type PkgSuite } from './guests/pkgroot.ts';
import { run, since, uid, waitFor } from './guests/common.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const SUITES = (process.env.SMBGW_PKG_SUITES ?? 'bookworm,trixie').split(',').filter(Boolean) as PkgSuite[];
const INCLUDE = 'include = /etc/samba/smbgateway.conf';

// Built once for the file; lintian starts as soon as the package is there, beside the containers.
const t0 = Date.now();
const built = run('bash', [join(ROOT, 'scripts/package.sh')], { timeoutMs: 25 * 60_000 }).then((r) => ({ deb: r.stdout.trim().split('\n').pop()!, seconds: since(t0) }));
const lint = built.then(async ({ deb }) => {
  const l0 = Date.now();
  const r = await run('lintian', ['--tag-display-limit', '0', deb], { allowFail: true, timeoutMs: 10 * 60_000 });
  return { ...r, seconds: since(l0) };
});
built.catch(() => undefined);
lint.catch(() => undefined);

const apt = (ct: Container, args: string[], timeoutMs = 8 * 60_000) =>
  ct.exec(['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', '-y', '-q', '-o', 'Dpkg::Use-Pty=0', ...args], { timeoutMs });
const sh = async (ct: Container, script: string) => (await ct.exec(['sh', '-c', script])).stdout;
const exists = async (ct: Container, p: string) => (await ct.exec(['test', '-e', p], { allowFail: true })).code === 0;

async function daemonPid(ct: Container): Promise<number> {
  return Number((await ct.exec(['systemctl', 'show', '-p', 'MainPID', '--value', 'pve-smbgatewayd'])).stdout.trim());
}

/** GET https://127.0.0.1:8116<path> from inside, with the package's own runtime (the daemon's certificate is self-signed). */
async function daemonAnswers(ct: Container, path = '/'): Promise<string> {
  const js = "const r = await fetch('https://127.0.0.1:8116' + process.argv[1]); process.stdout.write(r.status + ' ' + r.headers.get('content-type') + ' ' + (await r.text()).slice(0, 200));";
  const r = await ct.exec(['env', 'NODE_TLS_REJECT_UNAUTHORIZED=0', '/usr/lib/pve-smbgateway/bin/node', '--no-warnings', '--input-type=module', '-e', js, path], { allowFail: true });
  return r.stdout;
}

// The suites' containers run side by side (most of their time is apt and dpkg, not CPU-bound throughout).
describe('Debian package', { concurrency: true }, () => {
/** A call to the daemon's REST API from inside the container (the package's own runtime). */
async function api(ct: Container, method: string, path: string, auth: string, body?: unknown): Promise<{ status: number; json: any }> {
  const js = `const r = await fetch('https://127.0.0.1:8116/api2/json' + process.argv[1], { method: process.argv[2], headers: { authorization: process.argv[3], 'content-type': 'application/json' }, body: process.argv[4] || undefined });
process.stdout.write(JSON.stringify({ status: r.status, json: await r.json().catch(() => null) }));`;
  const r = await ct.exec(['env', 'NODE_TLS_REJECT_UNAUTHORIZED=0', '/usr/lib/pve-smbgateway/bin/node', '--no-warnings', '--input-type=module', '-e', js, path, method, auth, body === undefined ? '' : JSON.stringify(body)]);
  return JSON.parse(r.stdout) as { status: number; json: any };
}

for (const suite of SUITES) {
  it(`package on Debian ${PKG_SUITES[suite]} (${suite}): apt install from Debian, daemon under systemd, native share over SMB, remove keeps, reinstall sees it, purge removes config only`, { timeout: 20 * 60_000 }, async (t) => {
    const tAll = Date.now();
    const [{ deb, seconds: buildS }, root] = await Promise.all([built, buildPkgRootfs(suite)]);
    t.diagnostic(`package ${deb} (${(await stat(deb)).size} bytes) ready after ${buildS} s; rootfs ${root.path} ${root.built ? 'built' : 'cached'} (${root.seconds} s)`);

    const net = await createNetwork();
    t.after(net.destroy);
    const relay = await startAptRelay(net, root.mirror);
    t.after(relay.stop);
    const ip = net.guestIp(2);
    const ct = await createContainer({ name: `smbgw-pkg-${suite}-${uid()}`, hostname: `pkg-${suite}`, idmap: [], memoryMiB: 2048, rootfs: { lowerDir: root.path }, net: { network: net, cidr: `${ip}/24` } });
    t.after(ct.destroy);
    await ct.start();
    await waitFor('systemd up', async () => /^(running|degraded)/.test((await ct.exec(['systemctl', 'is-system-running'], { allowFail: true })).stdout.trim()), 60_000, 250);
    await ct.push(`Acquire::http::Proxy "${relay.proxy}";\n`, '/etc/apt/apt.conf.d/01smbgw-relay');
    await ct.push(await readFile(deb), '/root/pve-smbgateway.deb');
    assert.equal(await exists(ct, '/usr/sbin/smbd'), false, 'the fresh system has no Samba yet');

    // --- install: dependencies from Debian
    await apt(ct, ['update']);
    const ti = Date.now();
    const inst = await apt(ct, ['install', '/root/pve-smbgateway.deb']);
    const installS = since(ti);
    assert.match(inst.stdout, new RegExp(`Add this line at the END of /etc/samba/smb.conf:\\s+${INCLUDE}`), 'postinst prints the include line');
    for (const p of ['samba', 'smbclient', 'acl', 'openssl', 'pve-smbgateway']) {
      assert.equal((await ct.exec(['dpkg-query', '-W', '-f', '${Status}', p])).stdout, 'install ok installed', `${p} installed`);
    }
    assert.ok(relay.requests() > 0, 'packages came from the mirror');
    const smbConf = await sh(ct, 'cat /etc/samba/smb.conf');
    assert.doesNotMatch(smbConf, /smbgateway/, 'postinst left smb.conf alone');

    // --- the daemon under systemd
    await waitFor('pve-smbgatewayd active', async () => (await ct.exec(['systemctl', 'is-active', 'pve-smbgatewayd'], { allowFail: true })).stdout.trim() === 'active', 30_000, 250);
    assert.equal((await ct.exec(['systemctl', 'is-enabled', 'pve-smbgatewayd'])).stdout.trim(), 'enabled');
    await waitFor('daemon answers', async () => (await daemonAnswers(ct)).startsWith('200 '), 30_000, 250);
    assert.match(await daemonAnswers(ct), /^200 .*<html/is, 'the web UI is served over HTTPS');
    assert.match(await daemonAnswers(ct, '/ui/app.js'), /^200 text\/javascript/, 'with its prebuilt bundle (no esbuild in the package)');
    assert.match(await sh(ct, 'journalctl -u pve-smbgatewayd --no-pager -o cat'), /pve-smbgatewayd on https:\/\/127\.0\.0\.1:8116/, 'logs to the journal');
    assert.equal((await sh(ct, 'stat -c %a /var/lib/smbgateway/tls/smbgatewayd.key')).trim(), '600');
    // The vzdump hook where docs/backup.md tells admins to point `script:`: a guest that serves no share is left alone.
    const hook = await ct.exec(['env', 'VMTYPE=lxc', '/usr/lib/pve-smbgateway/bin/pve-smbgateway-vzdump-hook', 'backup-start', 'snapshot', '999'], { allowFail: true });
    assert.equal(hook.code, 0, hook.stdout + hook.stderr);
    const badHook = await ct.exec(['/usr/lib/pve-smbgateway/bin/pve-smbgateway-vzdump-hook', 'no-such-phase'], { allowFail: true });
    assert.match(badHook.stdout + badHook.stderr, /unknown phase 'no-such-phase'/);
    const pid = await daemonPid(ct);
    const status = await sh(ct, `cat /proc/${pid}/status`);
    const kib = (f: string) => Number(new RegExp(`${f}:\\s+(\\d+)`).exec(status)![1]);
    const rssKiB = kib('VmRSS');
    const rssAnonKiB = kib('RssAnon');
    const newly = /(\d+) newly installed/.exec(inst.stdout)?.[1];
    const capBnd = BigInt('0x' + /CapBnd:\s+([0-9a-f]+)/.exec(status)![1]);
    assert.ok(capBnd !== 0n && capBnd < 0x1ffffffffffn, `capability bounding set narrowed (CapBnd ${capBnd.toString(16)})`);
    assert.equal(capBnd & (1n << 16n), 0n, 'no CAP_SYS_MODULE');
    const mounts = await sh(ct, `cat /proc/${pid}/mountinfo`);
    assert.match(mounts, / \/usr [^\n]* ro[, ]/, 'ProtectSystem: /usr is read-only for the daemon');
    assert.match(mounts, / \/tmp /, 'PrivateTmp: the daemon has a /tmp of its own');
    const unitMem = Number((await ct.exec(['systemctl', 'show', '-p', 'MemoryCurrent', '--value', 'pve-smbgatewayd'])).stdout.trim());

    // --- reload: same process, settings read again; a broken file is refused and the daemon keeps going
    await ct.exec(['systemctl', 'reload', 'pve-smbgatewayd']);
    await waitFor('reloaded', async () => (await sh(ct, 'journalctl -u pve-smbgatewayd --no-pager -o cat')).match(/pve-smbgatewayd on https/g)!.length >= 2, 30_000, 250);
    assert.equal(await daemonPid(ct), pid, 'reload keeps the process');
    assert.match(await daemonAnswers(ct), /^200 /);
    await ct.push('{"port": "eighty"}\n', '/etc/smbgateway/daemon.json.broken');
    await sh(ct, 'cp /etc/smbgateway/daemon.json /root/daemon.json.good && cp /etc/smbgateway/daemon.json.broken /etc/smbgateway/daemon.json && systemctl reload pve-smbgatewayd');
    await waitFor('reload refused', async () => /reload refused, keeping the running settings: .*port/.test(await sh(ct, 'journalctl -u pve-smbgatewayd --no-pager -o cat')), 30_000, 250);
    assert.equal(await daemonPid(ct), pid);
    assert.match(await daemonAnswers(ct), /^200 /, 'still serving after a refused reload');
    await sh(ct, 'cp /root/daemon.json.good /etc/smbgateway/daemon.json && rm /etc/smbgateway/daemon.json.broken');

    // --- a native share, as the admin would make it
    await sh(ct, `printf '\\n${INCLUDE}\\n' >> /etc/samba/smb.conf`);
    const adminConf = await sh(ct, 'sha256sum /etc/samba/smb.conf');
    const pw = `Pw-${randomBytes(6).toString('hex')}`;
    await ct.push(`${pw}\n`, '/root/pw', { mode: 0o600 });
    const created = await ct.exec(['pve-smbgateway', 'create', 'projects', '--mode', 'native', '--path', '/srv/projects', '--user', 'alice', '--password-file', '/root/pw', '--json'], { allowFail: true, timeoutMs: 120_000 });
    assert.equal(created.code, 0, `create: ${created.stdout}${created.stderr}`);
    assert.equal(JSON.parse(created.stdout).success, true);

    const work = await mkdtemp('/tmp/smbgw-pkg-');
    t.after(() => rm(work, { recursive: true, force: true }));
    await writeFile(join(work, 'auth'), `username = alice\npassword = ${pw}\n`, { mode: 0o600 });
    const payload = randomBytes(256 * 1024);
    await writeFile(join(work, 'up.bin'), payload);
    const smb = (cmd: string) => net.exec(['smbclient', '-s', '/dev/null', `//${ip}/projects`, '-A', join(work, 'auth'), '-m', 'SMB3', '-c', cmd], { allowFail: true, timeoutMs: 60_000 });
    const put = await smb(`put ${join(work, 'up.bin')} data.bin`);
    assert.equal(put.code, 0, `smbclient put: ${put.stdout}${put.stderr}`);
    const get = await smb(`get data.bin ${join(work, 'down.bin')}`);
    assert.equal(get.code, 0, `smbclient get: ${get.stdout}${get.stderr}`);
    assert.ok((await readFile(join(work, 'down.bin'))).equals(payload), 'bytes read back over SMB');
    assert.equal((await sh(ct, 'sha256sum < /srv/projects/data.bin')).split(' ')[0], (await run('sha256sum', [join(work, 'up.bin')])).stdout.split(' ')[0], 'the bytes are on the share path');

    // --- a share made by the daemon itself (a task inside the unit's sandbox and capability bounds):
    // a new account (useradd), its directory, ACLs, smb.conf reload, as the REST API's create does.
    const token = JSON.parse((await ct.exec(['pve-smbgateway', 'token', 'create', 'ops', '--privs', 'Datastore.Allocate,Datastore.Audit', '--json'])).stdout) as { data: { authorization: string } };
    const auth = token.data.authorization;
    const node = `pkg-${suite}`;
    const pw2 = `Pw-${randomBytes(6).toString('hex')}`;
    const post = await api(ct, 'POST', `/nodes/${node}/smbgateway`, auth, { sharename: 'viaapi', mode: 'native', path: '/srv/viaapi', users: ['bob'], password: pw2 });
    assert.equal(post.status, 200, JSON.stringify(post.json));
    const upid = post.json.data as string;
    const done = await waitFor('daemon task', async () => {
      const st = await api(ct, 'GET', `/nodes/${node}/tasks/${encodeURIComponent(upid)}/status`, auth);
      return st.json?.data?.status === 'stopped' ? st.json.data : undefined;
    }, 120_000, 500);
    assert.equal(done.exitstatus, 'OK', `daemon's create task: ${JSON.stringify(done)} ${JSON.stringify((await api(ct, 'GET', `/nodes/${node}/tasks/${encodeURIComponent(upid)}/log`, auth)).json)}`);
    await writeFile(join(work, 'auth2'), `username = bob\npassword = ${pw2}\n`, { mode: 0o600 });
    const put2 = await net.exec(['smbclient', '-s', '/dev/null', `//${ip}/viaapi`, '-A', join(work, 'auth2'), '-m', 'SMB3', '-c', `put ${join(work, 'up.bin')} b.bin`], { allowFail: true, timeoutMs: 60_000 });
    assert.equal(put2.code, 0, `smbclient to the daemon-made share: ${put2.stdout}${put2.stderr}`);

    // --- remove: everything stays; Samba keeps serving
    await apt(ct, ['remove', 'pve-smbgateway']);
    assert.equal(await exists(ct, '/usr/bin/pve-smbgateway'), false);
    assert.notEqual((await ct.exec(['systemctl', 'is-active', 'pve-smbgatewayd'], { allowFail: true })).stdout.trim(), 'active');
    assert.match(await sh(ct, 'cat /etc/smbgateway/shares.cfg'), /^smbgateway: projects$/m, 'remove keeps the shares');
    assert.ok(await exists(ct, '/etc/smbgateway/daemon.json'), 'remove keeps the conffile');
    assert.ok(await exists(ct, '/srv/projects/data.bin'), 'remove keeps the data');
    assert.equal((await smb('ls data.bin')).code, 0, 'Samba still serves the share');
    // An older version's store (no format header, as 0.1 wrote it): the upgrade migrates it.
    await sh(ct, "sed -i '/^# format:/d' /etc/smbgateway/shares.cfg");

    // --- reinstall: the share is there again
    const re = await apt(ct, ['install', '/root/pve-smbgateway.deb']);
    assert.match(re.stdout, /migrated store format 1 -> 2 \(2 shares\)/);
    assert.match(await sh(ct, 'cat /etc/smbgateway/shares.cfg'), /^# format: 2$/m);
    const list = JSON.parse((await ct.exec(['pve-smbgateway', 'list', '--json'])).stdout) as { data: { sharename: string }[] };
    assert.deepEqual(list.data.map((s) => s.sharename).sort(), ['projects', 'viaapi']);
    await waitFor('pve-smbgatewayd active again', async () => (await ct.exec(['systemctl', 'is-active', 'pve-smbgatewayd'], { allowFail: true })).stdout.trim() === 'active', 30_000, 250);

    // --- purge: the gateway's own config and state go; data, accounts, smb.conf stay
    const purge = await apt(ct, ['purge', 'pve-smbgateway']);
    assert.match(purge.stdout, /smbgateway\.conf stays/);
    for (const p of ['/etc/smbgateway', '/var/lib/smbgateway', '/lib/systemd/system/pve-smbgatewayd.service']) assert.equal(await exists(ct, p), false, `${p} removed by purge`);
    assert.equal((await sh(ct, 'sha256sum < /srv/projects/data.bin')).split(' ')[0], (await run('sha256sum', [join(work, 'up.bin')])).stdout.split(' ')[0], 'purge leaves the share data');
    assert.equal(await sh(ct, 'sha256sum /etc/samba/smb.conf'), adminConf, 'smb.conf as the admin left it');
    assert.equal((await ct.exec(['id', '-u', 'alice'], { allowFail: true })).code, 0, 'the share\'s account stays');
    assert.equal((await ct.exec(['dpkg-query', '-W', '-f', '${Status}', 'samba'])).stdout, 'install ok installed');

    const debBytes = (await stat(deb)).size;
    const installedKiB = Number((await run('dpkg-deb', ['-f', deb, 'Installed-Size'])).stdout.trim());
    t.diagnostic(`Debian ${PKG_SUITES[suite]}: package ${(debBytes / 1048576).toFixed(1)} MiB, installed ${(installedKiB / 1024).toFixed(1)} MiB; apt install (${newly} packages with Samba & co from the mirror) ${installS} s; daemon VmRSS ${(rssKiB / 1024).toFixed(1)} MiB (anonymous ${(rssAnonKiB / 1024).toFixed(1)} MiB), unit MemoryCurrent ${(unitMem / 1048576).toFixed(1)} MiB; whole test ${since(tAll)} s`);
  });
}

it('package: lintian reports no errors', { timeout: 30 * 60_000 }, async (t) => {
  const r = await lint;
  const lines = (r.stdout + r.stderr).split('\n').filter((l) => /^[EWIPXO]: /.test(l));
  t.diagnostic(`lintian (${r.seconds} s):\n${lines.join('\n') || '(no tags)'}`);
  assert.deepEqual(lines.filter((l) => l.startsWith('E: ')), []);
});
});
