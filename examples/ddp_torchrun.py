"""DDP training recorded by netlapse: one run folder for the whole job.

    torchrun --nproc_per_node 2 examples/ddp_torchrun.py --out runs/ddp
    netlapse info runs/ddp          # then: netlapse ui runs/ddp

The same script runs on every rank (torchrun starts them and sets RANK, WORLD_SIZE, ...).
netlapse's part is three lines, the same as in one process: ``nl.Run``, ``nl.watch`` and
``run.log``. Rank 0 writes the run; the other ranks write nothing. Weights and grads come from
rank 0 (DDP keeps them equal on every rank); the activation stats are those of the global
batch (reduced over the ranks at each captured step). See docs/distributed.md.

It trains a small MLP to classify points of two interleaved spirals (synthetic, no download),
on CPU with gloo, or on the GPUs with NCCL when there are as many as ranks.
"""

from __future__ import annotations

import argparse
import math
import os

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import netlapse as nl


def spirals(n: int, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=g) * 2 * math.pi
    label = torch.randint(0, 2, (n,), generator=g)
    r = 0.2 + t / (2 * math.pi)
    angle = t + label * math.pi
    x = torch.stack([r * torch.cos(angle), r * torch.sin(angle)], 1)
    return TensorDataset(x + 0.02 * torch.randn(x.shape, generator=g), label)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/ddp", help="run folder (written by rank 0)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64, help="batch size per rank")
    parser.add_argument("--every", type=int, default=4, help="record every N steps")
    args = parser.parse_args()

    use_cuda = torch.cuda.is_available() and torch.cuda.device_count() >= int(os.environ.get("WORLD_SIZE", 1))
    dist.init_process_group("nccl" if use_cuda else "gloo")
    rank = dist.get_rank()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)

    torch.manual_seed(0)   # the same initial weights on every rank (DDP also broadcasts them)
    model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                          nn.Linear(64, 2)).to(device)
    ddp = DDP(model, device_ids=[device.index] if use_cuda else None)
    opt = torch.optim.Adam(ddp.parameters(), lr=1e-2)

    data = spirals(4096)
    sampler = DistributedSampler(data, shuffle=True, seed=0, drop_last=True)
    loader = DataLoader(data, batch_size=args.batch, sampler=sampler, drop_last=True)
    probe = torch.cartesian_prod(torch.linspace(-1.3, 1.3, 16), torch.linspace(-1.3, 1.3, 16)).to(device)

    # every rank makes the Run and calls watch; only rank 0 creates the folder
    with nl.Run(args.out, config=vars(args) | {"world_size": dist.get_world_size()},
                overwrite=True) as run:
        nl.watch(ddp, run, opt, every=args.every, activations="stats", probe=probe)
        for epoch in range(args.epochs):
            sampler.set_epoch(epoch)
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                loss = nn.functional.cross_entropy(ddp(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                run.log(loss=loss, reduce="mean")   # every rank calls it: the global mean
            if rank == 0:
                print(f"epoch {epoch}: loss {loss.item():.4f} (rank 0's last batch)")
    if rank == 0:
        print(f"recorded {run.step} steps to {args.out}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
