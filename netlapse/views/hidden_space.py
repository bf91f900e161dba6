"""Hidden space: a 2-unit layer's image of the input plane (seed 004b, the rings).

Everything comes from the store: the layer's probe output on the data points, the grid lines
and the input plane (rows given by ``plane_probe``'s layout), and the decision boundary from
the recorded weights of the layer that reads the 2 units. Nothing re-runs the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import NetlapseError
from ._common import (as_reader, full_stream, module_names, probe_layers,
                      probe_layout, select_steps)

__all__ = ["HiddenSpace", "hidden_space", "boundary_segment", "default_head"]


@dataclass
class HiddenSpace:
    """Per frame ``t`` (at ``steps[t]``):

    - ``points[t]`` (N, 2): the data points in the hidden layer; ``labels`` (N,) their classes;
      ``inputs`` (N, 2) the same points in the input plane;
    - ``grid[t]`` (L, P, 2): the input square's grid lines mapped into the hidden layer;
    - ``coef[t]`` = (a, b, c) of the head and ``boundary[t]`` (2, 2) the segment of
      a*h1 + b*h2 + c = 0 inside ``hlim`` (NaN when it misses the box);
    - ``regions[t]`` (R, R): the output on the input plane (probability, row i at y = ys[i]),
      over ``[-lim, lim]^2``.
    """

    layer: str
    head: str | None
    output_layer: str | None
    steps: np.ndarray
    points: np.ndarray
    labels: np.ndarray
    inputs: np.ndarray
    grid: np.ndarray | None
    coef: np.ndarray | None
    boundary: np.ndarray | None
    regions: np.ndarray | None
    regions_are_logits: bool
    lim: float
    hlim: tuple
    run: str = ""

    view = "hidden_space"

    @property
    def frames(self) -> np.ndarray:
        return self.steps


def boundary_segment(a: float, b: float, c: float, box) -> np.ndarray:
    """Endpoints (2, 2) of the line a*x + b*y + c = 0 inside ``box = (x0, x1, y0, y1)``."""
    x0, x1, y0, y1 = box
    pts = []
    if abs(b) > 1e-12:
        for x in (x0, x1):
            y = -(a * x + c) / b
            if y0 - 1e-9 <= y <= y1 + 1e-9:
                pts.append((x, y))
    if abs(a) > 1e-12:
        for y in (y0, y1):
            x = -(b * y + c) / a
            if x0 - 1e-9 <= x <= x1 + 1e-9:
                pts.append((x, y))
    uniq = []
    for p in pts:
        if all(abs(p[0] - q[0]) + abs(p[1] - q[1]) > 1e-9 for q in uniq):
            uniq.append(p)
    if len(uniq) < 2:
        return np.full((2, 2), np.nan)
    return np.asarray(uniq[:2], np.float64)


def default_head(reader, layer: str) -> str | None:
    """The first module after ``layer`` (model order) with a recorded weight."""
    from .layer_profile import weight_layers

    names = module_names(reader) or [name for name, _ in weight_layers(reader, "weights")]
    start = names.index(layer) + 1 if layer in names else 0
    for name in names[start:]:
        if _param_stream(reader, name, ("weight", "kernel")):
            return name
    return None


def _param_stream(reader, layer: str, leaves) -> str | None:
    """``weights/<layer>.<leaf>`` (torch) or ``weights/<layer>/<leaf>`` (Keras), if recorded."""
    for leaf in leaves:
        for sep in (".", "/"):
            if f"weights/{layer}{sep}{leaf}" in reader:
                return f"weights/{layer}{sep}{leaf}"
    return None


def _head_coef(reader, head: str, steps: np.ndarray) -> np.ndarray:
    wname = _param_stream(reader, head, ("weight", "kernel"))
    if wname is None:
        raise NetlapseError(f"no recorded weight for head layer {head!r}.")
    ws = full_stream(reader, wname)
    if sorted(ws.shape) != [1, 2]:
        raise NetlapseError(f"{wname} has shape {ws.shape}; the decision boundary needs a head "
                            "with 2 inputs and 1 output. Pass head=None to leave it out.")
    bname = _param_stream(reader, head, ("bias",))
    coef = np.zeros((len(steps), 3))
    w_steps, b_steps = ws.steps, reader[bname].steps if bname else None
    for t, st in enumerate(steps):
        i = max(int(np.searchsorted(w_steps, st, side="right")) - 1, 0)
        coef[t, :2] = np.asarray(ws.history([int(w_steps[i])])[0], np.float64).reshape(-1)
        if b_steps is not None:
            j = max(int(np.searchsorted(b_steps, st, side="right")) - 1, 0)
            coef[t, 2] = float(np.asarray(full_stream(reader, bname).history([int(b_steps[j])])[0]).reshape(-1)[0])
    return coef


def hidden_space(run, layer: str | None = None, head="auto", output_layer="auto", steps=None,
                 max_frames: int | None = None, max_points: int | None = 2000,
                 seed: int = 0) -> HiddenSpace:
    """Frames of a 2-unit layer's view of the data, the grid lines and the decision regions.

    ``layer``: default the last probe layer (model order) with 2 output units, not the output.
    ``head``: the layer whose recorded weights (a, b) and bias c give the boundary
    sigmoid(a*h1 + b*h2 + c) = 0.5; default the next layer with weights; None to leave it out.
    ``output_layer``: the layer whose probe output on the plane rows gives the decision
    regions (default the last probe layer; None to leave them out). ``max_points``: draw a
    fixed seeded sample of at most this many data points.
    """
    reader = as_reader(run)
    layers = probe_layers(reader)
    if layer is None:
        two = [n for n in layers[:-1] if reader[f"probe/{n}"].shape[-1:] == (2,)]
        if not two:
            raise NetlapseError("no probe layer has 2 units; hidden_space needs a 2-unit layer "
                                f"(probe layers: {', '.join(layers)}).")
        layer = two[-1]
    hs = full_stream(reader, f"probe/{layer}")
    if hs.shape[-1:] != (2,):
        raise NetlapseError(f"probe/{layer} has shape {hs.shape}; hidden_space needs a layer with 2 units.")
    data_rows = probe_layout(reader, "data") or [0, hs.shape[0]]
    d0, d1 = map(int, data_rows)
    sel = select_steps(hs.steps, steps, max_frames, what=hs.name)
    hist = hs.history(sel).astype(np.float64)
    inputs_all = np.asarray(full_stream(reader, "inputs/probe").at(0), np.float64)
    labels = (np.asarray(reader["inputs/probe_target"].at(0), np.float64).reshape(len(inputs_all), -1)[:, 0]
              if "inputs/probe_target" in reader else np.zeros(len(inputs_all)))
    pick = np.arange(d0, d1)
    if max_points is not None and len(pick) > max_points:
        pick = np.sort(np.random.default_rng(seed).choice(pick, max_points, replace=False))
    points = hist[:, pick]
    grid = None
    gl = probe_layout(reader, "grid_lines")
    if gl:
        g0, g1, n_lines, ppl = map(int, gl)
        grid = hist[:, g0:g1].reshape(len(sel), n_lines, ppl, 2)
    lim = float(reader.config.get("probe_layout", {}).get("lim", 1.0))

    shown = [points] + ([grid.reshape(len(sel), -1, 2)] if grid is not None else [])
    allp = np.concatenate(shown, axis=1)
    finite = allp[np.isfinite(allp).all(axis=-1)]
    lo, hi = (finite.min(axis=0), finite.max(axis=0)) if len(finite) else (np.array([-1, -1.]), np.array([1, 1.]))
    pad = 0.05 * np.maximum(hi - lo, 1e-6)
    hlim = (float(lo[0] - pad[0]), float(hi[0] + pad[0]), float(lo[1] - pad[1]), float(hi[1] + pad[1]))

    if head == "auto":
        head = default_head(reader, layer)
    coef = boundary = None
    if head is not None:
        coef = _head_coef(reader, head, sel)
        boundary = np.stack([boundary_segment(*c, hlim) for c in coef])

    if output_layer == "auto":
        output_layer = layers[-1] if layers[-1] != layer else None
    regions, logits = None, False
    plane = probe_layout(reader, "plane")
    if output_layer is not None and plane:
        p0, p1, res = map(int, plane)
        os_ = full_stream(reader, f"probe/{output_layer}")
        if os_.shape[-1:] != (1,):
            raise NetlapseError(f"probe/{output_layer} has shape {os_.shape}; decision regions need "
                                "one output per point. Pass output_layer= or None.")
        vals = os_.history(sel).astype(np.float64)[:, p0:p1, 0].reshape(len(sel), res, res)
        if np.nanmin(vals) < 0 or np.nanmax(vals) > 1:   # logits: map to probabilities
            logits = True
            vals = 1.0 / (1.0 + np.exp(-vals))
        regions = vals
    return HiddenSpace(layer, head, output_layer, sel, points, labels[pick], inputs_all[pick], grid,
                       coef, boundary, regions, logits, lim, hlim, str(reader.path))
