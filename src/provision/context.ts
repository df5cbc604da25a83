/** The gateway's wiring for one host: settings, command runner, store and Samba adapter. */
import { execRunner, type Runner } from '../core/exec.ts';
import { loadSettings, type Settings } from '../core/settings.ts';
import { ShareStore } from '../core/store.ts';
import { Samba } from '../samba/samba.ts';

export interface Gateway {
  settings: Settings;
  run: Runner;
  store: ShareStore;
  samba: Samba;
  log: (msg: string) => void;
}

export function makeGateway(settings: Settings = loadSettings(), run: Runner = execRunner, log: (m: string) => void = () => undefined): Gateway {
  return { settings, run, store: new ShareStore(settings), samba: new Samba(run, settings), log };
}
