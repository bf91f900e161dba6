"""A PyTorch model's state beyond its parameters: buffers, and parameters shared under two names.

- **Buffers** (BatchNorm's ``running_mean``/``running_var``, ...) change in the forward pass, not
  in the optimizer update, so they are copied when a step is recorded (after the update, like
  the weights of that step): ``buffers/<name>`` holds them as the next forward will use them.
  Only floating-point buffers are recorded (``num_batches_tracked`` is a counter); the model
  summary lists every buffer.
- **Shared parameters** (an output layer tied to the embedding) are one tensor under several
  names. ``named_parameters()`` yields it once, under the first name; the others are aliases,
  listed in the model summary (``aliases: {"head.weight": "emb.weight"}``) so that the reader
  and ``netlapse info`` can resolve them.
"""

from __future__ import annotations

from ._record.plan import check_mode

__all__ = ["BufferSlots", "aliases", "buffer_summary", "state_summary"]


def _dtype_name(dtype) -> str:
    return str(dtype).replace("torch.", "")


def aliases(model) -> dict[str, str]:
    """``{other name: recorded name}`` for parameters and buffers reachable under several names."""
    out: dict[str, str] = {}
    for named in (model.named_parameters(remove_duplicate=False),
                  model.named_buffers(remove_duplicate=False)):
        first: dict[int, str] = {}
        for name, t in named:
            if t is None:
                continue
            seen = first.setdefault(id(t), name)
            if seen != name:
                out[name] = seen
    return out


def buffer_summary(model) -> list[dict]:
    """Every buffer (each once): name, shape, dtype, size, whether it is saved in the state dict
    (``persistent``) and whether watching records it (``floating``)."""
    out, seen = [], set()
    for mod_name, module in model.named_modules():
        skip = getattr(module, "_non_persistent_buffers_set", set())
        for attr, t in module.named_buffers(recurse=False):
            if t is None or id(t) in seen:
                continue
            seen.add(id(t))
            out.append({"name": f"{mod_name}.{attr}" if mod_name else attr,
                        "shape": list(t.shape), "dtype": _dtype_name(t.dtype), "numel": t.numel(),
                        "persistent": attr not in skip, "floating": t.is_floating_point()})
    return out


def state_summary(model) -> dict:
    """The ``buffers`` and ``aliases`` entries of the model summary."""
    return {"buffers": buffer_summary(model), "aliases": aliases(model)}


class BufferSlots:
    """The floating-point buffers to record, looked up afresh at each recorded step (a module
    may assign a new tensor to a buffer instead of updating it in place).

    ``BufferSlots(model, mode, chosen)``: ``mode`` is ``"stats"``, ``"full"`` or None;
    ``chosen(name)`` says whether the watcher's include/exclude patterns keep a name.
    """

    def __init__(self, model, mode, chosen):
        self.mode = check_mode("buffers", mode)
        self.slots: list[tuple[str, object, str]] = []
        if self.mode is None:
            return
        seen = set()
        for mod_name, module in model.named_modules():
            for attr, t in module.named_buffers(recurse=False):
                name = f"{mod_name}.{attr}" if mod_name else attr
                if t is None or id(t) in seen or not t.is_floating_point() or not chosen(name):
                    continue
                seen.add(id(t))
                self.slots.append((name, module, attr))

    def __bool__(self) -> bool:
        return bool(self.slots)

    def named(self) -> list[tuple[str, object]]:
        """``[(name, tensor)]`` as the buffers are now."""
        out = []
        for name, module, attr in self.slots:
            t = getattr(module, attr, None)
            if t is not None:
                out.append((name, t))
        return out
