// loglake report: draws the charts of the page from the JSON embedded in it (no network).
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
  "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const DATA = JSON.parse(document.getElementById("loglake-data").textContent);

function el(name, attrs, parent) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function html(tag, text, parent, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (cls) node.className = cls;
  if (parent) parent.appendChild(node);
  return node;
}

function fmt(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") {
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    return (a !== 0 && (a < 1e-3 || a >= 1e5)) ? v.toExponential(3) : String(+v.toPrecision(5));
  }
  return String(v);
}

function isNum(v) { return typeof v === "number" && Number.isFinite(v); }

// A linear or log scale from a domain onto a pixel range.
function scale(values, lo, hi, log) {
  const xs = values.filter(isNum).filter(v => !log || v > 0);
  let a = Math.min(...xs), b = Math.max(...xs);
  if (!xs.length) { a = 0; b = 1; }
  if (log) { a = Math.log10(a); b = Math.log10(b); }
  if (a === b) { a -= 0.5; b += 0.5; }
  const f = v => lo + ((log ? Math.log10(v) : v) - a) / (b - a) * (hi - lo);
  f.ticks = n => {
    const out = [];
    for (let i = 0; i <= n; i++) {
      const t = a + (b - a) * i / n;
      out.push(log ? Math.pow(10, t) : t);
    }
    return out;
  };
  return f;
}

function useLog(values) {
  const xs = values.filter(isNum);
  if (!xs.length || xs.some(v => v <= 0)) return false;
  return Math.max(...xs) / Math.min(...xs) > 100;
}

function frame(parent, title, width, height) {
  const box = html("figure", null, parent, "chart");
  html("figcaption", title, box);
  const svg = el("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img" }, box);
  return svg;
}

function axes(svg, sx, sy, w, h, m, xlabel, ylabel, xlog, ylog) {
  el("line", { x1: m.l, y1: h - m.b, x2: w - m.r, y2: h - m.b, class: "axis" }, svg);
  el("line", { x1: m.l, y1: m.t, x2: m.l, y2: h - m.b, class: "axis" }, svg);
  for (const t of sx.ticks(4)) {
    const x = sx(t);
    el("line", { x1: x, y1: h - m.b, x2: x, y2: h - m.b + 4, class: "axis" }, svg);
    el("text", { x, y: h - m.b + 16, "text-anchor": "middle", class: "tick" }, svg).textContent = fmt(xlog ? t : +t.toPrecision(3));
  }
  for (const t of sy.ticks(4)) {
    const y = sy(t);
    el("line", { x1: m.l - 4, y1: y, x2: w - m.r, y2: y, class: "grid" }, svg);
    el("text", { x: m.l - 6, y: y + 4, "text-anchor": "end", class: "tick" }, svg).textContent = fmt(ylog ? t : +t.toPrecision(3));
  }
  el("text", { x: (w + m.l) / 2, y: h - 4, "text-anchor": "middle", class: "label" }, svg).textContent = xlabel;
  el("text", { x: 12, y: m.t - 8, class: "label" }, svg).textContent = ylabel;
}

const M = { l: 64, r: 16, t: 24, b: 40 };

function drawCurves(parent) {
  for (const [key, curves] of Object.entries(DATA.curves)) {
    const w = 560, h = 300;
    const svg = frame(parent, key, w, h);
    const xs = curves.flatMap(c => c.x), ys = curves.flatMap(c => c.y);
    const sx = scale(xs, M.l, w - M.r, false), sy = scale(ys, h - M.b, M.t, false);
    axes(svg, sx, sy, w, h, M, "step", key, false, false);
    curves.forEach((c, i) => {
      let d = "";
      c.x.forEach((x, j) => {
        const y = c.y[j];
        if (!isNum(x) || !isNum(y)) return;
        d += (d ? "L" : "M") + sx(x).toFixed(1) + "," + sy(y).toFixed(1);
      });
      if (!d) return;
      const path = el("path", { d, class: "curve", stroke: PALETTE[i % PALETTE.length] }, svg);
      el("title", {}, path).textContent = c.label;
    });
  }
}

function drawScatter(parent) {
  const primary = DATA.primary;
  if (!primary) return;
  for (const key of DATA.numeric_params.slice(0, 6)) {
    const pts = DATA.runs.map(r => [r.params[key], r.metrics[primary], r.label])
      .filter(p => isNum(p[0]) && isNum(p[1]));
    if (pts.length < 2) continue;
    const w = 360, h = 280;
    const svg = frame(parent, `${key} vs ${primary}`, w, h);
    const xlog = useLog(pts.map(p => p[0]));
    const sx = scale(pts.map(p => p[0]), M.l, w - M.r, xlog);
    const sy = scale(pts.map(p => p[1]), h - M.b, M.t, false);
    axes(svg, sx, sy, w, h, M, key + (xlog ? " (log)" : ""), primary, xlog, false);
    for (const [x, y, label] of pts) {
      const dot = el("circle", { cx: sx(x).toFixed(1), cy: sy(y).toFixed(1), r: 3, class: "dot" }, svg);
      el("title", {}, dot).textContent = `${label}: ${key}=${fmt(x)}, ${primary}=${fmt(y)}`;
    }
  }
}

