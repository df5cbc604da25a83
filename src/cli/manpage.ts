/**
 * Man pages and bash completion, generated from the operation declarations (api/registry.ts) and the
 * daemon's settings schema, as Proxmox generates pvesm.1 from its API schema: what `help <command>`
 * prints, the page says, and the completion offers. Pure functions; scripts/gen-docs.ts writes the files.
 */
import type { Operation } from '../core/operation.ts';
import type { Prop, Schema } from '../core/schema.ts';
import type { Gateway } from '../provision/context.ts';
import { daemonFileSchema, DEFAULT_PORT } from '../api/daemon.ts';
import { settingsFileSchema } from '../core/settings.ts';
import { cliOptions } from './mappings.ts';

export interface CliFlag { flag: string; param: string; prop: Prop }

/** The --flags a command takes on the command line (as `help <command>` lists them). */
export function cliFlags(op: Operation<Gateway>): CliFlag[] {
  const rev = new Map<string, string>();
  for (const [flag, param] of Object.entries(op.aliases ?? {})) rev.set(param, flag);
  const out: CliFlag[] = [];
  for (const [k, p] of Object.entries({ ...op.parameters, ...cliOptions[op.command.join(' ')]?.options } as Schema)) {
    if (p.internal || op.apiOnly?.includes(k) || op.positional?.includes(k)) continue;
    out.push({ flag: rev.get(k) ?? k.replace(/_/g, '-'), param: k, prop: p });
  }
  return out;
}

