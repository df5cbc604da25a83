/**
 * Signing in to the web UI as to Proxmox VE's own GUI: user, password and realm go to the node's PVE
 * API (POST /access/ticket, which checks them, two-factor and realm included), and its ticket comes
 * back as the same PVEAuthCookie cookie PVE's GUI uses (cookies are per host, not per port: a PVE
 * GUI session on this host is a session here, and the other way round), with the CSRF prevention
 * token for writes. The ticket's lifetime is PVE's (2 hours; the page renews it as PVE's GUI does,
 * by posting the ticket as the password). Off Proxmox VE there is no PVE to ask: the gateway's own
 * API tokens sign in instead.
 *
 * GET /access/smbgateway/session answers who the cookie (or token) belongs to, and for a ticket
 * the CSRF prevention token PVE would have handed out with it, so an admin already signed in to
 * PVE is not asked again. Its answer is JSON on this origin only (no CORS), unreadable to other sites.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GatewayError, invalid } from '../core/errors.ts';
import { pveGetJson, type Authenticator, type Credentials } from './auth.ts';
import { parseBody, readBody, send } from './http.ts';

export const TICKET_PATH = '/api2/json/access/ticket';
export const SESSION_PATH = '/api2/json/access/smbgateway/session';
/** PVE's ticket lifetime (seconds). */
export const TICKET_LIFETIME = 7200;

const USER_RE = /^[^\s:/@]{1,64}(@[A-Za-z][A-Za-z0-9.\-_]{0,31})?$/;
const REALM_RE = /^[A-Za-z][A-Za-z0-9.\-_]{0,31}$/;

function str(v: unknown, field: string, max: number): string {
  if (typeof v !== 'string' || v === '') throw invalid(field, 'required');
  if (v.length > max) throw invalid(field, `at most ${max} characters`);
  if (/[\0-\x1f]/.test(v)) throw invalid(field, 'must not contain control characters');
  return v;
}

/** The ticket cookie as PVE's GUI sets it (readable by the page, which clears it on logout as PVE's does). */
export function ticketCookie(ticket: string): string {
  return `PVEAuthCookie=${encodeURIComponent(ticket)}; Path=/; Secure; SameSite=Lax`;
}

/**
 * Answers the sign-in requests (true), or leaves the request to the API (false). Neither needs
 * credentials beforehand: POST /access/ticket checks them with PVE, the session request is
 * answered 401 without them.
 */
export async function handleLogin(req: IncomingMessage, res: ServerResponse, pathname: string, method: string, auth: Authenticator, cred: Credentials, maxBody: number): Promise<boolean> {
  if (pathname === TICKET_PATH && method === 'POST') {
    if (!auth.pve) throw new GatewayError('unavailable', 'username: signing in with a Proxmox VE user needs a Proxmox VE node; here, sign in with a gateway API token (pve-smbgateway token create)', 'username');
    const p = parseBody(req, await readBody(req, maxBody));
    let username = str(p.username, 'username', 100);
    const password = str(p.password, 'password', 4096);
    let realm = p.realm === undefined || p.realm === '' ? undefined : str(p.realm, 'realm', 32);
    if (realm !== undefined && !REALM_RE.test(realm)) throw invalid('realm', 'must be a realm name such as pam or pve');
    if (!USER_RE.test(username)) throw invalid('username', 'must be a user name, optionally with @realm');
    if (realm && !username.includes('@')) { username = `${username}@${realm}`; realm = undefined; }
    const form = new URLSearchParams({ username, password, ...(realm ? { realm } : {}) }).toString();
    let r: { status: number; body: unknown };
    try {
      r = await pveGetJson(auth.pve, TICKET_PATH, {}, 15_000, form);
    } catch (e) {
      throw new GatewayError('unreachable', `cannot reach the Proxmox VE API to sign in: ${(e as Error).message}`);
    }
    if (r.status === 401) throw new GatewayError('unauthorized', 'authentication failure: user name, password or realm not accepted by Proxmox VE');
    const d = (r.body as { data?: { ticket?: string; CSRFPreventionToken?: string; username?: string } } | undefined)?.data;
    if (r.status !== 200 || !d?.ticket || !d.CSRFPreventionToken) throw new GatewayError('unreachable', `signing in with the Proxmox VE API failed: HTTP ${r.status}`);
    res.setHeader('set-cookie', ticketCookie(d.ticket));
    res.setHeader('cache-control', 'no-store');
    send(res, 200, { data: { username: d.username ?? username, ticket: d.ticket, CSRFPreventionToken: d.CSRFPreventionToken, lifetime: TICKET_LIFETIME } });
    return true;
  }
  if (pathname === SESSION_PATH && method === 'GET') {
    const caller = await auth.identify(cred, 'GET', '/storage');
    res.setHeader('cache-control', 'no-store');
    send(res, 200, {
      data: {
        username: caller.userid,
        via: caller.via,
        ...(caller.via === 'pve-ticket' ? { CSRFPreventionToken: auth.csrfFor(caller.userid), lifetime: TICKET_LIFETIME } : {}),
      },
    });
    return true;
  }
  return false;
}
