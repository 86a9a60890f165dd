/**
 * Run reports: `load/reports/<timestamp>-<name>.json` (everything measured) and a self-contained
 * `.html` next to it (no scripts, no external files) with inline SVG charts drawn here: throughput
 * and latency percentiles over time, the latency histogram, and CPU and RSS of every process.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import type { Histogram } from "hdr-histogram-js";
import { REPORTS_DIR } from "./cluster.js";
import type { ProcSeries } from "./proc-stats.js";

export type Series = { name: string; points: [number, number][] };
export type Chart =
  | { kind: "line"; title: string; xLabel: string; yLabel: string; series: Series[]; logY?: boolean }
  | { kind: "bars"; title: string; xLabel: string; yLabel: string; bars: { label: string; value: number }[] };

export type Target = { name: string; target: string; measured: string; pass: boolean | null };

export type ReportInput = {
  name: string;
  title: string;
  summary: Record<string, unknown>;
  targets: Target[];
  charts: Chart[];
  /** Written to the JSON only. */
  data: Record<string, unknown>;
};

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

const fmt = (v: number) => (Math.abs(v) >= 10_000 ? `${Math.round(v / 1000)}k` : Math.abs(v) >= 100 ? String(Math.round(v)) : String(Math.round(v * 10) / 10));

/** A line chart as an SVG string (linear x; linear or log10 y). */
export function lineChart(c: Extract<Chart, { kind: "line" }>, width = 760, height = 260): string {
  const m = { l: 60, r: 150, t: 26, b: 36 };
  const w = width - m.l - m.r;
  const h = height - m.t - m.b;
  const all = c.series.flatMap((s) => s.points);
  const xMax = niceMax(Math.max(1, ...all.map((p) => p[0])));
  const ys = all.map((p) => p[1]).filter((y) => Number.isFinite(y));
  const log = c.logY === true;
  const yMinLog = log ? Math.floor(Math.log10(Math.max(0.01, Math.min(...ys.filter((y) => y > 0), 1)))) : 0;
  const yMax = log ? Math.ceil(Math.log10(Math.max(...ys, 1))) : niceMax(Math.max(...ys, 0));
  const X = (x: number) => m.l + (x / xMax) * w;
  const Y = (y: number) => log
    ? m.t + h - ((Math.log10(Math.max(y, 10 ** yMinLog)) - yMinLog) / Math.max(1, yMax - yMinLog)) * h
    : m.t + h - (y / yMax) * h;
  const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`];
  parts.push(`<text x="${m.l}" y="16" font-size="13" font-weight="bold">${esc(c.title)}</text>`);
  const yTicks = log ? Array.from({ length: yMax - yMinLog + 1 }, (_, i) => 10 ** (yMinLog + i)) : Array.from({ length: 5 }, (_, i) => (yMax * i) / 4);
  for (const t of yTicks) {
    parts.push(`<line x1="${m.l}" x2="${m.l + w}" y1="${Y(t)}" y2="${Y(t)}" stroke="#ddd"/><text x="${m.l - 4}" y="${Y(t) + 4}" text-anchor="end">${fmt(t)}</text>`);
  }
  for (let i = 0; i <= 5; i++) {
    const t = (xMax * i) / 5;
    parts.push(`<text x="${X(t)}" y="${m.t + h + 14}" text-anchor="middle">${fmt(t)}</text>`);
  }
  parts.push(`<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${m.t + h}" stroke="#000"/><line x1="${m.l}" x2="${m.l + w}" y1="${m.t + h}" y2="${m.t + h}" stroke="#000"/>`);
  parts.push(`<text x="${m.l + w / 2}" y="${height - 4}" text-anchor="middle">${esc(c.xLabel)}</text>`);
  parts.push(`<text transform="translate(12 ${m.t + h / 2}) rotate(-90)" text-anchor="middle">${esc(c.yLabel)}</text>`);
  c.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = s.points.filter((p) => Number.isFinite(p[1])).map((p) => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" ");
    if (pts) parts.push(`<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${pts}"/>`);
    parts.push(`<rect x="${m.l + w + 10}" y="${m.t + i * 16}" width="10" height="10" fill="${color}"/><text x="${m.l + w + 24}" y="${m.t + i * 16 + 9}">${esc(s.name)}</text>`);
  });
  parts.push("</svg>");
  return parts.join("");
}

