// The create wizard, as PVE's "Create:" windows: tabs across the top, Back/Next, a confirm tab
// showing the plan (a dry run of the same operation), progress from the task log, and a done page
// with the connection strings. Fields come from the API's own OpenAPI document and follow the mode;
// on each Next the API checks what is filled in (a dry run), and its messages go next to the field.
import { api, nodePath, openApi, waitTask } from './api.js';
import { $, bytes, el, field, fieldValue, showFieldErrors } from './util.js';

const MODES = JSON.parse(document.querySelector('meta[name="smbgw-modes"]').content);
const SMB = JSON.parse(document.querySelector('meta[name="smbgw-smb"]').content);
const STEPS = [
  { title: 'General', fields: ['sharename', 'mode', 'comment'] },
  { title: 'Storage', fields: ['path', 'quota'] },
  { title: 'Access', fields: ['users', 'read_users', 'groups', 'read_groups', 'password', 'security_profile', 'guest_ok', 'read_only'] },
  { title: 'Advanced', fields: null },
  { title: 'Confirm', fields: [] },
  { title: 'Progress', fields: [] },
  { title: 'Done', fields: [] },
];
const CONFIRM = 4; const PROGRESS = 5; const DONE = 6;
// Not asked for: where the share is served (this node), what the gateway records itself, CLI-only forms.
const HIDDEN = new Set(['node', 'dry_run', 'passwords', 'adopt']);

let schema; let step = 0; let values = {}; let storages = []; let result; let taskLog = ''; let onCreated = () => undefined;

function allowed(k) {
  if (HIDDEN.has(k)) return false;
  if (k === 'password' || k === 'mode') return true;
  const mode = values.mode || 'native';
  return (MODES[mode]?.options ?? []).includes(k);
}

function fieldsOf(i) {
  const all = Object.keys(schema.properties).filter(allowed);
  if (STEPS[i].fields) return STEPS[i].fields.filter((k) => all.includes(k));
  const named = new Set(STEPS.flatMap((s) => s.fields || []));
  return all.filter((k) => !named.has(k));
}
const stepOfField = (name) => { for (let i = 0; i < CONFIRM; i++) if (fieldsOf(i).includes(name)) return i; return -1; };

function readStep() {
  for (const k of fieldsOf(step)) {
    const v = fieldValue(k, schema.properties[k]);
    if (v === undefined) delete values[k]; else values[k] = v;
  }
}

/** What is sent: what the user set that differs from the default, and only options of the mode. */
function body() {
  const out = {};
  for (const [k, v] of Object.entries(values)) {
    if (!schema.properties[k] || !allowed(k)) continue;
    const p = schema.properties[k];
    if (Array.isArray(v) && v.length === 0) continue;
    if (p.default !== undefined && JSON.stringify(v) === JSON.stringify(p.default)) continue;
    out[k] = v;
  }
  return out;
}

function storagePicker() {
  const list = el('datalist', { id: 'path-choices' }, storages.flatMap((s) => [s.path, ...s.entries]).map((p) => el('option', { value: p })));
  const sel = el('select', { id: 'storage', 'aria-label': 'Storage' },
    el('option', { value: '' }, 'choose…'),
    storages.map((s) => el('option', { value: s.path }, `${s.storage ? `${s.storage} (${s.type}): ` : ''}${s.path} — ${bytes(s.free)} free of ${bytes(s.total)}`)));
  sel.addEventListener('change', () => {
    if (!sel.value) return;
    $('#f-path').value = `${sel.value.replace(/\/$/, '')}/${values.sharename || ''}`;
    $('#f-path').focus();
  });
  return el('div', { class: 'field' }, el('label', { for: 'storage' }, 'storage'), el('div', { class: 'control' }, sel, list,
    el('span', { class: 'hint' }, storages.length ? 'Where the share goes: pick a storage, then name the directory (made as a dataset or subvolume where the storage can).' : 'No storage root of this node is readable.')));
}

function render(errors = {}) {
  $('#steps').replaceChildren(...STEPS.map((s, i) => el('li', { role: 'tab', 'aria-selected': String(i === step), class: i === step ? 'current' : i < step ? 'done' : '' }, s.title)));
  const b = $('#step-body');
  b.replaceChildren();
  if (step === CONFIRM) {
    const dl = el('dl', { class: 'review' });
    for (const [k, v] of Object.entries(body())) dl.append(el('dt', {}, k), el('dd', {}, k === 'password' ? '••••••••' : Array.isArray(v) ? v.join(', ') : String(v)));
    b.append(el('h3', {}, 'Settings'), dl, el('h3', {}, 'Plan'), el('ol', { id: 'plan', class: 'plan' }, el('li', { class: 'muted' }, 'checking…')));
    plan();
  } else if (step === PROGRESS) {
    b.append(el('pre', { id: 'task-log', class: 'log' }));
  } else if (step === DONE) {
    done(b);
  } else {
    if (STEPS[step].title === 'Storage') b.append(storagePicker());
    for (const k of fieldsOf(step)) {
      const f = field(k, schema.properties[k], values[k], { required: (schema.required || []).includes(k) });
      if (k === 'path') f.querySelector('input').setAttribute('list', 'path-choices');
      b.append(f);
    }
    const m = $('#f-mode');
    if (m) m.addEventListener('change', () => { values.mode = m.value; });
  }
  showFieldErrors(errors);
  $('#back').hidden = step === 0 || step >= PROGRESS;
  $('#next').hidden = step >= CONFIRM;
  $('#create').hidden = step !== CONFIRM;
  $('#cancel').hidden = step >= PROGRESS;
  $('#finish').hidden = step !== DONE;
  const first = b.querySelector('input, select, textarea');
  if (first && step < CONFIRM) first.focus();
}

