"""Function fit: the model's output on the probe inputs against the target curve (seed 004a)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import NetlapseError
from ._common import as_reader, full_stream, probe_layers, probe_layout, select_steps

__all__ = ["FunctionFit", "function_fit"]


@dataclass
class FunctionFit:
    """``output[t]``: the output layer's values on ``x`` at ``steps[t]``; ``target``: the curve."""

    layer: str
    steps: np.ndarray
    x: np.ndarray
    target: np.ndarray | None
    output: np.ndarray
    mse: np.ndarray | None
    run: str = ""

    view = "function_fit"

    @property
    def frames(self) -> np.ndarray:
        return self.steps


def function_fit(run, layer: str | None = None, steps=None, max_frames: int | None = None) -> FunctionFit:
    """Output of ``layer`` (default: the last probe layer) on the 1-D probe inputs over steps.

    Uses ``inputs/probe`` as x and ``inputs/probe_target`` as the target; with a
    ``probe_layout`` holding ``"curve": [start, stop]`` only those rows are used.
    """
    reader = as_reader(run)
    layer = layer or probe_layers(reader)[-1]
    out_stream = full_stream(reader, f"probe/{layer}")
    x = np.asarray(full_stream(reader, "inputs/probe").at(0), np.float64)
    rows = probe_layout(reader, "curve") or [0, len(x)]
    lo, hi = int(rows[0]), int(rows[1])
    x = x[lo:hi].reshape(hi - lo, -1)
    if x.shape[1] != 1:
        raise NetlapseError(f"function_fit draws 1-D inputs; the probe has {x.shape[1]} features. "
                            "Use hidden_space for 2-D inputs.")
    x = x[:, 0]
    target = None
    if "inputs/probe_target" in reader:
        target = np.asarray(reader["inputs/probe_target"].at(0), np.float64)[lo:hi].reshape(hi - lo, -1)[:, 0]
    sel = select_steps(out_stream.steps, steps, max_frames, what=out_stream.name)
    out = out_stream.history(sel).astype(np.float64)[:, lo:hi].reshape(len(sel), hi - lo, -1)
    if out.shape[2] != 1:
        raise NetlapseError(f"probe/{layer} has {out.shape[2]} outputs per input; pick the "
                            "one-output layer with layer=.")
    out = out[:, :, 0]
    order = np.argsort(x, kind="stable")
    x, out = x[order], out[:, order]
    mse = None
    if target is not None:
        target = target[order]
        mse = ((out - target) ** 2).mean(axis=1)
    return FunctionFit(layer, sel, x, target, out, mse, str(reader.path))
