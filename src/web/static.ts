/**
 * The web UI's files, served by the daemon at / (no data without credentials: every call the page
 * makes goes to the API, signed in with a Proxmox VE ticket or a gateway token). The page's modules
 * (src/web/ui/*.js) and uPlot (from npm) are bundled into one script and one stylesheet, served from
 * this host only: no CDN, no network. From the source tree they are bundled with esbuild when first
 * asked for (and kept); a package ships them prebuilt (`npm run build:web` writes dist/web/).
 * The node name, the sign-in kind (PVE users or gateway tokens) and which options each mode takes
 * are put into the page, so that it knows them before signing in.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { MODE_OPTIONS } from '../core/share.ts';
import type { AssetContext, StaticAsset } from '../api/server.ts';

// From src/web/ (tsx) or dist/src/web/ (compiled): the sources stay in the source tree.
const SRC = existsSync(join(import.meta.dirname, 'ui')) ? import.meta.dirname : join(import.meta.dirname, '../../../src/web');
const ROOT = join(SRC, '../..');
const PREBUILT = join(ROOT, 'dist/web');

export interface Bundle { js: Buffer; css: Buffer; html: string }

let bundle: Bundle | undefined;

/** Bundle the page with esbuild (minified ES module + CSS). */
export function buildBundle(): { js: Buffer; css: Buffer } {
  const require = createRequire(import.meta.url);
  const esbuild = require('esbuild') as typeof import('esbuild');
  const r = esbuild.buildSync({
    entryPoints: [join(SRC, 'ui/main.js')], bundle: true, minify: true, format: 'esm', target: 'es2022',
    write: false, outdir: '/out', absWorkingDir: ROOT, logLevel: 'silent', legalComments: 'none',
  });
  const js = r.outputFiles.find((f) => f.path.endsWith('.js'));
  const css = r.outputFiles.find((f) => f.path.endsWith('.css'));
  if (!js || !css) throw new Error('web UI bundle: esbuild gave no script or stylesheet');
  return { js: Buffer.from(js.contents), css: Buffer.from(css.contents) };
}

function load(): Bundle {
  if (bundle) return bundle;
  const html = readFileSync(join(SRC, 'ui/index.html'), 'utf8');
  let built: { js: Buffer; css: Buffer };
  if (existsSync(join(SRC, 'ui/main.js')) && !process.env.SMBGW_WEB_PREBUILT) {
    built = buildBundle();
  } else {
    // A package ships the bundle beside index.html; a checkout has it in dist/web after `npm run build:web`.
    const dir = existsSync(join(SRC, 'ui/app.js')) ? join(SRC, 'ui') : PREBUILT;
    built = { js: readFileSync(join(dir, 'app.js')), css: readFileSync(join(dir, 'app.css')) };
  }
  bundle = { ...built, html };
  return bundle;
}

const escapeAttr = (s: string) => s.replace(/[&"'<>]/g, (c) => `&#${c.charCodeAt(0)};`);

const HEADERS = {
  'content-security-policy': "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-cache',
};

/** Which options each mode takes and which of them update may change (fields that follow the mode). */
const modeOptions = MODE_OPTIONS;

/** The asset for a GET of `pathname`, or undefined when it is not one of the page's. */
export function webAsset(pathname: string, node: string, ctx: AssetContext = { pve: false }): StaticAsset | undefined {
  if (pathname !== '/' && pathname !== '/ui/app.js' && pathname !== '/ui/app.css') return undefined;
  const b = load();
  if (pathname === '/ui/app.js') return { type: 'text/javascript; charset=utf-8', body: b.js, headers: HEADERS };
  if (pathname === '/ui/app.css') return { type: 'text/css; charset=utf-8', body: b.css, headers: HEADERS };
  const html = b.html
    .replace('__NODE__', escapeAttr(node))
    .replace('__AUTH__', ctx.pve ? 'pve' : 'token')
    .replace('__MODES__', escapeAttr(JSON.stringify(modeOptions)))
    .replace('__SMB__', escapeAttr(JSON.stringify({ host: ctx.smbHost ?? '', port: ctx.smbPort ?? 445 })));
  return { type: 'text/html; charset=utf-8', body: Buffer.from(html), headers: HEADERS };
}
