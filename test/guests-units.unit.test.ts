/**
 * Pure parts of the real-guest machinery: apt source parsing (the debootstrap mirror comes from the
 * machine's apt configuration), id maps and the /etc/subuid lines they need.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAptSources, pickMirror } from './guests/rootfs.ts';
import { lxcIdmapLines, missingSubids, passthroughIdmap, PROXMOX_IDMAP, subidLines, toHost, usernsexecArgs } from './guests/idmap.ts';

test('apt sources: deb822 and one-line formats; the mirror is the source serving bookworm main', () => {
  const deb822 = `Types: deb
# a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://off.example/debian
Suites: bookworm
Components: main
Enabled: no
`;
  const s = parseAptSources(deb822);
  assert.deepEqual(s.map((x) => x.uri), ['http://mirror.example/debian', 'http://mirror.example/debian-security']);
  assert.equal(pickMirror(s, 'bookworm'), 'http://mirror.example/debian');
  assert.equal(pickMirror(s, 'trixie'), undefined);

  const oneLine = `# deb http://commented.example/debian bookworm main
deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main contrib
deb http://one.example/debian-security bookworm-security main
deb-src http://one.example/debian bookworm main
deb https://packages.example/apt cloud-sdk-bookworm main
`;
  const o = parseAptSources(oneLine);
  assert.deepEqual(o.map((x) => `${x.uri} ${x.suites.join(',')}`), [
    'http://one.example/debian bookworm', 'http://one.example/debian-security bookworm-security', 'https://packages.example/apt cloud-sdk-bookworm',
  ]);
  assert.equal(pickMirror(o), 'http://one.example/debian');
  assert.equal(pickMirror(parseAptSources('deb http://x.example/debian bookworm contrib\n')), undefined, 'main is required');
});

test('id maps: Proxmox default and passthrough, lxc/usernsexec forms, subuid lines', () => {
  assert.equal(toHost(PROXMOX_IDMAP, 'u', 0), 100000);
  assert.equal(toHost(PROXMOX_IDMAP, 'u', 1000), 101000);
  assert.equal(toHost(PROXMOX_IDMAP, 'g', 65535), 165535);
  assert.equal(toHost(PROXMOX_IDMAP, 'u', 65536), undefined);
  assert.deepEqual(lxcIdmapLines(PROXMOX_IDMAP), ['lxc.idmap = u 0 100000 65536', 'lxc.idmap = g 0 100000 65536']);
  assert.deepEqual(usernsexecArgs(PROXMOX_IDMAP), ['-m', 'u:0:100000:65536', '-m', 'g:0:100000:65536']);

  const pt = passthroughIdmap(1000);
  assert.deepEqual(lxcIdmapLines(pt), [
    'lxc.idmap = u 0 100000 1000', 'lxc.idmap = u 1000 1000 1', 'lxc.idmap = u 1001 101001 64535',
    'lxc.idmap = g 0 100000 1000', 'lxc.idmap = g 1000 1000 1', 'lxc.idmap = g 1001 101001 64535',
  ]);
  assert.equal(toHost(pt, 'u', 1000), 1000);
  assert.equal(toHost(pt, 'u', 999), 100999);
  assert.equal(toHost(pt, 'u', 1001), 101001);
  assert.deepEqual(subidLines(pt, 'u'), ['root:100000:1000', 'root:1000:1', 'root:101001:64535']);

  // Only what no existing range of root covers is missing; other users' lines do not count.
  const subuid = 'root:100000:65536\nalice:1000:1\n';
  assert.deepEqual(missingSubids(subuid, subidLines(pt, 'u')), ['root:1000:1']);
  assert.deepEqual(missingSubids(subuid, subidLines(PROXMOX_IDMAP, 'u')), []);
  assert.deepEqual(missingSubids('', ['root:100000:65536']), ['root:100000:65536']);
  assert.deepEqual(missingSubids('root:100000:1000\n', ['root:100000:65536']), ['root:100000:65536'], 'a shorter range does not cover');
});
