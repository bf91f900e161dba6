"""Keras layers as netlapse sees them: stream names of variables, leaf layers, and taps on
each leaf layer's ``call`` that catch its output (probe passes, and training batches).

A tap replaces ``call`` on the layer *instance*; ``restore()`` removes it. Calling a layer
goes through ``self.call`` on every backend, so this works for torch, JAX and TensorFlow.
Inside a jitted JAX step the output is a tracer: it reaches the host through
``jax.debug.callback`` while a training batch is running.
"""

from __future__ import annotations

import contextlib
import warnings

import keras
import numpy as np

from .._record.support import InstancePatches, first_array
from ._grads import to_host

__all__ = ["variable_names", "leaf_layers", "LayerTaps"]


def variable_names(model) -> dict[int, str]:
    """id(variable) -> ``<layer name>/<variable name>`` (the last two parts of its path).

    Where two variables would share a name (nested models reusing layer names) the full path
    without the outer model's name is used instead."""
    variables, seen = [], set()
    for v in model.weights:
        if id(v) not in seen:
            seen.add(id(v))
            variables.append(v)
    paths = [getattr(v, "path", v.name).split("/") for v in variables]
    short = ["/".join(p[-2:]) for p in paths]
    out = {}
    for v, p, s in zip(variables, paths, short):
        out[id(v)] = s if short.count(s) == 1 else "/".join(p[1:] if len(p) > 2 else p)
    return out


def leaf_layers(model) -> list:
    """Layers with no sub-layers, in call order as Keras lists them; input layers left out."""
    out = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if any(True for _ in layer._flatten_layers(include_self=False, recursive=False)):
            continue
        out.append(layer)
    return out



class LayerTaps:
    """Wrap each leaf layer's ``call``. ``collect()`` gathers outputs of an eager forward pass;
    while ``training`` is true, outputs go to ``on_activation(name, ndarray)``."""

    def __init__(self, layers, on_activation) -> None:
        self.on_activation = on_activation
        self.training = False
        self._collecting: dict | None = None
        self._warned = False
        self._patches = InstancePatches()
        self._jax = keras.backend.backend() == "jax"
        for layer in layers:
            def call(original, *args, _name=layer.name, **kwargs):
                out = original(*args, **kwargs)
                self._seen(_name, out)
                return out

            self._patches.patch(layer, "call", call)

    def restore(self) -> None:
        self._patches.restore()
        self.training = False

    @contextlib.contextmanager
    def collect(self):
        self._collecting = {}
        try:
            yield self._collecting
        finally:
            self._collecting = None

    def settle(self) -> None:
        """Wait until every output sent from a jitted step has arrived."""
        if self._jax:
            import jax

            jax.effects_barrier()

    def _seen(self, name: str, out) -> None:
        t = first_array(out)
        if t is None:
            return
        if self._collecting is not None:
            self._collecting.setdefault(name, t)
            return
        if self._jax:
            import jax

            if isinstance(t, jax.core.Tracer):
                jax.debug.callback(lambda v: self._arrived(name, v), t)
                return
        if not self.training:
            return
        try:
            value = to_host(t)
        except Exception:  # a symbolic tensor: a tf.function trace
            if not self._warned:
                self._warned = True
                warnings.warn("netlapse: training activations cannot be read inside a compiled "
                              "TensorFlow step; compile the model with run_eagerly=True to "
                              "record them.", RuntimeWarning, stacklevel=3)
            return
        self.on_activation(name, value)

    def _arrived(self, name: str, value) -> None:
        if self.training and self._collecting is None:
            self.on_activation(name, np.array(value, copy=True))
