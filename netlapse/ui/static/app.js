/* netlapse dashboard: runs page, run page (step slider across every panel), compare page, live updates. */
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k.nodeType ? k : String(k));
  return e;
};
const q = (params) => new URLSearchParams(params).toString();
const state = { source: null, cleanup: [] };

async function api(path, params) {
  const res = await fetch(`/api/${path}?${q(params || {})}`);
  if (!res.ok) {
    let msg = res.statusText;
    try { msg = (await res.json()).error || msg; } catch (e) { /* keep statusText */ }
    const err = new Error(msg); err.status = res.status; throw err;
  }
  return res.json();
}

async function apiBinary(path, params) {
  const res = await fetch(`/api/${path}?${q(params)}`);
  if (!res.ok) {
    let msg = res.statusText;
    try { msg = (await res.json()).error || msg; } catch (e) { /* keep */ }
    throw new Error(msg);
  }
  const buf = await res.arrayBuffer();
  const shape = (res.headers.get("X-Shape") || "").split(",").filter((s) => s !== "").map(Number);
  const data = res.headers.get("X-Dtype") === "uint8" ? new Uint8Array(buf) : new Float32Array(buf);
  return { data, shape, headers: res.headers };
}

function ago(t) {
  if (!t) return "–";
  const s = Date.now() / 1000 - t;
  if (s < 5) return "just now";
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(t * 1000).toISOString().slice(0, 10);
}
const statusLabel = (s) => (s === "running" ? "live" : s);
const badge = (s) => el("span", { class: `badge ${String(s).replace(" ", "-")}` }, statusLabel(s));

function errorCard(title, message) {
  return el("div", { class: "card error-card", "data-testid": "error-card" }, el("h3", {}, title), el("pre", {}, message));
}

function setCrumbs(parts) {
  const c = $("#crumbs"); c.textContent = "";
  parts.forEach(([label, href], i) => {
    if (i) c.append(el("span", { class: "sep" }, "/"));
    c.append(href ? el("a", { href }, label) : el("span", {}, label));
  });
}

function listen(url, handlers) {
  if (state.source) state.source.close();
  const src = new EventSource(url);
  state.source = src;
  const dot = $("#live-dot");
  src.onopen = () => dot.classList.add("on");
  src.onerror = () => dot.classList.remove("on");
  for (const [ev, fn] of Object.entries(handlers)) src.addEventListener(ev, (e) => fn(JSON.parse(e.data)));
}

function teardown() {
  if (state.source) { state.source.close(); state.source = null; }
  $("#live-dot").classList.remove("on");
  state.cleanup.forEach((f) => f()); state.cleanup = [];
}

/* Run async fn(arg) with one call in flight; the latest arg wins; calls start >= gap ms apart. */
function latest(fn, gap = 0) {
  let busy = false, next = null, has = false, lastStart = 0;
  const run = async (arg) => {
    if (busy) { next = arg; has = true; return; }
    busy = true;
    const wait = lastStart + gap - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    if (has) { arg = next; has = false; }
    lastStart = performance.now();
    try { await fn(arg); } finally {
      busy = false;
      if (has) { has = false; run(next); }
    }
  };
  return run;
}

/* Recorded tensors of one stream, fetched once: each knows its recorded step and its neighbours,
   so a slider value between two recorded steps is a hit; the next frame is fetched ahead. */
class FrameCache {
  constructor(run, stream, max = 24) { this.run = run; this.stream = stream; this.max = max; this.frames = []; this.ahead = null; }
  find(step) {
    return this.frames.find((f) => (step >= f.step || f.prev === null) && (f.next === null || step < f.next));
  }
  async fetch(step) {
    const t = await apiBinary("tensor", { run: this.run, stream: this.stream, step, as: "u8" });
    const h = (k) => (t.headers.get(k) === "" || t.headers.get(k) === null ? null : Number(t.headers.get(k)));
    const f = { step: h("X-Step"), prev: h("X-Prev-Step"), next: h("X-Next-Step"), absmax: Number(t.headers.get("X-Scale")) || 1, data: t.data, shape: t.shape };
    if (!this.frames.some((g) => g.step === f.step)) { this.frames.push(f); if (this.frames.length > this.max) this.frames.shift(); }
    return f;
  }
  async get(step) { return this.find(step) || (this.ahead && (await this.ahead, this.find(step))) || this.fetch(step); }
  /* fetch the frame at `step` and then `depth - 1` more in the same direction, one at a time */
  prefetch(step, depth = 3, forward = true) {
    if (step === null || depth <= 0 || this.ahead) return;
    const have = this.find(step);
    if (have) { this.prefetch(forward ? have.next : have.prev, depth - 1, forward); return; }
    this.ahead = this.fetch(step).catch(() => null).then((f) => {
      this.ahead = null;
      if (f) this.prefetch(forward ? f.next : f.prev, depth - 1, forward);
    });
  }
  dropOpenEnded() { this.frames = this.frames.filter((f) => f.next !== null); }
}

