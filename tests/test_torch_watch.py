"""The PyTorch adapter records exactly what the training loop saw."""
import numpy as np
import pytest
import torch
from torch import nn

import netlapse as nl
from netlapse import NetlapseError, StepNotRecordedError
from netlapse._stats import STAT_NAMES


class ConvNet(nn.Module):
    """Unlike any tour model: conv + batch norm + linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        return self.fc(self.flat(self.pool(self.act(self.norm(self.conv(x))))))


def data(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 6, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def numpy_stats(a):
    a = np.asarray(a, np.float64).ravel()
    return dict(mean=a.mean(), std=a.std(), min=a.min(), max=a.max(), norm=np.linalg.norm(a),
                mean_abs=np.abs(a).mean(), zero_frac=np.mean(a == 0), nonfinite=0)


def test_exact_weights_grads_probe_every_2(tmp_path):
    torch.manual_seed(0)
    model = ConvNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    x, y = data()
    probe = x[:5].clone()
    weights_ref, grads_ref, probe_ref = {}, {}, {}

    def probe_outputs():
        model.eval()
        with torch.no_grad():
            c = model.conv(probe); nrm = model.norm(c); a = model.act(nrm); p = model.pool(a)
            f = model.flat(p); out = model.fc(f)
        model.train()
        return {"conv": c, "norm": nrm, "act": a, "pool": p, "flat": f, "fc": out}

    with nl.Run(tmp_path / "run") as run:
        w = nl.watch(model, run, opt, every=2, weights="full", grads="full", probe=probe)
        weights_ref[0] = {n: p.detach().clone() for n, p in model.named_parameters()}
        probe_ref[0] = probe_outputs()
        for step in range(1, 12):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            grads_ref[step] = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
            opt.step()
            weights_ref[step] = {n: p.detach().clone() for n, p in model.named_parameters()}
            probe_ref[step] = probe_outputs()
            run.log(loss=loss.item())
        w.close()
        assert model.training

    r = nl.open_run(tmp_path / "run")
    assert r.status == "finished"
    for name in dict(model.named_parameters()):
        ws, gs = r[f"weights/{name}"], r[f"grads/{name}"]
        assert list(ws.steps) == [0, 2, 4, 6, 8, 10]
        assert list(gs.steps) == [2, 4, 6, 8, 10]
        for k in ws.steps:
            np.testing.assert_array_equal(ws.at(k), weights_ref[k][name].numpy())
        for k in gs.steps:
            np.testing.assert_array_equal(gs.at(k), grads_ref[k][name].numpy())
        for stream, ref in ((ws, weights_ref), (gs, grads_ref)):
            df = stream.stats
            for i, k in enumerate(stream.steps):
                want = numpy_stats(ref[k][name].numpy())
                for col in STAT_NAMES:
                    assert df[col].iloc[i] == pytest.approx(want[col], rel=1e-6, abs=1e-12), (name, k, col)
        np.testing.assert_array_equal(ws.history(), np.stack([weights_ref[k][name].numpy() for k in ws.steps]))
    for layer in ("conv", "norm", "act", "pool", "flat", "fc"):
        ps = r[f"probe/{layer}"]
        assert list(ps.steps) == [0, 2, 4, 6, 8, 10]
        for k in ps.steps:
            np.testing.assert_allclose(ps.at(k), probe_ref[k][layer].numpy(), rtol=0, atol=0)
    np.testing.assert_array_equal(r["inputs/probe"].at(0), probe.numpy())
    assert list(r.metrics["step"]) == list(range(1, 12))
    with pytest.raises(StepNotRecordedError, match="Recorded steps: 0, 2, 4"):
        r["weights/fc.weight"].at(3)
    with pytest.raises(KeyError, match="weights/fc.weight"):
        r["weights/fc.weigth"]


def test_activations_stats_match_forward_outputs(tmp_path):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = {}
    taps = {}
    for name, m in model.named_children():
        m.register_forward_hook(lambda mod, i, o, name=name: taps.__setitem__(name, o.detach().clone()))
    with nl.Run(tmp_path / "r") as run, nl.watch(model, run, opt, every=3, weights=None, grads=None,
                                                 activations="full"):
        for step in range(1, 10):
            x = torch.randn(8, 3)
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            seen[step] = dict(taps)
            with torch.no_grad():   # an eval pass between steps is not recorded
                model(torch.randn(2, 3))
            opt.step()
    r = nl.open_run(tmp_path / "r")
    assert r.streams() == ["activations/0", "activations/1", "activations/2"]
    for name in ("0", "1", "2"):
        s = r[f"activations/{name}"]
        assert list(s.steps) == [3, 6, 9]
        for k in s.steps:
            np.testing.assert_array_equal(s.at(k), seen[k][name].numpy())
            assert s.stats.set_index("step").loc[k, "mean"] == pytest.approx(
                seen[k][name].double().mean().item(), rel=1e-9)


def test_no_optimizer_step_and_gradient_accumulation(tmp_path):
    torch.manual_seed(2)
    model = nn.Linear(4, 1)
    with nl.Run(tmp_path / "r") as run:
        w = nl.watch(model, run, weights="full", grads="full")
        accumulated = []
        for step in range(3):
            model.zero_grad()
            for _ in range(2):   # two backward passes per update
                model(torch.randn(5, 4)).sum().backward()
            accumulated.append(model.weight.grad.clone())
            with torch.no_grad():
                model.weight -= 0.1 * model.weight.grad
            w.step()
        w.close()
    r = nl.open_run(tmp_path / "r")
    g = r["grads/weight"]
    assert list(g.steps) == [1, 2, 3]
    for i, k in enumerate(g.steps):
        np.testing.assert_array_equal(g.at(k), accumulated[i].numpy())
    np.testing.assert_array_equal(r["weights/weight"].at(-1), model.weight.detach().numpy())


def test_include_exclude_and_errors(tmp_path):
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with nl.Run(tmp_path / "r") as run:
        with pytest.raises(NetlapseError, match="matches no parameter"):
            nl.watch(model, run, opt, include="fc*")
        with pytest.raises(NetlapseError, match="not a capture mode"):
            nl.watch(model, run, opt, weights="everything")
        with pytest.raises(NetlapseError, match="positive integer"):
            nl.watch(model, run, opt, every=0)
        with pytest.raises(NetlapseError, match="rejects the probe.*layer '0'"):
            nl.watch(model, run, opt, probe=torch.randn(4, 7))
        w = nl.watch(model, run, opt, include=["0.*", "2.weight"], exclude="*.bias", weights="stats")
        with pytest.raises(NetlapseError, match="already watched"):
            nl.watch(model, run, opt)
        n_hooks = len(opt._optimizer_step_pre_hooks) + len(opt._optimizer_step_post_hooks)
        assert n_hooks == 2
        w.close()
        assert len(opt._optimizer_step_pre_hooks) + len(opt._optimizer_step_post_hooks) == 0
        nl.watch(model, run, opt, weights=None, grads=None).close()   # watching again after close is fine
    assert nl.open_run(tmp_path / "r").streams() == ["weights/0.weight", "weights/2.weight"]


def test_probe_restores_each_module_mode(tmp_path):
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5), nn.Linear(2, 1))
    model[1].eval()   # the user froze one module in eval mode
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with nl.Run(tmp_path / "r") as run, nl.watch(model, run, opt, probe=torch.randn(3, 2)):
        model(torch.randn(4, 2)).sum().backward()
        opt.step()
    assert model.training and model[0].training and not model[1].training
