/** Errors that reach the user: a stable code, a readable message and, for bad input, the field at fault. */
export type ErrorCode =
  | 'invalid'          // bad input: names the field and the rule
  | 'not_found'
  | 'exists'
  | 'unavailable'      // the host cannot do this (e.g. lxc mode without Proxmox VE)
  | 'unreachable'      // something the gateway depends on (the PVE API, a key file, storage.cfg) cannot be reached or read now
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

/** What a system call's error means, in words (the raw errno text is never shown). */
const ERRNO_TEXT: Record<string, string> = {
  ENOENT: 'it does not exist', EACCES: 'permission denied', EPERM: 'the operation is not permitted', EEXIST: 'it already exists',
  ENOTDIR: 'a part of the path is not a directory', EISDIR: 'it is a directory', ENOTEMPTY: 'the directory is not empty',
  ENOSPC: 'no space is left on the device', EDQUOT: 'the quota is exhausted', EROFS: 'the file system is read-only',
  EBUSY: 'it is busy', ELOOP: 'too many symbolic links', ENAMETOOLONG: 'the name is too long', EXDEV: 'it is on another file system',
  EMFILE: 'too many open files', EIO: 'an input/output error occurred',
};
const SYSCALL_TEXT: Record<string, string> = {
  mkdir: 'create directory', rmdir: 'remove directory', open: 'open', read: 'read', write: 'write', rename: 'rename', unlink: 'remove',
  rm: 'remove', stat: 'look at', lstat: 'look at', chmod: 'change the mode of', chown: 'change the owner of', scandir: 'list', realpath: 'resolve',
  copyfile: 'copy', utime: 'set the time of', mkdtemp: 'create a temporary directory in', access: 'access',
};

export function toGatewayError(e: unknown): GatewayError {
  if (e instanceof GatewayError) return e;
  const x = e as NodeJS.ErrnoException;
  if (x && typeof x === 'object' && typeof x.code === 'string' && typeof x.syscall === 'string') {
    const what = SYSCALL_TEXT[x.syscall] ?? x.syscall;
    const why = ERRNO_TEXT[x.code] ?? 'the system refused it';
    return new GatewayError('failed', `cannot ${what}${x.path ? ` ${x.path}` : ''}: ${why}`);
  }
  const msg = e instanceof Error ? e.message : String(e);
  return new GatewayError('failed', msg);
}
