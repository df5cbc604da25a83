#!/usr/bin/python3
"""Load generator for bench/sessions.ts: N SMB sessions held open at once from one process, on
Samba's own client library (python3-samba, libsmb). Each session writes its own file, then, with every
session still open, reads it back and compares. The password comes on stdin (first line); then the
script prints progress lines and waits for "verify" and "close" on stdin.
usage: sessions-client.py <server> <share> <user> <n> <kib>"""
import sys, time
from samba.samba3 import libsmb_samba_internal as libsmb
from samba import param, credentials
from samba.samba3 import param as s3param

server, share, user, n, kib = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
password = sys.stdin.readline().rstrip('\n')
lp = param.LoadParm()
# The s3 client code reads its own loadparm: loaded empty, else the connection fails with
# NT_STATUS_INVALID_PARAMETER_MIX (the host's smb.conf must not matter to the bench anyway).
s3param.get_context().load('/dev/null')
creds = credentials.Credentials()
creds.guess(lp)
creds.set_username(user)
creds.set_password(password)

def say(*a):
    print(*a, flush=True)

conns = []
data = lambda i: (b'%08d' % i) * (kib * 128)
t0 = time.time()
err = ''
for i in range(n):
    try:
        c = libsmb.Conn(server, share, lp, creds)
        c.savefile('s%05d' % i, data(i))
        conns.append(c)
    except Exception as e:  # noqa: BLE001 - the bench reports any failure and how far it got
        err = '%s: %s' % (type(e).__name__, e)
        break
    if (i + 1) % 100 == 0:
        say('progress', i + 1, '%.2f' % (time.time() - t0))
setup = time.time() - t0
say('held', len(conns), '%.3f' % setup, err.replace('\n', ' '))
for line in sys.stdin:
    cmd = line.strip()
    if cmd == 'verify':
        bad = 0
        for i, c in enumerate(conns):
            try:
                if c.loadfile('s%05d' % i) != data(i):
                    bad += 1
            except Exception:  # noqa: BLE001
                bad += 1
        say('verified', len(conns) - bad, bad)
    elif cmd == 'close':
        for i, c in enumerate(conns):
            try:
                c.unlink('s%05d' % i)
            except Exception:  # noqa: BLE001
                pass
        conns = []
        say('closed')
        break
