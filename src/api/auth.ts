/**
 * Who is calling, and may they? No anonymous access.
 * - The gateway's own API tokens (`PVEAPIToken=smbgateway!<name>=<secret>`, see tokens.ts) carry a
 *   list of privileges, valid on every path.
 * - On a Proxmox VE node, a PVE ticket (cookie PVEAuthCookie, plus the CSRFPreventionToken header on
 *   writes) or a PVE API token (`PVEAPIToken=user@realm!name=secret`) is checked by asking the local
 *   PVE API for the caller's own effective privileges on an ACL path
 *   (GET /api2/json/access/permissions?path=...), with the caller's credentials: PVE answers 401 for
 *   bad credentials, else the privileges. `identify` needs nothing but the credentials; `authorize`
 *   then asks about each path the operation needs (all of its Privileges, each any of its privs).
 *   The CSRF token is verified here, with PVE's algorithm and key (/etc/pve/priv/pve-www.key), since
 *   PVE checks it only on its own write requests.
 * Answers are cached for a few seconds per credential and path.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { GatewayError } from '../core/errors.ts';
import type { Privilege } from '../core/operation.ts';
import { TOKEN_PREFIX, type TokenStore } from './tokens.ts';

export interface PveAuthConfig {
  /** Base URL of the local PVE API, e.g. https://localhost:8006 */
  url: string;
  /** CA that signed PVE's certificate (/etc/pve/pve-root-ca.pem); the host name is not checked on loopback. */
  ca?: string | Buffer;
  /** PVE's CSRF key file (/etc/pve/priv/pve-www.key). */
  wwwKeyFile: string;
}

export interface Caller {
  userid: string;
  via: 'gateway-token' | 'pve-ticket' | 'pve-token';
  /** Privileges the caller holds on the path asked about when identified (gateway tokens: everywhere). */
  privs: string[];
}

export interface Credentials { authorization?: string; cookie?: string; csrf?: string }

const b64 = (b: Buffer) => b.toString('base64').replace(/=+$/, '');

/** PVE's CSRF prevention token for a user at a time (epoch seconds). */
export function pveCsrfToken(wwwKey: string, username: string, time: number): string {
  const secret = b64(createHmac('sha256', '').update(wwwKey).digest());
  const ts = time.toString(16).toUpperCase().padStart(8, '0');
  return `${ts}:${b64(createHmac('sha256', secret).update(`${ts}:${username}`).digest())}`;
}

export function verifyPveCsrf(wwwKey: string, username: string, token: string, now = Math.floor(Date.now() / 1000)): boolean {
  const m = /^([A-Z0-9]{8}):(\S+)$/.exec(token);
  if (!m) return false;
  const ts = parseInt(m[1]!, 16);
  const want = pveCsrfToken(wwwKey, username, ts).split(':')[1]!;
  const a = Buffer.from(want);
  const b = Buffer.from(m[2]!);
  const age = now - ts;
  return a.length === b.length && timingSafeEqual(a, b) && age > -300 && age < 7200;
}

/** The user of a PVE ticket (PVE:<user@realm>:<hex time>::<signature>). */
export function ticketUser(ticket: string): string | undefined {
  const f = ticket.split(':');
  return f[0] === 'PVE' && f[1] && /^[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+$/.test(f[1]) ? f[1] : undefined;
}

export function parseCookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) {
      try { return decodeURIComponent(part.slice(i + 1).trim()); } catch { return undefined; }
    }
  }
  return undefined;
}

/** "PVEAPIToken=<id>=<secret>" (Proxmox) or "PVEAPIToken <id>=<secret>" (Prometheus' authorization type). */
export function parseTokenHeader(h: string): { id: string; secret: string } | undefined {
  const m = /^PVEAPIToken[= ](\S+)$/.exec(h.trim());
  if (!m) return undefined;
  const v = m[1]!;
  const i = v.lastIndexOf('=');
  if (i <= 0 || i === v.length - 1) return undefined;
  return { id: v.slice(0, i), secret: v.slice(i + 1) };
}