/** roff-escapes text: backslashes, and a leading dot or quote that would start a request. */
export function roff(s: string): string {
  return s.replace(/\\/g, '\\e').replace(/-/g, '\\-').replace(/^([.'])/gm, '\\&$1');
}

function valueHint(p: Prop): string {
  if (p.type === 'boolean') return '';
  if (p.type === 'string' && p.enum) return ` <${p.enum.join('|')}>`;
  if (p.type === 'integer' || p.type === 'number') return ' <number>';
  return ' <value>';
}

function propText(p: Prop): string {
  const bits = [p.description ?? ''];
  if (p.type === 'list') bits.push('(repeatable, or comma-separated)');
  if ((p.type === 'integer' || p.type === 'number') && (p.minimum !== undefined || p.maximum !== undefined)) bits.push(`(${p.minimum ?? ''}..${p.maximum ?? ''})`);
  if (p.default !== undefined && !(Array.isArray(p.default) && !p.default.length)) bits.push(`[default: ${String(p.default)}]`);
  return bits.filter(Boolean).join(' ');
}

function header(name: string, section: number, version: string, date: string, title: string): string[] {
  return [`.TH ${name.toUpperCase()} ${section} "${date}" "pve-smbgateway ${version}" "${title}"`];
}

export interface PageInfo { version: string; date: string }

/** pve-smbgateway(1): every command, its arguments and options, like pvesm(1). */
export function cliManPage(ops: readonly Operation<Gateway>[], info: PageInfo): string {
  const l = header('pve-smbgateway', 1, info.version, info.date, 'Proxmox VE SMB gateway');
  l.push('.SH NAME', 'pve-smbgateway \\- turn Proxmox VE storage into hardened SMB shares');
  l.push('.SH SYNOPSIS', '.B pve-smbgateway', '.I command', '[\\fIargs\\fR] [\\fIoptions\\fR] [\\fB\\-\\-json\\fR]');
  l.push('.SH DESCRIPTION',
    'Creates and manages SMB shares served natively by Samba on this host, from an unprivileged LXC container, or from a VM.',
    'Every command takes \\fB\\-\\-json\\fR and then prints exactly one JSON document {success, data, error, timestamp}.',
    'A command that fails exits non\\-zero: 2 for bad input, 1 otherwise.',
    'The same operations are served over HTTPS by \\fBpve-smbgatewayd\\fR(8).');
  l.push('.SH COMMANDS');
  for (const op of ops) {
    const pos = (op.positional ?? []).map((p) => `\\fI<${roff(p)}>\\fR`).join(' ');
    l.push('.TP', [`\\fBpve-smbgateway ${op.command.map(roff).join(' ')}\\fR`, pos, '[\\fIoptions\\fR]'].filter(Boolean).join(' '), roff(op.description));
    const flags = cliFlags(op);
    if (flags.length) {
      l.push('.RS');
      for (const f of flags) l.push('.TP', `\\fB\\-\\-${roff(f.flag)}\\fR${roff(valueHint(f.prop))}`, roff(propText(f.prop)));
      l.push('.RE');
    }
  }
  l.push('.SH FILES', ...filesSection());
  l.push('.SH SEE ALSO', '\\fBpve-smbgatewayd\\fR(8), \\fBsmb.conf\\fR(5), \\fBpvesm\\fR(1)');
  return l.join('\n') + '\n';
}

function filesSection(): string[] {
  return [
    '.TP', '\\fI/etc/smbgateway/gateway.json\\fR', roff(`Where the gateway keeps things (JSON; keys: ${Object.keys(settingsFileSchema).join(', ')}). Environment SMBGATEWAY_CONFIG names another file.`),
    '.TP', '\\fI/etc/smbgateway/shares.cfg\\fR', roff('The shares (on Proxmox VE: /etc/pve/smbgateway/shares.cfg, cluster-wide). Secrets in priv/ beside it.'),
    '.TP', '\\fI/etc/samba/smbgateway.conf\\fR', roff('The managed Samba fragment; /etc/samba/smb.conf includes it with the line "include = /etc/samba/smbgateway.conf".'),
    '.TP', '\\fI/var/lib/smbgateway\\fR', roff('Node-local state: metrics database, task logs, the daemon\'s TLS key and certificate.'),
  ];
}

/** pve-smbgatewayd(8): the daemon and every setting of daemon.json. */
export function daemonManPage(info: PageInfo): string {
  const l = header('pve-smbgatewayd', 8, info.version, info.date, 'Proxmox VE SMB gateway');
  l.push('.SH NAME', 'pve-smbgatewayd \\- REST API, metrics collector and web wizard of the SMB gateway');
  l.push('.SH SYNOPSIS', '.B pve-smbgatewayd', '[\\fB\\-\\-verbose\\fR]');
  l.push('.SH DESCRIPTION',
    roff(`Serves the operations of pve-smbgateway(1) over HTTPS under /api2/json (port ${DEFAULT_PORT} by default), the Prometheus text at /metrics and a web wizard at /, and collects the shares' metrics.`),
    'It runs as the systemd service \\fBpve-smbgatewayd.service\\fR and logs to the journal (\\fBjournalctl \\-u pve-smbgatewayd\\fR).',
    roff('SIGHUP (systemctl reload pve-smbgatewayd) reads gateway.json and daemon.json again and restarts the daemon\'s listener and collector inside the same process, so every setting takes effect; a file with an error is reported in the journal and the running settings are kept.'));
  l.push('.SH OPTIONS', '.TP', '\\fB\\-\\-verbose\\fR', 'Log every operation step (also: environment SMBGW_VERBOSE=1).');
  l.push('.SH SETTINGS', roff('/etc/smbgateway/daemon.json (environment SMBGATEWAYD_CONFIG names another file) is a JSON object with these keys, all optional:'));
  for (const [k, p] of Object.entries(daemonFileSchema as Schema)) l.push('.TP', `\\fB${roff(k)}\\fR`, roff(propText(p)));
  l.push('.SH FILES', ...filesSection());
  l.push('.SH SEE ALSO', '\\fBpve-smbgateway\\fR(1), \\fBsystemctl\\fR(1), \\fBjournalctl\\fR(1)');
  return l.join('\n') + '\n';
}

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * bash completion for pve-smbgateway: command words, then the command's --flags, then values of enum
 * flags; share names come from `pve-smbgateway list --json` for the first positional argument.
 */
export function bashCompletion(ops: readonly Operation<Gateway>[]): string {
  const firsts = [...new Set(ops.map((o) => o.command[0]!)), 'help'];
  const subs = new Map<string, Set<string>>();
  for (const o of ops) if (o.command.length > 1) { const s = subs.get(o.command[0]!) ?? new Set(); s.add(o.command[1]!); subs.set(o.command[0]!, s); }
  const keys = ops.map((o) => o.command.join(' ')).sort((a, b) => b.length - a.length);
  const cases: string[] = [];
  const values: string[] = [];
  for (const o of ops) {
    const key = o.command.join(' ');
    const flags = cliFlags(o);
    cases.push(`    ${shq(key)}) opts=${shq([...flags.map((f) => `--${f.flag}`), '--json', '--help'].join(' '))}; npos=${o.positional?.length ?? 0} ;;`);
    for (const f of flags) {
      if (f.prop.type === 'string' && f.prop.enum) values.push(`    ${shq(`${key} --${f.flag}`)}) COMPREPLY=( $(compgen -W ${shq(f.prop.enum.join(' '))} -- "$cur") ); return ;;`);
      else if (f.prop.type !== 'boolean') values.push(`    ${shq(`${key} --${f.flag}`)}) ${/file$/.test(f.flag) ? '_filedir' : ':'}; return ;;`);
    }
  }
  return `# bash completion for pve-smbgateway (generated from the operation declarations)
_pve_smbgateway() {
  local cur prev words cword
  _init_completion || return
  local i cmd="" key="" k
  for ((i = 1; i < cword; i++)); do
    [[ \${words[i]} == -* ]] && break
    cmd="\${cmd:+$cmd }\${words[i]}"
  done
  for k in ${keys.map(shq).join(' ')}; do
    if [[ "$cmd " == "$k "* ]]; then key=$k; break; fi
  done
  if [[ -z $key ]]; then
    case "$cmd" in
      '') COMPREPLY=( $(compgen -W ${shq(firsts.join(' '))} -- "$cur") ) ;;
${[...subs].map(([w, s]) => `      ${shq(w)}) COMPREPLY=( $(compgen -W ${shq([...s].join(' '))} -- "$cur") ) ;;`).join('\n')}
      help) COMPREPLY=( $(compgen -W ${shq(firsts.filter((f) => f !== 'help').join(' '))} -- "$cur") ) ;;
    esac
    return
  fi
  local opts="" npos=0
  case "$key" in
${cases.join('\n')}
  esac
  if [[ $prev == --* ]]; then
    case "$key $prev" in
${values.join('\n')}
    esac
  fi
  local given=$(( $(wc -w <<<"$cmd") - $(wc -w <<<"$key") ))
  if [[ $cur != -* && $given -lt $npos ]]; then
    local names
    names=$(pve-smbgateway list --json 2>/dev/null | grep -o '"sharename": *"[^"]*"' | sed 's/.*"\\([^"]*\\)"$/\\1/')
    COMPREPLY=( $(compgen -W "$names" -- "$cur") )
    return
  fi
  COMPREPLY=( $(compgen -W "$opts" -- "$cur") )
}
complete -F _pve_smbgateway pve-smbgateway
`;
}
