/**
 * The Proxmox VE connection of this host, from the settings: `pvesh` as root on the node (default on a
 * node; needed for lxc mode's bind mounts), or the HTTPS API with a token or a ticket login. Secrets are
 * read from 0600 files, never from argv or the settings file itself.
 */
import { readFileSync, statSync } from 'node:fs';
import { GatewayError } from '../core/errors.ts';
import type { Runner } from '../core/exec.ts';
import type { Settings } from '../core/settings.ts';
import { PveApi } from './api.ts';
import { ApiTransport, parseTokenLine, PveClient, PveshTransport, type Auth } from './client.ts';

function readSecretFile(file: string, field: string): string {
  let st;
  try { st = statSync(file); } catch { throw new GatewayError('invalid', `${field}: cannot read ${file}`, field); }
  if (st.mode & 0o077) throw new GatewayError('invalid', `${field}: ${file} must not be readable by group or others (chmod 600)`, field);
  return readFileSync(file, 'utf8').split('\n')[0]!.trim();
}

export function pveAuth(s: Settings): Auth {
  if (s.pveTokenFile) return { kind: 'token', ...parseTokenLine(readSecretFile(s.pveTokenFile, 'pve_token_file')) };
  if (s.pveUser && s.pvePasswordFile) return { kind: 'ticket', username: s.pveUser, password: readSecretFile(s.pvePasswordFile, 'pve_password_file') };
  throw new GatewayError('invalid', 'pve_token_file: the api transport needs pve_token_file, or pve_user with pve_password_file', 'pve_token_file');
}

export function pveClient(s: Settings, run: Runner): PveClient {
  const transport = s.pveTransport ?? (s.pveApi ? 'api' : 'pvesh');
  if (transport === 'pvesh') return new PveClient(new PveshTransport(run));
  if (!s.pveApi) throw new GatewayError('invalid', 'pve_api: the api transport needs the URL of a node (https://host:8006)', 'pve_api');
  return new PveClient(new ApiTransport({ url: s.pveApi, fingerprint: s.pveFingerprint, auth: pveAuth(s) }));
}

export function pveApi(s: Settings, run: Runner): PveApi {
  const t = (s.pveTaskTimeout ?? 600) * 1000;
  return new PveApi(pveClient(s, run), { timeoutMs: t });
}
