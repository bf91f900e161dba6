"""Compare: one view for several runs side by side, on a shared step axis (seed 004 sweeps)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import NetlapseError
from ._common import as_reader, nearest_at_or_before, thin

__all__ = ["Compare", "compare", "VIEWS"]

VIEWS = ("trajectories", "weight_images", "layer_profile", "distributions", "function_fit",
         "hidden_space")


@dataclass
class Compare:
    """``views[k]``: the view of run ``names[k]``. Frame ``t`` shows ``steps[t]`` in every run:
    run ``k`` draws its own frame ``index[t, k]`` (its last frame at or before that step)."""

    view_name: str
    names: list
    views: list
    steps: np.ndarray
    index: np.ndarray

    view = "compare"

    @property
    def frames(self) -> np.ndarray:
        return self.steps


def view_function(name: str):
    from importlib import import_module

    if name not in VIEWS:
        from ..errors import nearest_names

        raise NetlapseError(f"no view {name!r}; views: {', '.join(VIEWS)} "
                            f"(nearest: {', '.join(nearest_names(name, VIEWS, 2))}).")
    return getattr(import_module(f".{name}", __package__), name)


def compare(runs, view: str = "function_fit", names=None, max_frames: int | None = None,
            **kwargs) -> Compare:
    """``view`` (a view name) computed for each of ``runs`` with the same ``kwargs``.

    The shared step axis is the union of the runs' frame steps (thinned to ``max_frames``).
    ``names`` label the runs (default: each run folder's name).
    """
    runs = list(runs)
    if not runs:
        raise NetlapseError("compare needs at least one run.")
    readers = [as_reader(r) for r in runs]
    names = list(names) if names is not None else [Path(r.path).name for r in readers]
    if len(names) != len(readers):
        raise NetlapseError(f"{len(names)} names given for {len(readers)} runs.")
    fn = view_function(view)
    views = [fn(r, **kwargs) for r in readers]
    if view == "weight_images" and kwargs.get("vmax") is None:   # one colour scale for all runs
        vmax = max(v.vmax for v in views)
        for v in views:
            v.vmax = vmax
    steps = np.unique(np.concatenate([np.asarray(v.frames, np.int64) for v in views]))
    if max_frames is not None:
        steps = thin(steps, max_frames)
    index = np.array([[nearest_at_or_before(np.asarray(v.frames), int(s)) for v in views]
                      for s in steps], np.int64).reshape(len(steps), len(views))
    return Compare(view, names, views, steps, index)
