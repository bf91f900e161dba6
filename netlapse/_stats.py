"""Per-tensor summaries: moments over the finite values and a fixed-layout histogram.

Stats vector layout (``STAT_NAMES``, float64):

    mean, std, min, max, norm, mean_abs, zero_frac, nonfinite

- ``mean``, ``std`` (population, ddof=0), ``min``, ``max``, ``norm`` (L2) and ``mean_abs`` are
  computed over the finite values only, in float64. With no finite value they are NaN.
- ``zero_frac`` is the fraction of all elements that are exactly zero.
- ``nonfinite`` counts NaN, +Inf and -Inf elements.

Histogram layout (``HIST_BINS`` = 64 bins, int64 counts): the bins split ``[min, max]`` of the
step's finite values into 64 equal parts. A finite value ``x`` goes to bin
``floor((x - min) * (64 / (max - min)))`` computed in float64, clamped to 63, so the maximum is in
the last bin. When ``max == min`` every finite value is counted in bin 0. Non-finite values are
not in the histogram (they are counted by ``nonfinite``). The edges of step ``t`` are
``hist_edges(min_t, max_t)``.
"""

from __future__ import annotations

import numpy as np

STAT_NAMES = ("mean", "std", "min", "max", "norm", "mean_abs", "zero_frac", "nonfinite")
N_STATS = len(STAT_NAMES)
HIST_BINS = 64

__all__ = ["STAT_NAMES", "N_STATS", "HIST_BINS", "summarize", "hist_edges", "histogram"]


def hist_edges(lo: float, hi: float, bins: int = HIST_BINS) -> np.ndarray:
    """The ``bins + 1`` bin edges of a histogram whose range is ``[lo, hi]``."""
    if not np.isfinite(lo) or not np.isfinite(hi):
        return np.full(bins + 1, np.nan)
    return lo + (hi - lo) * (np.arange(bins + 1, dtype=np.float64) / bins)


def histogram(x64: np.ndarray, lo: float, hi: float, bins: int = HIST_BINS) -> np.ndarray:
    """Counts of the finite float64 values ``x64`` in the documented layout over ``[lo, hi]``."""
    if x64.size == 0:
        return np.zeros(bins, dtype=np.int64)
    if hi <= lo:
        counts = np.zeros(bins, dtype=np.int64)
        counts[0] = x64.size
        return counts
    scaled = (x64 - lo) * (bins / (hi - lo))
    idx = scaled.astype(np.int64)
    np.minimum(idx, bins - 1, out=idx)
    return np.bincount(idx, minlength=bins)


def summarize(x: np.ndarray, bins: int = HIST_BINS) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(stats, hist)`` for one tensor given as a numpy array (any float or int dtype)."""
    flat = np.asarray(x).reshape(-1)
    n = flat.size
    stats = np.full(N_STATS, np.nan)
    if n == 0:
        stats[7] = 0
        return stats, np.zeros(bins, dtype=np.int64)
    x64 = flat.astype(np.float64, copy=flat.dtype != np.float64)
    zeros = n - np.count_nonzero(x64)
    total = x64.sum()
    if np.isfinite(total):
        finite = x64
        nonfinite = 0
    else:
        mask = np.isfinite(x64)
        nonfinite = int(n - np.count_nonzero(mask))
        finite = x64[mask] if nonfinite else x64
    m = finite.size
    stats[6] = zeros / n
    stats[7] = nonfinite
    if m == 0:
        return stats, np.zeros(bins, dtype=np.int64)
    mean = (finite.sum() if nonfinite else total) / m
    lo = finite.min()
    hi = finite.max()
    centred = finite - mean
    stats[0] = mean
    stats[1] = np.sqrt(np.dot(centred, centred) / m)
    stats[2] = lo
    stats[3] = hi
    stats[4] = np.sqrt(np.dot(finite, finite))
    stats[5] = np.abs(finite).sum() / m
    return stats, histogram(finite, lo, hi, bins)
