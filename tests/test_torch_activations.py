"""Activations and probes: the last training forward before each update, one stream per call."""
import numpy as np
import pytest
import torch
from torch import nn

import netlapse as nl
from netlapse.torch import MAX_CALLS


class BasicBlock(nn.Module):
    """torchvision's BasicBlock shape: one ReLU (in place) used twice, ``out += identity``."""

    def __init__(self, c=3):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 3, 3, padding=1)
        self.block = BasicBlock()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(self.pool(self.block(self.stem(x))).flatten(1))


def own_taps(model, calls):
    """The test's own forward hooks: every call's output, copied as the module returns."""
    for name, m in model.named_modules():
        if not any(m.children()):
            m.register_forward_hook(
                lambda mod, i, o, name=name: calls.setdefault(name, []).append(o.detach().clone()))


def by_call(calls):
    out = {}
    for name, outs in calls.items():
        for k, t in enumerate(outs, 1):
            out[name if k == 1 else f"{name}:{k}"] = t
    return out


def test_reused_relu_two_streams_exact_and_inplace_safe(tmp_path):
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    probe = torch.randn(4, 1, 5, 5)
    calls, seen, probe_seen = {}, {}, {}
    with nl.Run(tmp_path / "r") as run:
        nl.watch(model, run, opt, every=2, weights=None, grads=None, activations="full", probe=probe)
        own_taps(model, calls)

        def probe_pass(step):
            model.eval()
            calls.clear()
            with torch.no_grad():
                model(probe)
            probe_seen[step] = by_call(calls)
            model.train()

        probe_pass(0)
        for step in range(1, 7):
            x, y = torch.randn(6, 1, 5, 5), torch.randint(0, 2, (6,))
            calls.clear()
            loss = nn.functional.cross_entropy(model(x), y)
            seen[step] = by_call(calls)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 2 == 0:
                probe_pass(step)
    r = nl.open_run(tmp_path / "r")
    assert "activations/block.relu:2" in r.streams() and "probe/block.relu:2" in r.streams()
    assert not any(s.endswith(":3") for s in r.streams())
    for stream in ("block.relu", "block.relu:2", "block.bn2", "stem", "fc"):
        s = r[f"activations/{stream}"]
        assert list(s.steps) == [2, 4, 6]          # exactly one row per recorded step
        for k in s.steps:
            np.testing.assert_array_equal(s.at(k), seen[k][stream].numpy())
        p = r[f"probe/{stream}"]
        assert list(p.steps) == [0, 2, 4, 6]
        for k in p.steps:
            np.testing.assert_array_equal(p.at(k), probe_seen[k][stream].numpy())
    # bn2's output is changed in place by `out += identity` after it returns: stored as returned
    assert (r["activations/block.relu"].at(2) >= 0).all()
    assert (r["activations/block.bn2"].at(2) < 0).any()


def test_last_forward_before_the_update(tmp_path):
    """Gradient accumulation: the last micro-batch. A GAN discriminator: its own fake pass."""
    torch.manual_seed(1)
    G, D = nn.Sequential(nn.Linear(2, 4)), nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 1))
    opt_g, opt_d = torch.optim.SGD(G.parameters(), lr=0.1), torch.optim.SGD(D.parameters(), lr=0.1)
    calls, expected = {}, {}
    with nl.Run(tmp_path / "r") as run:
        nl.watch(D, run, opt_d, weights=None, grads=None, activations="full")
        own_taps(D, calls)
        for step in range(1, 5):
            fake = G(torch.randn(5, 2))
            opt_d.zero_grad()
            for _ in range(2):                  # two micro-batches of real data
                D(torch.randn(5, 4)).mean().backward()
            calls.clear()
            D(fake.detach()).mean().backward()  # D's own pass on the fake batch: the last one
            expected[step] = by_call(calls)
            with torch.no_grad():
                D(torch.randn(3, 4))            # an eval pass: never recorded
            opt_d.step()
            opt_g.zero_grad()
            (-D(fake).mean()).backward()        # D called for G's update: belongs to no D step
            opt_g.step()
    r = nl.open_run(tmp_path / "r")
    for name in ("0", "1", "2"):
        s = r[f"activations/{name}"]
        assert list(s.steps) == [1, 2, 3, 4]
        for k in s.steps:
            np.testing.assert_array_equal(s.at(k), expected[k][name].numpy())


def test_calls_past_the_limit_warn_once(tmp_path):
    cell = nn.Linear(3, 3)
    model = nn.ModuleDict({"cell": cell})
    opt = torch.optim.SGD(cell.parameters(), lr=0.01)
    n = MAX_CALLS + 4
    with nl.Run(tmp_path / "r") as run:
        nl.watch(model, run, opt, weights=None, grads=None, activations="stats")
        with pytest.warns(RuntimeWarning, match=f"'cell' is called more than {MAX_CALLS} times.*"
                                                f"calls {MAX_CALLS + 1} and later are not recorded"):
            for _ in range(2):
                h = torch.randn(2, 3)
                for _ in range(n):
                    h = torch.tanh(cell(h))
                opt.zero_grad()
                h.sum().backward()
                opt.step()
    r = nl.open_run(tmp_path / "r")
    acts = [s for s in r.streams() if s.startswith("activations/")]
    assert len(acts) == MAX_CALLS and f"activations/cell:{MAX_CALLS}" in acts
    assert all(list(r[s].steps) == [1, 2] for s in acts)
