// runstack dashboard: small vanilla JS over the JSON API. All user text goes through
// textContent, never innerHTML, so names, tags and values always render as text.
"use strict";

const page = document.body.dataset.page;
window.__charts = {};

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c != null) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

async function getJSON(url) {
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function colorOf(id) {  // stable per run, on every page
  let h = 2166136261;
  for (const c of id) h = Math.imul(h ^ c.charCodeAt(0), 16777619);
  return `hsl(${(h >>> 0) % 360}, 65%, 45%)`;
}

function fmt(v) {
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(6)));
  if (v === null || v === undefined) return "";
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

function lookup(obj, path) {
  if (path in obj) return obj[path];
  let node = obj;
  for (const part of path.split(".")) {
    if (node == null || typeof node !== "object" || !(part in node)) return undefined;
    node = node[part];
  }
  return node;
}

function flatKeys(obj, prefix = "", out = []) {
  for (const [k, v] of Object.entries(obj || {})) {
    if (v && typeof v === "object" && !Array.isArray(v)) flatKeys(v, `${prefix}${k}.`, out);
    else out.push(prefix + k);
  }
  return out;
}

function duration(s) { return s == null ? "" : s < 60 ? `${s.toFixed(1)}s` : `${Math.round(s / 60)}m`; }

// -- charts ---------------------------------------------------------------------------------
function makeChart(container, title, seriesNames, data, opts = {}) {
  const box = el("div", { class: "chart" }, el("h3", { text: title }));
  container.append(box);
  const series = [{ label: opts.xLabel || "step" }];
  seriesNames.forEach((name, i) => series.push({ label: name, stroke: (opts.colors || [])[i] || colorOf(name), width: 1.5, spanGaps: true }));
  const chart = new uPlot({
    width: opts.width || 420, height: 220, series,
    scales: { x: { time: !!opts.time }, y: { distr: opts.log ? 3 : 1 } },
    cursor: { drag: { x: true, y: false } },
    hooks: opts.onZoom ? { setSelect: [u => {
      if (u.select.width < 2) return;
      const lo = u.posToVal(u.select.left, "x"), hi = u.posToVal(u.select.left + u.select.width, "x");
      opts.onZoom(lo, hi);
    }] } : {},
  }, data, box);
  window.__charts[title] = chart;
  return chart;
}

function smooth(values, alpha) {  // exponential moving average, as TensorBoard's slider
  if (!alpha) return values;
  let last = null;
  return values.map(v => (v == null ? null : (last = last == null ? v : alpha * last + (1 - alpha) * v)));
}

// -- pages ----------------------------------------------------------------------------------
async function projectsPage() {
  const list = document.getElementById("projects");
  const projects = await getJSON("/api/projects");
  if (!projects.length) list.append(el("li", { text: "No runs yet: log one, e.g. python -m runstack demo" }));
  for (const p of projects) {
    list.append(el("li", {}, el("a", { href: `/projects/${encodeURIComponent(p.name)}`, text: p.name }),
      el("div", { text: `${p.runs} run(s), last ${new Date(p.last * 1000).toLocaleString()}` })));
  }
  const sweeps = await getJSON("/api/sweeps");
  if (sweeps.length) document.getElementById("main").append(el("h1", { text: "Sweeps" }), el("ul", { id: "sweeps", class: "cards" },
    ...sweeps.map(s => el("li", {}, el("a", { href: `/sweeps/${encodeURIComponent(s.id)}`, text: s.id }),
      el("div", { text: `${s.project} · ${s.method} · ${s.state} · ${Object.entries(s.counts).map(([k, v]) => `${v} ${k}`).join(", ")}` })))));
}

