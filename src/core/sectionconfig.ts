/**
 * Proxmox's section-config syntax (as in /etc/pve/storage.cfg):
 *
 *   type: id
 *           key value
 *           flag 1
 *
 * Sections are separated by blank lines; `#` starts a comment line. An id may contain spaces (share
 * names do); only ASCII blanks are separators, so a value comes back exactly as rendered (values that
 * start or end with white space are refused before they get here, see schema.ts).
 */
export interface Section {
  type: string;
  id: string;
  props: Record<string, string>;
}

export function parseSectionConfig(text: string): Section[] {
  const out: Section[] = [];
  let cur: Section | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[ \t\r]+$/, '');
    if (line === '') { cur = undefined; continue; }
    if (/^[ \t]*#/.test(line)) continue;
    const head = /^([^\s:]+):[ \t]+(.+)$/.exec(line);
    if (head && !/^[ \t]/.test(line)) {
      cur = { type: head[1]!, id: head[2]!, props: {} };
      out.push(cur);
      continue;
    }
    const kv = /^[ \t]+([^ \t]+)(?:[ \t]+(.*))?$/.exec(line);
    if (kv && cur) {
      cur.props[kv[1]!] = kv[2] ?? '';
      continue;
    }
    // A line that fits neither shape belongs to no section; PVE ignores it with a warning.
  }
  return out;
}

export function renderSectionConfig(sections: readonly Section[]): string {
  return sections
    .map((s) => {
      for (const x of [s.id, ...Object.values(s.props)]) {
        if (/[\r\n]|^[ \t]|[ \t]$/.test(x)) throw new Error(`refusing to write ${JSON.stringify(x)} to a section config: it would not read back the same`);
      }
      const lines = [`${s.type}: ${s.id}`];
      for (const [k, v] of Object.entries(s.props)) lines.push(v === '' ? `\t${k}` : `\t${k} ${v}`);
      return lines.join('\n') + '\n';
    })
    .join('\n');
}
