/**
 * A journal keeps a large `before` (the whole shares.cfg or smb.conf a step replaces) in a file beside
 * it, written once: the journal itself stays small however many shares there are, and a repair after a
 * crash still puts the old bytes back exactly.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileRecord, fileRepairers, Journal, listJournals, repairJournal, sweepTemporaries } from '../src/core/journal.ts';

describe('journal blobs', () => {
  let dir: string;
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'smbgw-jblob-')); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  it('a large before goes once into a blob; repair after a crash puts the file back and removes journal and blob', async () => {
    const jdir = join(dir, 'j1');
    const target = join(dir, 'smb.conf');
    const old = Array.from({ length: 3000 }, (_, i) => `[s${i}]\n   path = /srv/${randomBytes(4).toString('hex')}\n`).join('\n');
    await writeFile(target, old, { mode: 0o644 });
    const j = await Journal.begin(jdir, { operation: 'create' }, [{ name: 'save' }, { name: 'write' }]);
    const next = 'replaced\n';
    j.doc.steps[0]!.records = [await fileRecord(target, next)];
    j.doc.steps[0]!.state = 'started';
    await j.write();
    j.doc.steps[0]!.state = 'done';
    await j.write();
    await j.write();
    const names = (await readdir(jdir)).sort();
    assert.deepEqual(names.map((n) => n.replace(/^.*?\./, '.')), ['.blob1', '.journal'], 'one blob, written once for three journal writes');
    const journalSize = (await stat(join(jdir, names.find((n) => n.endsWith('.journal'))!))).size;
    assert.ok(journalSize < 2000, `journal is ${journalSize} bytes for a ${old.length}-byte before`);
    await writeFile(target, next);
    // The process "died": a fresh load sees the whole before again.
    const [entry] = await listJournals(jdir);
    assert.ok(entry?.journal, entry?.error);
    assert.equal(Buffer.from(String(entry.journal.doc.steps[0]!.records[0]!.before), 'base64').toString(), old);
    const rep = await repairJournal(entry.journal, fileRepairers, undefined);
    assert.equal(rep.complete, true, rep.problems.join('; '));
    assert.equal(await readFile(target, 'utf8'), old);
    assert.deepEqual(await readdir(jdir).catch(() => []), [], 'journal and blob removed');
  });

  it('a blob that is missing or changed makes the journal unreadable (never a wrong undo); orphan blobs are swept', async () => {
    const jdir = join(dir, 'j2');
    const target = join(dir, 'shares.cfg');
    await writeFile(target, 'x'.repeat(10_000));
    const j = await Journal.begin(jdir, { operation: 'delete' }, [{ name: 'save' }]);
    j.doc.steps[0]!.records = [await fileRecord(target, null)];
    j.doc.steps[0]!.state = 'started';
    await j.write();
    const blob = (await readdir(jdir)).find((n) => /\.blob\d+$/.test(n))!;
    await writeFile(join(jdir, blob), 'tampered');
    const [entry] = await listJournals(jdir);
    assert.equal(entry?.journal, undefined);
    assert.match(entry!.error!, /blob1 is missing or not what the journal recorded/);
    // Without its journal the blob is an orphan: the repair's sweep removes it.
    await rm(join(jdir, `${entry!.id}.journal`));
    assert.deepEqual(await sweepTemporaries(jdir), [blob]);
    assert.deepEqual(await readdir(jdir), []);
  });
});
