"""What every framework adapter needs besides its framework (torch, Keras, JAX, and the
Lightning / Hugging Face recorders built on the torch one), written once:

- ``require_open_run``: the "needs an open Run" check;
- ``split_probe`` and ``probe_rejected``: a probe given as ``x`` or ``(x, y)``, and the error
  when the model will not take it;
- ``summary``, ``param_entry``, ``module_entry``: the model summary stored in ``run.json``
  (schema in docs/architecture.md);
- ``host_dtype``: dtypes numpy cannot summarise (bfloat16, float8) are stored widened;
- ``first_array``: the first tensor of a layer's output (a tensor, or a tuple/list/dict);
- ``InstancePatches``: replace methods on one object (not its class) and put them back;
- ``record_host``: host (numpy) arrays into a run; ``Run.record_array`` goes through it too,
  so every adapter writes the same stream format and the reader sees no difference.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import NetlapseError
from .plan import CapturePlan

__all__ = ["require_open_run", "split_probe", "probe_rejected", "summary", "param_entry",
           "module_entry", "host_dtype", "first_array", "InstancePatches", "record_host"]

# dtypes numpy cannot summarise directly are stored widened; meta keeps the original name
WIDEN = {"bfloat16": np.dtype(np.float32), "float8_e4m3fn": np.dtype(np.float32),
         "float8_e5m2": np.dtype(np.float32), "float8_e4m3fnuz": np.dtype(np.float32),
         "float8_e5m2fnuz": np.dtype(np.float32)}


def require_open_run(run, who: str, position: str = "first") -> None:
    """Raise unless ``run`` is an open ``netlapse.Run`` (``who``: the call, for the message)."""
    if getattr(run, "closed", True):
        raise NetlapseError(f"{who} needs an open netlapse.Run as its {position} argument.")


def split_probe(probe) -> tuple:
    """``probe`` as ``(x, y)``: ``(x, y)`` or ``[x, y]`` is inputs and targets, anything else is
    inputs alone (``y`` None); None gives ``(None, None)``."""
    if probe is None:
        return None, None
    if isinstance(probe, (tuple, list)) and len(probe) == 2:
        return probe[0], probe[1]
    return probe, None


def probe_rejected(shape, exc: BaseException, where: str = "") -> NetlapseError:
    """The error for a model that fails on the probe (``where``: e.g. " at layer 'fc2'")."""
    return NetlapseError(f"the model rejects the probe of shape {tuple(shape)}{where}: {exc}. "
                         "Pass a probe batch shaped like the model's training input.")


def param_entry(name: str, shape, dtype: str, trainable: bool = True) -> dict:
    shape = [int(s) for s in shape]
    return {"name": name, "shape": shape, "dtype": str(dtype),
            "numel": int(np.prod(shape, dtype=np.int64)), "trainable": bool(trainable)}


def module_entry(name: str, type_name: str, params: int, leaf: bool) -> dict:
    return {"name": name, "type": type_name, "params": int(params), "leaf": bool(leaf)}


def summary(type_name: str, parameters: list[dict], modules: list[dict], **extra) -> dict:
    """The model summary: ``type``, ``parameters`` (``param_entry``s), ``modules``
    (``module_entry``s), the totals, and any framework-specific ``extra`` fields."""
    return {"type": type_name, **extra, "parameters": parameters, "modules": modules,
            "total_params": sum(p["numel"] for p in parameters),
            "trainable_params": sum(p["numel"] for p in parameters if p["trainable"])}


def host_dtype(name: str) -> np.dtype | None:
    """The numpy dtype a tensor of dtype ``name`` is stored as when numpy cannot hold it as it
    is (``"bfloat16"`` -> float32); None when it is stored as it is."""
    return WIDEN.get(name)


def _has_shape(x) -> bool:
    return hasattr(x, "shape") and not isinstance(x, (tuple, list, dict))


def first_array(output, is_array: Callable[[object], bool] = _has_shape):
    """The first tensor in a layer output: the output itself, or the first item of a
    tuple/list/dict (e.g. an RNN's ``(output, state)``) that is one; None if there is none."""
    if is_array(output):
        return output
    items = (output.values() if isinstance(output, dict)
             else output if isinstance(output, (tuple, list)) else ())
    for item in items:
        if is_array(item):
            return item
    return None


_MISSING = object()


class InstancePatches:
    """Methods replaced on object *instances* (their classes untouched), put back by
    ``restore()`` in reverse order: an attribute the instance did not have is removed again,
    so the class's method shows through as before."""

    def __init__(self) -> None:
        self._saved: list[tuple[object, str, object]] = []

    def patch(self, obj, attr: str, wrapper: Callable) -> Callable:
        """Make ``obj.attr(*a, **k)`` call ``wrapper(original, *a, **k)``; returns the new method."""
        original = getattr(obj, attr)
        self._saved.append((obj, attr, obj.__dict__.get(attr, _MISSING)))

        def method(*args, **kwargs):
            return wrapper(original, *args, **kwargs)

        setattr(obj, attr, method)
        return method

    def restore(self) -> None:
        for obj, attr, previous in reversed(self._saved):
            if previous is _MISSING:
                obj.__dict__.pop(attr, None)
            else:
                setattr(obj, attr, previous)
        self._saved = []

    def __bool__(self) -> bool:
        return bool(self._saved)


def record_host(run, plan: CapturePlan | None, name: str, value, step: int, capture: str,
                kind: str | None = None, **extra) -> None:
    """Copy ``value`` (anything ``np.asarray`` takes) into the run as stream ``name`` at ``step``.

    ``capture``: ``"full"`` or ``"stats"``; ``kind``: the stream kind (default: the name's
    first part). With a ``plan`` its ``every`` goes into the stream's metadata. ``extra``:
    more meta, given values only (``units`` of activations, ``updates`` of weights:
    _record/derive.py).
    """
    arr = np.asarray(value)
    dtype_name = arr.dtype.name
    wide = host_dtype(dtype_name)
    if wide is not None:
        arr = arr.astype(wide)
    kind = kind or name.split("/", 1)[0]
    if plan is not None:
        meta = plan.meta(kind, capture, arr.shape, dtype_name)
    else:
        meta = {"kind": kind, "capture": capture, "shape": [int(s) for s in arr.shape],
                "dtype": dtype_name}
    meta.update((k, v) for k, v in extra.items() if v)
    run.record(name, int(step), lambda buf, arr=arr: np.copyto(buf, arr), arr.shape, arr.dtype,
               full=capture == "full", meta=meta)
