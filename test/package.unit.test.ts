/**
 * What the Debian package generates from the declarations (man pages, bash completion) and the
 * store's format version with its migration. The package itself is tested in package.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { operations } from '../src/api/registry.ts';
import { daemonFileSchema } from '../src/api/daemon.ts';
import { bashCompletion, cliFlags, cliManPage, daemonManPage } from '../src/cli/manpage.ts';
import { ShareStore } from '../src/core/store.ts';
import { migrateStore, STORE_FORMAT, storeFormat } from '../src/core/storeformat.ts';
import { parseShare } from '../src/core/share.ts';

const info = { version: '9.9.9', date: '2026-01-01' };

/** The page as man shows it (groff, plain text); groff's warnings fail the test. */
function render(page: string): string {
  const r = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-P', '-c'], { input: page, encoding: 'utf8' });
  assert.equal(r.stderr, '', 'groff warnings');
  return r.stdout.replace(/.\x08/g, '').replace(/\u2010/g, '-').replace(/\s+/g, ' ');
}

test('pve-smbgateway(1) documents every command and every option the CLI takes', () => {
  const text = render(cliManPage(operations, info));
  assert.match(text, /pve-smbgateway 9\.9\.9/);
  for (const op of operations) {
    assert.ok(text.includes(`pve-smbgateway ${op.command.join(' ')}`), `command ${op.command.join(' ')}`);
    for (const f of cliFlags(op)) assert.ok(text.includes(`--${f.flag}`), `${op.command.join(' ')} --${f.flag}`);
  }
  assert.ok(text.includes('--password-file'), 'CLI-only options (mappings.ts) too');
});

test('pve-smbgatewayd(8) documents every daemon.json setting and reload', () => {
  const text = render(daemonManPage(info));
  for (const k of Object.keys(daemonFileSchema)) assert.ok(text.includes(k), k);
  assert.match(text, /SIGHUP/);
});

test('bash completion offers commands, subcommands, flags and enum values', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'smbgw-compl-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'c.bash');
  await writeFile(file, bashCompletion(operations));
  const complete = (...words: string[]) => execFileSync('bash', ['-c', `source /usr/share/bash-completion/bash_completion; source ${file}
COMP_WORDS=(pve-smbgateway ${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length}; COMP_LINE="\${COMP_WORDS[*]}"; COMP_POINT=\${#COMP_LINE}
_pve_smbgateway; printf '%s\\n' "\${COMPREPLY[@]}"`], { encoding: 'utf8' }).split('\n').filter(Boolean).sort();
  assert.ok(complete('').includes('create') && complete('').includes('ha'));
  assert.deepEqual(complete('cr'), ['create']);
  assert.deepEqual(complete('template', ''), ['create', 'list']);
  assert.ok(complete('create', 'x', '--').includes('--mode'));
  assert.ok(complete('create', 'x', '--').includes('--password-file'));
  assert.deepEqual(complete('create', 'x', '--mode', ''), ['lxc', 'native', 'vm']);
  assert.deepEqual(complete('create', 'x', '--profile', 'h'), ['high']);
});

test('store format: 0.1 files (no header) are format 1 and are migrated once; a newer format is refused', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'smbgw-fmt-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const store = new ShareStore({ storeDir: join(dir, 'etc'), lockDir: join(dir, 'lock') });
  assert.equal(await migrateStore(store), undefined, 'no store: nothing to do');
  // As 0.1 wrote it: no format line, `created` comma-joined, vm defaults in a native share.
  const legacy = '# pve-smbgateway shares (managed; edit with pve-smbgateway)\n\nsmbgateway: projects\n\tmode native\n\tpath /srv/projects\n\tvm_memory 2048\n\tvm_cores 2\n\tcreated dir:/srv/projects\n';
  await (await import('node:fs/promises')).mkdir(join(dir, 'etc'), { recursive: true });
  await writeFile(store.cfgPath, legacy);
  assert.equal(storeFormat(legacy), 1);
  const before = await store.list();
  assert.deepEqual(await migrateStore(store), { path: store.cfgPath, from: 1, to: STORE_FORMAT, shares: 1 });
  const text = await readFile(store.cfgPath, 'utf8');
  assert.equal(storeFormat(text), STORE_FORMAT);
  assert.doesNotMatch(text, /vm_memory|created dir:/, 'legacy values normalised in the file');
  assert.deepEqual(await store.list(), before, 'the shares read the same');
  assert.equal(await migrateStore(store), undefined, 'a second run does nothing');
  assert.equal((await store.write([parseShare({ sharename: 'a', mode: 'native', path: '/srv/a' })]), storeFormat(await readFile(store.cfgPath, 'utf8'))), STORE_FORMAT, 'every write names the format');
  await writeFile(store.cfgPath, text.replace(`# format: ${STORE_FORMAT}`, `# format: ${STORE_FORMAT + 1}`));
  await assert.rejects(store.list(), /store format 3, written by a newer pve-smbgateway/);
  await assert.rejects(migrateStore(store), /newer pve-smbgateway/);
});
