/** Routing of REST paths to operation declarations (paths with {placeholders}). */
import type { Operation } from '../core/operation.ts';
import type { ApiCtx } from './operations/daemon.ts';

export interface Route { op: Operation<ApiCtx>; segs: string[] }

export function compile(ops: readonly Operation<ApiCtx>[]): Route[] {
  return ops.map((op) => ({ op, segs: op.path.split('/').filter(Boolean) }));
}

/** The decoded segments of a path, or undefined when one is not valid percent-encoding. */
export function segments(path: string): string[] | undefined {
  try { return path.split('/').filter(Boolean).map(decodeURIComponent); } catch { return undefined; }
}

export function match(routes: Route[], method: string, segs: string[]): { route?: Route; params: Record<string, string>; pathKnown: boolean } {
  let best: { route: Route; params: Record<string, string>; score: number } | undefined;
  let pathKnown = false;
  for (const r of routes) {
    if (r.segs.length !== segs.length) continue;
    const params: Record<string, string> = {};
    let score = 0;
    let ok = true;
    for (let i = 0; i < segs.length && ok; i++) {
      const want = r.segs[i]!;
      if (want.startsWith('{')) params[want.slice(1, -1)] = segs[i]!;
      else if (want === segs[i]) score++;
      else ok = false;
    }
    if (!ok) continue;
    pathKnown = true;
    if (r.op.method !== method) continue;
    if (!best || score > best.score) best = { route: r, params, score };
  }
  return { route: best?.route, params: best?.params ?? {}, pathKnown };
}

/** An ACL path with {placeholders} filled from the route. */
export function expandPath(p: string, params: Record<string, string>): string {
  return p.replace(/\{([^}]+)\}/g, (_, k: string) => params[k] ?? `{${k}}`);
}
