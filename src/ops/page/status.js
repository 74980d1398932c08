// Status page: latest committed values per stack and device (from /api/status, every 5 s)
// and a 24 h chart per pollutant channel (from /api/series, every 60 s). No framework, no
// build step: the daemon serves this file as it is.
"use strict";

const STATUS_EVERY_MS = 5000;
const CHARTS_EVERY_MS = 60000;
const W = 320, H = 120, PAD_L = 38, PAD_R = 6, PAD_T = 8, PAD_B = 18;

let chartsDrawnAt = 0;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const c of children) {
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Two decimals, or none for large numbers, the same rule everywhere on the page.
function formatValue(v) {
  if (v === null || v === undefined) return "–";
  return Math.abs(v) >= 1000 ? v.toFixed(0) : v.toFixed(2);
}

function formatTime(ms) {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}

function flagBadge(flag) {
  return el("span", { class: "flag flag-" + flag }, flag);
}

function deviceCard(stack, d) {
  const card = el("div", { class: "device", "data-device": d.id });
  card.append(el("h3", {},
    d.id,
    el("span", { class: "state " + d.connection }, d.connection)));
  card.append(el("div", { class: "sub" },
    `${d.profile} · ${d.address} · ${d.position} · ${d.polls} polls · ${d.errors} errors`));
  if (d.last_error && d.connection === "down") {
    card.append(el("div", { class: "error" }, d.last_error));
  }
  const table = el("table", {},
    el("thead", {}, el("tr", {},
      el("th", {}, "Channel"), el("th", {}, "Quantity"), el("th", { style: "text-align:right" }, "Value"),
      el("th", {}, "Unit"), el("th", {}, "Flag"), el("th", {}, "Time"), el("th", {}, "Note"))));
  const body = el("tbody");
  for (const v of d.values) {
    body.append(el("tr", {
      class: "reading", "data-stack": stack.id, "data-device": d.id, "data-channel": v.channel,
      "data-seq": v.seq, "data-ts": v.ts, title: v.kind ? v.kind + " value" : "no value",
    },
      el("td", {}, v.channel),
      el("td", {}, v.quantity || ""),
      el("td", { class: "value" }, formatValue(v.value)),
      el("td", { class: "unit" }, v.unit || ""),
      el("td", {}, flagBadge(v.flag)),
      el("td", { class: "time" }, formatTime(v.ts)),
      // why a value is missing, e.g. a pollutant without O2-corrected value: "no O2 source"
      el("td", { class: "note" }, v.note || "")));
  }
  if (d.values.length === 0) {
    body.append(el("tr", {}, el("td", { colspan: 7, class: "unit" }, "no readings yet")));
  }
  table.append(body);
  card.append(table);
  return card;
}

function renderStatus(s) {
  document.getElementById("site").textContent = s.site_name ? `${s.site_name} (${s.site_id})` : s.site_id;
  const devices = s.stacks.flatMap(st => st.devices);
  const up = devices.filter(d => d.connection === "connected").length;
  document.getElementById("summary").textContent =
    `${s.stacks.length} stacks · ${up}/${devices.length} devices connected · ${s.committed} records committed`;
  document.getElementById("updated").textContent = "updated " + formatTime(s.now);
  const main = document.getElementById("stacks");
  const charts = new Map();
  for (const node of main.querySelectorAll(".chart")) charts.set(node.dataset.key, node);
  main.replaceChildren();
  for (const st of s.stacks) {
    const section = el("section", { class: "stack", "data-stack": st.id });
    section.append(el("h2", {}, st.name || st.id, " ", el("small", {}, st.name ? st.id : "")));
    const grid = el("div", { class: "devices" });
    for (const d of st.devices) grid.append(deviceCard(st, d));
    section.append(grid);
    const chartGrid = el("div", { class: "charts" });
    for (const c of st.charts) {
      const key = `${st.id}/${c.device}/${c.channel}`;
      const node = charts.get(key) || el("div", {
        class: "chart", "data-key": key, "data-stack": st.id, "data-device": c.device, "data-channel": c.channel,
      }, el("h4", {}, `${c.quantity} `, el("small", {}, `${c.device} · ${c.channel} · last 24 h`)),
        el("div", { class: "empty pending" }, "loading…"));
      chartGrid.append(node);
    }
    section.append(chartGrid);
    main.append(section);
  }
}

function drawChart(node, series) {
  const old = node.querySelector("svg, .empty");
  if (old) old.remove();
  const pts = series.points.filter(p => p.mean !== null);
  if (pts.length === 0) {
    node.append(el("div", { class: "empty" }, "no values in the last 24 h"));
    return;
  }
  const small = node.querySelector("h4 small");
  small.textContent = `${series.device} · ${series.channel} · ${series.unit || ""} ${series.kind || ""} · last 24 h`;
  let lo = Math.min(0, ...pts.map(p => p.min));
  let hi = Math.max(...pts.map(p => p.max));
  if (series.limit !== null && series.limit !== undefined) hi = Math.max(hi, series.limit * 1.1);
  if (hi <= lo) hi = lo + 1;
  const x = t => PAD_L + (t - series.from) / (series.to - series.from) * (W - PAD_L - PAD_R);
  const y = v => PAD_T + (hi - v) / (hi - lo) * (H - PAD_T - PAD_B);
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "data-from": series.from, "data-to": series.to });
  chart.append(svg("line", { class: "axis", x1: PAD_L, y1: H - PAD_B, x2: W - PAD_R, y2: H - PAD_B }));
  chart.append(svg("line", { class: "axis", x1: PAD_L, y1: PAD_T, x2: PAD_L, y2: H - PAD_B }));
  chart.append(svg("text", { x: PAD_L - 3, y: PAD_T + 8, "text-anchor": "end" }, formatValue(hi)));
  chart.append(svg("text", { x: PAD_L - 3, y: H - PAD_B, "text-anchor": "end" }, formatValue(lo)));
  chart.append(svg("text", { x: PAD_L, y: H - 4 }, "−24 h"));
  chart.append(svg("text", { x: W - PAD_R, y: H - 4, "text-anchor": "end" }, "now"));
  // Lines break where a bucket has no value or buckets are missing (no data, flag B).
  let runs = [], run = [];
  let prev = null;
  for (const p of series.points) {
    const gap = p.mean === null || (prev !== null && p.t - prev.t > series.bucket_ms);
    if (gap && run.length) { runs.push(run); run = []; }
    if (p.mean !== null) run.push(p);
    prev = p;
  }
  if (run.length) runs.push(run);
  for (const r of runs) {
    const band = r.map(p => `${x(p.t).toFixed(1)},${y(p.max).toFixed(1)}`)
      .concat(r.slice().reverse().map(p => `${x(p.t).toFixed(1)},${y(p.min).toFixed(1)}`));
    chart.append(svg("polygon", { class: "range", points: band.join(" ") }));
    if (r.length === 1) {
      // A lone bucket between gaps: a dot, since a one-point line is invisible.
      chart.append(svg("circle", { class: "mean dot", cx: x(r[0].t).toFixed(1), cy: y(r[0].mean).toFixed(1), r: 2 }));
    } else {
      chart.append(svg("polyline", { class: "mean", points: r.map(p => `${x(p.t).toFixed(1)},${y(p.mean).toFixed(1)}`).join(" ") }));
    }
  }
  if (series.limit !== null && series.limit !== undefined) {
    const ly = y(series.limit).toFixed(1);
    chart.append(svg("line", { class: "limit", x1: PAD_L, x2: W - PAD_R, y1: ly, y2: ly, "data-limit": series.limit }));
    chart.append(svg("text", { class: "limit-label", x: W - PAD_R, y: ly - 3, "text-anchor": "end" },
      `limit ${formatValue(series.limit)}`));
  }
  node.append(chart);
}

