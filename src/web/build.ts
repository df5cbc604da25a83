/**
 * `npm run build:web`: the web UI bundled once (script and stylesheet, uPlot included) into
 * dist/web/, for a package that ships without esbuild; the daemon serves them with
 * SMBGW_WEB_PREBUILT=1 or when the UI's sources are not installed.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildBundle } from './static.ts';

const out = join(import.meta.dirname, '../../dist/web');
mkdirSync(out, { recursive: true });
const b = buildBundle();
writeFileSync(join(out, 'app.js'), b.js);
writeFileSync(join(out, 'app.css'), b.css);
process.stdout.write(`dist/web/app.js ${b.js.length} bytes, dist/web/app.css ${b.css.length} bytes\n`);
