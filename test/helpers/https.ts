/** A small HTTPS client for the API tests (the daemon's certificate as the only CA). */
import { request } from 'node:https';

export interface Reply { status: number; headers: Record<string, string | string[] | undefined>; text: string; json?: any }

export function call(base: string, ca: string | Buffer | undefined, method: string, path: string, o: { headers?: Record<string, string>; body?: unknown; form?: string } = {}): Promise<Reply> {
  const u = new URL(path, base);
  const body = o.form ?? (o.body === undefined ? undefined : JSON.stringify(o.body));
  const headers: Record<string, string> = { ...(o.headers ?? {}) };
  if (body !== undefined) headers['content-type'] ??= o.form !== undefined ? 'application/x-www-form-urlencoded' : 'application/json';
  return new Promise((res, rej) => {
    const r = request(u, { method, headers, ca, rejectUnauthorized: ca !== undefined, timeout: 30_000 }, (resp) => {
      let text = '';
      resp.setEncoding('utf8');
      resp.on('data', (d) => (text += d));
      resp.on('end', () => {
        let json: unknown;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        res({ status: resp.statusCode ?? 0, headers: resp.headers, text, json });
      });
    });
    r.on('error', rej);
    r.end(body);
  });
}