/* ------------------------------------------------------------------ runs page */
async function runsPage() {
  setCrumbs([["runs", "#/"]]);
  const main = $("#main");
  const filter = el("input", { type: "search", placeholder: "filter runs by name…", id: "filter" });
  const compareBtn = el("button", { class: "btn primary", disabled: "", id: "compare-btn" }, "Compare selected");
  const body = el("tbody");
  const table = el("table", { class: "runs" },
    el("thead", {}, el("tr", {}, el("th", {}, ""), el("th", {}, "run"), el("th", {}, "status"),
      el("th", { class: "num" }, "steps"), el("th", {}, "health"), el("th", {}, "last update"), el("th", {}, "metrics"))), body);
  const info = el("span", { class: "muted" });
  main.replaceChildren(el("div", { class: "toolbar" }, el("h1", {}, "Runs"), filter, compareBtn, el("span", { class: "spacer" }), info),
    el("div", { class: "card" }, table));
  const selected = new Set();
  compareBtn.onclick = () => { location.hash = `#/compare?${q({ runs: [...selected].join(",") })}`; };
  let rows = [];
  const render = () => {
    const f = filter.value.trim().toLowerCase();
    const shown = rows.filter((r) => !f || r.id.toLowerCase().includes(f) || String(r.name).toLowerCase().includes(f));
    body.replaceChildren(...shown.map((r) => {
      const box = el("input", { type: "checkbox" });
      box.checked = selected.has(r.id);
      box.onchange = () => { box.checked ? selected.add(r.id) : selected.delete(r.id); compareBtn.disabled = selected.size < 2; };
      const sparks = el("div", { class: "sparkcell" });
      Object.entries(r.metrics || {}).slice(0, 3).forEach(([name, s], k) => {
        const c = el("canvas", { class: "spark" });
        sparks.append(el("div", {}, el("span", { class: "lbl" }, `${name} ${Charts.fmt(s.value[s.value.length - 1])}`), c));
        requestAnimationFrame(() => Charts.spark(c, s.step, s.value, Charts.PALETTE[k]));
      });
      if (r.error) sparks.append(el("span", { class: "muted mono", title: r.error }, r.error.length > 110 ? r.error.slice(0, 109) + "…" : r.error));
      return el("tr", { "data-run": r.id }, el("td", {}, box),
        el("td", { class: "name" }, el("a", { href: `#/run/${encodeURIComponent(r.id)}` }, r.id)),
        el("td", {}, badge(r.status)), el("td", { class: "num" }, r.last_step ?? "–"),
        el("td", {}, healthBadge(r)), el("td", { class: "muted" }, ago(r.updated)), el("td", {}, sparks));
    }));
    if (!shown.length) body.append(el("tr", {}, el("td", { colspan: 7, class: "empty" },
      rows.length ? "No run matches the filter." : "No runs here yet. Record one with netlapse.Run(...) and it will appear.")));
  };
  const load = async () => {
    const data = await api("runs");
    rows = data.runs; info.textContent = `${rows.length} run${rows.length === 1 ? "" : "s"} in ${data.root}`;
    render();
  };
  filter.oninput = render;
  await load();
  let timer = null;
  listen("/api/events", { runs: () => { clearTimeout(timer); timer = setTimeout(load, 150); } });
  const tick = setInterval(render, 30000);
  state.cleanup.push(() => clearInterval(tick));
}

/* ------------------------------------------------------------------ run page */
class RunView {
  constructor(id, detail, metrics) {
    this.id = id; this.d = detail; this.metrics = metrics;
    this.step = detail.last_step; this.panels = [];
    this.streams = Object.fromEntries(detail.streams.map((s) => [s.name, s]));
  }
  fullStreams(pred) {
    return this.d.streams.filter((s) => s.capture === "full" && s.length && (!pred || pred(s)));
  }
  profileAt(step) {
    if (!this._prof || this._prof.step !== step || this._prof.seq !== this.d.seq) {
      this._prof = { step, seq: this.d.seq, p: api("profile", { run: this.id, step }) };
    }
    return this._prof.p;
  }
  setStep(step, from) {
    this.step = step;
    // the slider spans every recorded step (metrics too); when the tensors and stats end
    // earlier, say so, so that the label never claims data the panels do not have
    const ends = this.d.streams.map((s) => s.last_step).filter((x) => x !== null && x !== undefined);
    const streamEnd = ends.length ? Math.max(...ends) : null;
    const past = streamEnd !== null && step > streamEnd;
    $("#step-readout").textContent = `step ${step.toLocaleString("en")}`;
    $("#step-readout").dataset.step = step;
    $("#step-note").textContent = past ? `metrics only · tensors end at step ${streamEnd.toLocaleString("en")}` : "";
    if (from !== "slider") $("#slider").value = step;
    for (const p of this.panels) p.show(step);
  }
}

