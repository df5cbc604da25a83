/**
 * An operation is declared once, as Proxmox declares its API handlers: parameters, result,
 * required privileges, and the handler. The CLI, the REST API and the OpenAPI document are all
 * derived from these declarations.
 */
import { validate, type Infer, type Schema } from './schema.ts';

export interface Privilege {
  /** ACL path, e.g. /storage or /storage/local-zfs */
  path: string;
  /** Any one of these privileges suffices (none: being authenticated is enough). */
  privs: string[];
  /**
   * Callers with Proxmox VE credentials must moreover be this user (Proxmox allows some things, e.g.
   * bind mounts of host paths into containers, to root@pam only; a PVE API token is not root@pam
   * there). Gateway tokens need one of `privs` instead.
   */
  pveUser?: string;
}

/** Where things sit in Proxmox's ACL tree (the daemon's adapter answers from storage.cfg). */
export interface AclPaths {
  /** /storage/<id> of the storage whose directory holds `fsPath` (the deepest one), else /storage. */
  storage(fsPath: string): Promise<string>;
}

/**
 * Privileges that depend on the call, as Proxmox's `check => ['and', ...]`: every Privilege
 * returned is required (each one is "any of its privs on its path").
 */
export interface PrivilegeRule<Ctx = unknown, P = any> {
  /** The rule in words (OpenAPI document, docs). */
  description: string;
  /** From the validated parameters (defaults filled in) and the gateway (e.g. the stored share). */
  required(params: P, ctx: Ctx, acl: AclPaths): Promise<Privilege[]>;
}

/**
 * The declaration. The REST server and the CLI validate the parameters against `parameters` once
 * (defaults filled in); the privilege rule and the handler get the typed values, `Infer<S>`.
 */
export interface Operation<Ctx = unknown, S extends Schema = Schema, R = unknown> {
  /** CLI command words, e.g. ['create'] or ['template', 'list']. */
  command: string[];
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** REST path under /api2/json, with {placeholders} that are parameters. */
  path: string;
  description: string;
  parameters: S;
  /** Parameters given as positional CLI arguments, in order. */
  positional?: string[];
  /** CLI flag aliases: flag name (without --) to parameter name (repeatable for lists). */
  aliases?: Record<string, string>;
  /** Parameters the CLI refuses on argv (secrets; cli/mappings.ts may fill them from a file). */
  apiOnly?: string[];
  /** The result (JSON schema); `contentType` for one that is not JSON (e.g. Prometheus text). */
  returns: { description: string; schema: Record<string, unknown>; contentType?: string };
  /** Served at `path` itself rather than under /api2/json, its result as is (not wrapped in {"data": ...}). */
  root?: boolean;
  /** The operation can also be followed as server-sent events (Accept: text/event-stream). */
  events?: { description: string };
  /** What an API caller needs (the CLI runs as root on the node and checks nothing, like pvesm). */
  privilege: Privilege | PrivilegeRule<Ctx, Infer<S>>;
  /** Long operations run as tasks in the daemon. */
  async?: boolean;
  // Method syntax: a registry of operations with different schemas is one list.
  handler(params: Infer<S>, ctx: Ctx): Promise<R>;
}

/** Calls an operation from code (the demo, benchmarks): its parameters are validated as the CLI and REST do. */
export async function invoke<Ctx, S extends Schema, R>(op: Operation<Ctx, S, R>, params: Record<string, unknown>, ctx: Ctx): Promise<R> {
  return op.handler(validate(op.parameters, params), ctx);
}

/**
 * Declares operations for a context, inferring each one's parameter and result types from its
 * declaration: `const op = defineOperation<Gateway>(); export const listOp = op({ ... });`.
 */
export function defineOperation<Ctx>() {
  return <const S extends Schema, R>(op: Operation<Ctx, S, R>): Operation<Ctx, S, R> => op;
}

export function isPrivilegeRule<Ctx>(p: Privilege | PrivilegeRule<Ctx>): p is PrivilegeRule<Ctx> {
  return typeof (p as PrivilegeRule<Ctx>).required === 'function';
}

/** One privilege in words: "Datastore.Audit or Datastore.Allocate on /storage". */
export function privilegeText(p: Privilege): string {
  const privs = p.privs.length ? `${p.privs.join(' or ')} on ${p.path}` : '';
  const user = p.pveUser ? `being ${p.pveUser} (Proxmox VE credentials)${privs ? `; with a gateway token: ${privs}` : ''}` : '';
  return user || privs || '(authenticated)';
}

/** The privilege declaration in words, for the OpenAPI document and the docs. */
export function describePrivilege(p: Privilege | PrivilegeRule<never>): string {
  return isPrivilegeRule(p) ? p.description : privilegeText(p);
}

/** A rule that always asks for the same privileges, all of them. */
export function allOf<Ctx = unknown>(...privs: Privilege[]): PrivilegeRule<Ctx> {
  return { description: privs.map(privilegeText).join(', and '), required: async () => privs };
}
