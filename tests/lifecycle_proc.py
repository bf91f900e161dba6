"""A training script that ends without ``run.close()``: at the end, or by an uncaught exception.

``python lifecycle_proc.py RUN MODE``; MODE is ``noclose`` (25 steps, then the script ends),
``interrupt`` (Ctrl-C, i.e. KeyboardInterrupt, during step 11) or ``error`` (a RuntimeError
there). The script saves what it saw itself, through the optimizer's own hooks, next to the
run as ``RUN.ref.npz``: the weights after each update (and at the start) and the grads each
update used, so the test can compare them with what netlapse recorded.
"""
import sys

import numpy as np
import torch
from torch import nn

import netlapse as nl


class Net(nn.Module):   # PyTorch's MNIST example, shrunk to 8x8 inputs
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, 1)
        self.fc1 = nn.Linear(4 * 3 * 3, 16)
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.flatten(torch.max_pool2d(x, 2), 1)
        return torch.log_softmax(self.fc2(torch.relu(self.fc1(x))), dim=1)


def main(path: str, mode: str) -> None:
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    names = [n for n, _ in model.named_parameters()]
    seen = {f"weights/{n}": [p.detach().clone().numpy()] for n, p in model.named_parameters()}
    for n in names:
        seen[f"grads/{n}"] = []

    def before(optimizer, args, kwargs):
        for n, p in model.named_parameters():
            seen[f"grads/{n}"].append(p.grad.detach().clone().numpy())

    def after(optimizer, args, kwargs):
        for n, p in model.named_parameters():
            seen[f"weights/{n}"].append(p.detach().clone().numpy())

    opt.register_step_pre_hook(before)
    opt.register_step_post_hook(after)
    if mode != "noclose":
        def user_hook(exc_type, exc, tb):   # the user's own hook must still run
            with open(path + ".hook", "w") as f:
                f.write(exc_type.__name__)
        sys.excepthook = user_hook
    run = nl.Run(path, flush_every=3600)   # nothing is committed before the script ends
    nl.watch(model, run, opt, weights="full", grads="full")
    try:
        for step in range(25):
            x = torch.randn(8, 1, 8, 8)
            y = torch.randint(0, 10, (8,))
            opt.zero_grad()
            loss = nn.functional.nll_loss(model(x), y)
            loss.backward()
            if step == 10 and mode == "interrupt":
                raise KeyboardInterrupt
            if step == 10 and mode == "error":
                raise RuntimeError("boom in training")
            opt.step()
            run.log(loss=loss)
    finally:
        np.savez(path + ".ref.npz", **{k: np.stack(v) for k, v in seen.items()})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