function panel(title, opts = {}) {
  const head = el("div", { class: "panel-head" }, el("h2", {}, title), el("span", { class: "spacer" }), ...(opts.controls || []),
    el("span", { class: "panel-step" }));
  const body = el("div", { class: "panel-body" });
  const p = el("section", { class: `card panel ${opts.wide ? "wide" : ""}`, "data-panel": opts.key || title }, head, body);
  p.stepLabel = $(".panel-step", head);
  p.body = body;
  return p;
}

function metricsPanel(view) {
  const names = view.d.metric_names;
  if (!names.length) return null;
  const p = panel("Metrics", { key: "metrics", wide: names.length > 1 });
  const charts = names.map((n, k) => {
    const c = el("canvas", { "data-metric": n });
    p.body.append(el("div", {}, el("div", { class: "legend" }, el("span", {}, el("i", { style: `background:${Charts.PALETTE[k % 8]}` }), n)), c));
    return [n, c, k, {}];
  });
  if (names.length > 1) p.body.style.cssText = `display:grid;grid-template-columns:repeat(auto-fit,minmax(max(320px,${Math.floor(100 / Math.min(3, names.length)) - 2}%),1fr));gap:8px 16px`;
  return {
    el: p, show(step) {
      p.stepLabel.textContent = `step ${step}`;
      for (const [n, c, k, store] of charts) {
        const s = view.metrics[n] || { step: [], value: [] };
        const key = `${s.step.length}:${view.d.first_step}:${view.d.last_step}:${document.documentElement.dataset.theme}`;
        Charts.layered(c, store, key, () => Charts.line(c, [{ x: s.step, y: s.value, color: Charts.PALETTE[k % 8] }],
          { xmin: view.d.first_step, xmax: view.d.last_step, height: 170 })).cursor(step);
      }
      if (view.metricsLoaded) p.dataset.drawn = step;
    },
  };
}

function weightPanel(view) {
  const cands = view.fullStreams((s) => s.shape.length >= 2 && s.kind !== "inputs");
  if (!cands.length) return null;
  const size = (s) => s.shape.reduce((a, b) => a * b, 1);
  cands.sort((a, b) => (a.kind === "weights" ? 0 : 1) - (b.kind === "weights" ? 0 : 1) || size(b) - size(a));
  const sel = el("select", { id: "weight-stream" }, ...cands.map((s) => el("option", { value: s.name }, s.name)));
  const p = panel(cands[0].kind === "weights" ? "Weight image" : "Tensor image", { key: "weights", controls: [sel] });
  const canvas = el("canvas", { id: "weight-canvas" });
  const cbar = el("canvas");
  const lo = el("span"), hi = el("span"), note = el("div", { class: "muted", style: "font-size:12px;text-align:center;margin-top:4px" });
  p.body.append(el("div", { class: "imgwrap" }, canvas), el("div", { class: "colorbar" }, lo, cbar, hi), note);
  Charts.colorbar(cbar, Charts.DIVERGING);
  let cache = new FrameCache(view.id, sel.value), shown = null;
  const fetchDraw = latest(async (step) => {
    try {
      const f = await cache.get(step);
      const L = Charts.tensorImage(canvas, f.data, f.shape, f.absmax);
      const room = Math.max(200, p.body.clientWidth - 20);
      const scale = Math.min(room / L.width, 360 / L.height, 24);
      canvas.style.width = `${Math.max(1, Math.floor(L.width * (scale >= 3 ? Math.floor(scale) : scale)))}px`;
      lo.textContent = Charts.fmt(-f.absmax); hi.textContent = Charts.fmt(f.absmax);
      canvas.dataset.step = f.step;
      note.textContent = `${sel.value}  ·  shape ${f.shape.join("×")}${L.tiles ? `  ·  one ${L.side}×${L.side} tile per output unit` : ""}  ·  recorded step ${f.step}`;
      p.stepLabel.textContent = `step ${f.step}`;
      p.dataset.drawn = f.step;
      const back = shown !== null && f.step < shown;
      cache.prefetch(back ? f.prev : f.next, 3, !back);
      shown = f.step;
    } catch (e) {
      p.body.replaceChildren(errorCard("Cannot load this tensor", e.message));
    }
  });
  sel.onchange = () => { cache = new FrameCache(view.id, sel.value); shown = null; fetchDraw(view.step); };
  return { el: p, show: fetchDraw, live() { cache.dropOpenEnded(); } };
}

