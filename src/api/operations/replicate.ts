/** Off-host copies of a share's snapshots (zfs send/recv, btrfs send/receive), incremental. */
import { defineOperation } from '../../core/operation.ts';
import { shareSchema } from '../../core/share.ts';
import { replicateShare } from '../../provision/replicate.ts';
import type { Gateway } from '../../provision/context.ts';
import { restorePrivileges } from '../privileges.ts';

const op = defineOperation<Gateway>();

export const replicateOp = op({
  command: ['replicate'],
  method: 'POST',
  path: '/nodes/{node}/smbgateway/{sharename}/replicate',
  description: 'Send the share\'s snapshots to another pool or host: ZFS with zfs send | zfs recv (target: [host:]pool/dataset, received unmounted), btrfs with btrfs send | btrfs receive (target: [host:]/directory on btrfs); incremental from the newest snapshot both sides have. A host is reached with ssh as root (keys set up by the admin).',
  parameters: {
    sharename: shareSchema.sharename,
    target: { type: 'string', maxLength: 1024, description: 'Where to: [[user@]host:]pool/dataset (ZFS) or [[user@]host:]/directory (btrfs)' },
  },
  positional: ['sharename'],
  returns: { description: 'What was sent', schema: { type: 'object', properties: { sharename: { type: 'string' }, target: { type: 'string' }, snapshot: { type: 'string' }, base: { type: 'string' }, sent: { type: 'array', items: { type: 'string' } } } } },
  // A copy of all the share's data leaves for a place the caller names: the share's admins only (as restore).
  privilege: restorePrivileges,
  handler: async (p, g) => replicateShare(g, p.sharename, p.target, g.log),
});
