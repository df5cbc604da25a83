/**
 * The CLI bundled with esbuild: src/cli/main.ts and what it imports as a few ES modules (dist/cli/)
 * instead of ~95 compiled files. Node's ES module loader spends about half a millisecond per file
 * (resolve, stat, read, compile), so `create` started ~35 ms sooner (bench/README.md). Code splitting
 * keeps the lazy command index (src/api/commands.ts): a command still loads only its own chunk.
 * better-sqlite3 (a native addon) and yaml stay outside, found in node_modules as before.
 *   node scripts/bundle-cli.mjs [outdir=dist/cli]
 */
import { createRequire } from 'node:module';
import { rmSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const out = process.argv[2] ?? join(root, 'dist/cli');
const esbuild = createRequire(import.meta.url)('esbuild');
rmSync(out, { recursive: true, force: true });
await esbuild.build({
  entryPoints: [join(root, 'src/cli/main.ts')],
  bundle: true, splitting: true, format: 'esm', platform: 'node', target: 'node20',
  outdir: out, external: ['better-sqlite3', 'yaml'], logLevel: 'warning', legalComments: 'none',
});
