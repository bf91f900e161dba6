/* The doctor on the dashboard: a health panel on the run page (each finding with its layers,
   evidence and advice, a link to its first step, and its view drawn by specdraw.js) and a
   health badge per run on the runs page. Both read /api/health (nl.diagnose of the committed
   steps) and refresh while the run trains. Uses app.js's el/api/panel helpers. */

const HEALTH_EVERY_MS = 2000;   // a training run's report is fetched again at most this often

function healthText(h) {
  if (h.problems) return `${h.problems} problem${h.problems > 1 ? "s" : ""}`;
  if (h.warnings) return `${h.warnings} warning${h.warnings > 1 ? "s" : ""}`;
  return "healthy";
}

const healthAsked = new Map();   // run id + last update -> the badge request (runs page redraws)

function healthBadge(r) {
  const b = el("span", { class: "health-badge pending", "data-health": "pending" }, "…");
  if (r.status === "error") { b.textContent = "–"; return b; }
  const key = `${r.id}\u0000${r.updated}\u0000${r.last_step}`;
  if (!healthAsked.has(key)) healthAsked.set(key, api("health", { run: r.id, badge: 1 }));
  healthAsked.get(key).then((h) => {
    const cls = h.problems ? "problem" : h.warnings ? "warning" : "healthy";
    b.className = `health-badge ${cls}`;
    b.dataset.health = cls;
    b.textContent = healthText(h);
    b.title = h.kinds.length ? h.kinds.join(", ") : "no finding (netlapse doctor)";
  }).catch((e) => { b.className = "health-badge unknown"; b.dataset.health = "unknown"; b.textContent = "?"; b.title = e.message; });
  return b;
}

function fmtEvidence(ev) {
  return Object.entries(ev).filter(([, v]) => v !== null && typeof v !== "object")
    .slice(0, 5).map(([k, v]) => `${k.replace(/_/g, " ")} ${typeof v === "number" ? Charts.fmt(v) : v}`).join(" · ");
}

function shortLayers(streams) {
  const names = streams.map((s) => s.split("/").slice(1).join("/"));
  return names.length > 4 ? `${names.slice(0, 3).join(", ")} +${names.length - 3} more` : names.join(", ");
}

function healthPanel(view) {
  const p = panel("Health", { key: "health", wide: true });
  const head = el("div", { class: "health-head" });
  const list = el("div", { class: "health-list" });
  p.body.append(head, list);
  let shownSeq = null, busy = false, last = 0, again = null, atStep = null, pending = [], drawing = false, seen = false;
  // at the slider's step: findings not begun yet are dimmed (their first step is later)
  const mark = () => {
    if (atStep === null) return;
    p.stepLabel.textContent = `step ${atStep}`;
    for (const row of list.querySelectorAll(".finding")) row.classList.toggle("later", Number(row.dataset.first) > atStep);
  };

  const drawView = async (c, note, i) => {
    try {
      const f = await api("health_view", { run: view.id, i });
      c.axes = NetlapseSpec.render(c, f, f.spec, 100);
      c.frame = f;
      c.dataset.step = f.step;
      c.dataset.drawn = "1";
    } catch (e) { note.textContent = e.message; c.dataset.error = e.message; }
  };

  const render = (h) => {
    head.replaceChildren(el("span", { class: `health-badge ${h.problems ? "problem" : h.warnings ? "warning" : "healthy"}` }, healthText(h)),
      el("span", { class: "muted" }, ` steps ${h.steps[0] ?? "–"}–${h.steps[1] ?? "–"} · checked: ${h.checked.join(", ") || "nothing"}`),
      ...(h.skipped.length ? [el("div", { class: "muted health-skipped" }, "not checked: " + h.skipped.map((s) => `${s.instrument} (${s.why})`).join("; "))] : []));
    p.dataset.findings = h.findings.length;
    p.dataset.problems = h.problems;
    if (!h.findings.length) {
      list.replaceChildren(el("div", { class: "empty" }, "No finding: nothing looks wrong with this training (netlapse doctor)."));
      return;
    }
    pending = [];
    list.replaceChildren(...h.findings.map((f, i) => {
      const go = el("a", { href: "#", class: "health-step", "data-step": f.first_step }, `since step ${f.first_step}`);
      go.onclick = (ev) => {
        ev.preventDefault();
        const follow = $("#follow"); if (follow) follow.checked = false;
        view.setStep(f.first_step);
      };
      const c = el("canvas", { class: "spec-canvas health-canvas", "data-view": f.view.name || "" });
      const note = el("div", { class: "legend" });
      const row = el("div", { class: `finding ${f.severity}`, "data-kind": f.kind, "data-severity": f.severity, "data-first": f.first_step },
        el("div", { class: "finding-text" },
          el("div", {}, el("span", { class: `health-badge ${f.severity}` }, f.severity), " ",
            el("b", {}, f.kind), " in ", el("span", { class: "mono" }, shortLayers(f.streams)), " · ", go),
          el("div", { class: "muted mono" }, fmtEvidence(f.evidence)),
          el("div", {}, f.advice),
          el("div", { class: "muted mono" }, `netlapse render RUN ${f.view.name} ${Object.entries(f.view.args || {}).map(([k, v]) => `--${k} ${v}`).join(" ")} --out ${f.kind}.png`)),
        el("div", { class: "finding-view" }, c, note));
      if (f.view.name) pending.push(() => drawView(c, note, i));
      return row;
    }));
    mark();
    drawPending();
  };
  // the views are drawn one after the other (each is a request the server computes), after
  // the report, so the panel never competes with the other panels' requests all at once
  const drawPending = async () => {
    if (drawing) return;
    drawing = true;
    while (pending.length) await pending.shift()();
    drawing = false;
  };

  const load = async () => {
    if (busy) return;
    busy = true; last = Date.now();
    try {
      const h = await api("health", { run: view.id });
      shownSeq = view.d.seq;
      render(h);
      p.dataset.seq = shownSeq;
    } catch (e) { list.replaceChildren(el("div", { class: "muted" }, e.message)); p.dataset.error = e.message; }
    busy = false;
  };
  // the report is asked for once the panel scrolls into view (it sits below the others)
  new IntersectionObserver((entries, obs) => {
    if (entries.some((e) => e.isIntersecting)) { obs.disconnect(); seen = true; load(); }
  }).observe(p);
  return {
    el: p, show(step) { atStep = step; mark(); },
    live() {   // new steps committed: a fresh report, at most every HEALTH_EVERY_MS
      if (!seen || view.d.seq === shownSeq || again) return;
      const wait = Math.max(0, HEALTH_EVERY_MS - (Date.now() - last));
      again = setTimeout(() => { again = null; load(); }, wait);
    },
  };
}
