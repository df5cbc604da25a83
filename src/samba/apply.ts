/**
 * Applying the managed smb.conf: render from all shares, check with testparm ([global] and the sections
 * that change), swap the file in atomically, reload smbd. The undo puts the previous text back and reloads again.
 */
import { readFile, rm } from 'node:fs/promises';
import { atomicWrite } from '../core/store.ts';
import type { Step } from '../core/plan.ts';
import type { Share } from '../core/share.ts';
import { readAdState, type AdConf } from './ads.ts';
import { renderManagedConf } from './render.ts';
import { sectionsToCheck } from './confdiff.ts';
import { smbConfRecord } from './repair.ts';
import type { Samba } from './samba.ts';

export async function readManaged(samba: Samba): Promise<string | undefined> {
  return readFile(samba.target.managedConf, 'utf8').catch(() => undefined);
}

/** Which shares this host's smbd serves from the managed file (native mode shares). */
export function servedHere(shares: readonly Share[]): Share[] {
  return shares.filter((s) => s.mode === 'native');
}

/**
 * `ad`: the domain membership the file is rendered with; by default what this node's join left
 * (stateDir/ad.json), so that every operation keeps a joined host joined.
 */
export function smbConfSteps(samba: Samba, sharesAfter: () => readonly Share[], ad?: () => AdConf | undefined): Step[] {
  // undefined: the file did not exist before, so the undo removes it again.
  let before: string | undefined;
  let text: string | undefined;
  // The managed [global] must not weaken what the admin's smb.conf sets: read it when rendering.
  const render = async () => renderManagedConf(servedHere(sharesAfter()), {
    adminGlobals: await samba.adminGlobals(),
    ad: ad ? ad() : await readAdState(samba.target.stateDir),
  });
  const restore = async () => {
    if (before === undefined) await rm(samba.target.managedConf, { force: true });
    else await atomicWrite(samba.target.managedConf, before);
    await samba.reload();
  };
  return [
    {
      name: 'write-smb-conf',
      shows: `render, testparm and install ${samba.target.managedConf}`,
      journal: async () => { text = await render(); return [await smbConfRecord(samba, text)]; },
      do: async () => {
        text ??= await render();
        before = await readManaged(samba);
        // [global] and the sections that change: the others are as smbd serves them now (confdiff.ts).
        await samba.checkText(sectionsToCheck(text, before).text);
        await atomicWrite(samba.target.managedConf, text);
      },
      undo: restore,
    },
    { name: 'reload-smbd', shows: 'smbcontrol smbd reload-config', do: () => samba.reload() },
  ];
}
