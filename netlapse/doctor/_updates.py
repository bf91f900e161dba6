"""Update instruments: update/weight ratios, and parameters that never train.

- ``update_ratio_high`` / ``update_ratio_low``: per weight matrix or kernel, the ratio
  ``||dw|| / ||w||`` of its update (``updates/<param>``, the norm of w_k - w_(k-every)) to its
  weights after that update (``weights/<param>``). CS231n's rule of thumb puts it near 1e-3;
  the median over the recent steps is flagged above ``HIGH_WARN`` (0.1) and as a problem
  from ``HIGH`` (1: an update as large as the weights), below ``LOW_WARN`` (1e-5) and as a
  problem under ``LOW`` (1e-7). With ``every`` > 1 the update spans ``every`` steps and the
  ratio is divided by it. Exactly-zero updates are left to ``unused_parameters``.
- ``unused_parameters``: a trainable parameter whose gradient is missing (no ``grads``
  stream while other parameters have one) or exactly zero at every recorded step, or whose
  weights never change (updates exactly zero, or identical stats at every step) while other
  parameters do: a layer left out of the forward, or a parameter not given to the optimizer.
"""

from __future__ import annotations

import numpy as np

from ._common import Skip, dist_view, onset, recent
from ._data import MAX, MEAN, MIN, NORM, STD
from ._report import Finding

__all__ = ["check_update_ratio", "check_unused", "explain_unused", "HIGH", "HIGH_WARN", "LOW", "LOW_WARN"]

HIGH, HIGH_WARN = 1.0, 0.1
LOW, LOW_WARN = 1e-7, 1e-5


def _ratios(data):
    ups = [s for s in data.series("updates") if len(s.shape) >= 2]
    if not ups:
        if data.names("updates"):
            raise Skip("no updates of weight matrices recorded yet")
        raise Skip("no updates recorded: watch with an optimizer and record weights "
                   "(updates='stats', the default)")
    out = []
    for u in data.ordered([s.name for s in ups]):
        u = data.get(u)
        w = data.get("weights/" + u.target)
        if w is None or not len(w.steps):
            continue
        idx = np.clip(np.searchsorted(w.steps, u.steps), 0, len(w.steps) - 1)
        hit = w.steps[idx] == u.steps
        span = max(1, int(u.meta.get("span", u.meta.get("every", 1))))
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(hit, u.stats[:, NORM] / w.stats[idx, NORM], np.nan) / span
        nonzero = u.stats[:, NORM] > 0
        if nonzero.any():
            out.append((u, r))
    return out


def _check_ratio(data, high: bool) -> list:
    pairs = _ratios(data)
    kind = "update_ratio_high" if high else "update_ratio_low"
    flagged, per_layer, severity, first, last = [], {}, "warning", None, None
    for u, r in pairs:
        ok = np.isfinite(r)
        if not ok.any():
            continue
        mask = ok & ((r >= HIGH_WARN) if high else (r <= LOW_WARN) & (r > 0))
        i = onset(mask)
        if i is None:
            continue
        w = recent(len(r))
        med = float(np.nanmedian(r[-w:]))
        flagged.append(u.name)
        per_layer[u.target] = med
        if (med >= HIGH) if high else (med <= LOW):
            severity = "problem"
        first = int(u.steps[i]) if first is None else min(first, int(u.steps[i]))
        last = int(u.steps[-1]) if last is None else max(last, int(u.steps[-1]))
    if not flagged:
        return []
    pick = max if high else min
    worst = pick(per_layer, key=per_layer.get)
    advice = ("Each update changes the weights by more than a tenth of their size (the usual "
              "ratio is ~1e-3): lower the learning rate." if high else
              "Updates are tiny next to the weights (the usual ratio is ~1e-3): the weights "
              "barely move; raise the learning rate, or check the scheduler and the loss scale.")
    return [Finding(kind, severity, flagged, first, last,
                    {"median_ratio": per_layer[worst], "worst_layer": worst,
                     "ratio": per_layer, "typical": 1e-3},
                    advice, dist_view(f"updates/{worst}"))]


