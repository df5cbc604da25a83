/** The share as users see it: kept apart from status.ts so that listing shares loads no provisioning code. */
import type { Share } from '../core/share.ts';

/** The share as users see it (internal bookkeeping left out). */
export function publicShare(s: Share): Omit<Share, 'created'> {
  const { created: _created, ...rest } = s;
  return rest;
}
