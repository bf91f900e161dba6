"""Buffers (BatchNorm running statistics) and shared (tied) parameters, on upstream-shaped models."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import netlapse as nl  # noqa: E402
from netlapse.cli.info import describe_run  # noqa: E402
from netlapse.errors import StreamNotFoundError  # noqa: E402
from torch_models import GPT, ResNet  # noqa: E402


def _float_buffers(model):
    return {n: b.detach().clone().numpy() for n, b in model.named_buffers() if b.is_floating_point()}


def _train_resnet(tmp_path, steps, **watch_kw):
    torch.manual_seed(0)
    model = ResNet(layers=(1, 1), widths=(4, 8))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    seen = {0: _float_buffers(model)}
    # the test's own copies, through the optimizer's post-step hook (registered before watch)
    opt.register_step_post_hook(lambda o, a, k: seen.__setitem__(len(seen), _float_buffers(model)))
    run = nl.Run(tmp_path / "run")
    nl.watch(model, run, opt, **watch_kw)
    for _ in range(steps):
        x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    run.close()
    return model, seen, nl.open_run(tmp_path / "run")


def test_batchnorm_buffers_are_recorded_at_the_weights_steps(tmp_path):
    model, seen, r = _train_resnet(tmp_path, 5, every=2, weights="stats", buffers="full")
    floats = sorted(n for n, b in model.named_buffers() if b.is_floating_point())
    assert r.streams("buffers") == [f"buffers/{n}" for n in floats]
    assert "buffers/bn1.running_mean" in r.streams() and "buffers/layer2.0.downsample.1.running_var" in r.streams()
    weight_steps = list(r["weights/conv1.weight"].steps)
    assert weight_steps == [0, 2, 4]
    for n in floats:
        s = r[f"buffers/{n}"]
        assert list(s.steps) == weight_steps and s.capture == "full"
        for k in weight_steps:
            np.testing.assert_array_equal(s.at(k), seen[k][n])
    assert not np.array_equal(seen[4]["bn1.running_mean"], seen[0]["bn1.running_mean"])
    # the summary lists every buffer, counters included
    listed = {b["name"]: b for b in r.model["buffers"]}
    assert set(listed) == {n for n, _ in model.named_buffers()}
    assert listed["bn1.num_batches_tracked"]["dtype"] == "int64"
    assert not listed["bn1.num_batches_tracked"]["floating"]
    assert "buffers  bn1.running_mean" in describe_run(tmp_path / "run")


def test_buffers_default_to_stats(tmp_path):
    _, seen, r = _train_resnet(tmp_path, 3)
    s = r["buffers/layer1.0.bn2.running_var"]
    assert s.capture == "stats" and list(s.steps) == [0, 1, 2, 3]
    stats = s.stats
    for k in range(4):
        v = seen[k]["layer1.0.bn2.running_var"].astype(np.float64)
        row = stats[stats["step"] == k].iloc[0]
        assert row["min"] == v.min() and row["max"] == v.max()
        assert row["mean"] == pytest.approx(v.mean(), rel=1e-12)


def test_buffers_none_and_bad_mode(tmp_path):
    _, _, r = _train_resnet(tmp_path, 1, buffers=None)
    assert r.streams("buffers") == [] and r.model["buffers"]   # still listed in the summary
    with nl.Run(tmp_path / "bad") as run:
        with pytest.raises(nl.errors.NetlapseError, match="buffers='all' is not a capture mode"):
            nl.watch(ResNet(layers=(1,), widths=(4,)), run, buffers="all")


def _train_gpt(path, steps=3, **watch_kw):
    torch.manual_seed(0)
    model = GPT()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    seen = {"w": [model.lm_head.weight.detach().clone().numpy()], "g": []}
    opt.register_step_pre_hook(lambda o, a, k: seen["g"].append(model.lm_head.weight.grad.clone().numpy()))
    opt.register_step_post_hook(lambda o, a, k: seen["w"].append(model.lm_head.weight.detach().clone().numpy()))
    run = nl.Run(path)
    nl.watch(model, run, opt, **watch_kw)
    for _ in range(steps):
        idx = torch.randint(0, 64, (2, 16))
        opt.zero_grad()
        model(idx[:, :-1], idx[:, 1:]).backward()
        opt.step()
    run.close()
    return seen, nl.open_run(path)


def test_tied_weights_resolve_to_the_shared_stream(tmp_path):
    seen, r = _train_gpt(tmp_path / "run", weights="full", grads="full")
    assert r.model["aliases"] == {"lm_head.weight": "transformer.wte.weight"}
    assert r.aliases() == {"lm_head.weight": "transformer.wte.weight"}
    assert "weights/lm_head.weight" not in r.streams()          # stored once
    w, g = r["weights/lm_head.weight"], r["grads/lm_head.weight"]
    assert w.name == "weights/transformer.wte.weight" and list(w.steps) == [0, 1, 2, 3]
    for k in range(4):
        np.testing.assert_array_equal(w.at(k), seen["w"][k])
    for k in range(1, 4):   # the grad of both uses (embedding and output layer) summed
        np.testing.assert_array_equal(g.at(k), seen["g"][k - 1])
    assert "alias    lm_head.weight is transformer.wte.weight" in describe_run(tmp_path / "run")


def test_tied_weight_not_recorded_says_where_it_would_be(tmp_path):
    _, r = _train_gpt(tmp_path / "run", steps=1, name="G", exclude=["transformer.wte*"])
    assert r.aliases() == {"G/lm_head.weight": "G/transformer.wte.weight"}
    with pytest.raises(StreamNotFoundError, match="stored as 'weights/G/transformer.wte.weight'"):
        r["weights/G/lm_head.weight"]
