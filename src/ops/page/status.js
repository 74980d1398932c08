// Status page: an overview of every stack and device (from /api/status, every 5 s), the
// forwarders and uplinks, and the parameter changes (/api/audit). One stack at a time opens
// (#stack=ID) with its readings, hour-to-date averages, exceedances and gaps (/api/stack)
// and charts of its pollutants over a chosen range (/api/series): never hundreds of charts
// at once. No framework, no build step: the daemon serves these files as they are.
"use strict";

const STATUS_EVERY_MS = 5000;
const DETAIL_EVERY_MS = 60000;
const AUDIT_DAYS = 30;
const W = 320, H = 120, PAD_L = 38, PAD_R = 6, PAD_T = 8, PAD_B = 18;
// The pollutants of the overview, in the order HJ 75 lists them.
const OVERVIEW_QUANTITIES = ["SO2", "NOx", "dust", "CO"];

let lastStatus = null;
let detailDrawnAt = 0;
let detailStack = null;
// The last hour of raw readings first (what was just measured), unless ?range= says else.
let chartRange = ["hour", "day", "week"].find(r => r === new URLSearchParams(location.search).get("range")) || "hour";

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

function table(headers, rows) {
  return el("table", {}, el("thead", {}, el("tr", {}, ...headers.map(h => el("th", {}, h)))),
    el("tbody", {}, ...rows));
}

// Two decimals, or none for large numbers, the same rule everywhere on the page.
function formatValue(v) {
  if (v === null || v === undefined) return "–";
  return Math.abs(v) >= 1000 ? v.toFixed(0) : v.toFixed(2);
}

function formatTime(ms) {
  return new Date(ms).toLocaleTimeString(LANG === "zh" ? "zh-CN" : "en-GB", { hour12: false });
}

function formatDateTime(ms) {
  return new Date(ms).toLocaleString(LANG === "zh" ? "zh-CN" : "en-GB", { hour12: false });
}

function flagBadge(flag) {
  return el("span", { class: "flag flag-" + flag, title: T.flags[flag] || "" }, flag);
}

function stateBadge(connection) {
  return el("span", { class: "state " + connection }, T[connection]);
}

function stackName(st) {
  return st.name ? `${st.name} (${st.id})` : st.id;
}

// Static words of the page in the chosen language.
function translatePage() {
  document.title = T.title;
  for (const node of document.querySelectorAll("[data-t]")) node.textContent = T[node.dataset.t];
  document.getElementById("lang").textContent = T.switchTo;
  document.getElementById("filter").placeholder = T.filter;
  const select = document.getElementById("state-filter");
  const chosen = select.value || "all";
  select.replaceChildren(...["all", "connected", "down", "waiting"].map(s => el("option", { value: s }, T[s])));
  select.value = chosen;
  document.getElementById("flag-legend").replaceChildren(...Object.entries(T.flags).map(([f, words]) =>
    el("span", {}, flagBadge(f), " ", words)));
}

function renderHeader(s) {
  document.getElementById("site").textContent = s.site_name ? `${s.site_name} (${s.site_id})` : s.site_id;
  const devices = s.stacks.flatMap(st => st.devices);
  const up = devices.filter(d => d.connection === "connected").length;
  document.getElementById("summary").textContent =
    `${T.stackCount(s.stacks.length)} · ${T.devicesUp(up, devices.length)} · ${T.committed(s.committed)}`;
  document.getElementById("updated").textContent = `${T.updated} ${formatTime(s.now)}`;
}

// The stack's latest value of a quantity at its outlet: the corrected one where a device
// gives it (comparable with the limit), else the measured one; never a raw value, whose
// unit may be ppb or mA.
function stackValue(st, quantity) {
  let best = null;
  const rank = v => (v.kind === "corrected" ? 2 : 1);
  for (const d of st.devices) {
    if (d.position === "inlet") continue;
    for (const v of d.values) {
      if (v.quantity !== quantity || v.value === null || v.kind === "raw" || !v.kind) continue;
      if (!best || rank(v) > rank(best) || (rank(v) === rank(best) && v.ts > best.ts)) best = v;
    }
  }
  return best;
}

const FLAG_WEIGHT = "NTSCMFDB";

