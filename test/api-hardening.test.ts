/**
 * The daemon's HTTP hardening, seen from a client on 127.0.0.1 (raw TLS sockets where a normal
 * client would not misbehave): credentials are checked before any body is read, bodies are limited
 * (413), form parsing is linear, forwarding never goes where the request target says, slow clients
 * are dropped (headers and request timeouts) and connections are capped.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { connect as netConnect, createServer as createNetServer } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { after, before, test } from 'node:test';
import { Authenticator } from '../src/api/auth.ts';
import { defaultDaemonConfig, loadDaemonConfig, startDaemon, type Daemon } from '../src/api/daemon.ts';
import { startApiServer } from '../src/api/server.ts';
import { formToObject } from '../src/api/http.ts';
import { nodeCertificate } from '../src/api/tls.ts';
import { fingerprintOf } from '../src/pve/tls.ts';
import { TokenStore } from '../src/api/tokens.ts';
import { startGateway, waitFor, type TestGateway } from './helpers/gateway.ts';
import { call } from './helpers/https.ts';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const HEADERS_TIMEOUT_S = 1;
const REQUEST_TIMEOUT_S = 3;

let t: TestGateway;
let d: Daemon;
let ca: Buffer;
let admin: string;
const sockets: TLSSocket[] = [];

interface Raw {
  sock: TLSSocket;
  /** What the server sent so far (latin1). */
  text: () => string;
  status: () => number | undefined;
  /** Resolves with the time the connection closed. */
  closed: Promise<number>;
}

/** A TLS connection to the daemon that sends exactly what the test writes. */
async function raw(port: number): Promise<Raw> {
  const sock = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false });
  sockets.push(sock);
  let buf = '';
  sock.setEncoding('latin1');
  sock.on('data', (c: string) => (buf += c));
  sock.on('error', () => undefined); // a reset after the answer is not what these tests look at
  const closed = new Promise<number>((r) => sock.once('close', () => r(Date.now())));
  await new Promise<void>((res, rej) => {
    sock.once('secureConnect', () => res());
    sock.once('close', () => rej(new Error('closed before the TLS handshake')));
  });
  return { sock, text: () => buf, status: () => { const m = /^HTTP\/1\.1 (\d{3})/.exec(buf); return m ? Number(m[1]) : undefined; }, closed };
}

/** The time the connection closed, or -1 if it is still open after ms. */
const closedWithin = (r: Raw, ms: number) => Promise.race([r.closed, sleep(ms).then(() => -1)]);

before(async () => {
  t = await startGateway();
  admin = (await new TokenStore(t.settings).create('admin', ['Datastore.Allocate', 'Datastore.Audit'])).header;
  d = await startDaemon({
    settings: t.settings,
    config: { listen: '127.0.0.1', port: 0, interval: 3600, tick: 3600, headers_timeout: HEADERS_TIMEOUT_S, request_timeout: REQUEST_TIMEOUT_S },
  });
  ca = (await nodeCertificate(t.settings, t.gw.run)).cert;
});

after(async () => {
  for (const s of sockets) s.destroy();
  await d?.stop();
  await t?.cleanup();
});

const CREATE = '/api2/json/nodes/testnode/smbgateway';
const BAD_TOKEN = 'PVEAPIToken=smbgateway!admin=00000000-0000-0000-0000-000000000000';

test('bad or no credentials: 401 at once, the body (declared 50 MB, never sent) is not waited for, and the connection is closed', async () => {
  for (const auth of [`Authorization: ${BAD_TOKEN}\r\n`, '']) {
    const r = await raw(d.api.port);
    const t0 = Date.now();
    r.sock.write(`POST ${CREATE} HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: 50000000\r\n\r\n{"sharename":"${'x'.repeat(60_000)}`);
    await waitFor(() => r.status() !== undefined, 5000, 'an answer');
    const answered = Date.now() - t0;
    assert.equal(r.status(), 401, r.text());
    assert.match(r.text(), auth ? /invalid or expired token/ : /no credentials/);
    assert.match(r.text(), /\r\nconnection: close\r\n/i);
    // Reading the body would mean waiting for 50 MB that never come (until the request timeout, 3 s, and 408).
    assert.ok(answered < 2000, `answered after ${answered} ms`);
    const closed = await closedWithin(r, 5000);
    assert.ok(closed > 0, 'the server closed the connection although the body never came');
  }
});

