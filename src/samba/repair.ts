/**
 * Journal records of Samba changes and their repairers (see core/journal.ts): the managed smb.conf
 * (put back, then smbd reloaded) and passdb accounts (put back exactly: NT hash, last change time and
 * SID; or removed when the step made them and they are still as it left them).
 */
import { fileRecord, undoFile, type FileRecord, type RepairRegistry } from '../core/journal.ts';
import { GatewayError } from '../core/errors.ts';
import type { Runner } from '../core/exec.ts';
import { ntHash } from './nthash.ts';
import { ntOfLine, Samba, type SambaAccount } from './samba.ts';

/** The managed smb.conf about to be replaced: a file record, and the smb.conf of the smbd to reload. */
export type SmbConfRecord = Omit<FileRecord, 'kind'> & { kind: 'smbconf'; conf: string };

export async function smbConfRecord(samba: Samba, text: string): Promise<SmbConfRecord> {
  return { ...(await fileRecord(samba.target.managedConf, text)), kind: 'smbconf', conf: samba.target.smbConf };
}

/**
 * A passdb account a step is about to add, change or remove: as it was (null: it did not exist) and
 * the NT hash the step gives it (null: the step removes it).
 */
export type SambaAccountRecord = { kind: 'samba-account'; name: string; before: SambaAccount | null; after: string | null };

export async function sambaAccountRecord(samba: Samba, name: string, newPassword: string | null): Promise<SambaAccountRecord> {
  return sambaAccountRecordOf(name, await samba.account(name), newPassword);
}

/** The same record from an account already read (`samba.account`). */
export function sambaAccountRecordOf(name: string, before: SambaAccount | undefined, newPassword: string | null): SambaAccountRecord {
  return { kind: 'samba-account', name, before: before ?? null, after: newPassword === null ? null : ntHash(newPassword) };
}

/** Undo a change of one passdb account, only while it is as the step left it. */
export async function undoSambaAccount(samba: Samba, r: SambaAccountRecord): Promise<string> {
  const cur = await samba.account(r.name);
  if (r.before === null ? !cur : cur?.line === r.before.line) return `Samba account ${r.name} is as before`;
  const asLeft = r.after === null ? !cur : !!cur && ntOfLine(cur.line) === r.after;
  if (!asLeft) throw new GatewayError('failed', `Samba account ${r.name} was changed since the operation: left as it is`);
  if (r.before === null) { await samba.deleteUser(r.name); return `removed Samba account ${r.name}`; }
  await samba.restoreAccount(r.name, r.before);
  return `put back Samba account ${r.name}`;
}

export interface SambaRepairCtx { run: Runner; samba: Samba }

/** The Samba instance a record was written for (its smb.conf), else the gateway's. */
function sambaFor(ctx: SambaRepairCtx, conf: string | undefined, managedConf?: string): Samba {
  if (!conf || (conf === ctx.samba.target.smbConf && (!managedConf || managedConf === ctx.samba.target.managedConf))) return ctx.samba;
  return new Samba(ctx.run, { ...ctx.samba.target, smbConf: conf, ...(managedConf ? { managedConf } : {}) });
}

export const sambaRepairers: RepairRegistry<SambaRepairCtx> = {
  smbconf: {
    undo: async (rec, ctx) => {
      const r = rec as SmbConfRecord;
      const did = await undoFile({ ...r, kind: 'file' });
      // smbd may have read the new text (a reload, or a reload of its own): it reads the old one again.
      await sambaFor(ctx, r.conf, r.path).reload();
      return `${did}; smbd reloaded`;
    },
  },
  'samba-account': { undo: (rec, ctx) => undoSambaAccount(ctx.samba, rec as SambaAccountRecord) },
};