function renderOverview(s) {
  const rows = s.stacks.map(st => {
    const up = st.devices.filter(d => d.connection === "connected").length;
    const values = st.devices.flatMap(d => d.values);
    const worst = values.reduce((w, v) => FLAG_WEIGHT.indexOf(v.flag) > FLAG_WEIGHT.indexOf(w) ? v.flag : w, "N");
    const cells = OVERVIEW_QUANTITIES.map(q => {
      const v = stackValue(st, q);
      if (!v) return el("td", { class: "value" }, "–");
      const limit = st.limits[q];
      const corrected = v.kind === "corrected";
      const over = corrected && limit !== undefined && v.value > limit;
      return el("td", { class: "value" + (over ? " over" : "") + (corrected ? "" : " measured"), title: T.kinds[v.kind], "data-quantity": q },
        formatValue(v.value), el("small", { class: "unit" }, corrected ? (limit !== undefined ? ` / ${formatValue(limit)}` : "") : ` ${T.kindsShort[v.kind]}`));
    });
    return el("tr", { class: "stack-row", "data-stack": st.id },
      el("td", {}, el("a", { href: "#stack=" + encodeURIComponent(st.id) }, stackName(st))),
      el("td", { class: "num" }, `${up}/${st.devices.length}`),
      ...cells,
      el("td", {}, flagBadge(worst), " ", T.flags[worst]));
  });
  const headers = [T.stack, T.devices, ...OVERVIEW_QUANTITIES.map(q => `${q} mg/m3`), T.flag];
  document.getElementById("stack-table").replaceChildren(
    el("p", { class: "meta" }, T.overviewNote), table(headers, rows));
}

function matchesFilter(st, d) {
  const text = document.getElementById("filter").value.trim().toLowerCase();
  const wanted = document.getElementById("state-filter").value || "all";
  if (wanted !== "all" && d.connection !== wanted) return false;
  if (!text) return true;
  return [d.id, st.id, st.name || "", d.source, d.profile || "", d.address || ""].some(x => x.toLowerCase().includes(text));
}

function renderDevices(s) {
  const all = s.stacks.flatMap(st => st.devices.map(d => [st, d]));
  const shown = all.filter(([st, d]) => matchesFilter(st, d));
  const rows = shown.map(([st, d]) => el("tr", { class: "device-row", "data-device": d.id, "data-stack": st.id, "data-connection": d.connection },
    el("td", {}, stateBadge(d.connection)),
    el("td", {}, d.id),
    el("td", {}, el("a", { href: "#stack=" + encodeURIComponent(st.id) }, stackName(st))),
    el("td", {}, T.sources[d.source] || d.source),
    el("td", { class: "time" }, d.last_seen ? formatDateTime(d.last_seen) : "–"),
    el("td", { class: "num" }, d.polls),
    el("td", { class: "num" }, d.errors),
    el("td", { class: "error" }, d.connection === "down" ? errorText(d.last_error) : "")));
  document.getElementById("shown").textContent = T.shown(shown.length, all.length);
  document.getElementById("device-table").replaceChildren(
    table([T.state, T.device, T.stack, T.source, T.lastSeen, T.polls, T.errors, T.lastError], rows));
}

function renderSinks(s) {
  const parts = [];
  if (s.sinks.length) {
    // an HJ 212 uplink also says whether it is connected and when its platform last acked
    parts.push(table([T.sink, T.state, T.lastAck, T.backlog, T.lag], s.sinks.map(k => el("tr", { class: "sink-row", "data-sink": k.name },
      el("td", {}, k.name),
      el("td", {}, k.connected === null ? "" : stateBadge(k.connected ? "connected" : "down")),
      el("td", { class: "time" }, k.last_ack ? formatDateTime(k.last_ack) : ""),
      el("td", { class: "num" }, k.backlog), el("td", { class: "num" }, k.lag_seconds.toFixed(0))))));
  } else {
    parts.push(el("p", { class: "meta" }, T.noSinks));
  }
  if (s.mqtt.length) {
    parts.push(el("h3", {}, T.mqtt), table([T.sink, T.state, T.messages, T.readings, T.refused, T.stalled],
      s.mqtt.map(m => el("tr", { class: "mqtt-row", "data-source": m.id },
        el("td", {}, m.id), el("td", {}, stateBadge(m.connected ? "connected" : "down")),
        el("td", { class: "num" }, m.messages), el("td", { class: "num" }, m.readings),
        el("td", { class: "num" }, m.refused), el("td", { class: "error" }, m.stalled || "")))));
  }
  document.getElementById("sink-table").replaceChildren(...parts);
}

