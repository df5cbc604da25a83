/**
 * bench/sessions-client.py driven from a bench (sessions.ts on the host, lxc-sessions.ts into a
 * container): started with its arguments (host, share, user, N, KiB) behind an optional command prefix
 * (`ip netns exec <ns>`), the password on its standard input. `next(word)` waits for the client's line
 * that starts with that word and returns it split; its `progress` lines are printed on the way.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export interface SessionsClient { child: ChildProcess; send: (line: string) => void; next: (word: string) => Promise<string[]> }

export function startSessionsClient(args: string[], password: string, prefix: string[] = []): SessionsClient {
  const argv = [...prefix, '/usr/bin/python3', join(import.meta.dirname, 'sessions-client.py'), ...args];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
  child.stdin!.write(password + '\n');
  const queue: string[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  const rl = createInterface({ input: child.stdout! });
  rl.on('line', (l) => { queue.push(l); wake?.(); });
  rl.on('close', () => { ended = true; wake?.(); });
  const next = async (word: string): Promise<string[]> => {
    for (;;) {
      const l = queue.shift();
      if (l === undefined) {
        if (ended) throw new Error(`the client ended before "${word}"`);
        await new Promise<void>((r) => (wake = r));
        continue;
      }
      if (l.startsWith('progress')) console.log(l);
      else if (l.startsWith(word)) return l.split(' ');
    }
  };
  return { child, send: (line) => child.stdin!.write(line + '\n'), next };
}
