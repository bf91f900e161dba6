"""Grads the writer reads where they are, without a copy: ``LiveGrads``.

Most training loops drop the grads after ``optimizer.step()`` (``zero_grad()`` sets them to
None, its default) before the next forward pass; the next backward then makes new tensors and
the old ones never change again. For such loops the grads an update used are handed to the
writer as they are (as weights are, see netlapse/torch.py), which saves the training thread a
copy of every grad at every captured step (ResNet-18: 45 MB, about 7 ms a step on this project's
machines) and the pooled slabs that copy needs.

Safety, per optimizer:

- It goes live only after one captured update, copied as usual, showed that its ``step`` left
  the grads unchanged (version counters: SGD with ``nesterov=True`` writes into them) and that
  they were dropped before the next forward pass. Until then, and for good if not, grads are
  copied before the update as always.
- Live, at the next forward pass (and the next update, and ``close``) grads still attached to
  their parameters are *settled*: the training thread waits for the writer to finish reading
  them, or copies them if it has not started, before a backward could add into them; that
  optimizer then goes back to copies. A step whose grads changed in place before they were read
  is not stored, and a warning says so (``pipeline.LiveCapture``).
- At most ``MAX_HELD`` captures of dropped grads wait for the writer; past that the oldest is
  settled, so a writer that falls behind holds a bounded number of old grads in memory.
- When the weights after the update go to the writer in place too, the grads are queued
  without waking it (``send(wake=False)``): the weights' hand-over at the next forward pass
  wakes it for both, one system call a step instead of two.

Only CPU tensors of the dtypes numpy reads in place qualify, outside torch.distributed.
"""

from __future__ import annotations

from collections import deque

__all__ = ["LiveGrads", "MAX_HELD"]

MAX_HELD = 4   # captures of dropped grads the writer may still hold (as pool slabs per group)


class LiveGrads:
    """The live-grads state of one watcher with ``n`` optimizers (see the module docstring)."""

    def __init__(self, run, n: int, readable):
        self.run = run
        self.readable = readable          # readable(tensors) -> bool: CPU, dtype, contiguous
        self.live = [None] * n            # per optimizer: None not yet known, True, False
        self._trial: dict[int, tuple] = {}    # optimizer -> (params, tensors, versions, stepped ok)
        self._attached: list[tuple] = []      # (i, capture, params, grads, versions): not dropped yet
        self._held: deque = deque()           # captures of dropped grads the writer may read

    def wants(self, i: int) -> bool:
        """Whether optimizer ``i``'s grads go live at this update."""
        return self.live[i] is True

    def send(self, i: int, group, step: int, named: list, grads: list, fill,
             wake: bool = True) -> None:
        """Hand optimizer ``i``'s grads (``named``: (name, param) pairs; ``grads``: their
        ``.grad`` objects, as dropped means ``p.grad is not g``) over live. ``wake=False``:
        the weights' hand-over at the next forward pass wakes the writer for both."""
        if any(g.requires_grad for g in grads):   # create_graph=True: numpy needs a detached view
            tensors = [g.detach() for g in grads]  # (it shares the version counter)
        else:
            tensors = grads
        if not self.readable(tensors):
            self.live[i] = False
            self.run.record_group(group, step, fill(tensors))
            return
        versions = [t._version for t in tensors]

        def unchanged():
            return all(t._version == v for t, v in zip(tensors, versions))

        cap = self.run.record_live(group, step, [t.numpy() for t in tensors], fill(tensors),
                                   unchanged, wake)
        if cap is not None:
            self._attached.append((i, cap, [p for _, p in named], grads, versions))

    def on_trial(self, i: int, named: list) -> None:
        """Optimizer ``i``'s grads were just copied; watch whether this update qualifies it."""
        if self.live[i] is None and named:
            params = [p for _, p in named]
            tensors = [p.grad for p in params]
            self._trial[i] = (params, tensors, [t._version for t in tensors], None)

    def stepped(self, i: int) -> None:
        """Optimizer ``i``'s ``step`` returned: did it write into the grads it used?"""
        trial = self._trial.get(i)
        if trial is not None and trial[3] is None:
            params, tensors, versions, _ = trial
            ok = all(t._version == v for t, v in zip(tensors, versions))
            if ok:
                self._trial[i] = (params, tensors, versions, True)
            else:
                del self._trial[i]
                self.live[i] = False
        for i_, cap, params, tensors, versions in self._attached:
            if i_ == i and any(t._version != v for t, v in zip(tensors, versions)):
                self.live[i] = False   # the writer finds the change and reports that step

    def release(self) -> None:
        """Before anything can add into the grads (a forward pass, an update, close): let the
        writer keep dropped grads; settle attached ones (and stop going live for them)."""
        if self._trial:
            for i, (params, tensors, _, stepped_ok) in list(self._trial.items()):
                if stepped_ok:
                    self.live[i] = _dropped(params, tensors)
            self._trial.clear()
        if not self._attached:
            return
        attached, self._attached = self._attached, []
        for i, cap, params, tensors, _ in attached:
            if _dropped(params, tensors):
                self._held.append(cap)
            else:
                self.live[i] = False
                self.run.settle(cap)
        while len(self._held) > MAX_HELD:
            self.run.settle(self._held.popleft())
        while self._held and self._held[0].state >= self._held[0].DONE:
            self._held.popleft()

    def close(self) -> None:
        """Settle the grads still attached to their parameters (the writer keeps dropped ones:
        nothing changes them)."""
        self.release()
        self._held.clear()


def _dropped(params, tensors) -> bool:
    """Every parameter's ``.grad`` is no longer the tensor that was handed over."""
    return all(p.grad is not t for p, t in zip(params, tensors))
