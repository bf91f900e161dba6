"""Module taps: the forward hooks behind ``activations/<module>`` and ``probe/<module>``.

What is stored (see docs/architecture.md, "Steps"):

- ``activations/<module>`` at step k: the module's output in the **last** training forward pass
  (grad enabled) before update k: with gradient accumulation the last micro-batch; for a GAN's
  discriminator its own pass on the fake batch of that update. The output is copied into a
  reused buffer when the module returns, so an in-place op after the module
  (``nn.ReLU(inplace=True)``, ``out += identity``) does not change what is stored. At the
  update, the step's outputs go to the writer as one group.
- A module called several times in one forward pass (a reused ``nn.ReLU``) gets one stream
  per call, in call order: ``<module>``, ``<module>:2``, ``<module>:3``, ... up to
  ``MAX_CALLS`` calls per forward pass; later calls (a cell called in a loop) are not
  recorded, and a warning says so once. Probe passes likewise: ``probe/<module>:2``.

The hooks are installed once, at ``watch()``, and stay until ``close()``: installing and
removing them per step would invalidate ``torch.compile``'s cached graphs (or, since Dynamo
does not guard on hooks, be silently ignored by them). Under ``torch.compile`` a hook is traced
into the graph as one opaque op, ``netlapse::tap`` (registered with an ordered side effect so
that it is neither removed nor reordered); at run time the op calls back into the same Python
code as the eager hook. Nothing the hook reads while traced changes from step to step, so the
step number, ``every`` and the call counts cost no guard and no recompilation, and the
tapped tensor is the module's output before any later in-place op.
"""

from __future__ import annotations

import itertools
import warnings
import weakref

import torch

from ._record.support import first_array

__all__ = ["ModuleTaps", "MAX_CALLS", "first_tensor"]

MAX_CALLS = 16   # calls of one module per forward pass that get their own stream

_REGISTRY: dict[int, weakref.WeakMethod] = {}
_SLOTS = itertools.count(1)


def _is_tensor(x) -> bool:
    return isinstance(x, torch.Tensor)


def first_tensor(output):
    """The first tensor of a module's output (a tensor, or a tuple/list/dict holding one)."""
    return first_array(output, _is_tensor)


def _tap_impl(t: torch.Tensor, slot: int, training: bool) -> None:
    ref = _REGISTRY.get(slot)
    fn = ref() if ref is not None else None
    if fn is not None:   # a closed watcher's taps may linger in a compiled graph: no-op
        fn(slot, t, training)


def _register_op():
    try:
        op = torch.library.custom_op("netlapse::tap", mutates_args=())(_tap_impl)
    except RuntimeError:   # already defined (module imported twice)
        return getattr(torch.ops.netlapse, "tap", None)

    @op.register_fake
    def _fake(t, slot, training):
        return None

    from torch._library.effects import EffectType

    op.register_effect(EffectType.ORDERED)
    return op


_register_op()


def _leaf_hook(slot: int, eager, in_graph: bool):
    def netlapse_tap(module, args, output):
        if torch.compiler.is_compiling():
            t = first_tensor(output)
            if in_graph and t is not None:
                torch.ops.netlapse.tap(t, slot, torch.is_grad_enabled())
            return None
        eager(slot, output, torch.is_grad_enabled())
        return None
    return netlapse_tap


def _root_hook(slot: int, eager, in_graph: bool = True):
    def netlapse_forward_start(module, args):
        if torch.compiler.is_compiling():
            if in_graph:
                t = first_tensor(args)
                if t is None:
                    t = torch.empty(0)
                torch.ops.netlapse.tap(t, slot, torch.is_grad_enabled())
            return None
        eager(slot, None, torch.is_grad_enabled())
        return None
    return netlapse_forward_start


