"""What the dashboard's data API returns, computed from a ``RunReader`` (numpy only, no web code).

Long series are cut to at most ``max_points`` per line by min/max downsampling: the series is
split into buckets and each bucket keeps its lowest and its highest point, in step order, so
spikes survive. Tensors are returned as float32 arrays for the binary endpoint.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict

import numpy as np

from .._stats import HIST_BINS, STAT_NAMES

__all__ = [
    "MAX_POINTS", "downsample_minmax", "run_summary", "run_detail", "sparklines", "last_step", "metric_series",
    "stat_series", "heatmap", "tensor_at", "abs_max", "colour_scale", "colour_codes", "layer_profile", "start_state", "updates_since", "clean",
]

MAX_POINTS = 2000
SPARK_POINTS = 64


def clean(value):
    """A float for JSON: NaN and infinities become None."""
    value = float(value)
    return value if math.isfinite(value) else None


def _clean_list(values) -> list:
    arr = np.asarray(values, dtype=np.float64)
    out = arr.tolist()
    if not np.isfinite(arr).all():
        out = [v if math.isfinite(v) else None for v in out]
    return out


def downsample_minmax(x: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS):
    """At most ``max_points`` points of ``(x, y)``: per bucket its min and its max, in x order."""
    x = np.asarray(x)
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    max_points = max(2, int(max_points))
    if n <= max_points:
        return x, y
    buckets = max_points // 2
    size = -(-n // buckets)
    pad = buckets * size - n
    padded = np.concatenate([y, np.full(pad, np.nan)]) if pad else y
    rows = padded.reshape(buckets, size)
    filled_lo = np.where(np.isnan(rows), np.inf, rows)
    filled_hi = np.where(np.isnan(rows), -np.inf, rows)
    base = np.arange(buckets) * size
    lo = base + filled_lo.argmin(axis=1)
    hi = base + filled_hi.argmax(axis=1)
    idx = np.unique(np.concatenate([lo, hi]))
    idx = idx[idx < n]
    return x[idx], y[idx]


def _series(x, y, max_points: int) -> dict:
    y = np.asarray(y, dtype=np.float64)
    keep = ~np.isnan(y)
    xs, ys = downsample_minmax(np.asarray(x)[keep], y[keep], max_points)
    return {"step": np.asarray(xs, dtype=np.int64).tolist(), "value": _clean_list(ys),
            "n": int(keep.sum())}


def _step_at(s, i: int) -> int:
    """Step of row ``i`` of stream ``s``, reading one chunk unless all steps are loaded."""
    if "steps" in s.__dict__:
        return int(s.steps[i])
    return int(s._array("steps")[i])


def _stats_row(s, i: int) -> np.ndarray:
    if "stats_array" in s.__dict__:
        return s.stats_array[i]
    return np.asarray(s._array("stats")[i], np.float64)


def last_step(reader) -> int:
    """The run's last committed step, reading one element per stream (not whole arrays)."""
    ends = [_step_at(reader[n], reader[n].length - 1) for n in reader.streams() if reader[n].length]
    rows = int(reader.commit.get("metric_rows", 0))
    if rows:
        from ..store.layout import METRICS_GROUP

        ends.append(int(reader._array(f"{METRICS_GROUP}/step")[rows - 1]))
    return max(ends) if ends else 0


def _sampled_metrics(reader, points: int) -> dict:
    """About ``points`` evenly spaced metric rows per metric (for sparklines: few chunks read)."""
    from ..store.layout import METRICS_GROUP, metric_key

    n = int(reader.commit.get("metric_rows", 0))
    if n == 0:
        return {}
    if n <= 4 * points:
        df = reader.metrics
        return {c: _series(df["step"].to_numpy(), df[c].to_numpy(), points) for c in df.columns[1:6]}
    idx = np.unique(np.linspace(0, n - 1, points).round().astype(np.int64))
    steps = np.asarray(reader._array(f"{METRICS_GROUP}/step").get_orthogonal_selection((idx,)))
    out = {}
    for name in list(reader.commit.get("metric_names", []))[:5]:
        vals = reader._array(f"{METRICS_GROUP}/{metric_key(name)}").get_orthogonal_selection((idx,))
        out[name] = _series(steps, np.asarray(vals, np.float64), points)
    return out


def _metric_frame(reader, start=None, end=None):
    df = reader.metrics
    if start is not None:
        df = df[df["step"] >= int(start)]
    if end is not None:
        df = df[df["step"] <= int(end)]
    return df


