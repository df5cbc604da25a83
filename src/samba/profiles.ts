/**
 * Security profiles as smb.conf parameters. Both refuse SMB1, anonymous (null session) access,
 * guest mapping and NTLMv1. `standard` requires signing and SMB2.1 or newer; `high` additionally
 * requires SMB3 with encryption for its shares (encryption exists only in SMB3, so older dialects are refused).
 */
import type { Share } from '../core/share.ts';

export type Params = [string, string][];

/** Global hardening for the shares we serve. Only the strictest setting every share allows. */
export function globalParams(shares: readonly Share[]): Params {
  const allHigh = shares.length > 0 && shares.every((s) => s.security_profile === 'high');
  const anyGuest = shares.some((s) => s.guest_ok);
  return [
    ['server min protocol', allHigh ? 'SMB3' : 'SMB2_10'],
    ['server signing', 'mandatory'],
    ['restrict anonymous', '2'],
    ['map to guest', anyGuest ? 'Bad User' : 'Never'],
    ['ntlm auth', 'ntlmv2-only'],
    ['server schannel', 'yes'],
  ];
}

export function shareProfileParams(s: Share): Params {
  return s.security_profile === 'high' ? [['smb encrypt', 'required']] : [];
}
