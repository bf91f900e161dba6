"""Rank awareness: a ``Run`` inside an initialised ``torch.distributed`` process group.

Every rank runs the same code. Rank 0 owns the run folder and writes it; the other ranks
create no folder and write nothing (their ``Run`` holds a ``_SilentPipeline``). Collectives
that netlapse issues go through ``Context`` so that each one fails with a message that says
what happened, instead of blocking: they use the process group's own timeout (gloo's default is
30 minutes; ``init_process_group(timeout=...)`` sets it).

Nothing here imports torch: a process group exists only when ``torch.distributed`` is already
imported and initialised (see docs/distributed.md).
"""

from __future__ import annotations

import sys

from ..errors import CollectiveError

__all__ = ["Context", "CollectiveError", "context", "REDUCE_OPS"]

REDUCE_OPS = ("mean", "sum", "max")


def _torch_dist():
    """``torch.distributed`` when it is imported, available and initialised; else None."""
    mod = sys.modules.get("torch.distributed")
    if mod is None:
        return None
    try:
        if not (mod.is_available() and mod.is_initialized()):
            return None
    except Exception:  # noqa: BLE001 - a half-imported torch: no process group
        return None
    return mod


def context() -> "Context | None":
    """The current process group as a ``Context``; None outside one (or with one rank)."""
    dist = _torch_dist()
    if dist is None or dist.get_world_size() < 2:
        return None
    return Context(dist)


class Context:
    """This process's place in the default process group, and netlapse's collectives on it.

    Every method that communicates must be called by every rank, in the same order.
    """

    def __init__(self, dist):
        import torch

        self.dist = dist
        self.rank = dist.get_rank()
        self.world = dist.get_world_size()
        self.backend = str(dist.get_backend())
        self.device = (torch.device("cuda", torch.cuda.current_device())
                       if self.backend == "nccl" else torch.device("cpu"))
        self.broken: BaseException | None = None

    @property
    def is_writer(self) -> bool:
        return self.rank == 0

    def timeout(self):
        """The process group's timeout (a ``timedelta``), or None where torch does not say."""
        try:
            from torch.distributed import distributed_c10d as c10d

            pg = c10d._get_default_group()
            return pg._get_backend(self.device).options._timeout
        except Exception:  # noqa: BLE001 - private API; only used in messages
            return None

    # ------------------------------------------------------------------ collectives
    def _call(self, what: str, fn, *args, **kwargs):
        """Run one collective; a failure (a dead peer, the group's timeout) becomes a
        ``CollectiveError`` naming the cause, and no further netlapse collective is tried."""
        if self.broken is not None:
            raise CollectiveError(f"netlapse's collectives stopped after an earlier failure: "
                                  f"{self.broken}") from self.broken
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - gloo/NCCL raise RuntimeError subclasses
            self.broken = exc
            limit = self.timeout()
            limit_text = (f"at most the process group's timeout ({limit.total_seconds():g} s, set "
                          "by init_process_group(timeout=...))" if limit is not None
                          else "at most the process group's timeout")
            raise CollectiveError(
                f"netlapse's {what} on rank {self.rank} of {self.world} failed: "
                f"{type(exc).__name__}: {str(exc).strip()[:400]}. Another rank has probably died, "
                f"or it does not call the same netlapse operations (watch at the same steps, "
                f"run.log(reduce=...) on every rank). netlapse waits {limit_text}. Steps "
                "committed to the run before this are intact and readable.") from exc

    def all_reduce(self, tensor, op: str, what: str):
        """In-place all-reduce of ``tensor`` (``op``: "sum", "max" or "min"); returns it."""
        dist = self.dist
        red = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}[op]
        moved = tensor.to(self.device)
        self._call(what, dist.all_reduce, moved, op=red)
        return moved.to(tensor.device) if moved is not tensor else tensor

    def all_reduce_later(self, tensor, op: str, what: str) -> "Later":
        """Start an all-reduce of ``tensor`` in place without waiting for it; ``Later.wait()``
        returns the reduced tensor (every rank must start the same ones in the same order)."""
        dist = self.dist
        red = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}[op]
        moved = tensor.to(self.device)
        work = self._call(what, dist.all_reduce, moved, op=red, async_op=True)
        return Later(self, work, moved, tensor.device, what)

    def all_gather(self, tensor, what: str):
        """Every rank's ``tensor`` stacked: shape ``(world,) + tensor.shape``."""
        import torch

        moved = tensor.to(self.device).contiguous()
        out = [torch.empty_like(moved) for _ in range(self.world)]
        self._call(what, self.dist.all_gather, out, moved)
        return torch.stack(out).to(tensor.device)

    def broadcast_int(self, value: int, what: str) -> int:
        """Rank 0's ``value`` on every rank."""
        import torch

        t = torch.tensor([int(value)], dtype=torch.int64, device=self.device)
        self._call(what, self.dist.broadcast, t, 0)
        return int(t.item())

    def reduce_scalars(self, row: dict, how: str) -> dict:
        """``run.log(..., reduce=how)``: each metric reduced over the ranks (one all-reduce)."""
        import torch

        if how not in REDUCE_OPS:
            raise ValueError(f"reduce={how!r}: use one of {', '.join(map(repr, REDUCE_OPS))} "
                             "(or leave it out to store rank 0's values).")
        keys = list(row)
        t = torch.tensor([row[k] for k in keys], dtype=torch.float64, device=self.device)
        self.all_reduce(t, "max" if how == "max" else "sum",
                        f"run.log(reduce={how!r}) of {', '.join(keys)}")
        values = t.cpu().tolist()
        if how == "mean":
            values = [v / self.world for v in values]
        return dict(zip(keys, values))


