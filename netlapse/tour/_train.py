"""Small PyTorch helpers the scenes share: seeded MLPs, a minibatch loop, one torch thread."""

from __future__ import annotations

import contextlib

__all__ = ["mlp", "fit_epochs", "one_thread", "arch_name"]


def arch_name(sizes) -> str:
    return "-".join(str(s) for s in sizes)


def mlp(sizes, hidden: str = "tanh", out: str | None = None):
    """``nn.Sequential`` of Linear layers with ``hidden`` after each but the last, ``out`` after it.

    Leaf modules are named "0", "1", ... so ``probe/<i>`` streams follow the layer order.
    """
    from torch import nn

    acts = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        last = i == len(sizes) - 2
        if not last:
            layers.append(acts[hidden]())
        elif out is not None:
            layers.append(acts[out]())
    return nn.Sequential(*layers)


@contextlib.contextmanager
def one_thread():
    """Tiny networks train fastest on one torch thread; restore the caller's setting after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit_epochs(model, opt, loss_fn, x, y, *, epochs: int, batch: int, seed: int, run=None,
               bar=None, on_epoch=None):
    """Shuffled minibatch training; ``on_epoch(epoch, last_loss)`` after each epoch.

    The shuffling generator is seeded, so the same seed gives the same run.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    n = len(x)
    for epoch in range(epochs):
        order = torch.randperm(n, generator=g)
        for i in range(0, n, batch):
            idx = order[i:i + batch]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
        if run is not None:
            run.log(loss=loss.item(), epoch=epoch + 1)
        if on_epoch is not None:
            on_epoch(epoch + 1, loss.item())
        if bar is not None:
            bar.update()