export function pveGetJson(cfg: Pick<PveAuthConfig, 'url' | 'ca'>, path: string, headers: Record<string, string>, timeoutMs = 10_000, post?: string): Promise<{ status: number; body: unknown }> {
  const u = new URL(path, cfg.url);
  return new Promise((res, rej) => {
    const req = request(u, {
      method: post === undefined ? 'GET' : 'POST',
      headers: { accept: 'application/json', ...(post === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(Buffer.byteLength(post)) }), ...headers },
      timeout: timeoutMs,
      ca: cfg.ca, rejectUnauthorized: true,
      // PVE's node certificate names the node; on loopback the chain is what matters.
      checkServerIdentity: () => undefined,
    }, (r) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown;
        try { body = JSON.parse(text); } catch { body = text; }
        res({ status: r.statusCode ?? 0, body });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${u.origin} within ${timeoutMs} ms`)));
    req.on('error', rej);
    req.end(post);
  });
}

interface CacheEntry { expires: number; caller: Caller }

export class Authenticator {
  private readonly cache = new Map<string, CacheEntry>();
  /** The credentials a PVE caller was identified with, to ask PVE about further paths (never exposed). */
  private readonly pveCreds = new WeakMap<Caller, Record<string, string>>();
  private wwwKey: string | undefined;
  constructor(private readonly tokens: TokenStore, readonly pve?: PveAuthConfig, private readonly ttlMs = 10_000) {}

  private key(...parts: string[]): string {
    return createHash('sha256').update(parts.join('\0')).digest('hex');
  }

  private cached(k: string): Caller | undefined {
    const e = this.cache.get(k);
    if (e && e.expires > Date.now()) return e.caller;
    if (e) this.cache.delete(k);
    return undefined;
  }

  private remember(k: string, caller: Caller): Caller {
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(k, { expires: Date.now() + this.ttlMs, caller });
    return caller;
  }

  /** The caller, if the credentials are valid and hold one of the privileges asked for. */
  async check(cred: Credentials, method: string, privilege: Privilege): Promise<Caller> {
    const caller = await this.identify(cred, method, privilege.path);
    await this.authorize(caller, [privilege]);
    return caller;
  }

  /** The privileges the caller holds on an ACL path (gateway tokens: theirs, on every path). */
  async privilegesOn(caller: Caller, aclPath: string): Promise<string[]> {
    if (caller.via === 'gateway-token') return caller.privs;
    const headers = this.pveCreds.get(caller);
    if (!headers) throw new GatewayError('unauthorized', 'authentication failure: caller not identified by this daemon');
    return (await this.viaPve(caller.via, caller.userid, headers, aclPath)).privs;
  }

  /** Every one of the privileges must hold (each: any of its privs on its path), else 403 naming the first missing. */
  async authorize(caller: Caller, required: readonly Privilege[]): Promise<void> {
    for (const p of required) {
      if (p.pveUser && caller.via !== 'gateway-token' && caller.userid !== p.pveUser) {
        throw new GatewayError('forbidden', `Permission check failed (only ${p.pveUser} may do this with Proxmox VE credentials; an API token is not ${p.pveUser})`);
      }
      if (!p.privs.length) continue;
      const held = await this.privilegesOn(caller, p.path);
      if (!p.privs.some((x) => held.includes(x))) throw new GatewayError('forbidden', `Permission check failed (${p.path}, ${p.privs.join('|')})`);
    }
  }

  /**
   * Who is calling: 401 unless the credentials are valid (PVE checks its own credentials when asked
   * for their privileges on aclPath, which this answer then carries). Nothing of the request body is needed.
   */
  async identify(cred: Credentials, method: string, aclPath = '/'): Promise<Caller> {
    if (cred.authorization) {
      const t = parseTokenHeader(cred.authorization);
      if (!t) throw new GatewayError('unauthorized', 'authentication failure: unsupported Authorization header (use PVEAPIToken=<tokenid>=<secret>)');
      if (t.id.startsWith(TOKEN_PREFIX) && !t.id.includes('@')) {
        const k = this.key('gw', t.id, t.secret);
        const hit = this.cached(k);
        if (hit) return hit;
        const entry = await this.tokens.verify(t.id.slice(TOKEN_PREFIX.length), t.secret);
        if (!entry) throw new GatewayError('unauthorized', 'authentication failure: invalid or expired token');
        // Valid for a short while only: a deleted token stops working within the cache's lifetime.
        return this.remember(k, { userid: t.id, via: 'gateway-token', privs: entry.privs });
      }
      if (!this.pve) throw new GatewayError('unauthorized', 'authentication failure: Proxmox VE tokens are checked on Proxmox VE nodes only; use a gateway token (pve-smbgateway token create)');
      return this.viaPve('pve-token', t.id, { authorization: `PVEAPIToken=${t.id}=${t.secret}` }, aclPath);
    }
    const ticket = parseCookie(cred.cookie, 'PVEAuthCookie');
    if (ticket) {
      if (!this.pve) throw new GatewayError('unauthorized', 'authentication failure: Proxmox VE tickets are checked on Proxmox VE nodes only');
      const user = ticketUser(ticket);
      if (!user) throw new GatewayError('unauthorized', 'authentication failure: malformed ticket');
      if (method !== 'GET' && method !== 'HEAD') {
        if (!cred.csrf || !verifyPveCsrf(this.csrfKey(), user, cred.csrf)) throw new GatewayError('unauthorized', 'Permission check failed (invalid csrf token)');
      }
      return this.viaPve('pve-ticket', user, { cookie: `PVEAuthCookie=${encodeURIComponent(ticket)}` }, aclPath);
    }
    throw new GatewayError('unauthorized', 'authentication failure: no credentials (send a PVE ticket cookie or an Authorization: PVEAPIToken header)');
  }

  /** A CSRF prevention token for a PVE user (what PVE's POST /access/ticket hands out with a ticket). */
  csrfFor(user: string, now = Math.floor(Date.now() / 1000)): string {
    return pveCsrfToken(this.csrfKey(), user, now);
  }

  private csrfKey(): string {
    if (this.wwwKey === undefined) {
      try { this.wwwKey = readFileSync(this.pve!.wwwKeyFile, 'utf8'); } catch {
        throw new GatewayError('unreachable', `cannot verify CSRF tokens: ${this.pve!.wwwKeyFile} is not readable`);
      }
    }
    return this.wwwKey;
  }

  private async viaPve(via: Caller['via'], userid: string, headers: Record<string, string>, aclPath: string): Promise<Caller> {
    const k = this.key(via, JSON.stringify(headers), aclPath);
    const hit = this.cached(k);
    if (hit) return hit;
    let r: { status: number; body: unknown };
    try {
      r = await pveGetJson(this.pve!, `/api2/json/access/permissions?path=${encodeURIComponent(aclPath)}`, headers);
    } catch (e) {
      throw new GatewayError('unreachable', `cannot verify credentials with the Proxmox VE API: ${(e as Error).message}`);
    }
    if (r.status === 401) throw new GatewayError('unauthorized', 'authentication failure (rejected by the Proxmox VE API)');
    if (r.status !== 200) throw new GatewayError('unreachable', `cannot verify credentials with the Proxmox VE API: HTTP ${r.status}`);
    const data = ((r.body as { data?: Record<string, Record<string, unknown>> }).data ?? {});
    const privs = Object.keys(data[aclPath] ?? {});
    const caller = this.remember(k, { userid, via, privs });
    this.pveCreds.set(caller, headers);
    return caller;
  }
}
