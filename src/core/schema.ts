/**
 * A small declarative schema in the spirit of Proxmox's JSON schema for API parameters.
 * One declaration validates CLI input, REST input and stored config, and is turned into
 * CLI help and OpenAPI. Every error names the field and the rule.
 */
import { invalid } from './errors.ts';

interface Base {
  description: string;
  optional?: boolean;
  /** Not settable by callers (internal state kept with the object). */
  internal?: boolean;
}
export interface StringProp extends Base {
  type: 'string';
  default?: string;
  /** Keep leading/trailing white space (passwords); every other string refuses it, since config files trim it. */
  keepSpace?: boolean;
  enum?: readonly string[];
  pattern?: RegExp;
  patternText?: string;
  maxLength?: number;
  /** Extra rule: returns the broken rule's text, or undefined when fine. */
  check?: (v: string) => string | undefined;
}
export interface IntegerProp extends Base {
  type: 'integer';
  default?: number;
  minimum?: number;
  maximum?: number;
}
export interface NumberProp extends Base {
  type: 'number';
  default?: number;
  minimum?: number;
  maximum?: number;
}
export interface BooleanProp extends Base {
  type: 'boolean';
  default?: boolean;
}
export interface ListProp extends Base {
  type: 'list';
  /** Rule for each item. */
  item?: (v: string) => string | undefined;
  default?: string[];
}
/** Structured data (internal records), stored as one line of JSON; `parse` checks the shape. */
export interface JsonProp<T = unknown> extends Base {
  type: 'json';
  parse: (v: unknown) => T;
  default?: T;
}
export type Prop = StringProp | IntegerProp | NumberProp | BooleanProp | ListProp | JsonProp<any>;
export type Schema = Record<string, Prop>;

type ValueOf<P extends Prop> = P extends StringProp ? string : P extends IntegerProp | NumberProp ? number : P extends BooleanProp ? boolean : P extends JsonProp<infer T> ? T : string[];
type Req<S extends Schema> = { [K in keyof S as S[K]['optional'] extends true ? (S[K] extends { default: unknown } ? K : never) : K]: ValueOf<S[K]> };
type Opt<S extends Schema> = { [K in keyof S as S[K]['optional'] extends true ? (S[K] extends { default: unknown } ? never : K) : never]?: ValueOf<S[K]> };
export type Infer<S extends Schema> = Req<S> & Opt<S>;

/** The same property, optional and without a default (partial updates: absent means unchanged). */
export function optionalNoDefault<P extends Prop>(p: P): Omit<P, 'default' | 'optional'> & { optional: true } {
  const { default: _d, ...rest } = p;
  return { ...rest, optional: true } as Omit<P, 'default' | 'optional'> & { optional: true };
}

/** No value may carry a line break or NUL into a config file or a command. */
export function checkSingleLine(field: string, v: string): void {
  if (/[\r\n\0]/.test(v)) throw invalid(field, 'must not contain a line break or NUL character');
}

/**
 * Config files (shares.cfg, smb.conf) trim white space around values, and Samba treats control
 * characters as separators: a value with either would not come back as given, so it is refused.
 */
export function checkStoredText(field: string, v: string): void {
  checkSingleLine(field, v);
  if (/[\x00-\x1f\x7f]/.test(v)) throw invalid(field, 'must not contain control characters (such as a tab)');
  if (/^\s|\s$/u.test(v)) throw invalid(field, 'must not start or end with white space (config files would drop it)');
  // smb.conf reads a run of blanks as one: '/srv/a  b' would serve '/srv/a b'.
  if (/\s\s/u.test(v)) throw invalid(field, 'must not contain two white-space characters in a row (smb.conf reads them as one)');
}

const TRUE = new Set(['1', 'true', 'yes', 'on']);
const FALSE = new Set(['0', 'false', 'no', 'off']);

