"""Seed 002: a 10-layer, width-20 net; a huge initial weight scale saturates tanh and kills gradients."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._progress import progress

__all__ = ["NAME", "TITLE", "STORY", "VARIANTS", "run", "pictures", "build", "layer_grads",
           "verdict"]

NAME = "deep-saturation"
TITLE = "initial weight scale vs. vanishing gradients in a 10-layer net (seed 002)"
STORY = ("A Keras user built graph functions by hand to get every dense kernel's gradient and "
         "every layer's activation for one example. netlapse records grads at each step and "
         "each layer's output on a one-example probe.")
SEE = ("With weights drawn with stddev 200, every tanh unit is saturated (|activation| = 1) "
       "and the gradient reaching the first eight layers is exactly zero (red dots at the "
       "axis floor): orders of magnitude below the last layer's. With a sane (Xavier) "
       "initialisation the activations stay inside (-1, 1) and the gradient is of the same "
       "order at every depth. Sigmoid with stddev 200 shows the decay layer by layer, from "
       "1e-4 at the top to below 1e-40; ReLU with He initialisation keeps it level. The "
       "doctor (netlapse doctor RUN) reads the same from each recording: vanishing gradients "
       "and saturated units in the named layers of the stddev-200 nets, and no problem with "
       "Xavier tanh or He ReLU.")
CHANGES = ("Same net as the seed (Dense 20 relu, 9 x Dense 20 with the chosen activation and "
           "init, linear output). The seed looked at d(output)/d(weights) for one random "
           "example; here the nets also train for a few Adam steps (lr 0.001, batch 32) on a "
           "random regression task so the gradients are the training ones, recorded at every "
           "step; the activations are those of one example (the probe).")

LAYERS, WIDTH = 10, 20
# (label, hidden activation, init: a stddev or "xavier")
VARIANTS = [("tanh, stddev 200", "tanh", 200.0), ("tanh, Xavier", "tanh", "xavier"),
            ("sigmoid, stddev 200", "sigmoid", 200.0), ("relu, He", "relu", "he")]
QUICK_VARIANTS = VARIANTS[:2]
STEPS, QUICK_STEPS = 30, 10


def build(activation: str, init, seed: int = 0):
    """The seed's net: Linear+ReLU, then 9 x (Linear with ``init`` + ``activation``), Linear(20, 1).

    ``init``: a normal stddev (the seed's 200), ``"xavier"`` or ``"he"``."""
    import torch
    from torch import nn

    acts = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}
    torch.manual_seed(seed)
    layers: list = [nn.Linear(WIDTH, WIDTH), nn.ReLU()]
    for _ in range(LAYERS - 1):
        lin = nn.Linear(WIDTH, WIDTH)
        if init == "xavier":
            nn.init.xavier_normal_(lin.weight, gain=nn.init.calculate_gain(activation))
        elif init == "he":
            nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
        else:
            nn.init.normal_(lin.weight, 0.0, float(init))
        nn.init.zeros_(lin.bias)
        layers += [lin, acts[activation]()]
    layers.append(nn.Linear(WIDTH, 1))
    return nn.Sequential(*layers)


def dense_names(model) -> list[str]:
    """Names of the Linear layers in depth order ("0", "2", ..., "20")."""
    from torch import nn

    return [n for n, m in model.named_children() if isinstance(m, nn.Linear)]


def layer_grads(run_path, step: int = 1) -> np.ndarray:
    """Mean |gradient| of each dense kernel at ``step``, read back from the run's grads streams."""
    import netlapse as nl

    r = nl.open_run(run_path)
    names = r.config["dense_layers"]
    return np.array([r[f"grads/{n}.weight"].stats.set_index("step").loc[step, "mean_abs"]
                     for n in names])


def _unused(model) -> list[str]:
    """Streams the layer profile does not need: biases, and the Linear layers' own outputs
    (it reads each block's output after its activation; the last Linear has none)."""
    return ["*.bias"] + dense_names(model)[:-1]


