#!/usr/bin/env node
/**
 * pve-smbgateway-vzdump-hook: the hook script for vzdump (`script: /usr/lib/pve-smbgateway/vzdump-hook`
 * in /etc/vzdump.conf or a backup job). When Proxmox's own backup job backs up a gateway guest, the
 * share's data (bind-mounted or passed through, so never in the archive) is snapshotted at
 * backup-start and the archive recorded with that snapshot at backup-end. Guests that serve no share
 * are left alone. Output goes to the vzdump task log; a failed data snapshot fails that guest's backup
 * (exit 1), so that a backup without its data never looks complete.
 */
import { GatewayError } from '../core/errors.ts';
import { hookAction, HookError, parseHookCall } from '../backup/hook.ts';
import { readBackupState, updateBackupState, withGuestArchive } from '../backup/state.ts';
import { makeGateway } from '../provision/context.ts';
import { runShareBackup } from '../provision/backup.ts';

export async function hookMain(argv: string[], env: Record<string, string | undefined>, out: (l: string) => void): Promise<number> {
  let call;
  try { call = parseHookCall(argv, env); } catch (e) {
    if (e instanceof HookError) { out(`smbgateway hook: ${e.message}`); return 2; }
    throw e;
  }
  const action = hookAction(call);
  if (action === 'none' || call.kind !== 'guest') return 0;
  const g = makeGateway();
  const mode = call.vmtype === 'qemu' ? 'vm' : call.vmtype === 'lxc' ? 'lxc' : undefined;
  const shares = (await g.store.list()).filter((s) => s.vmid === call.vmid && s.mode !== 'native' && (!mode || s.mode === mode) && (s.node ?? g.settings.node) === g.settings.node);
  if (!shares.length) return 0;
  let code = 0;
  for (const s of shares) {
    if (action === 'snapshot') {
      if (s.backup_enabled === false) { out(`smbgateway hook: share ${s.sharename} (guest ${call.vmid}): backups are off (backup_enabled 0), no data snapshot`); continue; }
      try {
        const r = await runShareBackup(g, s.sharename, { trigger: 'vzdump-hook', guest: false, log: (m) => out(`smbgateway hook: ${m}`) });
        out(`smbgateway hook: share ${s.sharename}: data snapshot ${r.snapshot} taken with the backup of guest ${call.vmid}`);
      } catch (e) {
        if (e instanceof GatewayError && e.code === 'locked' && /already running/.test(e.message)) {
          // The gateway's own run started this vzdump: it has taken the snapshot already.
          out(`smbgateway hook: share ${s.sharename}: the data snapshot is taken by the gateway's own run (${e.message.replace(/^.*already running \((.*)\).*$/, '$1')})`);
          continue;
        }
        out(`smbgateway hook: ERROR: share ${s.sharename}: the data snapshot failed: ${(e as Error).message}`);
        code = 1;
      }
    } else {
      const ok = action === 'record-archive';
      await updateBackupState(g.settings.stateDir, s.sharename, (st0) => {
        const st = ok && call.target && st0.last_snapshot ? withGuestArchive(st0, { snapshot: st0.last_snapshot, archive: call.target, storage: call.storeid ?? '', time: Math.floor(Date.now() / 1000) }) : st0;
        return {
        ...st,
        guest: { vmid: call.vmid, storage: call.storeid ?? '', ...(call.target ? { archive: call.target } : {}), status: ok ? 'ok' : 'error', ...(ok ? {} : { error: 'vzdump aborted the backup of the guest' }) },
        };
      });
      const snap = (await readBackupState(g.settings.stateDir))[s.sharename]?.last_snapshot ?? '(none)';
      out(`smbgateway hook: share ${s.sharename}: guest backup ${ok ? `archive ${call.target ?? '(no target given)'}` : 'aborted'} recorded with data snapshot ${snap}`);
    }
  }
  return code;
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('vzdump-hook.ts') || process.argv[1]?.endsWith('vzdump-hook.js')) {
  hookMain(process.argv.slice(2), process.env, (l) => process.stdout.write(l + '\n')).then((c) => { process.exitCode = c; }, (e: Error) => {
    process.stdout.write(`smbgateway hook: ERROR: ${e.message}\n`);
    process.exitCode = 1;
  });
}
