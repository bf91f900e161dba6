"""Unit instruments: dead ReLU units and saturated bounded activations.

They read the per-unit activity the recorders store with activation stats (format 2): for
each unit (output feature; channel of a convolution) the fraction of its outputs that are
non-zero (``active``) and, for bounded activations, the fraction within ``margin`` of a bound
(``saturated``). The stream's meta ``units`` names the activation (``act``).

- ``dead_units``: in a ReLU-family layer, a unit is dead when it output 0 for every sample at
  each of the recent captured steps (``recent``: a tenth of them, 10 to 100). A layer is
  flagged when ``DEAD_WARN`` (20 %) of its units are dead, a problem from ``DEAD`` (50 %).
  ``first_step``: the step from which enough units stayed dead.
- ``saturated_units``: in a bounded activation (tanh, sigmoid, hardtanh, softsign...), the
  fraction of outputs within the margin of a bound (1.5 % of the range: tanh ``|a| > 0.97``)
  is at least ``SAT`` (50 %, "most outputs") for most recent steps; a warning from
  ``SAT_WARN`` (25 %). The model's last layer is left out (a confident output is saturated
  on purpose).
"""

from __future__ import annotations

import numpy as np

from ._common import Skip, dist_view, onset, recent
from ._report import Finding

__all__ = ["check_dead", "check_saturated", "RELU_FAMILY", "DEAD", "DEAD_WARN", "SAT", "SAT_WARN"]

RELU_FAMILY = ("relu", "relu6")
DEAD, DEAD_WARN = 0.5, 0.2
SAT, SAT_WARN = 0.5, 0.25


def _with_units(data) -> list:
    acts = data.series("activations")
    if not acts:
        raise Skip("no activation stats recorded: pass activations='stats'")
    have = [s for s in acts if s.has_units()]
    if not have:
        raise Skip("activations were recorded without per-unit activity (a run from netlapse "
                   "before format 2): record again to check units")
    return [data.get(n) for n in data.ordered([s.name for s in have])]


def _act(s) -> str:
    return str(s.meta.get("units", {}).get("act", "")).lower()


def check_dead(data) -> list:
    relus = [s for s in _with_units(data) if _act(s) in RELU_FAMILY]
    if not relus:
        raise Skip("no ReLU-family layer among the recorded activations")
    flagged, per_layer, severity, first, last = [], {}, "warning", None, None
    for s in relus:
        n = len(s.steps)
        w = recent(n)
        dead = np.all(s.unit_rows("active", n - w, n) == 0, axis=0)
        frac = float(dead.mean()) if dead.size else 0.0
        if frac < DEAD_WARN:
            continue
        flagged.append(s.name)
        per_layer[s.target] = {"dead": int(dead.sum()), "units": int(dead.size), "fraction": frac}
        if frac >= DEAD:
            severity = "problem"
        # the step from which each dead unit stayed at 0: after the last step it was active
        since = np.sort(np.minimum(_last_alive(s, dead, n - w) + 1, n - 1))
        need = int(np.ceil(DEAD_WARN * dead.size))
        at = int(s.steps[int(since[min(need, len(since)) - 1])])
        first = at if first is None else min(first, at)
        last = int(s.steps[-1]) if last is None else max(last, int(s.steps[-1]))
    if not flagged:
        return []
    worst = max(per_layer, key=lambda k: per_layer[k]["fraction"])
    return [Finding(
        "dead_units", severity, flagged, first, last,
        {"max_dead_fraction": per_layer[worst]["fraction"], "worst_layer": worst,
         "layers": per_layer},
        "ReLU units that output 0 for every input get no gradient and never recover: lower "
        "the learning rate, check for large negative biases, use He init, or use LeakyReLU/GELU.",
        dist_view(f"activations/{worst}"))]


def _last_alive(s, dead: np.ndarray, hi: int, block: int = 4096) -> np.ndarray:
    """For each dead unit, the index of the last step it was active (-1: never), reading the
    activity backwards from row ``hi`` a block at a time until each one is found."""
    units = np.flatnonzero(dead)
    last = np.full(len(units), -1, np.int64)
    todo = np.arange(len(units))
    while len(todo) and hi > 0:
        lo = max(0, hi - block)
        alive = s.unit_rows("active", lo, hi)[:, units[todo]] > 0
        found = alive.any(axis=0)
        last[todo[found]] = lo + len(alive) - 1 - np.argmax(alive[::-1], axis=0)[found]
        todo = todo[~found]
        hi = lo
    return last


def _last_leaf(data) -> str | None:
    leaves = [n for n, m in data.module_info().items() if m.get("leaf", True)]
    return leaves[-1] if leaves else None


def check_saturated(data) -> list:
    last_leaf = _last_leaf(data)
    bounded = [s for s in _with_units(data) if s.saturated is not None]
    bounded = [s for s in bounded if s.target.split(":")[0] != last_leaf]
    if not bounded:
        raise Skip("no bounded activation (tanh, sigmoid, hardtanh, softsign...) among the "
                   "recorded layers")
    flagged, per_layer, severity, first, last = [], {}, "warning", None, None
    for s in bounded:
        frac = s.saturated.mean(axis=1)
        i = onset(frac >= SAT_WARN)
        if i is None:
            continue
        w = recent(len(frac))
        med = float(np.median(frac[-w:]))
        flagged.append(s.name)
        per_layer[s.target] = med
        if med >= SAT:
            severity = "problem"
        first = int(s.steps[i]) if first is None else min(first, int(s.steps[i]))
        last = int(s.steps[-1]) if last is None else max(last, int(s.steps[-1]))
    if not flagged:
        return []
    worst = max(per_layer, key=per_layer.get)
    return [Finding(
        "saturated_units", severity, flagged, first, last,
        {"max_saturated_fraction": per_layer[worst], "worst_layer": worst,
         "saturated_fraction": per_layer},
        "Most outputs sit at the bounds of the activation, where its slope is ~0, so little "
        "gradient passes: scale the initial weights down (Xavier/Glorot), normalise inputs, "
        "add BatchNorm/LayerNorm before the activation, or lower the learning rate.",
        dist_view(f"activations/{worst}"))]
