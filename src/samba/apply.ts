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
  return smbConfInstall(samba, sharesAfter, ad).steps;
}

/**
 * The same steps, with the file rendered and checked by testparm right away: `checked` settles when
 * it is (rejecting with testparm's complaint). A plan starts this before its other reads (accounts,
 * passdb), so that the tools run side by side, and awaits `checked` before it returns: a config smbd
 * would refuse stops the operation before anything changed. `sharesAfter` must then be final when
 * called; the step renders again when it runs, and checks again unless the text and the file it
 * replaces are the ones checked.
 */
export function smbConfInstall(samba: Samba, sharesAfter: () => readonly Share[], ad?: () => AdConf | undefined, opts: { checkNow?: boolean } = {}): { steps: Step[]; checked: Promise<void> } {
  // undefined: the file did not exist before, so the undo removes it again.
  let before: string | undefined;
  let text: string | undefined;
  // The managed [global] must not weaken what the admin's smb.conf sets: read it (once) when rendering.
  let adminGlobals: ReturnType<Samba['adminGlobals']> | undefined;
  const render = async () => renderManagedConf(servedHere(sharesAfter()), {
    adminGlobals: await (adminGlobals ??= samba.adminGlobals()),
    ad: ad ? ad() : await readAdState(samba.target.stateDir),
  });
  const check = async (t: string, b: string | undefined) => {
    // [global] and the sections that change: the others are as smbd serves them now (confdiff.ts).
    await samba.checkText(sectionsToCheck(t, b).text);
    return `${t}\0${b ?? ''}`;
  };
  const early = opts.checkNow ? (async () => check(await render(), await readManaged(samba)))() : undefined;
  const checked = early ? early.then(() => undefined) : Promise.resolve();
  checked.catch(() => undefined); // the plan awaits it; a plan failing earlier must not leave it unhandled
  const restore = async () => {
    if (before === undefined) await rm(samba.target.managedConf, { force: true });
    else await atomicWrite(samba.target.managedConf, before);
    await samba.reload();
  };
  const steps: Step[] = [
    {
      name: 'write-smb-conf',
      shows: `render, testparm and install ${samba.target.managedConf}`,
      journal: async () => { text = await render(); return [await smbConfRecord(samba, text)]; },
      do: async () => {
        text ??= await render();
        before = await readManaged(samba);
        if ((await early?.catch(() => undefined)) !== `${text}\0${before ?? ''}`) await check(text, before);
        await atomicWrite(samba.target.managedConf, text);
      },
      undo: restore,
    },
    { name: 'reload-smbd', shows: 'smbcontrol smbd reload-config', do: () => samba.reload() },
  ];
  return { steps, checked };
}
