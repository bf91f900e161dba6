"""The watched parameters as the writer reads them in place: ``ParamViews``.

Weights are handed to the writer without a copy at every captured step (netlapse/torch.py,
``_send_weights_live``). What that hand-over needs (detached tensors, numpy views of them,
whether numpy can read them where they are, the pipeline group, the copier used when the
writer has not started in time) stays the same from step to step, so it is built once and
rebuilt only when a parameter's memory, shape, strides or dtype changed (``p.data = ...``,
``model.to(...)``, ``model.half()``). Per step that costs one pass over the parameters
reading four attributes, instead of a detach, a numpy view and a device/dtype/layout check
of each, twice.
"""

from __future__ import annotations

import torch

__all__ = ["ParamViews", "readable_in_place", "IN_PLACE_DTYPES"]

IN_PLACE_DTYPES = (torch.float32, torch.float64, torch.float16)   # stored as they are


def readable_in_place(tensors) -> bool:
    """Whether numpy can read these tensors where they are (CPU, contiguous, a plain dtype)."""
    return all(t.device.type == "cpu" and t.dtype in IN_PLACE_DTYPES and t.is_contiguous()
               for t in tensors)


class ParamViews:
    """One watcher's parameters, ready to hand over in place; ``current()`` revalidates."""

    def __init__(self, params: list, group_of, copier):
        self._params = [p for _, p in params]
        self._group_of = group_of   # group_of(tensors) -> pipeline Group of the weights
        self._copier = copier       # copier(tensors) -> fill(views)
        self._layout = None
        self.tensors: list = []
        self.arrays: list | None = None   # numpy views, None when not readable in place
        self.group = None
        self.fill = None

    def current(self) -> "ParamViews":
        """The views of the parameters as they are now (rebuilt if any of them moved)."""
        layout = [(p.data_ptr(), p.shape, p.stride(), p.dtype) for p in self._params]
        if layout != self._layout:
            tensors = [p.detach() for p in self._params]
            readable = readable_in_place(tensors)
            self.arrays = [t.numpy() for t in tensors] if readable else None
            self.tensors = tensors
            self.group = self._group_of(tensors)
            self.fill = self._copier(tensors)
            self._layout = layout
        return self

    @property
    def readable(self) -> bool:
        return self.arrays is not None
