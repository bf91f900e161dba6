"""Record host (numpy) arrays through ``run.record`` with the same meta as the torch adapter.

The Keras and JAX adapters copy each tensor to the host first, then hand it over here, so
every framework writes the same stream format and the reader sees no difference.
"""

from __future__ import annotations

import numpy as np

from .plan import CapturePlan

__all__ = ["record_host", "first_array"]

# dtypes numpy cannot summarise directly are stored widened; meta keeps the original name
_WIDEN = {"bfloat16": np.float32, "float8_e4m3fn": np.float32, "float8_e5m2": np.float32}


def record_host(run, plan: CapturePlan, name: str, value, step: int, capture: str,
                kind: str | None = None) -> None:
    """Copy ``value`` (anything ``np.asarray`` takes) into the run as stream ``name`` at ``step``."""
    arr = np.asarray(value)
    dtype_name = arr.dtype.name
    if dtype_name in _WIDEN:
        arr = arr.astype(_WIDEN[dtype_name])
    meta = plan.meta(kind or name.split("/", 1)[0], capture, arr.shape, dtype_name)
    run.record(name, int(step), lambda buf, arr=arr: np.copyto(buf, arr), arr.shape, arr.dtype,
               full=capture == "full", meta=meta)


def first_array(output):
    """The first array-like (has ``shape``) in a layer output: a tensor, or a tuple/list/dict of them."""
    if hasattr(output, "shape") and not isinstance(output, (tuple, list, dict)):
        return output
    items = output.values() if isinstance(output, dict) else output if isinstance(output, (tuple, list)) else ()
    for item in items:
        if hasattr(item, "shape"):
            return item
    return None
