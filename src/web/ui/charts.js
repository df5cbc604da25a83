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

export function drawCharts(container, points) {
  const width = Math.max(280, Math.min(container.clientWidth - 16, 640));
  for (const c of CHARTS) {
    let box = container.querySelector(`#chart-${c.id}`);
    const data = [points.map((p) => p.time), ...c.series.map(([k]) => points.map((p) => p[k]))];
    const old = window.smbgwCharts[c.id];
    if (box && old && old.root.isConnected && old.width === width) { old.setData(data); continue; }
    if (old) old.destroy();
    if (!box) { box = document.createElement('div'); box.className = 'chart'; box.id = `chart-${c.id}`; container.append(box); }
    box.replaceChildren();
    const u = new uPlot({
      title: c.title, width, height: 170,
      series: [{}, ...c.series.map(([, label, stroke]) => ({ label, stroke, width: 1.5, fill: `${stroke}22`, value: (_u, v) => (v === null || v === undefined ? '–' : c.fmt(v)) }))],
      axes: [{}, { size: 70, values: (_u, vals) => vals.map((v) => c.fmt(v)) }],
      scales: { y: { range: (_u, min, max) => [0, Math.max(max || 0, c.id === 'connections' || c.id === 'errors' ? 1 : 1024)] } },
      cursor: { drag: { x: false, y: false } },
    }, data, box);
    window.smbgwCharts[c.id] = u;
  }
}
