/**
 * TLS to a node pinned by its certificate's SHA-256 fingerprint, as Proxmox's own clients do: one
 * helper for the PVE API client and for relaying to another node's daemon.
 */
import { X509Certificate } from 'node:crypto';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { GatewayError } from '../core/errors.ts';

/** Normalise a fingerprint to upper-case colon-separated hex (as `pvenode cert info` prints it). */
export function normFingerprint(fp: string): string {
  const hex = fp.replace(/[^0-9a-fA-F]/g, '').toUpperCase();
  if (hex.length !== 64) throw new GatewayError('invalid', 'pve_fingerprint: must be a SHA-256 fingerprint (64 hex digits, colons allowed)', 'pve_fingerprint');
  return hex.match(/../g)!.join(':');
}

export function fingerprintOf(pem: string | Buffer): string {
  return new X509Certificate(pem).fingerprint256;
}

/** A socket that is only handed over once the peer's certificate matched the pin (or, without one, the system CAs vouched for it). */
export function pinnedSocket(host: string, port: number, fingerprint: string | undefined, timeoutMs: number, what: string): Promise<TLSSocket> {
  const want = fingerprint ? normFingerprint(fingerprint) : undefined;
  return new Promise((resolve, reject) => {
    const sock = tlsConnect({ host, port, servername: /^[\d.]+$|:/.test(host) ? undefined : host, rejectUnauthorized: !want, ALPNProtocols: ['http/1.1'] });
    const timer = setTimeout(() => { sock.destroy(); reject(new GatewayError('failed', `${what}: no TLS connection to ${host}:${port} within ${timeoutMs} ms`)); }, timeoutMs);
    sock.once('error', (e) => { clearTimeout(timer); reject(new GatewayError('failed', `${what}: cannot connect to ${host}:${port}: ${e.message}`)); });
    sock.once('secureConnect', () => {
      clearTimeout(timer);
      if (want) {
        const got = sock.getPeerCertificate()?.fingerprint256 ?? '';
        if (got.toUpperCase() !== want) {
          sock.destroy();
          reject(new GatewayError('forbidden', `${what}: the certificate of ${host}:${port} has fingerprint ${got || '(none)'}, not the pinned ${want}: refusing to talk to it`));
          return;
        }
      }
      resolve(sock);
    });
  });
}