def run_summary(name: str, reader, sparks: bool = True) -> dict:
    """One row of the runs page."""
    return {
        "id": name, "name": reader.name, "status": reader.status,
        "last_step": last_step(reader), "seq": int(reader.commit.get("seq", 0)),
        "updated": reader.commit.get("time") or reader.manifest.get("created"),
        "created": reader.manifest.get("created"),
        "n_streams": len(reader.streams()), "metrics": _sampled_metrics(reader, SPARK_POINTS) if sparks else {},
    }


def _stream_row(s) -> dict:
    """A stream's row of the layer table: last stats, first and last step (a few chunks read)."""
    n = s.length
    last = {k: clean(v) for k, v in zip(STAT_NAMES, _stats_row(s, n - 1))} if n else {}
    return {
        "name": s.name, "kind": s.kind, "capture": s.capture, "shape": list(s.shape),
        "dtype": s.dtype, "length": int(n),
        "first_step": _step_at(s, 0) if n else None,
        "last_step": _step_at(s, n - 1) if n else None,
        "last": last, "meta": {k: v for k, v in s.meta.items() if k not in ("shape", "dtype")},
    }


def sparklines(reader, points: int = SPARK_POINTS) -> dict:
    """Each stream's norm over steps, min/max downsampled to ``points``."""
    norm = STAT_NAMES.index("norm")
    return {n: _series(reader[n].steps, reader[n].stats_array[:, norm], points)
            for n in reader.streams() if reader[n].length}


def run_detail(name: str, reader) -> dict:
    """The run page's metadata: streams with their last stats (sparklines: ``sparklines``)."""
    rows = [_stream_row(reader[n]) for n in reader.streams()]
    steps = [r["first_step"] for r in rows if r["first_step"] is not None]
    names = list(reader.commit.get("metric_names", []))
    if int(reader.commit.get("metric_rows", 0)):
        from ..store.layout import METRICS_GROUP

        steps.append(int(reader._array(f"{METRICS_GROUP}/step")[0]))
    return {
        **run_summary(name, reader, sparks=False),
        "first_step": min(steps) if steps else 0,
        "config": reader.config, "model": reader.model, "framework": reader.manifest.get("framework"),
        "metric_names": names, "streams": rows,
        "probe_layout": reader.config.get("probe_layout") if isinstance(reader.config, dict) else None,
    }


def metric_series(reader, start=None, end=None, max_points: int = MAX_POINTS) -> dict:
    df = _metric_frame(reader, start, end)
    steps = df["step"].to_numpy()
    return {name: _series(steps, df[name].to_numpy(), max_points) for name in df.columns[1:]}


