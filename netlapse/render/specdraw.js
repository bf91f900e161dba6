// netlapse spec drawing: one frame's spec (panels of lines, scatters, images; see
// netlapse/render/spec.py) drawn on a canvas. Used by the HTML player and the dashboard.
var NetlapseSpec = (function () {
  "use strict";

  function b64bytes(s) {
    const bin = atob(s), out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  let doc = null, cache = new Map(), luts = {};
  /* Use `d` ({arrays, cmaps}: what render.html packs) for the arrays and colormaps that specs
     refer to. Returns the previous document's state so that two documents can take turns. */
  function use(d) {
    if (d === doc) return;
    doc = d; cache = d._cache || (d._cache = new Map());
    luts = d._luts || (d._luts = {});
    for (const name in d.cmaps || {}) if (!luts[name]) luts[name] = b64bytes(d.cmaps[name]);
  }
  function arr(ref) {            // decode a table entry to {shape, data: Float64Array}
    if (cache.has(ref)) return cache.get(ref);
    const d = doc.arrays[ref], bytes = b64bytes(d.b64);
    const q = d.bits === 16 ? new Uint16Array(bytes.buffer) : bytes;
    const top = d.bits === 16 ? 65534 : 254, span = d.hi - d.lo, k = span ? span / top : 0;
    const data = new Float64Array(q.length);
    for (let i = 0; i < q.length; i++) data[i] = q[i] === top + 1 ? NaN : d.lo + q[i] * k;
    const out = {shape: d.shape, data: data, q: q, top: top, lo: d.lo, hi: d.hi};
    cache.set(ref, out);
    return out;
  }
  function val(v) { return v && typeof v === "object" && "$a" in v ? arr(v.$a) : v; }

  function niceTicks(lo, hi, n) {
    const span = hi - lo;
    if (!(span > 0)) return [lo];
    const raw = span / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map(m => m * mag).find(s => span / s <= n) || 10 * mag;
    const out = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Math.abs(t) < step * 1e-9 ? 0 : t);
    return out;
  }
  function fmt(t) {
    const a = Math.abs(t);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return t.toExponential(0);
    return String(+t.toPrecision(4));
  }

  function Axes(ctx, p, box) {
    const log = p.yscale === "log";
    let [x0, x1] = p.xlim || [0, 1], [y0, y1] = p.ylim || [0, 1];
    let {left, top, width, height} = box;
    if (p.aspect === "equal") {
      const sx = width / Math.abs(x1 - x0), sy = height / Math.abs(y1 - y0), s = Math.min(sx, sy);
      const w = s * Math.abs(x1 - x0), h = s * Math.abs(y1 - y0);
      left += (width - w) / 2; top += (height - h) / 2; width = w; height = h;
    }
    const ty = v => log ? Math.log10(v) : v;
    const Y0 = ty(y0), Y1 = ty(y1);
    return {
      left, top, width, height, log, x0, x1, y0, y1,
      X: x => left + (x - x0) / (x1 - x0) * width,
      Y: y => top + height - (ty(y) - Y0) / (Y1 - Y0) * height,
    };
  }

  function drawItem(ctx, ax, it) {
    ctx.save();
    ctx.globalAlpha = it.alpha == null ? 1 : it.alpha;   // images too: regions under the points
    if (it.kind === "line") {
      const x = val(it.x).data, y = val(it.y).data;
      ctx.strokeStyle = it.color; ctx.lineWidth = it.width * 1.1;
      ctx.setLineDash(it.style === "--" ? [6, 4] : it.style === ":" ? [2, 3] : []);
      ctx.beginPath();
      let pen = false;
      for (let i = 0; i < x.length; i++) {
        if (!isFinite(x[i]) || !isFinite(y[i]) || (ax.log && y[i] <= 0)) { pen = false; continue; }
        const px = ax.X(x[i]), py = ax.Y(y[i]);
        if (pen) ctx.lineTo(px, py); else ctx.moveTo(px, py);
        pen = true;
      }
      if (it.width > 0 && it.style !== "") ctx.stroke();
      if (it.marker) {
        ctx.fillStyle = it.color;
        for (let i = 0; i < x.length; i++) if (isFinite(y[i]) && (!ax.log || y[i] > 0)) {
          ctx.beginPath(); ctx.arc(ax.X(x[i]), ax.Y(y[i]), 3, 0, 2 * Math.PI); ctx.fill();
        }
      }
    } else if (it.kind === "lines") {
      const s = val(it.segs), [K, P] = s.shape, d = s.data;
      ctx.strokeStyle = it.color; ctx.lineWidth = it.width;
      ctx.beginPath();
      for (let k = 0; k < K; k++) {
        let pen = false;
        for (let i = 0; i < P; i++) {
          const j = (k * P + i) * 2;
          if (!isFinite(d[j]) || !isFinite(d[j + 1])) { pen = false; continue; }
          const px = ax.X(d[j]), py = ax.Y(d[j + 1]);
          if (pen) ctx.lineTo(px, py); else ctx.moveTo(px, py);
          pen = true;
        }
      }
      ctx.stroke();
    } else if (it.kind === "scatter") {
      const xy = val(it.xy).data, cls = val(it.classes).data, r = Math.max(1.5, Math.sqrt(it.size) * 0.75);
      ctx.strokeStyle = "rgba(255,255,255,0.7)"; ctx.lineWidth = 0.4;
      for (let i = 0; i < cls.length; i++) {
        if (!isFinite(xy[2 * i]) || !isFinite(xy[2 * i + 1])) continue;
        const c = Math.round(cls[i]);
        ctx.fillStyle = it.palette[((c % it.palette.length) + it.palette.length) % it.palette.length];
        ctx.beginPath(); ctx.arc(ax.X(xy[2 * i]), ax.Y(xy[2 * i + 1]), r, 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
      }
    } else if (it.kind === "image") {
      const a = val(it.data), [H, W] = a.shape, lut = luts[it.cmap];
      const off = document.createElement("canvas"); off.width = W; off.height = H;
      const octx = off.getContext("2d"), img = octx.createImageData(W, H);
      const log = it.norm === "log";
      const lo = log ? Math.log10(it.vmin) : it.vmin, span = (log ? Math.log10(it.vmax) : it.vmax) - lo;
      for (let i = 0; i < H * W; i++) {
        const v = a.data[i];
        const t = it.encoded === "log10" ? v : log ? (v > 0 ? Math.log10(v) : NaN) : v;
        let k = span ? Math.round((t - lo) / span * 255) : 0;
        k = Math.max(0, Math.min(255, k));
        img.data[4 * i] = lut[3 * k]; img.data[4 * i + 1] = lut[3 * k + 1]; img.data[4 * i + 2] = lut[3 * k + 2];
        img.data[4 * i + 3] = isFinite(t) ? 255 : 0;
      }
      octx.putImageData(img, 0, 0);
      const [ex0, ex1, ey0, ey1] = it.extent;
      const px0 = ax.X(ex0), px1 = ax.X(ex1), pyA = ax.Y(ey0), pyB = ax.Y(ey1);
      ctx.imageSmoothingEnabled = false;
      // row 0 sits at ey0: flip vertically when ey0 is at the bottom of the axes
      ctx.translate(px0, pyA); ctx.scale((px1 - px0) / W, (pyB - pyA) / H);
      ctx.drawImage(off, 0, 0);
    } else if (it.kind === "vline") {
      ctx.strokeStyle = it.color; ctx.lineWidth = 1.2;
      ctx.beginPath(); ctx.moveTo(ax.X(it.x), ax.top); ctx.lineTo(ax.X(it.x), ax.top + ax.height); ctx.stroke();
    }
    ctx.restore();
  }

  function coveredPoints(ax, items, x, y, w, h) {
    let n = 0;
    const inside = (px, py) => px >= x && px <= x + w && py >= y && py <= y + h;
    for (const it of items) {
      if (it.kind === "line") {
        const xs = val(it.x).data, ys = val(it.y).data;
        for (let i = 0; i < xs.length; i++) if (inside(ax.X(xs[i]), ax.Y(ys[i]))) n++;
        for (let i = 1; i < xs.length; i++) if (inside(ax.X((xs[i] + xs[i - 1]) / 2), ax.Y((ys[i] + ys[i - 1]) / 2))) n++;
      } else if (it.kind === "scatter") {
        const xy = val(it.xy).data;
        for (let i = 0; i < xy.length; i += 2) if (inside(ax.X(xy[i]), ax.Y(xy[i + 1]))) n++;
      }
    }
    return n;
  }

  function drawPanel(ctx, p, cell) {
    if (p.hidden) return null;
    const outside = p.legend === "outside";
    const upright = p.xticklabels && p.xtickrotation === 90;
    const labelRoom = upright ? 26 + 5.2 * Math.max(...p.xticklabels.map(t => String(t).length)) : 58;
    const m = p.axis_off ? {l: 4, r: 4, t: 18, b: 4} : {l: 58, r: outside ? 130 : 10, t: 22, b: p.xticklabels ? labelRoom : 40};
    const ax = Axes(ctx, p, {left: cell.x + m.l, top: cell.y + m.t, width: cell.w - m.l - m.r, height: cell.h - m.t - m.b});
    ctx.fillStyle = "#222"; ctx.font = "12px sans-serif"; ctx.textAlign = "center";
    ctx.fillText(p.title, ax.left + ax.width / 2, ax.top - 6, cell.w - 8);
    ctx.save();
    ctx.beginPath(); ctx.rect(ax.left, ax.top, ax.width, ax.height); ctx.clip();
    for (const it of p.items) drawItem(ctx, ax, it);
    ctx.restore();
    if (p.axis_off) return ax;
    ctx.strokeStyle = "#444"; ctx.lineWidth = 1; ctx.strokeRect(ax.left, ax.top, ax.width, ax.height);
    ctx.font = "10px sans-serif"; ctx.fillStyle = "#333";
    const xt = p.xticks || niceTicks(Math.min(ax.x0, ax.x1), Math.max(ax.x0, ax.x1), 6);
    xt.forEach((t, k) => {
      const px = ax.X(t);
      ctx.beginPath(); ctx.moveTo(px, ax.top + ax.height); ctx.lineTo(px, ax.top + ax.height + 4); ctx.stroke();
      const label = p.xticklabels ? String(p.xticklabels[k]) : fmt(t);
      if (upright) {
        ctx.save(); ctx.translate(px + 3, ax.top + ax.height + 7); ctx.rotate(-Math.PI / 2);
        ctx.textAlign = "right"; ctx.fillText(label, 0, 0); ctx.restore();
      } else if (p.xticklabels && p.xticklabels.length > 6) {
        ctx.save(); ctx.translate(px, ax.top + ax.height + 8); ctx.rotate(-Math.PI / 4);
        ctx.textAlign = "right"; ctx.fillText(label, 0, 4); ctx.restore();
      } else { ctx.textAlign = "center"; ctx.fillText(label, px, ax.top + ax.height + 15); }
    });
    let yt, decades = false;
    if (ax.log) {
      const e0 = Math.ceil(Math.log10(ax.y0)), e1 = Math.floor(Math.log10(ax.y1));
      const every = Math.max(1, Math.ceil((e1 - e0 + 1) / 7));
      yt = [];
      for (let e = e0; e <= e1; e += every) yt.push(Math.pow(10, e));
      decades = yt.length >= 2;
      if (!decades) yt = niceTicks(ax.y0, ax.y1, 4).filter(t => t > 0);
    } else yt = niceTicks(Math.min(ax.y0, ax.y1), Math.max(ax.y0, ax.y1), 6);
    ctx.textAlign = "right";
    for (const t of yt) {
      const py = ax.Y(t);
      ctx.beginPath(); ctx.moveTo(ax.left - 4, py); ctx.lineTo(ax.left, py); ctx.stroke();
      ctx.fillText(decades ? "1e" + Math.round(Math.log10(t)) : fmt(t), ax.left - 6, py + 3);
    }
    ctx.font = "11px sans-serif"; ctx.textAlign = "center";
    ctx.fillText(p.xlabel, ax.left + ax.width / 2, cell.y + cell.h - 4);
    ctx.save(); ctx.translate(cell.x + 12, ax.top + ax.height / 2); ctx.rotate(-Math.PI / 2);
    ctx.fillText(p.ylabel, 0, 0); ctx.restore();
    if (p.legend) {
      const labeled = p.items.filter(it => it.label);
      for (const it of p.items) for (const c of it.legend_classes || [])
        labeled.push({label: "y = " + c, color: it.palette[c % it.palette.length], width: 0, style: "", marker: true});
      if (labeled.length) {
        ctx.font = "10px sans-serif"; ctx.textAlign = "left";
        const w = Math.max(...labeled.map(it => ctx.measureText(it.label).width)) + 36, h = 14 * labeled.length + 6;
        let lx = ax.left + ax.width + 8, ly = ax.top;
        if (!outside) {   // the inside corner that covers the fewest drawn points
          let best = Infinity;
          for (const [cx, cy] of [[ax.left + ax.width - w - 6, ax.top + 6], [ax.left + 6, ax.top + 6],
                                  [ax.left + ax.width - w - 6, ax.top + ax.height - h - 6], [ax.left + 6, ax.top + ax.height - h - 6]]) {
            const n = coveredPoints(ax, p.items, cx, cy, w, h);
            if (n < best) { best = n; lx = cx; ly = cy; }
          }
        }
        ctx.fillStyle = "rgba(255,255,255,0.85)"; ctx.fillRect(lx, ly, w, h);
        ctx.strokeStyle = "#ccc"; ctx.strokeRect(lx, ly, w, h);
        labeled.forEach((it, k) => {
          const y = ly + 12 + 14 * k;
          ctx.strokeStyle = it.color; ctx.lineWidth = 2;
          ctx.setLineDash(it.style === "--" ? [4, 3] : it.style === ":" ? [2, 2] : []);
          if (it.width > 0 && it.style !== "") { ctx.beginPath(); ctx.moveTo(lx + 4, y - 3); ctx.lineTo(lx + 22, y - 3); ctx.stroke(); }
          if (it.marker) { ctx.fillStyle = it.color; ctx.beginPath(); ctx.arc(lx + 13, y - 3, 3, 0, 2 * Math.PI); ctx.fill(); }
          ctx.setLineDash([]);
          ctx.fillStyle = "#222"; ctx.fillText(it.label, lx + 26, y);
        });
      }
    }
    return ax;
  }

  function drawColorbar(ctx, cb, x, y, h) {
    const lut = luts[cb.cmap];
    for (let k = 0; k < h; k++) {
      const i = Math.round((1 - k / (h - 1)) * 255);
      ctx.fillStyle = `rgb(${lut[3 * i]},${lut[3 * i + 1]},${lut[3 * i + 2]})`;
      ctx.fillRect(x, y + k, 14, 1);
    }
    ctx.strokeStyle = "#444"; ctx.strokeRect(x, y, 14, h);
    ctx.fillStyle = "#333"; ctx.font = "10px sans-serif"; ctx.textAlign = "left";
    if (cb.norm === "log") {
      const a = Math.log10(cb.vmin), b = Math.log10(cb.vmax);
      for (let e = Math.ceil(a); e <= Math.floor(b); e++) ctx.fillText("1e" + e, x + 18, y + h - (e - a) / (b - a) * h + 3);
    } else for (const t of niceTicks(cb.vmin, cb.vmax, 5)) {
      const py = y + h - (t - cb.vmin) / (cb.vmax - cb.vmin) * h;
      ctx.fillText(fmt(t), x + 18, py + 3);
    }
    ctx.save(); ctx.translate(x + 60, y + h / 2); ctx.rotate(-Math.PI / 2); ctx.textAlign = "center";
    ctx.fillText(cb.label || "", 0, 0); ctx.restore();
  }


  /* Draw one frame's spec on `canvas` (its size: spec.size inches at `dpi` pixels per inch). */
  function render(canvas, d, spec, dpi) {
    use(d);
    dpi = dpi || 100;
    const ctx = canvas.getContext("2d");
    const cbw = spec.colorbar ? 80 : 0, titleH = 28;
    const W = Math.round(spec.size[0] * dpi), H = Math.round(spec.size[1] * dpi);
    if (canvas.width !== W || canvas.height !== H) { canvas.width = W; canvas.height = H; }
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
    ctx.fillStyle = "#111"; ctx.font = "bold 14px sans-serif"; ctx.textAlign = "center";
    ctx.fillText(spec.title, W / 2, 19);
    const n = spec.panels.length, nc = Math.max(1, Math.min(spec.ncols, n)), nr = Math.ceil(n / nc);
    const cw = (W - cbw) / nc, ch = (H - titleH) / nr;
    const axes = spec.panels.map((p, k) => drawPanel(ctx, p, {x: (k % nc) * cw, y: titleH + Math.floor(k / nc) * ch, w: cw, h: ch}));
    if (spec.colorbar) drawColorbar(ctx, spec.colorbar, W - cbw + 8, titleH + 20, H - titleH - 50);
    // each panel's plot box in canvas pixels and its data limits (null for hidden panels)
    return axes.map(ax => ax && {left: ax.left, top: ax.top, width: ax.width, height: ax.height,
                                  x0: ax.x0, x1: ax.x1, y0: ax.y0, y1: ax.y1, log: ax.log});
  }

  return {render: render, decode: function (d, ref) { use(d); return arr(ref); }};
})();