test('413: a Content-Length over the limit is refused before any byte of the body; a chunked body as soon as it passes 1 MiB', async () => {
  const r = await raw(d.api.port);
  r.sock.write(`POST ${CREATE} HTTP/1.1\r\nHost: x\r\nAuthorization: ${admin}\r\nContent-Type: application/json\r\nContent-Length: ${(1 << 20) + 1}\r\n\r\n`);
  await waitFor(() => r.status() !== undefined, 5000, 'an answer');
  assert.equal(r.status(), 413, r.text());
  assert.match(r.text(), /"message":"request body: larger than 1 MiB"/);
  assert.ok((await closedWithin(r, 5000)) > 0, 'connection closed');

  const c = await raw(d.api.port);
  c.sock.write(`POST ${CREATE} HTTP/1.1\r\nHost: x\r\nAuthorization: ${admin}\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n`);
  const chunk = `comment=${'a'.repeat(65_528)}`;
  let sent = 0;
  // At most 4 MiB; stops as soon as the answer comes.
  for (let i = 0; i < 64 && c.status() === undefined && !c.sock.destroyed; i++) {
    const more = c.sock.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
    sent += chunk.length;
    if (!more) await Promise.race([once(c.sock, 'drain'), c.closed, sleep(2000)]);
  }
  await waitFor(() => c.status() !== undefined, 5000, 'an answer to the chunked body');
  assert.equal(c.status(), 413, c.text().slice(0, 300));
  assert.ok(sent > 1 << 20, `answered after ${sent} bytes`);
  assert.ok((await closedWithin(c, 5000)) > 0, 'connection closed');

  // Exactly the limit is read and parsed (and refused for its content, not its size).
  const at = await call(d.api.url, ca, 'POST', CREATE, { headers: { authorization: admin }, form: `bogus=${'b'.repeat((1 << 20) - 6)}` });
  assert.equal(at.status, 400, at.text.slice(0, 300));
  assert.match(at.json.errors.bogus, /not defined in schema/);
});

test('form parsing is linear: 100k repeated keys and 70k distinct list items are answered in well under 2 s', async (tc) => {
  const time = (n: number) => {
    const sp = new URLSearchParams('k=v&'.repeat(n));
    const t0 = performance.now();
    const o = formToObject(sp);
    const dt = performance.now() - t0;
    assert.equal((o.k as string[]).length, n);
    return dt;
  };
  time(1000);
  const small = time(20_000);
  const big = time(200_000);
  tc.diagnostic(`formToObject: 20k keys ${small.toFixed(1)} ms, 200k keys ${big.toFixed(1)} ms`);
  // 10 times the keys: about 10 times the time (a quadratic parser takes 100 times, seconds here).
  assert.ok(big < 30 * small + 250, `20k: ${small.toFixed(1)} ms, 200k: ${big.toFixed(1)} ms`);

  const post = async (form: string) => {
    const t0 = performance.now();
    const r = await call(d.api.url, ca, 'POST', CREATE, { headers: { authorization: admin }, form });
    return { r, ms: performance.now() - t0 };
  };
  const base = await post('bogus=1&'.repeat(1000));
  const repeated = await post('bogus=1&'.repeat(100_000));
  assert.equal(repeated.r.status, 400);
  assert.match(repeated.r.json.errors.bogus, /not defined in schema/);
  const users = Array.from({ length: 70_000 }, (_, i) => `users=u${i}`).join('&');
  const distinct = await post(`sharename=big&mode=native&${users}`);
  assert.equal(distinct.r.status, 400);
  assert.match(distinct.r.json.errors.path, /missing/);
  assert.equal(Object.keys(distinct.r.json.errors).join(), 'path', 'the 70k users themselves are valid');
  tc.diagnostic(`server: 1k keys ${base.ms.toFixed(0)} ms, 100k repeated keys ${repeated.ms.toFixed(0)} ms, 70k distinct users ${distinct.ms.toFixed(0)} ms`);
  assert.ok(repeated.ms < 2000 && distinct.ms < 2000, `${repeated.ms} ms, ${distinct.ms} ms`);
  // The event loop was not blocked meanwhile: the daemon still answers at once.
  assert.equal((await call(d.api.url, ca, 'GET', CREATE, { headers: { authorization: admin } })).status, 200);
});

