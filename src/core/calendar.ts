/**
 * Proxmox calendar events (pure): the schedule syntax of vzdump jobs and Proxmox Backup Server
 * (`daily`, `mon..fri 02:00`, `*:0/15`, `sat *-1..7 15:00`), modelled on proxmox-time's parser:
 *
 *   [WEEKDAY[..WEEKDAY][,...]] [[YEARS-]MONTHS-DAYS] [HOURS:MINUTES[:SECONDS] | MINUTES]
 *
 * Each numeric field is `*`, `*` + `/step`, or a comma list of `N`, `N..M`, `N/step`, `N..M/step`.
 * A weekday or date without a time means 00:00:00; a time without seconds means second 0; a lone
 * number (or `*`+`/5`) is the minutes of every hour. `nextEvent` gives the first time strictly after a
 * given one, in local time (as Proxmox) or UTC.
 */

type Value = { kind: 'single'; v: number } | { kind: 'range'; a: number; b: number } | { kind: 'repeat'; start: number; step: number; end?: number };
/** An empty list means every value. */
type Field = Value[];

export interface CalendarEvent {
  /** Weekdays, 0 = Monday .. 6 = Sunday; empty = every day. */
  days: number[];
  year: Field;
  month: Field;
  day: Field;
  hour: Field;
  minute: Field;
  second: Field;
}

export class CalendarError extends Error {}

const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
const LONG = ['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'];

const ZERO: Field = [{ kind: 'single', v: 0 }];
const base = (): CalendarEvent => ({ days: [], year: [], month: [], day: [], hour: [], minute: [], second: [] });

const SPECIAL: Record<string, () => CalendarEvent> = {
  minutely: () => ({ ...base(), second: ZERO }),
  hourly: () => ({ ...base(), minute: ZERO, second: ZERO }),
  daily: () => ({ ...base(), hour: ZERO, minute: ZERO, second: ZERO }),
  weekly: () => ({ ...base(), days: [0], hour: ZERO, minute: ZERO, second: ZERO }),
  monthly: () => ({ ...base(), day: [{ kind: 'single', v: 1 }], hour: ZERO, minute: ZERO, second: ZERO }),
  yearly: () => ({ ...base(), month: [{ kind: 'single', v: 1 }], day: [{ kind: 'single', v: 1 }], hour: ZERO, minute: ZERO, second: ZERO }),
  quarterly: () => ({ ...base(), month: [1, 4, 7, 10].map((v) => ({ kind: 'single', v }) as Value), day: [{ kind: 'single', v: 1 }], hour: ZERO, minute: ZERO, second: ZERO }),
  semiannually: () => ({ ...base(), month: [1, 7].map((v) => ({ kind: 'single', v }) as Value), day: [{ kind: 'single', v: 1 }], hour: ZERO, minute: ZERO, second: ZERO }),
};
SPECIAL.annually = SPECIAL.yearly!;
SPECIAL['semi-annually'] = SPECIAL.semiannually!;

function num(s: string, min: number, max: number, what: string): number {
  if (!/^\d{1,4}$/.test(s)) throw new CalendarError(`"${s}" is not a number (${what})`);
  const n = Number(s);
  if (n < min || n > max) throw new CalendarError(`${what} ${n} is out of range (${min}..${max})`);
  return n;
}

/** One field: `*`, `*` /step, or a comma list. min/max: the field's range (inclusive). */
function parseField(s: string, min: number, max: number, what: string): Field {
  if (s === '*') return [];
  const star = /^\*\/(\d+)$/.exec(s);
  if (star) {
    const step = num(star[1]!, 1, max, `${what} step`);
    return [{ kind: 'repeat', start: min, step }];
  }
  return s.split(',').map((part) => {
    const m = /^(\d+)(?:\.\.(\d+))?(?:\/(\d+))?$/.exec(part);
    if (!m) throw new CalendarError(`"${part}" is not a valid ${what} (N, N..M, N/step or *)`);
    const a = num(m[1]!, min, max, what);
    const b = m[2] !== undefined ? num(m[2], min, max, what) : undefined;
    if (b !== undefined && a > b) throw new CalendarError(`${what} range ${a}..${b}: start is after end`);
    if (m[3] !== undefined) return { kind: 'repeat', start: a, step: num(m[3], 1, max, `${what} step`), ...(b !== undefined ? { end: b } : {}) } as Value;
    return b !== undefined ? { kind: 'range', a, b } as Value : { kind: 'single', v: a } as Value;
  });
}

