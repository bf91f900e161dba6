"""What the doctor reads is recorded exactly: unit activity of activations and updates/<param>
equal what the test computes itself from tensors taken through PyTorch's own hooks; old
(format 1) runs stay readable; live alerts warn once, from the writer, at commits."""

import json
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import netlapse as nl  # noqa: E402
from netlapse._stats import summarize  # noqa: E402
from netlapse.doctor import HealthWarning  # noqa: E402


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 1))


def test_unit_activity_and_updates_equal_what_the_hooks_saw(tmp_path):
    m = _net()
    nn.init.constant_(m[0].bias, -0.5)     # some ReLU units are off for some samples
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    outs, weights = {1: [], 3: []}, [[p.detach().clone() for p in m.parameters()]]
    for i in (1, 3):
        m[i].register_forward_hook(lambda mod, a, out, i=i: outs[i].append(out.detach().clone()))
    opt.register_step_post_hook(lambda o, a, k: weights.append([p.detach().clone() for p in m.parameters()]))
    with nl.Run(tmp_path / "r") as run, nl.watch(m, run, opt, activations="stats"):
        for _ in range(6):
            x = torch.randn(16, 6) * 3
            opt.zero_grad()
            ((m(x) - 1) ** 2).mean().backward()
            opt.step()
    r = nl.open_run(tmp_path / "r")
    relu, tanh = r["activations/1"], r["activations/3"]
    assert relu.meta["units"] == {"axis": 1, "count": 12, "act": "relu"}
    assert tanh.meta["units"]["bounds"] == [-1.0, 1.0]
    want_active = np.stack([(o != 0).float().mean(0).numpy() for o in outs[1]])
    np.testing.assert_array_equal(relu.units("active"), want_active)
    assert 0 < want_active.mean() < 1
    want_sat = np.stack([(o.abs() >= 0.97).float().mean(0).numpy() for o in outs[3]])
    np.testing.assert_allclose(tanh.units("saturated"), want_sat, atol=1e-6)
    assert relu.units("saturated") is None
    # updates/<param> at step k: the stats of w_k - w_(k-1), the weights after each update
    names = [n for n, _ in m.named_parameters()]
    up = r["updates/2.weight"]
    assert list(up.steps) == [1, 2, 3, 4, 5, 6]
    j = names.index("2.weight")
    for k in range(1, 7):
        delta = (weights[k][j] - weights[k - 1][j]).numpy()
        np.testing.assert_allclose(up.stats_array[k - 1], summarize(delta)[0], rtol=1e-6, atol=1e-12)
    assert up.meta["span"] == 1 and up.kind == "updates"


def test_convolution_units_are_channels(tmp_path):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 2))
    opt = torch.optim.SGD(m.parameters(), lr=0.01)
    seen = []
    m[1].register_forward_hook(lambda mod, a, out: seen.append(out.detach().clone()))
    with nl.Run(tmp_path / "c") as run, nl.watch(m, run, opt, activations="stats"):
        for _ in range(3):
            opt.zero_grad()
            m(torch.randn(5, 1, 8, 8)).sum().backward()
            opt.step()
    s = nl.open_run(tmp_path / "c")["activations/1"]
    assert s.meta["units"]["axis"] == 1 and s.meta["units"]["count"] == 4
    want = np.stack([(o != 0).float().mean((0, 2, 3)).numpy() for o in seen])
    np.testing.assert_allclose(s.units("active"), want, atol=1e-7)


def test_updates_off_without_optimizer_or_on_request(tmp_path):
    m = _net()
    with nl.Run(tmp_path / "a") as run, nl.watch(m, run, weights="stats") as w:
        w.step()
    assert not nl.open_run(tmp_path / "a").streams("updates")
    with nl.Run(tmp_path / "b") as run, pytest.raises(nl.NetlapseError, match="weights"):
        nl.watch(m, run, torch.optim.SGD(m.parameters(), lr=0.1), weights=None, updates="stats")


def test_format_1_run_is_read_and_says_what_it_lacks(tmp_path):
    m = _net()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    with nl.Run(tmp_path / "old") as run, nl.watch(m, run, opt, activations="stats"):
        for _ in range(3):
            opt.zero_grad()
            m(torch.randn(4, 6)).sum().backward()
            opt.step()
    # make it look like a run written before format 2: no unit meta, format_version 1
    path = tmp_path / "old" / "run.json"
    manifest = json.loads(path.read_text())
    manifest["format_version"] = 1
    for meta in manifest["streams"].values():
        meta.pop("units", None)
    path.write_text(json.dumps(manifest))
    r = nl.open_run(tmp_path / "old")
    assert r["activations/1"].units() is None
    report = nl.diagnose(tmp_path / "old")
    why = {s["instrument"]: s["why"] for s in report.skipped}
    assert "format 2" in why["dead_units"]


def test_live_alert_warns_once_at_commit_naming_layers_and_command(tmp_path):
    m = _net()
    nn.init.constant_(m[0].bias, -50.0)     # every ReLU unit dead from the first step
    opt = torch.optim.SGD(m.parameters(), lr=0.01)
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        with nl.Run(tmp_path / "live") as run, \
                nl.watch(m, run, opt, activations="stats", alerts=True):
            for i in range(30):
                opt.zero_grad()
                m(torch.randn(8, 6)).sum().backward()
                opt.step()
                if i in (14, 29):
                    run.flush()   # a commit: the writer runs the instruments before it returns
                    alerts = [w for w in got if w.category is HealthWarning]
                    dead = [w for w in alerts if "dead_units" in str(w.message)]
                    assert len(dead) == 1, [str(w.message) for w in alerts]
    text = str(dead[0].message)
    assert "dead_units (problem) in 1 since step 1:" in text
    assert text.endswith(f"netlapse doctor {tmp_path / 'live'}")
