/** The daemon's TLS certificate: the node's own on Proxmox VE, else one made once with openssl. */
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Runner } from '../core/exec.ts';
import type { Settings } from '../core/settings.ts';

/**
 * The node's certificate where there is one (/etc/pve/local/pveproxy-ssl.pem, else pve-ssl.pem),
 * else a self-signed one made once in <state>/tls/.
 */
export async function nodeCertificate(settings: Settings, run: Runner, override?: { cert?: string; key?: string }): Promise<{ cert: Buffer; key: Buffer; source: string }> {
  const pairs: [string, string][] = [];
  if (override?.cert && override.key) pairs.push([override.cert, override.key]);
  pairs.push(['/etc/pve/local/pveproxy-ssl.pem', '/etc/pve/local/pveproxy-ssl.key'], ['/etc/pve/local/pve-ssl.pem', '/etc/pve/local/pve-ssl.key']);
  for (const [c, k] of pairs) {
    if (existsSync(c) && existsSync(k)) return { cert: await readFile(c), key: await readFile(k), source: c };
  }
  const dir = join(settings.stateDir, 'tls');
  const c = join(dir, 'smbgatewayd.pem');
  const k = join(dir, 'smbgatewayd.key');
  if (!existsSync(c) || !existsSync(k)) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await run('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '3650',
      '-subj', `/CN=${settings.node}`, '-addext', `subjectAltName=DNS:${settings.node},DNS:localhost,IP:127.0.0.1,IP:::1`,
      '-keyout', k, '-out', c,
    ], { env: { OPENSSL_CONF: '/dev/null' } }).catch(async () => {
      // An openssl without -addext support or config: plain self-signed certificate.
      await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '3650', '-subj', `/CN=${settings.node}`, '-keyout', k, '-out', c]);
    });
  }
  return { cert: await readFile(c), key: await readFile(k), source: c };
}
