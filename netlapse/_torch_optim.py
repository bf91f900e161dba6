"""The optimizer side of ``netlapse.torch.watch``: when is a step, and which grads did it use.

- ``real_optimizer`` unwraps ``.optimizer`` chains (Accelerate's ``AcceleratedOptimizer``,
  Lightning's ``LightningOptimizer``, HF) down to the ``torch.optim.Optimizer`` whose own
  ``step`` does the update; anything else is refused when ``watch()`` is called.
- ``UpdateHooks`` hooks one or several optimizers. Each optimizer's update reports the grads it
  is about to use: taken in the step pre-hook, or, for ``opt.step(closure)``, right after the
  closure's first call returns (the closure computes them; LBFGS calls it again at other
  weights, those later calls are not recorded). A step is complete when every listed optimizer
  has stepped once.
- ``ScalerHooks`` notices an update a ``torch.amp.GradScaler`` skipped (Inf/NaN grads): the
  scaler then never calls ``optimizer.step``, so no step is counted, and the watcher is told so
  it can count the skip. See docs/integrations.md.
"""

from __future__ import annotations

import torch

from .errors import NetlapseError

__all__ = ["real_optimizer", "optimizer_list", "UpdateHooks", "ScalerHooks"]

_ACCEPTED = ("a torch.optim.Optimizer, a wrapper whose .optimizer chain ends at one (Accelerate's "
             "AcceleratedOptimizer, Lightning's LightningOptimizer), a list of those, or None "
             "(then call w.step() after each update)")


def _is_real(obj) -> bool:
    # AcceleratedOptimizer subclasses Optimizer without running its __init__: no hook tables.
    return isinstance(obj, torch.optim.Optimizer) and hasattr(obj, "_optimizer_step_pre_hooks")


def real_optimizer(obj) -> torch.optim.Optimizer:
    """The innermost ``torch.optim.Optimizer`` of a ``.optimizer`` chain (the one that updates)."""
    chain, cur = [type(obj).__name__], obj
    for _ in range(16):
        inner = getattr(cur, "optimizer", None)
        if inner is None or inner is cur or (_is_real(cur) and not callable(getattr(inner, "step", None))):
            break   # (a real optimizer's unrelated .optimizer attribute is not followed)
        cur = inner
        chain.append(type(cur).__name__)
    if _is_real(cur):
        return cur
    via = f" (followed .optimizer: {' -> '.join(chain)})" if len(chain) > 1 else ""
    raise NetlapseError(f"optimizer: got {type(obj).__name__}{via}; watch() accepts {_ACCEPTED}.")


def optimizer_list(optimizer) -> list[torch.optim.Optimizer]:
    if optimizer is None:
        return []
    items = list(optimizer) if isinstance(optimizer, (list, tuple)) else [optimizer]
    if not items:
        raise NetlapseError(f"optimizer=[] is empty; watch() accepts {_ACCEPTED}.")
    real = [real_optimizer(o) for o in items]
    if len({id(o) for o in real}) != len(real):
        raise NetlapseError("optimizer: the same optimizer is listed twice; list each once.")
    return real


class UpdateHooks:
    """Step pre/post hooks on ``optimizers``, reporting to the watcher.

    ``grads_ready(params, i)``: optimizer ``i``, owning ``params`` (a list of (name, tensor)), is
    about to update with their current ``.grad``. ``stepped(i)``, if given: optimizer ``i``'s
    ``step`` returned. ``update_done()``: every optimizer has stepped once.
    """

    def __init__(self, optimizers, params, grads_ready, update_done, stepped=None):
        self.optimizers = optimizers
        self._grads_ready = grads_ready
        self._update_done = update_done
        self._stepped_cb = stepped
        owner = {}
        for i, opt in enumerate(optimizers):
            for group in opt.param_groups:
                for p in group["params"]:
                    owner.setdefault(id(p), i)
        # watched params no optimizer holds (e.g. frozen) go with the first optimizer
        self.params_of = [[(n, p) for n, p in params if owner.get(id(p), 0) == i]
                          for i in range(len(optimizers))]
        self._stepped: set[int] = set()
        self._skipped: set[int] = set()
        self._handles = []
        for i, opt in enumerate(optimizers):
            self._handles.append(opt.register_step_pre_hook(self._pre_hook(i)))
            self._handles.append(opt.register_step_post_hook(self._post_hook(i)))
        self.calls = [0] * len(optimizers)   # completed .step() calls, per optimizer

    def index(self, optimizer) -> int | None:
        for i, opt in enumerate(self.optimizers):
            if opt is optimizer:
                return i
        return None

    def _pre_hook(self, i):
        def hook(optimizer, args, kwargs):
            if i in self._stepped or i in self._skipped:
                self._finish()   # it steps again before the others did: close the pending step
            # args[0] is the optimizer itself (torch passes the bound call's full args)
            closure = kwargs.get("closure") if "closure" in kwargs else (
                args[1] if len(args) > 1 else None)
            if closure is None:
                self._grads_ready(self.params_of[i], i)
                return None
            wrapped = self._wrap(i, closure)
            if "closure" in kwargs:
                return args, {**kwargs, "closure": wrapped}
            return (args[0], wrapped, *args[2:]), kwargs
        return hook

    def _wrap(self, i, closure):
        first = [True]

        def closure_then_record(*a, **kw):
            out = closure(*a, **kw)
            if first[0]:   # LBFGS calls it again at other weights: the first call's grads count
                first[0] = False
                self._grads_ready(self.params_of[i], i)
            return out
        return closure_then_record

    def _post_hook(self, i):
        def hook(optimizer, args, kwargs):
            if self._stepped_cb is not None:
                self._stepped_cb(i)
            self.calls[i] += 1
            self._stepped.add(i)
            if len(self._stepped | self._skipped) == len(self.optimizers):
                self._finish()
        return hook

    def skipped(self, i) -> None:
        """Optimizer ``i``'s update was skipped (an AMP scaler found Inf/NaN)."""
        self._skipped.add(i)
        if len(self._stepped | self._skipped) == len(self.optimizers):
            self._finish()

    def _finish(self) -> None:
        stepped = bool(self._stepped)
        self._stepped, self._skipped = set(), set()
        if stepped:
            self._update_done()

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


class ScalerHooks:
    """Wraps one ``GradScaler``'s ``step`` (on that instance only, undone by ``remove``) to see
    whether the optimizer's own ``step`` ran; if it did not, ``on_skip(optimizer)`` is called."""

    def __init__(self, scaler, hooks: UpdateHooks, on_skip):
        if not callable(getattr(scaler, "step", None)) or not hasattr(scaler, "update"):
            raise NetlapseError(f"scaler: got {type(scaler).__name__}; pass the "
                                "torch.amp.GradScaler that steps the optimizer, or None.")
        self.scaler = scaler
        self._inner = scaler.step
        self._before = scaler.__dict__.get("step")   # another watcher's wrapper, if any
        self._active = True

        def step(optimizer, *args, **kwargs):
            try:
                i = hooks.index(real_optimizer(optimizer)) if self._active else None
            except NetlapseError:
                i = None
            before = hooks.calls[i] if i is not None else None
            out = self._inner(optimizer, *args, **kwargs)
            if i is not None and hooks.calls[i] == before:
                on_skip(i)
            return out
        self._step = step
        scaler.step = step

    def remove(self) -> None:
        self._active = False   # if another wrapper sits on top of this one, it just passes on
        if self.scaler.__dict__.get("step") is self._step:
            if self._before is None:
                del self.scaler.__dict__["step"]
            else:
                self.scaler.step = self._before