function deviceCard(stack, d) {
  const card = el("div", { class: "device", "data-device": d.id });
  card.append(el("h3", {}, d.id, stateBadge(d.connection)));
  const where = [T.sources[d.source] || d.source, d.profile, d.address, T.positions[d.position]].filter(Boolean);
  card.append(el("div", { class: "sub" }, `${where.join(" · ")} · ${d.polls} ${T.polls} · ${d.errors} ${T.errors}`));
  if (d.last_error && d.connection === "down") card.append(el("div", { class: "error" }, errorText(d.last_error)));
  const rows = d.values.map(v => el("tr", {
    class: "reading", "data-stack": stack.id, "data-device": d.id, "data-channel": v.channel,
    "data-seq": v.seq, "data-ts": v.ts, "data-kind": v.kind || "",
  },
    el("td", {}, v.channel),
    el("td", {}, v.quantity || ""),
    el("td", { class: "value" }, formatValue(v.value)),
    el("td", { class: "unit" }, v.unit || ""),
    el("td", { class: "kind", title: v.kind ? T.kinds[v.kind] : "" }, v.kind ? T.kindsShort[v.kind] : T.noValue),
    el("td", {}, flagBadge(v.flag)),
    el("td", { class: "time" }, formatTime(v.ts)),
    // why a value is missing, e.g. a pollutant without O2-corrected value: "no O2 source"
    el("td", { class: "note", title: v.note || "" }, noteText(v))));
  if (rows.length === 0) rows.push(el("tr", {}, el("td", { colspan: 8, class: "unit" }, T.noReadings)));
  card.append(table([T.channel, T.quantity, T.value, T.unit, T.kind, T.flag, T.time, T.note], rows));
  return card;
}

// A device's last error: the silence of a publisher or logger in the page's language (the
// daemon's words: "no data for 31m (uploads every 10m)"), anything else as the daemon said it.
function errorText(message) {
  const silent = (message || "").match(/^no data for (.+) \((publishes|uploads) every (.+)\)$/);
  return silent ? T.silentFor(silent[1], silent[2], silent[3]) : (message || "");
}

// The stored note in the page's language (the daemon words it); the stored text in the tooltip.
function noteText(x) {
  return x.note_words ? x.note_words[LANG] : (x.note || "");
}

function renderDetail(s) {
  const section = document.getElementById("detail");
  const st = detailStack && s.stacks.find(x => x.id === detailStack);
  section.hidden = !st;
  if (!st) return;
  let cards = section.querySelector(".devices");
  if (!cards) {
    section.replaceChildren(
      el("h2", {}, stackName(st), " ", el("small", {}, el("a", { href: "#" }, T.close))),
      el("div", { class: "devices" }),
      el("h3", {}, T.hourMean), el("div", { class: "panel summary" }, T.loading),
      el("h3", {}, T.exceedances), el("div", { class: "panel exceedances" }),
      el("h3", {}, T.gaps), el("div", { class: "panel gaps" }),
      el("h3", {}, T.charts, " ", rangeChooser()),
      el("div", { class: "charts" }));
    cards = section.querySelector(".devices");
  }
  cards.replaceChildren(...st.devices.map(d => deviceCard(st, d)));
  const charts = section.querySelector(".charts");
  const wanted = st.devices.flatMap(d => d.values
    .filter(v => OVERVIEW_QUANTITIES.concat(["NO", "NO2", "HCl", "NH3", "Hg"]).includes(v.quantity))
    .map(v => ({ device: d.id, channel: v.channel, quantity: v.quantity })));
  const keys = wanted.map(c => `${st.id}/${c.device}/${c.channel}`);
  const have = Array.from(charts.children).map(n => n.dataset.key);
  if (keys.join("|") !== have.join("|")) {
    charts.replaceChildren(...wanted.map((c, i) => el("div", {
      class: "chart", "data-key": keys[i], "data-stack": st.id, "data-device": c.device, "data-channel": c.channel,
    }, el("h4", {}, `${c.quantity} `, el("small", {}, `${c.device} · ${c.channel}`)),
      el("div", { class: "empty pending" }, T.loading))));
  }
}

function rangeChooser() {
  const select = el("select", { id: "range" }, ...["hour", "day", "week"].map(r => el("option", { value: r }, T.ranges[r])));
  select.value = chartRange;
  select.addEventListener("change", () => { chartRange = select.value; refreshDetail(); });
  return select;
}

