/** Errors that reach the user: a stable code, a readable message and, for bad input, the field at fault. */
export type ErrorCode =
  | 'invalid'          // bad input: names the field and the rule
  | 'not_found'
  | 'exists'
  | 'unavailable'      // the host cannot do this (e.g. lxc mode without Proxmox VE)
  | 'locked'
  | 'failed'           // an external command or step failed
  | 'forbidden'
  | 'unauthorized';

export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly field: string | undefined;
  /** Extra context (e.g. undo steps that failed during a rollback). */
  readonly details: Record<string, unknown> | undefined;
  constructor(code: ErrorCode, message: string, field?: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'GatewayError';
    this.code = code;
    this.field = field;
    this.details = details;
  }
}

/** Bad input: the message names the field and the rule it breaks. */
export function invalid(field: string, rule: string): GatewayError {
  return new GatewayError('invalid', `${field}: ${rule}`, field);
}

export function toGatewayError(e: unknown): GatewayError {
  if (e instanceof GatewayError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new GatewayError('failed', msg);
}
