"""Frame specs: what to draw for one frame of a view, as panels of plain primitives.

Both renderers draw the same spec: ``render.mpl`` with matplotlib (PNG, SVG, GIF, MP4) and
``render.html`` with a canvas in the browser. A spec is a dict::

    {"title": str, "ncols": int, "size": [w, h] (inches), "colorbar": None | {cmap, vmin, vmax, label},
     "panels": [{"title", "xlabel", "ylabel", "xlim", "ylim", "xscale", "yscale", "aspect",
                 "xticks", "xticklabels", "xtickrotation", "legend", "items": [item, ...]}, ...]}

Items: ``line`` (x, y, color, width, style, label, alpha), ``lines`` (segs (K, P, 2), color,
width, alpha), ``scatter`` (xy (N, 2), classes (N,), palette, size), ``image`` (data (H, W),
extent [x0, x1, y0, y1], cmap, vmin, vmax; row 0 at y0), ``vline`` (x, color).
"""

from __future__ import annotations

import numpy as np

__all__ = ["frame_spec", "frame_count", "stack_specs", "short_names", "CLASS_COLORS", "LINE_COLORS"]

CLASS_COLORS = ["#2166ac", "#b2182b", "#1b7837", "#762a83", "#e08214", "#35978f"]
LINE_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
               "#7f7f7f", "#bcbd22", "#17becf"]
DIVERGING = "RdBu_r"


def _panel(title="", xlabel="", ylabel="", items=None, **kw):
    p = {"title": title, "xlabel": xlabel, "ylabel": ylabel, "xlim": None, "ylim": None,
         "xscale": "linear", "yscale": "linear", "aspect": None, "xticks": None,
         "xticklabels": None, "xtickrotation": 0, "legend": False, "items": items or []}
    p.update(kw)
    return p


def _fig(title, panels, ncols=1, size=(6.4, 4.8), colorbar=None):
    return {"title": title, "panels": panels, "ncols": ncols, "size": list(size), "colorbar": colorbar}


def _pad(lo, hi, frac=0.05):
    lo, hi = float(lo), float(hi)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return [-1.0, 1.0]
    span = hi - lo or abs(hi) or 1.0
    return [lo - frac * span, hi + frac * span]


def frame_count(view) -> int:
    return len(view.frames)


# ---------------------------------------------------------------- per view
def _trajectories(v, i, cursor):
    items = [{"kind": "line", "x": v.steps, "y": v.values[:, k], "color": LINE_COLORS[k % 10],
              "width": 1.6, "style": "-", "label": v.labels[k], "alpha": 1.0}
             for k in range(v.values.shape[1])]
    if cursor:
        items.append({"kind": "vline", "x": float(v.frames[i]), "color": "#444444"})
    p = _panel("", "step", "value", items, legend="outside" if len(v.labels) <= 12 else False,
               xlim=_pad(v.steps[0], v.steps[-1], 0.01), ylim=_pad(np.nanmin(v.values), np.nanmax(v.values)))
    title = f"{v.stream}: {len(v.labels)} elements" + (f" · step {int(v.frames[i])}" if cursor else "")
    return _fig(title, [p], size=(8, 4.2))


def _weight_images(v, i, cursor):
    n = len(v.labels)
    ncols = min(n, 5) if n <= 10 else int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    h, w = v.images.shape[2:]
    panels = []
    for u in range(n):
        img = {"kind": "image", "data": v.images[i, u], "extent": [0, w, h, 0], "cmap": DIVERGING,
               "vmin": -v.vmax, "vmax": v.vmax}
        panels.append(_panel(v.labels[u], items=[img], xlim=[0, w], ylim=[h, 0], aspect="equal",
                             axis_off=True))
    cell = 1.6
    size = (min(ncols * cell + 1.0, 14), min(nrows * cell * h / max(w, 1) + 0.9, 14))
    return _fig(f"{v.stream} · step {int(v.steps[i])}", panels, ncols, size,
                colorbar={"cmap": DIVERGING, "vmin": -v.vmax, "vmax": v.vmax, "label": "weight"})


def short_names(names: list) -> list:
    """Each dotted name cut to its shortest ending that no other name has (the full name when
    none): ``encoder.layer.3.attention.self.query`` -> ``3.attention.self.query``."""
    parts = [str(n).split(".") for n in names]
    out = []
    for p in parts:
        for k in range(1, len(p) + 1):
            tail = p[-k:]
            if sum(q[-k:] == tail for q in parts) == 1:
                break
        out.append(".".join(tail))
    return out


MANY_LAYERS = 12   # past this many layers: one panel per row, labels upright, the figure widens


