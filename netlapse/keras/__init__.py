"""Keras 3 (any backend): ``Recorder(run, ...)``, a callback that records training into a run.

Streams and steps are those of ``netlapse.torch`` (see docs/architecture.md, "Steps"): ``weights/<layer>/<var>``
at step 0 and after each update (step = the optimizer's update count), ``grads/<layer>/<var>``
(what the optimizer received for that update), ``activations/<layer>`` (outputs in the
training forward pass of that update), ``probe/<layer>`` (every layer's output on a fixed
probe batch, in full), ``inputs/probe`` and ``inputs/probe_target``, and ``fit``'s batch
metrics through ``run.log``.

With ``fit``: ``model.fit(..., callbacks=[Recorder(run)])``. In a custom loop:
``rec = Recorder(run, model=model)``, then ``rec.record(step)`` after each update (gradients
passed to ``optimizer.apply`` are caught on their own), and ``rec.close()``.
"""

from __future__ import annotations

try:
    import keras
except ImportError as exc:  # pragma: no cover - exercised without keras installed
    raise ImportError("netlapse.keras needs Keras 3: pip install 'netlapse[keras]' "
                      "(and a backend: torch, jax or tensorflow)") from exc
if int(keras.__version__.split(".")[0]) < 3:  # pragma: no cover
    raise ImportError(f"netlapse.keras needs Keras 3, found {keras.__version__}: "
                      "pip install -U 'netlapse[keras]'")


import numpy as np

from .._record.plan import CapturePlan, resolve_updates, select_names
from .._record.support import (module_entry, param_entry, probe_rejected, record_host,
                               require_open_run, split_probe, summary)
from .._record.unitmeta import keras_unit_meta
from ._grads import GradTap, to_host as _host
from ._layers import LayerTaps, leaf_layers, variable_names
from ..errors import NetlapseError

__all__ = ["Recorder", "model_summary"]




def model_summary(model) -> dict:
    """Layers and variables (names as netlapse streams them), shapes, dtypes, counts, as JSON."""
    names = variable_names(model)
    params = [param_entry(names[id(v)], v.shape, str(v.dtype), v.trainable)
              for v in model.weights if id(v) in names]
    layers = [module_entry(layer.name, type(layer).__name__,
                           sum(np.prod(v.shape) for v in layer.weights), True)
              for layer in leaf_layers(model)]
    return summary(type(model).__name__, params, layers, name=model.name)


