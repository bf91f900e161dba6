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

Two implementations compute this: numpy (``_summarize_numpy``, about 9 passes over the data)
and, for float32 and float64 arrays, the optional compiled kernel ``netlapse._csummary`` (two
passes, GIL released; built by ``pip install`` where a C compiler is available). Histogram,
min, max, zero_frac and nonfinite are identical; the moments agree to rounding (the kernel
sums in a different order). ``kernel_available()`` says which one runs; the environment variable
``NETLAPSE_NO_CKERNEL=1`` forces numpy.
"""

from __future__ import annotations

import os
import sys
import threading

import numpy as np

STAT_NAMES = ("mean", "std", "min", "max", "norm", "mean_abs", "zero_frac", "nonfinite")
N_STATS = len(STAT_NAMES)
HIST_BINS = 64

__all__ = ["STAT_NAMES", "N_STATS", "HIST_BINS", "summarize", "summarize_many", "hist_edges",
           "histogram", "kernel_available"]

_LOCAL = threading.local()
_KEEP_SCRATCH = 1 << 22   # elements: scratch kept per thread up to ~100 MB


def hist_edges(lo: float, hi: float, bins: int = HIST_BINS) -> np.ndarray:
    """The ``bins + 1`` bin edges of a histogram whose range is ``[lo, hi]``."""
    if not np.isfinite(lo) or not np.isfinite(hi):
        return np.full(bins + 1, np.nan)
    return lo + (hi - lo) * (np.arange(bins + 1, dtype=np.float64) / bins)


def _scratch(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """This thread's reused work arrays (float64, float64, intp, bool), ``n`` elements each.

    Fresh multi-megabyte temporaries cost more in page faults than the arithmetic done on them,
    so each thread that summarizes (the writer) keeps one set, grown to the largest tensor seen.
    """
    if n > _KEEP_SCRATCH:   # huge tensors: temporaries, so the thread does not hold 25 B/element
        return (np.empty(n, np.float64), np.empty(n, np.float64), np.empty(n, np.intp),
                np.empty(n, np.bool_))
    bufs = getattr(_LOCAL, "bufs", None)
    if bufs is None or bufs[0].size < n:
        size = max(n, 4096)
        bufs = _LOCAL.bufs = (np.empty(size, np.float64), np.empty(size, np.float64),
                              np.empty(size, np.intp), np.empty(size, np.bool_))
    return bufs[0][:n], bufs[1][:n], bufs[2][:n], bufs[3][:n]


def histogram(x64: np.ndarray, lo: float, hi: float, bins: int = HIST_BINS) -> np.ndarray:
    """Counts of the finite float64 values ``x64`` in the documented layout over ``[lo, hi]``."""
    _, work, idx, _ = _scratch(x64.size)
    return _histogram_into(x64, lo, hi, bins, work, idx)


def _histogram_into(x64, lo: float, hi: float, bins: int, work, idx) -> np.ndarray:
    n = x64.size
    counts = np.zeros(bins, dtype=np.int64)
    if n == 0:
        return counts
    if hi <= lo:
        counts[0] = n
        return counts
    np.subtract(x64, lo, out=work)            # >= 0
    scale = bins / (hi - lo)
    if bins < 255:   # bin indices fit a byte: a quarter of the memory traffic, faster counting
        idx = idx.view(np.uint8)[:n]
    if np.isfinite(scale):
        # float64 product, truncated (= floor, as it is >= 0) straight into the int buffer
        np.multiply(work, scale, out=idx, casting="unsafe")
    else:   # a range so narrow that bins / range overflows: every value is at lo or hi
        np.greater_equal(x64, hi, out=idx, casting="unsafe")
        np.multiply(idx, bins, out=idx)
    # only values at (or a rounding below) hi land on index ``bins``: the last bin holds them
    full = _bincount(idx, bins + 1)
    counts += full[:bins]
    counts[bins - 1] += full[bins:].sum()
    return counts


def _bincount(idx: np.ndarray, length: int) -> np.ndarray:
    """Counts of each index. When PyTorch is already loaded (never imported here), its
    bincount of bytes is about 3x numpy's (which first widens to intp): 0.14 vs 0.41 ms for
    400k values on this machine kind. Both count exactly."""
    torch = sys.modules.get("torch")
    if torch is not None and idx.dtype == np.uint8 and hasattr(torch, "bincount"):
        return torch.bincount(torch.from_numpy(idx), minlength=length).numpy()
    return np.bincount(idx, minlength=length)


_UNLOADED = object()
_kernel_module = _UNLOADED   # netlapse._csummary once looked for; None where unavailable or off
_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))   # native byte order only


def _kernel():
    """The compiled kernel module, or None (not built, or ``NETLAPSE_NO_CKERNEL`` set)."""
    global _kernel_module
    mod = _kernel_module
    if mod is _UNLOADED:
        mod = None
        if os.environ.get("NETLAPSE_NO_CKERNEL", "").strip() in ("", "0"):
            try:
                from . import _csummary as mod
            except ImportError:
                mod = None
        _kernel_module = mod
    return mod


def kernel_available() -> bool:
    """Whether ``summarize`` and ``summarize_many`` use the compiled kernel for float32/float64."""
    return _kernel() is not None


def summarize(x: np.ndarray, bins: int = HIST_BINS) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(stats, hist)`` for one tensor given as a numpy array (any float or int dtype)."""
    flat = np.asarray(x).reshape(-1)
    if bins == HIST_BINS and flat.dtype in _KERNEL_DTYPES:
        mod = _kernel()
        if mod is not None:
            stats = np.empty((1, N_STATS))
            hist = np.empty((1, HIST_BINS), dtype=np.int64)
            if not mod.summarize_many((flat,), stats, hist)[0]:
                return stats[0], hist[0]
    return _summarize_numpy(flat, bins)


