"""What the writer derives from tensors it already holds, for the doctor (docs/doctor.md).

- Unit activity of activations: when a stream's meta has ``units`` (``axis``: the unit axis,
  i.e. features or channels; ``act``: the activation; ``bounds``: ``[lo, hi]`` of a bounded
  activation; ``margin``), each step stores, per unit, the fraction of its outputs that are
  non-zero (``active``) and, with bounds, the fraction within ``margin`` of a bound
  (``saturated``), as float32 rows of ``<stream>/active`` and ``<stream>/saturated``.
- Updates: when a weights stream's meta has ``updates: "stats"``, the writer keeps a copy of
  the weights it saw last and records the stats of ``w_k - w_(k-every)`` as the stream
  ``updates/<param>`` (one compiled pass per tensor: ``_stats.summarize_with_delta``).
  Memory: one copy of every recorded weight tensor on the writer side
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
        self._plans: dict = {}   # group -> what its metas ask for (read once per group)

    def _plan(self, group):
        """``(units, updates)`` of a group: ``(i, units meta)`` of its tensors whose unit
        activity is due, ``(i, stream, every, updates/ stream, its meta)`` of its weights whose
        ``updates/`` are."""
        plan = self._plans.get(group)
        if plan is None:
            units, updates = [], []
            for i, spec in enumerate(group.specs):
                meta = spec.meta
                if meta.get("units"):
                    units.append((i, meta["units"]))
                if meta.get("updates") == "stats":
                    updates.append((i, spec.name, int(meta.get("every", 1)),
                                    "updates/" + spec.name.split("/", 1)[1], updates_meta(meta)))
            plan = self._plans[group] = (units, updates)
        return plan

    def summarize(self, group, views, step: int) -> tuple[np.ndarray, np.ndarray, "Derivation | None"]:
        """``(stats, hist, derivation)``: the summaries of ``views`` (the tensors of ``group``,
        read now; they may be live memory) and what its specs ask to derive from them.

        A weight whose ``updates/`` row is due goes through ``_stats.summarize_with_delta``:
        its summary, the summary of its difference to the last copy and the new copy, one
        tensor at a time while it is in the cache, instead of four passes over the whole model.
        """
        unit_plan, update_plan = self._plan(group)
        units = None
        if unit_plan:
            units = [None] * len(views)
            for i, u in unit_plan:
                units[i] = self._units(u, views[i])
        pairs: list[int] = []                   # weights whose difference to the copy is due
        due = []
        for entry in update_plan:
            i, name, every = entry[0], entry[1], entry[2]
            view = views[i]
            prev = self._prev.get(name)
            if prev is None or prev[1].shape != view.shape or step - prev[0] != every:
                self._prev[name] = (step, np.array(view, copy=True))   # restart
            else:
                pairs.append(i)
                due.append(entry)
        if not pairs:
            stats, hist = _stats.summarize_many(views)
            return stats, hist, None if units is None else Derivation(units, [])
        k = len(views)
        if len(pairs) == k:
            prevs = [self._prev[name][1] for _, name, *_ in due]
            dstats, dhist, stats, hist = _stats.summarize_with_delta(views, prevs)
        else:
            stats = np.empty((k, _stats.N_STATS))
            hist = np.empty((k, _stats.HIST_BINS), np.int64)
            paired = set(pairs)
            rest = [i for i in range(k) if i not in paired]
            stats[rest], hist[rest] = _stats.summarize_many([views[i] for i in rest])
            prevs = [self._prev[name][1] for _, name, *_ in due]
            dstats, dhist, stats[pairs], hist[pairs] = _stats.summarize_with_delta(
                [views[i] for i in pairs], prevs)
        updates = []
        for row, (_, name, _, stream, meta) in enumerate(due):
            self._prev[name] = (step, prevs[row])
            updates.append((stream, meta, dstats[row], dhist[row]))
        return stats, hist, Derivation(units or [None] * k, updates)

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
