#!/usr/bin/env node
/**
 * pve-smbgateway: the command line, derived from the operation declarations.
 * `--json` prints exactly one JSON document {success, data, error, timestamp}; failures exit non-zero.
 */
import { GatewayError, toGatewayError } from '../core/errors.ts';
import { printers } from './printers.ts';
import type { Operation } from '../core/operation.ts';
import type { Gateway } from '../provision/context.ts';
import { commands, operationsOf } from '../api/commands.ts';
import { watch } from './watch.ts';
import { cliOptions } from './mappings.ts';
import { validate } from '../core/schema.ts';

export interface Parsed { op: Operation<Gateway>; params: Record<string, unknown>; cli: Record<string, unknown>; json: boolean }

function usage(): string {
  const lines = ['usage: pve-smbgateway <command> [args] [--json]', '', 'commands:'];
  for (const op of commands) {
    const pos = op.positional.map((p) => `<${p}>`).join(' ');
    lines.push(`  ${[...op.command, pos].filter(Boolean).join(' ').padEnd(26)} ${op.description}`);
  }
  lines.push('', "run 'pve-smbgateway help <command>' for its options");
  return lines.join('\n');
}

function helpFor(op: Operation<Gateway>): string {
  const lines = [`usage: pve-smbgateway ${op.command.join(' ')} ${(op.positional ?? []).map((p) => `<${p}>`).join(' ')} [options] [--json]`, '', op.description, ''];
  const rev = new Map<string, string>();
  for (const [flag, param] of Object.entries(op.aliases ?? {})) rev.set(param, flag);
  for (const [k, p] of Object.entries({ ...op.parameters, ...cliOptions[op.command.join(' ')]?.options })) {
    if (p.internal || op.apiOnly?.includes(k) || op.positional?.includes(k)) continue;
    const flag = rev.get(k) ?? k.replace(/_/g, '-');
    const extra = p.type === 'string' && p.enum ? ` (${p.enum.join('|')})` : p.type === 'list' ? ' (repeatable)' : '';
    lines.push(`  --${flag.padEnd(22)} ${p.description}${extra}${p.default !== undefined && !(Array.isArray(p.default) && !p.default.length) ? ` [default: ${String(p.default)}]` : ''}`);
  }
  return lines.join('\n');
}

/**
 * The operation of a command: found in the index (api/commands.ts), then only its own module imported
 * (not every operation's code: bench/README.md, "CLI start").
 */
async function operationFor(words: readonly string[]): Promise<Operation<Gateway> | undefined> {
  const entry = commands
    .filter((o) => o.command.every((w, i) => words[i] === w))
    .sort((a, b) => b.command.length - a.command.length)[0];
  if (!entry) return undefined;
  return (await operationsOf(entry.module)).find((o) => o.command.join(' ') === entry.command.join(' '));
}

export async function parseArgs(argv: string[]): Promise<Parsed | { help: string }> {
  const json = argv.includes('--json');
  const args = argv.filter((a) => a !== '--json');
  if (!args.length || args[0] === 'help' && args.length === 1 || args[0] === '--help' || args[0] === '-h') return { help: usage() };
  const wantHelp = args[0] === 'help';
  const words = wantHelp ? args.slice(1) : args;
  const op = await operationFor(words);
  if (!op) throw new GatewayError('invalid', `unknown command "${words.join(' ')}"\n${usage()}`, 'command');
  if (wantHelp || words.includes('--help')) return { help: helpFor(op) };
  const rest = words.slice(op.command.length);
  const params: Record<string, unknown> = {};
  const cli: Record<string, unknown> = {};
  const own = cliOptions[op.command.join(' ')]?.options ?? {};
  const positional = [...(op.positional ?? [])];
  for (let i = 0; i < rest.length; i++) {
    // `apply -f FILE`, as kubectl and ceph smb take it.
    const a = rest[i] === '-f' ? '--file' : rest[i]!;
    if (!a.startsWith('--')) {
      const name = positional.shift();
      if (!name) throw new GatewayError('invalid', `unexpected argument ${JSON.stringify(a)}`);
      params[name] = a;
      continue;
    }
    let flag = a.slice(2);
    let value: string | undefined;
    const eq = flag.indexOf('=');
    if (eq >= 0) { value = flag.slice(eq + 1); flag = flag.slice(0, eq); }
    const name = op.aliases?.[flag] ?? flag.replace(/-/g, '_');
    const prop = op.parameters[name] ?? own[name];
    if (!prop || prop.internal) throw new GatewayError('invalid', `${name}: unknown option --${flag}`, name);
    const into = op.parameters[name] ? params : cli;
    if (op.apiOnly?.includes(name)) throw new GatewayError('invalid', `${name}: not accepted on the command line (it would show in the process list); use --password-file FILE or --password-file - for stdin`, name);
    if (value === undefined) {
      const next = rest[i + 1];
      if (prop.type === 'boolean' && (next === undefined || next.startsWith('--') || !/^(1|0|true|false|yes|no|on|off)$/i.test(next))) value = 'true';
      else if (next === undefined) throw new GatewayError('invalid', `${name}: --${flag} needs a value`, name);
      else { value = next; i++; }
    }
    if (prop.type === 'list') into[name] = [...((into[name] as string[] | undefined) ?? []), ...value.split(',')];
    else into[name] = value;
  }
  if (positional.length && op.parameters[positional[0]!] && !op.parameters[positional[0]!]!.optional)
    throw new GatewayError('invalid', `${positional[0]}: missing argument <${positional[0]}>`, positional[0]);
  return { op, params, cli, json };
}

export async function main(argv: string[], gw?: Gateway): Promise<number> {
  const json = argv.includes('--json');
  const out = (data: unknown, error?: GatewayError) => {
    const env: Record<string, unknown> = { success: !error, data: error ? null : data };
    if (error) env.error = { code: error.code, message: error.message, ...(error.field ? { field: error.field } : {}) };
    env.timestamp = new Date().toISOString();
    process.stdout.write(JSON.stringify(env) + '\n');
  };
  try {
    const parsed = await parseArgs(argv);
    if ('help' in parsed) {
      if (json) out({ help: parsed.help }); else process.stdout.write(parsed.help + '\n');
      return 0;
    }
    // Loaded here, not for help: the store and the Samba adapter.
    const { makeGateway } = await import('../provision/context.ts');
    const g = gw ?? makeGateway(undefined, undefined, process.env.SMBGW_VERBOSE ? (m) => process.stderr.write(m + '\n') : undefined);
    // The CLI's own options, then the operation's parameters, each validated once.
    const extra = cliOptions[parsed.op.command.join(' ')];
    const cli = validate(extra?.options ?? {}, parsed.cli);
    await extra?.apply?.(cli, parsed.params);
    const params = validate(parsed.op.parameters, parsed.params);
    if (cli.watch === true) return await watch(parsed.op, params, g, json);
    const result = await parsed.op.handler(params, g);
    if (json) out(result);
    else process.stdout.write((printers[parsed.op.command.join(' ')]?.(result) ?? JSON.stringify(result, null, 2)) + '\n');
    return 0;
  } catch (e) {
    const err = toGatewayError(e);
    if (json) out(null, err);
    else process.stderr.write(`error: ${err.message}\n`);
    return err.code === 'invalid' ? 2 : 1;
  }
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/pve-smbgateway')) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
}
