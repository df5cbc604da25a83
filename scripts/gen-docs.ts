/**
 * Writes the man pages and the bash completion generated from the operation declarations:
 *   node --import tsx scripts/gen-docs.ts <outdir>   -> <outdir>/pve-smbgateway.1, pve-smbgatewayd.8, pve-smbgateway.bash
 * SOURCE_DATE_EPOCH (reproducible builds) sets the pages' date.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { operations } from '../src/api/registry.ts';
import { bashCompletion, cliManPage, daemonManPage } from '../src/cli/manpage.ts';

const out = process.argv[2];
if (!out) { process.stderr.write('usage: gen-docs.ts <outdir>\n'); process.exit(2); }
const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
const epoch = Number(process.env.SOURCE_DATE_EPOCH ?? Math.floor(Date.now() / 1000));
const info = { version: pkg.version, date: new Date(epoch * 1000).toISOString().slice(0, 10) };
await mkdir(out, { recursive: true });
await writeFile(join(out, 'pve-smbgateway.1'), cliManPage(operations, info));
await writeFile(join(out, 'pve-smbgatewayd.8'), daemonManPage(info));
await writeFile(join(out, 'pve-smbgateway.bash'), bashCompletion(operations));