function renderSummary(detail) {
  const section = document.getElementById("detail");
  const percent = c => c.day_elapsed_minutes ? (100 * c.day_valid_minutes / c.day_elapsed_minutes).toFixed(1) + " %" : "–";
  section.querySelector(".summary").replaceChildren(table(
    [T.device, T.channel, T.quantity, T.hourMean, T.unit, T.kind, T.rate, T.hourMinutes, T.completeness],
    detail.channels.map(c => el("tr", { class: "hour-row", "data-device": c.device, "data-channel": c.channel },
      el("td", {}, c.device), el("td", {}, c.channel), el("td", {}, c.quantity || ""),
      el("td", { class: "value" }, formatValue(c.hour_mean)), el("td", { class: "unit" }, c.unit || ""),
      el("td", { class: "kind", title: c.kind ? T.kinds[c.kind] : "" }, c.kind ? T.kindsShort[c.kind] : ""), el("td", { class: "num" }, formatValue(c.hour_rate)),
      el("td", { class: "num" }, c.hour_minutes), el("td", { class: "num" }, percent(c))))));
  // Exceedances carry the flag of the hour that exceeded; a gap's cause is its note.
  const periods = (list, cls, withFlag) => list.length === 0 ? el("p", { class: "meta" }, T.none) : table(
    [T.device, T.channel, T.from, T.to, T.value].concat(withFlag ? [T.flag] : [], [T.note]),
    list.map(p => el("tr", { class: cls },
      el("td", {}, p.device), el("td", {}, p.channel), el("td", { class: "time" }, formatDateTime(p.from)),
      el("td", { class: "time" }, p.to ? formatDateTime(p.to) : T.ongoing), el("td", { class: "value" }, formatValue(p.value)),
      ...(withFlag ? [el("td", {}, flagBadge(p.flag))] : []), el("td", { class: "note", title: p.note || "" }, noteText(p)))));
  section.querySelector(".exceedances").replaceChildren(periods(detail.exceedances, "exceedance-row", true));
  section.querySelector(".gaps").replaceChildren(periods(detail.gaps, "gap-row", false));
}

function drawChart(node, series) {
  const old = node.querySelector("svg, .empty");
  if (old) old.remove();
  const pts = series.points.filter(p => p.mean !== null);
  const small = node.querySelector("h4 small");
  small.textContent = `${series.device} · ${series.channel} · ${series.unit || ""} · ${series.kind ? T.kinds[series.kind] : ""} · ${T.ranges[chartRange]}`;
  if (pts.length === 0) {
    node.append(el("div", { class: "empty" }, T.noChartValues));
    return;
  }
  let lo = Math.min(0, ...pts.map(p => p.min));
  let hi = Math.max(...pts.map(p => p.max));
  if (series.limit !== null && series.limit !== undefined) hi = Math.max(hi, series.limit * 1.1);
  if (hi <= lo) hi = lo + 1;
  const x = t => PAD_L + (t - series.from) / (series.to - series.from) * (W - PAD_L - PAD_R);
  const y = v => PAD_T + (hi - v) / (hi - lo) * (H - PAD_T - PAD_B);
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "data-from": series.from, "data-to": series.to, "data-records": series.records });
  chart.append(svg("line", { class: "axis", x1: PAD_L, y1: H - PAD_B, x2: W - PAD_R, y2: H - PAD_B }));
  chart.append(svg("line", { class: "axis", x1: PAD_L, y1: PAD_T, x2: PAD_L, y2: H - PAD_B }));
  chart.append(svg("text", { x: PAD_L - 3, y: PAD_T + 8, "text-anchor": "end" }, formatValue(hi)));
  chart.append(svg("text", { x: PAD_L - 3, y: H - PAD_B, "text-anchor": "end" }, formatValue(lo)));
  chart.append(svg("text", { x: PAD_L, y: H - 4 }, formatDateTime(series.from)));
  chart.append(svg("text", { x: W - PAD_R, y: H - 4, "text-anchor": "end" }, T.now));
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
      `${T.limit} ${formatValue(series.limit)}`));
  }
  node.append(chart);
}

