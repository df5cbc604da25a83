/**
 * Minimal Debian root filesystems for package tests: debootstrap minbase plus systemd as init, nothing
 * else (no Samba: installing the package must bring what it depends on from the mirror). Built once per
 * suite from this machine's apt mirror and cached like the guests' rootfs (rootfs.ts: atomic rename,
 * a lock, old recipes pruned). Used unshifted, as the lower dir of a privileged container's overlay:
 * the container stands in for a Proxmox VE host, where the package runs as real root.
 */
import { mkdir, rm, truncate, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { cacheRoot, run } from './common.ts';
import { aptMirror, cached, inChroot, maskUnit, SUITE, type Built } from './rootfs.ts';

/** Debian 12 (Proxmox VE 8) and Debian 13 (Proxmox VE 9). */
export const PKG_SUITES = { bookworm: 12, trixie: 13 } as const;
export type PkgSuite = keyof typeof PKG_SUITES;
const PACKAGES = ['systemd-sysv', 'dbus', 'ca-certificates'];
const RECIPE_VERSION = 1;

export async function buildPkgRootfs(suite: PkgSuite): Promise<Built & { mirror: string }> {
  const key = createHash('sha256').update(JSON.stringify({ suite, PACKAGES, RECIPE_VERSION })).digest('hex').slice(0, 10);
  const path = join(cacheRoot(), `pkgroot-${suite}-${key}`);
  // This machine's apt names the bookworm mirror; the same archive serves every suite.
  const mirror = await aptMirror(SUITE);
  const r = await cached(path, async (tmp) => {
    await run('debootstrap', ['--variant=minbase', `--include=${PACKAGES.join(',')}`, suite, tmp, mirror], { timeoutMs: 15 * 60_000 });
    await maskUnit(tmp, 'sys-kernel-debug.mount');
    await truncate(join(tmp, 'etc/machine-id'), 0);
    await writeFile(join(tmp, 'etc/hostname'), 'localhost\n');
    await rm(join(tmp, 'var/cache/apt/archives'), { recursive: true, force: true });
    await mkdir(join(tmp, 'var/cache/apt/archives/partial'), { recursive: true });
    await writeFile(join(tmp, 'etc/apt/sources.list'), `deb ${mirror} ${suite} main\n`);
    const version = (await inChroot(tmp, ['cat', '/etc/debian_version'])).trim();
    await writeFile(join(tmp, '.smbgw-pkgroot.json'), JSON.stringify({ key, suite, mirror, version, builtAt: new Date().toISOString() }, null, 2) + '\n');
  }, { prunePrefix: `pkgroot-${suite}-` });
  return { path, key, mirror, ...r };
}
