"""Grads are read where they are (no copy) for loops that drop them after the update.

What the user sees must not depend on it: the recorded grads of step k are exactly the grads
update k used (copied by the test in the optimizer's own step pre-hook), whether the writer
read them in place, the training thread copied them, or the loop's shape ruled reading in
place out (netlapse/_torch_grads.py says when).
"""

import threading
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import netlapse as nl  # noqa: E402
import netlapse._record.pipeline as pipeline  # noqa: E402
from in_place_helpers import assert_stats_rows, batch, hook_captures, tiny_model  # noqa: E402




def _train(tmp_path, steps, *, shape="zero_first", opt_kw=None, grads="full", on_step=None):
    """Train ``steps`` updates in a loop of the given ``shape``; returns the watcher's live
    flags and the grads each update used, taken in the optimizer's own step pre-hook."""
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, **(opt_kw or {"momentum": 0.9}))
    used = {}

    def take(optimizer, args, kwargs):
        used[len(used) + 1] = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    opt.register_step_pre_hook(take)
    with nl.Run(tmp_path / "run") as run:
        w = nl.watch(model, run, opt, weights=None, grads=grads)
        for step in range(steps):
            x, y = batch(step)
            if shape == "zero_first":            # the PyTorch examples' loop
                opt.zero_grad()
                loss = nn.functional.cross_entropy(model(x), y)
            elif shape == "zero_after_forward":  # Lightning's closure order
                loss = nn.functional.cross_entropy(model(x), y)
                opt.zero_grad()
            elif shape == "zero_in_place":
                opt.zero_grad(set_to_none=False)
                loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            if on_step is not None:
                on_step(step, model, opt)
        live = list(w._live_grads.live)
    return live, used


def _check(tmp_path, used, steps=None):
    r = nl.open_run(tmp_path / "run")
    for name in dict(tiny_model().named_parameters()):
        s = r[f"grads/{name}"]
        expect = sorted(used) if steps is None else steps
        assert list(s.steps) == expect, name
        for k in s.steps:
            np.testing.assert_array_equal(s.at(k), used[k][name].numpy(), err_msg=f"{name} {k}")



def test_grads_dropped_by_zero_grad_are_read_in_place_and_exact(tmp_path, monkeypatch):
    states = []
    hook_captures(monkeypatch, "grads", lambda cap, event: states.append((cap.step, event)))
    live, used = _train(tmp_path, 10)
    assert live == [True]
    # the first update is copied (it shows the loop drops its grads); the others go live
    assert sorted({s for s, e in states if e == "taken"}) == list(range(2, 11))
    _check(tmp_path, used)


def test_stats_of_grads_read_in_place(tmp_path):
    live, used = _train(tmp_path, 8, grads="stats")
    assert live == [True]
    r = nl.open_run(tmp_path / "run")
    for name in dict(tiny_model().named_parameters()):
        s = r[f"grads/{name}"]
        assert list(s.steps) == list(range(1, 9))
        assert_stats_rows(s, {k: used[k][name] for k in used})


@pytest.mark.parametrize("shape", ["zero_after_forward", "zero_in_place"])
def test_loops_that_keep_their_grads_until_backward_get_copies(tmp_path, shape):
    live, used = _train(tmp_path, 8, shape=shape)
    assert live == [False]
    _check(tmp_path, used)


def _nesterov_writes_into_grads() -> bool:
    p = nn.Parameter(torch.ones(4))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True, foreach=True)
    for _ in range(2):
        p.grad = torch.ones(4)
        v = p.grad._version
        opt.step()
    return p.grad._version != v


def test_an_optimizer_that_writes_into_the_grads_gets_copies(tmp_path):
    # SGD(nesterov=True) adds the momentum into the grads during its step (in this torch): the
    # grads the update used are those before that, so they are copied before every step
    live, used = _train(tmp_path, 8, opt_kw={"momentum": 0.9, "nesterov": True, "foreach": True})
    assert live == [not _nesterov_writes_into_grads()]
    _check(tmp_path, used)


@pytest.mark.parametrize("lag", [2, 6])
def test_a_writer_held_back_reads_dropped_grads_later_exactly(tmp_path, monkeypatch, lag):
    # the writer is held before each live grads capture until training has gone ``lag``
    # updates further (new grads exist, the old ones are dropped but kept for the writer);
    # with lag 6 more than MAX_HELD (4) wait: the training thread copies the oldest instead of
    # piling up old grads, and every value is still exact
    progress = threading.Condition()
    done = [0]
    states = []

    def hold(cap, event):
        if event == "taken":
            with progress:
                assert progress.wait_for(lambda: done[0] >= min(cap.step + lag, 12), timeout=60)
                states.append((cap.step, cap.state))

    def on_step(step, model, opt):
        with progress:
            done[0] = step + 1
            progress.notify_all()

    hook_captures(monkeypatch, "grads", hold)
    live, used = _train(tmp_path, 12, on_step=on_step)
    assert live == [True]
    copied = [s for s, st in states if st == pipeline.LiveCapture.COPIED]
    if lag > 4:   # past MAX_HELD waiting, the oldest was copied (the writer could not start it)
        assert copied and copied[0] == 2, states
    _check(tmp_path, used)


