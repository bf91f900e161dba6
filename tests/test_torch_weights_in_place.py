"""Weights are read where they are (no copy) between the next forward and the next update.

What the user sees must not depend on when the writer gets to them: the recorded weights of
step k are exactly the weights the forward after update k used, whether the writer read them
in place or the next update had to copy them first.
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




def _train(tmp_path, steps, clip=None, weights="full", between=None, grads=None):
    """Train ``steps`` updates; returns the weights each forward used, by step."""
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    used = {}
    with nl.Run(tmp_path / "run") as run:
        nl.watch(model, run, opt, weights=weights, grads=grads)
        for step in range(steps):
            if clip is not None:   # the old-style way: through .data, invisible to autograd
                for p in model.parameters():
                    p.data.clamp_(-clip, clip)
            used[step] = {n: p.detach().clone() for n, p in model.named_parameters()}
            x, y = batch(step)
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            if between is not None:
                between(step)
            opt.step()
        if clip is not None:
            for p in model.parameters():
                p.data.clamp_(-clip, clip)
        used[steps] = {n: p.detach().clone() for n, p in model.named_parameters()}
    return model, used


def _assert_weights_exact(run_path, names, used, n_steps, checked=None):
    """Stream ``weights/<name>`` holds steps 0..n_steps-1, and at each step in ``checked``
    (default: all) exactly ``used[k][name]``, the copy the test took at that moment."""
    r = nl.open_run(run_path)
    for name in names:
        s = r[f"weights/{name}"]
        assert list(s.steps) == list(range(n_steps))
        for k in (s.steps if checked is None else checked):
            np.testing.assert_array_equal(s.at(k), used[k][name].numpy(), err_msg=f"{name} {k}")


def test_weights_after_a_clip_between_update_and_forward_are_the_clipped_ones(tmp_path):
    # WGAN-style clipping right after opt.step(): the stored weights are what the next forward
    # used, every time (not sometimes before and sometimes after the clip)
    model, used = _train(tmp_path, 12, clip=0.05)
    r = nl.open_run(tmp_path / "run")
    for name in dict(model.named_parameters()):
        s = r[f"weights/{name}"]
        assert list(s.steps) == list(range(13))
        for k in s.steps:
            np.testing.assert_array_equal(s.at(k), used[k][name].numpy(), err_msg=f"{name} {k}")
            assert np.abs(s.at(k)).max() <= 0.05 + 1e-7


def test_stats_of_weights_read_in_place_match_the_tensors(tmp_path):
    model, used = _train(tmp_path, 9, weights="stats")
    r = nl.open_run(tmp_path / "run")
    for name in dict(model.named_parameters()):
        s = r[f"weights/{name}"]
        assert list(s.steps) == list(range(10))
        assert_stats_rows(s, {k: used[k][name] for k in used})



def test_a_slow_writer_makes_the_update_copy_the_weights_first(tmp_path, monkeypatch):
    # the writer is held before it starts on each step's live weights until the training
    # thread has moved on to the next update: every update finds the weights unread and copies
    # them before changing them; the stored values are exact
    states = []

    def hold(cap, event):
        if event == "taken":
            with cap.cond:
                assert cap.cond.wait_for(lambda: cap.state != cap.PENDING, timeout=60)
                states.append(cap.state)

    hook_captures(monkeypatch, "weights", hold)
    model, used = _train(tmp_path, 8, grads="stats")
    assert states and all(s == pipeline.LiveCapture.COPIED for s in states), states
    _assert_weights_exact(tmp_path / "run", dict(model.named_parameters()), used, 9)


def test_an_update_waits_while_the_writer_reads_the_weights(tmp_path, monkeypatch):
    # the writer starts reading each step's weights in place and stays there until the update
    # has found it reading: the update must wait for it (not change the weights under it)
    reading, update_waits = threading.Event(), threading.Event()
    waits = []

    def hook(cap, event):
        if event == "reading":          # writer thread
            reading.set()
            assert update_waits.wait(60)
            update_waits.clear()
        elif event == "waiting":        # training thread, inside settle, before it waits
            waits.append(cap.step)
            update_waits.set()

    hook_captures(monkeypatch, "weights", hook)

    def between(step):
        assert reading.wait(60)         # the writer is reading this step's weights
        reading.clear()

    model, used = _train(tmp_path, 6, between=between)
    assert waits == list(range(6))
    r = nl.open_run(tmp_path / "run")
    for name in dict(model.named_parameters()):
        assert list(r[f"weights/{name}"].steps) == list(range(7))
        for k in r[f"weights/{name}"].steps:
            np.testing.assert_array_equal(r[f"weights/{name}"].at(k), used[k][name].numpy())


def test_weights_changed_in_place_during_the_step_are_not_stored_and_warned(tmp_path, monkeypatch):
    # an in-place change through the parameter between the forward and the update: the step
    # read meanwhile cannot be trusted, so it is left out with a warning, never stored wrong
    reading, gate = threading.Event(), threading.Event()

    def hook(cap, event):
        if event == "reading" and cap.step == 0:
            reading.set()
            assert gate.wait(60)

    hook_captures(monkeypatch, "weights", hook)
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with nl.Run(tmp_path / "run") as run:
            nl.watch(model, run, opt, weights="stats", grads=None)
            x, y = batch(0)
            nn.functional.cross_entropy(model(x), y).backward()   # hands step 0 over
            assert reading.wait(60)                                # the writer is reading it
            with torch.no_grad():
                model[0].weight.mul_(2.0)                          # ...and it changes
            gate.set()
            opt.step()
    assert any("changed in place while step 0" in str(w.message) for w in caught)
    r = nl.open_run(tmp_path / "run")
    assert list(r["weights/0.weight"].steps) == [1]
    after = model[0].weight.detach().numpy().astype(np.float64)
    assert r["weights/0.weight"].stats["mean"].iloc[0] == pytest.approx(after.mean(), rel=1e-9)


def test_flush_and_close_record_weights_no_forward_has_read_yet(tmp_path):
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with nl.Run(tmp_path / "run") as run:
        nl.watch(model, run, opt, weights="full", grads=None)
        x, y = batch(1)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()                      # step 1's weights: no forward after it yet
        run.flush()
        r = nl.open_run(tmp_path / "run")
        assert list(r["weights/2.bias"].steps) == [0, 1]
        np.testing.assert_array_equal(r["weights/2.bias"].at(1), model[2].bias.detach().numpy())
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    r = nl.open_run(tmp_path / "run")
    assert list(r["weights/2.bias"].steps) == [0, 1, 2]
    np.testing.assert_array_equal(r["weights/2.bias"].at(2), model[2].bias.detach().numpy())


def test_weights_given_new_memory_or_a_new_layout_mid_run_are_recorded_exactly(tmp_path):
    # the in-place hand-over reuses its views of the parameters (netlapse/_torch_params.py)
    # until one changes memory, shape, strides or dtype: a parameter given new memory
    # (p.data = ...) at step 4, and a square weight transposed to a non-contiguous view at
    # step 7 (numpy can no longer read it in place: copied), are both recorded as they are
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 6), nn.Tanh(), nn.Linear(6, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    used = {}
    with nl.Run(tmp_path / "run") as run:
        nl.watch(model, run, opt, weights="full", grads=None)
        for step in range(10):
            with torch.no_grad():
                if step == 4:
                    model[2].weight.data = torch.randn(3, 6)
                if step == 7:
                    model[0].weight.data = model[0].weight.data.t()
            used[step] = {n: p.detach().clone() for n, p in model.named_parameters()}
            x, y = batch(step)
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    assert not model[0].weight.is_contiguous()
    _assert_weights_exact(tmp_path / "run", used[0], used, 11, checked=range(10))



def _train_through_a_held_commit(tmp_path, monkeypatch, weights):
    """7 updates; a commit (not waited for) starts after update 3 and is held at its first and
    second stream's append. The weights of step 3 are handed over while it is held at the
    first; returns their capture's state when the commit reaches the second, and the weights
    each step used (step 7: after the last update)."""
    from netlapse.store import writer as store_writer

    first_in, first_go, second_in, second_go = (threading.Event() for _ in range(4))
    calls, holding = [0], [False]
    append = store_writer.StoreWriter.append_stream

    def held_append(self, *args, **kwargs):
        if holding[0]:
            calls[0] += 1
            if calls[0] == 1:
                first_in.set()
                assert first_go.wait(30)
            elif calls[0] == 2:
                second_in.set()
                assert second_go.wait(30)
        return append(self, *args, **kwargs)

    monkeypatch.setattr(store_writer.StoreWriter, "append_stream", held_append)
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    used = {}

    def forward_backward(k):
        used[k] = {n: p.detach().clone() for n, p in model.named_parameters()}
        x, y = batch(k)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()

    with nl.Run(tmp_path / "run", flush_every=3600.0) as run:
        w = nl.watch(model, run, opt, weights=weights, grads=None)
        for k in range(3):
            forward_backward(k)
            opt.step()
        holding[0] = True
        run._pipeline._put(pipeline.Flush(threading.Event()))   # a commit, not waited for
        assert first_in.wait(30)
        forward_backward(3)          # the weights of step 3 are handed over during the commit
        cap = w._weights_live
        first_go.set()               # the first stream is written, then the queue is served
        assert second_in.wait(30)    # ... before the second stream's write
        state = cap.state
        second_go.set()
        opt.step()
        for k in range(4, 7):
            forward_backward(k)
            opt.step()
        used[7] = {n: p.detach().clone() for n, p in model.named_parameters()}
    return state, used


def test_weights_handed_over_during_a_commit_are_read_before_it_ends(tmp_path, monkeypatch):
    # a commit of many streams takes tens of ms; the writer takes the data messages queued
    # meanwhile between two streams' writes (WriterLoop._serve_queue), so weights handed over
    # during a commit are read in place before the next update, not copied by the training
    # thread. They go to the next commit; every step stays exact.
    state, used = _train_through_a_held_commit(tmp_path, monkeypatch, "stats")
    assert state == pipeline.LiveCapture.DONE
    r = nl.open_run(tmp_path / "run")
    for name in used[0]:
        s = r[f"weights/{name}"]
        assert list(s.steps) == list(range(8))
        assert_stats_rows(s, {k: used[k][name] for k in range(8)})


def test_full_weights_taken_during_a_commit_are_written_after_its_rows(tmp_path, monkeypatch):
    # with full tensors written as soon as their block fills (one step a block here), a row
    # taken between two streams of a commit lands after the rows that commit is appending,
    # also for streams it has not appended yet (WriterLoop._length); every step stays exact
    from netlapse._record import writer_loop

    monkeypatch.setattr(writer_loop, "BATCH_BYTES", 1)
    state, used = _train_through_a_held_commit(tmp_path, monkeypatch, "full")
    assert state == pipeline.LiveCapture.DONE   # read, and its rows written, inside the commit
    _assert_weights_exact(tmp_path / "run", used[0], used, 8)
