"""Seed 000: read a single tanh neuron's two weights during training and watch them reach 1."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._progress import progress

__all__ = ["NAME", "TITLE", "STORY", "run", "make_data", "pictures"]

NAME = "single-neuron"
TITLE = "one tanh neuron learns weights [1, 1] (seed 000)"
STORY = ("A tf.keras user needed a callback and get_weights() to see two weights move. "
         "netlapse records them at every step.")
SEE = ("Both weights climb from their random start towards 1.0, fast at first and then slowly; "
       "the bias goes to 0, so the neuron becomes tanh(x1 + x2).")
CHANGES = ("Same data (500 points, labels tanh(x1 + x2)), SGD lr 0.5, batch 32, MSE. "
           "20 epochs instead of 10: with PyTorch's initialisation 10 epochs leave the weights "
           "about 0.06 short of 1.0.")

EPOCHS = 20


def make_data(n: int = 500, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 2)).astype(np.float32)
    y = np.tanh(x.sum(axis=1, keepdims=True)).astype(np.float32)
    return x, y


def pictures(out: Path, run_path: Path, quick: bool = False) -> list[dict]:
    import netlapse as nl
    from ._pictures import save_figure

    return save_figure(nl.plot.trajectories(run_path, "weights/0.weight"),
                       Path(out) / "single-neuron-weights.png",
                       "The two weights at every step; both end near 1.0.")


def run(out: Path, quick: bool = False, epochs: int = EPOCHS, seed: int = 0,
        draw: bool = True) -> dict:
    import torch

    import netlapse as nl

    torch.manual_seed(seed)
    x, y = make_data(seed=seed)
    x_t, y_t = torch.from_numpy(x), torch.from_numpy(y)
    model = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.Tanh())
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    loss_fn = torch.nn.MSELoss()
    batch = 32
    path = Path(out) / "runs" / NAME
    config = {"scene": NAME, "lr": 0.5, "epochs": epochs, "batch_size": batch,
              "samples": len(x), "loss": "mse", "seed": seed}
    with nl.Run(path, config=config, overwrite=True) as run, \
            nl.watch(model, run, opt, weights="full", grads="full", probe=(x_t[:10], y_t[:10])):
        with torch.no_grad():
            loss_before = loss_fn(model(x_t), y_t).item()
        g = torch.Generator().manual_seed(seed)
        steps = epochs * -(-len(x) // batch)
        with progress(total=steps, desc=NAME, unit="step") as bar:
            for epoch in range(epochs):
                order = torch.randperm(len(x), generator=g)
                for i in range(0, len(x), batch):
                    idx = order[i:i + batch]
                    opt.zero_grad()
                    loss = loss_fn(model(x_t[idx]), y_t[idx])
                    loss.backward()
                    opt.step()
                    run.log(loss=loss.item(), epoch=epoch)
                    bar.update()
        with torch.no_grad():
            loss_after = loss_fn(model(x_t), y_t).item()
        run.log(eval_loss_before=loss_before, eval_loss_after=loss_after, step=run.step)
    w = model[0].weight.detach().numpy().ravel()
    result = {"runs": [path], "weights": w, "loss_before": loss_before, "loss_after": loss_after,
              "findings": {"w1": float(w[0]), "w2": float(w[1]), "loss_before": loss_before,
                           "loss_after": loss_after, "loss_ratio": loss_before / loss_after},
              "summary": f"weights {w[0]:.3f}, {w[1]:.3f} (target 1, 1); "
                         f"loss {loss_before:.4f} -> {loss_after:.2e} "
                         f"({loss_before / loss_after:,.0f}x lower)"}
    result["pictures"] = pictures(out, path, quick) if draw else []
    return result
