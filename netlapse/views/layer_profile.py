"""Layer profile: mean |gradient| and mean |activation| per layer, depth on x (seed 002)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import NetlapseError
from ._common import as_reader, layer_order, model_modules, select_steps

__all__ = ["LayerProfile", "layer_profile", "weight_layers"]

_STAT_MEAN_ABS = 5   # column of mean_abs in STAT_NAMES


@dataclass
class LayerProfile:
    """``grad[t, i]`` and ``act[t, i]``: mean absolute gradient of layer ``layers[i]``'s weight
    and mean absolute output of that layer's block at ``steps[t]`` (NaN where not recorded)."""

    steps: np.ndarray
    layers: list
    grad: np.ndarray | None
    act: np.ndarray | None
    grad_streams: list
    act_streams: list
    source: str
    run: str = ""

    view = "layer_profile"

    @property
    def frames(self) -> np.ndarray:
        return self.steps


def weight_layers(reader, kind: str = "grads") -> list[tuple[str, str]]:
    """``(layer, stream)`` for each weight matrix/kernel with a ``kind`` stream, in model order."""
    out = {}
    for name in reader.streams(kind):
        param = name.split("/", 1)[1]
        cut = max(param.rfind("."), param.rfind("/"))   # torch "fc.weight", Keras "dense/kernel"
        layer, leaf = param[:max(cut, 0)], param[cut + 1:]
        if leaf in ("weight", "kernel") and len(reader[name].shape) >= 2:
            out[layer or param] = name
    return [(layer, out[layer]) for layer in layer_order(reader, list(out))]


def _block_outputs(reader, layers: list[str], kind: str) -> list[str | None]:
    """For each weight layer, the stream of its block's output: the parameter-free layer right
    after it (its activation function) when there is one, else the layer's own output."""
    modules = [m for m in model_modules(reader) if m.get("leaf", True) and m.get("name")]
    names = [m["name"] for m in modules]
    have = set(n.split("/", 1)[1] for n in reader.streams(kind))
    out = []
    for layer in layers:
        choice = layer if layer in have else None
        if layer in names:
            i = names.index(layer)
            if i + 1 < len(modules) and not modules[i + 1].get("params") and names[i + 1] in have:
                choice = names[i + 1]
        out.append(None if choice is None else f"{kind}/{choice}")
    return out


def _mean_abs(reader, stream: str | None, steps: np.ndarray, source: str, example: int) -> np.ndarray:
    col = np.full(len(steps), np.nan)
    if stream is None:
        return col
    s = reader[stream]
    rec = s.steps
    pos = np.searchsorted(rec, steps)
    ok = (pos < len(rec)) & (rec[np.minimum(pos, len(rec) - 1)] == steps)
    if source == "probe":
        for t in np.nonzero(ok)[0]:
            col[t] = float(np.abs(np.asarray(s.at(int(steps[t]))[example], np.float64)).mean())
    else:
        col[ok] = s.stats_array[pos[ok], _STAT_MEAN_ABS]
    return col


def layer_profile(run, step=-1, *, source: str = "stats", example: int = 0, layers=None,
                  max_frames: int | None = None) -> LayerProfile:
    """Mean |grad| and mean |activation| per weight layer, for ``step`` (-1 = last; None, a
    list or ``"A:B:N"`` for several steps).

    ``source="stats"``: gradients from ``grads/*`` and activations from ``activations/*``
    stream stats (batch means). ``source="probe"``: activations of one probe example
    (``example``-th row of each ``probe/<layer>``), as seed 002 did for one input; gradients
    still come from the ``grads/*`` streams.
    """
    if source not in ("stats", "probe"):
        raise NetlapseError(f"source={source!r}: use \"stats\" (grads/activations streams) or "
                            "\"probe\" (one probe example).")
    reader = as_reader(run)
    pairs = weight_layers(reader, "grads") or weight_layers(reader, "weights")
    if not pairs:
        raise NetlapseError(f"run {reader.path} has no weight or gradient streams of a weight "
                            "matrix; record them with nl.watch(..., grads=\"stats\").")
    if layers is not None:
        wanted = list(layers)
        pairs = [p for p in pairs if p[0] in wanted]
        if not pairs:
            raise NetlapseError(f"none of layers={wanted} has a weight matrix in this run.")
    names = [p[0] for p in pairs]
    grad_streams = [p[1] for p in pairs if p[1].startswith("grads/")]
    act_kind = "probe" if source == "probe" else "activations"
    act_streams = _block_outputs(reader, names, act_kind)
    if all(a is None for a in act_streams) and not grad_streams:
        raise NetlapseError("layer_profile needs grads/* or activations/* streams.")
    step_sets = [set(reader[g].steps.tolist()) for g in grad_streams]
    step_sets += [set(reader[a].steps.tolist()) for a in act_streams if a is not None]
    common = np.array(sorted(set.intersection(*step_sets)), np.int64)
    if len(common) == 0:
        raise NetlapseError("the gradient and activation streams share no recorded step.")
    sel = select_steps(common, step, max_frames, what="layer profile")
    grad = (np.stack([_mean_abs(reader, g, sel, "stats", 0) for g in grad_streams], axis=1)
            if grad_streams else None)
    act = None
    if any(a is not None for a in act_streams):
        act = np.stack([_mean_abs(reader, a, sel, source, example) for a in act_streams], axis=1)
    return LayerProfile(sel, names, grad, act, grad_streams,
                        [a for a in act_streams], source, str(reader.path))
