"""probe_capture / probe_include / probe_exclude, on a torchvision-style ResNet."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import netlapse as nl  # noqa: E402
from netlapse.errors import NetlapseError  # noqa: E402
from torch_models import ResNet  # noqa: E402


def test_probe_stats_on_chosen_layers_equal_the_outputs_the_model_gave(tmp_path):
    torch.manual_seed(0)
    model = ResNet(layers=(1, 1), widths=(4, 8))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    probe = torch.randn(2, 3, 16, 16)
    seen = {"layer1.0.conv1": [], "layer1.0.conv2": []}
    for name in seen:   # the test's own forward hooks; the probe pass is the eval, no-grad one
        model.get_submodule(name).register_forward_hook(
            lambda m, i, out, name=name: None if (m.training or torch.is_grad_enabled())
            else seen[name].append(out.detach().clone().numpy().astype(np.float64)))
    run = nl.Run(tmp_path / "run")
    nl.watch(model, run, opt, weights=None, grads=None, probe=probe, probe_capture="stats",
             probe_include="layer1", probe_exclude=["*.bn*", "*relu*"])
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 16, 16)),
                                          torch.randint(0, 10, (4,))).backward()
        opt.step()
    run.close()
    r = nl.open_run(tmp_path / "run")
    assert r.streams("probe") == ["probe/layer1.0.conv1", "probe/layer1.0.conv2"]
    assert r["inputs/probe"].capture == "full"   # the input itself stays exact
    for name, outs in seen.items():
        s = r[f"probe/{name}"]
        outs = outs[1:]   # the first probe pass is watch's check that the model takes the probe
        assert s.capture == "stats" and list(s.steps) == [0, 1, 2, 3] and len(outs) == 4
        stats = s.stats
        for k, v in enumerate(outs):
            row = stats.iloc[k]
            assert row["min"] == v.min() and row["max"] == v.max()
            assert row["mean"] == pytest.approx(v.mean(), rel=1e-9, abs=1e-12)


def test_probe_options_checked_before_anything_is_hooked(tmp_path):
    model = ResNet(layers=(1,), widths=(4,))
    with nl.Run(tmp_path / "run") as run:
        with pytest.raises(NetlapseError, match="probe_include pattern 'layer9' matches no layer"):
            nl.watch(model, run, probe=torch.randn(1, 3, 8, 8), probe_include="layer9")
        with pytest.raises(NetlapseError, match="probe_capture='some' is not a capture mode"):
            nl.watch(model, run, probe=torch.randn(1, 3, 8, 8), probe_capture="some")
        assert not model._forward_hooks and not model._forward_pre_hooks
        w = nl.watch(model, run, probe=torch.randn(1, 3, 8, 8), probe_capture=None)
        w.step()
    r = nl.open_run(tmp_path / "run")
    assert r.streams("probe") == [] and "inputs/probe" in r.streams()
