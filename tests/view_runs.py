"""Small real runs recorded with nl.watch on tiny torch models, shared by the view/render tests."""
import numpy as np
import torch
from torch import nn

import netlapse as nl
from netlapse.views import curve_probe, plane_probe


def rings(n=200, seed=0):
    rng = np.random.default_rng(seed)
    ang = rng.uniform(0, 2 * np.pi, n)
    r = np.where(np.arange(n) % 2 == 0, 1.0, 0.5)
    x = np.stack([r * np.cos(ang), r * np.sin(ang)], 1) + rng.normal(0, 0.005, (n, 2))
    return x.astype(np.float32), (r == 1.0).astype(np.float32)


def record_rings(path, steps=12, every=1):
    """2-3-2-1 tanh net with sigmoid output on rings; probe = plane_probe."""
    torch.manual_seed(0)
    x, y = rings()
    xp, yp, layout = plane_probe(x[:60], y[:60], lines=5, points_per_line=7, resolution=8)
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 2), nn.Tanh(),
                          nn.Linear(2, 1), nn.Sigmoid())
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)[:, None]
    with nl.Run(path, config={"probe_layout": layout}) as run:
        w = nl.watch(model, run, opt, every=every, weights="full", grads="stats",
                     activations="stats", probe=(torch.from_numpy(xp), torch.from_numpy(yp)))
        for _ in range(steps):
            opt.zero_grad()
            loss = ((model(xt) - yt) ** 2).mean()
            loss.backward()
            opt.step()
            run.log(loss=loss.item())
        w.close()
    return model, (xp, yp, layout)


def record_curve(path, hidden=(3,), steps=10):
    torch.manual_seed(1)
    x = np.linspace(-2, 2, 50, dtype=np.float32)[::-1].copy()
    y = x ** 4 - 3 * x ** 2 + x + 1
    xp, yp, layout = curve_probe(x, y)
    layers, d = [], 1
    for h in hidden:
        layers += [nn.Linear(d, h), nn.Tanh()]
        d = h
    model = nn.Sequential(*layers, nn.Linear(d, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    xt, yt = torch.from_numpy(xp), torch.from_numpy(yp)
    with nl.Run(path, config={"probe_layout": layout}) as run:
        w = nl.watch(model, run, opt, weights="full", probe=(xt, yt))
        for _ in range(steps):
            opt.zero_grad()
            ((model(xt) - yt) ** 2).mean().backward()
            opt.step()
        w.close()
    return model


def record_linear(path, steps=6, n_in=16, n_out=4):
    """Softmax regression n_in -> n_out (4x4 'images'), weights full, grads full."""
    torch.manual_seed(2)
    x = torch.randn(64, n_in)
    y = torch.randint(0, n_out, (64,))
    model = nn.Sequential(nn.Linear(n_in, n_out))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    with nl.Run(path) as run:
        w = nl.watch(model, run, opt, weights="full", grads="full")
        for _ in range(steps):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        w.close()
    return model
