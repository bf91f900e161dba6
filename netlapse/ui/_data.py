"""What the dashboard's data API returns, computed from a ``RunReader`` (numpy only, no web code).

Long series are cut to at most ``max_points`` per line by min/max downsampling: the series is
split into buckets and each bucket keeps its lowest and its highest point, in step order, so
spikes survive. Tensors are returned as float32 arrays for the binary endpoint.
"""

from __future__ import annotations

import math

import numpy as np

from .._stats import HIST_BINS, STAT_NAMES

__all__ = [
    "MAX_POINTS", "downsample_minmax", "run_summary", "run_detail", "metric_series",
    "stat_series", "heatmap", "tensor_at", "abs_max", "layer_profile", "start_state", "updates_since", "clean",
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


def _metric_frame(reader, start=None, end=None):
    df = reader.metrics
    if start is not None:
        df = df[df["step"] >= int(start)]
    if end is not None:
        df = df[df["step"] <= int(end)]
    return df


def run_summary(name: str, reader) -> dict:
    """One row of the runs page."""
    df = reader.metrics
    sparks = {}
    for col in df.columns[1:6]:
        sparks[col] = _series(df["step"].to_numpy(), df[col].to_numpy(), SPARK_POINTS)
    return {
        "id": name, "name": reader.name, "status": reader.status,
        "last_step": int(reader.last_step()), "seq": int(reader.commit.get("seq", 0)),
        "updated": reader.commit.get("time") or reader.manifest.get("created"),
        "created": reader.manifest.get("created"),
        "n_streams": len(reader.streams()), "metrics": sparks,
    }


def _stream_row(s) -> dict:
    st = s.stats_array
    last = {k: clean(v) for k, v in zip(STAT_NAMES, st[-1])} if len(st) else {}
    steps = s.steps
    spark = _series(steps, st[:, STAT_NAMES.index("norm")], SPARK_POINTS) if len(st) else None
    return {
        "name": s.name, "kind": s.kind, "capture": s.capture, "shape": list(s.shape),
        "dtype": s.dtype, "length": int(s.length),
        "first_step": int(steps[0]) if len(steps) else None,
        "last_step": int(steps[-1]) if len(steps) else None,
        "last": last, "norm_spark": spark, "meta": {k: v for k, v in s.meta.items()
                                                     if k not in ("shape", "dtype")},
    }


def run_detail(name: str, reader) -> dict:
    """The run page's metadata: streams with their last stats and a norm sparkline."""
    rows = [_stream_row(reader[n]) for n in reader.streams()]
    steps = [r["first_step"] for r in rows if r["first_step"] is not None]
    mdf = reader.metrics
    if len(mdf):
        steps.append(int(mdf["step"].iloc[0]))
    return {
        **run_summary(name, reader),
        "first_step": min(steps) if steps else 0,
        "config": reader.config, "model": reader.model, "framework": reader.manifest.get("framework"),
        "metric_names": list(mdf.columns[1:]), "streams": rows,
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


def tensor_at(reader, stream: str, step: int):
    """``(recorded_step, float32 array)``: the last recorded tensor at or before ``step``
    (the first one if ``step`` is before it); ``step=-1`` is the last."""
    s = reader[stream]
    steps = s.steps
    if len(steps) == 0:
        raise LookupError(f"{stream} has no committed steps yet")
    if step < 0:
        i = len(steps) - 1
    else:
        i = max(0, int(np.searchsorted(steps, step, side="right")) - 1)
    value = s.at(int(steps[i]))
    return int(steps[i]), np.ascontiguousarray(value, dtype="<f4")


def abs_max(reader, stream: str) -> float:
    """The largest |value| the stream ever held (from its stats): one colour scale for all steps."""
    st = reader[stream].stats_array
    if not len(st):
        return 1.0
    ends = np.abs(st[:, [STAT_NAMES.index("min"), STAT_NAMES.index("max")]])
    ends = ends[np.isfinite(ends)]
    return float(ends.max()) if ends.size and ends.max() > 0 else 1.0


def layer_profile(reader, step: int) -> dict:
    """Per kind, each stream's stats at the last recorded step at or before ``step``."""
    out: dict[str, list] = {}
    for kind in sorted({reader[n].kind for n in reader.streams()}):
        rows = []
        for name in reader.streams():
            s = reader[name]
            steps = s.steps
            if s.kind != kind or not len(steps):
                continue
            i = len(steps) - 1 if step < 0 else int(np.searchsorted(steps, step, side="right")) - 1
            if i < 0:
                continue
            st = s._array("stats")[i]
            rows.append({"name": name, "step": int(steps[i]),
                         **{k: clean(v) for k, v in zip(STAT_NAMES, st)}})
        if rows:
            out[kind] = rows
    return out


def start_state(reader, since: int) -> dict:
    """What a client that has every step up to ``since`` already holds (for ``updates_since``)."""
    lengths = {name: int(np.searchsorted(reader[name].steps, since, side="right"))
               for name in reader.streams()}
    return {"metric_step": int(since), "lengths": lengths, "seq": None, "status": None}


def updates_since(reader, sent: dict) -> dict | None:
    """What is new since ``sent`` (see ``start_state``): metric rows after the last metric step
    sent, and each stream's rows after its sent length. Updates ``sent``; None if nothing changed.
    """
    seq = int(reader.commit.get("seq", 0))
    status = reader.status
    if sent.get("seq") == seq and sent.get("status") == status:
        return None
    msg = {"seq": seq, "status": status, "last_step": int(reader.last_step()),
           "updated": reader.commit.get("time"), "metrics": {}, "streams": {}}
    df = reader.metrics
    if len(df) and int(df["step"].iloc[-1]) > sent.get("metric_step", -1):
        new = df[df["step"] > sent.get("metric_step", -1)]
        steps = new["step"].to_numpy()
        for name in df.columns[1:]:
            msg["metrics"][name] = _series(steps, new[name].to_numpy(), MAX_POINTS)
        sent["metric_step"] = int(df["step"].iloc[-1])
    lengths = sent.setdefault("lengths", {})
    norm = STAT_NAMES.index("norm")
    for name in reader.streams():
        s = reader[name]
        done = lengths.get(name, 0)
        if done != s.length:
            row = _stream_row(s)
            row.pop("norm_spark")
            row["new_norm"] = _series(s.steps[done:], s.stats_array[done:, norm], MAX_POINTS)
            msg["streams"][name] = row
            lengths[name] = s.length
    sent["seq"], sent["status"] = seq, status
    return msg