class Recorder(keras.callbacks.Callback):
    """Record a Keras 3 model's training into ``run`` (a ``netlapse.Run``).

    weights, grads, activations: ``"full"`` (exact tensors), ``"stats"`` (summary + histogram)
    or ``None``. ``every``: record steps divisible by it. ``probe``: a fixed input batch (or
    ``(x, y)``) run with ``training=False`` at every recorded step; each layer's output is
    stored in full as ``probe/<layer>``. ``include``/``exclude``: glob patterns on stream names
    without their kind prefix (``"dense/kernel"``, ``"dense*"``). ``model``: only for custom
    loops; ``fit`` passes its model in. ``optimizer``: for custom loops with an optimizer
    that is not ``model.optimizer``; the gradients handed to its ``apply`` are recorded.
    ``updates``: ``"stats"`` (default ``"auto"``: when weights are recorded) records each
    update's stats as ``updates/<layer>/<var>``; ``alerts=True`` turns on the doctor's live
    alerts (docs/doctor.md).
    """

    def __init__(self, run, every: int = 1, weights="stats", grads="stats", activations=None,
                 probe=None, include=None, exclude=None, *, model=None, optimizer=None,
                 log_metrics: bool = True, updates="auto", alerts: bool = False):
        super().__init__()
        require_open_run(run, "Recorder()")
        self.plan = CapturePlan.make(every, weights, grads, activations)
        self.updates = resolve_updates(updates, True, self.plan.weights)   # fit always has one
        if alerts:
            run.enable_alerts()
        self.run = run
        self.include, self.exclude = include, exclude
        self.log_metrics = log_metrics
        self.probe, self.probe_target = split_probe(probe)
        self.closed = False
        self.step = None          # updates done so far, once attached
        self._attached = False
        self._grad_tap = None
        self._layer_taps = None
        self._state_step = None   # last step whose weights were recorded
        self._recorded_grads: set[int] = set()
        self._batch_start = 0
        self._inputs_recorded = False
        self._optimizer = optimizer
        if model is not None:
            self.set_model(model)

    # ------------------------------------------------------------------ attach / detach
    def _attach(self, step: int | None = None) -> None:
        if self._attached:
            return
        if self.closed:
            raise NetlapseError("this Recorder is closed; make a new one for the next run.")
        model = getattr(self, "_model", None)
        if model is None:
            raise NetlapseError("Recorder has no model: pass it to fit(callbacks=[rec]) or "
                                "make it with Recorder(run, model=model) for a custom loop.")
        if not model.built or not model.weights:
            raise NetlapseError(f"model {model.name!r} is not built yet: give it a keras.Input, "
                                "or call it once on a batch, before recording.")
        names = variable_names(model)
        leaves = leaf_layers(model)
        chosen = set(select_names(list(names.values()) + [l.name for l in leaves],
                                  self.include, self.exclude))
        self._vars = [(names[id(v)], v) for v in model.weights if names.get(id(v)) in chosen]
        self._leaves = [l for l in leaves if l.name in chosen]
        self._layer_named = {l.name: l for l in self._leaves}
        self.run.set_model_summary({"name": "keras", "version": keras.__version__,
                                    "backend": keras.backend.backend()}, model_summary(model))
        opt = self._optimizer or getattr(model, "optimizer", None)
        if self.plan.grads and opt is not None:
            trainable = [v for v in model.trainable_variables]
            by_id = {id(v): n for n, v in self._vars if v.trainable}
            self._grad_tap = GradTap(opt, by_id, [by_id.get(id(v)) for v in trainable], self.plan.every)
            if self._grad_tap.backend == "tensorflow":
                self._grad_tap.prepare_shadows(trainable)
        if self.probe is not None or self.plan.activations:
            self._layer_taps = LayerTaps(self._leaves, self._on_activation)
        self._retrace(model)
        self.step = self._iterations(opt) if step is None else int(step)
        self.run.step = self.step
        self._attached = True
        if self.probe is not None:
            try:
                self._check_probe(model)
            except NetlapseError:
                self._detach()
                raise
            if not self._inputs_recorded:
                self._inputs_recorded = True
                record_host(self.run, self.plan, "inputs/probe", _host(self.probe), self.step, "full")
                if self.probe_target is not None:
                    record_host(self.run, self.plan, "inputs/probe_target", _host(self.probe_target),
                                self.step, "full")
        self._record_state(model, self.step)

    @staticmethod
    def _iterations(opt) -> int:
        if opt is None:
            return 0
        return int(keras.ops.convert_to_numpy(opt.iterations))

    @staticmethod
    def _retrace(model) -> None:
        """Compiled train steps (JAX jit, tf.function) bake in the optimizer and layer methods
        they saw when traced: rebuild it so the next call traces with the taps."""
        if keras.backend.backend() in ("jax", "tensorflow") and getattr(model, "train_function", None):
            model.make_train_function(force=True)

    def _detach(self) -> None:
        if not self._attached:
            return
        self._flush_grads()
        if self._grad_tap is not None:
            self._grad_tap.restore()
            self._grad_tap = None
        if self._layer_taps is not None:
            self._layer_taps.restore()
            self._layer_taps = None
        self._attached = False
        model = getattr(self, "_model", None)
        if model is not None and keras.backend.backend() in ("jax", "tensorflow"):
            model.train_function = None

    # ------------------------------------------------------------------ recording
    def _record_state(self, model, step: int) -> None:
        if not self.plan.due(step) or self._state_step == step:
            return
        self._state_step = step
        if self.plan.weights:
            for name, v in self._vars:
                record_host(self.run, self.plan, f"weights/{name}", _host(v), step, self.plan.weights,
                            updates=self.updates)
        if self.probe is not None:
            for name, out in self._probe_outputs(model).items():
                record_host(self.run, self.plan, f"probe/{name}", out, step, "full")

    def _probe_outputs(self, model) -> dict[str, np.ndarray]:
        with self._layer_taps.collect() as outputs:
            model(self.probe, training=False)
        return {name: _host(out) for name, out in outputs.items()}

    def _check_probe(self, model) -> None:
        shape = tuple(getattr(self.probe, "shape", ()))
        try:
            self._probe_outputs(model)
        except Exception as exc:
            raise probe_rejected(shape, exc) from exc

    def _flush_grads(self) -> None:
        if self._grad_tap is None:
            return
        for step, grads in self._grad_tap.take():
            if step in self._recorded_grads:
                continue
            self._recorded_grads.add(step)
            for name, g in grads.items():
                record_host(self.run, self.plan, f"grads/{name}", g, step, self.plan.grads)

    def _on_activation(self, name: str, value: np.ndarray) -> None:
        step = self.step + 1
        if self.plan.due(step):
            layer = self._layer_named.get(name)
            units = keras_unit_meta(layer, np.shape(value)) if layer is not None else None
            record_host(self.run, self.plan, f"activations/{name}", value, step,
                        self.plan.activations, units=units)

    # ------------------------------------------------------------------ Keras callback hooks
    def on_train_begin(self, logs=None):
        self._attach()

    def on_train_batch_begin(self, batch, logs=None):
        self._batch_start = batch
        if self._layer_taps is not None and self.plan.activations:
            self._layer_taps.training = self.plan.due(self.step + 1)

    def on_train_batch_end(self, batch, logs=None):
        if self._layer_taps is not None:
            self._layer_taps.settle()
            self._layer_taps.training = False
        self.step += max(1, batch - self._batch_start + 1)
        self.run.step = self.step
        self._flush_grads()
        if self.plan.due(self.step):
            self._record_state(self.model, self.step)   # .model syncs JAX state first
        if self.log_metrics and logs:
            self._log(logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.log_metrics and logs:
            self._log({k: v for k, v in logs.items() if k.startswith("val_")})

    def on_train_end(self, logs=None):
        self._detach()

    def _log(self, logs: dict) -> None:
        row = {}
        for key, value in logs.items():
            try:
                row[key] = float(keras.ops.convert_to_numpy(value))
            except (TypeError, ValueError):
                continue
        if row:
            self.run.log(self.step, **row)

    # ------------------------------------------------------------------ custom loops
    def record(self, step: int | None = None) -> None:
        """Custom loops: record weights (and probe outputs, and the gradients the optimizer
        received since the last call) as they are after ``step`` updates. ``step`` defaults to
        the optimizer's update count. The first call also starts the recording."""
        if not self._attached:
            self._attach(step)
            return
        self._flush_grads()
        model = self.model
        opt = self._optimizer or getattr(model, "optimizer", None)
        self.step = self._iterations(opt) if step is None else int(step)
        self.run.step = self.step
        self._record_state(model, self.step)

    def close(self) -> None:
        """Give the optimizer and layers back as they were. The run stays open."""
        if self.closed:
            return
        self._detach()
        self.closed = True

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
