/**
 * Lets a guest reach Debian's package mirror the way this host does, and nothing else: a listener on
 * the guest network's bridge address (inside the test's namespace) hands each connection through a
 * unix socket to this process, which connects it to the mirror host's port 80, the one this machine's
 * apt uses. The guest's apt names it as its HTTP proxy (`Acquire::http::Proxy`), so requests keep
 * their mirror URL and Host. Only that one host:port is ever dialled.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createConnection, createServer } from 'node:net';
import { rm } from 'node:fs/promises';
import { uid, waitFor } from './common.ts';
import type { GuestNetwork } from './netns.ts';

export interface AptRelay { proxy: string; requests: () => number; stop: () => Promise<void> }

// The namespace side: TCP listener -> unix socket (run with `ip netns exec`).
const INSIDE = `
const net = require('node:net');
const [host, port, sock] = process.argv.slice(1);
net.createServer((c) => { const u = net.connect(sock); c.pipe(u).pipe(c); c.on('error', () => u.destroy()); u.on('error', () => c.destroy()); })
  .listen(Number(port), host, () => process.stdout.write('ready\\n'));
`;

export async function startAptRelay(net: GuestNetwork, mirrorUri: string, port = 3142): Promise<AptRelay> {
  const u = new URL(mirrorUri);
  if (u.protocol !== 'http:') throw new Error(`apt relay: ${mirrorUri}: only http:// mirrors (as apt uses them here)`);
  const target = { host: u.hostname, port: Number(u.port || 80) };
  const sock = `/tmp/smbgw-aptrelay-${uid()}.sock`;
  let count = 0;
  const open = new Set<import('node:net').Socket>();
  const server = createServer((c) => {
    count++;
    open.add(c);
    c.on('close', () => open.delete(c));
    const m = createConnection(target);
    c.pipe(m).pipe(c);
    c.on('error', () => m.destroy());
    m.on('error', () => c.destroy());
  });
  server.listen(sock);
  await once(server, 'listening');
  const child = spawn('ip', ['netns', 'exec', net.ns, process.execPath, '-e', INSIDE, net.hostIp, String(port), sock], { stdio: ['ignore', 'pipe', 'inherit'] });
  let ready = false;
  child.stdout.on('data', (d: Buffer) => { if (d.toString().includes('ready')) ready = true; });
  try {
    await waitFor('apt relay listener', async () => ready || child.exitCode !== null, 10_000);
    if (!ready) throw new Error(`apt relay listener exited with ${child.exitCode}`);
  } catch (e) {
    child.kill();
    server.close();
    throw e;
  }
  return {
    proxy: `http://${net.hostIp}:${port}/`,
    requests: () => count,
    stop: async () => {
      if (child.exitCode === null) { child.kill(); await once(child, 'exit').catch(() => undefined); }
      for (const c of open) c.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      await rm(sock, { force: true });
    },
  };
}
