"""PyTorch: ``watch(model, run, optimizer=...)`` records weights, grads, activations and probes.

Steps (see docs/architecture.md, "Steps"): weights at step 0 when watching starts; at each
``optimizer.step()`` the grads used by that update (taken just before it, or when a
``step(closure)``'s closure returns; see ``_torch_optim``) and the weights after it, when
``step % every == 0``. Activations recorded at step ``k`` are those of the last training forward
pass before update ``k`` (see ``_torch_taps``: one stream per call of a module, hooks that
trace cleanly under ``torch.compile``; ``_torch_compiled``: names without ``_orig_mod.``).
"""

from __future__ import annotations

import functools
import warnings
import weakref

try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - exercised without torch installed
    raise ImportError("netlapse.torch needs PyTorch: pip install 'netlapse[torch]' "
                      "(or pip install torch==2.13.0)") from exc

import numpy as np

from ._record.plan import CapturePlan, resolve_updates, select_names
from ._record.pipeline import Group, StreamSpec
from ._record.probe_plan import probe_layers
from ._record.support import (host_dtype, module_entry, param_entry, probe_rejected,
                               require_open_run, split_probe, summary)
from ._record.torch_dist import attach as _attach_dist
from ._torch_grads import LiveGrads
from ._torch_params import ParamViews, readable_in_place as _readable_in_place
from ._torch_optim import ScalerHooks, UpdateHooks, optimizer_list
from ._torch_compiled import clean_name, eager_call, forget_compiled_code, has_compiled_parts, unwrap
from ._torch_state import BufferSlots, state_summary
from ._torch_taps import MAX_CALLS, ModuleTaps
from ._record.unitmeta import torch_unit_meta
from .errors import CollectiveError, NetlapseError

__all__ = ["watch", "Watcher", "model_summary", "MAX_CALLS"]

_WATCHED: "weakref.WeakKeyDictionary[nn.Module, Watcher]" = weakref.WeakKeyDictionary()

def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


@functools.lru_cache(maxsize=None)
def _host_dtype(dtype: torch.dtype) -> np.dtype:
    """The numpy dtype a tensor of ``dtype`` is stored as (bfloat16 widened: see support)."""
    wide = host_dtype(_dtype_name(dtype))
    return wide if wide is not None else torch.empty((), dtype=dtype).numpy().dtype


def model_summary(model: nn.Module) -> dict:
    """Module tree, parameter names/shapes/dtypes/counts, as plain JSON."""
    model = unwrap(model)
    params = [param_entry(n, p.shape, _dtype_name(p.dtype), p.requires_grad)
              for n, p in ((clean_name(n), p) for n, p in model.named_parameters())]
    modules = [module_entry(clean_name(n or ""), type(m).__name__,
                            sum(p.numel() for p in m.parameters(recurse=False)),
                            not any(True for _ in m.children()))
               for n, m in model.named_modules() if not n.endswith("_orig_mod")]
    return summary(type(model).__name__, params, modules,
                   **state_summary(model))   # buffers, aliases of shared parameters


def _pinned_alloc(shape, dtype):
    return torch.empty(shape, dtype=torch.from_numpy(np.empty(0, dtype)).dtype, pin_memory=True).numpy()


