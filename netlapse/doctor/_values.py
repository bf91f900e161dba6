"""Instruments on values themselves: non-finite numbers anywhere, and a diverging loss.

- ``nonfinite``: the first step at which any stream counts a NaN or Inf (stats column
  ``nonfinite``) or a loss metric is not finite, and the first stream at that step in forward
  order: activations (model order), the loss, grads (backward order: last layer first),
  weights, updates.
- ``loss_diverging``: a metric named like a loss (``loss`` in its name) that becomes
  non-finite, or whose recent median is at least ``RISE`` x its early median and at least
  ``ABOVE_MIN`` x its smoothed minimum (losses that can be negative are only checked for
  non-finite values). ``first_step``: the step of the smoothed minimum before the rise.
"""

from __future__ import annotations

import numpy as np

from ._common import Skip, dist_view, recent
from ._data import NONFINITE, NORM
from ._report import Finding

__all__ = ["check_nonfinite", "check_loss", "RISE", "ABOVE_MIN"]

RISE = 2.0
ABOVE_MIN = 3.0
_ORDER = {"activations": 0, "loss": 1, "grads": 2, "weights": 3, "updates": 4}


def _first_bad(values: np.ndarray) -> int | None:
    bad = np.flatnonzero(values)
    return int(bad[0]) if len(bad) else None


def check_nonfinite(data) -> list:
    hits = []   # (step, stream, count)
    last = None
    checked = 0
    for name in data.metas:
        s = data.get(name)
        if s is None or not len(s.steps):
            continue
        checked += 1
        bad = s.stats[:, NONFINITE] > 0
        i = _first_bad(bad)
        if i is not None:
            hits.append((int(s.steps[i]), name, float(s.stats[i, NONFINITE])))
            j = int(np.flatnonzero(bad)[-1])
            last = max(last or 0, int(s.steps[j]))
    for metric in data.loss_metrics():
        steps, vals = data.metrics[metric]
        checked += 1
        i = _first_bad(~np.isfinite(vals))
        if i is not None:
            hits.append((int(steps[i]), f"metrics/{metric}", float("nan")))
            last = max(last or 0, int(steps[np.flatnonzero(~np.isfinite(vals))[-1]]))
    if not checked:
        raise Skip("nothing recorded yet")
    if not hits:
        return []
    first = min(h[0] for h in hits)
    at = [h for h in hits if h[0] == first]
    porder = data.param_order()
    acts = data.ordered([h[1] for h in at if h[1].startswith("activations/")])

    def key(h):
        kind = "loss" if h[1].startswith("metrics/") else h[1].split("/", 1)[0]
        rank = _ORDER.get(kind, 5)
        target = h[1].split("/", 1)[-1]
        if kind == "activations":
            pos = acts.index(h[1])
        elif kind == "grads":
            pos = -porder.get(target, 0)   # backward: the last layer's grads are computed first
        else:
            pos = porder.get(target, 0)
        return (rank, pos, h[1])

    at.sort(key=key)
    origin = at[0][1]
    view_stream = next((h[1] for h in at if not h[1].startswith("metrics/")), origin)
    where = origin.split("/", 1)[-1]
    return [Finding(
        "nonfinite", "problem", [h[1] for h in at], first, last if last is not None else first,
        {"first_stream": origin, "nonfinite_values": at[0][2],
         "streams_at_first_step": len(at), "streams_ever": len(hits)},
        f"NaN/Inf first appeared at step {first} in {origin}: check that step's input batch "
        f"and {where} (log of 0, division by zero, overflow in half precision), lower the "
        "learning rate or clip gradients; torch.autograd.set_detect_anomaly(True) names the op.",
        dist_view(view_stream))]


def _smooth(v: np.ndarray, k: int) -> np.ndarray:
    if k <= 1 or len(v) < k:
        return v
    c = np.cumsum(np.concatenate([[0.0], v]))
    out = (c[k:] - c[:-k]) / k
    return np.concatenate([np.full(k - 1, out[0]), out])


def _growth_stream(data) -> str | None:
    """The grads stream whose norm grew most (the view of a diverging loss)."""
    best, name = 0.0, None
    for n in data.names("grads"):
        s = data.get(n)
        if s is None or len(s.steps) < 2:
            continue
        norm = s.stats[:, NORM]
        finite = norm[np.isfinite(norm)]
        if len(finite) >= 2 and finite[0] > 0:
            g = finite.max() / finite[0]
            if g > best:
                best, name = g, n
    return name


def check_loss(data) -> list:
    names = data.loss_metrics()
    if not names:
        raise Skip("no metric named like a loss: log it with run.log(loss=...)")
    out = []
    for metric in names:
        steps, vals = data.metrics[metric]
        if len(vals) == 0:
            continue
        view_stream = _growth_stream(data)
        view = dist_view(view_stream) if view_stream else {}
        bad = np.flatnonzero(~np.isfinite(vals))
        if len(bad):
            fin = vals[:bad[0]]
            lo = int(steps[int(np.argmin(fin))]) if len(fin) else int(steps[bad[0]])
            out.append(Finding(
                "loss_diverging", "problem", [f"metrics/{metric}"], int(steps[bad[0]]),
                int(steps[-1]),
                {"metric": metric, "nonfinite_at": int(steps[bad[0]]),
                 "last_finite": float(fin[-1]) if len(fin) else float("nan"),
                 "min_step": lo},
                f"{metric} became {vals[bad[0]]} at step {int(steps[bad[0]])}: lower the learning "
                "rate, clip gradients, and look for the first NaN (the nonfinite finding).", view))
            continue
        n = len(vals)
        if n < 10 or np.nanmin(vals) <= 0:
            continue
        k = max(3, n // 10)
        early, late = float(np.median(vals[:k])), float(np.median(vals[-k:]))
        smooth = _smooth(vals, max(1, min(recent(n) // 2, n // 20)))
        i_min = int(np.argmin(smooth[: n - k // 2]))
        low = float(smooth[i_min])
        if late >= RISE * early and late >= ABOVE_MIN * low:
            out.append(Finding(
                "loss_diverging", "problem", [f"metrics/{metric}"], int(steps[i_min]),
                int(steps[-1]),
                {"metric": metric, "early": early, "min": low, "recent": late,
                 "rise": late / early},
                f"{metric} rose from {early:.3g} (min {low:.3g} at step {int(steps[i_min])}) to "
                f"{late:.3g}: the learning rate is too high for this point of training; lower "
                "it (÷10), add warm-up or a decay, or clip gradients.", view))
    return out
