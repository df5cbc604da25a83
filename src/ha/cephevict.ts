/**
 * Fast failover for CephFS shares: a CTDB event script that evicts a dead node's libcephfs sessions.
 *
 * Every node's smbd reaches CephFS through libcephfs (vfs_ceph), one session per smbd process. When a
 * node dies, the MDS keeps its sessions, and the capabilities they hold on open files, until the
 * session times out (`session_timeout`, 60 s by default): a client that comes back through the new VIP
 * holder and re-opens a file it had open waits that long (measured: 29.9 s with a 30 s timeout). On
 * CTDB's `recovered` event (after every membership change, before the VIPs move) the script finds the
 * nodes CTDB sees as DISCONNECTED and evicts, on every active MDS, the sessions of the gateway's CephX
 * client that come from such a node (its CTDB address, or its name as the session's hostname, for a
 * Ceph public network other than CTDB's). Eviction also blocklists them: a node that was only cut off
 * can no longer write to CephFS (fencing). The work runs detached, so the event never waits for Ceph.
 * Nothing here does I/O: deploy writes the script on every node.
 */
import { invalid } from '../core/errors.ts';
import { CEPH_WORD } from '../core/cephfs.ts';
import type { ClusterNode } from './plan.ts';

/** Its name in /etc/ctdb/events/legacy (CTDB runs executable NN.name.script files there). */
export const CEPH_EVICT_SCRIPT = '49.smbgw_ceph.script';

export interface CephEvictOptions {
  /** ceph.conf naming the keyring of `admin` (the gateway's ceph_conf). */
  conf: string;
  /** CephX id allowed to evict (e.g. admin). */
  admin: string;
  /** The gateway's client whose sessions are evicted (client.smbgateway). */
  client: string;
  nodes: readonly ClusterNode[];
}

/** The event script (python3: the ceph CLI needs it, so every Ceph node has it). */
export function renderCephEvictScript(o: CephEvictOptions): string {
  if (!o.conf.startsWith('/') || /[\0\r\n'"\\]/.test(o.conf)) throw invalid('ceph_conf', 'must be an absolute path without quotes, backslashes or line breaks');
  if (!CEPH_WORD.test(o.admin)) throw invalid('ceph_admin', 'letters, digits, _ . - only');
  const id = o.client.replace(/^client\./, '');
  if (!CEPH_WORD.test(id)) throw invalid('ceph_client', 'letters, digits, _ . - only');
  const nodes = Object.fromEntries(o.nodes.map((n) => [n.address, n.name]));
  return `#!/usr/bin/python3
# Managed by pve-smbgateway: do not edit; changes are overwritten.
# On CTDB's "recovered" event: evict the CephFS sessions of the gateway's CephX client (${o.client}) that
# come from nodes CTDB sees as DISCONNECTED, so that the files they had open are free at once instead of
# after the MDS session timeout. Runs detached; logs to syslog (smbgw-ceph).
import json, os, re, subprocess, sys, syslog

CONF = ${JSON.stringify(o.conf)}
ADMIN = ${JSON.stringify(o.admin)}
CLIENT_ID = ${JSON.stringify(id)}
NODES = ${JSON.stringify(nodes)}

if len(sys.argv) < 2 or sys.argv[1] != "recovered":
    sys.exit(0)
if os.fork():
    sys.exit(0)
os.setsid()
if os.fork():
    os._exit(0)
os.environ["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin:" + os.environ.get("PATH", "")
devnull = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(devnull, fd)
syslog.openlog("smbgw-ceph")


def run(args, timeout=20):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=True).stdout


def ceph(*args):
    return run(["ceph", "--conf", CONF, "--id", ADMIN, "--connect-timeout", "15", *args])


try:
    lines = [l.strip().strip("|").split("|") for l in run(["ctdb", "-X", "status"]).splitlines() if l.startswith("|")]
    head, rows = lines[0], lines[1:]
    col = {h: i for i, h in enumerate(head)}
    gone = [r[col["IP"]] for r in rows if r[0].isdigit() and r[col["Disconnected"]] == "1"]
    if not gone:
        sys.exit(0)
    names = {NODES[a] for a in gone if a in NODES}
    fsmap = json.loads(ceph("fs", "dump", "--format", "json"))
    mds = [i["name"] for f in fsmap.get("filesystems", []) for i in f["mdsmap"]["info"].values() if i.get("state") == "up:active"]
    for m in mds:
        for s in json.loads(ceph("tell", "mds." + m, "session", "ls", "--format", "json")):
            meta = s.get("client_metadata", {})
            if meta.get("entity_id") != CLIENT_ID:
                continue
            ip = re.search(r"(?:v[12]:)?([0-9.]+):[0-9]+/", s.get("inst", ""))
            if (ip and ip.group(1) in gone) or meta.get("hostname") in names:
                ceph("tell", "mds." + m, "client", "evict", "id=%d" % s["id"])
                syslog.syslog("evicted CephFS session %d (%s) of a disconnected node" % (s["id"], s.get("inst", "")))
except Exception as e:
    syslog.syslog(syslog.LOG_WARNING, "evicting the CephFS sessions of disconnected nodes failed: %s" % e)
`;
}