async function refreshCharts() {
  const nodes = document.querySelectorAll(".chart");
  await Promise.all(Array.from(nodes).map(async node => {
    const q = new URLSearchParams({ stack: node.dataset.stack, device: node.dataset.device, channel: node.dataset.channel, hours: "24" });
    try {
      const r = await fetch("/api/series?" + q);
      if (!r.ok) throw new Error(`${r.status} ${await r.text()}`);
      drawChart(node, await r.json());
    } catch (e) {
      const old = node.querySelector("svg, .empty");
      if (old) old.remove();
      node.append(el("div", { class: "empty" }, "chart unavailable: " + e.message));
    }
  }));
  chartsDrawnAt = Date.now();
}

async function refresh() {
  const problem = document.getElementById("problem");
  try {
    const r = await fetch("/api/status");
    if (!r.ok) throw new Error(`${r.status} ${await r.text()}`);
    renderStatus(await r.json());
    problem.textContent = "";
    const undrawn = document.querySelector(".chart .pending");
    if (undrawn || Date.now() - chartsDrawnAt > CHARTS_EVERY_MS) await refreshCharts();
  } catch (e) {
    problem.textContent = "cannot reach the daemon: " + e.message;
  }
  setTimeout(refresh, STATUS_EVERY_MS);
}

refresh();