def summarize_many(arrays) -> tuple[np.ndarray, np.ndarray]:
    """``(stats, hist)`` of shapes ``(k, 8)`` and ``(k, 64)`` for ``k`` numpy arrays: row ``i`` is
    ``summarize(arrays[i])``. With the compiled kernel all the float32/float64 C-contiguous
    arrays are done in one call that releases the GIL once; the others (other dtypes,
    non-contiguous, float64 beyond 2**450) go through ``summarize`` one by one."""
    arrays = list(arrays)
    k = len(arrays)
    stats = np.empty((k, N_STATS))
    hist = np.empty((k, HIST_BINS), dtype=np.int64)
    mod = _kernel()
    todo = mod.summarize_many(arrays, stats, hist) if mod is not None and k else [1] * k
    for i, status in enumerate(todo):
        if status:
            stats[i], hist[i] = summarize(arrays[i])
    return stats, hist


def summarize_with_delta(arrays, prevs) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(dstats, dhist, stats, hist)``: row ``i`` of ``stats``/``hist`` is ``summarize(arrays[i])``,
    of ``dstats``/``dhist`` is ``summarize(arrays[i] - prevs[i])`` (the difference in the
    arrays' dtype, as numpy subtracts). Afterwards ``prevs[i]`` holds a copy of ``arrays[i]``
    (``prevs``: writable arrays of the same shape and dtype). With the compiled kernel each pair
    is done in one call while it is in the cache; otherwise with numpy."""
    arrays, prevs = list(arrays), list(prevs)
    k = len(arrays)
    stats, hist = np.empty((k, N_STATS)), np.empty((k, HIST_BINS), np.int64)
    dstats, dhist = np.empty((k, N_STATS)), np.empty((k, HIST_BINS), np.int64)
    mod = _kernel()
    todo = (mod.summarize_with_delta(arrays, prevs, stats, hist, dstats, dhist)
            if mod is not None and k else [1] * k)
    for i, status in enumerate(todo):
        if status == 1:
            stats[i], hist[i] = summarize(arrays[i])
            with np.errstate(all="ignore"):   # inf - inf is NaN: data, not a warning
                np.subtract(arrays[i], prevs[i], out=prevs[i])
        if status:
            dstats[i], dhist[i] = summarize(prevs[i])
            prevs[i][...] = arrays[i]
    return dstats, dhist, stats, hist


def histogram_many(arrays, lo, hi) -> np.ndarray:
    """``(k, HIST_BINS)`` int64: row ``i`` counts the finite values of ``arrays[i]`` on the bins
    of ``[lo[i], hi[i]]`` (values inside that range), as ``histogram`` does. With the compiled
    kernel float32/float64 C-contiguous arrays are counted in one call, in place."""
    arrays = list(arrays)
    k = len(arrays)
    lo = np.ascontiguousarray(lo, np.float64).reshape(k)
    hi = np.ascontiguousarray(hi, np.float64).reshape(k)
    hist = np.zeros((k, HIST_BINS), np.int64)
    mod = _kernel()
    todo = mod.histogram_many(arrays, lo, hi, hist) if mod is not None and k else [1] * k
    for i, status in enumerate(todo):
        if status:
            x = np.asarray(arrays[i]).reshape(-1)
            x = x[np.isfinite(x)].astype(np.float64) if x.dtype.kind in "fc" else x.astype(np.float64)
            hist[i] = histogram(x, float(lo[i]), float(hi[i]))
    return hist


def _summarize_numpy(x: np.ndarray, bins: int = HIST_BINS) -> tuple[np.ndarray, np.ndarray]:
    """``summarize`` with numpy only (the reference for the compiled kernel)."""
    flat = np.asarray(x).reshape(-1)
    n = flat.size
    stats = np.full(N_STATS, np.nan)
    if n == 0:
        stats[7] = 0
        return stats, np.zeros(bins, dtype=np.int64)
    if flat.dtype.kind == "b":
        flat = flat.view(np.uint8)
    a64, work, idx, mask = _scratch(n)
    stats[6] = np.count_nonzero(np.equal(flat, 0, out=mask)) / n
    lo, hi = flat.min(), flat.max()   # NaN propagates, so finite lo and hi mean all finite
    if np.isfinite(lo) and np.isfinite(hi):
        stats[7] = 0
        if flat.dtype == np.float64:
            finite = flat
        else:
            finite = a64
            np.copyto(finite, flat, casting="unsafe")
    else:
        np.isfinite(flat, out=mask)
        m = int(np.count_nonzero(mask))
        stats[7] = n - m
        if m == 0:
            return stats, np.zeros(bins, dtype=np.int64)
        finite = flat[mask].astype(np.float64)
        lo, hi = finite.min(), finite.max()
        work, idx = work[:m], idx[:m]
    return stats, _summarize_finite(finite, float(lo), float(hi), bins, stats, work, idx)


_SAFE_MAGNITUDE = 2.0 ** 450   # squares of values up to this, summed over 2**40 of them, stay finite


def _summarize_finite(x64, lo: float, hi: float, bins: int, stats, work, idx) -> np.ndarray:
    """Moments and histogram; values too large to square in float64 are scaled by an exact
    power of two first (so the bins are the same and no sum overflows), then scaled back."""
    big = max(abs(lo), abs(hi))
    if big < _SAFE_MAGNITUDE:
        return _moments_and_histogram(x64, lo, hi, bins, stats, work, idx)
    exponent = int(np.frexp(big)[1]) - 400   # scaled maximum about 2**400: safe, and normal
    down = np.ldexp(1.0, -exponent)
    counts = _moments_and_histogram(x64 * down, lo * down, hi * down, bins, stats, work, idx)
    with np.errstate(over="ignore"):   # a norm beyond float64's range is reported as inf
        stats[[0, 1, 4, 5]] *= np.ldexp(1.0, exponent)
    stats[2], stats[3] = lo, hi
    return counts


def _moments_and_histogram(x64, lo: float, hi: float, bins: int, stats, work, idx) -> np.ndarray:
    """Fill mean, std, min, max, norm, mean_abs of the finite float64 values; return the counts.

    Each step is one numpy loop into a reused buffer; these loops release the GIL, so the
    training thread keeps running while the writer thread summarizes.
    """
    m = x64.size
    mean = x64.sum() / m                   # the same pairwise float64 sum as np.mean
    np.subtract(x64, mean, out=work)
    ssd = float(np.einsum("i,i->", work, work))   # not np.dot: BLAS threads would take both cores
    stats[0] = mean
    stats[1] = np.sqrt(ssd / m)
    stats[2] = lo
    stats[3] = hi
    stats[4] = np.sqrt(ssd + m * mean * mean)    # sum x^2 = sum (x - mean)^2 + m mean^2
    np.abs(x64, out=work)
    stats[5] = work.sum() / m
    return _histogram_into(x64, lo, hi, bins, work, idx)