def verdict(run_path) -> dict:
    """The doctor's verdict on one variant's run: healthy or not, and each problem's kind
    with the layers it names (``netlapse doctor RUN`` prints the full report)."""
    import netlapse as nl

    report = nl.diagnose(run_path)
    return {"ok": report.ok,
            "problems": [{"kind": f.kind, "layers": [s.split("/", 1)[1] for s in f.streams],
                          "first_step": f.first_step} for f in report.problems],
            "warnings": [f.kind for f in report.findings if f.severity == "warning"]}


def _verdict_text(v: dict) -> str:
    if v["ok"]:
        return "healthy" + (f" (warnings: {', '.join(v['warnings'])})" if v["warnings"] else "")
    return "; ".join(f"{p['kind']} in {_span(p['layers'])}" for p in v["problems"])


def _span(layers: list) -> str:
    return layers[0] if len(layers) == 1 else f"{layers[0]} .. {layers[-1]} ({len(layers)} layers)"


def _slug(label: str) -> str:
    return label.replace(", ", "-").replace(" ", "")


def pictures(out: Path, run_paths: list[Path], quick: bool = False) -> list[dict]:
    import netlapse as nl
    from ._pictures import save_figure

    runs = [nl.open_run(p) for p in run_paths]
    entries = save_figure(nl.plot.layer_profile(runs[0], step=1, source="probe"),
                          Path(out) / "deep-saturation-tanh200.png",
                          "tanh with stddev 200 at the first step: mean |grad| of each dense "
                          "kernel and mean |activation| of one example, by depth.")
    view = nl.views.compare(runs, "layer_profile", names=[r.config["variant"] for r in runs],
                            step=1, source="probe")
    entries += save_figure(nl.plot.figure(view), Path(out) / "deep-saturation-compare.png",
                           "Every variant at the first step, one row each.")
    return entries


def run(out: Path, quick: bool = False, steps: int | None = None, seed: int = 0,
        variants=None, draw: bool = True) -> dict:
    import torch

    import netlapse as nl
    from ._train import one_thread

    variants = variants or (QUICK_VARIANTS if quick else VARIANTS)
    steps = steps or (QUICK_STEPS if quick else STEPS)
    rng = np.random.default_rng(seed)
    example = torch.from_numpy(rng.standard_normal((1, WIDTH)).astype(np.float32))
    x = torch.from_numpy(rng.standard_normal((steps * 32, WIDTH)).astype(np.float32))
    y = torch.sin(x[:, :3].sum(1, keepdim=True))
    paths, findings = [], {}
    with one_thread(), progress(total=len(variants) * steps, desc=NAME, unit="step") as bar:
        for label, activation, init in variants:
            model = build(activation, init, seed)
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            loss_fn = torch.nn.MSELoss()
            path = Path(out) / "runs" / f"{NAME}-{_slug(label)}"
            config = {"scene": NAME, "variant": label, "activation": activation,
                      "init": init, "layers": LAYERS, "width": WIDTH, "optimizer": "adam",
                      "lr": 1e-3, "batch_size": 32, "steps": steps, "seed": seed,
                      "dense_layers": dense_names(model)}
            with nl.Run(path, config=config, overwrite=True) as run, \
                    nl.watch(model, run, opt, weights=None, grads="stats", probe=example,
                             activations="stats", exclude=_unused(model)):
                for i in range(steps):
                    xb, yb = x[i * 32:(i + 1) * 32], y[i * 32:(i + 1) * 32]
                    opt.zero_grad()
                    loss = loss_fn(model(xb), yb)
                    loss.backward()
                    opt.step()
                    run.log(loss=loss.item())
                    bar.update()
            paths.append(path)
            g = layer_grads(path, step=1)
            findings[label] = {"grad_first": float(g[0]), "grad_last": float(g[-1]),
                               "ratio_first_last": float(g[0] / g[-1]), "doctor": verdict(path)}
    key = VARIANTS[0][0]
    sane = VARIANTS[1][0]
    result = {"runs": paths, "findings": findings,
              "summary": f"first/last layer mean |grad|: {key} "
                         f"{findings[key]['ratio_first_last']:.1e}, {sane} "
                         f"{findings[sane]['ratio_first_last']:.1e}. Doctor: "
                         + " | ".join(f"{label}: {_verdict_text(f['doctor'])}"
                                      for label, f in findings.items())}
    result["pictures"] = pictures(out, paths, quick) if draw else []
    return result