function heatmapPanel(view) {
  const cands = view.d.streams.filter((s) => s.length && s.kind !== "inputs");
  if (!cands.length) return null;
  const rank = { weights: 0, grads: 1, activations: 2, probe: 3 };
  cands.sort((a, b) => (rank[a.kind] ?? 4) - (rank[b.kind] ?? 4) || b.shape.reduce((x, y) => x * y, 1) - a.shape.reduce((x, y) => x * y, 1));
  const sel = el("select", { id: "heat-stream" }, ...cands.map((s) => el("option", { value: s.name }, s.name)));
  const p = panel("Distribution", { key: "heatmap", controls: [sel] });
  const c = el("canvas", { id: "heat-canvas" });
  p.body.append(c, el("div", { class: "legend" }, "every recorded step's histogram, rebinned to one value range; colour = share of values (sqrt scale)"));
  let hm = null, last = 0;
  const store = {};
  const load = async () => {
    const t = await apiBinary("heatmap", { run: view.id, stream: sel.value, rows: 400 });
    hm = { ...t, steps: (t.headers.get("X-Steps") || "").split(",").map(Number), lo: Number(t.headers.get("X-Lo")), hi: Number(t.headers.get("X-Hi")) };
    last = Date.now();
    draw(view.step);
  };
  const draw = (step) => {
    p.stepLabel.textContent = `step ${step}`;
    if (!hm) return;
    Charts.layered(c, store, hm, () => Charts.heatmap(c, hm.data, hm.shape[0], hm.shape[1], hm.steps, hm.lo, hm.hi)).cursor(step);
    p.dataset.drawn = step;
  };
  sel.onchange = load;
  load().catch((e) => p.body.replaceChildren(errorCard("Cannot load the histograms", e.message)));
  return { el: p, show: draw, live() { if (Date.now() - last > 1500) load().catch(() => {}); } };
}

function profilePanel(view) {
  const p = panel("Layer profile", { key: "profile" });
  const c = el("canvas", { id: "profile-canvas" }), legend = el("div", { class: "legend" });
  p.body.append(c, legend);
  const colors = { weights: "#3b6fd8", grads: "#e0533a", activations: "#1f9d55", probe: "#9b59b6" };
  const draw = latest(async (step) => {
    try {
      const prof = await view.profileAt(step);
      const layer = (n) => n.split("/").slice(1).join("/").replace(/\.(weight|bias)$/, "");
      const names = [...new Set(Object.values(prof).flat().map((r) => layer(r.name)))];
      const series = Object.entries(prof).filter(([k]) => colors[k] && k !== "probe").map(([kind, rows]) => {
        const by = {};
        rows.forEach((r) => { if (!r.name.endsWith(".bias")) by[layer(r.name)] = r.mean_abs; });
        return { label: kind, color: colors[kind], values: names.map((n) => by[n] ?? null) };
      });
      const used = names.filter((n, i) => series.some((s) => s.values[i] !== null));
      if (!used.length) {
        c.style.display = "none";
        legend.textContent = "No weights, gradients or activations recorded in this run.";
        p.dataset.drawn = step;
        return;
      }
      const idx = used.map((n) => names.indexOf(n));
      Charts.bars(c, used, series.map((s) => ({ ...s, values: idx.map((i) => s.values[i]) })));
      legend.replaceChildren(...series.map((s) => el("span", {}, el("i", { style: `background:${s.color}` }), `mean |${s.label}|`)));
      p.stepLabel.textContent = `step ${step}`;
      p.dataset.drawn = step;
    } catch (e) { legend.textContent = e.message; }
  }, 150);
  return { el: p, show: draw };
}

/* A panel drawing one frame of a view (netlapse/views, made into a spec by render/spec.py) with
   specdraw.js: the same picture as nl.plot.<view> and the HTML player. Frames are kept by
   recorded step (each knows its neighbours), so moving the slider between two is a hit. */
function viewPanel(view, title, viewName, opts = {}) {
  const p = panel(title, { key: opts.key || viewName, wide: opts.wide });
  const c = el("canvas", { class: "spec-canvas", "data-view": viewName }), note = el("div", { class: "legend" });
  p.body.append(c, note);
  let frames = [];
  const find = (step) => frames.find((f) => (step >= f.step || f.prev === null) && (f.next === null || step < f.next));
  const draw = latest(async (step) => {
    try {
      let f = find(step);
      if (!f) {
        f = await api("view", { run: view.id, view: viewName, step, ...(opts.layer ? { layer: opts.layer } : {}) });
        frames = [...frames.filter((g) => g.step !== f.step), f].slice(-32);
      }
      c.axes = NetlapseSpec.render(c, f, f.spec, 100);   // plot boxes in canvas pixels (tests read them)
      c.frame = f;
      c.dataset.step = f.step;
      note.textContent = opts.note || "";
      p.stepLabel.textContent = `step ${f.step}`;
      p.dataset.drawn = step;
    } catch (e) { note.textContent = e.message; p.dataset.error = e.message; }
  });
  return { el: p, show: draw, live() { frames = frames.filter((f) => f.next !== null); } };
}

