// The dashboard: every share at a glance, problems first, updated live by polling.
import { api, nodePath } from './api.js';
import { $, ago, bytes, el, rate, snapTime, statusIcon } from './util.js';

export const POLL_MS = 3000;

function usageCell(r) {
  if (r.used === null) return el('td', { class: 'usage' }, '–');
  const pct = r.limit ? Math.min(100, (100 * r.used) / r.limit) : 0;
  const level = pct > 90 ? 'lvl-crit' : pct > 75 ? 'lvl-warn' : 'lvl-ok';
  return el('td', { class: 'usage' },
    el('div', { class: `bar ${level}`, role: 'meter', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': pct.toFixed(0), 'aria-label': 'usage' },
      el('div', { class: 'fill', style: undefined }),
      el('span', {}, r.limit ? `${pct.toFixed(0)} % (${bytes(r.used)} of ${bytes(r.limit)}${r.quota ? ' quota' : ''})` : bytes(r.used))));
}

function row(r) {
  const served = r.served === null ? statusIcon('unknown', 'see status') : r.served ? statusIcon('ok', 'served') : statusIcon('err', 'not served');
  const tr = el('tr', { 'data-share': r.sharename, class: r.problems.length ? 'problem' : '' },
    el('td', { class: 'served' }, served),
    el('td', {}, el('a', { href: `#/share/${encodeURIComponent(r.sharename)}` }, r.sharename)),
    el('td', {}, r.mode),
    el('td', { class: 'sessions num' }, r.sessions === null ? '–' : String(r.sessions)),
    usageCell(r),
    el('td', { class: 'throughput num' }, r.throughput_read === null ? '–' : `↓ ${rate(r.throughput_read)}  ↑ ${rate(r.throughput_write)}`),
    el('td', { class: 'ha' }, r.ha ? statusIcon(r.ha.ok ? 'ok' : 'err', r.ha.holder ? `VIP on ${r.ha.holder}` : 'VIP not held') : '–'),
    el('td', { class: 'snapshot' }, r.last_snapshot ? ago(snapTime(r.last_snapshot)) : '–'),
    el('td', { class: 'problems' }, r.problems.join('; ')));
  // The usage bar's width is set through the CSSOM (the page's CSP allows no inline style attributes).
  const fill = tr.querySelector('.bar .fill');
  if (fill && r.limit) fill.style.width = `${Math.min(100, (100 * r.used) / r.limit)}%`;
  return tr;
}

export function dashboardView(content, onShares) {
  const tbody = el('tbody');
  const summary = el('div', { class: 'summary', id: 'dash-summary' });
  const updated = el('span', { class: 'muted', id: 'dash-updated' });
  content.replaceChildren(
    el('div', { class: 'panel' },
      el('div', { class: 'panel-title' }, el('h2', {}, 'Dashboard'), updated),
      summary,
      el('div', { class: 'grid-wrap' }, el('table', { class: 'grid', id: 'shares' },
        el('thead', {}, el('tr', {}, ['Status', 'Name', 'Mode', 'Sessions', 'Usage', 'Throughput now', 'HA', 'Last snapshot', 'Problems'].map((h) => el('th', { scope: 'col' }, h)))),
        tbody)),
      el('p', { id: 'no-shares', hidden: true }, 'No shares yet: create one with "Create Share".')));
  let timer = 0;
  let stopped = false;
  const refresh = async () => {
    try {
      const d = await api('GET', `${nodePath}/smbgateway/dashboard`);
      if (stopped) return;
      tbody.replaceChildren(...d.shares.map(row));
      $('#no-shares').hidden = d.shares.length > 0;
      const bad = d.shares.filter((s) => s.problems.length).length;
      const sessions = d.shares.reduce((n, s) => n + (s.sessions || 0), 0);
      summary.replaceChildren(
        statusIcon(bad ? 'err' : 'ok', bad ? `${bad} of ${d.shares.length} shares need attention` : `all ${d.shares.length} shares fine`),
        el('span', {}, `${sessions} sessions`),
        el('span', {}, d.smbd_running ? 'smbd running' : 'smbd not running'));
      updated.textContent = `updated ${new Date(d.time * 1000).toLocaleTimeString()}`;
      onShares(d.shares.map((s) => ({ name: s.sharename, bad: s.problems.length > 0 })));
    } catch (e) {
      if (!stopped) updated.textContent = `update failed: ${e.message}`;
    } finally {
      if (!stopped) timer = setTimeout(refresh, POLL_MS);
    }
  };
  const first = refresh();
  return { ready: first, stop: () => { stopped = true; clearTimeout(timer); } };
}