class Watcher:
    """Hooks on one model (and its optimizer) feeding one run. Close it, or use ``with``."""

    def __init__(self, model: nn.Module, run, optimizer=None, *, every: int = 1,
                 weights="stats", grads="stats", activations=None, probe=None,
                 include=None, exclude=None, name=None, scaler=None, buffers="stats",
                 probe_capture="full", probe_include=None, probe_exclude=None,
                 updates="auto", alerts: bool = False):
        if not isinstance(model, nn.Module):
            raise NetlapseError(f"watch() takes a torch.nn.Module, got {type(model).__name__}.")
        given, model = model, unwrap(model)   # torch.compile(model): the original's names
        if model in _WATCHED and not _WATCHED[model].closed:
            raise NetlapseError("this model is already watched; close the first watcher "
                                "(w.close()) before watching it again.")
        require_open_run(run, "watch()", "second")
        self.optimizers = optimizer_list(optimizer)
        self.name = _check_name(name, run)
        self._prefix = "" if name is None else f"{name}/"
        self._steps = run.step   # this watcher's update count (named watchers; see steps_taken)
        self.plan = CapturePlan.make(every, weights, grads, activations)
        self.updates = resolve_updates(updates, optimizer is not None, self.plan.weights)
        self.model = model
        self.run = run
        self.optimizer = (self.optimizers[0] if len(self.optimizers) == 1
                          else self.optimizers or None)
        self.closed = False
        self._handles: list = []
        self._warned: set[str] = set()
        self._groups: dict[tuple, Group] = {}
        self._host_views: dict[int, tuple] = {}   # id(slab views) -> (views, torch views)
        self._weights_due: int | None = None      # a step whose weights are still to be read
        self._weights_live = None                 # LiveCapture the writer may be reading
        # the last captured weights went live: their hand-over at the next forward wakes the
        # writer, so the grads queued before them need not (_record_grads)
        self._weights_follow = False
        self._in_probe = False
        self._dist = _attach_dist(model, run)   # None outside a torch.distributed process group
        base = model if self._dist is None else self._dist.module   # DDP: names without "module."

        named = {clean_name(n): p for n, p in (base.named_parameters() if self._dist is None
                                               else self._dist.named_parameters())}
        leaves = {(clean_name(n) or "model"): m for n, m in (base.named_modules() if self._dist is None
                                                             else self._dist.named_modules())
                  if not any(True for _ in m.children())}
        buffer_names = [n for n, _ in base.named_buffers()]
        all_names = list(named) + buffer_names + [n for n in leaves if n not in named]
        chosen = set(select_names(all_names, include, exclude))
        self.buffers = BufferSlots(base, buffers, chosen.__contains__)
        self.params = [(n, p) for n, p in named.items() if n in chosen]
        self._param_views = ParamViews(   # what the in-place hand-over of weights reuses
            self.params, lambda ts: self._group("weights", self.params, ts, self.plan.weights),
            self._copier)
        self.leaves = [(n, m) for n, m in leaves.items() if n in chosen]
        self.probe_capture, self.probe_names = probe_layers(
            [n for n, _ in self.leaves], probe_capture, probe_include, probe_exclude)
        self.probe, self.probe_target = self._split_probe(probe)

        if any(p.is_cuda for _, p in self.params):
            run.allocator = _pinned_alloc
        run.set_model_summary({"name": "torch", "version": torch.__version__}, model_summary(base),
                              name=name)
        if self.probe is not None:
            self._check_probe()
            self._record_inputs()
        self._updates = self._scaler = self._live_grads = None
        self.skipped_updates = 0
        if self.optimizers:
            if self.plan.grads and self._dist is None:   # grads read in place (_torch_grads.py)
                self._live_grads = LiveGrads(run, len(self.optimizers), _readable_in_place)
            self._updates = UpdateHooks(self.optimizers, self.params, self._grads_ready,
                                        self._after_update,
                                        stepped=None if self._live_grads is None else self._live_grads.stepped)
            self._handles.append(self._updates)
            if scaler is not None:
                self._scaler = ScalerHooks(scaler, self._updates, self._update_skipped)
                self._handles.append(self._scaler)
        self._taps = ModuleTaps(self, model, self.leaves, activations=self.plan.activations,
                                probe=self.probe is not None and self.probe_capture is not None,
                                probe_in_graph=has_compiled_parts(model),
                                on_forward=self._on_forward if self.optimizers and (
                                    self.plan.weights or self._live_grads) else None,
                                outer=given if given is not model else None)
        if self._taps.installed:
            forget_compiled_code(model)   # compiled before watch(): retrace once, with the hooks
        _WATCHED[model] = self
        run.watchers.append(self)
        if alerts:
            run.enable_alerts()
        self._record_state(self.steps_taken)

    @property
    def steps_taken(self) -> int:
        """Updates counted so far. An unnamed watcher counts in ``run.step``; a named one keeps
        its own count and moves ``run.step`` up to it (``run.step`` = the largest count)."""
        return self.run.step if self.name is None else self._steps

    def _stream(self, kind: str, name: str) -> str:
        return f"{kind}/{self._prefix}{name}"

    # ------------------------------------------------------------------ set-up helpers
    @staticmethod
    def _split_probe(probe):
        x, y = split_probe(probe)
        for what, t in (("probe", x), ("probe target", y)):
            if t is not None and not isinstance(t, torch.Tensor):
                raise NetlapseError(
                    f"the {what} must be a torch.Tensor batch, got {type(t).__name__}. Pass "
                    "probe=x or probe=(x, y) with tensors, e.g. probe=torch.as_tensor(x[:64]).")
        return x, y

    def _run_probe_forward(self):
        """Run the model on the probe: eval mode, no grad; restore every module's mode."""
        model = self.model if self._dist is None else self._dist.probe_module
        modes = [(m, m.training) for m in model.modules()]
        model.eval()
        try:
            with torch.no_grad():
                return eager_call(model, self.probe)
        finally:
            for m, was in modes:
                m.training = was

    def _check_probe(self) -> None:
        if self._dist is not None and not self._dist.runs_probe:
            return
        stack: list[tuple[str, list]] = []
        handles = []
        def enter(name, module, inputs):
            stack.append((name, [tuple(t.shape) for t in inputs if isinstance(t, torch.Tensor)]))

        def leave(module, inputs, output):
            stack.pop()

        for name, m in self.leaves:
            handles.append(m.register_forward_pre_hook(functools.partial(enter, name)))
            handles.append(m.register_forward_hook(leave))
        try:
            self._run_probe_forward()
        except Exception as exc:
            where = (f" at layer {stack[-1][0]!r} (input shapes {stack[-1][1]})" if stack else "")
            raise probe_rejected(self.probe.shape, exc, where) from exc
        finally:
            for h in handles:
                h.remove()

    def _record_inputs(self) -> None:
        self._record(self._stream("inputs", "probe"), self.probe, 0, "full", kind="inputs")
        if self.probe_target is not None:
            self._record(self._stream("inputs", "probe_target"), self.probe_target, 0, "full",
                         kind="inputs")

    # ------------------------------------------------------------------ recording
    def _extra_meta(self, kind: str, name: str, t) -> dict:
        """What the doctor needs (docs/doctor.md): weights ask the writer for
        ``updates/<param>``; activations carry their ``units`` (axis, activation, bounds)."""
        if kind == "weights" and self.updates:
            return {"updates": self.updates}
        if kind == "activations":
            module = dict(self.leaves).get(name.split(":")[0])
            if module is not None:
                return {"units": torch_unit_meta(module, t.shape)}
        return {}

    def _record(self, name: str, tensor, step: int, capture: str, kind: str | None = None,
                **extra) -> None:
        t = tensor.detach() if isinstance(tensor, torch.Tensor) else torch.as_tensor(tensor)
        shape = tuple(t.shape)
        meta = self.plan.meta(kind or name.split("/", 1)[0], capture, shape, _dtype_name(t.dtype),
                              **extra)
        host = _host_dtype(t.dtype)
        if t.is_cuda:
            def fill(buf, t=t):
                torch.from_numpy(buf).copy_(t, non_blocking=True)
                event = torch.cuda.Event()
                event.record()
                return event.synchronize
        else:
            def fill(buf, t=t):
                torch.from_numpy(buf).copy_(t)
        self.run.record(name, step, fill, shape, host, full=capture == "full", meta=meta)

    def _group(self, kind: str, named: list, tensors: list, capture: str) -> Group:
        key = (kind, capture, tuple((n, t.shape, t.dtype) for (n, _), t in zip(named, tensors)))
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = Group(
                StreamSpec(self._stream(kind, n), self.plan.meta(kind, capture, t.shape, _dtype_name(t.dtype),
                                                                 **self._extra_meta(kind, n, t)),
                           tuple(t.shape), np.dtype(_host_dtype(t.dtype)), capture == "full")
                for (n, _), t in zip(named, tensors))
        return group

    def _copier(self, tensors: list):
        """``fill(views)``: copy ``tensors`` into a pooled slab's views in one foreach call."""
        cuda = tensors[0].is_cuda

        def fill(views):
            cached = self._host_views.get(id(views))
            if cached is None:
                cached = self._host_views[id(views)] = (views, [torch.from_numpy(v) for v in views])
            torch._foreach_copy_(cached[1], tensors, non_blocking=cuda)
            if cuda:
                event = torch.cuda.Event()
                event.record()
                return event.synchronize
        return fill

    def _record_group(self, kind: str, named: list, step: int, capture: str) -> None:
        """Record tensors taken at one moment (all weights, or all grads) as one group: one
        pooled slab, one copy call, one queue item, one summary call for all of them."""
        if self._dist is not None and self._dist.take_group(self, kind, named, step, capture):
            return
        if not named:
            return
        tensors = [t.detach() for _, t in named]
        self.run.record_group(self._group(kind, named, tensors, capture), step, self._copier(tensors))

    # Weights after update k do not change until update k+1, so they need no copy: they are
    # handed to the writer when the next forward pass starts (after any change the user makes
    # between the update and the forward, such as clipping), and the next update waits until
    # the writer has read them, or copies them first if it has not started (``_settle``).
    def _readable_in_place(self) -> bool:
        if self._dist is not None and not self._dist.in_place_ok:
            return False
        return self._param_views.current().readable

    def _on_forward(self, module=None, args=None) -> None:
        if self._in_probe:
            return
        if self._live_grads is not None:   # before a backward could add into handed-over grads
            self._live_grads.release()
        if self._weights_due is not None:
            self._send_weights_live()

    def _send_weights_live(self) -> None:
        step, self._weights_due = self._weights_due, None
        views = self._param_views.current()
        if not views.readable:   # moved since the update (e.g. to a GPU): copied instead
            self._record_group("weights", self.params, step, self.plan.weights)
            return
        tensors = views.tensors
        versions = [t._version for t in tensors]

        def unchanged():
            return all(t._version == v for t, v in zip(tensors, versions))

        self._weights_live = self.run.record_live(views.group, step, views.arrays, views.fill,
                                                  unchanged)

    def _settle(self) -> None:
        """Before weights may change: the writer has read (or has a copy of) the last ones.
        In a process group: the histograms reduced since the last capture are recorded."""
        if self._dist is not None:
            self._dist.settle()
        if self._weights_due is not None:
            step, self._weights_due = self._weights_due, None
            self._record_group("weights", self.params, step, self.plan.weights)
        if self._weights_live is not None:
            live, self._weights_live = self._weights_live, None
            self.run.settle(live)

    def _record_state(self, step: int) -> None:
        """Weights (and probe outputs) as they are after ``step`` updates."""
        if not self.plan.due(step):
            return
        if self.plan.weights and self.params:
            self._weights_follow = bool(self.optimizers and not self.closed
                                        and self._readable_in_place())
            if self._weights_follow:
                self._settle()
                self._weights_due = step
            else:
                self._record_group("weights", self.params, step, self.plan.weights)
        if self.buffers:   # changed by the forward pass: copied now, as the next one uses them
            self._record_group("buffers", self.buffers.named(), step, self.buffers.mode)
        if self.probe is not None:
            self._capture_probe(step)

    def _capture_probe(self, step: int) -> None:
        if self._dist is not None and not self._dist.runs_probe or not self.probe_capture:
            return
        self._in_probe = True
        try:
            self._taps.probe_pass(step, self._run_probe_forward)
        finally:
            self._in_probe = False

    def _record_probe(self, stream: str, t, step: int) -> None:
        """One leaf output of a probe pass (``stream``: the module name, ``:2`` etc. per call)."""
        if stream in self.probe_names or stream.rsplit(":", 1)[0] in self.probe_names:
            self._record(self._stream("probe", stream), t, step, self.probe_capture)

    def _record_grads(self, step: int, params=None, index: int | None = None) -> None:
        if not (self.plan.grads and self.plan.due(step)):
            return
        named = [(n, p) for n, p in (params or self.params) if p.grad is not None]
        live = self._live_grads if index is not None else None
        if live is not None and named and live.wants(index):
            grads = [p.grad for _, p in named]
            live.send(index, self._group("grads", named, grads, self.plan.grads), step, named,
                      grads, self._copier, wake=not self._weights_follow)
            return
        self._record_group("grads", [(n, p.grad) for n, p in named], step, self.plan.grads)
        if live is not None:
            live.on_trial(index, named)   # may this optimizer's grads be read in place later?

    def _grads_ready(self, params=None, index: int | None = None) -> None:
        """Optimizer ``index`` is about to update ``params`` (all watched ones when None)."""
        self._settle()
        if self._live_grads is not None:
            self._live_grads.release()
        self._record_grads(self.steps_taken + 1, params, index)
        if self._dist is not None:   # activation stats reduced over the ranks (every rank)
            self._dist.grads_ready(self, self.steps_taken + 1)

    def _after_update(self) -> None:
        self._taps.commit(self.steps_taken + 1)   # activations of the last forward before it
        if self.name is None:
            self.run.step += 1
        else:
            self._steps += 1
            self.run.step = max(self.run.step, self._steps)
        self._record_state(self.steps_taken)
        if self._dist is not None:   # reduce what this step took over the ranks (torch_dist.py)
            self._dist.after_update(self.steps_taken)

    def _update_skipped(self, index: int) -> None:
        """The AMP scaler skipped an optimizer's update (Inf/NaN grads): not a step; counted."""
        self.skipped_updates += 1
        self.run.log(self.steps_taken, **{f"{self._prefix}amp/skipped_updates": self.skipped_updates})

    # ------------------------------------------------------------------ public
    def step(self) -> None:
        """Without an optimizer: call after each update; records grads (as they are now) and weights."""
        if self.optimizers:
            raise NetlapseError("this watcher advances on optimizer.step(); do not call w.step() too.")
        self._grads_ready()
        self._after_update()

    def close(self) -> None:
        """Remove every hook. The run stays open (close it with run.close())."""
        if self.closed:
            return
        if self._dist is not None:
            self._dist.drop_batch()   # grads taken for an update that never happened
        try:
            self._settle()
        except CollectiveError as exc:   # a peer died: already raised once where it happened
            self._dist.drop_pending()
            warnings.warn(f"netlapse: the last reduced stats were not recorded: {exc}",
                          RuntimeWarning, stacklevel=2)
        if self._live_grads is not None:
            self._live_grads.close()
        self.closed = True
        self._taps.close()
        for h in self._handles:
            h.remove()
        self._handles = []
        if self in self.run.watchers:
            self.run.watchers.remove(self)

    def __enter__(self) -> "Watcher":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:   # the run is marked failed (or interrupted) when it closes
            self.run._note_exception(exc_type, exc, tb)
        self.close()