def _layer_profile(v, i, cursor):
    depth = np.arange(1, len(v.layers) + 1, dtype=np.float64)
    n = len(v.layers)
    labels = short_names(v.layers) if n > MANY_LAYERS else list(v.layers)
    panels = []
    for arr, title in ((v.grad, "mean |gradient|"), (v.act, "mean |activation|")):
        if arr is None:
            continue
        items = []
        if cursor:
            items.append({"kind": "line", "x": depth, "y": arr[i], "color": LINE_COLORS[0],
                          "width": 2.0, "style": "-", "label": f"step {int(v.steps[i])}", "alpha": 1.0,
                          "marker": True})
        else:
            show = range(len(v.steps)) if len(v.steps) <= 8 else \
                np.unique(np.round(np.linspace(0, len(v.steps) - 1, 6)).astype(int))
            for k, t in enumerate(show):
                items.append({"kind": "line", "x": depth, "y": arr[t], "color": LINE_COLORS[k % 10],
                              "width": 1.8, "style": "-", "label": f"step {int(v.steps[t])}",
                              "alpha": 1.0, "marker": True})
        pos = arr[np.isfinite(arr) & (arr > 0)]
        log = pos.size > 0
        ylim = [float(pos.min()) / 2, float(pos.max()) * 2] if log else None
        drawn = arr[[i]] if cursor else arr[list(show)]
        zero = (drawn == 0).any(axis=0)
        if log and zero.any():   # exact zeros (e.g. saturated tanh) vanish on a log axis: mark them
            ylim[0] = float(pos.min()) / 20
            items.append({"kind": "line", "x": depth[zero], "y": np.full(int(zero.sum()), ylim[0] * 1.5),
                          "color": "#d62728", "width": 0.0, "style": "", "label": "exactly 0",
                          "alpha": 1.0, "marker": True})
        panels.append(_panel(title, "layer (input → output)", title, items,
                             yscale="log" if log else "linear", ylim=ylim,
                             xlim=[0.5, len(v.layers) + 0.5], xticks=list(depth),
                             xticklabels=labels, legend="outside" if n > MANY_LAYERS else True,
                             xtickrotation=90 if n > MANY_LAYERS else 45 if n > 6 else 0))
    what = "probe example" if v.source == "probe" else "batch"
    title = f"layer profile ({what})" + (f" · step {int(v.steps[i])}" if cursor else "")
    if n <= MANY_LAYERS:
        return _fig(title, panels, len(panels), (5.2 * len(panels), 4.2))
    # many layers: a row per panel, about 0.17 inch per label, room below for the upright labels
    label_in = 0.075 * max(len(t) for t in labels) + 0.2
    width = float(np.clip(0.17 * n + 2.4, 6.4, 24.0))
    return _fig(title, panels, 1, (width, len(panels) * (2.6 + label_in) + 0.4))


def _distributions(v, i, cursor):
    s0, s1 = float(v.steps[0]), float(v.steps[-1])
    dx = (s1 - s0) / max(len(v.steps) - 1, 1) if len(v.steps) > 1 else 1.0
    dens = v.density.T
    pos = dens[dens > 0]
    top = float(pos.max()) if pos.size else 1.0
    low = max(float(pos.min()) if pos.size else 1e-4, top * 1e-4)
    items = [{"kind": "image", "data": dens, "extent": [s0 - dx / 2, s1 + dx / 2, v.edges[0], v.edges[-1]],
              "cmap": "Blues", "vmin": low, "vmax": top, "norm": "log"}]
    styles = {"min": ("#555555", "--", 1.0), "max": ("#555555", "--", 1.0), "mean": ("#d62728", "-", 1.4),
              "p50": ("#ff7f0e", "-", 1.4)}
    for name, y in v.lines.items():
        color, style, width = styles.get(name, ("#ff7f0e", ":", 1.0))
        items.append({"kind": "line", "x": v.steps.astype(np.float64), "y": y, "color": color,
                      "width": width, "style": style, "label": name, "alpha": 1.0})
    if cursor:
        items.append({"kind": "vline", "x": float(v.frames[i]), "color": "#000000"})
    p = _panel("", "step", "value", items, legend="outside", xlim=[s0 - dx / 2, s1 + dx / 2],
               ylim=[float(v.edges[0]), float(v.edges[-1])])
    title = f"distribution of {v.stream}" + (f" · step {int(v.frames[i])}" if cursor else "")
    return _fig(title, [p], size=(8, 4.5),
                colorbar={"cmap": "Blues", "vmin": low, "vmax": top, "norm": "log",
                          "label": "fraction of values (log)"})