function probePanel(view) {
  const inp = view.streams["inputs/probe"];
  if (!inp || inp.capture !== "full") return null;
  const target = view.streams["inputs/probe_target"];
  const layout = view.d.probe_layout || {};
  const probes = view.fullStreams((s) => s.kind === "probe").sort((a, b) => a.name.localeCompare(b.name, "en", { numeric: true }));
  const n = inp.shape[0];
  const fit1d = inp.shape.length <= 2 && (inp.shape[1] || 1) === 1;
  const hiddenName = layout.hidden || (probes.find((s) => s.shape.length === 2 && s.shape[0] === n && s.shape[1] === 2) || {}).name;
  const outName = layout.output || (probes.filter((s) => s.shape[0] === n && (s.shape[1] || 1) === 1).pop() || {}).name;
  const mode = fit1d && outName ? "fit" : hiddenName ? "hidden" : null;
  if (!mode) return null;
  if (mode === "hidden") {
    return viewPanel(view, `Hidden space · ${hiddenName}`, "hidden_space", { key: "probe", layer: hiddenName, wide: true,
      note: "as nl.plot.hidden_space draws it: data points and the input grid's lines mapped into the 2-unit layer, the decision boundary, and the decision regions over the input plane" });
  }
  const p = panel(mode === "fit" ? "Function fit (probe)" : `Hidden space · ${hiddenName}`, { key: "probe" });
  const c = el("canvas", { id: "probe-canvas" }), legend = el("div", { class: "legend" });
  p.body.append(c, legend);
  let x = null, y = null;
  const ready = (async () => {
    x = (await apiBinary("tensor", { run: view.id, stream: "inputs/probe", step: -1 })).data;
    if (target) y = (await apiBinary("tensor", { run: view.id, stream: "inputs/probe_target", step: -1 })).data;
  })();
  const draw = async (step) => {
    await ready;
    if (mode === "fit") {
      const out = await apiBinary("tensor", { run: view.id, stream: outName, step });
      const order = [...x.keys()].sort((a, b) => x[a] - x[b]);
      Charts.scatter(c, { x: Array.from(x), y: y ? Array.from(y) : [] },
        [{ x: order.map((i) => x[i]), y: order.map((i) => out.data[i]), color: Charts.css("--cursor") }]);
      legend.replaceChildren(el("span", {}, el("i", { style: `background:${Charts.css("--muted")}` }), "target"),
        el("span", {}, el("i", { style: `background:${Charts.css("--cursor")}` }), `${outName} at step ${out.headers.get("X-Step")}`));
      p.stepLabel.textContent = `step ${out.headers.get("X-Step")}`;
      p.dataset.drawn = step;
    }
  };
  return { el: p, show: (s) => draw(s).catch((e) => { legend.textContent = e.message; }) };
}

