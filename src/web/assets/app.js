// The SMB Gateway web wizard. Plain ES module, no build step. Every field of the create wizard comes
// from the API's own OpenAPI document (generated from the operation declarations), so the page
// asks for exactly what `pve-smbgateway create` takes, with the same descriptions, enums and defaults.
const API = '/api2/json';
const node = document.querySelector('meta[name="smbgw-node"]').content;
const $ = (sel) => document.querySelector(sel);

// Which parameters the wizard asks for on which step; anything else the API takes goes to "Advanced".
const STEPS = [
  { title: 'Share', fields: ['sharename', 'mode', 'comment'] },
  { title: 'Storage', fields: ['path', 'quota'] },
  { title: 'Access', fields: ['users', 'read_users', 'password', 'security_profile', 'guest_ok', 'read_only'] },
  { title: 'Advanced', fields: null },
  { title: 'Review', fields: [] },
];
const HIDDEN = new Set(['node']);

let token = sessionStorage.getItem('smbgw-token') || '';
let schema = null;   // request body schema of the create operation
let step = 0;
const values = {};

async function api(method, path, body) {
  const opts = { method, headers: { Authorization: token } };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(API + path, opts);
  let j = {};
  try { j = await res.json(); } catch { /* not JSON */ }
  if (!res.ok) {
    const err = new Error(j.message || `${res.status} ${res.statusText}`);
    err.status = res.status;
    err.errors = j.errors || {};
    throw err;
  }
  return j.data;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k in e && typeof v !== 'string') e[k] = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

// --- sign in ---
async function signIn(t) {
  token = t;
  const doc = await api('GET', '/smbgateway/openapi');
  const op = doc.paths[`${API}/nodes/{node}/smbgateway`].post;
  schema = op.requestBody.content['application/json'].schema;
  sessionStorage.setItem('smbgw-token', token);
  $('#login').hidden = true;
  $('#app').hidden = false;
  $('#logout').hidden = false;
  $('#node').textContent = `node ${node}`;
  await refresh();
}

$('#login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('#login-error').textContent = '';
  try {
    await signIn($('#token').value.trim());
  } catch (e) {
    token = '';
    $('#login-error').textContent = e.status === 401 ? 'The token was not accepted.' : `Sign-in failed: ${e.message}`;
  }
});
$('#logout').addEventListener('click', () => { sessionStorage.removeItem('smbgw-token'); location.reload(); });

// --- share list ---
async function refresh() {
  const shares = await api('GET', `/nodes/${encodeURIComponent(node)}/smbgateway`);
  const tbody = $('#shares tbody');
  tbody.replaceChildren();
  for (const s of shares) {
    const del = el('button', { type: 'button', 'data-share': s.sharename }, 'Delete');
    del.addEventListener('click', () => removeShare(s.sharename));
    const users = [...s.users, ...s.read_users.map((u) => `${u} (read)`)].join(', ') || (s.guest_ok ? 'guest' : '');
    tbody.append(el('tr', { 'data-share': s.sharename },
      el('td', {}, s.sharename), el('td', {}, s.mode), el('td', {}, s.path), el('td', {}, s.quota || '–'),
      el('td', {}, s.security_profile), el('td', {}, users), el('td', {}, del)));
  }
  $('#no-shares').hidden = shares.length > 0;
}

async function removeShare(name) {
  if (!confirm(`Delete share ${name}? Clients are disconnected; the data stays.`)) return;
  const upid = await api('DELETE', `/nodes/${encodeURIComponent(node)}/smbgateway/${encodeURIComponent(name)}`);
  await waitTask(upid, () => undefined);
  await refresh();
}

// --- the wizard ---
function fieldsOf(i) {
  const all = Object.keys(schema.properties).filter((k) => !HIDDEN.has(k));
  if (STEPS[i].fields) return STEPS[i].fields.filter((k) => all.includes(k));
  const named = new Set(STEPS.flatMap((s) => s.fields || []));
  return all.filter((k) => !named.has(k));
}

function stepOfField(name) {
  for (let i = 0; i < STEPS.length; i++) if (fieldsOf(i).includes(name)) return i;
  return 0;
}

function input(name, p) {
  const id = `f-${name}`;
  const v = values[name];
  let control;
  if (p.enum) {
    control = el('select', { id, name });
    if (!(p.default !== undefined)) control.append(el('option', { value: '' }, '–'));
    for (const o of p.enum) control.append(el('option', { value: o }, o));
    control.value = v ?? p.default ?? '';
  } else if (p.type === 'boolean') {
    control = el('input', { id, name, type: 'checkbox' });
    control.checked = v ?? p.default ?? false;
  } else {
    const type = name === 'password' ? 'password' : p.type === 'integer' ? 'number' : 'text';
    control = el('input', { id, name, type });
    control.value = Array.isArray(v) ? v.join(', ') : v ?? '';
    if (p.default !== undefined && !Array.isArray(p.default)) control.placeholder = String(p.default);
    if (p.type === 'array') control.placeholder = 'comma-separated';
  }
  const required = (schema.required || []).includes(name);
  return el('label', { for: id }, `${name.replace(/_/g, ' ')}${required ? ' *' : ''}`, control,
    el('span', { class: 'hint' }, p.description || ''), el('span', { class: 'field-error', id: `err-${name}` }));
}