/** A bar chart as an SVG string. */
export function barChart(c: Extract<Chart, { kind: "bars" }>, width = 760, height = 260): string {
  const m = { l: 60, r: 20, t: 26, b: 50 };
  const w = width - m.l - m.r;
  const h = height - m.t - m.b;
  const yMax = niceMax(Math.max(1, ...c.bars.map((b) => b.value)));
  const bw = w / Math.max(1, c.bars.length);
  const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="10">`];
  parts.push(`<text x="${m.l}" y="16" font-size="13" font-weight="bold">${esc(c.title)}</text>`);
  for (let i = 0; i <= 4; i++) {
    const t = (yMax * i) / 4;
    const y = m.t + h - (t / yMax) * h;
    parts.push(`<line x1="${m.l}" x2="${m.l + w}" y1="${y}" y2="${y}" stroke="#ddd"/><text x="${m.l - 4}" y="${y + 4}" text-anchor="end">${fmt(t)}</text>`);
  }
  c.bars.forEach((b, i) => {
    const bh = (b.value / yMax) * h;
    const x = m.l + i * bw;
    parts.push(`<rect x="${(x + 1).toFixed(1)}" y="${(m.t + h - bh).toFixed(1)}" width="${Math.max(1, bw - 2).toFixed(1)}" height="${bh.toFixed(1)}" fill="${COLORS[0]}"><title>${esc(b.label)}: ${b.value}</title></rect>`);
    if (c.bars.length <= 40 || i % Math.ceil(c.bars.length / 20) === 0) {
      parts.push(`<text transform="translate(${x + bw / 2} ${m.t + h + 8}) rotate(45)" font-size="9">${esc(b.label)}</text>`);
    }
  });
  parts.push(`<line x1="${m.l}" x2="${m.l + w}" y1="${m.t + h}" y2="${m.t + h}" stroke="#000"/>`);
  parts.push(`<text x="${m.l + w / 2}" y="${height - 2}" text-anchor="middle">${esc(c.xLabel)}</text>`);
  parts.push(`<text transform="translate(12 ${m.t + h / 2}) rotate(-90)" text-anchor="middle">${esc(c.yLabel)}</text>`);
  parts.push("</svg>");
  return parts.join("");
}

/** Log-spaced latency histogram bars (ms) from an HDR histogram recorded in µs. */
export function latencyBars(histogram: Histogram): { label: string; value: number }[] {
  if (histogram.totalCount === 0) return [];
  // Cumulative counts at each value step, from the CSV percentile distribution (values in ms).
  const rows = histogram.outputPercentileDistribution(20, 1000, true as unknown as false).split("\n").slice(1)
    .map((l) => l.split(",")).filter((r) => r.length >= 3 && Number.isFinite(Number(r[0])))
    .map((r) => [Number(r[0]), Number(r[2])] as const);
  const maxMs = histogram.maxValue / 1000;
  const edges: number[] = [];
  for (let e = 0.1; e < maxMs * 1.26; e *= 10 ** 0.1) edges.push(e);
  const cumAt = (ms: number) => {
    let c = 0;
    for (const [v, n] of rows) { if (v <= ms) c = n; else break; }
    return c;
  };
  const bars: { label: string; value: number }[] = [];
  let prev = 0;
  for (const e of edges) {
    const c = cumAt(e);
    if (c > 0 || bars.length > 0) bars.push({ label: `≤${fmt(e)}`, value: c - prev });
    prev = c;
  }
  return bars;
}

/** Standard CPU and RSS charts for the sampled processes. */
export function procCharts(series: ProcSeries[]): Chart[] {
  const withData = series.filter((s) => s.samples.length > 0);
  return [
    { kind: "line", title: "CPU per process (% of one core; 200 % = this whole machine)", xLabel: "seconds", yLabel: "CPU %", series: withData.map((s) => ({ name: s.label, points: s.samples.map((x) => [x.tMs / 1000, x.cpuPct]) })) },
    { kind: "line", title: "Resident memory per process", xLabel: "seconds", yLabel: "MiB", series: withData.map((s) => ({ name: s.label, points: s.samples.map((x) => [x.tMs / 1000, x.rssBytes / 1048576]) })) },
  ];
}

function table(rows: Record<string, unknown>[]): string {
  if (rows.length === 0) return "";
  const cols = Object.keys(rows[0]!);
  return `<table><tr>${cols.map((c) => `<th>${esc(c)}</th>`).join("")}</tr>${rows.map((r) => `<tr>${cols.map((c) => `<td>${esc(String(r[c] ?? ""))}</td>`).join("")}</tr>`).join("")}</table>`;
}

export function renderHtml(r: ReportInput, stamp: string): string {
  const summaryRows = Object.entries(r.summary).map(([k, v]) => ({ measure: k, value: typeof v === "object" ? JSON.stringify(v) : String(v) }));
  const targets = r.targets.map((t) => ({ target: t.name, wanted: t.target, measured: t.measured, result: t.pass === null ? "—" : t.pass ? "PASS" : "MISS" }));
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(r.title)}</title>
<style>body{font-family:sans-serif;margin:24px;max-width:1000px}table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px}th{background:#f4f4f4}svg{display:block;margin:12px 0}</style>
</head><body><h1>${esc(r.title)}</h1><p>${esc(stamp)} — JSON with every figure next to this file.</p>
${targets.length ? `<h2>Targets</h2>${table(targets)}` : ""}
<h2>Summary</h2>${table(summaryRows)}
<h2>Charts</h2>${r.charts.map((c) => (c.kind === "line" ? lineChart(c) : barChart(c))).join("\n")}
</body></html>`;
}

/** Writes `<stamp>-<name>.json` and `.html` under load/reports/; returns their paths. */
export function writeReport(r: ReportInput): { json: string; html: string } {
  mkdirSync(REPORTS_DIR, { recursive: true });
  const stamp = new Date().toISOString();
  const base = `${REPORTS_DIR}/${stamp.replace(/[:.]/g, "-")}-${r.name}`;
  writeFileSync(`${base}.json`, JSON.stringify({ name: r.name, title: r.title, writtenAt: stamp, summary: r.summary, targets: r.targets, ...r.data }, null, 2));
  writeFileSync(`${base}.html`, renderHtml(r, stamp));
  return { json: `${base}.json`, html: `${base}.html` };
}
