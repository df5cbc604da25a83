/** Snapshots of native shares: take one (backup), list them, restore a share to one. */
import { invalid } from '../../core/errors.ts';
import { defineOperation } from '../../core/operation.ts';
import { applyPlan, failAtFromEnv, type Step } from '../../core/plan.ts';
import { parseSize, shareSchema } from '../../core/share.ts';
import { smbConfSteps } from '../../samba/apply.ts';
import { deleteSnapshot, listSnapshots, requireSnapshottable, restoreSteps, snapshotStep, zfsSnapshotsAfter } from '../../backup/snapshots.ts';
import { snapshotName, snapshotTime } from '../../core/snapshot.ts';
import { btrfsSubvolumeUuid } from '../../core/btrfs.ts';
import type { Gateway } from '../../provision/context.ts';
import { backupPrivileges, readSharePrivileges, restorePrivileges } from '../privileges.ts';

const op = defineOperation<Gateway>();

const nameParam = { sharename: shareSchema.sharename };

/** A name one second later than the newest if two backups fall in the same second. */
function freshName(existing: string[], now: Date): string {
  let t = now.getTime();
  while (existing.includes(snapshotName(new Date(t)))) t += 1000;
  return snapshotName(new Date(t));
}

const backupParams = {
  ...nameParam,
  keep: { type: 'integer', optional: true, minimum: 1, maximum: 10000, description: 'Keep only this many snapshots, deleting the oldest' },
} as const;

export const backupOp = op({
  command: ['backup'],
  method: 'POST',
  path: '/nodes/{node}/smbgateway/{sharename}/backup',
  description: 'Take a snapshot of the share (ZFS dataset or btrfs subvolume), shown to Windows clients as a Previous Version.',
  parameters: backupParams,
  positional: ['sharename'],
  returns: { description: 'The snapshot taken and those pruned', schema: { type: 'object', properties: { sharename: { type: 'string' }, snapshot: { type: 'string' }, pruned: { type: 'array', items: { type: 'string' } } } } },
  privilege: backupPrivileges,
  handler: async (p, g) => {
    const { sharename, keep } = p;
    return g.store.locked(async () => {
      const share = await g.store.require(sharename);
      const t = requireSnapshottable(share);
      const before = await listSnapshots(g.run, t);
      const name = freshName(before, new Date());
      const pruned: string[] = [];
      const steps: Step[] = [snapshotStep(g.run, share, t, name)];
      if (keep !== undefined) {
        steps.push({
          name: 'prune',
          do: async () => {
            const all = [...before, name].sort();
            for (const old of all.slice(0, Math.max(0, all.length - keep))) { await deleteSnapshot(g.run, t, old); pruned.push(old); }
          },
        });
      }
      await applyPlan(steps, { failAt: failAtFromEnv(), log: g.log });
      return { sharename: share.sharename, snapshot: name, time: snapshotTime(name)!.toISOString(), pruned };
    });
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
    const names = await listSnapshots(g.run, requireSnapshottable(share));
    return names.map((name) => ({ name, time: snapshotTime(name)!.toISOString() }));
  },
});

const restoreParams = {
  ...nameParam,
  snapshot: { type: 'string', pattern: /^smbgw-\d{4}\.\d{2}\.\d{2}-\d{2}\.\d{2}\.\d{2}$/, patternText: 'must be a snapshot name as listed by `snapshots`', description: 'Snapshot to go back to' },
  force: { type: 'boolean', optional: true, default: false, description: 'ZFS: destroy the snapshots newer than the one restored (only when the gateway made every one of them)' },
} as const;

export const restoreOp = op({
  command: ['restore'],
  method: 'POST',
  path: '/nodes/{node}/smbgateway/{sharename}/restore',
  description: 'Put the whole share back to a snapshot (btrfs first takes a snapshot of the current state, so a restore can itself be undone).',
  parameters: restoreParams,
  positional: ['sharename'],
  returns: { description: 'What was done', schema: { type: 'object', properties: { sharename: { type: 'string' }, restored: { type: 'string' }, safety_snapshot: { type: 'string' }, destroyed: { type: 'array', items: { type: 'string' } } } } },
  privilege: restorePrivileges,
  handler: async (p, g) => {
    const { sharename, snapshot, force } = p;
    return g.store.locked(async () => {
      const share = await g.store.require(sharename);
      const t = requireSnapshottable(share);
      const all = await listSnapshots(g.run, t);
      if (!all.includes(snapshot)) throw invalid('snapshot', `share "${share.sharename}" has no snapshot ${snapshot} (see: pve-smbgateway snapshots ${share.sharename})`);
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
      const steps: Step[] = [
        ...(safety ? [snapshotStep(g.run, share, t, safety)] : []),
        ...restoreSteps(g.run, share, t, snapshot, { force: !!force, limitBytes: limit, newer }),
        ...record,
        // Clients still in the old tree are dropped so that they reconnect to the restored one.
        { name: 'close-share', do: () => g.samba.closeShare(share.sharename) },
        ...smbConfSteps(g.samba, () => after),
      ];
      await applyPlan(steps, { failAt: failAtFromEnv(), log: g.log });
      return { sharename: share.sharename, restored: snapshot, safety_snapshot: safety, destroyed: t.kind === 'zfs' ? newer : [] };
    });
  },
});

export const backupOperations = [backupOp, snapshotsOp, restoreOp];
