"""Catch the gradients a Keras 3 optimizer receives, on any backend, and give them back later.

``fit`` hands each update's gradients to the optimizer: ``optimizer.apply(grads, variables)``
on the torch and TensorFlow backends, ``optimizer.stateless_apply(opt_vars, grads, vars)``
inside a jitted step on JAX. A tap replaces that method on the optimizer *instance* (the class
is untouched) and ``restore()`` puts the original back.

- torch (eager): the gradients are copied to the host when ``apply`` is called.
- JAX: the jitted step sends them to the host with ``jax.debug.callback``, tagged with the
  optimizer's iteration count, so the step is exact even inside ``jit``.
- TensorFlow (graph or eager): they are assigned to host-side shadow ``keras.Variable``s
  and read after the batch; only Keras APIs are used.

``take()`` returns ``[(step, {name: ndarray})]`` gathered since the last call, oldest first.
"""

from __future__ import annotations

import threading

import keras
import numpy as np

from .._record.support import InstancePatches

__all__ = ["GradTap", "to_host"]


def to_host(x) -> np.ndarray:
    """A host copy of a tensor or ``keras.Variable`` of any backend."""
    if isinstance(x, keras.Variable):
        x = x.value
    if hasattr(x, "detach") and hasattr(x, "numpy"):   # torch: skip keras's warning-raising path
        t = x.detach()
        if t.dtype.is_floating_point and t.element_size() < 4 and str(t.dtype) == "torch.bfloat16":
            t = t.float()
        return t.cpu().numpy().copy()
    return np.array(keras.ops.convert_to_numpy(x), copy=True)


class GradTap:
    def __init__(self, optimizer, names_by_var: dict[int, str], ordered_names: list[str],
                 every: int) -> None:
        """``names_by_var``: id(variable) -> stream suffix; ``ordered_names``: names in the
        order of ``model.trainable_variables`` (what the jitted JAX step passes); steps divisible by
        ``every`` are recorded."""
        self.optimizer = optimizer
        self.names_by_var = names_by_var
        self.ordered_names = ordered_names
        self.every = every
        self.backend = keras.backend.backend()
        self.active = True
        self._lock = threading.Lock()
        self._pending: list[tuple[int, dict[str, np.ndarray]]] = []
        self._patches = InstancePatches()
        if self.backend == "jax":
            self._install("stateless_apply", self._jax_stateless_apply)
        elif self.backend == "tensorflow":
            self._make_shadows()
            self._install("apply", self._shadow_apply)
        else:
            self._install("apply", self._eager_apply)

    # ------------------------------------------------------------------ install / restore
    def _install(self, attr: str, wrapper) -> None:
        self._patches.patch(self.optimizer, attr, wrapper)

    def restore(self) -> None:
        self.active = False
        self._patches.restore()

    def _iteration(self) -> int:
        return int(keras.ops.convert_to_numpy(self.optimizer.iterations))

    # ------------------------------------------------------------------ torch (eager)
    def _eager_apply(self, original, grads, trainable_variables=None):
        variables = trainable_variables
        if variables is None:
            variables = self.optimizer._trainable_variables
        step = self._iteration() + 1
        if self.active and step % self.every == 0:
            got = {}
            for g, v in zip(grads, variables):
                name = self.names_by_var.get(id(v))
                if g is not None and name is not None:
                    got[name] = to_host(g)
            with self._lock:
                self._pending.append((step, got))
        return original(grads, trainable_variables)

    # ------------------------------------------------------------------ JAX (jit)
    def _jax_stateless_apply(self, original, optimizer_variables, grads, trainable_variables):
        import jax

        idx = next(i for i, v in enumerate(self.optimizer.variables) if v is self.optimizer.iterations)
        live = [(n, g) for n, g in zip(self.ordered_names, grads) if n is not None and g is not None]
        names = [n for n, _ in live]
        it = optimizer_variables[idx]
        values = [g for _, g in live]

        def send():
            jax.debug.callback(lambda i, gs: self._from_jax(int(i) + 1, names, gs), it, values)

        # only steps that will be recorded leave the device
        jax.lax.cond((it + 1) % self.every == 0, send, lambda: None)
        return original(optimizer_variables, grads, trainable_variables)

    def _from_jax(self, step: int, names, grads) -> None:
        if not self.active or step % self.every:
            return
        got = {n: np.array(g, copy=True) for n, g in zip(names, grads)}
        with self._lock:
            self._pending.append((step, got))

    # ------------------------------------------------------------------ TensorFlow (shadows)
    def _make_shadows(self) -> None:
        self._shadows: dict[str, object] = {}
        self._shadow_step = keras.Variable(0, dtype="int64", trainable=False, name="netlapse_step")
        self._taken_step = 0

    def prepare_shadows(self, variables) -> None:
        """TensorFlow: one zero shadow per trainable variable, made eagerly before tracing."""
        for v in variables:
            name = self.names_by_var.get(id(v))
            if name is not None and name not in self._shadows:
                self._shadows[name] = keras.Variable(np.zeros(tuple(v.shape), dtype=v.dtype),
                                                     trainable=False, name="netlapse_grad")

    def _shadow_apply(self, original, grads, trainable_variables=None):
        variables = trainable_variables
        if variables is None:
            variables = self.optimizer._trainable_variables
        for g, v in zip(grads, variables):
            name = self.names_by_var.get(id(v))
            if g is not None and name in self._shadows:
                self._shadows[name].assign(keras.ops.convert_to_tensor(g))
        self._shadow_step.assign(keras.ops.cast(self.optimizer.iterations, "int64") + 1)
        return original(grads, trainable_variables)

    # ------------------------------------------------------------------ hand-over
    def take(self) -> list[tuple[int, dict[str, np.ndarray]]]:
        if self.backend == "jax":
            import jax

            jax.effects_barrier()
        elif self.backend == "tensorflow":
            step = int(keras.ops.convert_to_numpy(self._shadow_step))
            if step > self._taken_step and step % self.every == 0:
                self._pending.append((step, {n: to_host(s) for n, s in self._shadows.items()}))
            self._taken_step = max(step, self._taken_step)
        with self._lock:
            out, self._pending = self._pending, []
        return out
