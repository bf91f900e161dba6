"""The doctor's planted-fault suite: small trainings, each with one planted fault (or none).

Each scenario trains a tiny PyTorch model in-process, recorded with ``nl.watch`` as a user
would (weights, grads and activations as stats; updates by default), and states what the
doctor must find: the ``kind``, the layers (streams that must be named), and the range the
``first_step`` must fall in (the tolerance around the planted step). Used by
tests/test_doctor_faults.py and benchmarks/doctor_suite.py (precision and recall).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

import netlapse as nl
from netlapse.tour import deep_saturation


@dataclass
class Expect:
    kind: str
    streams: tuple           # stream names the finding must name (others allowed)
    first: tuple             # (lo, hi): first_step must be in [lo, hi]


@dataclass
class Scenario:
    name: str
    build: object            # () -> (model, optimizer, data(step) -> (x, y), loss_fn)
    steps: int
    expect: list = field(default_factory=list)   # empty: healthy, no problem allowed
    related: tuple = ()      # other kinds a correct diagnosis may also report
    hook: object = None      # hook(step, model, opt, x) -> x: plants a fault at a step
    exclude: bool = False    # the tour's 10-layer nets: leave out biases and Linear outputs,
    #                          as the tour does (fewer streams: each costs zarr arrays)


def _regression(width_in=8, seed=0, batch=32):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(width_in, 1, generator=g)

    def data(step):
        x = torch.randn(batch, width_in, generator=g)
        return x, torch.sin(x @ w)
    return data


def _classes(width_in=8, n=4, seed=0, batch=32):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(n, width_in, generator=g) * 2

    def data(step):
        y = torch.randint(0, n, (batch,), generator=g)
        return centers[y] + torch.randn(batch, width_in, generator=g), y
    return data


def _mlp(act=nn.ReLU, width=32, depth=3, width_in=8, out=1):
    layers, d = [], width_in
    for _ in range(depth):
        layers += [nn.Linear(d, width), act()]
        d = width
    layers.append(nn.Linear(d, out))
    return nn.Sequential(*layers)


# ---------------------------------------------------------------------------- broken
def tanh_std200():
    torch.manual_seed(0)
    m = deep_saturation.build("tanh", 200.0)
    return m, torch.optim.Adam(m.parameters(), lr=1e-3), _regression(20), nn.MSELoss()


def sigmoid_saturation():
    torch.manual_seed(0)
    m = _mlp(nn.Sigmoid, width=32, depth=3)
    for lin in (m[2], m[4]):
        nn.init.normal_(lin.weight, 0.0, 8.0)
    return m, torch.optim.Adam(m.parameters(), lr=1e-3), _regression(), nn.MSELoss()


def dead_relu_bias():
    torch.manual_seed(0)
    m = _mlp(nn.ReLU, width=32, depth=3)
    nn.init.constant_(m[2].bias, -20.0)   # the second hidden layer: every unit starts dead
    return m, torch.optim.Adam(m.parameters(), lr=1e-3), _regression(), nn.MSELoss()


def dead_relu_lr():
    torch.manual_seed(0)
    m = _mlp(nn.ReLU, width=32, depth=2, out=4)
    return m, torch.optim.SGD(m.parameters(), lr=0.05), _classes(), nn.CrossEntropyLoss()


def _lr_jump(at, lr):
    def hook(step, model, opt, x):
        if step == at:
            for group in opt.param_groups:
                group["lr"] = lr
        return x
    return hook


def _lr_once(at, lr):
    """One update at learning rate ``lr`` (step ``at``); the scenario's own lr before and after."""
    def hook(step, model, opt, x):
        for group in opt.param_groups:
            group.setdefault("base_lr", group["lr"])
            group["lr"] = lr if step == at else group["base_lr"]
        return x
    return hook


def exploding_lr():
    torch.manual_seed(0)
    m = _mlp(nn.Tanh, width=32, depth=3)
    return m, torch.optim.SGD(m.parameters(), lr=0.01), _regression(), nn.MSELoss()


