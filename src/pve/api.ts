/**
 * The typed subset of the Proxmox VE API that the gateway uses (checked against the official schema
 * by the simulator in the tests). Paths and parameter names are exactly Proxmox's.
 */
import type { PveClient, Params, WaitOptions } from './client.ts';

export type GuestKind = 'lxc' | 'qemu';

export interface PveVersion { version: string; release: string; repoid?: string }
export interface ClusterStatusEntry { type: 'cluster' | 'node'; name: string; id?: string; online?: number; local?: number; quorate?: number; ip?: string; nodeid?: number }
export interface StorageConfig { storage: string; type: string; content?: string; path?: string; shared?: number; nodes?: string; pool?: string; monhost?: string; export?: string; server?: string }
export interface StorageContent { volid: string; content: string; format?: string; size?: number; vmid?: number }
export interface ClusterResource { id: string; type: string; node?: string; vmid?: number; name?: string; status?: string; template?: number; tags?: string; storage?: string; content?: string; plugintype?: string; shared?: number }
export type GuestConfig = Record<string, string | number | undefined> & { digest?: string; template?: number; tags?: string; hostname?: string; name?: string };
export interface GuestStatus { status: 'running' | 'stopped'; vmid: number; name?: string; template?: number; mem?: number; maxmem?: number; uptime?: number; agent?: number }
export interface CtInterface { name: string; inet?: string; inet6?: string; hwaddr?: string }
export interface AgentInterfaces { result: { name: string; 'ip-addresses'?: { 'ip-address': string; 'ip-address-type': string; prefix?: number }[] }[] }
export interface AgentExecStatus { exited: boolean | number; exitcode?: number; signal?: number; 'out-data'?: string; 'err-data'?: string; 'out-truncated'?: boolean; 'err-truncated'?: boolean }
export interface DirMapping { id: string; description?: string; map: string[] }
export interface HaResource { sid: string; type?: string; state?: string; comment?: string }

const enc = encodeURIComponent;

export class PveApi {
  constructor(readonly c: PveClient, readonly wait: WaitOptions = {}) {}

  version(): Promise<PveVersion> { return this.c.get('/version'); }
  clusterStatus(): Promise<ClusterStatusEntry[]> { return this.c.get('/cluster/status'); }
  nextId(): Promise<number> { return this.c.get<number | string>('/cluster/nextid').then(Number); }
  resources(type?: 'vm' | 'storage' | 'node'): Promise<ClusterResource[]> { return this.c.get('/cluster/resources', { type }); }
  storage(id: string): Promise<StorageConfig> { return this.c.get(`/storage/${enc(id)}`); }
  storageContent(node: string, storage: string, content?: string): Promise<StorageContent[]> {
    return this.c.get(`/nodes/${enc(node)}/storage/${enc(storage)}/content`, { content });
  }