class Later:
    """A collective started with ``async_op=True``: the job's own process group carries it
    while training goes on; ``wait()`` blocks until it is done (at most the group's timeout)."""

    def __init__(self, ctx: Context, work, tensor, device, what: str):
        self.ctx, self.work, self.tensor, self.device, self.what = ctx, work, tensor, device, what

    def wait(self):
        self.ctx._call(self.what, self.work.wait)
        return self.tensor.to(self.device)


class _SilentPool:
    alloc = None
    waited_s = 0.0


class _SilentPipeline:
    """The pipeline of a ``Run`` on a rank other than 0: takes everything, writes nothing.

    ``fill`` callbacks are never called, so nothing is copied either.
    """

    stall_timeout = 300.0

    def __init__(self):
        self.pool = _SilentPool()
        self.last_committed_step: dict = {}

    def submit(self, *args, **kwargs) -> None:
        pass

    submit_group = submit_rows = log = flush = drain = close = submit

    def submit_live(self, *args, **kwargs):
        return None

    def settle(self, *args) -> None:
        pass

    def writer_alive(self) -> bool:
        return False

    def pending_summary(self) -> str:
        return "This rank writes nothing (rank 0 writes the run)."


class _SilentManifest:
    """run.json as seen by a rank other than 0: kept in memory, never written."""

    def __init__(self, config: dict | None):
        self.data = {"config": dict(config or {})}

    def update(self, **fields) -> None:
        self.data.update(fields)


def follower_parts(config: dict | None):
    """``(manifest, pipeline)`` for a ``Run`` on a rank other than 0."""
    return _SilentManifest(config), _SilentPipeline()


def reduce_row(ctx: "Context | None", row: dict, how: str) -> dict:
    """``run.log(reduce=how)``: the row reduced over the ranks (unchanged in one process)."""
    if how not in REDUCE_OPS:
        raise ValueError(f"reduce={how!r}: use one of {', '.join(map(repr, REDUCE_OPS))} "
                         "(or leave it out to store rank 0's values).")
    return row if ctx is None else ctx.reduce_scalars(row, how)
