"""The torch adapter inside a process group: DDP, FSDP2 and FSDP models, rank-reduced stats.

What is recorded from where (docs/distributed.md):

- DDP (or a model replicated by hand): parameters and grads are the same on every rank after
  the update's all-reduce, so rank 0 records them as in one process, without collectives.
  Activations differ per rank: their stats are reduced across ranks (``reduce_stats``) so that
  they are the stats of the global batch. Full activations are rank 0's share. The probe runs
  on rank 0 only, on the module inside DDP (so DDP's forward, which may broadcast buffers, is
  not entered).
- FSDP2 (``fully_shard``, parameters are ``DTensor`` shards) and FSDP with
  ``use_orig_params=True`` (flat local views): stats are computed on each rank's shard and
  reduced; ``"full"`` gathers the whole tensor (``full_tensor()``, or ``summon_full_params``).
  Every rank runs the probe (its forward gathers parameters); rank 0 records it.

``reduce_stats`` issues two collectives per group of tensors (an all-gather of 8 numbers per
tensor, then an all-reduce of 66 per tensor), only at captured steps, the same on every rank.
Its results follow ``_stats``' layout exactly: the histogram uses the edges of the reduced
min/max and the same float64 bin formula, so its counts are those of the whole tensor.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .distributed import context
from .derive import updates_meta
from .pipeline import Group, StreamSpec
from .. import _stats
from .._stats import HIST_BINS, N_STATS
from ..errors import NetlapseError

__all__ = ["attach", "DistWatch", "reduce_stats"]

_PREFIXES = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.")


def _clean(name: str) -> str:
    for prefix in _PREFIXES:
        name = name.replace(prefix, "")
    return name


def _is_dtensor(t) -> bool:
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover - torch without distributed
        return False
    return isinstance(t, DTensor)


def _local(t):
    """This rank's part of ``t`` as a plain tensor (None stays None)."""
    if t is None:
        return None
    if not _is_dtensor(t):
        return t.detach()
    with torch.no_grad():   # to_local outside autograd: about 1 us instead of 15 (12 a step)
        return t.to_local().detach()


def _legacy_fsdp(model):
    try:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    except ImportError:  # pragma: no cover
        return []
    return [m for m in model.modules() if isinstance(m, FSDP)]


def attach(model, run) -> "DistWatch | None":
    """A ``DistWatch`` when ``run`` was made inside a process group of 2+ ranks, else None."""
    if run._dist is None:
        if context() is not None:
            raise NetlapseError(
                "this Run was created before torch.distributed.init_process_group(), so every "
                "rank would write its own copy. Create the Run after init_process_group(); rank "
                "0 then writes it and the other ranks write nothing.")
        return None
    return DistWatch(model, run._dist)


# ---------------------------------------------------------------------------------- stats
# A rank's partial stats of one tensor: [present, n, zeros, nonfinite, count, mean, ssd,
# sum_abs, min, max], over its finite values (ssd: sum of squared deviations from its mean).
_ROW = 10
_KERNEL_DTYPES = (torch.float32, torch.float64)


