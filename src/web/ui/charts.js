// The share's metrics history as uPlot charts (bundled from npm: no CDN).
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { bytes } from './util.js';

export const CHARTS = [
  { id: 'throughput', title: 'Throughput', series: [['throughput_read', 'read', '#3892d4'], ['throughput_write', 'write', '#f0a30a']], fmt: (v) => `${bytes(v)}/s` },
  { id: 'iops', title: 'IOPS', series: [['iops_read', 'read', '#3892d4'], ['iops_write', 'write', '#f0a30a']], fmt: (v) => `${v.toFixed(1)}/s` },
  { id: 'connections', title: 'Connections', series: [['connections', 'sessions', '#21bf4b']], fmt: (v) => v.toFixed(0) },
  { id: 'errors', title: 'Errors', series: [['errors', 'failed logons + refused', '#e44']], fmt: (v) => v.toFixed(0) },
  { id: 'usage', title: 'Usage', series: [['storage_used', 'used', '#3892d4'], ['storage_total', 'total / quota', '#999']], fmt: (v) => bytes(v) },
];

// Charts by id, for whoever wants to read what they show (tests read the data, not the pixels).
window.smbgwCharts = window.smbgwCharts || {};

/** Seconds each timeframe of the metrics API covers (the x axis spans all of it, as PVE's graphs). */
const SPAN = { hour: 3600, day: 86400, week: 7 * 86400, month: 30 * 86400, year: 365 * 86400 };

/** Short axis labels: 9.5M/s rather than 9.54 MiB/s. */
function short(v, unit) {
  const k = ['', 'K', 'M', 'G', 'T'];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < k.length - 1) { v /= 1024; i++; }
  return `${Number.isInteger(v) ? v : v.toFixed(1)}${k[i]}${unit}`;
}

export function drawCharts(container, points, timeframe = 'hour', now = Date.now() / 1000) {
  for (const c of CHARTS) {
    let box = container.querySelector(`#chart-${c.id}`);
    if (!box) { box = document.createElement('div'); box.className = 'chart'; box.id = `chart-${c.id}`; container.append(box); }
    const width = Math.max(260, box.clientWidth - 10);
    const data = [points.map((p) => p.time), ...c.series.map(([k]) => points.map((p) => p[k]))];
    const span = SPAN[timeframe] ?? 3600;
    const old = window.smbgwCharts[c.id];
    if (old && old.root.isConnected && old.width === width && old.smbgwFrame === timeframe) {
      old.smbgwNow = now;
      old.setData(data);
      continue;
    }
    if (old) old.destroy();
    box.replaceChildren();
    const bytesAxis = c.id === 'throughput' || c.id === 'usage';
    const u = new uPlot({
      title: c.title, width, height: 160,
      legend: { live: false },
      series: [{}, ...c.series.map(([, label, stroke]) => ({ label, stroke, width: 1.5, fill: `${stroke}22`, value: (_u, v) => (v === null || v === undefined ? '–' : c.fmt(v)) }))],
      axes: [{}, { size: 64, values: (_u, vals) => vals.map((v) => (bytesAxis ? short(v, c.id === 'throughput' ? '/s' : '') : short(v, ''))) }],
      scales: {
        x: { time: true, range: (self) => [(self.smbgwNow ?? now) - span, self.smbgwNow ?? now] },
        y: { range: (_u, _min, max) => [0, Math.max(max || 0, c.id === 'connections' || c.id === 'errors' ? 2 : 1024)] },
      },
      cursor: { drag: { x: false, y: false } },
    }, data, box);
    u.smbgwFrame = timeframe;
    window.smbgwCharts[c.id] = u;
  }
}
