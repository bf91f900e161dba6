"""Probe batches for the geometry views, and the layout that says which rows are which.

A scene builds its probe with ``plane_probe`` (2-D inputs) or ``curve_probe`` (1-D inputs),
stores ``layout`` in the run's config as ``"probe_layout"`` and watches with
``probe=(x_probe, y_probe)``. The views read the layout back to split each ``probe/<layer>``
stream into data points, grid lines and the input plane.
"""

from __future__ import annotations

import numpy as np

__all__ = ["plane_probe", "curve_probe", "grid_lines", "plane_grid", "target_gaps"]


def grid_lines(lim: float = 1.0, lines: int = 21, points_per_line: int = 41) -> np.ndarray:
    """``(2 * lines * points_per_line, 2)`` points: ``lines`` vertical lines (x fixed) then
    ``lines`` horizontal lines (y fixed) over ``[-lim, lim]^2``, each sampled at
    ``points_per_line`` points."""
    ticks = np.linspace(-lim, lim, lines)
    along = np.linspace(-lim, lim, points_per_line)
    vertical = np.stack([np.repeat(ticks, points_per_line), np.tile(along, lines)], axis=1)
    horizontal = np.stack([np.tile(along, lines), np.repeat(ticks, points_per_line)], axis=1)
    return np.concatenate([vertical, horizontal]).astype(np.float32)


def plane_grid(lim: float = 1.0, resolution: int = 64) -> np.ndarray:
    """``(resolution**2, 2)`` points of the input plane, row-major: row ``i`` has y = ys[i]."""
    ticks = np.linspace(-lim, lim, resolution)
    xx, yy = np.meshgrid(ticks, ticks)
    return np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)


def plane_probe(x_data, y_data, lim: float = 1.0, lines: int = 21, points_per_line: int = 41,
                resolution: int = 64):
    """The probe batch for the hidden-space view.

    Rows: the data points ``x_data`` (N, 2); then the grid lines (see ``grid_lines``); then a
    ``resolution x resolution`` grid of the input plane (see ``plane_grid``).
    Returns ``(x_probe float32 (M, 2), y_probe float32 (M, 1), layout)``; ``y_probe`` holds the
    labels of the data rows and NaN elsewhere. ``layout`` is plain JSON.
    """
    x_data = np.asarray(x_data, dtype=np.float32)
    if x_data.ndim != 2 or x_data.shape[1] != 2:
        raise ValueError(f"plane_probe needs 2-D inputs shaped (N, 2), got {x_data.shape}.")
    y_data = np.asarray(y_data, dtype=np.float32).reshape(len(x_data), -1)[:, :1]
    if lines < 2 or points_per_line < 2 or resolution < 2:
        raise ValueError("lines, points_per_line and resolution must each be at least 2.")
    g = grid_lines(lim, lines, points_per_line)
    p = plane_grid(lim, resolution)
    n, ng, npl = len(x_data), len(g), len(p)
    x_probe = np.concatenate([x_data, g, p]).astype(np.float32)
    y_probe = np.full((len(x_probe), 1), np.nan, np.float32)
    y_probe[:n] = y_data
    layout = {"data": [0, n],
              "grid_lines": [n, n + ng, 2 * lines, points_per_line],
              "plane": [n + ng, n + ng + npl, resolution],
              "lim": float(lim)}
    return x_probe, y_probe, layout


def curve_probe(x, y):
    """The probe batch for the function-fit view: ``x`` sorted ascending as ``(n, 1)`` float32,
    the target ``y`` in the same order, and ``layout = {"curve": [0, n]}``."""
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    y = np.asarray(y, dtype=np.float32).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"curve_probe needs x and y of the same length, got {x.shape} and {y.shape}.")
    order = np.argsort(x, kind="stable")
    return x[order, None].copy(), y[order, None].copy(), {"curve": [0, int(len(x))]}


def target_gaps(run) -> int:
    """How many values of ``inputs/probe_target`` are NaN on purpose: those in rows outside the
    layout's ``data`` (or ``curve``) rows, which ``plane_probe`` fills with NaN (grid lines and
    plane points have no target). 0 without a layout or a full target stream. ``run``: a
    path, a RunReader or an open Run."""
    from ._common import as_reader

    reader = as_reader(run)
    layout = reader.config.get("probe_layout") if isinstance(reader.config, dict) else None
    rows = (layout or {}).get("data") or (layout or {}).get("curve")
    if not rows or "inputs/probe_target" not in reader:
        return 0
    s = reader["inputs/probe_target"]
    if s.capture != "full" or not s.length:
        return 0
    t = np.asarray(s.at_index(-1), np.float64)
    t = t.reshape(len(t), -1) if t.ndim else t.reshape(1, 1)
    outside = np.ones(len(t), bool)
    outside[int(rows[0]):int(rows[1])] = False
    return int((~np.isfinite(t[outside])).sum())