def nan_at_step():
    torch.manual_seed(0)
    m = _mlp(nn.ReLU, width=16, depth=2)
    return m, torch.optim.Adam(m.parameters(), lr=1e-3), _regression(), nn.MSELoss()


def _nan_input(at):
    def hook(step, model, opt, x):
        if step == at:
            x = x.clone()
            x[3, 2] = float("nan")
        return x
    return hook


def lr_tiny():
    torch.manual_seed(0)
    m = _mlp(nn.ReLU, width=32, depth=2)
    return m, torch.optim.SGD(m.parameters(), lr=1e-8), _regression(), nn.MSELoss()


class SkipsALayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 32)
        self.act1 = nn.ReLU()
        self.fc2 = nn.Linear(32, 32)      # defined, never called: a layer left out of forward
        self.act2 = nn.ReLU()
        self.head = nn.Linear(32, 1)

    def forward(self, x):
        return self.head(self.act2(self.act1(self.fc1(x))))


def unused_layer():
    torch.manual_seed(0)
    m = SkipsALayer()
    return m, torch.optim.Adam(m.parameters(), lr=1e-3), _regression(), nn.MSELoss()


def not_in_optimizer():
    torch.manual_seed(0)
    m = _mlp(nn.ReLU, width=32, depth=2)
    params = [p for n, p in m.named_parameters() if not n.startswith("2.")]   # layer 2 forgotten
    return m, torch.optim.Adam(params, lr=1e-3), _regression(), nn.MSELoss()


def sigmoid_std200():
    torch.manual_seed(0)
    m = deep_saturation.build("sigmoid", 200.0)
    return m, torch.optim.Adam(m.parameters(), lr=1e-3), _regression(20), nn.MSELoss()


# ---------------------------------------------------------------------------- healthy
def healthy_mlp():
    torch.manual_seed(0)
    m = _mlp(nn.ReLU, width=64, depth=3, out=4)
    return m, torch.optim.Adam(m.parameters(), lr=1e-3), _classes(), nn.CrossEntropyLoss()


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(x), 1))


def _images(seed=0, batch=32):
    g = torch.Generator().manual_seed(seed)
    proto = torch.randn(4, 1, 12, 12, generator=g)

    def data(step):
        y = torch.randint(0, 4, (batch,), generator=g)
        return proto[y] + 0.5 * torch.randn(batch, 1, 12, 12, generator=g), y
    return data


def healthy_cnn_bn():
    torch.manual_seed(0)
    m = SmallCNN()
    return m, torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9), _images(), nn.CrossEntropyLoss()


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x, mask):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    """A GPT-style decoder: token + position embeddings, pre-norm blocks, tied-free head."""

    def __init__(self, vocab=16, d=32, heads=4, layers=2, ctx=12):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(ctx, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, idx):
        t = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(t))
        mask = torch.triu(torch.full((t, t), float("-inf")), diagonal=1)
        for b in self.blocks:
            x = b(x, mask)
        return self.head(self.ln_f(x))


def healthy_transformer():
    torch.manual_seed(0)
    m = TinyGPT()
    g = torch.Generator().manual_seed(0)

    def data(step):   # sequences that count up mod 16: next-token prediction is learnable
        start = torch.randint(0, 16, (16, 1), generator=g)
        seq = (start + torch.arange(13)) % 16
        return seq[:, :-1], seq[:, 1:]

    ce = nn.CrossEntropyLoss()
    return m, torch.optim.AdamW(m.parameters(), lr=3e-3), data, lambda out, y: ce(out.reshape(-1, 16), y.reshape(-1))


def healthy_tanh_xavier():
    torch.manual_seed(0)
    m = deep_saturation.build("tanh", "xavier")
    return m, torch.optim.Adam(m.parameters(), lr=1e-3), _regression(20), nn.MSELoss()


def healthy_relu_he():
    torch.manual_seed(0)
    m = deep_saturation.build("relu", "he")
    return m, torch.optim.Adam(m.parameters(), lr=1e-3), _regression(20), nn.MSELoss()


TANH_DENSE = tuple(f"grads/{i}.weight" for i in (2, 4, 6, 8, 10, 12, 14))
TANH_ACTS = tuple(f"activations/{i}" for i in (3, 5, 7, 9, 11, 13, 15, 17, 19))

