/* netlapse charts: small canvas drawing helpers (lines, sparklines, heatmaps, images, bars, scatter). */
"use strict";

const Charts = (() => {
  const PALETTE = ["#3b6fd8", "#e0533a", "#1f9d55", "#9b59b6", "#c27c0e", "#17a2b8", "#d63384", "#6c757d"];

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  /* Size a canvas to its CSS box times devicePixelRatio; returns a context in CSS pixels. */
  function fit(canvas, height) {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(10, canvas.clientWidth || canvas.parentElement.clientWidth);
    const h = height || canvas.clientHeight || 200;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
      canvas.style.height = h + "px";
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    return { ctx, w, h };
  }

  function niceTicks(lo, hi, n) {
    if (!isFinite(lo) || !isFinite(hi)) return [];
    if (hi === lo) { hi = lo + 1; }
    const span = hi - lo;
    const raw = span / Math.max(1, n);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= n) || 10 * mag;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
    return out;
  }

  function fmt(v) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    const a = Math.abs(v);
    if (a === 0) return "0";
    if (a >= 1e5 || a < 1e-3) return v.toExponential(1);
    if (a >= 100) return v.toFixed(0);
    if (a >= 1) return v.toFixed(2).replace(/\.?0+$/, "");
    return v.toPrecision(2);
  }

  /* Tick labels: as many decimals as the tick spacing needs, so neighbours never read the same. */
  function fmtTicks(ticks) {
    if (ticks.length < 2) return ticks.map(fmt);
    const step = Math.abs(ticks[1] - ticks[0]);
    const big = Math.max(...ticks.map(Math.abs));
    if (!(step > 0) || big >= 1e5 || big < 1e-3) return ticks.map(fmt);
    const dec = Math.max(0, Math.min(8, -Math.floor(Math.log10(step) + 1e-9)));
    const out = ticks.map((t) => (Math.abs(t) < step * 1e-6 ? "0" : t.toFixed(dec)));
    return new Set(out).size === out.length ? out : ticks.map(fmt);
  }

  function fmtStep(v) {
    if (Math.abs(v) >= 10000) return (v / 1000).toFixed(v % 1000 ? 1 : 0) + "k";
    return String(Math.round(v));
  }

  function extent(arrays) {
    let lo = Infinity, hi = -Infinity;
    for (const a of arrays) for (const v of a) { if (v !== null && isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; } }
    return [lo, hi];
  }

  /* series: [{x: [...], y: [...], color, label}]; opts: {cursor, xmin, xmax, height, logY} */
  function line(canvas, series, opts = {}) {
    const { ctx, w, h } = fit(canvas, opts.height || 180);
    const pad = { l: 52, r: 12, t: 8, b: 24 };
    const tr = (v) => (opts.logY ? (v > 0 ? Math.log10(v) : null) : v);
    const ys = series.map((s) => s.y.map((v) => (v === null ? null : tr(v))));
    let [xlo, xhi] = extent(series.map((s) => s.x));
    if (opts.xmin !== undefined) xlo = opts.xmin;
    if (opts.xmax !== undefined) xhi = Math.max(opts.xmax, xlo + 1);
    let [ylo, yhi] = extent(ys);
    if (!isFinite(xlo)) { xlo = 0; xhi = 1; }
    if (!isFinite(ylo)) { ylo = 0; yhi = 1; }
    if (yhi === ylo) { yhi += Math.abs(yhi) * 0.1 || 1; ylo -= Math.abs(ylo) * 0.1 || 1; }
    const ypad = (yhi - ylo) * 0.06; ylo -= ypad; yhi += ypad;
    if (xhi === xlo) xhi = xlo + 1;
    const X = (v) => pad.l + ((v - xlo) / (xhi - xlo)) * (w - pad.l - pad.r);
    const Y = (v) => h - pad.b - ((v - ylo) / (yhi - ylo)) * (h - pad.t - pad.b);
    ctx.font = "11px system-ui, sans-serif";
    ctx.lineWidth = 1;
    ctx.strokeStyle = css("--grid");
    ctx.fillStyle = css("--muted");
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    const yt = niceTicks(ylo, yhi, 4), ylabels = fmtTicks(yt);
    yt.forEach((t, k) => {
      const y = Math.round(Y(t)) + 0.5;
      ctx.beginPath(); ctx.moveTo(pad.l, y); ctx.lineTo(w - pad.r, y); ctx.stroke();
      ctx.fillText(opts.logY ? "1e" + fmt(t) : ylabels[k], pad.l - 6, y);
    });
    ctx.textAlign = "center"; ctx.textBaseline = "top";
    for (const t of niceTicks(xlo, xhi, Math.max(2, Math.floor((w - 80) / 90)))) {
      const x = Math.round(X(t)) + 0.5;
      ctx.beginPath(); ctx.moveTo(x, pad.t); ctx.lineTo(x, h - pad.b); ctx.stroke();
      const label = fmtStep(t), half = ctx.measureText(label).width / 2;   // keep the last label inside
      ctx.fillText(label, Math.min(x, w - half - 1), h - pad.b + 5);
    }
    ctx.save();
    ctx.beginPath(); ctx.rect(pad.l, pad.t, w - pad.l - pad.r, h - pad.t - pad.b); ctx.clip();
    series.forEach((s, k) => {
      ctx.strokeStyle = s.color || PALETTE[k % PALETTE.length];
      ctx.lineWidth = 1.5; ctx.lineJoin = "round";
      ctx.beginPath();
      let pen = false;
      const yy = ys[k];
      for (let i = 0; i < s.x.length; i++) {
        if (yy[i] === null || !isFinite(yy[i])) { pen = false; continue; }
        const px = X(s.x[i]), py = Y(yy[i]);
        if (pen) ctx.lineTo(px, py); else { ctx.moveTo(px, py); pen = true; }
      }
      ctx.stroke();
    });
    ctx.restore();
    const cursor = (step) => {
      if (step === undefined || step === null) return;
      const x = Math.round(X(step)) + 0.5;
      ctx.strokeStyle = css("--cursor"); ctx.lineWidth = 1; ctx.setLineDash([3, 3]);
      ctx.beginPath(); ctx.moveTo(x, pad.t); ctx.lineTo(x, h - pad.b); ctx.stroke();
      ctx.setLineDash([]);
    };
    cursor(opts.cursor);
    return { X, Y, pad, cursor };
  }

  /* Draw a chart once (base) and, while its key is unchanged, only blit it and draw the overlay:
     moving the step cursor does not redraw thousands of points. */
  function layered(canvas, store, key, base) {
    const w = canvas.clientWidth;
    if (store.key !== key || store.w !== w || !store.img) {
      store.painter = base();
      store.img = document.createElement("canvas");
      store.img.width = canvas.width; store.img.height = canvas.height;
      store.img.getContext("2d").drawImage(canvas, 0, 0);
      store.key = key; store.w = w;
      return store.painter;
    }
    const ctx = canvas.getContext("2d");
    ctx.save(); ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height); ctx.drawImage(store.img, 0, 0);
    ctx.restore();
    return store.painter;
  }

  function spark(canvas, x, y, color, width = 110, height = 26) {
    canvas.style.width = width + "px";
    const { ctx, w, h } = fit(canvas, height);
    const pts = [];
    for (let i = 0; i < y.length; i++) if (y[i] !== null && isFinite(y[i])) pts.push([x[i], y[i]]);
    if (pts.length < 2) return;
    const [xlo, xhi] = [pts[0][0], pts[pts.length - 1][0]];
    let ylo = Infinity, yhi = -Infinity;
    for (const p of pts) { ylo = Math.min(ylo, p[1]); yhi = Math.max(yhi, p[1]); }
    if (yhi === ylo) { yhi += 1; ylo -= 1; }
    ctx.strokeStyle = color || css("--accent"); ctx.lineWidth = 1.3;
    ctx.beginPath();
    pts.forEach(([px, py], i) => {
      const X = 1 + ((px - xlo) / (xhi - xlo || 1)) * (w - 2);
      const Y = h - 2 - ((py - ylo) / (yhi - ylo)) * (h - 4);
      if (i) ctx.lineTo(X, Y); else ctx.moveTo(X, Y);
    });
    ctx.stroke();
  }

  /* colour maps as 256-entry RGB lookup tables */
  function lut(stops) {
    const out = new Uint8Array(256 * 3);
    for (let i = 0; i < 256; i++) {
      const t = i / 255 * (stops.length - 1);
      const k = Math.min(stops.length - 2, Math.floor(t));
      const f = t - k;
      for (let c = 0; c < 3; c++) out[i * 3 + c] = Math.round(stops[k][c] * (1 - f) + stops[k + 1][c] * f);
    }
    return out;
  }
  const DIVERGING = lut([[5, 48, 97], [33, 102, 172], [67, 147, 195], [146, 197, 222], [209, 229, 240],
    [247, 247, 247], [253, 219, 199], [244, 165, 130], [214, 96, 77], [178, 24, 43], [103, 0, 31]]);
  const SEQUENTIAL = lut([[13, 8, 135], [84, 2, 163], [139, 10, 165], [185, 50, 137], [219, 92, 104],
    [244, 136, 73], [254, 188, 43], [240, 249, 33]]);

  function colorbar(canvas, map) {
    canvas.width = 256; canvas.height = 1;
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(256, 1);
    for (let i = 0; i < 256; i++) {
      img.data[i * 4] = map[i * 3]; img.data[i * 4 + 1] = map[i * 3 + 1];
      img.data[i * 4 + 2] = map[i * 3 + 2]; img.data[i * 4 + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }

  /* How to lay a 2-D weight (out, in) on screen: tiles when `in` is a square (28x28 per unit). */
  function imageLayout(shape) {
    let rows = shape.length >= 2 ? shape[0] : 1;
    let cols = shape.length >= 2 ? shape.slice(1).reduce((a, b) => a * b, 1) : shape[0] || 1;
    const side = Math.round(Math.sqrt(cols));
    if (shape.length === 2 && side * side === cols && side >= 5 && rows >= 2 && rows <= 4096) {
      let gx = Math.ceil(Math.sqrt(rows * 2));   // about twice as wide as high...
      for (let g = Math.ceil(Math.sqrt(rows)); g <= gx; g++) if (rows % g === 0) { gx = g; break; }   // ...with no gaps if a divisor allows
      const gy = Math.ceil(rows / gx);
      return { tiles: true, side, gx, gy, width: gx * (side + 1) - 1, height: gy * (side + 1) - 1, rows, cols };
    }
    return { tiles: false, width: cols, height: rows, rows, cols };
  }

  /* Draw a tensor as an image with a symmetric diverging scale [-absmax, absmax]. `data` holds
     float values, or (a Uint8Array) colour codes the server already put on that scale. */
  function tensorImage(canvas, data, shape, absmax, bg) {
    const codes = data instanceof Uint8Array;
    const L = imageLayout(shape);
    if (canvas.width !== L.width || canvas.height !== L.height) { canvas.width = L.width; canvas.height = L.height; }
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(L.width, L.height);
    const px = img.data;
    const s = absmax > 0 ? 127.5 / absmax : 0;
    const bgc = bg || [0, 0, 0, 0];
    if (L.tiles) {
      for (let i = 0; i < px.length; i += 4) { px[i] = bgc[0]; px[i + 1] = bgc[1]; px[i + 2] = bgc[2]; px[i + 3] = bgc[3]; }
      const side = L.side, stride = L.width * 4;
      for (let r = 0; r < L.rows; r++) {
        const ox = (r % L.gx) * (side + 1), oy = Math.floor(r / L.gx) * (side + 1);
        let src = r * L.cols;
        for (let yy = 0; yy < side; yy++) {
          let o = (oy + yy) * stride + ox * 4;
          for (let xx = 0; xx < side; xx++, src++, o += 4) {
            let k;
            if (codes) k = data[src];
            else { const v = data[src]; k = v === v ? Math.round(127.5 + v * s) : 128; k = k < 0 ? 0 : k > 255 ? 255 : k; }
            px[o] = DIVERGING[k * 3]; px[o + 1] = DIVERGING[k * 3 + 1]; px[o + 2] = DIVERGING[k * 3 + 2]; px[o + 3] = 255;
          }
        }
      }
    } else {
      const n = L.width * L.height;
      for (let i = 0, o = 0; i < n; i++, o += 4) {
        let k;
        if (codes) k = data[i];
        else { const v = data[i]; k = v === v ? Math.round(127.5 + v * s) : 128; k = k < 0 ? 0 : k > 255 ? 255 : k; }
        px[o] = DIVERGING[k * 3]; px[o + 1] = DIVERGING[k * 3 + 1]; px[o + 2] = DIVERGING[k * 3 + 2]; px[o + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
    return L;
  }

  /* Histogram rows over steps: x = step index, y = value bins (low at bottom). */
  function heatmap(canvas, rows, nrows, bins, steps, lo, hi, cursor) {
    const { ctx, w, h } = fit(canvas, 190);
    const pad = { l: 52, r: 12, t: 6, b: 24 };
    if (!nrows) return;
    const off = document.createElement("canvas");
    off.width = nrows; off.height = bins;
    const octx = off.getContext("2d");
    const img = octx.createImageData(nrows, bins);
    for (let r = 0; r < nrows; r++) {
      let mx = 0;
      for (let b = 0; b < bins; b++) mx = Math.max(mx, rows[r * bins + b]);
      for (let b = 0; b < bins; b++) {
        const v = mx > 0 ? Math.sqrt(rows[r * bins + b] / mx) : 0;
        const k = Math.round(v * 255);
        const o = ((bins - 1 - b) * nrows + r) * 4;
        img.data[o] = SEQUENTIAL[k * 3]; img.data[o + 1] = SEQUENTIAL[k * 3 + 1];
        img.data[o + 2] = SEQUENTIAL[k * 3 + 2]; img.data[o + 3] = 255;
      }
    }
    octx.putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(off, pad.l, pad.t, w - pad.l - pad.r, h - pad.t - pad.b);
    ctx.font = "11px system-ui, sans-serif"; ctx.fillStyle = css("--muted");
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    const Y = (v) => h - pad.b - ((v - lo) / (hi - lo)) * (h - pad.t - pad.b);
    for (const t of niceTicks(lo, hi, 4)) ctx.fillText(fmt(t), pad.l - 6, Y(t));
    const s0 = steps[0], s1 = steps[steps.length - 1] || s0 + 1;
    const X = (v) => pad.l + ((v - s0) / Math.max(1, s1 - s0)) * (w - pad.l - pad.r);
    ctx.textAlign = "center"; ctx.textBaseline = "top";
    for (const t of niceTicks(s0, s1, Math.max(2, Math.floor((w - 80) / 90)))) ctx.fillText(fmtStep(t), X(t), h - pad.b + 5);
    const mark = (step) => {
      if (step === undefined || step === null) return;
      const x = Math.round(X(Math.min(Math.max(step, s0), s1))) + 0.5;
      ctx.strokeStyle = "#ffffff"; ctx.lineWidth = 1; ctx.setLineDash([3, 3]);
      ctx.beginPath(); ctx.moveTo(x, pad.t); ctx.lineTo(x, h - pad.b); ctx.stroke(); ctx.setLineDash([]);
    };
    mark(cursor);
    return { cursor: mark };
  }

  /* groups: [{label, color, values: [{name, value}]}] drawn as grouped bars, one group per series */
  function bars(canvas, names, series, opts = {}) {
    const { ctx, w, h } = fit(canvas, opts.height || 190);
    const pad = { l: 52, r: 12, t: 8, b: 44 };
    const all = series.flatMap((s) => s.values.filter((v) => v !== null && v > 0));
    if (!names.length || !all.length) return;
    let lo = Math.log10(Math.min(...all)), hi = Math.log10(Math.max(...all));
    lo = Math.floor(lo); hi = Math.ceil(hi); if (hi === lo) hi = lo + 1;
    const Y = (v) => h - pad.b - ((Math.log10(v) - lo) / (hi - lo)) * (h - pad.t - pad.b);
    ctx.font = "11px system-ui, sans-serif"; ctx.strokeStyle = css("--grid"); ctx.fillStyle = css("--muted");
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    for (let e = lo; e <= hi; e++) {
      const y = Math.round(Y(Math.pow(10, e))) + 0.5;
      ctx.beginPath(); ctx.moveTo(pad.l, y); ctx.lineTo(w - pad.r, y); ctx.stroke();
      ctx.fillText("1e" + e, pad.l - 6, y);
    }
    const gw = (w - pad.l - pad.r) / names.length;
    const bw = Math.max(2, Math.min(22, (gw - 6) / series.length));
    names.forEach((nm, i) => {
      const gx = pad.l + i * gw + (gw - bw * series.length) / 2;
      series.forEach((s, k) => {
        const v = s.values[i];
        if (v === null || !(v > 0)) return;
        ctx.fillStyle = s.color;
        const y = Y(v);
        ctx.fillRect(gx + k * bw, y, bw - 1, h - pad.b - y);
      });
      ctx.save(); ctx.fillStyle = css("--muted"); ctx.textAlign = "right"; ctx.textBaseline = "middle";
      ctx.translate(pad.l + i * gw + gw / 2, h - pad.b + 6); ctx.rotate(-Math.PI / 6);
      const label = nm.length > 14 ? "…" + nm.slice(-13) : nm;
      ctx.fillText(label, 0, 0); ctx.restore();
    });
  }

  /* points: x, y arrays; colors: per-point colour; lines: optional [{x, y, color}] */
  function scatter(canvas, pts, lines, opts = {}) {
    const { ctx, w, h } = fit(canvas, opts.height || 240);
    const pad = { l: 44, r: 12, t: 8, b: 24 };
    const xs = [pts.x, ...(lines || []).map((l) => l.x)], ys = [pts.y, ...(lines || []).map((l) => l.y)];
    let [xlo, xhi] = extent(xs), [ylo, yhi] = extent(ys);
    if (opts.fixed) { [xlo, xhi, ylo, yhi] = opts.fixed; }
    if (!isFinite(xlo)) return;
    if (xhi === xlo) xhi = xlo + 1; if (yhi === ylo) yhi = ylo + 1;
    const mx = (xhi - xlo) * 0.05, my = (yhi - ylo) * 0.05;
    xlo -= mx; xhi += mx; ylo -= my; yhi += my;
    const X = (v) => pad.l + ((v - xlo) / (xhi - xlo)) * (w - pad.l - pad.r);
    const Y = (v) => h - pad.b - ((v - ylo) / (yhi - ylo)) * (h - pad.t - pad.b);
    ctx.font = "11px system-ui, sans-serif"; ctx.strokeStyle = css("--grid"); ctx.fillStyle = css("--muted");
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    for (const t of niceTicks(ylo, yhi, 4)) { const y = Math.round(Y(t)) + .5; ctx.beginPath(); ctx.moveTo(pad.l, y); ctx.lineTo(w - pad.r, y); ctx.stroke(); ctx.fillText(fmt(t), pad.l - 6, y); }
    ctx.textAlign = "center"; ctx.textBaseline = "top";
    for (const t of niceTicks(xlo, xhi, 5)) ctx.fillText(fmt(t), X(t), h - pad.b + 5);
    for (let i = 0; i < pts.x.length; i++) {
      ctx.fillStyle = pts.colors ? pts.colors[i] : css("--muted");
      ctx.beginPath(); ctx.arc(X(pts.x[i]), Y(pts.y[i]), opts.r || 2.2, 0, 2 * Math.PI); ctx.fill();
    }
    for (const l of lines || []) {
      ctx.strokeStyle = l.color; ctx.lineWidth = 2; ctx.beginPath();
      l.x.forEach((v, i) => (i ? ctx.lineTo(X(v), Y(l.y[i])) : ctx.moveTo(X(v), Y(l.y[i]))));
      ctx.stroke();
    }
  }

  return { PALETTE, css, fit, line, layered, spark, tensorImage, imageLayout, heatmap, bars, scatter, colorbar,
    DIVERGING, SEQUENTIAL, fmt, fmtStep };
})();