  guests(node: string, kind: GuestKind): Promise<(GuestStatus & { tags?: string })[]> { return this.c.get(`/nodes/${enc(node)}/${kind}`); }
  create(node: string, kind: GuestKind, params: Params): Promise<void> { return this.c.task('POST', `/nodes/${enc(node)}/${kind}`, params, this.wait); }
  clone(node: string, kind: GuestKind, vmid: number, params: Params): Promise<void> {
    return this.c.task('POST', `/nodes/${enc(node)}/${kind}/${vmid}/clone`, params, this.wait);
  }
  config(node: string, kind: GuestKind, vmid: number): Promise<GuestConfig> { return this.c.get(`/nodes/${enc(node)}/${kind}/${vmid}/config`); }
  /** PUT config: synchronous for both kinds (for qemu, POST would be the asynchronous variant). */
  setConfig(node: string, kind: GuestKind, vmid: number, params: Params): Promise<void> {
    return this.c.task('PUT', `/nodes/${enc(node)}/${kind}/${vmid}/config`, params, this.wait);
  }
  status(node: string, kind: GuestKind, vmid: number): Promise<GuestStatus> { return this.c.get(`/nodes/${enc(node)}/${kind}/${vmid}/status/current`); }
  start(node: string, kind: GuestKind, vmid: number): Promise<void> { return this.c.task('POST', `/nodes/${enc(node)}/${kind}/${vmid}/status/start`, {}, this.wait); }
  stop(node: string, kind: GuestKind, vmid: number): Promise<void> { return this.c.task('POST', `/nodes/${enc(node)}/${kind}/${vmid}/status/stop`, {}, this.wait); }
  shutdown(node: string, kind: GuestKind, vmid: number, timeout = 60): Promise<void> {
    return this.c.task('POST', `/nodes/${enc(node)}/${kind}/${vmid}/status/shutdown`, { timeout }, this.wait);
  }
  template(node: string, kind: GuestKind, vmid: number): Promise<void> { return this.c.task('POST', `/nodes/${enc(node)}/${kind}/${vmid}/template`, {}, this.wait); }
  destroy(node: string, kind: GuestKind, vmid: number): Promise<void> {
    return this.c.task('DELETE', `/nodes/${enc(node)}/${kind}/${vmid}`, { purge: true, 'destroy-unreferenced-disks': true }, this.wait);
  }
  /** Stop when running (the undo of a start: the guest may have been stopped since). */
  async stopIfRunning(node: string, kind: GuestKind, vmid: number): Promise<void> {
    if ((await this.status(node, kind, vmid)).status === 'running') await this.stop(node, kind, vmid);
  }
  /** Stop (if running) and destroy; a guest that is already gone is fine. */
  async removeGuest(node: string, kind: GuestKind, vmid: number): Promise<void> {
    const st = await this.status(node, kind, vmid).catch((e: { status?: number; message?: string }) => {
      if (/does not exist|not exist/i.test(e.message ?? '')) return undefined;
      throw e;
    });
    if (!st) return;
    if (st.status === 'running') await this.stop(node, kind, vmid);
    await this.destroy(node, kind, vmid);
  }
  ctInterfaces(node: string, vmid: number): Promise<CtInterface[]> { return this.c.get(`/nodes/${enc(node)}/lxc/${vmid}/interfaces`); }
  agentInterfaces(node: string, vmid: number): Promise<AgentInterfaces> { return this.c.get(`/nodes/${enc(node)}/qemu/${vmid}/agent/network-get-interfaces`); }
  /** Start a command in the VM through the guest agent; `input` is its standard input (the request body, never argv). */
  agentExec(node: string, vmid: number, command: readonly string[], input?: string): Promise<{ pid: number }> {
    return this.c.post(`/nodes/${enc(node)}/qemu/${vmid}/agent/exec`, { command, 'input-data': input });
  }
  agentExecStatus(node: string, vmid: number, pid: number): Promise<AgentExecStatus> { return this.c.get(`/nodes/${enc(node)}/qemu/${vmid}/agent/exec-status`, { pid }); }
  /** Write a file in the VM through the guest agent (the API base64-encodes it for the agent). */
  agentFileWrite(node: string, vmid: number, file: string, content: string): Promise<void> {
    return this.c.post(`/nodes/${enc(node)}/qemu/${vmid}/agent/file-write`, { file, content });
  }

  /**
   * A backup of guests through vzdump (POST /nodes/{node}/vzdump), followed to its end; its task log
   * names the archive. pvesh waits for the task itself and returns no UPID.
   */
  async vzdump(node: string, params: Params): Promise<{ upid?: string; log: string[] }> {
    const upid = await this.c.post<unknown>(`/nodes/${enc(node)}/vzdump`, params);
    if (typeof upid !== 'string' || !upid.startsWith('UPID:')) return { log: typeof upid === 'string' ? upid.split('\n') : [] };
    await this.c.waitTask(upid, this.wait);
    return { upid, log: await this.c.taskLog(upid).catch(() => [] as string[]) };
  }

  /** Put a guest back from a vzdump archive (volume id), over the existing one (which must be stopped). */
  restoreGuest(node: string, kind: GuestKind, vmid: number, archive: string): Promise<void> {
    const params = kind === 'lxc' ? { vmid, ostemplate: archive, restore: true, force: true } : { vmid, archive, force: true };
    return this.c.task('POST', `/nodes/${enc(node)}/${kind}`, params, this.wait);
  }

  dirMappings(): Promise<DirMapping[]> { return this.c.get('/cluster/mapping/dir'); }
  createDirMapping(id: string, map: string[], description?: string): Promise<void> { return this.c.post('/cluster/mapping/dir', { id, map, description }); }
  deleteDirMapping(id: string): Promise<void> { return this.c.delete(`/cluster/mapping/dir/${enc(id)}`); }

  haResources(): Promise<HaResource[]> { return this.c.get('/cluster/ha/resources'); }
  deleteHaResource(sid: string): Promise<void> { return this.c.delete(`/cluster/ha/resources/${enc(sid)}`); }
}

/** First IPv4 address of a guest's interfaces other than loopback. */
export function firstIpv4(ifaces: AgentInterfaces | CtInterface[]): string | undefined {
  if (Array.isArray(ifaces)) {
    for (const i of ifaces) if (i.name !== 'lo' && i.inet) return i.inet.split('/')[0];
    return undefined;
  }
  for (const i of ifaces.result ?? []) {
    if (i.name === 'lo') continue;
    for (const a of i['ip-addresses'] ?? []) if (a['ip-address-type'] === 'ipv4' && !a['ip-address'].startsWith('127.')) return a['ip-address'];
  }
  return undefined;
}
