"""Seed 004b: two concentric rings; a 2-unit hidden layer shows how each net warps the plane."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._progress import progress

__all__ = ["NAME", "TITLE", "STORY", "ARCHS", "run", "pictures", "make_rings"]

NAME = "rings"
TITLE = "separating two concentric rings, seen in the last 2-unit layer (seed 004b)"
STORY = ("A Keras user re-ran the model inside a FuncAnimation to draw the last hidden layer's "
         "view of the data, and could not export it without ffmpeg. netlapse records that layer "
         "on a probe of data points, grid lines and the input plane, and draws every frame "
         "from the run.")
SEE = ("Left: the plane of the last 2-unit hidden layer, with the inner ring (label 0) in "
       "blue, the outer ring (label 1) in red, the 21 + 21 grid lines of [-1, 1]^2 carried "
       "through the net, and the decision line sigmoid(a*h1 + b*h2 + c) = 0.5 from the "
       "recorded last-layer weights. Right: the net's output over the input plane. 2-3-2-1 "
       "folds the plane until one line splits the rings; 2-1-2-1 squeezes the plane through "
       "one unit (a curve on the left) and cannot.")
CHANGES = ("Nets 2-1-2-1, 2-2-2-1, 2-3-2-1, 2-4-2-1, tanh hidden, sigmoid output, MSE, noise sd "
           "0.005, as in the seed. Changed to fit the time budget: 500 points per ring "
           "instead of 20,000, and Adam lr 0.02 (batch 32, 60 epochs, recorded twice per epoch) "
           "instead of SGD lr 0.001, which needs thousands of epochs. Quick mode: "
           "2-1-2-1 and 2-3-2-1, 40 epochs.")

ARCHS = [(2, 1, 2, 1), (2, 2, 2, 1), (2, 3, 2, 1), (2, 4, 2, 1)]
QUICK_ARCHS = [(2, 1, 2, 1), (2, 3, 2, 1)]
EPOCHS, QUICK_EPOCHS = 60, 40
POINTS, BATCH, LR = 500, 32, 0.02
PROBE_POINTS = 200          # data points per ring drawn in the hidden-space view


def make_rings(n: int = POINTS, noise: float = 0.005, seed: int = 0):
    """``x`` (2n, 2) float32 and labels (2n, 1): radius 1 -> 1, radius 0.5 -> 0, as in the seed."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 2, n)
    parts, labels = [], []
    for radius, label in ((1.0, 1.0), (0.5, 0.0)):
        parts.append(np.stack([radius * np.sin(np.pi * t) + rng.normal(0, noise, n),
                               radius * np.cos(np.pi * t) + rng.normal(0, noise, n)], axis=1))
        labels.append(np.full(n, label))
    return (np.concatenate(parts).astype(np.float32),
            np.concatenate(labels)[:, None].astype(np.float32))


def hidden_layer(sizes) -> str:
    """Leaf name of the last 2-unit hidden layer's activation in ``mlp(sizes)``."""
    return str(2 * (len(sizes) - 2) - 1)


def _unused_layers(model) -> list[str]:
    """Layers the hidden-space view does not read: all but the last 2-unit layer and the output."""
    leaves = [n for n, _ in model.named_children()]
    keep = {leaves[-1], leaves[-3]}   # the sigmoid output and the tanh after the last 2-unit Linear
    return [n for n in leaves if n not in keep]


