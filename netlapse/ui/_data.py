"""What the dashboard's data API returns, computed from a ``RunReader`` (numpy only, no web code).

Long series are cut to at most ``max_points`` per line by min/max downsampling: the series is
split into buckets and each bucket keeps its lowest and its highest point, in step order, so
spikes survive. Tensors are returned as float32 arrays for the binary endpoint.
"""

from __future__ import annotations

import math

import numpy as np

from .._stats import STAT_NAMES

__all__ = [
    "MAX_POINTS", "downsample_minmax", "run_summary", "run_detail", "sparklines", "last_step", "metric_series",
    "stat_series", "layer_profile", "start_state", "updates_since", "clean",
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


def last_step(reader) -> int:
    """The run's last committed step, reading one element per stream (not whole arrays)."""
    return reader.last_step()


def _sampled_metrics(reader, points: int) -> dict:
    """About ``points`` evenly spaced metric rows per metric (for sparklines: few chunks read)."""
    n = reader.metric_rows
    if n == 0:
        return {}
    if n <= 4 * points:
        df = reader.metrics
        return {c: _series(df["step"].to_numpy(), df[c].to_numpy(), points) for c in df.columns[1:6]}
    idx = np.unique(np.linspace(0, n - 1, points).round().astype(np.int64))
    steps = reader.metric_steps(idx)
    return {name: _series(steps, reader.metric_values(name, idx), points)
            for name in reader.metric_names[:5]}


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
        "last_step": last_step(reader), "seq": reader.seq,
        "updated": reader.updated or reader.created, "created": reader.created,
        "n_streams": len(reader.streams()), "metrics": _sampled_metrics(reader, SPARK_POINTS) if sparks else {},
    }


def _stream_row(s) -> dict:
    """A stream's row of the layer table: last stats, first and last step (a few chunks read)."""
    n = s.length
    last = {k: clean(v) for k, v in zip(STAT_NAMES, s.stats_row(-1))} if n else {}
    return {
        "name": s.name, "kind": s.kind, "capture": s.capture, "shape": list(s.shape),
        "dtype": s.dtype, "length": int(n),
        "first_step": s.first_step, "last_step": s.last_step,
        "last": last, "meta": {k: v for k, v in s.meta.items() if k not in ("shape", "dtype")},
    }


def sparklines(reader, points: int = SPARK_POINTS) -> dict:
    """Each stream's norm over steps, min/max downsampled to ``points``."""
    norm = STAT_NAMES.index("norm")
    return {n: _series(reader[n].steps, reader[n].stats_array[:, norm], points)
            for n in reader.streams() if reader[n].length}


def run_detail(name: str, reader) -> dict:
    """The run page's metadata: streams with their last stats (sparklines: ``sparklines``)."""
    from ..views.probes import target_gaps

    rows = [_stream_row(reader[n]) for n in reader.streams()]
    for row in rows:
        if row["name"] == "inputs/probe_target":
            row["nonfinite_expected"] = target_gaps(reader)   # grid/plane rows: NaN on purpose
    steps = [r["first_step"] for r in rows if r["first_step"] is not None]
    names = reader.metric_names
    if reader.metric_rows:
        steps.append(int(reader.metric_steps(np.asarray([0]))[0]))
    return {
        **run_summary(name, reader, sparks=False),
        "first_step": min(steps) if steps else 0,
        "config": reader.config, "model": reader.model, "framework": reader.framework,
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


def layer_profile(reader, step: int) -> dict:
    """Per kind, each stream's stats at the last recorded step at or before ``step``."""
    out: dict[str, list] = {}
    for kind in sorted({reader[n].kind for n in reader.streams()}):
        rows = []
        for name in reader.streams():
            s = reader[name]
            if s.kind != kind or not s.length:
                continue
            i = s.length - 1 if step < 0 else s.index_at_or_before(step)
            if i < 0:
                continue
            st = s.stats_row(i)
            rows.append({"name": name, "step": s.step_of(i),
                         **{k: clean(v) for k, v in zip(STAT_NAMES, st)}})
        if rows:
            out[kind] = rows
    return out


def start_state(reader, since: int, seq: int | None = None) -> dict:
    """What a client that has every step up to ``since`` (commit ``seq``) already holds."""
    lengths = {name: reader[name].index_at_or_before(since) + 1 for name in reader.streams()}
    return {"metric_rows": reader.metric_rows_through(since), "lengths": lengths, "seq": seq,
            "status": reader.status}


def _new_metric_rows(reader, done: int, rows: int) -> dict:
    steps = reader.metric_steps(slice(done, rows))
    return {name: _series(steps, reader.metric_values(name, slice(done, rows)), MAX_POINTS)
            for name in reader.metric_names}


def updates_since(reader, sent: dict) -> dict | None:
    """What is new since ``sent`` (see ``start_state``): metric rows and each stream's rows
    after those already sent. Updates ``sent``; None if nothing changed.
    """
    seq = reader.seq
    status = reader.status
    if sent.get("seq") == seq and sent.get("status") == status:
        return None
    msg = {"seq": seq, "status": status, "last_step": last_step(reader),
           "updated": reader.updated, "metrics": {}, "streams": {}}
    rows = reader.metric_rows
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
            row["new_norm"] = _series(s.read_steps(done), s.read_stats(done)[:, norm], MAX_POINTS)
            msg["streams"][name] = row
            lengths[name] = s.length
    sent["seq"], sent["status"] = seq, status
    return msg