function layerTable(view) {
  const p = panel("Layers", { key: "layers", wide: true });
  const body = el("tbody");
  const STATS = ["norm", "mean", "std", "min", "max"];
  p.body.append(el("table", { class: "layers" }, el("thead", {}, el("tr", {}, ...["stream", "kind", "capture", "shape", "steps", "at step"].map((h) => el("th", {}, h)),
    ...[...STATS, "zeros", "non-finite"].map((h) => el("th", { class: "num" }, h)), el("th", {}, "norm over steps"))), body));
  const cells = (L) => [...STATS.map((k) => Charts.fmt(L[k])), L.zero_frac === undefined || L.zero_frac === null ? "–" : `${(100 * L.zero_frac).toFixed(1)}%`, L.nonfinite ?? "–"];
  const render = () => {
    body.replaceChildren(...view.d.streams.map((s) => {
      const c = el("canvas", { class: "spark" });
      requestAnimationFrame(() => { const sp = s.norm_spark; if (sp) Charts.spark(c, sp.step, sp.value, "#3b6fd8", 130, 24); });
      return el("tr", { "data-stream": s.name }, el("td", { class: "mono" }, s.name), el("td", {}, s.kind), el("td", { class: "muted" }, s.capture),
        el("td", { class: "mono" }, s.shape.join("×") || "scalar"), el("td", { class: "num" }, s.length), el("td", { class: "num at" }, s.last_step ?? "–"),
        ...cells(s.last || {}).map((v) => el("td", { class: "num stat" }, v)), el("td", {}, c));
    }));
  };
  let show = latest(async (step) => {
    try {
      const prof = await view.profileAt(step);
      const by = Object.fromEntries(Object.values(prof).flat().map((r) => [r.name, r]));
      for (const tr of body.querySelectorAll("tr[data-stream]")) {
        const r = by[tr.dataset.stream];
        tr.querySelector(".at").textContent = r ? r.step : "–";
        const vals = cells(r || {});
        const meant = (view.streams[tr.dataset.stream] || {}).nonfinite_expected || 0;   // probe rows without a target
        tr.querySelectorAll(".stat").forEach((td, i) => {
          td.textContent = vals[i]; td.style.color = ""; td.title = ""; delete td.dataset.nonfinite;
          if (i !== 6 || !r || !r.nonfinite) return;
          const onPurpose = r.nonfinite <= meant;
          td.dataset.nonfinite = onPurpose ? "expected" : "bad";
          td.style.color = onPurpose ? "var(--muted)" : "var(--bad)";
          if (onPurpose) { td.textContent = `${r.nonfinite} no target`; td.title = "NaN on purpose: the probe's grid and plane rows have no target (probe_layout)"; }
        });
      }
      p.stepLabel.textContent = `step ${step}`;
      p.dataset.drawn = step;
    } catch (e) { p.stepLabel.textContent = e.message; }
  }, 150);
  render();
  let sparksAsked = false;
  const loadSparks = () => api("sparks", { run: view.id }).then((sp) => {
    for (const s of view.d.streams) {
      const got = sp[s.name];
      if (!got) continue;
      const extra = s.norm_spark || { step: [], value: [] };   // live points that came first
      const last = got.step[got.step.length - 1];
      const keep = extra.step.map((x, i) => i).filter((i) => extra.step[i] > last);
      s.norm_spark = { step: [...got.step, ...keep.map((i) => extra.step[i])], value: [...got.value, ...keep.map((i) => extra.value[i])] };
    }
    render(); show(view.step); p.dataset.sparks = "1";
  }).catch(() => {});
  const showFirst = show;
  show = (step) => {   // the sparklines are asked for once the table has its numbers
    const r = showFirst(step);
    if (!sparksAsked) { sparksAsked = true; Promise.resolve(r).then(() => setTimeout(loadSparks, 0)); }
    return r;
  };
  return { el: p, show, render: () => { render(); show(view.step); } };
}