function drawBars(parent) {
  const obj = DATA.objectives[0];
  if (!obj) return;
  const runs = DATA.runs.filter(r => isNum(r.metrics[obj.label]))
    .sort((a, b) => obj.goal === "max" ? b.metrics[obj.label] - a.metrics[obj.label]
      : a.metrics[obj.label] - b.metrics[obj.label])
    .slice(0, 30);
  if (!runs.length) return;
  const bh = 18, w = 560, ml = 170, h = runs.length * bh + 30;
  const svg = frame(parent, `best ${obj.label} (top ${runs.length})`, w, h);
  const vals = runs.map(r => r.metrics[obj.label]);
  const lo = Math.min(0, ...vals), hi = Math.max(...vals);
  const sx = scale([lo, hi], ml, w - 60, false);
  runs.forEach((r, i) => {
    const v = r.metrics[obj.label], y = 10 + i * bh;
    const x0 = sx(Math.max(lo, 0)), x1 = sx(v);
    const bar = el("rect", { x: Math.min(x0, x1).toFixed(1), y, width: Math.max(1, Math.abs(x1 - x0)).toFixed(1), height: bh - 4, class: "bar" }, svg);
    el("title", {}, bar).textContent = `${r.label}: ${fmt(v)}`;
    el("text", { x: ml - 6, y: y + bh - 8, "text-anchor": "end", class: "tick" }, svg).textContent = r.label;
    el("text", { x: Math.max(x0, x1) + 4, y: y + bh - 8, class: "tick" }, svg).textContent = fmt(v);
  });
}

function drawParallel(parent) {
  const dims = [...DATA.numeric_params.map(k => ({ name: k, get: r => r.params[k] })),
    ...DATA.objectives.map(o => ({ name: o.label, get: r => r.metrics[o.label] }))];
  if (dims.length < 2 || DATA.runs.length < 3) return;
  const w = Math.max(560, dims.length * 120), h = 320, m = { l: 50, r: 50, t: 30, b: 30 };
  const svg = frame(parent, "parallel coordinates", w, h);
  const step = (w - m.l - m.r) / (dims.length - 1);
  const scales = dims.map(d => {
    const vals = DATA.runs.map(d.get);
    const log = useLog(vals);
    return { log, f: scale(vals, h - m.b, m.t, log) };
  });
  const primary = DATA.objectives[0];
  const cv = primary ? DATA.runs.map(r => r.metrics[primary.label]).filter(isNum) : [];
  const lo = Math.min(...cv), hi = Math.max(...cv);
  for (const r of DATA.runs) {
    let d = "";
    dims.forEach((dim, i) => {
      const v = dim.get(r);
      if (!isNum(v) || (scales[i].log && v <= 0)) return;
      d += (d ? "L" : "M") + (m.l + i * step).toFixed(1) + "," + scales[i].f(v).toFixed(1);
    });
    if (!d) continue;
    const v = primary ? r.metrics[primary.label] : null;
    let t = isNum(v) && hi > lo ? (v - lo) / (hi - lo) : 0.5;
    if (primary && primary.goal === "min") t = 1 - t;
    const path = el("path", { d, class: "pline", stroke: `hsl(${(220 - 200 * t).toFixed(0)},70%,45%)` }, svg);
    el("title", {}, path).textContent = r.label;
  }
  dims.forEach((dim, i) => {
    const x = m.l + i * step;
    el("line", { x1: x, y1: m.t, x2: x, y2: h - m.b, class: "axis" }, svg);
    el("text", { x, y: m.t - 10, "text-anchor": "middle", class: "label" }, svg).textContent = dim.name + (scales[i].log ? " (log)" : "");
    for (const t of scales[i].f.ticks(2)) {
      el("text", { x: x + 4, y: scales[i].f(t) + 4, class: "tick" }, svg).textContent = fmt(scales[i].log ? t : +t.toPrecision(3));
    }
  });
}

function drawTable(parent) {
  const cols = ["run", "namespace", "experiment", "status", "start", "duration_s",
    ...DATA.params.map(k => "params." + k), ...DATA.objectives.map(o => o.label)];
  const get = (r, c) => c.startsWith("params.") ? r.params[c.slice(7)]
    : DATA.objectives.some(o => o.label === c) ? r.metrics[c] : r[c === "run" ? "label" : c];
  const table = html("table", null, parent, "runs");
  const head = html("tr", null, html("thead", null, table));
  const body = html("tbody", null, table);
  let sortCol = null, asc = true;
  const fill = () => {
    body.textContent = "";
    const rows = [...DATA.runs];
    if (sortCol) {
      rows.sort((a, b) => {
        const x = get(a, sortCol), y = get(b, sortCol);
        if (x === y) return 0;
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        return (x < y ? -1 : 1) * (asc ? 1 : -1);
      });
    }
    for (const r of rows) {
      const tr = html("tr", null, body);
      for (const c of cols) html("td", fmt(get(r, c)), tr, c === "status" ? "status-" + r.status : null);
    }
  };
  for (const c of cols) {
    const th = html("th", c, head);
    th.addEventListener("click", () => { asc = sortCol === c ? !asc : true; sortCol = c; fill(); });
  }
  fill();
}

function main() {
  drawTable(document.getElementById("table"));
  drawCurves(document.getElementById("curves"));
  drawScatter(document.getElementById("scatter"));
  drawBars(document.getElementById("bars"));
  drawParallel(document.getElementById("parallel"));
  for (const id of ["curves", "scatter", "bars", "parallel"]) {
    const section = document.getElementById(id);
    if (!section.querySelector("svg")) section.parentElement.hidden = true;
  }
  document.body.dataset.rendered = String(document.querySelectorAll("svg path, svg circle, svg rect").length);
}

main();