def test_a_loop_that_stops_dropping_its_grads_loses_no_value_silently(tmp_path, monkeypatch):
    # live grads, then the loop zeroes them in place (set_to_none=False) before the writer has
    # read them: that step is reported and not stored (never stored wrong), and the optimizer
    # goes back to copies, exact from then on
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    used = {}
    opt.register_step_pre_hook(lambda o, a, k: used.__setitem__(
        len(used) + 1, {n: p.grad.detach().clone() for n, p in model.named_parameters()}))
    release = threading.Event()

    def hold(cap, event):
        if event == "taken" and cap.step == 4:
            assert release.wait(60)

    hook_captures(monkeypatch, "grads", hold)
    with nl.Run(tmp_path / "run") as run:
        w = nl.watch(model, run, opt, weights=None, grads="full")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for step in range(8):
                x, y = batch(step)
                opt.zero_grad(set_to_none=step < 4)   # in place from the 5th update on
                nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
                if step == 4:
                    release.set()
        assert w._live_grads.live == [False]
    lost = [str(c.message) for c in caught if "changed in place" in str(c.message)]
    assert len(lost) == 1 and "step 4" in lost[0], lost
    _check(tmp_path, used, steps=[1, 2, 3, 5, 6, 7, 8])


def test_lbfgs_closure_grads_exact(tmp_path):
    model = tiny_model()
    opt = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=3)
    used = {}
    x, y = batch(0)

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        if len(used) < calls[0] + 1:   # the first call of each step: the grads at its start
            used[calls[0] + 1] = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
        return loss
    calls = [0]
    with nl.Run(tmp_path / "run") as run:
        nl.watch(model, run, opt, weights=None, grads="full")
        for _ in range(5):
            opt.step(closure)
            calls[0] += 1
    _check(tmp_path, used)


def test_torchvision_style_resnet_grads_read_in_place_exact(tmp_path):
    # upstream-shaped: torchvision's BasicBlock ResNet layout (BatchNorm, a ReLU called twice
    # per block), SGD with momentum and weight decay as in its reference training script
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from torch_models import ResNet

    torch.manual_seed(0)
    model = ResNet(layers=(1, 1, 1, 1), widths=(8, 16, 16, 32), num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    used = {}
    opt.register_step_pre_hook(lambda o, a, k: used.__setitem__(
        len(used) + 1, {n: p.grad.detach().clone() for n, p in model.named_parameters()}))
    g = torch.Generator().manual_seed(2)
    with nl.Run(tmp_path / "run") as run:
        w = nl.watch(model, run, opt, weights=None, grads="full")
        for _ in range(5):
            x, y = torch.randn(4, 3, 32, 32, generator=g), torch.randint(0, 10, (4,), generator=g)
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        assert w._live_grads.live == [True]
    r = nl.open_run(tmp_path / "run")
    for name in dict(model.named_parameters()):
        s = r[f"grads/{name}"]
        assert list(s.steps) == [1, 2, 3, 4, 5], name
        for k in s.steps:
            np.testing.assert_array_equal(s.at(k), used[k][name].numpy(), err_msg=f"{name} {k}")


def test_grads_and_weights_handed_over_live_wake_the_writer_once_a_step(tmp_path):
    # the grads of update k are queued quietly; the weights after it, handed over at the next
    # forward pass, wake the writer for both (a wake-up costs the training thread a system
    # call). Both stay exact, and every step's metrics are committed with its captures.
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    used_grads, used_weights = {}, {}
    opt.register_step_pre_hook(lambda o, a, k: used_grads.__setitem__(
        len(used_grads) + 1, {n: p.grad.detach().clone() for n, p in model.named_parameters()}))
    woke, quiet = [], []
    steps = 12
    with nl.Run(tmp_path / "run") as run:
        w = nl.watch(model, run, opt, weights="full", grads="full")
        put, put_quiet = run._pipeline._queue.put, run._pipeline._queue.put_quiet
        run._pipeline._queue.put = lambda item: (woke.append(item), put(item))
        run._pipeline._queue.put_quiet = lambda item: (quiet.append(item), put_quiet(item))
        for step in range(steps):
            used_weights[step] = {n: p.detach().clone() for n, p in model.named_parameters()}
            x, y = batch(step)
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            run.log(loss=loss.item())
        assert w._live_grads.live == [True]
    # update 1's grads are copied (the trial that shows the loop drops them); updates 2..12
    # are queued quietly, each followed by the weights' hand-over (steps 1..11) that wakes
    assert [(c.names[0].split("/")[0], c.step) for c in quiet] == [("grads", k) for k in range(2, steps + 1)]
    live_weights = [c.step for c in woke if isinstance(c, pipeline.LiveCapture)]
    assert live_weights == list(range(0, steps))
    _check(tmp_path, used_grads)
    r = nl.open_run(tmp_path / "run")
    for name in dict(tiny_model().named_parameters()):
        s = r[f"weights/{name}"]
        assert list(s.steps) == list(range(steps + 1))
        for k in range(steps):
            np.testing.assert_array_equal(s.at(k), used_weights[k][name].numpy(), err_msg=f"{name} {k}")
    assert r.last_step() == steps and list(r.metrics["step"]) == list(range(1, steps + 1))