def check_update_ratio_high(data) -> list:
    return _check_ratio(data, True)


def check_update_ratio_low(data) -> list:
    return _check_ratio(data, False)


def check_update_ratio(data) -> list:
    return check_update_ratio_high(data) + check_update_ratio_low(data)


def _constant(s) -> bool:
    st = s.stats[:, [MEAN, STD, MIN, MAX, NORM]]
    return len(st) >= 3 and bool(np.all(st == st[0]))


def check_unused(data) -> list:
    grads = {n.split("/", 1)[1]: data.get(n) for n in data.names("grads")}
    weights = {n.split("/", 1)[1]: data.get(n) for n in data.names("weights")}
    updates = {n.split("/", 1)[1]: data.get(n) for n in data.names("updates")}
    if not grads and not weights:
        raise Skip("no grads or weights recorded")
    params = [p for p in data.param_order() if p in weights or p in grads]
    params = [p for p in params if data.trainable(p)]
    reasons = {}
    some_grads = any(s is not None and len(s.steps) and (s.stats[:, NORM] > 0).any()
                     for s in grads.values())
    some_moves = any(s is not None and not _constant(s) for s in weights.values())
    for p in params:
        g, w, u = grads.get(p), weights.get(p), updates.get(p)
        if grads and g is None and w is not None and len(w.steps) >= 2:
            reasons[p] = "no gradient at any step"
        elif g is not None and len(g.steps) >= 2 and np.all(g.stats[:, NORM] == 0) and some_grads:
            reasons[p] = "gradient exactly zero at every step"
        elif u is not None and len(u.steps) >= 2 and np.all(u.stats[:, NORM] == 0):
            reasons[p] = "never updated (is it in the optimizer?)"
        elif w is not None and some_moves and _constant(w):
            reasons[p] = "weights never change"
    if not reasons:
        return []
    names = []
    first, last = None, None
    for p in reasons:
        s = grads.get(p) or weights.get(p)
        names.append(s.name)
        first = int(s.steps[0]) if first is None else min(first, int(s.steps[0]))
        last = int(s.steps[-1]) if last is None else max(last, int(s.steps[-1]))
    layers = sorted({data.layer_of(p) for p in reasons}, key=lambda n: params.index(
        next(p for p in reasons if data.layer_of(p) == n)))
    view_stream = next((f"weights/{p}" for p in reasons if p in weights), names[0])
    return [Finding(
        "unused_parameters", "problem", names, first, last,
        {"parameters": len(reasons), "layers": layers, "why": reasons},
        "These parameters never learn: a layer defined but left out of forward(), a branch "
        "never taken, or parameters missing from the optimizer. If on purpose (an unused "
        "head), freeze them (requires_grad=False) or exclude them from the optimizer.",
        dist_view(view_stream))]


def _layer(param: str) -> str:
    cut = max(param.rfind("."), param.rfind("/"))
    return param[:cut] if cut > 0 else param


def explain_unused(finding, vanishing_params: set, tiny_updates: bool):
    """``finding`` without the parameters another finding explains (None if none is left)."""
    vanishing_layers = {_layer(p) for p in vanishing_params}
    why = dict(finding.evidence.get("why", {}))
    keep = {}
    for p, reason in why.items():
        if reason.startswith("gradient exactly zero") and _layer(p) in vanishing_layers:
            continue
        if tiny_updates and reason.startswith(("never updated", "weights never change")):
            continue
        keep[p] = reason
    if len(keep) == len(why):
        return finding
    if not keep:
        return None
    streams = [s for s in finding.streams if s.split("/", 1)[1] in keep]
    ev = dict(finding.evidence, parameters=len(keep), why=keep,
              layers=[l for l in finding.evidence.get("layers", []) if any(_layer(p) == l for p in keep)])
    return Finding(finding.kind, finding.severity, streams, finding.first_step, finding.last_step,
                   ev, finding.advice, finding.view)