def _skip_as_frame(hook):
    """Dynamo compiles any Python frame that starts while a compiled module runs, including a
    hook that ``torch.compile(module)`` calls outside its graph (the root's hooks): that would
    be a second graph per forward. Mark the hooks' code (shared by all closures) so that Dynamo
    runs such a frame, and whatever it calls, eagerly; inlined into a traced forward, the hooks
    are still traced (into one ``netlapse::tap`` op)."""
    try:   # the C names: importing torch._dynamo would add seconds to `import netlapse.torch`
        from torch._C._dynamo.eval_frame import (_FrameAction, _FrameExecStrategy,
                                                 set_code_exec_strategy)

        set_code_exec_strategy(hook.__code__,
                               _FrameExecStrategy(_FrameAction.SKIP, _FrameAction.SKIP))
    except Exception:  # noqa: BLE001 - an older/newer torch: at worst one extra small graph
        pass


_skip_as_frame(_leaf_hook(0, None, False))
_skip_as_frame(_root_hook(0, None))


class ModuleTaps:
    """Permanent hooks on a watched model's root and leaf modules (one instance per watcher).

    ``watcher`` provides ``plan``, ``run``, ``params``, ``_record_group`` and ``_record_probe``;
    ``on_forward()`` is called when a forward pass of the root starts (weights read in place).
    """

    def __init__(self, watcher, root, leaves, *, activations, probe: bool, on_forward=None,
                 probe_in_graph: bool = False, outer=None):
        self.w = watcher
        self.capture = activations
        self.on_forward = on_forward
        self.in_probe = False
        self.probe_step = 0
        self.calls: dict[int, int] = {}          # slot -> calls in the current forward pass
        self.staged: dict[str, torch.Tensor] = {}   # stream -> copy from the last forward
        self.order: dict[str, tuple] = {}        # stream -> (slot, call): commit order
        self.staging: dict[str, torch.Tensor] = {}  # reused buffers
        self.full_shapes: dict[str, tuple] = {}
        self.warned: set = set()
        self.tapped = False   # an activation tap ran since the last update
        self.names: dict[int, str] = {}
        self.handles: list = []
        self.slots: list[int] = []
        method = weakref.WeakMethod(self._tap)
        if activations or on_forward is not None:
            self.root_slot = next(_SLOTS)
            self.slots.append(self.root_slot)
            # Given torch.compile(model) (``outer``), the forward pass starts in the wrapper's
            # own hook, which runs eagerly before the compiled code: the model's hook then puts
            # nothing into the graph when traced (for torch's own containers, nn.Sequential,
            # torch.compile traces the root's hooks; an op there made the compiled MLP's step
            # about 5 % slower, docs/performance.md) and still runs when called eagerly (the
            # model called directly, or hooks run outside the graph): then the start is
            # signalled twice, which changes nothing the second time.
            self.handles.append(root.register_forward_pre_hook(
                _root_hook(self.root_slot, self._tap, in_graph=outer is None)))
            if outer is not None:
                self.handles.append(outer.register_forward_pre_hook(
                    _root_hook(self.root_slot, self._tap)))
        # Traced into a compiled graph only when needed there: activations, or probe passes
        # through compiled submodules (the probe pass itself runs the watched model eagerly).
        in_graph = bool(activations) or probe_in_graph
        if activations or probe:
            for name, module in leaves:
                slot = next(_SLOTS)
                self.names[slot] = name
                self.slots.append(slot)
                self.handles.append(module.register_forward_hook(_leaf_hook(slot, self._tap, in_graph)))
        for slot in self.slots:
            _REGISTRY[slot] = method

    @property
    def installed(self) -> bool:
        return bool(self.handles)

    # ------------------------------------------------------------------ during forward
    def _tap(self, slot: int, t, training: bool) -> None:
        if slot not in self.names:
            self._forward_start(training)
        elif self.in_probe:
            self._probe_output(slot, t)
        elif training and self.capture and self.w.plan.due(self.w.steps_taken + 1):
            self.tapped = True
            self._activation(slot, t)

    def _forward_start(self, training: bool) -> None:
        if self.in_probe:
            return
        self.calls.clear()
        if training:
            self.staged.clear()   # only the last training forward before the update is kept
        if self.on_forward is not None:
            self.on_forward()

    def _stream(self, slot: int):
        """This call's stream name (``<module>``, ``<module>:2``, ...), None past MAX_CALLS."""
        n = self.calls[slot] = self.calls.get(slot, 0) + 1
        name = self.names[slot]
        if n > MAX_CALLS:
            if ("calls", slot) not in self.warned:
                self.warned.add(("calls", slot))
                warnings.warn(
                    f"netlapse: module {name!r} is called more than {MAX_CALLS} times in one "
                    f"forward pass; calls {MAX_CALLS + 1} and later are not recorded (calls 1-"
                    f"{MAX_CALLS} are streams {name!r} to {name + ':' + str(MAX_CALLS)!r}; "
                    "the limit is netlapse.torch.MAX_CALLS).", RuntimeWarning, stacklevel=4)
            return None, n
        return (name if n == 1 else f"{name}:{n}"), n

    def _probe_output(self, slot: int, output) -> None:
        t = first_tensor(output)
        if t is None:
            return
        stream, _ = self._stream(slot)
        if stream is not None:
            self.w._record_probe(stream, t, self.probe_step)

    def _activation(self, slot: int, output) -> None:
        t = first_tensor(output)
        if t is None:
            return
        stream, n = self._stream(slot)
        if stream is None:
            return
        t = t.detach()
        if self.w._dist is not None and self.capture == "stats":
            self.w._dist.hold(stream, t)   # reduced over the ranks before the update
            return
        shape = tuple(t.shape)
        if self.capture == "full":
            first = self.full_shapes.setdefault(stream, shape)
            if shape != first:
                if stream not in self.warned:
                    self.warned.add(stream)
                    warnings.warn(
                        f"activations/{stream}: output shape {shape} differs from the first "
                        f"recorded {first}; such steps are not stored in full. Use "
                        "drop_last=True in the DataLoader or activations=\"stats\".",
                        RuntimeWarning, stacklevel=4)
                self.staged.pop(stream, None)
                return
        buf = self.staging.get(stream)
        if buf is None or tuple(buf.shape) != shape or buf.dtype != t.dtype or buf.device != t.device:
            buf = self.staging[stream] = torch.empty(shape, dtype=t.dtype, device=t.device)
        buf.copy_(t)
        self.staged[stream] = buf
        self.order[stream] = (slot, n)

    # ------------------------------------------------------------------ at the update
    def commit(self, step: int) -> None:
        """Update ``step`` is taking place: store the last training forward's outputs."""
        staged, self.staged = self.staged, {}
        tapped, self.tapped = self.tapped, False
        self.calls.clear()
        if not self.capture or not self.w.plan.due(step):
            return
        if not staged:
            if (not tapped and "missing" not in self.warned
                    and any(p.grad is not None for _, p in self.w.params)):
                self.warned.add("missing")
                warnings.warn(
                    f"netlapse: no activations were captured for step {step}: no watched "
                    "module's forward hook ran in a training forward pass before this update. "
                    "If the forward pass is compiled in a way netlapse cannot see (a "
                    "torch.compile'd training-step function first called before watch()), call "
                    "watch() before its first call. Activations of such steps are not recorded.",
                    RuntimeWarning, stacklevel=4)
            return
        names = sorted(staged, key=self.order.__getitem__)
        self.w._record_group("activations", [(n, staged[n]) for n in names], step, self.capture)

    def probe_pass(self, step: int, forward) -> None:
        """Run ``forward()`` (the probe batch) recording each leaf's output as ``probe/...``."""
        self.in_probe, self.probe_step = True, step
        saved, self.calls = self.calls, {}
        try:
            forward()
        finally:
            self.in_probe, self.calls = False, saved

    def close(self) -> None:
        for h in self.handles:
            h.remove()
        for slot in self.slots:
            _REGISTRY.pop(slot, None)
        self.handles, self.slots = [], []
        self.staged, self.staging = {}, {}
