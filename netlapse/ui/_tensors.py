"""The data API's binary payloads: tensors at a step (with a cache of decoded rows), their
colour scale and colour codes, and histogram heatmaps. numpy only, no web code."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from .._stats import HIST_BINS, STAT_NAMES

__all__ = ["heatmap", "tensor_at", "codes_at", "abs_max", "colour_scale", "colour_codes", "ROWS"]


def heatmap(reader, stream: str, max_rows: int = 400, bins: int = HIST_BINS):
    """A stream's histograms over steps, re-binned onto one shared value range.

    Returns ``(rows, meta)``: ``rows`` float32 ``(T', bins)``, each row the fraction of values
    per bin (rows are whole recorded steps, evenly picked when there are more than
    ``max_rows``); meta has the picked steps and the value range.
    """
    s = reader[stream]
    h = s.histograms
    n = len(h.steps)
    if n == 0:
        return np.zeros((0, bins), np.float32), {"steps": [], "lo": 0.0, "hi": 0.0}
    pick = np.unique(np.linspace(0, n - 1, min(n, max_rows)).round().astype(np.int64))
    counts = h.counts[pick].astype(np.float64)
    lo_rows, hi_rows = h.lo[pick], h.hi[pick]
    finite = np.isfinite(lo_rows) & np.isfinite(hi_rows)
    lo = float(lo_rows[finite].min()) if finite.any() else 0.0
    hi = float(hi_rows[finite].max()) if finite.any() else 1.0
    if hi <= lo:
        hi = lo + 1.0
    src = counts.shape[1]
    out = np.zeros((len(pick), bins), np.float64)
    frac = (np.arange(src) + 0.5) / src
    for i in range(len(pick)):
        if not finite[i]:
            continue
        centres = lo_rows[i] + frac * (hi_rows[i] - lo_rows[i])
        b = np.clip(((centres - lo) / (hi - lo) * bins).astype(np.int64), 0, bins - 1)
        np.add.at(out[i], b, counts[i])
    totals = out.sum(axis=1, keepdims=True)
    out = np.divide(out, totals, out=np.zeros_like(out), where=totals > 0)
    return out.astype(np.float32), {"steps": h.steps[pick].tolist(), "lo": lo, "hi": hi}


class _RowCache:
    """Recently read tensors by (run folder, created, stream, row). Committed rows never change,
    so a row is read once: a request decodes its whole zarr chunk and keeps every row of it."""

    def __init__(self, max_bytes: int = 192 << 20):
        self.max_bytes = max_bytes
        self.rows: OrderedDict = OrderedDict()
        self.size = 0
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            arr = self.rows.get(key)
            if arr is not None:
                self.rows.move_to_end(key)
            return arr

    def put(self, key, arr: np.ndarray) -> None:
        with self.lock:
            if key in self.rows:
                return
            self.rows[key] = arr
            self.size += arr.nbytes
            while self.size > self.max_bytes and len(self.rows) > 1:
                _, old = self.rows.popitem(last=False)
                self.size -= old.nbytes


ROWS = _RowCache()


def _row_values(reader, s, i: int) -> np.ndarray:
    base = (str(reader.path), reader.created, s.name)
    hit = ROWS.get(base + (i,))
    if hit is not None:
        return hit
    chunk = s.values_chunk_rows
    c0 = (i // chunk) * chunk
    c1 = min(c0 + chunk, s.length)
    block = s.read_values(c0, c1)   # one chunk, through the reader's integrity checks
    for j in range(c0, c1):
        ROWS.put(base + (j,), np.ascontiguousarray(block[j - c0], dtype="<f4"))
    hit = ROWS.get(base + (i,))
    return hit if hit is not None else np.ascontiguousarray(block[i - c0], dtype="<f4")


def tensor_at(reader, stream: str, step: int):
    """``(recorded_step, float32 array, previous recorded step, next recorded step)``: the last
    recorded tensor at or before ``step`` (the first one if ``step`` is before it); ``step=-1``
    is the last. Neighbours are None at the ends."""
    s = reader[stream]
    n = s.length
    if n == 0:
        raise LookupError(f"{stream} has no committed steps yet")
    s.values_chunk_rows   # raises the reader's message for a stats-only stream
    i = n - 1 if step < 0 else max(0, s.index_at_or_before(step))
    prev_step = s.step_of(i - 1) if i > 0 else None
    next_step = s.step_of(i + 1) if i + 1 < n else None
    return s.step_of(i), _row_values(reader, s, i), prev_step, next_step


def colour_codes(arr: np.ndarray, scale: float) -> np.ndarray:
    """uint8 codes of a diverging colour scale on [-scale, scale]: ``floor(x * c + 128)`` in
    float32 with ``c = float32(127.5 / scale)``, clipped to 0..255 (0 -> 128, NaN -> 128).
    What the image panel draws, a quarter of the float32 bytes."""
    c = np.float32(127.5 / scale if scale > 0 else 0.0)
    y = np.multiply(np.asarray(arr, np.float32), c)
    y += np.float32(128.0)
    np.floor(y, out=y)
    np.clip(y, 0, 255, out=y)
    codes = y.astype(np.uint8)
    nan = np.isnan(y)
    if nan.any():
        codes[nan] = 128
    return codes


def codes_at(reader, stream: str, step: int, values: np.ndarray, scale: float) -> np.ndarray:
    """``colour_codes(values, scale)`` of a recorded step, kept in the row cache."""
    key = (str(reader.path), reader.created, stream, "u8", step, scale)
    hit = ROWS.get(key)
    if hit is None:
        hit = colour_codes(values, scale)
        ROWS.put(key, hit)
    return hit


def colour_scale(reader, stream: str) -> float:
    """The limit of the image panel's symmetric colour scale, the same at every step: the largest
    over steps of min(max |x|, 4 * rms(x)), so that a few outliers do not wash out the image
    (values beyond it saturate)."""
    s = reader[stream]
    st = s.stats_array
    if not len(st):
        return 1.0
    size = max(1, int(np.prod(s.shape)) if s.shape else 1)
    rms = st[:, STAT_NAMES.index("norm")] / np.sqrt(size)
    ends = np.abs(st[:, [STAT_NAMES.index("min"), STAT_NAMES.index("max")]]).max(axis=1)
    lim = np.minimum(ends, 4 * rms)
    lim = lim[np.isfinite(lim)]
    return float(lim.max()) if lim.size and lim.max() > 0 else 1.0


def abs_max(reader, stream: str) -> float:
    """The largest |value| the stream ever held (from its stats): one colour scale for all steps."""
    st = reader[stream].stats_array
    if not len(st):
        return 1.0
    ends = np.abs(st[:, [STAT_NAMES.index("min"), STAT_NAMES.index("max")]])
    ends = ends[np.isfinite(ends)]
    return float(ends.max()) if ends.size and ends.max() > 0 else 1.0