function parseFilter(text) {
  text = text.trim();
  if (!text) return null;
  if (text.startsWith("{")) return JSON.parse(text);
  const filters = {};
  for (const token of text.split(/\s+/)) {
    const m = token.match(/^([^<>=~!]+)(<=|>=|!=|<|>|=|~)(.*)$/);
    if (!m) throw new Error(`cannot read "${token}": use path=value, path<value, path>value or path~regex`);
    let value = m[3];
    if (value !== "" && !isNaN(Number(value))) value = Number(value);
    else if (value === "true" || value === "false") value = value === "true";
    const op = { "=": null, "!=": "$ne", "<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte", "~": "$regex" }[m[2]];
    filters[m[1]] = op ? { [op]: value } : value;
  }
  return filters;
}

async function runsPage() {
  const project = document.body.dataset.project;
  const state = { runs: [], sort: "-created_at", columns: null, group: "", selected: new Set() };
  const filterBox = document.getElementById("filter"), errorBox = document.getElementById("filter-error");
  const table = document.getElementById("runs"), groupSelect = document.getElementById("group");
  const compareButton = document.getElementById("compare");

  let latest = 0;  // a slower, older answer never replaces a newer one
  async function load() {
    let filters = null;
    try { filters = parseFilter(filterBox.value); errorBox.textContent = ""; } catch (e) { errorBox.textContent = e.message; return; }
    const query = new URLSearchParams({ project, order: state.sort });
    if (filters) query.set("filters", JSON.stringify(filters));
    const ticket = ++latest;
    let runs;
    try { runs = await getJSON(`/api/runs?${query}`); } catch (e) { errorBox.textContent = e.message; return; }
    if (ticket !== latest) return;
    state.runs = runs;
    if (!state.columns) {
      const keys = new Set();
      for (const r of state.runs) {
        flatKeys(r.config, "config.").forEach(k => keys.add(k));
        flatKeys(r.summary, "summary.").forEach(k => keys.add(k));
      }
      state.allColumns = [...keys].sort();
      state.columns = state.allColumns.filter(k => k.startsWith("summary.")).slice(0, 6);
      renderColumnChooser();
      for (const k of state.allColumns.filter(k => k.startsWith("config."))) groupSelect.append(el("option", { value: k, text: k }));
    }
    render();
  }

  function renderColumnChooser() {
    const list = document.getElementById("column-list");
    list.replaceChildren();
    for (const key of state.allColumns) {
      const box = el("input", { type: "checkbox", onchange: e => {
        state.columns = e.target.checked ? [...state.columns, key] : state.columns.filter(c => c !== key);
        render();
      } });
      box.checked = state.columns.includes(key);
      list.append(el("label", { class: "column-option" }, box, key), el("br"));
    }
  }

  function render() {
    const cols = ["", "name", "status", "created", "duration", "tags", ...state.columns];
    const head = el("tr");
    cols.forEach((c, i) => {
      const sortKey = { name: "name", status: "status", created: "created_at", duration: "duration" }[c] || (i > 5 ? c : null);
      head.append(el("th", { text: c + (sortKey && state.sort.replace("-", "") === sortKey ? (state.sort[0] === "-" ? " ▼" : " ▲") : ""),
        onclick: () => { if (!sortKey) return; state.sort = state.sort === sortKey ? `-${sortKey}` : sortKey; load(); } }));
    });
    table.tHead.replaceChildren(head);
    const body = table.tBodies[0];
    body.replaceChildren();
    const groups = new Map();
    for (const r of state.runs) {
      const g = state.group ? fmt(lookup(r.config, state.group.replace(/^config\./, ""))) : "";
      if (!groups.has(g)) groups.set(g, []);
      groups.get(g).push(r);
    }
    for (const [g, runs] of groups) {
      if (state.group) body.append(el("tr", { class: "group" }, el("td", { colspan: String(cols.length), text: `${state.group} = ${g} (${runs.length})` })));
      for (const r of runs) {
        const check = el("input", { type: "checkbox", onchange: e => {
          e.target.checked ? state.selected.add(r.id) : state.selected.delete(r.id);
          compareButton.disabled = state.selected.size < 1;
        } });
        check.checked = state.selected.has(r.id);
        const row = el("tr", { "data-run": r.id },
          el("td", {}, check),
          el("td", {}, el("a", { href: `/runs/${encodeURIComponent(r.id)}`, text: r.name })),
          el("td", { class: `status-${r.status}`, text: r.status }),
          el("td", { text: new Date(r.created_at * 1000).toLocaleString() }),
          el("td", { text: duration(r.duration) }),
          el("td", { text: (r.tags || []).join(", ") }));
        for (const c of state.columns) {
          const [root, ...rest] = c.split(".");
          row.append(el("td", { text: fmt(lookup(r[root] || {}, rest.join("."))) }));
        }
        body.append(row);
      }
    }
  }

  filterBox.addEventListener("keyup", e => { if (e.key === "Enter") load(); });
  filterBox.addEventListener("blur", load);
  groupSelect.addEventListener("change", () => { state.group = groupSelect.value; render(); });
  compareButton.addEventListener("click", () => { location.href = `/compare?runs=${[...state.selected].map(encodeURIComponent).join(",")}`; });
  await load();
}

