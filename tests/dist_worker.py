"""One rank of the distributed tests (tests/test_distributed.py), or the one-process reference.

    python tests/dist_worker.py SCENARIO OUT    # with RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT

Runs in its own working directory: runs are made at relative paths, so a rank that created a
folder would leave it in its own cwd (the test checks rank 1's stays empty). Only rank 0 writes
``OUT`` (the activations and collective calls the test compares with the store).
"""

from __future__ import annotations

import datetime
import json
import os
import sys

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

import netlapse as nl

STEPS = 4
GLOBAL_BATCH = 8


class MLP(nn.Module):
    """A small MLP; its last layer has one output row, so an FSDP2 shard of it is empty on
    rank 1. The buffer makes DDP broadcast buffers at every forward (broadcast_buffers=True)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.act1 = nn.ReLU()
        self.fc2 = nn.Linear(8, 5)
        self.act2 = nn.Tanh()
        self.head = nn.Linear(5, 1)
        self.register_buffer("scale", torch.ones(1))

    def forward(self, x):
        return self.head(self.act2(self.fc2(self.act1(self.fc1(x))))) * self.scale


def data(steps: int = STEPS):
    g = torch.Generator().manual_seed(7)
    return [(torch.randn(GLOBAL_BATCH, 6, generator=g), torch.randn(GLOBAL_BATCH, 1, generator=g))
            for _ in range(steps)]


def probe():
    return torch.linspace(-1, 1, 18).reshape(3, 6)


def make_model():
    torch.manual_seed(0)
    return MLP()


def train(model, run, opt, rank: int, world: int, steps: int = STEPS, log_reduce=None, fail_at=None):
    """The training loop; returns each step's activations of this rank, taken by our own
    forward hooks (the last forward before each update)."""
    taken: dict = {}
    step = [0]

    def keep(name):
        def hook(module, inputs, output):
            if torch.is_grad_enabled():   # not the probe (eval, no grad)
                taken[(step[0], name)] = output.detach().clone()
        return hook

    handles = [m.register_forward_hook(keep(n)) for n, m in (
        ("fc1", model_of(model).fc1), ("act1", model_of(model).act1), ("fc2", model_of(model).fc2),
        ("act2", model_of(model).act2), ("head", model_of(model).head))]
    share = GLOBAL_BATCH // world
    for i, (x, y) in enumerate(data(steps), start=1):
        if fail_at == i and rank == 1:
            raise RuntimeError(f"rank 1 fails on purpose at step {i}")
        step[0] = i
        x, y = x[rank * share:(rank + 1) * share], y[rank * share:(rank + 1) * share]
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        if log_reduce:
            run.log(loss=loss, reduce=log_reduce)
        else:
            run.log(loss=loss)
    for h in handles:
        h.remove()
    return taken


def model_of(model):
    return getattr(model, "module", model)


def single(path, **options):
    """The one-process reference run on the global batch."""
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with nl.Run(path) as run:
        nl.watch(model, run, opt, probe=probe(), **options)
        train(model, run, opt, 0, 1, log_reduce="mean")


# ------------------------------------------------------------------------------ scenarios
def _gather_acts(taken, rank, world):
    """Rank 0: each (step, layer)'s activations of every rank, concatenated in rank order."""
    keys = sorted(taken)
    mine = [taken[k].numpy() for k in keys]
    every = [None] * world
    dist.all_gather_object(every, mine)
    if rank != 0:
        return None
    return {f"{s}/{n}": np.concatenate([every[r][i] for r in range(world)])
            for i, (s, n) in enumerate(keys)}


def scenario_equal(rank, world, out):
    """DDP, FSDP2 full and FSDP2 stats runs of the single-process reference's training."""
    from torch.distributed.fsdp import fully_shard
    from torch.nn.parallel import DistributedDataParallel as DDP

    saved = {}
    for name, wrap, options in (
            ("ddp", "ddp", dict(weights="full", grads="full", activations="stats")),
            # grads that are views of DDP's buckets, which the next backward rewrites in place
            ("ddp_bucket", "ddp_bucket", dict(weights="full", grads="full", activations="stats")),
            ("fsdp_full", "fsdp", dict(weights="full", grads="full", activations="stats")),
            ("fsdp_stats", "fsdp", dict(weights="stats", grads="stats", activations="stats"))):
        model = make_model()
        if wrap.startswith("ddp"):
            model = DDP(model, gradient_as_bucket_view=wrap == "ddp_bucket")
        else:
            for layer in (model.fc1, model.fc2, model.head):
                fully_shard(layer)
            fully_shard(model)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        with nl.Run(f"runs/{name}") as run:
            nl.watch(model, run, opt, probe=probe(), **options)
            taken = train(model, run, opt, rank, world, log_reduce="mean")
        acts = _gather_acts(taken, rank, world)
        if rank == 0:
            saved.update({f"{name}:{k}": v for k, v in acts.items()})
    if rank == 0:
        np.savez(os.path.join(out, "acts.npz"), **saved)


