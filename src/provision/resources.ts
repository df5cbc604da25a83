/**
 * Shares as declarative resources (as Ceph's `ceph smb apply`/`show` do): one document per share with
 * `resource_type`, `intent` (present or removed) and the share's own settings; internal bookkeeping
 * (what create made, the guest's id and address, accounts inside the guest) is never part of it.
 * Settings at their default are left out: a resource that leaves one out means the default.
 */
import { invalid } from '../core/errors.ts';
import { parseShare, shareSchema, type Share } from '../core/share.ts';

export const RESOURCE_TYPE = 'smbgateway.share';
type Key = keyof typeof shareSchema;

/** The settings a resource carries (everything a caller may set). */
export const RESOURCE_KEYS = (Object.keys(shareSchema) as Key[]).filter((k) => !(shareSchema[k] as { internal?: boolean }).internal);

const isDefault = (k: Key, v: unknown) => v === undefined || JSON.stringify(v) === JSON.stringify((shareSchema[k] as { default?: unknown }).default);

export interface Resource { resource_type: string; intent: 'present' | 'removed'; sharename: string; [k: string]: unknown }

export function shareToResource(s: Share): Resource {
  const out: Resource = { resource_type: RESOURCE_TYPE, intent: 'present', sharename: s.sharename };
  for (const k of RESOURCE_KEYS) {
    if (k === 'sharename') continue;
    if (!isDefault(k, s[k])) out[k] = s[k];
  }
  return out;
}

/** A resource checked: its intent, and for `present` the share it describes (defaults filled, rules checked). */
export function parseResource(r: unknown, index: number): { sharename: string; intent: 'present' | 'removed'; share?: Share } {
  const where = `resources[${index}]`;
  if (!r || typeof r !== 'object' || Array.isArray(r)) throw invalid('resources', `${where}: must be a mapping`);
  const { resource_type, intent = 'present', ...rest } = r as Record<string, unknown>;
  if (resource_type !== RESOURCE_TYPE) throw invalid('resources', `${where}: resource_type must be ${RESOURCE_TYPE}`);
  if (intent !== 'present' && intent !== 'removed') throw invalid('resources', `${where}: intent must be present or removed`);
  if (typeof rest.sharename !== 'string') throw invalid('resources', `${where}: sharename is missing`);
  if (intent === 'removed') {
    const extra = Object.keys(rest).filter((k) => k !== 'sharename');
    if (extra.length) throw invalid('resources', `${where} (${rest.sharename}): a removed resource names only its sharename (not ${extra.join(', ')})`);
    return { sharename: rest.sharename, intent };
  }
  for (const k of Object.keys(rest)) if (!RESOURCE_KEYS.includes(k as Key)) throw invalid('resources', `${where} (${rest.sharename}): unknown or internal setting ${k}`);
  try {
    return { sharename: rest.sharename, intent, share: parseShare(rest) };
  } catch (e) {
    throw invalid('resources', `${where} (${rest.sharename}): ${(e as Error).message}`);
  }
}

/** The settings in which the stored share differs from the resource. */
export function changedKeys(stored: Share, wanted: Share): Key[] {
  return RESOURCE_KEYS.filter((k) => k !== 'sharename' && JSON.stringify(stored[k] ?? (shareSchema[k] as { default?: unknown }).default) !== JSON.stringify(wanted[k] ?? (shareSchema[k] as { default?: unknown }).default));
}