def pictures(out: Path, run_paths: list[Path], quick: bool = False) -> list[dict]:
    import netlapse as nl
    from ._pictures import save_animation, save_figure

    runs = [nl.open_run(p) for p in run_paths]
    names = [r.config["arch"] for r in runs]
    entries = save_figure(nl.plot.compare(runs, "hidden_space", names=names),
                          Path(out) / "rings-compare.png",
                          "Every net's last 2-unit layer (left) and its decision regions over the "
                          "input plane (right) at the end of training; accuracy: "
                          + ", ".join(f"{n} {_final_accuracy(r):.2f}" for n, r in zip(names, runs))
                          + ".")
    main = runs[names.index("2-3-2-1")]
    stem = Path(out) / "rings-2-3-2-1"
    caption = "2-3-2-1 learning to separate the rings ({} frames over {} epochs; {})."
    epochs = int(main.config["epochs"])
    for frames, suffixes, what in ((15 if quick else 50, (".mp4", ".gif"), "MP4 and GIF"),
                                   (30 if quick else 100, (".html",), "the offline HTML player")):
        anim = nl.animate.hidden_space(main, layer=main.config["hidden_layer"],
                                       head=main.config["head_layer"], max_frames=frames, fps=8)
        entries += save_animation(anim, [stem.with_suffix(s) for s in suffixes],
                                  caption.format(len(anim), epochs, what),
                                  title="rings: 2-3-2-1, last hidden layer")
    return entries


def _final_accuracy(r) -> float:
    return float(r.metrics["accuracy"].dropna().iloc[-1])


def run(out: Path, quick: bool = False, epochs: int | None = None, seed: int = 0,
        archs=None, draw: bool = True) -> dict:
    import torch

    import netlapse as nl
    from ..views.probes import plane_probe
    from ._train import arch_name, fit_epochs, mlp, one_thread

    archs = archs or (QUICK_ARCHS if quick else ARCHS)
    epochs = epochs or (QUICK_EPOCHS if quick else EPOCHS)
    x, y = make_rings(seed=seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    rng = np.random.default_rng(seed + 1)
    shown = np.sort(np.concatenate([rng.choice(POINTS, PROBE_POINTS, replace=False),
                                    POINTS + rng.choice(POINTS, PROBE_POINTS, replace=False)]))
    xp, yp, layout = plane_probe(x[shown], y[shown])
    xp_t, yp_t = torch.from_numpy(xp), torch.from_numpy(yp)
    steps_per_epoch = -(-len(x) // BATCH)
    record_every = steps_per_epoch // 2          # two frames per epoch
    paths, accuracy = [], {}
    loss_fn = torch.nn.MSELoss()
    with one_thread(), progress(total=len(archs) * epochs, desc=NAME, unit="epoch") as bar:
        for sizes in archs:
            name = arch_name(sizes)
            torch.manual_seed(seed)
            model = mlp(sizes, hidden="tanh", out="sigmoid")
            opt = torch.optim.Adam(model.parameters(), lr=LR)
            path = Path(out) / "runs" / f"{NAME}-{name}"
            config = {"scene": NAME, "arch": name, "optimizer": "adam", "lr": LR,
                      "batch_size": BATCH, "epochs": epochs, "points_per_ring": POINTS,
                      "noise": 0.005, "seed": seed, "probe_layout": layout,
                      "hidden_layer": hidden_layer(sizes),
                      "head_layer": str(int(hidden_layer(sizes)) + 1), "record_every": record_every,
                      "steps_per_epoch": steps_per_epoch}
            with nl.Run(path, config=config, overwrite=True) as run, \
                    nl.watch(model, run, opt, every=record_every, weights="full",
                             grads=None, probe=(xp_t, yp_t), exclude=_unused_layers(model)):
                def log_accuracy(epoch, last, model=model, run=run):
                    with torch.no_grad():
                        acc = ((model(xt) > 0.5).float() == yt).float().mean().item()
                    run.log(accuracy=acc)

                fit_epochs(model, opt, loss_fn, xt, yt, epochs=epochs, batch=BATCH, seed=seed,
                           run=run, bar=bar, on_epoch=log_accuracy)
                with torch.no_grad():
                    accuracy[name] = ((model(xt) > 0.5).float() == yt).float().mean().item()
            paths.append(path)
    result = {"runs": paths, "findings": {"accuracy": accuracy},
              "summary": "accuracy " + ", ".join(f"{k} {v:.3f}" for k, v in accuracy.items())}
    result["pictures"] = pictures(out, paths, quick) if draw else []
    return result