function configTree(value, label) {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    const node = el("details", { open: "" }, el("summary", { text: label }));
    for (const [k, v] of Object.entries(value)) node.append(configTree(v, k));
    return node;
  }
  return el("div", { class: "leaf", text: `${label}: ${fmt(value)}` });
}

async function seriesChart(container, runId, key, opts) {
  const url = k => `/api/runs/${encodeURIComponent(runId)}/history?key=${encodeURIComponent(k)}${opts.system ? "&system=1" : ""}`;
  const first = await getJSON(url(key));
  let xs = first.x, ys = first.y, next = first.next, zoomed = false;
  const chart = makeChart(container, key, [key], [xs, ys], { colors: [colorOf(runId)], onZoom: async (lo, hi) => {
    const part = await getJSON(`${url(key)}&min=${lo}&max=${hi}`);  // full resolution for the visible range
    zoomed = true;
    chart.setData([part.x, part.y]);
  } });
  chart.over.addEventListener("dblclick", () => { zoomed = false; chart.setData([xs, ys]); });
  if (opts.live) {
    const timer = setInterval(async () => {
      const more = await getJSON(`${url(key)}&after=${next}`);
      if (!more.y.length) return;
      xs = xs.concat(more.x); ys = ys.concat(more.y); next = more.next;
      if (!zoomed) chart.setData([xs, ys]);
    }, 1000);
    window.addEventListener("beforeunload", () => clearInterval(timer));
  }
  return chart;
}

function histogramHeatmap(items) {
  const canvas = el("canvas", { width: "320", height: String(Math.max(40, items.length * 6)), class: "heatmap" });
  const ctx = canvas.getContext("2d");
  const lo = Math.min(...items.map(h => h.bins[0])), hi = Math.max(...items.map(h => h.bins[h.bins.length - 1]));
  const rowH = canvas.height / items.length;
  items.forEach((h, r) => {
    const peak = Math.max(...h.counts, 1);
    h.counts.forEach((c, i) => {
      const x0 = (h.bins[i] - lo) / (hi - lo || 1) * canvas.width, x1 = (h.bins[i + 1] - lo) / (hi - lo || 1) * canvas.width;
      ctx.fillStyle = `rgba(9, 105, 218, ${c / peak})`;
      ctx.fillRect(x0, r * rowH, Math.max(1, x1 - x0), rowH);
    });
  });
  return canvas;
}