def stat_series(reader, stream: str, stats=("norm",), max_points: int = MAX_POINTS) -> dict:
    s = reader[stream]
    bad = [k for k in stats if k not in STAT_NAMES]
    if bad:
        raise ValueError(f"unknown stat {bad[0]!r}; choose from {', '.join(STAT_NAMES)}")
    arr = s.stats_array
    return {k: _series(s.steps, arr[:, STAT_NAMES.index(k)], max_points) for k in stats}


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
    base = (str(reader.path), reader.manifest.get("created"), s.name)
    hit = ROWS.get(base + (i,))
    if hit is not None:
        return hit
    arr = s._array("values")
    chunk = int(arr.chunks[0])
    c0 = (i // chunk) * chunk
    c1 = min(c0 + chunk, s.length)
    block = np.asarray(arr[c0:c1])
    for j in range(c0, c1):
        ROWS.put(base + (j,), np.ascontiguousarray(block[j - c0], dtype="<f4"))
    return ROWS.get(base + (i,)) if ROWS.get(base + (i,)) is not None else \
        np.ascontiguousarray(block[i - c0], dtype="<f4")


def tensor_at(reader, stream: str, step: int):
    """``(recorded_step, float32 array, previous recorded step, next recorded step)``: the last
    recorded tensor at or before ``step`` (the first one if ``step`` is before it); ``step=-1``
    is the last. Neighbours are None at the ends."""
    s = reader[stream]
    n = s.length
    if n == 0:
        raise LookupError(f"{stream} has no committed steps yet")
    if s.capture != "full":
        s.at(0)   # the reader's message: stats only
    steps = s.steps   # a full stream has few rows: read its steps once (cached with the reader)
    i = n - 1 if step < 0 else max(0, int(np.searchsorted(steps, step, side="right")) - 1)
    prev_step = int(steps[i - 1]) if i > 0 else None
    next_step = int(steps[i + 1]) if i + 1 < n else None
    return int(steps[i]), _row_values(reader, s, i), prev_step, next_step


def colour_codes(arr: np.ndarray, absmax: float) -> np.ndarray:
    """uint8 codes of a diverging colour scale on [-absmax, absmax] (128 = 0; NaN -> 128):
    what the image panel draws, a quarter of the float32 bytes."""
    x = np.asarray(arr, np.float64)
    k = np.floor(127.5 + x * (127.5 / absmax if absmax > 0 else 0.0) + 0.5)
    k = np.where(np.isnan(k), 128, k)
    return np.clip(k, 0, 255).astype(np.uint8)


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


def _index_at(s, step: int) -> int:
    """Row of the last recorded step at or before ``step`` (-1 if none); cheap when ``step`` is
    at or past the stream's end."""
    n = s.length
    if n == 0:
        return -1
    last = _step_at(s, n - 1)
    if step >= last:
        return n - 1
    first = _step_at(s, 0)
    if step < first:
        return -1
    if "steps" not in s.__dict__ and n > 1 and (last - first) % (n - 1) == 0 and last > first:
        # evenly spaced steps (the usual case): guess the row, then check it with two reads
        i = (step - first) // ((last - first) // (n - 1))
        if 0 <= i < n - 1 and _step_at(s, i) <= step < _step_at(s, i + 1):
            return int(i)
    return int(np.searchsorted(s.steps, step, side="right")) - 1


def layer_profile(reader, step: int) -> dict:
    """Per kind, each stream's stats at the last recorded step at or before ``step``."""
    out: dict[str, list] = {}
    for kind in sorted({reader[n].kind for n in reader.streams()}):
        rows = []
        for name in reader.streams():
            s = reader[name]
            if s.kind != kind or not s.length:
                continue
            i = s.length - 1 if step < 0 else _index_at(s, step)
            if i < 0:
                continue
            st = _stats_row(s, i)
            rows.append({"name": name, "step": _step_at(s, i),
                         **{k: clean(v) for k, v in zip(STAT_NAMES, st)}})
        if rows:
            out[kind] = rows
    return out


def start_state(reader, since: int, seq: int | None = None) -> dict:
    """What a client that has every step up to ``since`` (commit ``seq``) already holds."""
    from ..store.layout import METRICS_GROUP

    lengths = {name: _index_at(reader[name], since) + 1 for name in reader.streams()}
    rows = int(reader.commit.get("metric_rows", 0))
    done = 0
    if rows:
        col = reader._array(f"{METRICS_GROUP}/step")
        done = rows if int(col[rows - 1]) <= since else int(
            np.searchsorted(np.asarray(col[:rows]), since, side="right"))
    return {"metric_rows": done, "lengths": lengths, "seq": seq, "status": reader.status}


def _new_metric_rows(reader, done: int, rows: int) -> dict:
    from ..store.layout import METRICS_GROUP, metric_key

    steps = np.asarray(reader._array(f"{METRICS_GROUP}/step")[done:rows], np.int64)
    out = {}
    for name in reader.commit.get("metric_names", []):
        vals = np.asarray(reader._array(f"{METRICS_GROUP}/{metric_key(name)}")[done:rows], np.float64)
        out[name] = _series(steps, vals, MAX_POINTS)
    return out


def updates_since(reader, sent: dict) -> dict | None:
    """What is new since ``sent`` (see ``start_state``): metric rows and each stream's rows
    after those already sent. Updates ``sent``; None if nothing changed.
    """
    seq = int(reader.commit.get("seq", 0))
    status = reader.status
    if sent.get("seq") == seq and sent.get("status") == status:
        return None
    msg = {"seq": seq, "status": status, "last_step": last_step(reader),
           "updated": reader.commit.get("time"), "metrics": {}, "streams": {}}
    rows = int(reader.commit.get("metric_rows", 0))
    if rows > sent.get("metric_rows", 0):
        msg["metrics"] = _new_metric_rows(reader, sent.get("metric_rows", 0), rows)
        sent["metric_rows"] = rows
    lengths = sent.setdefault("lengths", {})
    norm = STAT_NAMES.index("norm")
    for name in reader.streams():
        s = reader[name]
        done = lengths.get(name, 0)
        if done != s.length:
            row = _stream_row(s)
            row["new_norm"] = _series(s.steps[done:], s.stats_array[done:, norm], MAX_POINTS)
            msg["streams"][name] = row
            lengths[name] = s.length
    sent["seq"], sent["status"] = seq, status
    return msg