async function runPage(id) {
  setCrumbs([["runs", "#/"], [id, null]]);
  const main = $("#main");
  main.replaceChildren(el("div", { class: "empty" }, "loading…"));
  let detail, metrics = {};
  const metricsLoad = api("metrics", { run: id, max_points: 2000 });
  metricsLoad.catch(() => {});
  try {
    detail = await api("run", { run: id });
  } catch (e) {
    main.replaceChildren(el("div", { class: "run-head" }, el("h1", {}, id), badge("error")),
      errorCard(e.status === 403 ? "Refused" : "This run cannot be read", e.message));
    return;
  }
  const view = new RunView(id, detail, metrics);
  const chips = Object.entries(detail.config || {}).filter(([k]) => k !== "probe_layout").slice(0, 12)
    .map(([k, v]) => el("span", { class: "chip" }, `${k}=`, el("b", {}, typeof v === "object" ? JSON.stringify(v) : String(v))));
  const status = badge(detail.status); status.id = "run-status";
  const sub = el("div", { class: "run-sub", id: "run-sub" });
  const setSub = () => { sub.textContent = `${detail.streams.length} streams · steps ${detail.first_step}–${detail.last_step} · updated ${ago(detail.updated)}${detail.framework ? " · " + (detail.framework.name || "") : ""}`; };
  setSub();
  const slider = el("input", { type: "range", id: "slider", min: detail.first_step, max: Math.max(detail.last_step, detail.first_step), step: 1, value: detail.last_step });
  const play = el("button", { class: "btn", id: "play", title: "play / pause" }, "▶");
  const follow = el("input", { type: "checkbox", id: "follow" });
  follow.checked = detail.status === "running";
  const readout = el("span", { class: "step-readout", id: "step-readout" });
  const stepNote = el("span", { class: "step-note muted", id: "step-note" });
  main.replaceChildren(el("div", { class: "run-head" }, el("h1", {}, detail.name), status, el("span", { class: "muted mono" }, id),
    el("span", { class: "spacer" }), el("a", { href: `#/compare?${q({ runs: id })}` }, "compare with…")), sub,
    ...(chips.length ? [el("div", { class: "chips" }, chips)] : []),
    el("div", { class: "card stepbar" }, play, slider, readout, stepNote, el("label", {}, follow, "follow live")));
  const grid = el("div", { class: "grid" });
  main.append(grid);
  const makers = [metricsPanel, weightPanel, heatmapPanel, profilePanel, probePanel, layerTable, healthPanel];
  for (const make of makers) {
    try { const pn = make(view); if (pn) { view.panels.push(pn); grid.append(pn.el); } } catch (e) { grid.append(errorCard(`${make.name} failed`, e.message)); }
  }
  if (!detail.streams.length && !detail.metric_names.length) grid.append(el("div", { class: "card empty" }, "Nothing committed yet: waiting for the first steps…"));
  slider.oninput = () => { follow.checked = false; view.setStep(Number(slider.value), "slider"); };
  let timer = null;
  play.onclick = () => {
    if (timer) { clearInterval(timer); timer = null; play.textContent = "▶"; return; }
    play.textContent = "❚❚";
    const span = Math.max(1, view.d.last_step - view.d.first_step);
    const inc = Math.max(1, Math.round(span / 200));
    if (view.step >= view.d.last_step) view.setStep(view.d.first_step);
    timer = setInterval(() => {
      const next = Math.min(view.d.last_step, view.step + inc);
      view.setStep(next);
      if (next >= view.d.last_step) { clearInterval(timer); timer = null; play.textContent = "▶"; }
    }, 80);
  };
  state.cleanup.push(() => timer && clearInterval(timer));
  view.setStep(detail.last_step);
  metricsLoad.then((m) => { view.metrics = m; view.metricsLoaded = true; view.setStep(view.step); })
    .catch((e) => grid.prepend(errorCard("Cannot load the metrics", e.message)));
  let resize = null;
  const onResize = () => { clearTimeout(resize); resize = setTimeout(() => view.setStep(view.step), 120); };
  window.addEventListener("resize", onResize);
  state.cleanup.push(() => window.removeEventListener("resize", onResize));
  document.body.dataset.ready = "run";

  listen(`/api/events?${q({ run: id, since: detail.last_step, seq: detail.seq })}`, {
    update: (m) => {
      for (const [n, s] of Object.entries(m.metrics)) {
        const cur = view.metrics[n] || (view.metrics[n] = { step: [], value: [] });
        cur.step.push(...s.step); cur.value.push(...s.value);
        if (!view.d.metric_names.includes(n)) view.d.metric_names.push(n);
      }
      for (const [n, row] of Object.entries(m.streams)) {
        const old = view.streams[n];
        const spark = old && old.norm_spark ? old.norm_spark : { step: [], value: [] };
        spark.step.push(...row.new_norm.step); spark.value.push(...row.new_norm.value);
        row.norm_spark = spark;
        if (old) Object.assign(old, row); else { view.streams[n] = row; view.d.streams.push(row); }
      }
      view.d.last_step = Math.max(view.d.last_step, m.last_step);
      view.d.seq = m.seq; view.d.status = m.status; view.d.updated = m.updated || view.d.updated;
      detail.last_step = view.d.last_step; detail.updated = view.d.updated;
      status.replaceWith(Object.assign(badge(m.status), { id: "run-status" }));
      setSub();
      slider.max = view.d.last_step;
      for (const pn of view.panels) { if (pn.render && Object.keys(m.streams).length) pn.render(); if (pn.live) pn.live(); }
      view.setStep(follow.checked ? view.d.last_step : view.step);
    },
    failure: (m) => { sub.textContent = `live update failed: ${m.error}`; },
  });
}