async function mediaPanel(container, runId, key) {
  const items = await getJSON(`/api/runs/${encodeURIComponent(runId)}/media?key=${encodeURIComponent(key)}`);
  if (!items.length) return;
  const panel = el("div", { class: "panel", "data-key": key }, el("h3", { text: `${key} (${items[0]._type})` }));
  container.append(panel);
  const kind = items[0]._type;
  if (kind === "histogram") { panel.append(histogramHeatmap(items)); return; }
  const body = el("div");
  const show = i => {
    const it = items[i];
    body.replaceChildren(el("div", { text: `step ${it.step}` + (it.caption ? ` — ${it.caption}` : "") }));
    if (kind === "image") body.append(el("img", { src: `/api/media/${it.sha256}?kind=image`, alt: it.caption || key }));
    else if (kind === "audio") body.append(el("audio", { controls: "", src: `/api/media/${it.sha256}?kind=audio` }));
    else if (kind === "text") body.append(el("pre", { text: it.text }));
    else if (kind === "html") body.append(el("iframe", { class: "html-media", sandbox: "allow-scripts", src: `/api/media/${it.sha256}?kind=html` }));
    else if (kind === "table") getJSON(`/api/media/${it.sha256}?kind=table`).then(t => body.append(sortableTable(t.columns, t.rows)));
  };
  if (items.length > 1) {
    const slider = el("input", { type: "range", min: "0", max: String(items.length - 1), value: String(items.length - 1), class: "step-slider" });
    slider.addEventListener("input", () => show(Number(slider.value)));
    panel.append(slider);
  }
  panel.append(body);
  show(items.length - 1);
}

function sortableTable(columns, rows) {
  const table = el("table", { class: "grid" });
  let order = { col: -1, dir: 1 };
  const draw = () => {
    const sorted = order.col < 0 ? rows : [...rows].sort((a, b) => (a[order.col] > b[order.col] ? 1 : -1) * order.dir);
    table.replaceChildren(el("tr", {}, ...columns.map((c, i) => el("th", { text: c, onclick: () => { order = { col: i, dir: order.col === i ? -order.dir : 1 }; draw(); } }))),
      ...sorted.map(r => el("tr", {}, ...r.map(v => el("td", { text: fmt(v) })))));
  };
  draw();
  return table;
}

async function runPage() {
  const runId = document.body.dataset.run;
  const run = await getJSON(`/api/runs/${encodeURIComponent(runId)}`);
  document.getElementById("title").textContent = `${run.name} (${run.id})`;
  const facts = document.getElementById("facts");
  for (const [k, v] of [["status", run.status], ["project", run.project], ["group", run.group], ["tags", (run.tags || []).join(", ")],
    ["duration", duration(run.duration)], ["host", run.host], ["git commit", run.git_commit], ["python", run.python],
    ["error", run.error], ["notes", run.notes], ["packages", run.packages ? Object.entries(run.packages).map(([p, v]) => `${p} ${v}`).join(", ") : ""]]) {
    if (v) facts.append(el("tr", {}, el("td", { text: k }), el("td", { class: k === "status" ? `status-${v}` : "", text: v })));
  }
  document.getElementById("config").append(configTree(run.config, "config"));
  const summary = document.getElementById("summary");
  for (const [k, v] of Object.entries(run.summary)) summary.append(el("tr", {}, el("td", { text: k }), el("td", { text: fmt(v) })));
  const charts = document.getElementById("charts"), media = document.getElementById("media");
  const scalarKeys = [], mediaKeys = [];
  const probe = await Promise.all(Object.keys(run.metrics).map(async k => {
    const s = await getJSON(`/api/runs/${encodeURIComponent(runId)}/history?key=${encodeURIComponent(k)}&points=4`);
    return [k, s.total];
  }));
  for (const [k, total] of probe) (total > 0 ? scalarKeys : mediaKeys).push(k);
  const groups = new Map();
  for (const k of scalarKeys.sort()) {
    const prefix = k.includes("/") ? k.split("/")[0] : "";
    if (!groups.has(prefix)) groups.set(prefix, []);
    groups.get(prefix).push(k);
  }
  for (const [prefix, keys] of groups) {
    charts.append(el("div", { class: "group-title", text: prefix || "metrics" }));
    for (const k of keys) await seriesChart(charts, runId, k, { live: run.status === "running" });
  }
  for (const k of mediaKeys.sort()) await mediaPanel(media, runId, k);
  const system = document.getElementById("system");
  for (const k of run.system) await seriesChart(system, runId, k, { system: true, live: run.status === "running" });
  const arts = await getJSON(`/api/runs/${encodeURIComponent(runId)}/artifacts`);
  const box = document.getElementById("artifacts");
  for (const [label, list] of [["logged", arts.logged], ["used", arts.used]]) {
    for (const a of list) {
      box.append(el("div", { class: "panel artifact" }, `${label}: ${a.name}:v${a.version} (${a.type}, ${a.size} bytes, aliases ${a.aliases.join(", ")})`,
        lineageGraph(a, runId)));
    }
  }
  if (!arts.logged.length && !arts.used.length) box.append(el("div", { text: "none" }));
}

