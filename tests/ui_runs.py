"""Runs for the dashboard tests: a synthetic one whose tensors are a known function of the step,
and two small real trainings (sklearn digits, a sine fit) recorded with netlapse.torch."""

from __future__ import annotations

import numpy as np

import netlapse as nl


def weight_at(step: int, shape=(32, 64)) -> np.ndarray:
    """The synthetic run's ``weights/fc1.weight`` at ``step``."""
    base = np.arange(np.prod(shape), dtype=np.float32).reshape(shape) * 0.013
    return (np.sin(base + 0.35 * step) * (1 + 0.05 * step)).astype(np.float32)


def probe_x(n: int = 40) -> np.ndarray:
    return np.linspace(-3, 3, n, dtype=np.float32).reshape(n, 1)


def probe_out_at(step: int) -> np.ndarray:
    return (np.sin(probe_x()) * min(1.0, step / 20)).astype(np.float32)


def synthetic_run(path, steps: int = 30, *, flush_every: float = 1.0, sleep: float = 0.0,
                  config=None) -> None:
    """Record ``steps`` steps whose every value is a known function of the step."""
    import time

    with nl.Run(path, config=config or {"lr": 0.1, "kind": "synthetic"}, flush_every=flush_every) as run:
        x = probe_x()
        run.record_array("inputs/probe", x, step=0, kind="inputs")
        run.record_array("inputs/probe_target", np.sin(x), step=0, kind="inputs")
        for k in range(steps):
            run.step = k
            run.record_array("weights/fc1.weight", weight_at(k))
            run.record_array("weights/fc1.bias", np.full(32, 0.01 * k, np.float32), full=False)
            run.record_array("grads/fc1.weight", weight_at(-k) * 0.01, full=False)
            run.record_array("activations/fc1", np.maximum(weight_at(k + 1), 0), full=False)
            run.record_array("probe/fc2", probe_out_at(k))
            run.log(loss=1.0 / (1 + k), acc=k / max(1, steps - 1))
            if sleep:
                run.flush()
                time.sleep(sleep)


def digits_run(path, steps: int = 150) -> None:
    """An MLP 64-32-10 on sklearn's 8x8 digits, weights in full (each unit an 8x8 image)."""
    import torch
    from sklearn.datasets import load_digits

    import netlapse.torch as nlt

    torch.manual_seed(0)
    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X / 16.0, dtype=torch.float32)
    y = torch.tensor(y)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    with nl.Run(path, config={"model": "mlp 64-32-10", "lr": 0.2, "batch": 64}) as run:
        w = nlt.watch(model, run, optimizer=opt, weights="full", grads="stats", activations="stats")
        g = torch.Generator().manual_seed(1)
        for _ in range(steps):
            idx = torch.randint(0, len(X), (64,), generator=g)
            out = model(X[idx])
            loss = torch.nn.functional.cross_entropy(out, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            run.log(loss=loss.item(), acc=(out.argmax(1) == y[idx]).float().mean().item())
        w.close()


def sine_run(path, steps: int = 200) -> None:
    """A 1-16-16-1 tanh net fitting sin(x), with a probe: the function-fit view."""
    import torch

    import netlapse.torch as nlt

    torch.manual_seed(0)
    x = torch.linspace(-3, 3, 64).reshape(-1, 1)
    y = torch.sin(x)
    model = torch.nn.Sequential(torch.nn.Linear(1, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16),
                                torch.nn.Tanh(), torch.nn.Linear(16, 1))
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    with nl.Run(path, config={"model": "mlp 1-16-16-1", "lr": 0.02}) as run:
        w = nlt.watch(model, run, optimizer=opt, every=2, weights="full", grads="stats",
                      probe=(x, y))
        for _ in range(steps):
            loss = torch.nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            run.log(loss=loss.item())
        w.close()


def hidden_run(path, steps: int = 6) -> None:
    """A run whose probe has 2-D inputs and a 2-unit layer: the hidden-space view."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.float32)
    with nl.Run(path, config={"probe_layout": {"hidden": "probe/h"}}) as run:
        run.record_array("inputs/probe", x, step=0, kind="inputs")
        run.record_array("inputs/probe_target", y, step=0, kind="inputs")
        for k in range(steps):
            run.step = k
            angle = 0.3 * k
            rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
            run.record_array("probe/h", np.tanh(x @ rot * (1 + k)))
            run.record_array("probe/out", np.tanh(x[:, :1] * x[:, 1:]) * k)
            run.log(loss=1.0 / (1 + k))
