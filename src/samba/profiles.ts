/**
 * Security profiles as smb.conf parameters. Both refuse SMB1, anonymous (null session) access,
 * guest mapping and NTLMv1. `standard` requires signing and SMB2.1 or newer; `high` additionally
 * requires SMB3 with encryption for its shares (encryption exists only in SMB3, so older dialects are refused).
 *
 * The managed file is included at the end of the admin's smb.conf, so its [global] values win: each
 * one is therefore the stricter of ours and the admin's own (`admin`, as testparm reads smb.conf
 * without our include line). The gateway never weakens what the admin configured.
 */
import type { Share } from '../core/share.ts';

export type Params = [string, string][];

/** The admin's [global] parameters that differ from Samba's defaults, by canonical name (lower case). */
export type AdminGlobals = Readonly<Record<string, string>>;

/**
 * How strict each value of the [global] parameters we set is (higher is stricter), by the names
 * admins write and testparm prints (SMB2 is SMB2_10, SMB3 is SMB3_11, auto is if_required, ...).
 */
const STRICTNESS: Record<string, Record<string, number>> = {
  'server min protocol': {
    core: 0, coreplus: 1, lanman1: 2, lanman2: 3, nt1: 4, default: 5, smb2_02: 5, smb2: 6, smb2_10: 6, smb3_00: 7, smb3_02: 8, smb3: 9, smb3_11: 9,
  },
  'server signing': { no: 0, off: 0, disabled: 0, false: 0, default: 1, auto: 1, yes: 1, true: 1, if_required: 1, desired: 2, mandatory: 3, required: 3 },
  'restrict anonymous': { 0: 0, 1: 1, 2: 2 },
  'map to guest': { 'bad password': 0, 'bad uid': 1, 'bad user': 1, never: 2 },
  'ntlm auth': { yes: 0, 'ntlmv1-permitted': 0, 'mschapv2-and-ntlmv2-only': 1, no: 2, 'ntlmv2-only': 2, disabled: 3 },
  'server schannel': { no: 0, false: 0, auto: 1, yes: 2, true: 2 },
};

/** The stricter of our value and the admin's (ours when theirs is unknown or not stricter). */
export function stricter(param: string, ours: string, theirs: string | undefined): string {
  const rank = STRICTNESS[param];
  if (!rank || theirs === undefined) return ours;
  const t = rank[theirs.trim().toLowerCase()];
  const o = rank[ours.toLowerCase()];
  return t !== undefined && o !== undefined && t > o ? theirs.trim() : ours;
}

/** Global hardening for the shares we serve. Only the strictest setting every share allows, never weaker than the admin's. */
export function globalParams(shares: readonly Share[], admin: AdminGlobals = {}): Params {
  const allHigh = shares.length > 0 && shares.every((s) => s.security_profile === 'high');
  const anyGuest = shares.some((s) => s.guest_ok);
  const ours: Params = [
    ['server min protocol', allHigh ? 'SMB3' : 'SMB2_10'],
    ['server signing', 'mandatory'],
    ['restrict anonymous', '2'],
    ['map to guest', anyGuest ? 'Bad User' : 'Never'],
    ['ntlm auth', 'ntlmv2-only'],
    ['server schannel', 'yes'],
  ];
  return ours.map(([k, v]) => [k, stricter(k, v, admin[k])]);
}

export function shareProfileParams(s: Share): Params {
  return s.security_profile === 'high' ? [['smb encrypt', 'required']] : [];
}
