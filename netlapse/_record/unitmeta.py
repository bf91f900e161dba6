"""The ``units`` entry of an activation stream's meta: which axis holds the units, which
activation produced the output, and its bounds if it has any (read by ``derive.py``, which
stores per-unit activity, and by the doctor).

Units are output features (the last axis) or, for channels-first convolution outputs,
channels (axis 1): a 4-D or 5-D output, or a 3-D output of a ``Conv1d``/``BatchNorm1d``-like
module, has its units on axis 1 in PyTorch; Keras and JAX outputs are channels-last.
"""

from __future__ import annotations

__all__ = ["unit_meta", "BOUNDS", "activation_of", "torch_unit_meta", "keras_unit_meta",
           "path_unit_meta"]

# activation name (lower case, as module type or Keras activation name) -> (lo, hi)
BOUNDS = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0), "softsign": (-1.0, 1.0),
          "hardsigmoid": (0.0, 1.0), "hard_sigmoid": (0.0, 1.0), "hardtanh": (-1.0, 1.0),
          "hard_tanh": (-1.0, 1.0), "tanhshrink": None, "logsigmoid": None}
_CHANNEL_3D = ("conv", "batchnorm1d", "instancenorm1d", "pool1d", "groupnorm")


def activation_of(type_name: str) -> str:
    """The activation name of a module type (``"Tanh"`` -> ``"tanh"``)."""
    return type_name.lower()


def unit_meta(act: str, shape: tuple, *, channels_first: bool = False, type_name: str = "",
              bounds=None) -> dict | None:
    """The ``units`` meta for an output of ``shape`` produced by activation ``act``.

    ``channels_first``: PyTorch's layout (units on axis 1 for images and volumes).
    ``bounds`` overrides the table (e.g. ``Hardtanh(min_val, max_val)``).
    """
    ndim = len(shape)
    if ndim == 0:
        return None
    axis = ndim - 1
    if channels_first and (ndim >= 4 or (ndim == 3 and any(k in type_name.lower() for k in _CHANNEL_3D))):
        axis = 1
    act = act.lower()
    b = bounds if bounds is not None else BOUNDS.get(act)
    meta = {"axis": axis, "count": int(shape[axis]), "act": act}
    if b:
        meta["bounds"] = [float(b[0]), float(b[1])]
        meta["margin"] = 0.015 * (float(b[1]) - float(b[0]))
    return meta


def torch_unit_meta(module, shape) -> dict | None:
    """``unit_meta`` for the output of a PyTorch module (its type names the activation;
    ``Hardtanh``'s ``min_val``/``max_val`` give its bounds). Needs no torch import."""
    type_name = type(module).__name__
    bounds = None
    if hasattr(module, "min_val") and hasattr(module, "max_val") and type_name.lower() == "hardtanh":
        bounds = (float(module.min_val), float(module.max_val))
    return unit_meta(activation_of(type_name), tuple(shape), channels_first=True,
                     type_name=type_name, bounds=bounds)


def keras_unit_meta(layer, shape) -> dict | None:
    """``unit_meta`` for a Keras layer's output (channels-last): the activation is the layer's
    ``activation`` function (``Dense(activation="tanh")``) or, without one, its type."""
    fn = getattr(layer, "activation", None)
    act = getattr(fn, "__name__", None) if fn is not None else None
    if not isinstance(act, str):
        act = type(layer).__name__
    return unit_meta(act, tuple(shape))


def path_unit_meta(path: str, shape) -> dict | None:
    """``unit_meta`` for a JAX activation named by its tree path: the last part names the
    activation when it is a known one (``mlp/relu``, ``block/tanh``), channels-last."""
    last = path.replace(".", "/").split("/")[-1].lower()
    act = last if last in BOUNDS or last in ("relu", "relu6") else ""
    return unit_meta(act, tuple(shape))
