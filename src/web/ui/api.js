// Calls to the gateway's API, signed in as a Proxmox VE session does (PVEAuthCookie + CSRF token on
// writes) or with a gateway API token (Authorization header, kept for this tab only).
export const API = '/api2/json';
export const node = document.querySelector('meta[name="smbgw-node"]').content;
export const authKind = document.querySelector('meta[name="smbgw-auth"]').content; // 'pve' | 'token'
export const nodePath = `/nodes/${encodeURIComponent(node)}`;

const session = { token: sessionStorage.getItem('smbgw-token') || '', csrf: '', username: '', renew: 0 };
let onExpired = () => undefined;
export const setOnExpired = (f) => { onExpired = f; };
export const whoami = () => session.username;

export class ApiError extends Error {
  constructor(message, status, errors) { super(message); this.status = status; this.errors = errors || {}; }
}

export async function api(method, path, body) {
  const headers = {};
  if (session.token) headers.Authorization = session.token;
  else if (session.csrf && method !== 'GET') headers.CSRFPreventionToken = session.csrf;
  const opts = { method, headers, credentials: 'same-origin' };
  if (body !== undefined) { headers['Content-Type'] = 'application/json'; opts.body = JSON.stringify(body); }
  const res = await fetch(API + path, opts);
  let j = {};
  try { j = await res.json(); } catch { /* not JSON */ }
  if (!res.ok) {
    const err = new ApiError(j.message || `${res.status} ${res.statusText}`, res.status, j.errors);
    if (res.status === 401 && session.username && !path.startsWith('/access/')) { signOutLocally(); onExpired('Your session has expired: sign in again.'); }
    throw err;
  }
  return j.data;
}

export const ticketCookie = () => /(?:^|;\s*)PVEAuthCookie=([^;]+)/.exec(document.cookie)?.[1];

function clearTicketCookie() {
  document.cookie = 'PVEAuthCookie=; Path=/; Max-Age=0; Secure; SameSite=Lax';
}

function signOutLocally() {
  clearInterval(session.renew);
  session.token = ''; session.csrf = ''; session.username = '';
  sessionStorage.removeItem('smbgw-token');
}

/** An existing session: a PVE ticket cookie (also from PVE's own GUI on this host) or this tab's token. */
export async function resume() {
  if (!session.token && !ticketCookie()) return false;
  try {
    const s = await api('GET', '/access/smbgateway/session');
    session.username = s.username;
    if (s.CSRFPreventionToken) { session.csrf = s.CSRFPreventionToken; startRenewal(); }
    return true;
  } catch {
    signOutLocally();
    return false;
  }
}

export async function loginPve(username, password, realm) {
  const d = await api('POST', '/access/ticket', { username, password, realm });
  session.token = ''; session.csrf = d.CSRFPreventionToken; session.username = d.username;
  startRenewal();
}

export async function loginToken(token) {
  session.token = token;
  try {
    const s = await api('GET', '/access/smbgateway/session');
    session.username = s.username;
    sessionStorage.setItem('smbgw-token', token);
  } catch (e) { session.token = ''; throw e; }
}

// As PVE's GUI: the ticket (2 h) is renewed every 15 minutes by posting it as the password.
function startRenewal() {
  clearInterval(session.renew);
  session.renew = setInterval(async () => {
    const t = ticketCookie();
    if (!t) return;
    try {
      const d = await api('POST', '/access/ticket', { username: session.username, password: decodeURIComponent(t) });
      session.csrf = d.CSRFPreventionToken;
    } catch { /* the next call answers 401 and asks to sign in */ }
  }, 15 * 60 * 1000);
}

export function logout() {
  signOutLocally();
  clearTicketCookie();
}

/** Follow a task's log until it ends; returns its status. */
export async function waitTask(upid, onLine = () => undefined) {
  const base = `${nodePath}/tasks/${encodeURIComponent(upid)}`;
  let seen = 0;
  for (;;) {
    const st = await api('GET', `${base}/status`);
    const log = await api('GET', `${base}/log?start=${seen}&limit=500`);
    for (const l of log) { onLine(l.t); seen = Math.max(seen, l.n); }
    if (st.status !== 'running') return st;
    await new Promise((r) => setTimeout(r, 250));
  }
}

let openapi;
export async function openApi() {
  openapi ??= await api('GET', '/smbgateway/openapi');
  return openapi;
}
