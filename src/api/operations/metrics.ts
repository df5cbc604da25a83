/** Share metrics history (as Proxmox's rrddata), from the collector's database. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { defineOperation } from '../../core/operation.ts';
import { type Schema } from '../../core/schema.ts';
import { shareSchema } from '../../core/share.ts';
import { CFS, metricsDbFor, TIMEFRAMES } from '../../monitor/db.ts';
import type { Gateway } from '../../provision/context.ts';
import { readSharePrivileges } from '../privileges.ts';

const op = defineOperation<Gateway>();

/** The metrics database of this node (node-local state, never under /etc/pve). */
export function metricsDbPath(g: Gateway): string {
  return join(g.settings.stateDir, 'metrics.db');
}

const params = {
  sharename: shareSchema.sharename,
  timeframe: { type: 'string', enum: TIMEFRAMES, optional: true, default: 'hour', description: 'Time frame: hour (every sample), day (5 min steps), week (30 min), month (1 h), year (1 day)' },
  cf: { type: 'string', enum: CFS, optional: true, default: 'AVERAGE', description: 'Consolidation within a step: AVERAGE or MAX' },
} as const satisfies Schema;

const POINT_SCHEMA = {
  type: 'object',
  properties: {
    time: { type: 'integer', description: 'epoch seconds' },
    throughput_read: { type: 'number', nullable: true, description: 'bytes/s' },
    throughput_write: { type: 'number', nullable: true, description: 'bytes/s' },
    iops_read: { type: 'number', nullable: true, description: 'read calls/s' },
    iops_write: { type: 'number', nullable: true, description: 'write calls/s' },
    connections: { type: 'number', nullable: true, description: 'SMB sessions on the share' },
    errors: { type: 'number', nullable: true, description: 'failed logons + refused tree connects in the interval' },
    storage_used: { type: 'number', nullable: true, description: 'bytes' },
    storage_total: { type: 'number', nullable: true, description: 'bytes (the quota where there is one)' },
  },
};

export const metricsOp = op({
  command: ['metrics'],
  method: 'GET',
  path: '/nodes/{node}/smbgateway/{sharename}/metrics',
  description: 'Metrics history of a share: throughput, IOPS, connections, errors, storage.',
  parameters: params,
  positional: ['sharename'],
  returns: { description: 'Samples, oldest first', schema: { type: 'array', items: POINT_SCHEMA } },
  privilege: readSharePrivileges,
  handler: async (p, g) => {
    const { sharename, timeframe, cf } = p;
    const share = await g.store.require(sharename);
    const path = metricsDbPath(g);
    if (!existsSync(path)) return [];
    return metricsDbFor(path).query(share.sharename, timeframe as (typeof TIMEFRAMES)[number], cf as (typeof CFS)[number]);
  },
});