function weekday(s: string): number {
  const l = s.toLowerCase();
  const i = WEEKDAYS.indexOf(l) >= 0 ? WEEKDAYS.indexOf(l) : LONG.indexOf(l);
  if (i < 0) throw new CalendarError(`"${s}" is not a weekday (mon, tue, wed, thu, fri, sat, sun)`);
  return i;
}

function parseWeekdays(s: string): number[] {
  const out = new Set<number>();
  for (const part of s.split(',')) {
    const [a, b, ...rest] = part.split('..');
    if (rest.length || !a) throw new CalendarError(`"${part}" is not a weekday or weekday range`);
    const from = weekday(a);
    const to = b === undefined ? from : weekday(b);
    // sat..mon wraps around the week
    for (let d = from; ; d = (d + 1) % 7) { out.add(d); if (d === to) break; }
  }
  return [...out].sort();
}

/** Parse a calendar event; throws CalendarError naming what is wrong. */
export function parseCalendarEvent(text: string): CalendarEvent {
  const s = text.trim().replace(/\s+/g, ' ');
  if (!s) throw new CalendarError('empty schedule');
  const special = SPECIAL[s.toLowerCase()];
  if (special) return special();
  const ev = base();
  const tokens = s.split(' ');
  let i = 0;
  let any = false;
  if (/^[A-Za-z]/.test(tokens[0]!)) { ev.days = parseWeekdays(tokens[0]!); i++; any = true; }
  const tok = tokens[i];
  if (tok !== undefined && tok.includes('-')) {
    const parts = tok.split('-');
    if (parts.length === 3) {
      ev.year = parseField(parts[0]!, 1970, 2200, 'year');
      ev.month = parseField(parts[1]!, 1, 12, 'month');
      ev.day = parseField(parts[2]!, 1, 31, 'day');
    } else if (parts.length === 2) {
      ev.month = parseField(parts[0]!, 1, 12, 'month');
      ev.day = parseField(parts[1]!, 1, 31, 'day');
    } else throw new CalendarError(`"${tok}" is not a date ([YEAR-]MONTH-DAY)`);
    i++; any = true;
  }
  const time = tokens[i];
  if (time !== undefined) {
    const parts = time.split(':');
    if (parts.length > 3) throw new CalendarError(`"${time}" is not a time (HOUR:MINUTE[:SECOND])`);
    if (parts.length === 1) {
      ev.minute = parseField(parts[0]!, 0, 59, 'minute');
    } else {
      ev.hour = parseField(parts[0]!, 0, 23, 'hour');
      ev.minute = parseField(parts[1]!, 0, 59, 'minute');
    }
    ev.second = parts.length === 3 ? parseField(parts[2]!, 0, 59, 'second') : ZERO;
    i++; any = true;
  } else {
    ev.hour = ZERO; ev.minute = ZERO; ev.second = ZERO;
  }
  if (i < tokens.length) throw new CalendarError(`unexpected "${tokens.slice(i).join(' ')}" (expected [WEEKDAY] [[YEAR-]MONTH-DAY] [HOUR:MINUTE[:SECOND]])`);
  if (!any) throw new CalendarError('needs a weekday, a date or a time');
  return ev;
}

/** undefined when valid, else why not (for schema checks). */
export function calendarEventRule(v: string): string | undefined {
  try { parseCalendarEvent(v); return undefined; } catch (e) {
    return `is not a Proxmox calendar event (${(e as Error).message}); examples: daily, mon..fri 02:00, *:0/15, sat *-1..7 15:00`;
  }
}

function matches(f: Field, v: number): boolean {
  if (!f.length) return true;
  return f.some((x) => {
    if (x.kind === 'single') return x.v === v;
    if (x.kind === 'range') return v >= x.a && v <= x.b;
    return v >= x.start && (v - x.start) % x.step === 0 && (x.end === undefined || v <= x.end);
  });
}

/** The smallest value >= from (up to max) the field allows, or undefined. */
function nextIn(f: Field, from: number, max: number): number | undefined {
  for (let v = from; v <= max; v++) if (matches(f, v)) return v;
  return undefined;
}

interface Civil { y: number; mo: number; d: number; h: number; mi: number; s: number }

