/**
 * What of a new managed smb.conf testparm has to read: the [global] block and the share sections whose
 * text differs from the file smbd serves now. testparm checks each section on its own (unknown or
 * badly formed parameters, invalid combinations within the section) and the global block with it, so
 * a candidate made of [global] plus the changed sections gets the same verdict for them as the whole
 * file; a section left byte for byte as installed was checked when it was written. This keeps a create
 * at share #500 from handing testparm 500 sections (bench/README.md, "bench/scale.ts").
 */

/** The file cut at each section header: the text before the first header, then one chunk per section. */
export function splitSections(text: string): { head: string; sections: { name: string; text: string }[] } {
  const lines = text.split('\n');
  const head: string[] = [];
  const sections: { name: string; lines: string[] }[] = [];
  for (const l of lines) {
    const m = /^\[(.*)\]\s*$/.exec(l);
    if (m) sections.push({ name: m[1]!, lines: [l] });
    else if (sections.length) sections[sections.length - 1]!.lines.push(l);
    else head.push(l);
  }
  return { head: head.join('\n'), sections: sections.map((s) => ({ name: s.name, text: s.lines.join('\n').replace(/\n+$/, '') })) };
}

/**
 * The part of `next` testparm must check, given the file installed now (`installed`, undefined when
 * there is none): everything before the first section, [global] (always), and each share section not
 * found with exactly this text in `installed`. Returns `next` itself when nothing can be left out.
 */
export function sectionsToCheck(next: string, installed: string | undefined): { text: string; skipped: number } {
  if (installed === undefined) return { text: next, skipped: 0 };
  const have = new Set(splitSections(installed).sections.map((s) => s.text));
  const n = splitSections(next);
  const keep = n.sections.filter((s) => s.name.toLowerCase() === 'global' || !have.has(s.text));
  const skipped = n.sections.length - keep.length;
  if (!skipped) return { text: next, skipped: 0 };
  return { text: [n.head.replace(/\n+$/, ''), ...keep.map((s) => s.text)].join('\n\n') + '\n', skipped };
}