async function plan() {
  const ol = $('#plan');
  try {
    const upid = await api('POST', `${nodePath}/smbgateway`, { ...body(), dry_run: true });
    const st = await waitTask(upid);
    if (st.exitstatus !== 'OK') { fail(st.error); return; }
    const steps = st.result?.plan ?? [];
    ol.replaceChildren(...steps.map((s) => el('li', {}, el('strong', {}, s.step), s.shows ? ` — ${s.shows}` : '', el('span', { class: 'muted' }, ` (undo: ${s.undo})`))));
    for (const w of st.result?.warnings ?? []) ol.after(el('p', { class: 'warn' }, w));
  } catch (e) { fail(undefined, e); }
}

function fail(taskError, e) {
  const fields = taskError?.field ? { [taskError.field]: taskError.message } : e?.errors || {};
  const first = Object.keys(fields).map(stepOfField).filter((i) => i >= 0).sort()[0];
  if (first !== undefined) { step = first; render(fields); }
  $('#wizard-error').textContent = taskError?.message || e?.message || 'failed';
}

function done(b) {
  const share = result?.share ?? { sharename: values.sharename };
  const host = !SMB.host || SMB.host === '0.0.0.0' || SMB.host === '::' || SMB.host.startsWith('127.') ? location.hostname : SMB.host;
  const port = SMB.port && SMB.port !== 445 ? SMB.port : undefined;
  const user = share.users?.[0] || 'USER';
  const rows = [
    ['Windows', `\\\\${host}\\${share.sharename}`, port ? `(Windows connects on port 445 only; this gateway listens on ${port})` : 'Explorer address bar, or: net use Z: \\\\' + host + '\\' + share.sharename],
    ['macOS', `smb://${host}${port ? ':' + port : ''}/${share.sharename}`, 'Finder: Go → Connect to Server'],
    ['Linux', `mount -t cifs //${host}/${share.sharename} /mnt/${share.sharename} -o username=${user}${port ? ',port=' + port : ''}${share.security_profile === 'high' ? ',seal' : ''}`, 'as root (cifs-utils)'],
  ];
  b.append(el('p', { class: 'ok' }, `Share ${share.sharename} is ready.`),
    el('table', { class: 'grid', id: 'connect' }, el('tbody', {}, rows.map(([os, s, hint]) => el('tr', { 'data-os': os }, el('th', { scope: 'row' }, os), el('td', {}, el('code', {}, s)), el('td', { class: 'muted' }, hint))))),
    ...(result?.warnings?.length ? [el('p', { class: 'warn' }, result.warnings.join('; '))] : []),
    el('details', {}, el('summary', {}, 'Task log'), el('pre', { id: 'task-log-done', class: 'log' }, taskLog)));
}

async function next() {
  readStep();
  $('#wizard-error').textContent = '';
  const missing = {};
  for (const k of fieldsOf(step)) if ((schema.required || []).includes(k) && (values[k] === undefined || values[k] === '')) missing[k] = 'required';
  if (Object.keys(missing).length) { render(missing); return; }
  // The API checks the fields so far (parameter verification answers at once; a dry run is not waited for).
  try {
    await api('POST', `${nodePath}/smbgateway`, { ...body(), dry_run: true });
  } catch (e) {
    const mine = Object.fromEntries(Object.entries(e.errors || {}).filter(([k]) => { const i = stepOfField(k); return i >= 0 && i <= step; }));
    if (Object.keys(mine).length) { render(mine); return; }
    if (e.status && e.status !== 400) { $('#wizard-error').textContent = e.message; return; }
  }
  step++;
  render();
}

async function create(ev) {
  ev.preventDefault();
  $('#create').disabled = true;
  $('#wizard-error').textContent = '';
  try {
    const upid = await api('POST', `${nodePath}/smbgateway`, body());
    step = PROGRESS;
    render();
    const log = $('#task-log');
    taskLog = '';
    const st = await waitTask(upid, (line) => { taskLog += line + '\n'; log.textContent = taskLog; log.scrollTop = log.scrollHeight; });
    if (st.exitstatus !== 'OK') { $('#back').hidden = false; step = CONFIRM; fail(st.error); if (step === CONFIRM) render(); $('#wizard-error').textContent = st.error?.message || st.exitstatus; return; }
    result = st.result;
    step = DONE;
    render();
    onCreated(values.sharename);
  } catch (e) {
    fail(undefined, e);
  } finally { $('#create').disabled = false; }
}

export async function openWizard(created) {
  onCreated = created;
  const doc = await openApi();
  schema = doc.paths['/api2/json/nodes/{node}/smbgateway'].post.requestBody.content['application/json'].schema;
  storages = await api('GET', `${nodePath}/smbgateway/storages`).catch(() => []);
  values = { mode: 'native' }; step = 0; result = undefined;
  $('#wizard-error').textContent = '';
  render();
  $('#wizard').showModal();
  $('#f-sharename')?.focus();
}

let wired = false;
export function wireWizard() {
  if (wired) return;
  wired = true;
  $('#cancel').addEventListener('click', () => $('#wizard').close());
  $('#finish').addEventListener('click', () => $('#wizard').close());
  $('#back').addEventListener('click', () => { readStep(); step = Math.max(0, step - 1); $('#wizard-error').textContent = ''; render(); });
  $('#next').addEventListener('click', () => { next(); });
  $('#wizard-form').addEventListener('submit', create);
}
