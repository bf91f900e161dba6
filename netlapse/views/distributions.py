"""Distributions: a stream's histogram over steps as a heatmap, with its stats overlaid."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import NetlapseError
from ._common import as_reader, select_steps

__all__ = ["Distributions", "distributions", "rebin", "hist_percentiles"]


@dataclass
class Distributions:
    """``density[t, j]``: fraction of the stream's finite values at ``steps[t]`` that fall in
    ``[edges[j], edges[j+1])`` (each stored 64-bin histogram re-binned onto one value grid,
    assuming values spread evenly inside a stored bin). ``lines`` maps a label (``min``,
    ``max``, ``mean``, ``p5`` ...) to one value per step."""

    stream: str
    steps: np.ndarray
    edges: np.ndarray
    density: np.ndarray
    lines: dict
    frames: np.ndarray
    run: str = ""

    view = "distributions"


def _cdf_at(counts: np.ndarray, lo: float, hi: float, x: np.ndarray) -> np.ndarray:
    """Cumulative count of one stored histogram at positions ``x`` (uniform inside bins)."""
    total = counts.sum()
    if not (np.isfinite(lo) and np.isfinite(hi)) or total == 0:
        return np.zeros_like(x)
    if hi <= lo:
        return np.where(x >= lo, float(total), 0.0)
    old = lo + (hi - lo) * np.arange(len(counts) + 1) / len(counts)
    cum = np.concatenate([[0.0], np.cumsum(counts, dtype=np.float64)])
    return np.interp(x, old, cum, left=0.0, right=float(total))


def rebin(counts: np.ndarray, lo: np.ndarray, hi: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts ``(T, B)`` over ``[lo[t], hi[t]]`` -> counts ``(T, len(edges)-1)`` over ``edges``."""
    out = np.zeros((len(counts), len(edges) - 1))
    for t in range(len(counts)):
        cdf = _cdf_at(counts[t], float(lo[t]), float(hi[t]), edges)
        if hi[t] <= lo[t] and counts[t].sum():   # a constant tensor: all in the bin holding lo
            j = min(max(int(np.searchsorted(edges, lo[t], side="right")) - 1, 0), len(edges) - 2)
            out[t, j] = counts[t].sum()
        else:
            out[t] = np.diff(cdf)
    return out


def hist_percentiles(counts: np.ndarray, lo: float, hi: float, qs) -> np.ndarray:
    """Percentiles (0-100) read off one stored histogram (linear inside bins)."""
    total = float(counts.sum())
    if total == 0 or not np.isfinite(lo):
        return np.full(len(qs), np.nan)
    if hi <= lo:
        return np.full(len(qs), float(lo))
    old = lo + (hi - lo) * np.arange(len(counts) + 1) / len(counts)
    cum = np.concatenate([[0.0], np.cumsum(counts, dtype=np.float64)])
    keep = np.concatenate([[True], np.diff(cum) > 0])   # strictly increasing for inversion
    return np.interp(np.asarray(qs, np.float64) / 100.0 * total, cum[keep], old[keep])


def distributions(run, stream: str, *, bins: int = 100, percentiles=(5, 25, 50, 75, 95),
                  steps=None, max_frames: int | None = None, value_range=None) -> Distributions:
    """The histograms of ``stream`` (any capture) over ``steps`` on one common value grid.

    ``bins``: cells of the common grid over ``value_range`` (default: min..max over all steps).
    ``percentiles``: lines read off each step's histogram; ``min``, ``max`` and ``mean`` lines
    come from the stored stats.
    """
    reader = as_reader(run)
    s = reader[stream]
    h = s.histograms
    sel = select_steps(h.steps, steps, None, what=stream)
    idx = np.searchsorted(h.steps, sel)
    counts, lo, hi = h.counts[idx], h.lo[idx], h.hi[idx]
    stats = s.stats_array[idx]
    if value_range is None:
        finite_lo, finite_hi = lo[np.isfinite(lo)], hi[np.isfinite(hi)]
        if not finite_lo.size:
            raise NetlapseError(f"{stream} has no finite values at the chosen steps.")
        vmin, vmax = float(finite_lo.min()), float(finite_hi.max())
    else:
        vmin, vmax = map(float, value_range)
    if vmax <= vmin:
        pad = abs(vmin) * 0.05 or 0.5
        vmin, vmax = vmin - pad, vmax + pad
    edges = np.linspace(vmin, vmax, int(bins) + 1)
    rebinned = rebin(counts, lo, hi, edges)
    totals = counts.sum(axis=1, keepdims=True).astype(np.float64)
    density = np.divide(rebinned, totals, out=np.zeros_like(rebinned), where=totals > 0)
    lines = {"min": stats[:, 2].copy(), "max": stats[:, 3].copy(), "mean": stats[:, 0].copy()}
    if percentiles:
        pct = np.stack([hist_percentiles(counts[t], lo[t], hi[t], percentiles) for t in range(len(sel))])
        for k, q in enumerate(percentiles):
            lines[f"p{q:g}"] = pct[:, k]
    frames = select_steps(sel, None, max_frames, what=stream)
    return Distributions(stream, sel, edges, density, lines, frames, str(reader.path))
