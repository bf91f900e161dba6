"""What the instruments read: per-stream stats (and per-unit activity) over steps, the metrics,
and the model summary, from a run folder (its committed prefix) or from the live writer.

Stats columns are ``netlapse._stats.STAT_NAMES``; the indices below name them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Series", "RunData", "MEAN", "STD", "MIN", "MAX", "NORM", "MEAN_ABS", "ZERO_FRAC",
           "NONFINITE", "from_reader"]

MEAN, STD, MIN, MAX, NORM, MEAN_ABS, ZERO_FRAC, NONFINITE = range(8)


@dataclass
class Series:
    """One stream: ``steps`` (T,), ``stats`` (T, 8) and, for activations recorded with unit
    activity, ``active`` / ``saturated`` (T, units): per unit, the fraction of its outputs that
    are non-zero / within the margin of a bound."""

    name: str
    meta: dict
    steps: np.ndarray
    stats: np.ndarray
    active: np.ndarray | None = None
    saturated: np.ndarray | None = None
    unit_reader: object = None   # (key, start, stop) -> rows, when ``active`` is read on demand

    def has_units(self) -> bool:
        return self.active is not None or self.unit_reader is not None

    def unit_rows(self, key: str, start: int, stop: int) -> np.ndarray:
        """Rows ``start..stop`` of per-unit activity ``key`` ("active"): from memory, or read
        on demand (a long run's dead-unit check reads its last rows, then back only as far as
        needed)."""
        arr = getattr(self, key)
        if arr is not None:
            return arr[start:stop]
        return self.unit_reader(key, start, min(stop, len(self.steps)))

    @property
    def kind(self) -> str:
        return self.meta.get("kind", self.name.split("/", 1)[0])

    @property
    def shape(self) -> tuple:
        return tuple(self.meta.get("shape", ()))

    @property
    def target(self) -> str:
        """The parameter or module name (the stream name without its kind)."""
        return self.name.split("/", 1)[1] if "/" in self.name else self.name

    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1


class RunData:
    """Streams (loaded on first use), metrics and model summary of one run, up to ``until``."""

    def __init__(self, name: str, metas: dict, loader, metrics: dict, model: dict | None,
                 until: int | None = None):
        self.name = name
        self.metas = metas                 # stream name -> meta, in recording order
        self._loader = loader              # name -> Series (full length)
        self.metrics = metrics             # metric name -> (steps, values)
        self.model = model or {}
        self.until = until
        self._cache: dict[str, Series] = {}

    def names(self, kind: str | None = None) -> list[str]:
        return [n for n, m in self.metas.items()
                if kind is None or m.get("kind", n.split("/", 1)[0]) == kind]

    def get(self, name: str) -> Series | None:
        if name not in self.metas:
            return None
        s = self._cache.get(name)
        if s is None:
            s = self._cache[name] = self._cut(self._loader(name))
        return s

    def _cut(self, s: Series) -> Series:
        """``s`` without its steps after ``until``."""
        if self.until is None or not len(s.steps) or s.steps[-1] <= self.until:
            return s
        k = int(np.searchsorted(s.steps, self.until, side="right"))
        return Series(s.name, s.meta, s.steps[:k], s.stats[:k],
                      None if s.active is None else s.active[:k],
                      None if s.saturated is None else s.saturated[:k], s.unit_reader)

    def prefetch(self, threads: int | None = None) -> None:
        """Load every stream now, on a few threads (chunk decoding releases the GIL)."""
        import os
        from concurrent.futures import ThreadPoolExecutor

        todo = [n for n in self.metas if n not in self._cache]
        workers = min(len(todo), threads or min(4, os.cpu_count() or 1))
        if workers <= 1:
            return
        with ThreadPoolExecutor(workers) as pool:
            for name, s in zip(todo, pool.map(self._loader, todo)):
                self._cache[name] = self._cut(s)

    def series(self, kind: str) -> list[Series]:
        out = [self.get(n) for n in self.names(kind)]
        return [s for s in out if s is not None and len(s.steps)]

    def step_range(self) -> list:
        lo, hi = None, None
        for name in self.metas:
            s = self.get(name)
            if s is not None and len(s.steps):
                lo = int(s.steps[0]) if lo is None else min(lo, int(s.steps[0]))
                hi = int(s.steps[-1]) if hi is None else max(hi, int(s.steps[-1]))
        for steps, _ in self.metrics.values():
            if len(steps):
                lo = int(steps[0]) if lo is None else min(lo, int(steps[0]))
                hi = int(steps[-1]) if hi is None else max(hi, int(steps[-1]))
        return [lo, hi]

    # ------------------------------------------------------------------ model order
    def param_order(self) -> dict[str, int]:
        """Parameter name -> its position in the model (the model summary's order, else the
        order streams were first recorded in)."""
        order = {p["name"]: i for i, p in enumerate(self.model.get("parameters", []))}
        for n in self.metas:
            order.setdefault(n.split("/", 1)[-1], len(order))
        return order

    def module_info(self) -> dict[str, dict]:
        """Module name -> its summary entry (``type``, ``leaf``...) with ``index`` (model order)."""
        out = {}
        for i, m in enumerate(self.model.get("modules", [])):
            out[m.get("name") or "model"] = {**m, "index": i}
        return out

    def ordered(self, names) -> list[str]:
        """Stream names sorted by model order of their parameter or module."""
        porder = self.param_order()
        morder = {k: v["index"] for k, v in self.module_info().items()}

        def key(stream):
            target = stream.split("/", 1)[-1]
            if target in porder:
                return (porder[target], stream)
            base = target.split(":")[0]
            if base in morder:
                return (morder[base], stream)
            return (len(porder) + len(morder), stream)

        return sorted(names, key=key)

    def layer_of(self, param: str) -> str:
        """The layer (module) a parameter belongs to: ``fc1.weight`` -> ``fc1``,
        ``dense/kernel`` -> ``dense``."""
        cut = max(param.rfind("."), param.rfind("/"))
        return param[:cut] if cut > 0 else param

    def trainable(self, param: str) -> bool:
        for p in self.model.get("parameters", []):
            if p["name"] == param:
                return bool(p.get("trainable", True))
        return True

    def loss_metrics(self) -> list[str]:
        return [n for n in self.metrics if "loss" in n.lower()]


def from_reader(reader, until: int | None = None) -> RunData:
    """A RunData over a ``RunReader`` (what ``commit.json`` publishes)."""
    from ..store.layout import stream_kind  # noqa: F401 - keeps the store import local

    metas = {}
    for name in reader.manifest.get("streams", {}):
        if name in reader:
            metas[name] = reader[name].meta

    from ..store._direct_read import read_prefix, read_rows

    def load(name: str) -> Series:
        s = reader[name]
        n = s.length

        def rows(key):
            return read_prefix(reader, f"{name}/{key}", n)

        info = s.meta.get("units") or {}
        saturated = rows("saturated") if info.get("bounds") and n else None
        if not n:
            return Series(name, s.meta, np.zeros(0, np.int64), np.zeros((0, 8)))

        def unit_reader(key, start, stop):
            return read_rows(reader, f"{name}/{key}", start, stop, n)

        return Series(name, s.meta, rows("steps").astype(np.int64), rows("stats"), None,
                      saturated, unit_reader if info else None)

    metrics = {}
    if reader.commit.get("metric_rows", 0):
        df = reader.metrics
        steps = df["step"].to_numpy(np.int64)
        cols = [c for c in df.columns if c != "step"]
        # NaN marks a row that did not log a metric; a row with nothing but NaN logged NaN
        # (rows exist only when something was logged), so it counts for every metric
        all_nan = df[cols].isna().all(axis=1).to_numpy() if cols else np.zeros(len(df), bool)
        for col in cols:
            vals = df[col].to_numpy(np.float64)
            keep = ~np.isnan(vals) | all_nan
            st, va = steps[keep], vals[keep]
            if until is not None:
                k = st <= until
                st, va = st[k], va[k]
            metrics[col] = (st, va)
    return RunData(reader.name if hasattr(reader, "name") else str(reader.path), metas, load,
                   metrics, reader.model, until)