def scenario_count(rank, world, out):
    """every=3: the step at which each of netlapse's collectives was called."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    model = DDP(make_model())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    calls = []
    with nl.Run("runs/count") as run:
        nl.watch(model, run, opt, every=3, activations="stats")
        originals = {n: getattr(dist, n) for n in ("all_reduce", "all_gather", "broadcast",
                                                   "all_gather_into_tensor", "reduce_scatter_tensor",
                                                   "all_gather_object", "broadcast_object_list")}

        def counting(name, fn):
            def call(*args, **kwargs):
                calls.append([name, run.step])
                return fn(*args, **kwargs)
            return call

        for n, fn in originals.items():
            setattr(dist, n, counting(n, fn))
        try:
            train(model, run, opt, rank, world, steps=7)
        finally:
            for n, fn in originals.items():
                setattr(dist, n, fn)
    with nl.Run("runs/count", resume=True) as again:   # rank 1 learns rank 0's step
        resumed = again.step
    every = [None] * world
    dist.all_gather_object(every, {"calls": calls, "resumed": resumed})
    if rank == 0:
        with open(os.path.join(out, "calls.json"), "w") as f:
            json.dump(every, f)


def scenario_fail(rank, world, out):
    """Rank 1 raises at step 3; rank 0 must leave netlapse's collective within the timeout."""
    model = make_model()   # replicated by hand: only netlapse's collectives run
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with nl.Run("runs/fail") as run:
        nl.watch(model, run, opt, activations="stats")
        train(model, run, opt, rank, world, steps=5, fail_at=3)


def scenario_hang(rank, world, out):
    """Rank 1 stops taking part at step 3 (blocks until the test closes its stdin) while
    alive: rank 0 must give up after the process group's timeout, not wait forever."""
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with nl.Run("runs/hang") as run:
        nl.watch(model, run, opt, activations="stats")
        try:
            train(model, run, opt, rank, world, steps=5, fail_at=3)
        except RuntimeError:
            sys.stdin.read()   # alive and silent until the test lets go
            raise


def pieces():
    """Tensors whose stats are awkward: NaN, inf, zeros, constant, all non-finite, empty,
    integer and bool; each with the rows each of two ranks holds (one piece may be empty)."""
    g = torch.Generator().manual_seed(3)
    a = torch.randn(50, generator=g)
    a[[3, 17]] = float("nan")
    a[9] = float("inf")
    a[[1, 2, 40]] = 0
    const = torch.full((7,), 2.5)
    allbad = torch.tensor([float("nan"), float("-inf"), float("inf")])
    ints = torch.randint(-3, 4, (11,), generator=g)
    bools = torch.rand(9, generator=g) > 0.5
    big = torch.randn(1000, generator=g, dtype=torch.float64) * 1e6
    return [(a, 20), (const, 7), (allbad, 1), (torch.zeros(0), 0), (ints, 5), (bools, 4),
            (big, 999)]


def scenario_pieces(rank, world, out):
    """reduce_stats on each rank's piece; rank 0 saves the results."""
    from netlapse._record.distributed import context
    from netlapse._record.torch_dist import reduce_stats

    parts = [t[:cut] if rank == 0 else t[cut:] for t, cut in pieces()]
    parts.append(torch.ones(3) if rank == 0 else None)   # a tensor rank 1 does not have
    stats, hist, present = reduce_stats(context(), parts, "test")
    if rank == 0:
        np.savez(os.path.join(out, "pieces.npz"), stats=stats, hist=hist, present=present)


def main():
    scenario, out = sys.argv[1], sys.argv[2]
    timeout = float(os.environ.get("NL_TEST_PG_TIMEOUT", "60"))
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=timeout))
    torch.set_num_threads(1)
    rank, world = dist.get_rank(), dist.get_world_size()
    try:
        for name in scenario.split(","):
            globals()[f"scenario_{name}"](rank, world, out)
    finally:
        if scenario not in ("fail", "hang"):
            dist.destroy_process_group()
    exit_without_finalizing()


def exit_without_finalizing(code: int = 0) -> None:
    """Leave once every result is on disk and the process group is destroyed, without the
    interpreter's finalization: there, torch 2.13's gloo threads sometimes abort the process
    ("terminate called without an active exception", exit code -6; pytorch issue 190489),
    which failed these tests about one launch in ten on a busy machine."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