def _check_name(name, run) -> str | None:
    others = [w for w in getattr(run, "watchers", []) if not getattr(w, "closed", False)]
    if name is not None and (not isinstance(name, str) or not name or "/" in name):
        raise NetlapseError(f"name={name!r}: pass a short non-empty string without '/', e.g. "
                            "name=\"G\".")
    if others and (name is None or any(getattr(w, "name", None) is None for w in others)):
        first = others[0]
        raise NetlapseError(
            f"this run already has a watcher (on {type(first.model).__name__}"
            f"{', name=' + repr(first.name) if getattr(first, 'name', None) else ''}). To record several models on "
            "one run, give every watch a name, e.g. nl.watch(G, run, opt_g, name=\"G\") and "
            "nl.watch(D, run, opt_d, name=\"D\"); or close the first watcher (w.close()).")
    if any(getattr(w, "name", None) == name for w in others):
        raise NetlapseError(f"name={name!r} is already used by another watcher on this run; "
                            "give each model its own name.")
    return name


def watch(model, run, optimizer=None, *, every: int = 1, weights="stats", grads="stats",
          activations=None, probe=None, include=None, exclude=None, name=None,
          scaler=None, buffers="stats", probe_capture="full", probe_include=None,
          probe_exclude=None, updates="auto", alerts: bool = False) -> Watcher:
    """Record a PyTorch model's training into ``run``.

    weights, grads, activations: ``"full"`` (exact tensors), ``"stats"`` (summary + histogram)
    or ``None``. ``every``: record steps divisible by it. ``probe``: a fixed input batch (or
    ``(x, y)``) run in eval mode at every captured step; each leaf layer's output is stored in
    full as ``probe/<layer>``. ``include``/``exclude``: glob patterns on parameter and layer names.

    ``optimizer``: a ``torch.optim.Optimizer`` (wrappers such as Accelerate's are unwrapped), or
    a list of them (a step is complete when each has stepped once). ``name``: needed when several
    models are watched on one run; their streams become ``weights/<name>/<param>`` etc.
    ``scaler``: the ``torch.amp.GradScaler`` that steps the optimizer, to count the updates it
    skips as metric ``amp/skipped_updates``. What a step holds: docs/integrations.md.
    ``buffers``: floating-point buffers (BatchNorm running statistics) as ``buffers/<name>``,
    ``"stats"`` (default), ``"full"`` or None, at the same steps as the weights.
    ``probe_capture``: ``"full"`` (default; the geometry views need it), ``"stats"`` or None;
    ``probe_include``/``probe_exclude``: glob patterns on layer names (a pattern matching a
    module picks every layer inside it) choosing which layers the probe records.
    ``updates``: ``"stats"`` records the stats of each update (w_k - w_(k-every)) as
    ``updates/<param>``, computed by the writer from the weights it records (default
    ``"auto"``: on when an optimizer is watched and weights are recorded); ``None``: off.
    ``alerts=True``: the doctor's cheap instruments run on the writer as steps commit and
    warn once per new finding (see ``netlapse doctor``).
    """
    return Watcher(model, run, optimizer, every=every, weights=weights, grads=grads,
                   activations=activations, probe=probe, include=include, exclude=exclude,
                   name=name, scaler=scaler, buffers=buffers, probe_capture=probe_capture,
                   probe_include=probe_include, probe_exclude=probe_exclude,
                   updates=updates, alerts=alerts)
