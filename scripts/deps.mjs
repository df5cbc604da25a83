#!/usr/bin/env node
// The import graph of src/ by folder: lists imports that point up the order
// core < samba < pve < backup < provision < ha < monitor < api < cli < web < demo (back-edges),
// and lines per folder. Exit 1 when there is a back-edge (test:unit runs it).
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
const ORDER = ['core', 'samba', 'pve', 'backup', 'provision', 'ha', 'monitor', 'api', 'cli', 'web', 'demo'];
const root = resolve(dirname(new URL(import.meta.url).pathname), '..', 'src');
const files = [];
const walk = (d) => { for (const f of readdirSync(d)) { const p = join(d, f); if (statSync(p).isDirectory()) walk(p); else if (p.endsWith('.ts')) files.push(p); } };
walk(root);
const folder = (p) => relative(root, p).split('/')[0];
const back = [];
const lines = {};
for (const f of files) {
  const text = readFileSync(f, 'utf8');
  lines[folder(f)] = (lines[folder(f)] ?? 0) + text.split('\n').length;
  for (const m of text.matchAll(/^(?:import|export)[^'"]*from\s+'(\.[^']+)'/gm)) {
    const target = resolve(dirname(f), m[1]);
    const a = ORDER.indexOf(folder(f));
    const b = ORDER.indexOf(folder(target));
    if (b > a) back.push(`${relative(root, f)} -> ${relative(root, target)}`);
  }
}
if (process.argv.includes('--lines')) for (const k of ORDER) if (lines[k]) console.log(`${k.padEnd(10)} ${String(readdirSync(join(root, k), { recursive: true }).filter((x) => String(x).endsWith('.ts')).length).padStart(3)} files ${String(lines[k]).padStart(6)} lines`);
for (const b of back) console.log(`back-edge: ${b}`);
console.log(`${back.length} back-edge(s) in ${files.length} files`);
process.exitCode = back.length ? 1 : 0;
