/** Snapshots of shares (every mode: the data is on the host): take one (backup), list them, restore a share or one file. */
import { invalid } from '../../core/errors.ts';
import { defineOperation } from '../../core/operation.ts';
import { applyPlan, failAtFromEnv, type Step } from '../../core/plan.ts';
import { parseSize, shareSchema } from '../../core/share.ts';
import { smbConfSteps } from '../../samba/apply.ts';
import { listSnapshots, restoreSteps, snapshotStep, zfsSnapshotsAfter } from '../../backup/snapshots.ts';
import { snapshotTime } from '../../core/snapshot.ts';
import { parsePruneOptions } from '../../core/prune.ts';
import { pruneOptionsRule } from '../../core/prune.ts';
import { readBackupState } from '../../backup/state.ts';
import { archiveVolid, fileRestoreSteps, guestRestoreSteps, freshSnapshotName as freshName, runShareBackup, shareRelativePath, snapshotTarget } from '../../provision/backup.ts';
import { btrfsSubvolumeUuid } from '../../core/btrfs.ts';
import type { Gateway } from '../../provision/context.ts';
import { backupPrivileges, readSharePrivileges, restorePrivileges } from '../privileges.ts';

const op = defineOperation<Gateway>();

const nameParam = { sharename: shareSchema.sharename };

const backupParams = {
  ...nameParam,
  keep: { type: 'integer', optional: true, minimum: 1, maximum: 10000, description: 'Keep only this many snapshots, deleting the oldest (keep-last=N)' },
  prune: { type: 'string', optional: true, maxLength: 256, check: pruneOptionsRule, description: 'Retention for this run, as Proxmox prune options (keep-last=3,keep-daily=7,...); default: the share\'s backup_prune' },
} as const;

export const backupOp = op({
  command: ['backup'],
  method: 'POST',
  path: '/nodes/{node}/smbgateway/{sharename}/backup',
  description: 'Take a snapshot of the share\'s data (ZFS dataset or btrfs subvolume, every mode), shown to Windows clients as a Previous Version, and apply the retention; lxc/vm shares with backup_storage: the guest too, through vzdump.',
  parameters: backupParams,
  positional: ['sharename'],
  returns: { description: 'The snapshot taken and those pruned', schema: { type: 'object', properties: { sharename: { type: 'string' }, snapshot: { type: 'string' }, time: { type: 'string' }, pruned: { type: 'array', items: { type: 'string' } }, kept: { type: 'integer' }, guest: { type: 'object' } } } },
  privilege: backupPrivileges,
  handler: async (p, g) => {
    const { sharename, keep, prune } = p;
    if (keep !== undefined && prune !== undefined) throw invalid('keep', 'give either keep or prune (keep N is keep-last=N)');
    const retention = keep !== undefined ? { 'keep-last': keep } : prune !== undefined ? parsePruneOptions(prune) : undefined;
    return runShareBackup(g, sharename, { trigger: 'manual', ...(retention ? { prune: retention } : {}), log: g.log });
  },
});

export const snapshotsOp = op({
  command: ['snapshots'],
  method: 'GET',
  path: '/nodes/{node}/smbgateway/{sharename}/snapshots',
  description: 'List the snapshots of a share, oldest first.',
  parameters: nameParam,
  positional: ['sharename'],
  returns: { description: 'Snapshots with their time', schema: { type: 'array', items: { type: 'object', properties: { name: { type: 'string' }, time: { type: 'string', format: 'date-time' } } } } },
  privilege: readSharePrivileges,
  handler: async (p, g) => {
    const share = await g.store.require(p.sharename);
    const names = await listSnapshots(g.run, await snapshotTarget(g, share));
    return names.map((name) => ({ name, time: snapshotTime(name)!.toISOString() }));
  },
});

const restoreParams = {
  ...nameParam,
  snapshot: { type: 'string', pattern: /^smbgw-\d{4}\.\d{2}\.\d{2}-\d{2}\.\d{2}\.\d{2}$/, patternText: 'must be a snapshot name as listed by `snapshots`', description: 'Snapshot to go back to' },
  guest: { type: 'boolean', optional: true, default: false, description: 'lxc/vm: also put the guest back from the vzdump archive taken with this snapshot' },
  file: { type: 'string', optional: true, maxLength: 4096, description: 'Restore only this file or folder (path inside the share), copied back over the current one; the rest of the share is left as it is' },
  force: { type: 'boolean', optional: true, default: false, description: 'ZFS: destroy the snapshots newer than the one restored (only when the gateway made every one of them)' },
} as const;

