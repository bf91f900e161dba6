"""Weight images: each output unit's incoming weights drawn as an image (seeds 001, 003)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import NetlapseError
from ._common import as_reader, full_stream, select_steps

__all__ = ["WeightImages", "weight_images", "default_units_axis", "image_shape"]


@dataclass
class WeightImages:
    """``images[t, u]``: unit ``u``'s incoming weights at ``steps[t]`` as an ``(h, w)`` image.

    ``vmax`` is one symmetric colour limit (``-vmax .. vmax``) for every unit and frame.
    """

    stream: str
    steps: np.ndarray
    images: np.ndarray
    labels: list
    vmax: float
    units_axis: int
    run: str = ""

    view = "weight_images"

    @property
    def frames(self) -> np.ndarray:
        return self.steps


def default_units_axis(name: str, shape: tuple) -> int:
    """Torch ``Linear.weight`` is ``(out, in)`` -> axis 0; a Keras ``kernel`` is ``(in, out)`` -> 1."""
    if len(shape) != 2:
        return 0
    leaf = name.rsplit("/", 1)[-1].rsplit(".", 1)[-1].lower()
    if "kernel" in leaf:
        return 1
    if leaf == "weight":
        return 0
    return 0 if shape[0] <= shape[1] else 1


def image_shape(n_inputs: int) -> tuple:
    """A square image when ``n_inputs`` is a square (784 -> 28x28), else the most square factors."""
    r = int(round(np.sqrt(n_inputs)))
    if r * r == n_inputs:
        return (r, r)
    for h in range(int(np.sqrt(n_inputs)), 0, -1):
        if n_inputs % h == 0:
            return (h, n_inputs // h)
    return (1, n_inputs)


def weight_images(run, stream: str, step=-1, *, units_axis: int | None = None,
                  image: tuple | None = None, labels=None, max_frames: int | None = None,
                  vmax: float | None = None) -> WeightImages:
    """Each output unit's incoming weights as an image.

    ``step``: one step (-1 = last), or ``steps`` for an animation: None (all), ``"A:B:N"`` or a
    list. ``units_axis``: the axis of ``stream`` that indexes output units (default: 0 for torch
    ``*.weight`` (out, in), 1 for Keras ``kernel`` (in, out)). Conv weights ``(out, in, kh, kw)``
    are drawn per output channel with the input channels side by side. ``image``: the image shape
    (default square when possible, 784 -> 28x28). ``vmax``: the colour limit (default the
    largest absolute weight over all units and frames).
    """
    reader = as_reader(run)
    s = full_stream(reader, stream)
    shape = s.shape
    if len(shape) < 2:
        raise NetlapseError(f"{stream} has shape {shape}; weight images need a matrix "
                            "(units x inputs), e.g. a Linear layer's weight.")
    if units_axis is None:
        units_axis = default_units_axis(stream, shape)
    if not -len(shape) <= units_axis < len(shape):
        raise NetlapseError(f"units_axis={units_axis} is out of range for shape {shape}.")
    units_axis %= len(shape)
    sel = select_steps(s.steps, step, max_frames, what=stream)
    hist = s.history(sel).astype(np.float64)
    per_unit = np.moveaxis(hist, units_axis + 1, 1)            # (T, units, ...)
    n_units = per_unit.shape[1]
    n_in = int(np.prod(per_unit.shape[2:]))
    if image is None:
        if per_unit.ndim == 5:   # conv (T, out, in, kh, kw): input channels side by side
            t, u, c, kh, kw = per_unit.shape
            images = per_unit.transpose(0, 1, 3, 2, 4).reshape(t, u, kh, c * kw)
        else:
            images = per_unit.reshape(len(sel), n_units, *image_shape(n_in))
    else:
        if int(np.prod(image)) != n_in:
            raise NetlapseError(f"image={tuple(image)} holds {int(np.prod(image))} values but each "
                                f"unit of {stream} has {n_in} incoming weights.")
        images = per_unit.reshape(len(sel), n_units, *image)
    if labels is None:
        labels = [str(u) for u in range(n_units)]
    elif len(labels) != n_units:
        raise NetlapseError(f"{len(labels)} labels given for {n_units} units.")
    if vmax is None:
        finite = images[np.isfinite(images)]
        vmax = float(np.abs(finite).max()) if finite.size else 1.0
        vmax = vmax or 1.0
    return WeightImages(stream, sel, images, list(map(str, labels)), float(vmax), units_axis,
                        str(reader.path))
