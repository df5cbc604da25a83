/** Relaying a request for another cluster node to that node's daemon, over TLS pinned to its certificate. */
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Peer } from '../pve/cluster.ts';
import { pinnedSocket } from '../pve/tls.ts';

/**
 * Relay a request to another node's daemon: the host and port are the peer entry's, the target is
 * `target` (built by the caller from the routed path and the query string, never the request's own).
 */
export async function forward(req: IncomingMessage, res: ServerResponse, peer: Peer, target: string, body: Buffer, from: string): Promise<void> {
  const u = new URL(peer.url);
  const sock = await pinnedSocket(u.hostname.replace(/^\[|\]$/g, ''), Number(u.port || 443), peer.fingerprint, 10_000, `node daemon at ${u.host}`);
  const headers: Record<string, string> = { 'x-smbgateway-forwarded-by': from, 'content-length': String(body.length) };
  for (const h of ['authorization', 'cookie', 'csrfpreventiontoken', 'content-type', 'accept']) {
    const v = req.headers[h];
    if (typeof v === 'string') headers[h] = v;
  }
  await new Promise<void>((resolve, reject) => {
    // Plain HTTP framing over the TLS socket verified above (an https agent would verify on its own).
    const r = httpRequest({ host: u.hostname, port: u.port, path: target, method: req.method, headers: { ...headers, host: u.host }, createConnection: () => sock }, (pr) => {
      res.statusCode = pr.statusCode ?? 502;
      if (pr.statusMessage) res.statusMessage = pr.statusMessage;
      for (const [k, v] of Object.entries(pr.headers)) if (v !== undefined && !['connection', 'transfer-encoding'].includes(k)) res.setHeader(k, v);
      pr.pipe(res);
      pr.on('end', resolve);
      pr.on('error', reject);
    });
    r.on('error', reject);
    r.end(body);
  });
}