function coerce(field: string, p: Prop, raw: unknown): unknown {
  switch (p.type) {
    case 'string': {
      if (typeof raw !== 'string') throw invalid(field, 'must be a string');
      if (p.keepSpace) checkSingleLine(field, raw); else checkStoredText(field, raw);
      if (p.maxLength !== undefined && raw.length > p.maxLength) throw invalid(field, `must be at most ${p.maxLength} characters`);
      if (p.enum && !p.enum.includes(raw)) throw invalid(field, `must be one of ${p.enum.join(', ')}`);
      if (p.pattern && !p.pattern.test(raw)) throw invalid(field, p.patternText ?? `must match ${p.pattern}`);
      const broken = p.check?.(raw);
      if (broken) throw invalid(field, broken);
      return raw;
    }
    case 'integer': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^-?\d+$/.test(raw.trim()) ? Number(raw) : NaN;
      if (!Number.isInteger(n)) throw invalid(field, 'must be an integer');
      if (p.minimum !== undefined && n < p.minimum) throw invalid(field, `must be at least ${p.minimum}`);
      if (p.maximum !== undefined && n > p.maximum) throw invalid(field, `must be at most ${p.maximum}`);
      return n;
    }
    case 'number': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^-?\d+(\.\d+)?$/.test(raw.trim()) ? Number(raw) : NaN;
      if (!Number.isFinite(n)) throw invalid(field, 'must be a number');
      if (p.minimum !== undefined && n < p.minimum) throw invalid(field, `must be at least ${p.minimum}`);
      if (p.maximum !== undefined && n > p.maximum) throw invalid(field, `must be at most ${p.maximum}`);
      return n;
    }
    case 'boolean': {
      if (typeof raw === 'boolean') return raw;
      if (typeof raw === 'number' && (raw === 0 || raw === 1)) return raw === 1;
      if (typeof raw === 'string' && TRUE.has(raw.toLowerCase())) return true;
      if (typeof raw === 'string' && FALSE.has(raw.toLowerCase())) return false;
      throw invalid(field, 'must be a boolean (1/0, true/false, yes/no)');
    }
    case 'list': {
      // A list given as one string is comma-separated (as stored, and as the CLI and form posts give it).
      const items = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',') : undefined;
      if (!items) throw invalid(field, 'must be a list');
      // A Set keeps the first of duplicates in order, in linear time (a long list must not stall the daemon).
      const out = new Set<string>();
      for (const it of items) {
        if (typeof it !== 'string') throw invalid(field, 'items must be strings');
        if (it === '') continue;
        if (it.includes(',')) throw invalid(field, `${JSON.stringify(it)}: an item must not contain a comma (commas separate items)`);
        checkStoredText(field, it);
        const broken = p.item?.(it);
        if (broken) throw invalid(field, `${JSON.stringify(it)}: ${broken}`);
        out.add(it);
      }
      return [...out];
    }
    case 'json': {
      let v = raw;
      if (typeof raw === 'string') {
        try { v = JSON.parse(raw); } catch { throw invalid(field, 'must be JSON'); }
      }
      try { return p.parse(v); } catch (e) { throw invalid(field, (e as Error).message); }
    }
  }
}

export interface ValidateOptions {
  /** Accept internal properties (reading our own stored config). */
  allowInternal?: boolean;
  /** Fill in defaults for missing optional properties. */
  defaults?: boolean;
  /** Skip the required check (partial updates). */
  partial?: boolean;
}

export function validate<S extends Schema>(schema: S, input: Record<string, unknown>, opts: ValidateOptions = {}): Infer<S> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(input)) {
    const p = schema[key];
    if (!p || (p.internal && !opts.allowInternal)) throw invalid(key, 'unknown parameter');
    const raw = input[key];
    if (raw === undefined) continue;
    out[key] = coerce(key, p, raw);
  }
  for (const [key, p] of Object.entries(schema)) {
    if (key in out) continue;
    if (p.default !== undefined && opts.defaults !== false && !opts.partial) out[key] = Array.isArray(p.default) ? structuredClone(p.default) : p.default;
    else if (!p.optional && !opts.partial) throw invalid(key, 'property is missing and it is not optional');
  }
  return out as Infer<S>;
}

/** The OpenAPI / JSON-schema view of a schema. */
export function toJsonSchema(schema: Schema): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  const required: string[] = [];
  for (const [k, p] of Object.entries(schema)) {
    if (p.internal) continue;
    const o: Record<string, unknown> = { description: p.description };
    if (p.type === 'list') Object.assign(o, { type: 'array', items: { type: 'string' } });
    else if (p.type === 'json') o.type = 'object';
    else o.type = p.type;
    if (p.default !== undefined) o.default = p.default;
    if (p.type === 'string') {
      if (p.enum) o.enum = p.enum;
      if (p.pattern) o.pattern = p.pattern.source;
      if (p.maxLength) o.maxLength = p.maxLength;
    }
    if (p.type === 'integer' || p.type === 'number') {
      if (p.minimum !== undefined) o.minimum = p.minimum;
      if (p.maximum !== undefined) o.maximum = p.maximum;
    }
    properties[k] = o;
    if (!p.optional && p.default === undefined) required.push(k);
  }
  return { type: 'object', additionalProperties: false, properties, ...(required.length ? { required } : {}) };
}