async function fetchJson(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${r.status} ${await r.text()}`);
  return r.json();
}

async function refreshDetail() {
  if (!detailStack) return;
  const stack = detailStack;
  const nodes = Array.from(document.querySelectorAll("#detail .chart"));
  const charts = nodes.map(async node => {
    const q = new URLSearchParams({ stack: node.dataset.stack, device: node.dataset.device, channel: node.dataset.channel, range: chartRange });
    try {
      drawChart(node, await fetchJson("/api/series?" + q));
    } catch (e) {
      const old = node.querySelector("svg, .empty");
      if (old) old.remove();
      node.append(el("div", { class: "empty" }, T.chartUnavailable + e.message));
    }
  });
  const summary = fetchJson("/api/stack?" + new URLSearchParams({ id: stack }))
    .then(detail => { if (detailStack === stack) renderSummary(detail); })
    .catch(e => { document.querySelector("#detail .summary").textContent = T.unreachable + e.message; });
  await Promise.all(charts.concat([summary]));
  detailDrawnAt = Date.now();
}

// The audit trail is served by newer daemons only: a 404 (or any failure) leaves the
// panel hidden rather than showing an error.
async function refreshAudit() {
  const to = Date.now();
  const from = to - AUDIT_DAYS * 86400000;
  const section = document.getElementById("audit");
  try {
    const r = await fetch("/api/audit?" + new URLSearchParams({ from, to }));
    if (!r.ok) { section.hidden = true; return; }
    const body = await r.json();
    const entries = Array.isArray(body.entries) ? body.entries : [];
    const cols = ["ts", "source", "how", "item", "old", "new", "file", "checksum"];
    document.getElementById("audit-table").replaceChildren(entries.length === 0 ? el("p", { class: "meta" }, T.none) :
      table(cols.map(c => T.auditCols[c]), entries.map(e => el("tr", { class: "audit-row" },
        ...cols.map(c => el("td", { class: c === "ts" ? "time" : "" },
          c === "ts" && typeof e.ts === "number" ? formatDateTime(e.ts) : (e[c] ?? "")))))));
    section.hidden = false;
  } catch (e) {
    section.hidden = true;
  }
}

// Dead letters: the panel shows only when there are some (or hides on a daemon without
// the route), so a clean site's page stays short.
async function refreshDeadLetters() {
  const section = document.getElementById("dead-letters");
  try {
    const body = await fetchJson("/api/dead-letters");
    const letters = Array.isArray(body.letters) ? body.letters : [];
    const cols = ["ts", "source", "reason", "payload"];
    document.getElementById("dead-letter-table").replaceChildren(table(cols.map(c => T.deadCols[c]),
      letters.map(d => el("tr", { class: "dead-letter-row", "data-id": d.id },
        el("td", { class: "time" }, formatDateTime(d.ts)), el("td", {}, d.source),
        el("td", {}, d.reason), el("td", { class: "payload" }, d.payload)))));
    section.hidden = letters.length === 0;
  } catch (e) {
    section.hidden = true;
  }
}

function render() {
  if (!lastStatus) return;
  renderHeader(lastStatus);
  renderDetail(lastStatus);
  renderOverview(lastStatus);
  renderDevices(lastStatus);
  renderSinks(lastStatus);
}

// The stack the address opens (#stack=ID), if any.
function stackInHash() {
  const m = location.hash.match(/^#stack=(.+)$/);
  return m ? decodeURIComponent(m[1]) : null;
}

function openFromHash() {
  const wanted = stackInHash();
  if (wanted === detailStack) return;
  detailStack = wanted;
  document.getElementById("detail").replaceChildren();
  render();
  if (detailStack) {
    window.scrollTo(0, 0);
    refreshDetail();
  }
}

// When the first full render (every device listed) was done, in ms since the navigation
// began: a performance mark for the browser's tools, and an attribute a headless browser's
// DOM dump carries (the status_page bench reads it).
function markFirstRender() {
  const root = document.documentElement;
  if (root.dataset.firstRenderMs) return;
  performance.mark("cemsd-first-render");
  root.dataset.firstRenderMs = Math.round(performance.now());
  console.info(`cemsd first render ${root.dataset.firstRenderMs} ms`);
}

async function refresh() {
  const problem = document.getElementById("problem");
  try {
    lastStatus = await fetchJson("/api/status");
    render();
    problem.textContent = "";
    markFirstRender();
    const undrawn = document.querySelector("#detail .chart .pending");
    if (detailStack && (undrawn || Date.now() - detailDrawnAt > DETAIL_EVERY_MS)) await refreshDetail();
  } catch (e) {
    problem.textContent = T.unreachable + e.message;
  }
  setTimeout(refresh, STATUS_EVERY_MS);
}

setLanguage(LANG);
translatePage();
document.getElementById("lang").addEventListener("click", () => {
  setLanguage(LANG === "zh" ? "en" : "zh");
  translatePage();
  document.getElementById("detail").replaceChildren();
  render();
  refreshDetail();
  refreshAudit();
  refreshDeadLetters();
});
document.getElementById("filter").addEventListener("input", () => lastStatus && renderDevices(lastStatus));
document.getElementById("state-filter").addEventListener("change", () => lastStatus && renderDevices(lastStatus));
window.addEventListener("hashchange", openFromHash);
detailStack = stackInHash();
refresh();
refreshAudit();
setInterval(refreshAudit, DETAIL_EVERY_MS);
refreshDeadLetters();
setInterval(refreshDeadLetters, DETAIL_EVERY_MS);
