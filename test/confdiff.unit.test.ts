/**
 * testparm reads [global] and the sections a change makes or alters, not the sections smbd already
 * serves as they are: the new section is judged as in the whole file (a bad one is still refused).
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { parseShare } from '../src/core/share.ts';
import { execRunner } from '../src/core/exec.ts';
import { renderManagedConf } from '../src/samba/render.ts';
import { sectionsToCheck, splitSections } from '../src/samba/confdiff.ts';
import { Samba } from '../src/samba/samba.ts';

const share = (name: string, over: Record<string, unknown> = {}) => parseShare({ sharename: name, mode: 'native', path: `/tank/${name}`, users: ['alice'], ...over });
const samba = new Samba(execRunner, { smbConf: '/dev/null', managedConf: '/dev/null', smbHost: '127.0.0.1', smbPort: 445 });

describe('sections testparm checks', () => {
  const installed = renderManagedConf(Array.from({ length: 50 }, (_, i) => share(`s${i}`)));

  it('a new share: the header, [global] and its own section only', () => {
    const next = renderManagedConf([...Array.from({ length: 50 }, (_, i) => share(`s${i}`)), share('new', { comment: 'n' })]);
    const c = sectionsToCheck(next, installed);
    assert.equal(c.skipped, 50);
    assert.deepEqual(splitSections(c.text).sections.map((s) => s.name), ['global', 'new']);
    assert.match(c.text, /^# Managed by pve-smbgateway/);
    // Every section checked is exactly as in the new file.
    const whole = new Map(splitSections(next).sections.map((s) => [s.name, s.text]));
    for (const s of splitSections(c.text).sections) assert.equal(s.text, whole.get(s.name));
  });

  it('a changed share and a changed [global] are checked; nothing installed: the whole file', () => {
    const next = renderManagedConf([...Array.from({ length: 50 }, (_, i) => share(`s${i}`, i === 7 ? { read_only: true } : {})), share('g', { guest_ok: true, users: [] })]);
    const names = splitSections(sectionsToCheck(next, installed).text).sections.map((s) => s.name);
    assert.deepEqual(names, ['global', 'g', 's7']);
    assert.match(sectionsToCheck(next, installed).text, /map to guest = Bad User/);
    assert.equal(sectionsToCheck(next, undefined).text, next);
    assert.equal(sectionsToCheck(installed, installed).skipped, 50);
  });

  it('testparm still refuses a bad new section, and accepts the cut file of a good one', async () => {
    const bad = installed + '\n[oops]\n   path = /x\n   wrtie list = a\n';
    await assert.rejects(samba.checkText(sectionsToCheck(bad, installed).text), /testparm rejected .*Unknown parameter encountered: "wrtie list"/);
    await samba.checkText(sectionsToCheck(renderManagedConf([...Array.from({ length: 50 }, (_, i) => share(`s${i}`)), share('ok')]), installed).text);
  });
});
