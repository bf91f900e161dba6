"""What the writer derives from tensors it already holds, for the doctor (docs/doctor.md).

- Unit activity of activations: when a stream's meta has ``units`` (``axis``: the unit axis,
  i.e. features or channels; ``act``: the activation; ``bounds``: ``[lo, hi]`` of a bounded
  activation; ``margin``), each step stores, per unit, the fraction of its outputs that are
  non-zero (``active``) and, with bounds, the fraction within ``margin`` of a bound
  (``saturated``), as float32 rows of ``<stream>/active`` and ``<stream>/saturated``.
- Updates: when a weights stream's meta has ``updates: "stats"``, the writer keeps a copy of
  the weights it saw last and records the stats of ``w_k - w_(k-every)`` as the stream
  ``updates/<param>``. Memory: one copy of every recorded weight tensor on the writer side
  (the model's parameter size in their host dtype); nothing on the training thread. A step
  that is not ``every`` after the previous one (a dropped step) restarts the difference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _stats

__all__ = ["Derived", "Derivation", "unit_activity", "DEFAULT_MARGIN_SHARE", "updates_meta"]

DEFAULT_MARGIN_SHARE = 0.015   # of the activation's range: tanh |a| > 0.97, sigmoid < .015 / > .985


def unit_activity(x: np.ndarray, axis: int, bounds=None, margin: float | None = None):
    """``(active, saturated)``: per unit along ``axis``, the fraction of non-zero outputs and
    (with ``bounds``) of outputs within ``margin`` of ``bounds[0]`` or ``bounds[1]``."""
    x = np.asarray(x)
    if x.ndim == 0:
        x = x.reshape(1)
    axis = axis % x.ndim
    units = x.shape[axis]
    rest = tuple(i for i in range(x.ndim) if i != axis)
    per_unit = max(1, x.size // max(units, 1))
    active = (np.count_nonzero(x, axis=rest) / per_unit).astype(np.float32).reshape(units)
    saturated = None
    if bounds is not None:
        lo, hi = float(bounds[0]), float(bounds[1])
        m = margin if margin is not None else DEFAULT_MARGIN_SHARE * (hi - lo)
        near = (x <= lo + m) | (x >= hi - m)
        saturated = (np.count_nonzero(near, axis=rest) / per_unit).astype(np.float32).reshape(units)
    return active, saturated


def updates_meta(weights_meta: dict) -> dict:
    every = int(weights_meta.get("every", 1))
    return {"kind": "updates", "capture": "stats", "shape": list(weights_meta.get("shape", [])),
            "dtype": weights_meta.get("dtype", ""), "every": every, "span": every}


@dataclass
class Derivation:
    """Derived rows of one group at one step: ``units[i]`` (a dict of rows or None) for the
    group's ``i``-th tensor; ``updates``: ``(stream, meta, stats_row, hist_row)`` tuples."""

    units: list
    updates: list


class Derived:
    """The writer's state for derived rows: the last weights seen per stream."""

    def __init__(self):
        self._prev: dict[str, tuple[int, np.ndarray]] = {}

    def take(self, specs, views, step: int) -> Derivation | None:
        """Derive what ``specs`` ask for from ``views`` (read now; they may be live memory)."""
        units = None
        updates = []
        deltas, targets = [], []
        for i, (spec, view) in enumerate(zip(specs, views)):
            meta = spec.meta
            u = meta.get("units")
            if u:
                if units is None:
                    units = [None] * len(specs)
                units[i] = self._units(u, view)
            if meta.get("updates") == "stats":
                d = self._delta(spec.name, meta, view, step)
                if d is not None:
                    deltas.append(d)
                    targets.append(spec)
        if deltas:
            stats, hist = _stats.summarize_many(deltas)
            for k, spec in enumerate(targets):
                updates.append(("updates/" + spec.name.split("/", 1)[1], updates_meta(spec.meta),
                                stats[k], hist[k]))
            for spec, view in zip(targets, views_for(specs, views, targets)):
                self._prev[spec.name][1][...] = view   # the delta buffer becomes the new copy
        if units is None and not updates:
            return None
        return Derivation(units or [None] * len(specs), updates)

    def forget(self, specs) -> None:
        """The group's tensors changed while read: restart their differences."""
        for spec in specs:
            self._prev.pop(spec.name, None)

    @staticmethod
    def _units(u: dict, view: np.ndarray):
        axis = int(u.get("axis", -1))
        count = u.get("count")
        if view.ndim == 0 or (count is not None and view.shape[axis % view.ndim] != count):
            nan = np.full(int(count or 1), np.nan, np.float32)   # keeps the rows aligned
            return {"active": nan, **({"saturated": nan} if u.get("bounds") else {})}
        active, saturated = unit_activity(view, axis, u.get("bounds"), u.get("margin"))
        rows = {"active": active}
        if saturated is not None:
            rows["saturated"] = saturated
        return rows

    def _delta(self, name: str, meta: dict, view: np.ndarray, step: int):
        """``view - previous`` written into the previous copy's buffer (returned), or None at
        the first step (or after a gap); the caller then refreshes the copy from ``view``."""
        prev = self._prev.get(name)
        every = int(meta.get("every", 1))
        if prev is None or prev[1].shape != view.shape or step - prev[0] != every:
            self._prev[name] = (step, np.array(view, copy=True))
            return None
        buf = prev[1]
        with np.errstate(all="ignore"):   # inf - inf is NaN: data, not a warning
            np.subtract(view, buf, out=buf)
        self._prev[name] = (step, buf)
        return buf


def views_for(specs, views, targets):
    """The views of ``targets`` (a subsequence of ``specs``), in order."""
    want = {id(t) for t in targets}
    return [v for s, v in zip(specs, views) if id(s) in want]