function lineageGraph(artifact, current) {  // producer run -> artifact version -> consumer runs
  const consumers = artifact.used_by, rows = Math.max(1, consumers.length), height = 30 + rows * 26;
  const graph = svg("svg", { width: 640, height, class: "lineage" });
  const node = (x, y, text, href, fill) => {
    const g = svg("g", {});
    g.append(svg("rect", { x, y: y - 11, width: 170, height: 22, rx: 4, fill, stroke: "#888" }));
    g.append(svg("text", { x: x + 85, y: y + 4, "text-anchor": "middle", "font-size": "11" }, text));
    if (href) { const a = svg("a", { href }); a.append(g); graph.append(a); } else graph.append(g);
  };
  const mid = height / 2;
  const producer = artifact.produced_by;
  node(10, mid, producer ? `run ${producer}` : "(no run)", producer && producer !== current ? `/runs/${encodeURIComponent(producer)}` : null, producer === current ? "#dbe9ff" : "#fff");
  node(235, mid, `${artifact.name}:v${artifact.version}`, null, "#fff6d6");
  graph.append(svg("line", { x1: 180, y1: mid, x2: 235, y2: mid, stroke: "#555", "marker-end": "" }));
  consumers.forEach((c, i) => {
    const y = 20 + i * 26 + 6;
    node(460, y, `run ${c}`, c !== current ? `/runs/${encodeURIComponent(c)}` : null, c === current ? "#dbe9ff" : "#fff");
    graph.append(svg("line", { x1: 405, y1: mid, x2: 460, y2: y, stroke: "#555" }));
  });
  return graph;
}

async function comparePage() {
  const ids = (new URLSearchParams(location.search).get("runs") || "").split(",").filter(Boolean);
  const runs = await Promise.all(ids.map(id => getJSON(`/api/runs/${encodeURIComponent(id)}`)));
  const legend = document.getElementById("legend");
  for (const r of runs) legend.append(el("span", {}, el("i", { style: `background:${colorOf(r.id)}` }), `${r.name} (${r.id})`));
  const xSelect = document.getElementById("xaxis");
  const stepMetrics = new Set(runs.flatMap(r => Object.values(r.define || {}).map(d => d.step_metric).filter(Boolean)));
  for (const m of stepMetrics) xSelect.append(el("option", { value: m, text: m }));
  const keys = [...new Set(runs.flatMap(r => Object.keys(r.metrics)))].sort();
  const cache = {};
  async function draw() {
    const container = document.getElementById("charts");
    container.replaceChildren();
    window.__charts = {};
    const x = xSelect.value, alpha = Number(document.getElementById("smooth").value), log = document.getElementById("logscale").checked;
    const fetched = await Promise.all(keys.map(key => Promise.all(runs.map(r => {
      const url = `/api/runs/${encodeURIComponent(r.id)}/history?key=${encodeURIComponent(key)}&x=${encodeURIComponent(x)}&points=1000`;
      return (cache[url] = cache[url] || getJSON(url));
    }))));
    for (const [ki, key] of keys.entries()) {
      const parts = fetched[ki];
      if (!parts.some(p => p.y.length)) continue;
      const data = uPlot.join(parts.map(p => [p.x, smooth(p.y, alpha)]));
      makeChart(container, key, runs.map(r => r.name), data, { colors: runs.map(r => colorOf(r.id)), log,
        time: x === "_timestamp", xLabel: x });
    }
  }
  for (const id of ["xaxis", "smooth", "logscale"]) document.getElementById(id).addEventListener("change", draw);
  await draw();
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text != null) node.textContent = text;
  return node;
}

