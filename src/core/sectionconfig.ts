/**
 * Proxmox's section-config syntax (as in /etc/pve/storage.cfg):
 *
 *   type: id
 *           key value
 *           flag 1
 *
 * Sections are separated by blank lines; `#` starts a comment line.
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
    const line = raw.replace(/\s+$/, '');
    if (line.trim() === '') { cur = undefined; continue; }
    if (/^\s*#/.test(line)) continue;
    const head = /^(\S+):\s*(\S+)\s*$/.exec(line);
    if (head && !/^\s/.test(line)) {
      cur = { type: head[1]!, id: head[2]!, props: {} };
      out.push(cur);
      continue;
    }
    const kv = /^\s+(\S+)(?:\s+(.*))?$/.exec(line);
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
      const lines = [`${s.type}: ${s.id}`];
      for (const [k, v] of Object.entries(s.props)) lines.push(`\t${k} ${v}`);
      return lines.join('\n') + '\n';
    })
    .join('\n');
}