const daysIn = (y: number, mo: number) => new Date(Date.UTC(y, mo, 0)).getUTCDate();
/** 0 = Monday. */
const weekdayOf = (y: number, mo: number, d: number) => (new Date(Date.UTC(y, mo - 1, d)).getUTCDay() + 6) % 7;

function toCivil(ms: number, utc: boolean): Civil {
  const t = new Date(ms);
  return utc
    ? { y: t.getUTCFullYear(), mo: t.getUTCMonth() + 1, d: t.getUTCDate(), h: t.getUTCHours(), mi: t.getUTCMinutes(), s: t.getUTCSeconds() }
    : { y: t.getFullYear(), mo: t.getMonth() + 1, d: t.getDate(), h: t.getHours(), mi: t.getMinutes(), s: t.getSeconds() };
}

function fromCivil(c: Civil, utc: boolean): number {
  return utc ? Date.UTC(c.y, c.mo - 1, c.d, c.h, c.mi, c.s) : new Date(c.y, c.mo - 1, c.d, c.h, c.mi, c.s).getTime();
}

/** The first civil time at or after c that the event matches (undefined: never again). */
function nextCivil(ev: CalendarEvent, c: Civil): Civil | undefined {
  let { y, mo, d, h, mi, s } = c;
  const maxYear = 2200;
  for (let guard = 0; guard < 100000; guard++) {
    if (y > maxYear) return undefined;
    if (!matches(ev.year, y)) {
      const ny = nextIn(ev.year, y + 1, maxYear);
      if (ny === undefined) return undefined;
      y = ny; mo = 1; d = 1; h = 0; mi = 0; s = 0; continue;
    }
    if (!matches(ev.month, mo)) {
      const nm = nextIn(ev.month, mo + 1, 12);
      if (nm === undefined) { y++; mo = 1; } else mo = nm;
      d = 1; h = 0; mi = 0; s = 0; continue;
    }
    if (d > daysIn(y, mo) || !matches(ev.day, d) || (ev.days.length && !ev.days.includes(weekdayOf(y, mo, d)))) {
      d++; h = 0; mi = 0; s = 0;
      if (d > daysIn(y, mo)) { d = 1; mo++; if (mo > 12) { mo = 1; y++; } }
      continue;
    }
    if (!matches(ev.hour, h)) {
      const nh = nextIn(ev.hour, h + 1, 23);
      if (nh === undefined) { d++; h = 0; if (d > daysIn(y, mo)) { d = 1; mo++; if (mo > 12) { mo = 1; y++; } } } else h = nh;
      mi = 0; s = 0; continue;
    }
    if (!matches(ev.minute, mi)) {
      const nmi = nextIn(ev.minute, mi + 1, 59);
      if (nmi === undefined) { h++; mi = 0; s = 0; if (h > 23) { h = 0; d++; if (d > daysIn(y, mo)) { d = 1; mo++; if (mo > 12) { mo = 1; y++; } } } continue; }
      mi = nmi; s = 0; continue;
    }
    if (!matches(ev.second, s)) {
      const ns = nextIn(ev.second, s + 1, 59);
      if (ns === undefined) { mi++; s = 0; if (mi > 59) { mi = 0; h++; if (h > 23) { h = 0; d++; if (d > daysIn(y, mo)) { d = 1; mo++; if (mo > 12) { mo = 1; y++; } } } } continue; }
      s = ns; continue;
    }
    return { y, mo, d, h, mi, s };
  }
  return undefined;
}

/**
 * The first time (epoch ms, whole seconds) strictly after `afterMs` that the event names, or
 * undefined if it never comes again. Local time by default, as Proxmox schedules are.
 */
export function nextEvent(ev: CalendarEvent | string, afterMs: number, opts: { utc?: boolean } = {}): number | undefined {
  const e = typeof ev === 'string' ? parseCalendarEvent(ev) : ev;
  const utc = !!opts.utc;
  let from = Math.floor(afterMs / 1000) * 1000 + 1000;
  for (let tries = 0; tries < 4; tries++) {
    const c = nextCivil(e, toCivil(from, utc));
    if (!c) return undefined;
    const t = fromCivil(c, utc);
    // A local time inside a DST gap maps to another hour: accept it only if it is still ahead.
    if (t > afterMs) return t;
    from += 3600_000;
  }
  return undefined;
}
