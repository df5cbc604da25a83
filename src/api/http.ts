/**
 * HTTP plumbing in Proxmox's conventions: {"data": ...} answers, errors with the status their code
 * maps to and {"errors": {field: rule}} for bad parameters, size-limited bodies (413), linear form parsing.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GatewayError, toGatewayError, type ErrorCode } from '../core/errors.ts';
import type { Operation } from '../core/operation.ts';
import { validate } from '../core/schema.ts';
import { restSchema } from './openapi.ts';

const STATUS: Record<ErrorCode, number> = {
  invalid: 400, unauthorized: 401, forbidden: 403, not_found: 404, exists: 409, locked: 409, unavailable: 501, unreachable: 503, failed: 500,
};

export function httpStatusFor(e: GatewayError): number {
  const s = (e.details as { httpStatus?: number } | undefined)?.httpStatus;
  if (s) return s;
  return STATUS[e.code];
}

export function send(res: ServerResponse, status: number, body: unknown, reason?: string): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  if (reason) res.statusMessage = reason.replace(/[^\x20-\x7e]/g, ' ').slice(0, 200);
  res.setHeader('content-type', 'application/json;charset=UTF-8');
  res.setHeader('content-length', Buffer.byteLength(text));
  res.setHeader('cache-control', 'no-store');
  res.end(text);
}

export function sendError(res: ServerResponse, e: unknown, fieldErrors?: Record<string, string>): void {
  const err = toGatewayError(e);
  const errors = fieldErrors ?? (err.code === 'invalid' && err.field ? { [err.field]: err.message.startsWith(`${err.field}: `) ? err.message.slice(err.field.length + 2) : err.message } : undefined);
  const message = fieldErrors ? 'Parameter verification failed.' : err.message;
  send(res, httpStatusFor(err), { data: null, message, ...(errors ? { errors } : {}), ...(err.code !== 'invalid' ? { code: err.code } : {}) }, message);
}

export function tooLarge(max: number): GatewayError {
  const size = max % (1 << 20) === 0 ? `${max >> 20} MiB` : `${max} bytes`;
  return new GatewayError('invalid', `request body: larger than ${size}`, undefined, { httpStatus: 413 });
}

/** The body, up to max bytes: a larger Content-Length is refused before reading, a longer body as soon as it passes max. */
export function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > max) return Promise.reject(tooLarge(max));
  return new Promise((res, rej) => {
    const chunks: Buffer[] = [];
    let n = 0;
    const onData = (c: Buffer) => {
      n += c.length;
      if (n > max) { req.off('data', onData); req.pause(); rej(tooLarge(max)); return; }
      chunks.push(c);
    };
    req.on('data', onData);
    req.on('end', () => res(Buffer.concat(chunks)));
    req.on('error', rej);
    req.on('close', () => { if (!req.complete) rej(new GatewayError('invalid', 'request body: the connection closed before its end')); });
  });
}

/** Form fields to an object, repeated keys to a list: one pass, linear in the number of fields. */
export function formToObject(sp: URLSearchParams): Record<string, unknown> {
  const lists = new Map<string, string[]>();
  for (const [k, v] of sp) {
    const l = lists.get(k);
    if (l) l.push(v); else lists.set(k, [v]);
  }
  const out: Record<string, unknown> = {};
  for (const [k, l] of lists) out[k] = l.length === 1 ? l[0] : l;
  return out;
}

export function parseBody(req: IncomingMessage, body: Buffer): Record<string, unknown> {
  if (!body.length) return {};
  const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  const text = body.toString('utf8');
  if (type === 'application/json') {
    let v: unknown;
    try { v = JSON.parse(text); } catch { throw new GatewayError('invalid', 'request body: not valid JSON'); }
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new GatewayError('invalid', 'request body: must be a JSON object');
    return v as Record<string, unknown>;
  }
  if (type === 'application/x-www-form-urlencoded' || type === '') return formToObject(new URLSearchParams(text));
  throw new GatewayError('invalid', `request body: unsupported content type ${type} (use application/json or application/x-www-form-urlencoded)`);
}

/** Every field at fault, Proxmox-style. */
export function fieldErrors(op: Operation<never>, params: Record<string, unknown>): Record<string, string> {
  const schema = restSchema(op);
  const errors: Record<string, string> = {};
  for (const [k, v] of Object.entries(params)) {
    const p = schema[k];
    if (!p) { errors[k] = 'property is not defined in schema and the schema does not allow additional properties'; continue; }
    try {
      validate({ [k]: p }, { [k]: v }, { partial: true });
    } catch (e) {
      const m = toGatewayError(e).message;
      errors[k] = m.startsWith(`${k}: `) ? m.slice(k.length + 2) : m;
    }
  }
  for (const [k, p] of Object.entries(schema)) {
    if (!p.optional && p.default === undefined && params[k] === undefined && !errors[k]) errors[k] = 'property is missing and it is not optional';
  }
  return errors;
}

/** How long a refused request's connection still reads (and drops) what the client sends before it is closed. */
const LINGER_MS = 2000;

/**
 * The answer to a request whose body was not read to its end closes the connection. Node would
 * destroy the socket as soon as the answer is written; the bytes the client is still sending would
 * then make the kernel answer with a reset, which can discard the answer at the client before it is
 * read. So the connection is half-closed instead, and what still comes is read and dropped for a
 * little while (a "lingering close"), then it is closed for good.
 */
export function closeAfterAnswer(req: IncomingMessage, res: ServerResponse): void {
  res.setHeader('connection', 'close');
  const sock = req.socket;
  sock.destroySoon = function lingeringClose(this: typeof sock) {
    this.end();
    setTimeout(() => this.destroy(), LINGER_MS).unref();
  };
  req.resume();
}