def _function_fit(v, i, cursor):
    items = []
    if v.target is not None:
        items.append({"kind": "line", "x": v.x, "y": v.target, "color": "#222222", "width": 1.5,
                      "style": "--", "label": "target", "alpha": 1.0})
        ylim = _pad(v.target.min(), v.target.max(), 0.25)
    else:
        ylim = _pad(np.nanmin(v.output), np.nanmax(v.output))
    items.append({"kind": "line", "x": v.x, "y": v.output[i], "color": LINE_COLORS[0], "width": 2.0,
                  "style": "-", "label": f"output ({v.layer})", "alpha": 1.0})
    title = f"step {int(v.steps[i])}" + (f" · mse {v.mse[i]:.4g}" if v.mse is not None else "")
    p = _panel(title, "x", "y", items, legend=True, xlim=_pad(v.x.min(), v.x.max(), 0.02), ylim=ylim)
    return _fig(f"function fit · {title}", [p], size=(6.4, 4.5))


def _hidden_space(v, i, cursor):
    classes = np.nan_to_num(v.labels).round().astype(np.int64)
    items = []
    if v.grid is not None:
        items.append({"kind": "lines", "segs": v.grid[i], "color": "#9a9a9a", "width": 0.7, "alpha": 0.9})
    shown = sorted(set(np.unique(classes).tolist()))[:len(CLASS_COLORS)]
    items.append({"kind": "scatter", "xy": v.points[i], "classes": classes, "palette": CLASS_COLORS,
                  "size": 9.0, "legend_classes": shown})
    if v.boundary is not None:
        items.append({"kind": "line", "x": v.boundary[i, :, 0], "y": v.boundary[i, :, 1],
                      "color": "#000000", "width": 2.0, "style": "-", "label": "decision boundary",
                      "alpha": 1.0})
    x0, x1, y0, y1 = v.hlim
    left = _panel(f"hidden layer {v.layer} (2 units)", "h1", "h2", items, xlim=[x0, x1],
                  ylim=[y0, y1], aspect="equal", legend=True)
    panels = [left]
    if v.regions is not None:
        lim = v.lim
        what = "sigmoid(output)" if v.regions_are_logits else "output"
        right_items = [{"kind": "image", "data": v.regions[i], "extent": [-lim, lim, -lim, lim],
                        "cmap": "coolwarm", "vmin": 0.0, "vmax": 1.0, "alpha": 0.45},
                       {"kind": "scatter", "xy": v.inputs, "classes": classes, "palette": CLASS_COLORS,
                        "size": 6.0}]
        panels.append(_panel(f"decision regions: {what} of {v.output_layer}", "x1", "x2", right_items,
                             xlim=[-lim, lim], ylim=[-lim, lim], aspect="equal"))
    return _fig(f"hidden space · step {int(v.steps[i])}", panels, len(panels), (5.2 * len(panels), 5.0))


def stack_specs(subs: list, names: list, title: str) -> dict:
    """One figure holding several specs of the same view: each keeps its own grid of panels
    (a block of rows), its first panel titled with its name; single panels sit side by side."""
    per = len(subs[0]["panels"])
    sub_cols = max(1, min(subs[0]["ncols"], per))
    ncols = sub_cols if per > 1 else min(len(subs), 3)
    panels = []
    for name, sub in zip(names, subs):
        for k, p in enumerate(sub["panels"]):
            p = dict(p)
            if k == 0 or p["title"] and not p.get("axis_off"):
                p["title"] = f"{name}: {p['title']}" if p["title"] else str(name)
            panels.append(p)
        if per > 1:   # start the next block on a new row
            panels += [_panel(hidden=True) for _ in range(-len(panels) % ncols)]
    nrows = int(np.ceil(len(panels) / ncols))
    w, h = subs[0]["size"]
    sub_rows = int(np.ceil(per / sub_cols))
    cw, ch = w / sub_cols, h / sub_rows
    scale = 0.75 if per == 1 else 0.85
    size = (min(cw * ncols * scale + (0.8 if subs[0]["colorbar"] else 0), 16), min(ch * nrows * scale, 18))
    return _fig(title, panels, ncols, size, subs[0]["colorbar"])


def _compare(v, i, cursor):
    subs = [frame_spec(sub, int(v.index[i, k]), cursor) for k, sub in enumerate(v.views)]
    return stack_specs(subs, v.names, f"{v.view_name.replace('_', ' ')} · step {int(v.steps[i])}")


_SPECS = {"trajectories": _trajectories, "weight_images": _weight_images,
          "layer_profile": _layer_profile, "distributions": _distributions,
          "function_fit": _function_fit, "hidden_space": _hidden_space, "compare": _compare}


def frame_spec(view, i: int = -1, cursor: bool = True) -> dict:
    """The spec of frame ``i`` of ``view`` (-1: the last). ``cursor=False`` draws views that
    span all steps (trajectories, distributions, layer profile) without a moving marker."""
    n = frame_count(view)
    if i < 0:
        i += n
    if not 0 <= i < n:
        raise IndexError(f"frame {i} out of range: the view has {n} frames.")
    return _SPECS[view.view](view, i, cursor)
