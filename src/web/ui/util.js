// Small DOM and formatting helpers.
export const $ = (sel, root = document) => root.querySelector(sel);

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
    else if (k in e && typeof v !== 'string') e[k] = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== undefined && c !== null && c !== false) e.append(c);
  return e;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
export function bytes(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  let i = 0;
  while (Math.abs(n) >= 1024 && i < UNITS.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i === 0 ? 0 : n < 10 ? 2 : 1)} ${UNITS[i]}`;
}
export const rate = (n) => (n === null || n === undefined ? '–' : `${bytes(n)}/s`);
export function ago(iso) {
  if (!iso) return '–';
  const s = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}
/** smbgw-2026.11.30-19.52.01 -> Date */
export function snapTime(name) {
  const m = /^smbgw-(\d{4})\.(\d{2})\.(\d{2})-(\d{2})\.(\d{2})\.(\d{2})$/.exec(name || '');
  return m ? new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6])) : undefined;
}
export const fmtTime = (d) => (d ? d.toLocaleString([], { year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' }) : '–');

/** A yes/no question in a modal dialog that says what will happen; resolves true on Yes. */
export function confirmDialog(title, body) {
  const d = $('#confirm');
  $('#confirm-title').textContent = title;
  $('#confirm-body').replaceChildren(...(Array.isArray(body) ? body : [body]).map((p) => (typeof p === 'string' ? el('p', {}, p) : p)));
  d.returnValue = '';
  d.showModal();
  $('#confirm-no').focus();
  return new Promise((res) => d.addEventListener('close', () => res(d.returnValue === 'yes'), { once: true }));
}

export function statusIcon(kind, label) {
  return el('span', { class: `status ${kind}`, title: label }, el('span', { class: 'dot', 'aria-hidden': 'true' }), label);
}

/** A field from an OpenAPI property: select for enums, checkbox for booleans, else text. */
export function field(name, p, value, { required = false, label } = {}) {
  const id = `f-${name}`;
  let control;
  if (p.enum) {
    control = el('select', { id, name });
    if (p.default === undefined) control.append(el('option', { value: '' }, '–'));
    for (const o of p.enum) control.append(el('option', { value: o }, o));
    control.value = value ?? p.default ?? '';
  } else if (p.type === 'boolean') {
    control = el('input', { id, name, type: 'checkbox' });
    control.checked = value ?? p.default ?? false;
  } else {
    const type = name === 'password' ? 'password' : p.type === 'integer' ? 'number' : 'text';
    control = el('input', { id, name, type, autocomplete: name === 'password' ? 'new-password' : 'off' });
    control.value = Array.isArray(value) ? value.join(', ') : value ?? '';
    if (p.default !== undefined && !Array.isArray(p.default)) control.placeholder = String(p.default);
    if (p.type === 'array') control.placeholder = 'comma-separated';
  }
  return el('div', { class: 'field', 'data-field': name },
    el('label', { for: id }, `${label ?? name.replace(/_/g, ' ')}${required ? ' *' : ''}`),
    el('div', { class: 'control' }, control, el('span', { class: 'field-error', id: `err-${name}`, role: 'alert' }), el('span', { class: 'hint' }, p.description || '')));
}

/** The value of a field made by field(), typed as the property says; undefined when empty. */
export function fieldValue(name, p) {
  const c = document.getElementById(`f-${name}`);
  if (!c) return undefined;
  if (p.type === 'boolean') return c.checked;
  if (p.type === 'array') return c.value.split(',').map((x) => x.trim()).filter(Boolean);
  if (c.value === '') return undefined;
  return p.type === 'integer' ? Number(c.value) : c.value;
}

export function showFieldErrors(errors) {
  for (const e of document.querySelectorAll('.field-error')) e.textContent = '';
  for (const [k, msg] of Object.entries(errors || {})) {
    const e = document.getElementById(`err-${k}`);
    if (e) { e.textContent = msg; e.closest('.field')?.classList.add('invalid'); }
  }
}