test('forwarding: absolute-form, //host and /\\host targets are refused with 400 and nothing connects to the host they name; a forwarded request has the routed path and query only', async (tc) => {
  let trapped = 0;
  const trap = createNetServer((s) => { trapped++; s.destroy(); });
  await new Promise<void>((r) => trap.listen(0, '127.0.0.1', () => r()));
  tc.after(() => trap.close());
  const trapPort = (trap.address() as { port: number }).port;
  // The peer: a stand-in daemon that records what reaches it.
  const peerTls = await nodeCertificate({ ...t.settings, node: 'othernode', stateDir: join(t.dir, 'state-peer') }, t.gw.run);
  const reached: { url?: string; host?: string; forwardedBy?: string }[] = [];
  const peer: HttpsServer = createHttpsServer({ cert: peerTls.cert, key: peerTls.key }, (req, res) => {
    reached.push({ url: req.url, host: req.headers.host, forwardedBy: String(req.headers['x-smbgateway-forwarded-by']) });
    res.setHeader('content-type', 'application/json');
    res.end('{"data":"from the peer"}');
  });
  await new Promise<void>((r) => peer.listen(0, '127.0.0.1', () => r()));
  tc.after(() => { peer.closeAllConnections(); peer.close(); });
  const peerPort = (peer.address() as { port: number }).port;
  d.config.peers.othernode = { url: `https://127.0.0.1:${peerPort}`, fingerprint: fingerprintOf(peerTls.cert) };
  tc.after(() => { delete d.config.peers.othernode; });

  const path = '/api2/json/nodes/othernode/smbgateway';
  for (const target of [`https://127.0.0.1:${trapPort}${path}`, `//127.0.0.1:${trapPort}${path}`, `/\\127.0.0.1:${trapPort}${path}`, `http://127.0.0.1:${trapPort}/x`]) {
    const r = await raw(d.api.port);
    r.sock.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${trapPort}\r\nAuthorization: ${admin}\r\nConnection: close\r\n\r\n`);
    await waitFor(() => r.status() !== undefined, 5000, `an answer to ${target}`);
    assert.equal(r.status(), 400, `${target}: ${r.text()}`);
    assert.match(r.text(), /request target: must be a path/);
  }
  await sleep(300);
  assert.equal(trapped, 0, 'nothing connected to the host named in the request target');
  assert.equal(reached.length, 0, 'nothing was forwarded');

  const ok = await raw(d.api.port);
  ok.sock.write(`GET ${path}/a%20b/status?x=1&y=%2F%2Fevil HTTP/1.1\r\nHost: 127.0.0.1:${trapPort}\r\nAuthorization: ${admin}\r\nConnection: close\r\n\r\n`);
  await waitFor(() => /from the peer/.test(ok.text()), 5000, 'the peer\'s answer');
  assert.equal(ok.status(), 200);
  assert.deepEqual(reached, [{ url: `${path}/a%20b/status?x=1&y=%2F%2Fevil`, host: `127.0.0.1:${peerPort}`, forwardedBy: 'testnode' }]);
  assert.equal(trapped, 0);
});

test(`headers timeout (${HEADERS_TIMEOUT_S} s): a client that never finishes its headers, one that sends nothing, and one that never does the TLS handshake are dropped`, async () => {
  const slow = await raw(d.api.port);
  const t0 = Date.now();
  slow.sock.write(`GET ${CREATE} HTTP/1.1\r\nHost: x\r\n`);
  let slowClosed = -1;
  void slow.closed.then((at) => (slowClosed = at));
  // A header line every 100 ms, for at most 5 s.
  for (let i = 0; i < 50 && slowClosed < 0; i++) { slow.sock.write(`X-Slow-${i}: a\r\n`); await sleep(100); }
  const at = await closedWithin(slow, 100);
  assert.ok(at > 0, 'the slow client was dropped');
  assert.ok(at - t0 >= 900 && at - t0 < 3000, `dropped after ${at - t0} ms`);
  assert.equal(slow.status(), 408, slow.text());

  const silent = await raw(d.api.port);
  const t1 = Date.now();
  const at1 = await closedWithin(silent, 5000);
  assert.ok(at1 > 0 && at1 - t1 >= 900 && at1 - t1 < 3000, `silent client dropped after ${at1 - t1} ms`);

  const tcp = netConnect({ host: '127.0.0.1', port: d.api.port });
  tcp.on('error', () => undefined);
  await once(tcp, 'connect');
  const t2 = Date.now();
  const at2 = await Promise.race([once(tcp, 'close').then(() => Date.now()), sleep(5000).then(() => -1)]);
  tcp.destroy();
  assert.ok(at2 > 0 && at2 - t2 >= 900 && at2 - t2 < 3000, `client without TLS handshake dropped after ${at2 - t2} ms`);
});

test(`request timeout (${REQUEST_TIMEOUT_S} s): an authenticated request whose body trickles in is answered 408 and dropped`, async () => {
  const r = await raw(d.api.port);
  const t0 = Date.now();
  r.sock.write(`POST ${CREATE} HTTP/1.1\r\nHost: x\r\nAuthorization: ${admin}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n`);
  let closed = -1;
  void r.closed.then((at) => (closed = at));
  // One byte every 200 ms, for at most 8 s.
  for (let i = 0; i < 40 && closed < 0; i++) { r.sock.write('a'); await sleep(200); }
  const at = await closedWithin(r, 100);
  assert.ok(at > 0, 'the trickling client was dropped');
  assert.ok(at - t0 >= REQUEST_TIMEOUT_S * 1000 - 200 && at - t0 < REQUEST_TIMEOUT_S * 1000 + 2500, `dropped after ${at - t0} ms`);
  assert.equal(r.status(), 408, r.text());
});

test('connection cap: beyond max_connections a connection is closed at once, the ones before still work, and a freed slot is used again', async (tc) => {
  const tls = await nodeCertificate(t.settings, t.gw.run);
  const srv = await startApiServer({ gateway: t.gw, auth: new Authenticator(new TokenStore(t.settings)), tls, limits: { maxConnections: 3 } });
  tc.after(() => srv.close());
  const held = [await raw(srv.port), await raw(srv.port), await raw(srv.port)];
  const extra = tlsConnect({ host: '127.0.0.1', port: srv.port, rejectUnauthorized: false });
  sockets.push(extra);
  extra.on('error', () => undefined);
  const outcome = await new Promise<string>((res) => {
    extra.once('secureConnect', () => res('connected'));
    extra.once('close', () => res('closed'));
    setTimeout(() => res('no answer'), 3000);
  });
  assert.equal(outcome, 'closed', 'the fourth connection is refused');
  for (const h of held) {
    h.sock.write(`GET ${CREATE} HTTP/1.1\r\nHost: x\r\nAuthorization: ${admin}\r\n\r\n`);
    await waitFor(() => h.status() !== undefined && /\r\n\r\n\{"data":\[/.test(h.text()), 5000, 'an answer on a held connection');
    assert.equal(h.status(), 200);
  }
  held[0]!.sock.destroy();
  await waitFor(async () => (await new Promise<number>((r) => srv.server.getConnections((_e, n) => r(n)))) < 3, 5000, 'the freed slot');
  const again = await raw(srv.port);
  again.sock.write(`GET ${CREATE} HTTP/1.1\r\nHost: x\r\nAuthorization: ${admin}\r\nConnection: close\r\n\r\n`);
  await waitFor(() => again.status() !== undefined, 5000, 'an answer on the new connection');
  assert.equal(again.status(), 200);
});

test('the limits are daemon settings with sane defaults, and nonsense is refused naming the setting', async () => {
  const c = defaultDaemonConfig(t.settings);
  assert.deepEqual([c.headers_timeout, c.request_timeout, c.max_connections, c.max_body], [10, 30, 256, 1 << 20]);
  const file = join(t.dir, 'daemon.json');
  await writeFile(file, JSON.stringify({ headers_timeout: 60, request_timeout: 30 }));
  assert.throws(() => loadDaemonConfig(t.settings, file), { field: 'headers_timeout', message: /headers_timeout must not be longer than request_timeout/ });
  await writeFile(file, JSON.stringify({ max_connections: 0 }));
  assert.throws(() => loadDaemonConfig(t.settings, file), { field: 'max_connections', message: /daemon\.json: max_connections: must be at least 1$/ });
  await writeFile(file, JSON.stringify({ max_body: 65536, max_connections: 32 }));
  const ok = loadDaemonConfig(t.settings, file);
  assert.deepEqual([ok.max_body, ok.max_connections], [65536, 32]);
});