/* ------------------------------------------------------------------ compare page */
async function comparePage(params) {
  const ids = (params.get("runs") || "").split(",").filter(Boolean);
  setCrumbs([["runs", "#/"], ["compare", null]]);
  const main = $("#main");
  const all = (await api("runs")).runs;
  const picker = el("div", { class: "chips" }, ...all.map((r) => {
    const box = el("input", { type: "checkbox" }); box.checked = ids.includes(r.id);
    box.onchange = () => {
      const next = box.checked ? [...ids, r.id] : ids.filter((x) => x !== r.id);
      location.hash = `#/compare?${q({ runs: next.join(",") })}`;
    };
    return el("label", { class: "chip" }, box, " ", r.id);
  }));
  main.replaceChildren(el("div", { class: "toolbar" }, el("h1", {}, "Compare runs")), picker);
  if (!ids.length) { main.append(el("div", { class: "card empty" }, "Pick runs above to overlay their metrics.")); return; }
  const loaded = await Promise.all(ids.map(async (id) => {
    try { return { id, d: await api("run", { run: id }), m: await api("metrics", { run: id, max_points: 2000 }) }; } catch (e) { return { id, error: e.message }; }
  }));
  const ok = loaded.filter((r) => !r.error);
  loaded.filter((r) => r.error).forEach((r) => main.append(errorCard(`${r.id} cannot be read`, r.error)));
  const color = (i) => Charts.PALETTE[i % 8];
  const legend = el("div", { class: "legend" }, ...ok.map((r, i) => el("span", {}, el("i", { style: `background:${color(i)}` }), r.id)));
  const names = [...new Set(ok.flatMap((r) => r.d.metric_names))];
  const grid = el("div", { class: "grid" });
  main.append(legend, grid);
  const mp = panel("Metrics, overlaid", { key: "cmp-metrics", wide: true });
  grid.append(mp);
  const xmax = Math.max(...ok.map((r) => r.d.last_step), 1);
  names.forEach((n) => {
    const c = el("canvas");
    mp.body.append(el("div", { class: "legend" }, n), c);
    requestAnimationFrame(() => Charts.line(c, ok.filter((r) => r.m[n]).map((r) => ({ x: r.m[n].step, y: r.m[n].value, color: color(ok.indexOf(r)) })), { height: 170, xmin: 0, xmax }));
  });
  // weight streams first (largest first), then the other full 2-D streams: probes and
  // activations are per probe row / example, not an image of the layer
  const rank = (s) => (s.kind === "weights" ? 0 : 1);
  const images = ok.map((r) => r.d.streams.filter((s) => s.capture === "full" && s.shape.length >= 2 && s.kind !== "inputs")
    .sort((a, b) => rank(a) - rank(b) || b.shape.reduce((x, y) => x * y, 1) - a.shape.reduce((x, y) => x * y, 1)).map((s) => s.name));
  if (!images.some((l) => l.length)) return;
  const common = images[0].find((n) => images.every((l) => l.includes(n)));
  const slider = el("input", { type: "range", min: 0, max: xmax, value: xmax, step: 1, id: "cmp-slider" });
  const readout = el("span", { class: "step-readout" });
  const side = panel("Weight images, side by side", { key: "cmp-side", wide: true });
  const row = el("div", { class: "compare-grid" });
  side.body.append(el("div", { class: "stepbar", style: "position:static;padding:0 0 10px" }, slider, readout), row);
  grid.append(side);
  const cells = ok.map((r, i) => {
    const c = el("canvas", { "data-run": r.id }), cap = el("div", { class: "legend" });
    const sel = el("select", { "data-run": r.id }, ...images[i].map((n) => el("option", { value: n }, n)));
    if (common) sel.value = common;
    row.append(el("div", {}, el("div", { class: "panel-head" }, el("span", { class: "swatch", style: `background:${color(i)}` }), el("b", {}, r.id), el("span", { class: "spacer" }), sel),
      el("div", { class: "imgwrap" }, c), cap));
    sel.onchange = () => draw();
    return { r, c, cap, sel };
  });
  const draw = async () => {
    const step = Number(slider.value);
    readout.textContent = `step ${step}`; side.stepLabel.textContent = `step ${step}`;
    await Promise.all(cells.filter((x) => x.sel.value).map(async ({ r, c, cap, sel }) => {
      const t = await apiBinary("tensor", { run: r.id, stream: sel.value, step, as: "u8" });
      const L = Charts.tensorImage(c, t.data, t.shape, Number(t.headers.get("X-Scale")) || 1);
      const scale = Math.min((row.clientWidth / cells.length - 40) / L.width, 300 / L.height, 48);
      c.style.width = `${Math.floor(L.width * (scale >= 3 ? Math.floor(scale) : scale))}px`;
      cap.textContent = `${sel.value} · ${t.shape.join("×")} · recorded step ${t.headers.get("X-Step")}`;
      c.dataset.step = t.headers.get("X-Step"); c.dataset.stream = sel.value;
    }));
  };
  slider.oninput = draw;
  await draw();
}

/* ------------------------------------------------------------------ router */
async function route() {
  teardown();
  delete document.body.dataset.ready;
  const hash = location.hash.slice(1) || "/";
  const [path, query] = hash.split("?");
  try {
    if (path.startsWith("/run/")) await runPage(decodeURIComponent(path.slice(5)));
    else if (path === "/compare") await comparePage(new URLSearchParams(query || ""));
    else await runsPage();
  } catch (e) {
    $("#main").replaceChildren(errorCard("Something went wrong", e.message));
  }
  if (!document.body.dataset.ready) document.body.dataset.ready = path.split("/")[1] || "runs";
}

$("#theme").onclick = () => {
  const root = document.documentElement;
  const dark = root.dataset.theme ? root.dataset.theme === "dark" : matchMedia("(prefers-color-scheme: dark)").matches;
  root.dataset.theme = dark ? "light" : "dark";
  localStorage.setItem("netlapse-theme", root.dataset.theme);
  route();
};
window.addEventListener("hashchange", route);
route();
