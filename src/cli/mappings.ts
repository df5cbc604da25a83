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
      ad_password_file: { type: 'string', optional: true, keepSpace: true, description: 'With --ad-domain on a node not joined yet: file with the join password of --ad-user (one line); - for stdin' },
    },
    apply: async (v, params) => {
      if (v.ad_password_file !== undefined) params.ad_password = await secretLine(String(v.ad_password_file), 'ad_password_file');
      if (v.password_file === undefined) return;
      Object.assign(params, await passwordParams(String(v.password_file), [...asList(params.users), ...asList(params.read_users)]));
    },
  },
  'ad join': adPasswordOption,
  'ad leave': adPasswordOption,
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
