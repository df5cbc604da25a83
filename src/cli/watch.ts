/**
 * `--watch` for commands with that CLI option (cli/mappings.ts, e.g. `metrics`): the
 * handler runs again every few seconds (SMBGW_WATCH_SECONDS, default 2) until interrupted; the
 * screen is redrawn, or with --json one JSON line is printed per refresh.
 */
import type { Gateway } from '../provision/context.ts';
import { printers } from './printers.ts';
import type { Operation } from '../core/operation.ts';

export async function watch(op: Operation<Gateway>, params: Record<string, unknown>, g: Gateway, json: boolean, maxRounds = Number(process.env.SMBGW_WATCH_ROUNDS ?? 0)): Promise<number> {
  const seconds = Math.max(0.2, Number(process.env.SMBGW_WATCH_SECONDS ?? 2));
  let stop = false;
  const onSig = () => { stop = true; };
  process.once('SIGINT', onSig);
  process.once('SIGTERM', onSig);
  for (let round = 1; !stop; round++) {
    const result = await op.handler(params, g);
    if (json) process.stdout.write(JSON.stringify({ success: true, data: result, timestamp: new Date().toISOString() }) + '\n');
    else process.stdout.write(`\x1b[H\x1b[2J${new Date().toISOString()}  pve-smbgateway ${op.command.join(' ')} ${Object.values(params).filter((v) => typeof v === 'string' && v !== 'true').join(' ')} (every ${seconds} s, Ctrl-C to stop)\n\n${printers[op.command.join(' ')]?.(result) ?? JSON.stringify(result, null, 2)}\n`);
    if (maxRounds && round >= maxRounds) break;
    await new Promise((r) => setTimeout(r, seconds * 1000));
  }
  process.off('SIGINT', onSig);
  process.off('SIGTERM', onSig);
  return 0;
}
