/**
 * The web wizard's static files, served by the daemon at / (no data without credentials: every
 * call the page makes goes to the API with the token the user gives). The node name is put into
 * the page so that it knows its API paths.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StaticAsset } from '../api/server.ts';

// From src/web/ (tsx) or dist/src/web/ (compiled): the assets stay in the source tree.
const DIR = existsSync(join(import.meta.dirname, 'assets')) ? join(import.meta.dirname, 'assets') : join(import.meta.dirname, '../../../src/web/assets');
const FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/ui/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/ui/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};
const cache = new Map<string, Buffer>();


const escapeAttr = (s: string) => s.replace(/[&"<>]/g, (c) => `&#${c.charCodeAt(0)};`);

/** The asset for a GET of `pathname`, or undefined when it is not one of the wizard's. */
export function webAsset(pathname: string, node: string): StaticAsset | undefined {
  const f = FILES[pathname];
  if (!f) return undefined;
  let body = cache.get(f.file);
  if (!body) { body = readFileSync(join(DIR, f.file)); cache.set(f.file, body); }
  if (f.file === 'index.html') body = Buffer.from(body.toString('utf8').replace('__NODE__', escapeAttr(node)));
  return {
    type: f.type,
    body,
    headers: {
      'content-security-policy': "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
      'x-content-type-options': 'nosniff',
      'cache-control': 'no-cache',
    },
  };
}
