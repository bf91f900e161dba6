"""Trajectories: chosen elements of a weight (or any full) stream over steps (seed 000)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import NetlapseError
from ._common import as_reader, full_stream, select_steps

__all__ = ["Trajectories", "trajectories"]


@dataclass
class Trajectories:
    """``values[t, k]``: element ``elements[k]`` (a flat index) at ``steps[t]``."""

    stream: str
    steps: np.ndarray
    values: np.ndarray
    elements: np.ndarray
    labels: list
    frames: np.ndarray   # the steps an animation walks through (a cursor moves over the lines)
    run: str = ""

    view = "trajectories"


def _label(stream: str, shape: tuple, flat: int) -> str:
    base = stream.split("/", 1)[-1]
    if not shape:
        return base
    idx = [int(i) for i in np.unravel_index(flat, shape)]
    return f"{base}[{','.join(map(str, idx))}]"


def trajectories(run, stream: str | None = None, elements=None, sample: int = 8, seed: int = 0,
                 steps=None, max_frames: int | None = None) -> Trajectories:
    """Elements of ``stream`` over the recorded steps.

    ``elements``: flat indices to follow; default all elements when there are at most
    ``sample``, else a fixed random sample of ``sample`` of them (seeded by ``seed``).
    ``stream`` defaults to the first ``weights/*`` stream recorded in full.
    """
    reader = as_reader(run)
    if stream is None:
        full = [n for n in reader.streams("weights") if reader[n].capture == "full"]
        full.sort(key=lambda n: n.rsplit(".", 1)[-1] == "bias")   # weight matrices first
        if not full:
            raise NetlapseError("trajectories needs a weights stream recorded in full "
                                "(nl.watch(..., weights=\"full\")); pass stream= to choose another.")
        stream = full[0]
    s = full_stream(reader, stream)
    size = int(np.prod(s.shape)) if s.shape else 1
    if elements is None:
        if size <= sample:
            elements = np.arange(size)
        else:
            elements = np.sort(np.random.default_rng(seed).choice(size, sample, replace=False))
    elements = np.asarray(elements, np.int64).reshape(-1)
    if len(elements) and (elements.min() < -size or elements.max() >= size):
        raise NetlapseError(f"{stream} has {size} elements; element indices must be below {size}.")
    elements = elements % size
    sel = select_steps(s.steps, steps, None, what=stream)
    values = np.empty((len(sel), len(elements)))
    block = max(1, int(2**24 // max(size, 1)))   # read at most ~16M values at a time
    for a in range(0, len(sel), block):
        part = s.history(sel[a:a + block])
        values[a:a + len(part)] = part.reshape(len(part), -1)[:, elements]
    labels = [_label(stream, s.shape, int(e)) for e in elements]
    frames = select_steps(sel, None, max_frames, what=stream)
    return Trajectories(stream, sel, values, elements, labels, frames, str(reader.path))
