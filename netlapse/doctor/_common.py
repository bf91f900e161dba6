"""Helpers the instruments share: recent windows, onsets, aligning streams on steps, views."""

from __future__ import annotations

import numpy as np

__all__ = ["Skip", "recent", "onset", "align", "weight_grads", "dist_view", "rms"]


class Skip(Exception):
    """An instrument cannot run on this run; the message says why and how to record what it needs."""


def recent(n: int) -> int:
    """How many of the last captured steps count as "recent": a tenth of them, 10 to 100."""
    return int(min(n, max(10, min(100, n // 10))))


def onset(mask: np.ndarray, share: float = 0.8) -> int | None:
    """Index of the first step from which ``mask`` holds for at least ``share`` of the steps
    up to the end (and holds at that step), provided it also holds for most recent steps;
    None when the condition is not present now."""
    mask = np.asarray(mask, bool)
    n = len(mask)
    if n == 0:
        return None
    w = recent(n)
    if mask[-w:].mean() < 0.5:
        return None
    suffix = np.cumsum(mask[::-1])[::-1] / np.arange(n, 0, -1)
    ok = np.flatnonzero((suffix >= share) & mask)
    return int(ok[0]) if len(ok) else None


def align(series: list, steps: np.ndarray, col: int) -> np.ndarray:
    """Matrix (len(steps), len(series)) of stats column ``col`` of each series at ``steps``
    (NaN where a series has no row at that step)."""
    out = np.full((len(steps), len(series)), np.nan)
    for j, s in enumerate(series):
        idx = np.searchsorted(s.steps, steps)
        idx = np.clip(idx, 0, max(len(s.steps) - 1, 0))
        if len(s.steps):
            hit = s.steps[idx] == steps
            out[hit, j] = s.stats[idx[hit], col]
    return out


def rms(series) -> np.ndarray:
    """Root mean square of each recorded tensor: norm / sqrt(number of elements)."""
    from ._data import NORM

    return series.stats[:, NORM] / np.sqrt(max(series.numel(), 1))


def _embedding_modules(data) -> set:
    return {n for n, m in data.module_info().items()
            if "embed" in str(m.get("type", "")).lower()}


def weight_grads(data) -> list:
    """Grads series of weight matrices and kernels (2 or more dims), in model order; biases,
    norm scales and embedding tables are left out (their gradient scale follows other rules:
    an embedding row gets a gradient only when its token occurs)."""
    embeds = _embedding_modules(data)
    out = []
    for name in data.ordered(data.names("grads")):
        s = data.get(name)
        if s is None or len(s.steps) == 0 or len(s.shape) < 2:
            continue
        layer = data.layer_of(s.target)
        if layer in embeds or "embed" in s.target.lower():
            continue
        out.append(s)
    return out


def dist_view(stream: str, step: int | None = None) -> dict:
    args = {"stream": stream}
    return {"name": "distributions", "args": args}