export const restoreOp = op({
  command: ['restore'],
  method: 'POST',
  path: '/nodes/{node}/smbgateway/{sharename}/restore',
  description: 'Put the whole share back to a snapshot, closing the clients\' connections first (btrfs first takes a snapshot of the current state, so a restore can itself be undone); or, with --file, only one file or folder. lxc/vm shares: the guest is stopped meanwhile, and with --guest put back from the vzdump archive taken with the snapshot.',
  parameters: restoreParams,
  positional: ['sharename'],
  returns: { description: 'What was done', schema: { type: 'object', properties: { sharename: { type: 'string' }, restored: { type: 'string' }, file: { type: 'string' }, safety_snapshot: { type: 'string' }, destroyed: { type: 'array', items: { type: 'string' } } } } },
  privilege: restorePrivileges,
  handler: async (p, g) => {
    const { sharename, snapshot, force, file, guest } = p;
    return g.store.locked(async () => {
      const share = await g.store.require(sharename);
      const t = await snapshotTarget(g, share);
      const all = await listSnapshots(g.run, t);
      if (!all.includes(snapshot)) throw invalid('snapshot', `share "${share.sharename}" has no snapshot ${snapshot} (see: pve-smbgateway snapshots ${share.sharename})`);
      if (file !== undefined) {
        // One file or folder: copied back over the live one, after a snapshot of the current state.
        if (force) throw invalid('force', 'applies to a whole-share ZFS rollback, not to --file');
        const rel = shareRelativePath(file);
        const copy = await fileRestoreSteps(g, share, t, snapshot, rel);
        const safety = freshName(all, new Date());
        await applyPlan([snapshotStep(g.run, share, t, safety), ...copy], { failAt: failAtFromEnv(), log: g.log });
        return { sharename: share.sharename, restored: snapshot, file: rel, safety_snapshot: safety, destroyed: [] };
      }
      if (guest && share.mode === 'native') throw invalid('guest', 'applies to lxc and vm shares (a native share has no guest)');
      if (guest && file !== undefined) throw invalid('guest', 'a guest is restored with the whole share, not with --file');
      let archive: { volid: string } | undefined;
      if (guest) {
        const h = ((await readBackupState(g.settings.stateDir))[share.sharename]?.guest_history ?? []).filter((x) => x.snapshot === snapshot).at(-1);
        if (!h) throw invalid('snapshot', `no backup of the guest was taken with snapshot ${snapshot} (restore the data alone, without --guest)`);
        archive = { volid: archiveVolid(h.storage, h.archive) };
      }
      const gs = share.mode !== 'native' ? guestRestoreSteps(g, share, { archive }) : undefined;
      const newer = t.kind === 'zfs' ? await zfsSnapshotsAfter(g.run, t.dataset, snapshot) : all.filter((n) => n > snapshot);
      const safety = t.kind === 'btrfs' ? freshName(all, new Date()) : undefined;
      const limit = share.quota ? parseSize(share.quota) : undefined;
      const shares = await g.store.list();
      // A btrfs restore puts a new subvolume (made by the gateway) in the share's place: its record
      // follows, so that a later purge recognises it (and only it).
      let after = shares;
      const madeHere = share.created.some((m) => m.kind === 'subvolume' && m.path === share.path);
      const record: Step[] = t.kind === 'btrfs' && madeHere ? [
        {
          name: 'record-subvolume',
          do: async () => {
            const uuid = await btrfsSubvolumeUuid(g.run, share.path);
            const created = share.created.map((m) => (m.kind === 'subvolume' && m.path === share.path ? { ...m, uuid } : m));
            after = shares.map((s) => (s.sharename === share.sharename ? { ...s, created } : s));
          },
        },
        g.store.saveStep(() => after),
      ] : [];
      const steps: Step[] = gs ? [
        // Guest shares: the guest (serving the clients, holding the data mounted) is stopped first.
        ...(safety ? [snapshotStep(g.run, share, t, safety)] : []),
        ...gs.before,
        ...restoreSteps(g.run, share, t, snapshot, { force: !!force, limitBytes: limit, newer }),
        ...record,
        ...gs.after,
      ] : [
        ...(safety ? [snapshotStep(g.run, share, t, safety)] : []),
        // Clients are told first (their connections to the share closed): none keeps writing into
        // the tree that is being replaced.
        { name: 'close-clients', do: () => g.samba.closeShare(share.sharename) },
        ...restoreSteps(g.run, share, t, snapshot, { force: !!force, limitBytes: limit, newer }),
        ...record,
        // Clients still in the old tree are dropped so that they reconnect to the restored one.
        { name: 'close-share', do: () => g.samba.closeShare(share.sharename) },
        ...smbConfSteps(g.samba, () => after),
      ];
      await applyPlan(steps, { failAt: failAtFromEnv(), log: g.log });
      return { sharename: share.sharename, restored: snapshot, safety_snapshot: safety, destroyed: t.kind === 'zfs' ? newer : [], ...(archive ? { guest_archive: archive.volid } : {}) };
    });
  },
});

export const backupOperations = [backupOp, snapshotsOp, restoreOp];
