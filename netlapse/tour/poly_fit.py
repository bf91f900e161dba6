"""Seed 004a: small tanh nets fit y = x^4 - 3x^2 + x + 1; width helps more than depth."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._progress import progress

__all__ = ["NAME", "TITLE", "STORY", "ARCHS", "run", "pictures", "target", "make_data"]

NAME = "poly-fit"
TITLE = "fitting a quartic with six small architectures (seed 004a)"
STORY = ("A Keras user animated each net's output curve with FuncAnimation, retraining inside "
         "the drawing loop, and lost the video because ffmpeg was missing. netlapse records the "
         "output on 400 test points once per epoch; the animations are drawn from the runs and "
         "encoded with the ffmpeg bundled in imageio-ffmpeg.")
SEE = ("The blue curve is the net's output on 400 test points, the dashed one the target. "
       "1-2-1 can only bend twice and stalls as spliced tanh steps; depth alone (1-2-2-2-1) "
       "does not help; 1-6-1 (more width) follows the quartic; the 1-3-1-3-1 chokepoint is no "
       "better than 1-2-1, as the seed's author found.")
CHANGES = ("Same data (4,000 uniform training points, 400 test points on [-2, 2]), tanh hidden, "
           "linear output, SGD lr 0.01, batch 32, MSE, 100 epochs as the seed's 100 frames. "
           "Quick mode: 3 architectures, 40 epochs.")

ARCHS = [(1, 2, 1), (1, 2, 2, 2, 1), (1, 6, 1), (1, 3, 3, 1), (1, 3, 1, 3, 1),
         (1, 3, 3, 1, 3, 3, 1)]
QUICK_ARCHS = [(1, 2, 1), (1, 6, 1), (1, 3, 1, 3, 1)]
EPOCHS, QUICK_EPOCHS = 100, 40
BATCH, LR = 32, 0.01


def target(x):
    return x ** 4 - 3 * x ** 2 + x + 1


def make_data(seed: int = 0, n_train: int = 4000, n_test: int = 400):
    rng = np.random.default_rng(seed)
    x_train = (4 * rng.random(n_train) - 2).astype(np.float32)
    x_test = np.linspace(-2, 2, n_test).astype(np.float32)
    return x_train, target(x_train), x_test, target(x_test)


def _final_mse(r) -> float:
    return float(r.metrics["test_mse"].dropna().iloc[-1])


def pictures(out: Path, run_paths: list[Path], quick: bool = False) -> list[dict]:
    import netlapse as nl
    from ._pictures import save_animation, save_figure

    runs = [nl.open_run(p) for p in run_paths]
    names = [r.config["arch"] for r in runs]
    frames = 12 if quick else 40
    entries = save_figure(nl.plot.compare(runs, "function_fit", names=names),
                          Path(out) / "poly-fit-compare.png",
                          "Every architecture's output against the target at the end of training; "
                          "final test MSE: " + ", ".join(f"{n} {_final_mse(r):.3f}"
                                                         for n, r in zip(names, runs)) + ".")
    anim = nl.animate.compare(runs, "function_fit", names=names, max_frames=frames, fps=8)
    entries += save_animation(anim, Path(out) / "poly-fit-compare.gif",
                              "All architectures learning, side by side on a shared step axis.")
    best = runs[names.index("1-6-1")]
    entries += save_animation(nl.animate.function_fit(best, max_frames=frames, fps=8),
                              Path(out) / "poly-fit-1-6-1.mp4",
                              "1-6-1 alone as an MP4 (encoded by the ffmpeg bundled in "
                              "imageio-ffmpeg).")
    return entries


def run(out: Path, quick: bool = False, epochs: int | None = None, seed: int = 0,
        archs=None, draw: bool = True) -> dict:
    import torch

    import netlapse as nl
    from ..views.probes import curve_probe
    from ._train import arch_name, fit_epochs, mlp, one_thread

    archs = archs or (QUICK_ARCHS if quick else ARCHS)
    epochs = epochs or (QUICK_EPOCHS if quick else EPOCHS)
    x_tr, y_tr, x_te, y_te = make_data(seed)
    xt, yt = torch.from_numpy(x_tr[:, None]), torch.from_numpy(y_tr[:, None])
    xp, yp, layout = curve_probe(x_te, y_te)
    xp_t, yp_t = torch.from_numpy(xp), torch.from_numpy(yp)
    steps_per_epoch = -(-len(x_tr) // BATCH)
    paths, errors = [], {}
    loss_fn = torch.nn.MSELoss()
    with one_thread(), progress(total=len(archs) * epochs, desc=NAME, unit="epoch") as bar:
        for sizes in archs:
            name = arch_name(sizes)
            torch.manual_seed(seed)
            model = mlp(sizes, hidden="tanh")
            opt = torch.optim.SGD(model.parameters(), lr=LR)
            path = Path(out) / "runs" / f"{NAME}-{name}"
            config = {"scene": NAME, "arch": name, "optimizer": "sgd", "lr": LR,
                      "batch_size": BATCH, "epochs": epochs, "train": len(x_tr),
                      "test": len(x_te), "seed": seed, "probe_layout": layout,
                      "steps_per_epoch": steps_per_epoch}

            with nl.Run(path, config=config, overwrite=True) as run, \
                    nl.watch(model, run, opt, every=steps_per_epoch, weights="full",
                             grads=None, probe=(xp_t, yp_t),
                             exclude=[n for n, _ in model.named_children()][:-1]):
                def log_test(epoch, last, model=model, run=run):
                    with torch.no_grad():
                        run.log(test_mse=loss_fn(model(xp_t), yp_t).item())

                fit_epochs(model, opt, loss_fn, xt, yt, epochs=epochs, batch=BATCH, seed=seed,
                           run=run, bar=bar, on_epoch=log_test)
                with torch.no_grad():
                    errors[name] = loss_fn(model(xp_t), yp_t).item()
            paths.append(path)
    best = min(errors, key=errors.get)
    result = {"runs": paths, "findings": {"test_mse": errors},
              "summary": "test MSE " + ", ".join(f"{k} {v:.3f}" for k, v in errors.items())
                         + f"; best {best}"}
    result["pictures"] = pictures(out, paths, quick) if draw else []
    return result