def _hist(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """``_stats.histogram`` in torch: the same float64 arithmetic, so the same bins."""
    counts = torch.zeros(HIST_BINS, dtype=torch.float64, device=x.device)
    n = x.numel()
    if n == 0:
        return counts
    if not hi > lo:
        counts[0] = n
        return counts
    scale = HIST_BINS / (hi - lo)
    if math.isfinite(scale):
        idx = ((x - lo) * scale).to(torch.int64)    # >= 0, so truncation is floor
    else:
        idx = (x >= hi).to(torch.int64) * HIST_BINS
    idx.clamp_(max=HIST_BINS - 1)
    return torch.bincount(idx, minlength=HIST_BINS).to(torch.float64)


def _partials_cpu(arrays: list) -> np.ndarray:
    """Partial rows of float32/float64 CPU arrays with the compiled kernel (one call)."""
    stats, _ = _stats.summarize_many(arrays)
    mean, std, lo, hi, _, mean_abs, zero_frac, nonfinite = stats.T
    n = np.array([x.size for x in arrays], np.float64)
    m = n - nonfinite
    has, sized = m > 0, n > 0
    rows = np.zeros((len(arrays), _ROW))
    rows[:, 0], rows[:, 1], rows[:, 3], rows[:, 4] = 1, n, nonfinite, m
    rows[sized, 2] = np.round(zero_frac[sized] * n[sized])   # half to even, as round() does
    rows[has, 5] = mean[has]
    rows[has, 6] = std[has] * std[has] * m[has]
    rows[has, 7] = mean_abs[has] * m[has]
    rows[:, 8] = np.where(has, lo, np.inf)
    rows[:, 9] = np.where(has, hi, -np.inf)
    return rows


def _partials_torch(t) -> tuple[np.ndarray, object]:
    """The partial row of any tensor (other dtypes, GPUs), in float64 on its device."""
    x = t.reshape(-1).to(torch.float64)
    n = x.numel()
    row = np.zeros(_ROW)
    row[8], row[9] = np.inf, -np.inf
    row[0], row[1] = 1, n
    if n == 0:
        return row, x
    finite = torch.isfinite(x)
    m = int(finite.sum())
    row[2], row[3], row[4] = float((x == 0).sum()), n - m, m
    if m < n:
        x = x[finite]
    if m:
        mean = x.sum() / m
        d = x - mean
        lo, hi = torch.aminmax(x)
        row[5:] = float(mean), float(torch.dot(d, d)), float(x.abs().sum()), float(lo), float(hi)
    return row, x


class ReducedLater:
    """``reduce_stats(..., later=True)``: the stats are known, the histograms' all-reduce is
    under way; ``result()`` waits for it and returns ``(stats, hist, present)``."""

    def __init__(self, stats, later, present):
        self.stats, self.later, self.present = stats, later, present

    def result(self):
        hist = self.later.wait().cpu().numpy()
        return self.stats, np.rint(hist).astype(np.int64), self.present


def reduce_stats(ctx, tensors: list, what: str, later: bool = False):
    """Stats and histograms of tensors split over the ranks, as if each were one tensor.

    ``tensors[i]`` is this rank's part of tensor ``i`` (a plain tensor, possibly empty, or None
    where this rank has none). Every rank must call this with the same number of tensors.
    Returns ``(stats (k, 8), hist (k, 64) int64, present (k,) bool)``; ``present[i]`` is False
    when no rank had tensor ``i``. Two collectives: an all-gather of each rank's partial rows
    (count, mean, squared deviations, ... merged exactly as Chan et al.), then an all-reduce
    of the histograms on the edges of the merged min/max. ``later``: do not wait for the
    second; return a ``ReducedLater`` (its ``result()`` gives the same three).
    """
    k = len(tensors)
    rows = np.zeros((k, _ROW))
    rows[:, 8], rows[:, 9] = np.inf, -np.inf
    finite: list = [None] * k   # other tensors: their finite values, for the histogram
    fast = [i for i, t in enumerate(tensors) if t is not None and t.device.type == "cpu"
            and t.dtype in _KERNEL_DTYPES]
    fast_set = set(fast)
    arrays = [tensors[i].reshape(-1).contiguous().numpy() for i in fast]
    if fast:
        rows[fast] = _partials_cpu(arrays)
    for i, t in enumerate(tensors):
        if t is not None and i not in fast_set:
            rows[i], finite[i] = _partials_torch(t)
    every = ctx.all_gather(torch.from_numpy(rows), f"{what} (all-gather of partial stats)").numpy()
    count = every[:, :, 4].sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (every[:, :, 4] * every[:, :, 5]).sum(0) / count
        ssd = (every[:, :, 6] + every[:, :, 4] * (every[:, :, 5] - mean) ** 2).sum(0)
    lo, hi = every[:, :, 8].min(0), every[:, :, 9].max(0)
    hist = np.zeros((k, HIST_BINS))
    if fast:   # on the edges of the merged min/max (the compiled kernel counts in place)
        hist[fast] = _stats.histogram_many(arrays, lo[fast], hi[fast])
    for i, x in enumerate(finite):
        if x is None or len(x) == 0 or count[i] == 0:
            continue
        hist[i] = _hist(x, float(lo[i]), float(hi[i])).cpu().numpy()
    hist_what = f"{what} (all-reduce of histograms)"
    if later:
        pending = ctx.all_reduce_later(torch.from_numpy(hist), "sum", hist_what)
    else:
        hist = ctx.all_reduce(torch.from_numpy(hist), "sum", hist_what).numpy()
    n, zeros, nonfinite = every[:, :, 1].sum(0), every[:, :, 2].sum(0), every[:, :, 3].sum(0)
    stats = np.full((k, N_STATS), np.nan)
    stats[:, 7] = nonfinite
    has = n > 0
    stats[has, 6] = zeros[has] / n[has]
    ok = count > 0
    stats[ok, 0] = mean[ok]
    stats[ok, 1] = np.sqrt(ssd[ok] / count[ok])
    stats[ok, 2] = lo[ok]
    stats[ok, 3] = hi[ok]
    stats[ok, 4] = np.sqrt(ssd[ok] + count[ok] * mean[ok] * mean[ok])
    stats[ok, 5] = every[:, ok, 7].sum(0) / count[ok]
    present = every[:, :, 0].sum(0) > 0
    if later:
        return ReducedLater(stats, pending, present)
    return stats, np.rint(hist).astype(np.int64), present


# ---------------------------------------------------------------------------------- models
class DistWatch:
    """What a ``Watcher`` does differently on one rank of a process group."""

    def __init__(self, model, ctx):
        from torch.nn.parallel import DistributedDataParallel as DDP

        self.ctx = ctx
        self.model = model
        self.module = model.module if isinstance(model, DDP) else model
        legacy = _legacy_fsdp(self.module)
        for m in legacy:
            if not getattr(m, "_use_orig_params", False):
                raise NetlapseError(
                    "netlapse records FullyShardedDataParallel models only with "
                    "use_orig_params=True (then each parameter keeps its own name and shard). "
                    "Wrap the model with FSDP(model, use_orig_params=True), or use FSDP2's "
                    "torch.distributed.fsdp.fully_shard.")
        self.legacy = legacy[0] if legacy else None
        self.sharded = self.legacy is not None or any(
            _is_dtensor(p) for p in self.module.parameters())
        self._held: dict = {}
        self._pending: list = []   # (ReducedLater, record(stats, hist, present)): see settle
        self._batch: list = []     # (parts, record, kind) taken at this step, not reduced yet
        self._prev: dict = {}   # name -> (step, this rank's weight shard then): updates/<param>
        self._reduced = -1
        self._groups: dict = {}
        self._shapes: dict = {}
        if self.legacy is not None:
            self._shapes = self._legacy_shapes()

    @property
    def is_writer(self) -> bool:
        return self.ctx.is_writer

    def named_parameters(self):
        return [(_clean(n), p) for n, p in self.module.named_parameters()]

    def named_modules(self):
        return [(_clean(n), m) for n, m in self.module.named_modules()]

    @property
    def in_place_ok(self) -> bool:
        """May weights be handed to the writer in place (rank 0 with whole tensors only)."""
        return self.is_writer and not self.sharded

    @property
    def runs_probe(self) -> bool:
        """Sharded models: every rank runs the probe (its forward gathers parameters)."""
        return self.sharded or self.is_writer

    @property
    def probe_module(self):
        """DDP: the wrapped module, so DDP's forward (buffer broadcast) is not entered."""
        return self.model if self.sharded else self.module

    def _legacy_shapes(self) -> dict:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        with FSDP.summon_full_params(self.legacy, writeback=False):
            return {id(p): tuple(p.shape) for p in self.module.parameters()}

    # ------------------------------------------------------------------ weights and grads
    def take_group(self, watcher, kind: str, named: list, step: int, capture: str) -> bool:
        """Record a group of parameters or grads; False: the watcher records it as usual."""
        if not self.sharded or kind not in ("weights", "grads"):
            return not self.is_writer   # DDP, buffers: rank 0 records as in one process
        params = dict(watcher.params)
        params = [params.get(n) for n, _ in named]
        if capture == "full":
            self._take_full(watcher, kind, named, step, capture)
        else:
            self._take_stats(watcher, kind, named, params, step)
        return True

    def _take_stats(self, watcher, kind, named, params, step) -> None:
        parts = [_local(t) for _, t in named]
        updates = kind == "weights" and getattr(watcher, "updates", None) == "stats"
        if updates:   # updates/<param>: w_k - w_(k-every) per shard, reduced with the weights
            parts = parts + self._deltas(named, parts, step, watcher.plan.every)
        if kind == "grads":   # reduced after the update, with the weights: kept as they are now
            parts = [None if t is None else t.clone() for t in parts]
        self._batch.append((parts, lambda stats, hist, present: self._record_stats(
            watcher, kind, named, params, parts, step, updates, stats, hist, present), kind))
        if kind != "grads":
            self.reduce_batch(step)

    def reduce_batch(self, step: int) -> None:
        """Reduce everything taken at this captured step (grads and activations before the
        update, weights and updates after it) in one ``reduce_stats``: one all-gather the
        training thread waits for, one all-reduce it does not (see ``settle``). Every rank
        calls it at the same points: after a weights capture, and after every update."""
        batch, self._batch = self._batch, []
        if not batch:
            return
        parts = [t for entry_parts, _, _ in batch for t in entry_parts]
        kinds = " and ".join(dict.fromkeys(kind for _, _, kind in batch))
        reduced = reduce_stats(self.ctx, parts, f"{kinds} stats at step {step}", later=True)

        def record(stats, hist, present):
            at = 0
            for entry_parts, record_entry, _ in batch:
                rows = slice(at, at + len(entry_parts))
                record_entry(stats[rows], hist[rows], present[rows])
                at = rows.stop
        self._pending.append((reduced, record))

    def _record_stats(self, watcher, kind, named, params, parts, step, updates, stats, hist,
                      present) -> None:
        if not self.is_writer:
            return
        k = len(named)
        specs = [(name, self._global_shape(t, params[i]),
                  t.dtype if t is not None else params[i].dtype)
                 for i, (name, t) in enumerate(named)]
        extra = {"updates": "stats"} if updates else {}
        for what, rows in ((kind, range(k)), ("updates", range(k, len(parts)))):
            keep = [i for i in rows if present[i]]
            if keep:
                group = self._rows_group(watcher, what, [specs[i % k] for i in keep], "stats",
                                         **(extra if what == kind else {}))
                watcher.run.record_rows(group, step, stats[keep], hist[keep])

    def _deltas(self, named, parts, step: int, every: int) -> list:
        """Each shard minus its copy from ``every`` steps before (None at the first step or
        after a gap); the copies are then refreshed. Memory: one copy of this rank's shards."""
        out = []
        for (name, _), cur in zip(named, parts):
            prev = self._prev.get(name)
            ok = (cur is not None and prev is not None and prev[0] == step - every
                  and prev[1].shape == cur.shape)
            out.append(cur - prev[1] if ok else None)
            if cur is not None:
                self._prev[name] = (step, cur.clone())
        return out

    def _global_shape(self, t, param) -> tuple:
        if t is not None and _is_dtensor(t):
            return tuple(t.shape)
        if self.legacy is not None and param is not None:
            return self._shapes.get(id(param), tuple(t.shape) if t is not None else ())
        return tuple(t.shape)

    def _take_full(self, watcher, kind, named, step, capture) -> None:
        if self.legacy is not None:
            from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

            with FSDP.summon_full_params(self.legacy, writeback=False, with_grads=kind == "grads"):
                whole = [(n, p.grad if kind == "grads" else p) for n, p in watcher.params]
                self._send_full(watcher, kind, whole, step, capture)
            return
        whole = [(n, t.full_tensor() if _is_dtensor(t) else t) for n, t in named]
        self._send_full(watcher, kind, whole, step, capture)

    def _send_full(self, watcher, kind, whole, step, capture) -> None:
        whole = [(n, t.detach()) for n, t in whole if t is not None]
        if self.is_writer and whole:
            tensors = [t for _, t in whole]
            watcher.run.record_group(watcher._group(kind, whole, tensors, capture), step,
                                     watcher._copier(tensors))

    def _rows_group(self, watcher, kind: str, specs: list, capture: str, **extra) -> Group:
        key = (kind, capture, tuple(specs))
        group = self._groups.get(key)
        if group is None:
            from ..torch import _dtype_name, _host_dtype

            def meta(shape, dtype):
                if kind == "updates":   # as the writer's derived updates/<param> (derive.py)
                    return {**updates_meta(watcher.plan.meta("weights", capture, shape,
                                                             _dtype_name(dtype))),
                            "ranks": self.ctx.world}
                return watcher.plan.meta(kind, capture, shape, _dtype_name(dtype),
                                         ranks=self.ctx.world, **extra)

            group = self._groups[key] = Group(
                StreamSpec(watcher._stream(kind, n), meta(shape, dtype), tuple(shape),
                           np.dtype(_host_dtype(dtype)), False)
                for n, shape, dtype in specs)
        return group

    def settle(self) -> None:
        """Wait for the histogram all-reduces started at earlier captures and record their
        rows (rank 0). They ran while training went on: by the next capture (where the watcher
        calls this, and in ``run.flush()`` and at close) they are normally done. Waiting
        starts no collective, so any rank may do it at any time."""
        pending, self._pending = self._pending, []
        for reduced, record in pending:
            record(*reduced.result())

    def drop_pending(self) -> None:
        """After a failed collective: nothing more to wait for or to reduce."""
        self._pending = []
        self._batch = []

    def drop_batch(self) -> None:
        """At close: grads taken for an update that never came are not a step (no collective
        at close: a rank may close alone)."""
        self._batch = []

    # ------------------------------------------------------------------ activations
    def hold(self, stream: str, t) -> None:
        """Keep this rank's activation ``stream`` (a layer, or ``<layer>:2`` for its second
        call; the last training forward before the update) until ``reduce_activations``
        (a copy: the layer's output may be changed in place later)."""
        self._held[stream] = t.detach().clone()

    def after_update(self, step: int) -> None:
        """After every update (every rank): what this step took and no weights capture reduced
        (grads or activations without weights stats) is reduced now."""
        self.reduce_batch(step)

    def grads_ready(self, watcher, step: int) -> None:
        """Before an update: at a captured step, take the held activations (every rank); they
        are reduced after the update with the rest of the step (``reduce_batch``)."""
        if watcher.plan.activations == "stats" and watcher.plan.due(step) and step != self._reduced:
            self._reduced = step   # several optimizers: once per step
            self.reduce_activations(watcher, step)

    def reduce_activations(self, watcher, step: int) -> None:
        """Reduce the held activations' stats over the ranks and record them (rank 0).

        Called on every rank at every captured step, for every watched layer (a layer with no
        activation on a rank takes part as absent), so every rank makes the same collectives.
        Layers called several times per forward add their streams ``<layer>:2``, ...: they must
        be called as many times on every rank (the same code does).
        """
        held, self._held = self._held, {}
        names = [n for n, _ in watcher.leaves]
        names += sorted(set(held) - set(names))
        tensors = [held.get(n) for n in names]
        self._batch.append((tensors, lambda stats, hist, present: self._record_activations(
            watcher, step, names, tensors, stats, hist, present), "activation"))

    def _record_activations(self, watcher, step, names, tensors, stats, hist, present) -> None:
        if not self.is_writer:
            return
        keep = [i for i in range(len(names)) if present[i] and tensors[i] is not None]
        if keep:
            specs = [(names[i], tuple(tensors[i].shape), tensors[i].dtype) for i in keep]
            group = self._rows_group(watcher, "activations", specs, "stats")
            watcher.run.record_rows(group, step, stats[keep], hist[keep])