function parallelCoordinates(sweep) {
  const axes = [...sweep.params, sweep.metric || "value"];
  const trials = sweep.trials.filter(t => t.value != null);
  const width = Math.max(420, axes.length * 160), height = 260, pad = 30;
  const chart = svg("svg", { width, height, class: "parallel" });
  const scales = axes.map((axis, i) => {
    const values = trials.map(t => (i === axes.length - 1 ? t.value : t.config[axis]));
    const numeric = values.every(v => typeof v === "number");
    const cats = numeric ? [] : [...new Set(values.map(v => JSON.stringify(v)))].sort();
    const lo = numeric ? Math.min(...values) : 0, hi = numeric ? Math.max(...values) : Math.max(1, cats.length - 1);
    const x = pad + i * (width - 2 * pad) / Math.max(1, axes.length - 1);
    chart.append(svg("line", { x1: x, x2: x, y1: pad, y2: height - pad, stroke: "#888" }));
    chart.append(svg("text", { x, y: pad - 10, "text-anchor": "middle", "font-size": "11" }, axis));
    chart.append(svg("text", { x, y: height - 8, "text-anchor": "middle", "font-size": "10" }, numeric ? fmt(lo) : cats[0] || ""));
    return { x, y: v => {
      const pos = numeric ? v : cats.indexOf(JSON.stringify(v));
      return height - pad - (hi === lo ? 0.5 : (pos - lo) / (hi - lo)) * (height - 2 * pad);
    } };
  });
  const values = trials.map(t => t.value), best = Math.min(...values), worst = Math.max(...values);
  for (const t of trials) {
    const points = axes.map((axis, i) => `${scales[i].x},${scales[i].y(i === axes.length - 1 ? t.value : t.config[axis])}`);
    let q = worst === best ? 0.5 : (t.value - best) / (worst - best);
    if (sweep.goal === "maximize") q = 1 - q;
    const line = svg("polyline", { points: points.join(" "), fill: "none", stroke: `hsl(${220 - 220 * q}, 70%, 45%)`,
      "stroke-width": "1.5", "data-trial": String(t.number) });
    line.append(svg("title", {}, `trial ${t.number}: ${fmt(t.value)}`));
    chart.append(line);
  }
  return chart;
}

async function sweepPage() {
  const id = document.getElementById("title").dataset.sweep;
  const sweep = await getJSON(`/api/sweeps/${encodeURIComponent(id)}`);
  document.getElementById("title").textContent = `sweep ${sweep.id} (${sweep.state}) — ${sweep.method}, ${sweep.goal} ${sweep.metric || ""}`;
  document.getElementById("parallel").append(parallelCoordinates(sweep));
  const importance = document.getElementById("importance");
  for (const [k, v] of Object.entries(sweep.importances)) importance.append(el("tr", {}, el("td", { text: k }), el("td", { text: v.toFixed(3) })));
  if (!Object.keys(sweep.importances).length) importance.append(el("tr", {}, el("td", { text: "needs more finished trials" })));
  const table = document.getElementById("trials");
  table.append(el("tr", {}, ...["trial", "status", "value", ...sweep.params].map(h => el("th", { text: h }))));
  for (const t of sweep.trials) {
    table.append(el("tr", {}, el("td", {}, t.run_id ? el("a", { href: `/runs/${encodeURIComponent(t.run_id)}`, text: String(t.number) }) : String(t.number)),
      el("td", { class: `status-${t.status}`, text: t.status }), el("td", { text: fmt(t.value) }),
      ...sweep.params.map(p => el("td", { text: fmt(t.config[p]) }))));
  }
}

const pages = { projects: projectsPage, runs: runsPage, run: runPage, compare: comparePage, sweep: sweepPage };
if (pages[page]) pages[page]().then(() => { document.body.dataset.ready = "1"; }).catch(e => {
  document.getElementById("main").append(el("p", { class: "error", text: `could not load: ${e.message}` }));
  document.body.dataset.ready = "error";
});
