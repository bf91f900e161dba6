"""Gradient instruments: vanishing and exploding gradients.

Each weight layer's gradient scale at a step is its RMS, ``norm / sqrt(numel)`` (the grads
stream's stats), for weight matrices and kernels only (see ``_common.weight_grads``).

- ``vanishing_gradients``: a layer whose gradient RMS is at most ``VANISH`` (1e-3, three
  orders of magnitude) of the output layer's at the same step, or exactly zero while the
  output layer's is not, for most recent steps. Warning from ``VANISH_WARN`` (1e-2).
- ``exploding_gradients``: a layer whose gradient RMS grew to at least ``GROW`` (1e3) x its
  value over the first steps (median of the first three recorded), or to at least ``GROW``
  x the output layer's at the same step (growing towards the input). Warning from
  ``GROW_WARN`` (1e2). Growth over steps counts only while the layer's scale is at least
  ``VANISH_WARN`` of the output layer's (a vanishing gradient creeping up from 1e-40 is not
  exploding). ``first_step``: the first step past the warning threshold.
"""

from __future__ import annotations

import numpy as np

from ._common import Skip, align, onset, recent, weight_grads
from ._data import NORM
from ._report import Finding

__all__ = ["check_vanishing", "check_exploding", "VANISH", "VANISH_WARN", "GROW", "GROW_WARN"]

VANISH, VANISH_WARN = 1e-3, 1e-2
GROW, GROW_WARN = 1e3, 1e2


def _scales(data):
    layers = weight_grads(data)
    if len(layers) < 1:
        raise Skip("no gradients of weight layers recorded: pass grads='stats'")
    steps = layers[-1].steps
    norms = align(layers, steps, NORM)
    numel = np.array([max(s.numel(), 1) for s in layers], np.float64)
    return layers, steps, norms / np.sqrt(numel)


def check_vanishing(data) -> list:
    layers, steps, g = _scales(data)
    if len(layers) < 2:
        raise Skip("gradients of only one weight layer recorded: nothing to compare across depth")
    out_scale = g[:, -1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = g[:, :-1] / out_scale
    live = (out_scale > 0) & np.isfinite(out_scale)
    flagged, severity, first = [], "warning", None
    per_layer = {}
    w = recent(len(steps))
    for j, s in enumerate(layers[:-1]):
        r = ratio[:, j]
        vanished = live[:, 0] & np.isfinite(r) & (r <= VANISH_WARN)
        i = onset(vanished)
        if i is None:
            continue
        med = float(np.nanmedian(r[-w:]))
        flagged.append(s.name)
        per_layer[s.target] = med
        if med <= VANISH:
            severity = "problem"
        first = i if first is None else min(first, i)
    if not flagged:
        return []
    worst = min(per_layer.values())
    zero = sum(1 for v in per_layer.values() if v == 0)
    return [Finding(
        "vanishing_gradients", severity, flagged, int(steps[first]), int(steps[-1]),
        {"min_ratio_to_output": worst, "layers": len(flagged), "zero_layers": zero,
         "output_layer": layers[-1].target,
         "output_rms": float(np.nanmedian(out_scale[-w:, 0])),
         "ratio_to_output": per_layer},
        "Gradients shrink by orders of magnitude towards the input: saturated activations or a "
        "bad weight scale. Use an init matched to the activation (Xavier/Glorot for tanh, "
        "He/Kaiming for ReLU), normalisation layers (BatchNorm/LayerNorm), residual "
        "connections, or ReLU-family activations.",
        {"name": "layer_profile", "args": {"step": int(steps[first])}})]


def check_exploding(data) -> list:
    layers, steps, g = _scales(data)
    k = min(3, len(steps))
    flagged, severity, first, per_layer = [], "warning", None, {}
    with np.errstate(divide="ignore", invalid="ignore"):
        base = np.nanmedian(g[:k], axis=0)
        over_time = g / base
        across = g / g[:, -1:] if len(layers) >= 2 else np.zeros_like(g)
    for j, s in enumerate(layers):
        # growth that counts: from a non-zero start, to a scale not far below the output
        # layer's (a vanishing layer creeping up from 1e-40 to 1e-30 is not exploding)
        sizable = np.isfinite(across[:, j]) & (across[:, j] >= VANISH_WARN) if len(layers) >= 2 \
            else np.ones(len(steps), bool)
        grow = np.where(np.isfinite(over_time[:, j]) & (base[j] > 0) & sizable, over_time[:, j], 0.0)
        wide = np.where(np.isfinite(across[:, j]), across[:, j], 0.0) if j < len(layers) - 1 \
            else np.zeros(len(steps))
        worst = np.maximum(grow, wide)
        hit = np.flatnonzero(worst >= GROW_WARN)
        if not len(hit):
            continue
        flagged.append(s.name)
        peak = float(worst.max())
        per_layer[s.target] = peak
        if peak >= GROW:
            severity = "problem"
        first = int(hit[0]) if first is None else min(first, int(hit[0]))
    if not flagged:
        return []
    worst_name = max(per_layer, key=per_layer.get)
    return [Finding(
        "exploding_gradients", severity, flagged, int(steps[first]), int(steps[-1]),
        {"max_growth": max(per_layer.values()), "worst_layer": worst_name,
         "growth": per_layer},
        "Gradient norms grew by orders of magnitude: lower the learning rate, clip gradients "
        "(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)), use warm-up, and check the "
        "weight init scale.",
        {"name": "distributions", "args": {"stream": f"grads/{worst_name}"}})]