function readStep() {
  for (const name of fieldsOf(step)) {
    const p = schema.properties[name];
    const c = document.getElementById(`f-${name}`);
    if (!c) continue;
    if (p.type === 'boolean') values[name] = c.checked;
    else if (p.type === 'array') values[name] = c.value.split(',').map((x) => x.trim()).filter(Boolean);
    else if (c.value === '') delete values[name];
    else values[name] = p.type === 'integer' ? Number(c.value) : c.value;
  }
}

function render(errors = {}) {
  $('#steps').replaceChildren(...STEPS.map((s, i) => el('li', { class: i === step ? 'current' : '' }, s.title)));
  const body = $('#step-body');
  body.replaceChildren();
  if (STEPS[step].title === 'Review') {
    const dl = el('dl', { class: 'review' });
    for (const [k, v] of Object.entries(body2())) dl.append(el('dt', {}, k), el('dd', {}, k === 'password' ? '••••••' : Array.isArray(v) ? v.join(', ') : String(v)));
    body.append(dl);
  } else {
    for (const name of fieldsOf(step)) body.append(input(name, schema.properties[name]));
  }
  for (const [k, msg] of Object.entries(errors)) {
    const e = document.getElementById(`err-${k}`);
    if (e) e.textContent = msg;
  }
  $('#back').disabled = step === 0;
  $('#next').hidden = step === STEPS.length - 1;
  $('#create').hidden = step !== STEPS.length - 1;
}

/** What the wizard sends: only what the user set or changed from the default. */
function body2() {
  const out = {};
  for (const [k, v] of Object.entries(values)) {
    const p = schema.properties[k];
    if (Array.isArray(v) && v.length === 0) continue;
    if (p && p.default !== undefined && v === p.default) continue;
    out[k] = v;
  }
  return out;
}

function missing() {
  const errs = {};
  for (const k of fieldsOf(step)) if ((schema.required || []).includes(k) && (values[k] === undefined || values[k] === '')) errs[k] = 'required';
  return errs;
}

$('#new-share').addEventListener('click', () => {
  for (const k of Object.keys(values)) delete values[k];
  step = 0;
  $('#wizard-error').textContent = '';
  $('#task-log').hidden = true;
  render();
  $('#wizard').showModal();
});
$('#cancel').addEventListener('click', () => $('#wizard').close());
$('#back').addEventListener('click', () => { readStep(); step = Math.max(0, step - 1); render(); });
$('#next').addEventListener('click', () => {
  readStep();
  const errs = missing();
  if (Object.keys(errs).length) { render(errs); return; }
  step = Math.min(STEPS.length - 1, step + 1);
  render();
});

async function waitTask(upid, onLine) {
  const base = `/nodes/${encodeURIComponent(node)}/tasks/${encodeURIComponent(upid)}`;
  let seen = 0;
  for (;;) {
    const st = await api('GET', `${base}/status`);
    const log = await api('GET', `${base}/log?start=${seen}&limit=500`);
    for (const l of log) { onLine(l.t); seen = Math.max(seen, l.n); }
    if (st.status !== 'running') return st;
    await new Promise((r) => setTimeout(r, 300));
  }
}

$('#wizard-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('#wizard-error').textContent = '';
  const logEl = $('#task-log');
  logEl.textContent = '';
  $('#create').disabled = true;
  try {
    const upid = await api('POST', `/nodes/${encodeURIComponent(node)}/smbgateway`, body2());
    logEl.hidden = false;
    const st = await waitTask(upid, (line) => { logEl.textContent += line + '\n'; });
    if (st.exitstatus !== 'OK') {
      const field = st.error && st.error.field;
      if (field && schema.properties[field]) { step = stepOfField(field); render({ [field]: st.error.message }); }
      $('#wizard-error').textContent = st.exitstatus;
      return;
    }
    $('#wizard').close();
    await refresh();
  } catch (e) {
    const fields = Object.keys(e.errors || {});
    if (fields.length) { step = stepOfField(fields[0]); render(e.errors); }
    $('#wizard-error').textContent = e.message;
  } finally {
    $('#create').disabled = false;
  }
});

if (token) signIn(token).catch(() => { sessionStorage.removeItem('smbgw-token'); token = ''; });