BROKEN = [
    Scenario("tanh_std200", tanh_std200, 30, exclude=True, expect=
             [Expect("vanishing_gradients", TANH_DENSE, (0, 2)),
              Expect("saturated_units", TANH_ACTS, (0, 2))], related=("update_ratio_low",)),
    Scenario("sigmoid_std200", sigmoid_std200, 30, exclude=True, expect=
             [Expect("vanishing_gradients", ("grads/2.weight", "grads/4.weight"), (0, 2))],
             related=("saturated_units", "update_ratio_low")),
    Scenario("sigmoid_saturation", sigmoid_saturation, 60,
             [Expect("saturated_units", ("activations/3", "activations/5"), (0, 2))],
             related=("vanishing_gradients",)),
    Scenario("dead_relu_bias", dead_relu_bias, 60,
             [Expect("dead_units", ("activations/3",), (0, 2))],
             related=("vanishing_gradients", "unused_parameters")),
    Scenario("dead_relu_lr", dead_relu_lr, 60,
             [Expect("dead_units", ("activations/3",), (20, 26))],
             related=("update_ratio_high", "exploding_gradients", "loss_diverging",
                      "vanishing_gradients"), hook=_lr_once(20, 100.0)),
    Scenario("exploding_lr", exploding_lr, 80,
             [Expect("exploding_gradients", ("grads/0.weight",), (30, 36))],
             related=("loss_diverging", "update_ratio_high", "nonfinite", "saturated_units",
                      "vanishing_gradients"), hook=_lr_jump(30, 5.0)),
    Scenario("nan_at_step", nan_at_step, 60,
             [Expect("nonfinite", ("activations/0",), (37, 37))],
             related=("loss_diverging",), hook=_nan_input(37)),
    Scenario("lr_tiny", lr_tiny, 60,
             [Expect("update_ratio_low", ("updates/0.weight", "updates/2.weight"), (0, 3))],
             related=("unused_parameters",)),
    Scenario("unused_layer", unused_layer, 40,
             [Expect("unused_parameters", ("weights/fc2.weight", "weights/fc2.bias"), (0, 0))]),
    Scenario("not_in_optimizer", not_in_optimizer, 40,
             [Expect("unused_parameters", ("grads/2.weight", "grads/2.bias"), (0, 1))]),
]
HEALTHY = [
    Scenario("mlp", healthy_mlp, 150),
    Scenario("cnn_batchnorm", healthy_cnn_bn, 60),
    Scenario("transformer", healthy_transformer, 80),
    Scenario("tanh_xavier", healthy_tanh_xavier, 30, exclude=True),
    Scenario("relu_he", healthy_relu_he, 30, exclude=True),
]


def train(sc: Scenario, path) -> str:
    """Train ``sc`` for its steps, recorded into ``path``; returns the path."""
    model, opt, data, loss_fn = sc.build()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with nl.Run(path, overwrite=True, config={"scenario": sc.name}) as run, \
                nl.watch(model, run, opt, weights="stats", grads="stats", activations="stats",
                         exclude=deep_saturation._unused(model) if sc.exclude else None):
            for step in range(1, sc.steps + 1):
                x, y = data(step)
                if sc.hook is not None:
                    x = sc.hook(step, model, opt, x)
                opt.zero_grad()
                loss = loss_fn(model(x), y)
                loss.backward()
                opt.step()
                run.log(loss=loss.item())
    finally:
        torch.set_num_threads(before)
    return str(path)


def judge(sc: Scenario, report) -> dict:
    """Which expectations the report meets, and which of its problems are false alarms."""
    met = []
    for e in sc.expect:
        ok = [f for f in report.findings if f.kind == e.kind and set(e.streams) <= set(f.streams)
              and e.first[0] <= f.first_step <= e.first[1]]
        met.append(bool(ok))
    allowed = {e.kind for e in sc.expect} | set(sc.related)
    false = [f for f in report.problems if f.kind not in allowed]
    right = [f for f in report.problems if f.kind in allowed]
    return {"met": met, "false": false, "right": right}
