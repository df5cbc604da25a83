// One share: status and charts, sessions (disconnect), snapshots (take, restore), options (update), tasks, delete.
import { api, nodePath, openApi, waitTask } from './api.js';
import { drawCharts } from './charts.js';
import { $, bytes, confirmDialog, el, field, fieldValue, fmtTime, showFieldErrors, snapTime, statusIcon } from './util.js';

const MODES = JSON.parse(document.querySelector('meta[name="smbgw-modes"]').content);
const TABS = ['Summary', 'Sessions', 'Snapshots', 'Options', 'Task History'];
const yesNo = (v) => (v === null || v === undefined ? '–' : v ? 'yes' : 'no');

export function shareView(content, name, { onDeleted }) {
  const base = `${nodePath}/smbgateway/${encodeURIComponent(name)}`;
  const tabs = el('div', { class: 'tabs', role: 'tablist', id: 'share-tabs' });
  const body = el('div', { class: 'tab-body', id: 'share-body' });
  const msg = el('p', { class: 'msg', id: 'share-msg', role: 'status' });
  const title = el('h2', {}, `Share ${name}`);
  const del = el('button', { type: 'button', id: 'delete-share', class: 'danger' }, 'Remove');
  content.replaceChildren(el('div', { class: 'panel' }, el('div', { class: 'panel-title' }, title, el('span', { class: 'spacer' }), del), tabs, msg, body));

  let stopTab = () => undefined;
  let share;
  const say = (text, kind = 'ok') => { msg.textContent = text; msg.className = `msg ${kind}`; };

  const select = (t) => {
    stopTab();
    stopTab = () => undefined;
    for (const b of tabs.children) b.setAttribute('aria-selected', String(b.dataset.tab === t));
    body.replaceChildren();
    const f = { Summary: summary, Sessions: sessions, Snapshots: snapshots, Options: options, 'Task History': history }[t];
    f();
  };
  tabs.append(...TABS.map((t) => el('button', { type: 'button', role: 'tab', 'data-tab': t, 'aria-selected': 'false', onclick: () => select(t) }, t)));

  function poll(fn, ms) {
    let timer = 0; let stopped = false;
    const loop = async () => { try { await fn(); } catch (e) { if (!stopped) say(e.message, 'err'); } if (!stopped) timer = setTimeout(loop, ms); };
    loop();
    stopTab = () => { stopped = true; clearTimeout(timer); };
  }

  async function summary() {
    const status = el('div', { class: 'kv', id: 'share-status' });
    const frames = el('div', { class: 'toolbar' });
    const charts = el('div', { class: 'charts', id: 'charts' });
    body.append(status, frames, charts);
    let tf = 'hour';
    const doc = await openApi().catch(() => undefined);
    const prm = doc?.paths?.[`/api2/json/nodes/{node}/smbgateway/{sharename}/metrics`]?.get?.parameters?.find((x) => x.name === 'timeframe');
    const tfs = prm?.schema?.enum ?? ['hour', 'day', 'week', 'month', 'year'];
    const sel = el('select', { id: 'timeframe', 'aria-label': 'Timeframe', onchange: () => { tf = sel.value; load(); } }, tfs.map((t) => el('option', { value: t }, t[0].toUpperCase() + t.slice(1))));
    frames.append(el('label', { for: 'timeframe' }, 'Timeframe '), sel, el('span', { class: 'muted' }, ' (average)'));
    const load = async () => {
      const points = await api('GET', `${base}/metrics?timeframe=${tf}`);
      drawCharts(charts, points, tf);
    };
    const st = async () => {
      const s = await api('GET', `${base}/status`);
      share = s.share;
      const u = s.usage;
      status.replaceChildren(
        el('span', {}, 'Status'), el('span', { id: 'served' }, s.served ? statusIcon('ok', 'served') : statusIcon('err', 'not served')),
        el('span', {}, 'Mode'), el('span', {}, s.share.mode),
        el('span', {}, 'Path'), el('span', {}, s.share.path),
        el('span', {}, 'Comment'), el('span', { id: 'share-comment' }, s.share.comment || '–'),
        el('span', {}, 'Usage'), el('span', {}, u ? `${bytes(u.used)}${u.limit ? ` of ${bytes(u.limit)} quota` : u.total ? ` of ${bytes(u.total)}` : ''}` : '–'),
        el('span', {}, 'Sessions'), el('span', {}, String(s.sessions.length)),
        el('span', {}, 'Security'), el('span', {}, s.share.security_profile),
        ...(s.ha ? [el('span', {}, 'HA'), el('span', {}, s.ha.holder ? `VIP ${s.ha.vip} on ${s.ha.holder}` : 'VIP not held', s.ha.ok ? '' : ` (${s.ha.problems.join('; ')})`)] : []),
        ...(s.warnings.length ? [el('span', {}, 'Warnings'), el('span', { class: 'warn' }, s.warnings.join('; '))] : []));
    };
    await st().catch((e) => say(e.message, 'err'));
    let n = 0;
    poll(async () => { await load(); if (n++ % 5 === 4) await st(); }, 5000);
  }

  function sessions() {
    const tbody = el('tbody');
    body.append(el('table', { class: 'grid', id: 'sessions' },
      el('thead', {}, el('tr', {}, ['User', 'Client', 'Dialect', 'Signing', 'Encryption', 'Open files', 'Process', ''].map((h) => el('th', { scope: 'col' }, h)))), tbody),
    el('p', { class: 'muted', id: 'no-sessions', hidden: true }, 'Nobody is connected.'));
    poll(async () => {
      const rows = await api('GET', `${base}/sessions`);
      $('#no-sessions').hidden = rows.length > 0;
      tbody.replaceChildren(...rows.map((r) => el('tr', { 'data-pid': String(r.pid) },
        el('td', {}, r.user), el('td', {}, r.machine), el('td', {}, r.dialect ?? '–'), el('td', {}, yesNo(r.signed)), el('td', {}, yesNo(r.encrypted)),
        el('td', { class: 'num' }, String(r.open_files)), el('td', { class: 'num' }, String(r.pid)),
        el('td', {}, el('button', { type: 'button', class: 'disconnect', onclick: async () => {
          if (!await confirmDialog('Disconnect', `Disconnect ${r.user || 'this client'} (${r.machine}) from share ${name}? Its open files on this share are closed; unsaved changes in them are lost. The client may connect again.`)) return;
          try {
            await api('POST', `${base}/sessions/${r.pid}/disconnect`);
            say(`Disconnected ${r.user} (${r.machine}).`);
          } catch (e) { say(e.message, 'err'); }
        } }, 'Disconnect')))));
    }, 3000);
  }

  async function snapshots() {
    const tbody = el('tbody');
    const take = el('button', { type: 'button', id: 'take-snapshot', class: 'primary' }, 'Take Snapshot');
    body.append(el('div', { class: 'toolbar' }, take), el('table', { class: 'grid', id: 'snapshots' },
      el('thead', {}, el('tr', {}, ['Snapshot', 'Taken', ''].map((h) => el('th', { scope: 'col' }, h)))), tbody));
    const load = async () => {
      const list = await api('GET', `${base}/snapshots`);
      tbody.replaceChildren(...list.slice().reverse().map((s) => el('tr', { 'data-snapshot': s.name },
        el('td', {}, s.name), el('td', {}, fmtTime(new Date(s.time))),
        el('td', {}, el('button', { type: 'button', class: 'restore', onclick: () => restore(s) }, 'Restore…')))));
      if (!list.length) tbody.append(el('tr', {}, el('td', { colspan: '3', class: 'muted' }, 'No snapshots yet.')));
    };
    const restore = async (s) => {
      share ??= await api('GET', base);
      const zfs = (share.backing || '').startsWith('zfs:');
      const ok = await confirmDialog(`Restore ${name}`, [
        `Put the whole share ${name} back to snapshot ${s.name}, taken ${fmtTime(new Date(s.time))}.`,
        'Every file is replaced by its version in the snapshot: files changed since then lose those changes, files made since then are gone.',
        zfs ? 'ZFS rolls the dataset back; newer snapshots block the rollback unless they are destroyed.'
          : 'The current state is first saved as a new snapshot, so this restore can itself be undone.',
        'Connected clients should reconnect afterwards.']);
      if (!ok) return;
      try {
        say('Restoring…', 'busy');
        const r = await api('POST', `${base}/restore`, { snapshot: s.name });
        say(`Restored ${name} to ${r.restored}${r.safety_snapshot ? `; the state before is kept as ${r.safety_snapshot}` : ''}.`);
        await load();
      } catch (e) { say(e.message, 'err'); }
    };
    take.addEventListener('click', async () => {
      try {
        take.disabled = true;
        const r = await api('POST', `${base}/backup`);
        say(`Snapshot ${r.snapshot} taken.`);
        await load();
      } catch (e) { say(e.message, 'err'); } finally { take.disabled = false; }
    });
    await load().catch((e) => say(e.message, 'err'));
  }

  async function options() {
    const doc = await openApi();
    const schema = doc.paths['/api2/json/nodes/{node}/smbgateway/{sharename}'].put.requestBody.content['application/json'].schema;
    const s = await api('GET', base);
    const allowed = MODES[s.mode]?.updatable ?? [];
    const names = Object.keys(schema.properties).filter((k) => allowed.includes(k));
    const form = el('form', { id: 'options-form', class: 'form', novalidate: true });
    for (const k of names) form.append(field(k, schema.properties[k], s[k]));
    const save = el('button', { type: 'submit', class: 'primary', id: 'save-options' }, 'Save');
    form.append(el('div', { class: 'buttons' }, save));
    body.append(form);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      showFieldErrors({});
      const change = { digest: s.digest };
      const reset = [];
      for (const k of names) {
        const v = fieldValue(k, schema.properties[k]);
        const before = s[k];
        if (JSON.stringify(v ?? null) === JSON.stringify(before ?? null)) continue;
        if ((v === undefined || (Array.isArray(v) && !v.length)) && (k === 'comment' || k === 'options')) reset.push(k);
        else if (v !== undefined) change[k] = v;
      }
      if (reset.length) change.delete = reset.join(',');
      if (Object.keys(change).length === 1) { say('Nothing changed.'); return; }
      save.disabled = true;
      try {
        const upid = await api('PUT', base, change);
        const st = await waitTask(upid);
        if (st.exitstatus !== 'OK') {
          if (st.error?.field) showFieldErrors({ [st.error.field]: st.error.message });
          say(st.error?.message || st.exitstatus, 'err');
          return;
        }
        say('Saved.');
        select('Options');
      } catch (e) {
        showFieldErrors(e.errors);
        say(e.message, 'err');
      } finally { save.disabled = false; }
    });
  }

  function history() {
    const tbody = el('tbody');
    const log = el('pre', { id: 'task-log-view', hidden: true });
    body.append(el('table', { class: 'grid', id: 'tasks' },
      el('thead', {}, el('tr', {}, ['Start time', 'End time', 'User', 'Type', 'Status'].map((h) => el('th', { scope: 'col' }, h)))), tbody), log);
    poll(async () => {
      const tasks = (await api('GET', `${nodePath}/tasks`)).filter((t) => t.id.toLowerCase() === name.toLowerCase() && !t.type.endsWith('-dryrun')).slice(0, 50);
      tbody.replaceChildren(...tasks.map((t) => el('tr', { tabindex: '0', class: 'clickable', onclick: () => showLog(t), onkeydown: (e) => { if (e.key === 'Enter') showLog(t); } },
        el('td', {}, fmtTime(new Date(t.starttime * 1000))), el('td', {}, t.endtime ? fmtTime(new Date(t.endtime * 1000)) : '–'), el('td', {}, t.user), el('td', {}, t.type),
        el('td', { class: t.exitstatus && t.exitstatus !== 'OK' ? 'err' : '' }, t.status === 'running' ? 'running' : t.exitstatus || ''))));
      if (!tasks.length) tbody.append(el('tr', {}, el('td', { colspan: '5', class: 'muted' }, 'No tasks since the daemon started.')));
    }, 5000);
    const showLog = async (t) => {
      const lines = await api('GET', `${nodePath}/tasks/${encodeURIComponent(t.upid)}/log?limit=1000`);
      log.hidden = false;
      log.textContent = lines.map((l) => l.t).join('\n') || '(no output)';
    };
  }

  del.addEventListener('click', async () => {
    const purge = el('input', { type: 'checkbox', id: 'purge' });
    const ok = await confirmDialog(`Remove ${name}`, [
      `Remove share ${name}: connected clients are disconnected, its smb.conf section and the accounts the gateway made for it are removed.`,
      el('label', { class: 'check' }, purge, ' Also destroy the data (the dataset, subvolume or directory the gateway created). This cannot be undone.')]);
    if (!ok) return;
    try {
      say(`Removing ${name}…`, 'busy');
      const upid = await api('DELETE', `${base}${purge.checked ? '?purge=1' : ''}`);
      const st = await waitTask(upid);
      if (st.exitstatus !== 'OK') { say(st.error?.message || st.exitstatus, 'err'); return; }
      onDeleted();
    } catch (e) { say(e.message, 'err'); }
  });

  select('Summary');
  return { stop: () => stopTab() };
}
