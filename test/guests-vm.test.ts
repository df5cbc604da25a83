/**
 * A real Debian VM under QEMU/TCG, booted from the cached image with a NoCloud seed whose user-data
 * writes smb.conf, creates a user, mounts the host directory shared over virtiofs (and another over 9p)
 * and starts smbd. smbclient on 127.0.0.1:<forwarded port> writes and reads; the bytes land in the host
 * directories. Prints boot timings.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { buildVmImage, startVm } from './guests/vm.ts';
import { run, since, waitFor } from './guests/common.ts';

const PW = `Pw-${randomBytes(6).toString('hex')}`;

function userData(): string {
  // The password travels in the seed (a 0600 ISO on the host) and lands in a 0600 file read by
  // smbpasswd on stdin: never on a command line, in the guest or on the host.
  return `#cloud-config
write_files:
  - path: /root/.smbgw-pw
    permissions: '0600'
    content: |
      ${PW}
      ${PW}
  - path: /etc/samba/smb.conf
    permissions: '0644'
    content: |
      [global]
         workgroup = WORKGROUP
         server role = standalone server
         disable netbios = yes
         smb ports = 445
         load printers = no
         printing = bsd
         printcap name = /dev/null
         disable spoolss = yes
         map to guest = never
      [share]
         path = /srv/share
         read only = no
         valid users = alice
      [share9p]
         path = /srv/share9p
         read only = no
         valid users = alice
runcmd:
  - [mkdir, -p, /srv/share, /srv/share9p]
  - [mount, -t, virtiofs, share, /srv/share]
  - [mount, -t, 9p, -o, "trans=virtio,version=9p2000.L,msize=262144", share9p, /srv/share9p]
  - [useradd, -M, -u, "1000", -s, /usr/sbin/nologin, alice]
  - [sh, -c, "smbpasswd -s -a alice < /root/.smbgw-pw; rm -f /root/.smbgw-pw"]
  - [systemctl, restart, smbd]
`;
}

test('QEMU/TCG VM with cloud-init: SMB on a forwarded port writes into host dirs over virtiofs and 9p', { timeout: 600_000 }, async (t) => {
  const tImg = Date.now();
  const image = await buildVmImage();
  const imageS = since(tImg);
  const work = await mkdtemp('/tmp/smbgw-vmt-');
  t.after(() => rm(work, { recursive: true, force: true }));
  const vfsDir = join(work, 'virtiofs');
  const p9Dir = join(work, '9p');
  for (const d of [vfsDir, p9Dir]) {
    await mkdir(d);
    await chown(d, 1000, 1000); // ids pass through both virtiofs and 9p (passthrough): guest alice = host 1000
    await chmod(d, 0o755);
  }
  await writeFile(join(vfsDir, 'from-host.txt'), 'host side\n');
  await chown(join(vfsDir, 'from-host.txt'), 1000, 1000);

  const vm = await startVm({
    image, memoryMiB: 512, cpus: 2, userData: userData(),
    virtiofs: [{ host: vfsDir, tag: 'share' }], ninep: [{ host: p9Dir, tag: 'share9p' }], forward: [445],
  });
  t.after(vm.destroy);
  const port = vm.ports[445]!;
  const auth = join(work, 'auth');
  await writeFile(auth, `username = alice\npassword = ${PW}\n`, { mode: 0o600 });
  const smb = (share: string, cmd: string, allowFail = false) =>
    run('smbclient', ['-s', '/dev/null', '-p', String(port), `//127.0.0.1/${share}`, '-A', auth, '-c', cmd], { allowFail });

  await waitFor('SMB share in the VM', async () => (await smb('share', 'ls', true)).code === 0, 300_000, 1000);
  const smbS = since(vm.startedAt);
  const ciS = await vm.waitCloudInit(120_000);
  const ifaces = await vm.agent({ execute: 'guest-network-get-interfaces' }) as { name: string; 'ip-addresses'?: { 'ip-address': string }[] }[];
  const eth0 = ifaces.find((i) => i.name === 'eth0')?.['ip-addresses']?.map((a) => a['ip-address']) ?? [];

  const payload = randomBytes(512 * 1024);
  await writeFile(join(work, 'up.bin'), payload);
  await smb('share', `put ${join(work, 'up.bin')} from-client.bin`);
  assert.deepEqual(await readFile(join(vfsDir, 'from-client.bin')), payload, 'bytes written over SMB are in the virtiofs host dir');
  const st = await stat(join(vfsDir, 'from-client.bin'));
  assert.deepEqual([st.uid, st.gid], [1000, 1000], 'owned by the guest uid of alice (virtiofs passes ids through)');
  await smb('share', `get from-host.txt ${join(work, 'down.txt')}`);
  assert.equal(await readFile(join(work, 'down.txt'), 'utf8'), 'host side\n');

  await smb('share9p', `put ${join(work, 'up.bin')} over-9p.bin`);
  assert.deepEqual(await readFile(join(p9Dir, 'over-9p.bin')), payload, 'bytes written over SMB are in the 9p host dir');
  assert.equal((await stat(join(p9Dir, 'over-9p.bin'))).uid, 1000);

  const tStop = Date.now();
  await vm.destroy(); // hard stop (like `qm stop`) and removal of the overlay, seed and sockets
  const figures = { imageReadySeconds: imageS, imageBuilt: image.built, bootToSmbSeconds: smbS, bootToCloudInitDoneSeconds: ciS, guestAgentEth0: eth0, destroySeconds: since(tStop) };
  t.diagnostic(`vm figures: ${JSON.stringify(figures)}`);
  console.log('vm figures', figures);
  assert.ok(eth0.includes('10.0.2.15'), 'the guest agent reports the user-mode NIC address');
});
