/**
 * An operation is declared once, as Proxmox declares its API handlers: parameters, result,
 * required privilege, and the handler. The CLI, the REST API and the OpenAPI document are all
 * derived from these declarations.
 */
import type { Schema } from './schema.ts';

export interface Privilege {
  /** ACL path, e.g. /storage */
  path: string;
  /** Any one of these privileges suffices. */
  privs: string[];
}

/** Where things sit in Proxmox's ACL tree (the daemon's adapter answers from storage.cfg). */
export interface AclPaths {
  /** /storage/<id> of the storage whose directory holds `fsPath` (the deepest one), else /storage. */
  storage(fsPath: string): Promise<string>;
}

export interface Operation<Ctx = unknown> {
  /** CLI command words, e.g. ['create'] or ['template', 'list']. */
  command: string[];
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** REST path under /api2/json, with {placeholders} that are parameters. */
  path: string;
  description: string;
  parameters: Schema;
  /** Parameters given as positional CLI arguments, in order. */
  positional?: string[];
  /** CLI flag aliases: flag name (without --) to parameter name (repeatable for lists). */
  aliases?: Record<string, string>;
  /** Parameters that exist only on the CLI (e.g. files on the caller's machine). */
  cliOnly?: string[];
  /** Parameters the CLI refuses on argv (secrets). */
  apiOnly?: string[];
  returns: { description: string; schema?: Record<string, unknown> };
  privilege: Privilege;
  /** Long operations run as tasks in the daemon. */
  async?: boolean;
  handler: (params: Record<string, unknown>, ctx: Ctx) => Promise<unknown>;
  /** Human-readable rendering for the CLI without --json. */
  format?: (result: unknown) => string;
}
