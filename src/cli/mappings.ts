/**
 * Options that exist only on the command line, and how they map onto an operation's own parameters
 * (as pvesm's `$cmddef` maps file-reading options): files on the caller's machine, and CLI behaviour
 * such as --watch. The operations themselves never read the caller's files.
 */
import { readFile } from 'node:fs/promises';
import { invalid } from '../core/errors.ts';
import type { Schema } from '../core/schema.ts';
import { passwordRule } from '../core/share.ts';

export interface CliOptions {
  options: Schema;
  /** Turns the options given into the operation's parameters (before they are validated). */
  apply?: (values: Record<string, unknown>, params: Record<string, unknown>) => Promise<void>;
}

const asList = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : typeof v === 'string' ? v.split(',') : []).filter(Boolean);

const PASSWORD_FILE = { type: 'string', optional: true, keepSpace: true, description: 'File with the password of the users being added (one line), or user:password lines; - for stdin' } as const;

async function addedPasswords(v: Record<string, unknown>, params: Record<string, unknown>, fields: string[]): Promise<void> {
  if (v.password_file === undefined) return;
  Object.assign(params, await passwordParams(String(v.password_file), fields.flatMap((f) => asList(params[f]))));
}

/** The domain account's password for ad join/leave: one line from a file or stdin, never argv. */
const adPasswordOption: CliOptions = {
  options: { password_file: { type: 'string', optional: true, keepSpace: true, description: 'File with the domain account\'s password (one line); - for stdin' } },
  apply: async (v, params) => {
    if (v.password_file !== undefined) params.password = await secretLine(String(v.password_file), 'password_file');
  },
};

/** The first line of a secret file (or stdin for -). */
async function secretLine(file: string, field: string): Promise<string> {
  let text: string;
  try {
    text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
  } catch {
    throw invalid(field, `cannot read ${file}`);
  }
  const line = text.split('\n')[0]!.replace(/\r$/, '');
  if (!line) throw invalid(field, `${file} is empty: it must hold the password on its first line`);
  return line;
}

export const cliOptions: Record<string, CliOptions> = {
  create: {
    options: {
      password_file: { type: 'string', optional: true, keepSpace: true, description: 'File with the password of the share\'s users (one line), or user:password lines; - for stdin' },
      ad_password_file: { type: 'string', optional: true, keepSpace: true, description: 'With --ad-domain on a node not joined yet, or in lxc and vm mode: file with the join password of --ad-user (one line); - for stdin' },
    },
    apply: async (v, params) => {
      if (v.ad_password_file !== undefined) params.ad_password = await secretLine(String(v.ad_password_file), 'ad_password_file');
      if (v.password_file === undefined) return;
      Object.assign(params, await passwordParams(String(v.password_file), [...asList(params.users), ...asList(params.read_users)]));
    },
  },
  // Passwords of the users an update or access change adds.
  update: { options: { password_file: PASSWORD_FILE }, apply: async (v, params) => addedPasswords(v, params, ['users', 'read_users']) },
  access: { options: { password_file: PASSWORD_FILE }, apply: async (v, params) => addedPasswords(v, params, ['add_users', 'add_read_users']) },
  passwd: {
    options: { password_file: { type: 'string', keepSpace: true, description: 'File with the new password (one line); - for stdin' } },
    apply: async (v, params) => {
      const r = await passwordParams(String(v.password_file), []);
      if (r.password === undefined) throw invalid('password_file', 'must hold one line: the new password');
      params.password = r.password;
    },
  },
  apply: {
    options: {
      file: { type: 'string', description: 'The resources document (YAML or JSON, as `show --all --format yaml` prints it); - for stdin' },
      password_file: PASSWORD_FILE,
    },
    apply: async (v, params) => {
      let text: string;
      try { text = v.file === '-' ? await readStdin() : await readFile(String(v.file), 'utf8'); } catch { throw invalid('file', `cannot read ${String(v.file)}`); }
      let doc: unknown;
      // yaml (84 modules) is loaded only by the command that reads YAML.
      const { parse: parseYaml } = await import('yaml');
      try { doc = parseYaml(text); } catch (e) { throw invalid('file', `${String(v.file)} is not YAML: ${(e as Error).message.split('\n')[0]}`); }
      const resources = (doc as { resources?: unknown } | null)?.resources;
      if (!Array.isArray(resources)) throw invalid('file', `${String(v.file)} has no resources list (as \`show --all --format yaml\` prints)`);
      params.resources = resources;
      if (v.password_file !== undefined) {
        const users = resources.flatMap((r) => [...asList((r as Record<string, unknown>)?.users), ...asList((r as Record<string, unknown>)?.read_users)]);
        Object.assign(params, await passwordParams(String(v.password_file), users));
      }
    },
  },
  // lxc share with ad_domain: its container leaves the domain (docs/ad.md)
  delete: {
    options: { ad_password_file: { type: 'string', optional: true, keepSpace: true, description: 'lxc or vm share with ad_domain: file with the password of --ad-user, which deletes its guest\'s computer account (one line); - for stdin' } },
    apply: async (v, params) => { if (v.ad_password_file !== undefined) params.ad_password = await secretLine(String(v.ad_password_file), 'ad_password_file'); },
  },
  'ad join': adPasswordOption,
  'ad leave': adPasswordOption,
  'ha ad join': adPasswordOption,
  'ha ad leave': adPasswordOption,
  metrics: {
    options: { watch: { type: 'boolean', optional: true, default: false, description: 'Refresh the display every interval until interrupted' } },
  },
};

/**
 * --password-file: one line is the password of every user (`password`); `user:password` lines name
 * the user (`passwords`). `-` reads standard input.
 */
export async function passwordParams(file: string, users: readonly string[]): Promise<{ password?: string; passwords?: Record<string, string> }> {
  let text: string;
  try {
    text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
  } catch {
    throw invalid('password_file', `cannot read ${file}`);
  }
  const lines = text.split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l !== '');
  if (lines.length === 1 && !users.some((u) => lines[0]!.startsWith(u + ':'))) {
    const rule = passwordRule(lines[0]!);
    if (rule) throw invalid('password_file', `the password ${rule}`);
    return { password: lines[0]! };
  }
  const passwords: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i <= 0) continue;
    const [u, pw] = [l.slice(0, i), l.slice(i + 1)];
    const rule = passwordRule(pw);
    if (rule) throw invalid('password_file', `the password for ${u} ${rule}`);
    passwords[u] = pw;
  }
  return { passwords };
}

function readStdin(): Promise<string> {
  return new Promise((res, rej) => {
    let s = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (d) => (s += d));
    process.stdin.on('end', () => res(s));
    process.stdin.on('error', rej);
  });
}
