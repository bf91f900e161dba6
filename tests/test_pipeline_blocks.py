"""Full tensors bigger than a batch: written block by block ahead of their commit, all exact."""

import threading

import numpy as np

import netlapse as nl
from netlapse._record import writer_loop
from netlapse._stats import summarize


def test_full_stream_spanning_several_blocks_is_exact(tmp_path, monkeypatch):
    # a block of 5 steps of a 256x256 float32 tensor: 23 steps fill it 4 times and leave 3
    monkeypatch.setattr(writer_loop, "BATCH_BYTES", 5 * 256 * 256 * 4)
    rng = np.random.default_rng(0)
    sent = [rng.normal(size=(256, 256)).astype(np.float32) for _ in range(23)]
    with nl.Run(tmp_path / "r", flush_every=60.0) as run:
        for t, x in enumerate(sent):
            run.record_array("weights/w", x, step=t)
            if t == 11:
                run.flush()   # a commit in the middle of a block
    r = nl.open_run(tmp_path / "r")
    s = r["weights/w"]
    assert list(s.steps) == list(range(23))
    np.testing.assert_array_equal(s.history(), np.stack(sent))
    for t in (0, 4, 5, 11, 12, 22):
        np.testing.assert_array_equal(s.at(t), sent[t])
        stats, hist = summarize(sent[t])
        np.testing.assert_array_equal(s.stats_array[t], stats)
        np.testing.assert_array_equal(s.histograms.counts[t], hist)


def test_resume_appends_after_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(writer_loop, "BATCH_BYTES", 4 * 64 * 64 * 8)
    rng = np.random.default_rng(1)
    sent = [rng.normal(size=(64, 64)) for _ in range(19)]
    with nl.Run(tmp_path / "r") as run:
        for t in range(10):
            run.record_array("probe/x", sent[t], step=t)
    with nl.Run(tmp_path / "r", resume=True) as run:
        for t in range(10, 19):
            run.record_array("probe/x", sent[t], step=t)
    s = nl.open_run(tmp_path / "r")["probe/x"]
    assert list(s.steps) == list(range(19))
    np.testing.assert_array_equal(s.history(), np.stack(sent))


def test_drain_waits_for_the_writer_to_take_everything_without_a_commit(tmp_path):
    # benchmarks/_paired.py charges the writer's work to the steps that made it with drain()
    sent = [np.full((4, 4), float(t), np.float32) for t in range(6)]
    with nl.Run(tmp_path / "r", flush_every=3600.0) as run:
        for t in range(3):
            run.record_array("weights/w", sent[t], step=t)
        run.flush()
        for t in range(3, 6):
            run.record_array("weights/w", sent[t], step=t)
        run._pipeline.drain()
        assert run._pipeline._loop.pending_steps() == {"weights/w": [3, 4, 5]}   # taken
        assert list(nl.open_run(tmp_path / "r")["weights/w"].steps) == [0, 1, 2]   # not committed
    s = nl.open_run(tmp_path / "r")["weights/w"]
    np.testing.assert_array_equal(s.history(), np.stack(sent))


def test_logged_metrics_reach_the_writer_without_waking_it_and_every_flush_commits_them(tmp_path):
    # run.log puts nothing on the queue (a wake-up a step costs small models ~0.5 ms); the
    # writer takes the metrics with its next message, and a flush or close commits them
    with nl.Run(tmp_path / "r", flush_every=3600.0) as run:
        run.log(0, loss=2.0)
        run.log(1, loss=1.5, acc=0.25)
        assert run._pipeline._queue.qsize() == 0
        run._pipeline.drain()   # any message: the writer takes what was logged before it
        assert run._pipeline._loop.pending_steps() == {"metrics": [0, 1]}
        run.flush()
        m = nl.open_run(tmp_path / "r").metrics
        assert list(m["step"]) == [0, 1] and list(m["loss"]) == [2.0, 1.5]
        run.log(2, loss=1.0)   # logged last, committed by close
    m = nl.open_run(tmp_path / "r").metrics
    assert list(m["step"]) == [0, 1, 2] and list(m["loss"]) == [2.0, 1.5, 1.0]
    np.testing.assert_array_equal(m["acc"], [np.nan, 0.25, np.nan])


def test_metrics_wait_for_the_captures_queued_before_them(tmp_path, monkeypatch):
    # a commit is a consistent cut: a step's metrics are never batched ahead of that step's
    # captures still on the queue (else a full disk reports a last step that disagrees with
    # what open_run finds). The writer is held on step 0 while steps 1 and 2 are queued.
    held, release = threading.Event(), threading.Event()
    seen = {}
    take = writer_loop.WriterLoop._take

    def holding_take(self, item):
        seen[item.step] = list(self._metric_steps)
        if item.step == 0:
            held.set()
            assert release.wait(30)
        return take(self, item)

    monkeypatch.setattr(writer_loop.WriterLoop, "_take", holding_take)
    x = np.ones((8, 8), np.float32)
    with nl.Run(tmp_path / "r", flush_every=3600.0) as run:
        run.record_array("weights/w", x, step=0)
        assert held.wait(30)
        run.log(0, loss=3.0)
        run.record_array("weights/w", x, step=1)
        run.log(1, loss=2.0)
        run.record_array("weights/w", x, step=2)
        run.log(2, loss=1.0)
        release.set()
        run.flush()
    assert seen == {0: [], 1: [0, 1], 2: [0, 1, 2]}
    assert run._pipeline.last_committed_step == {"weights/w": 2, "metrics": 2}
    assert nl.open_run(tmp_path / "r").last_step() == 2


def test_a_capture_queued_quietly_is_taken_when_the_writer_next_wakes_or_times_out(tmp_path):
    # submit_live(wake=False) queues without waking the writer (netlapse/torch.py hands over
    # the grads that way when the weights' hand-over follows); with nothing after it, the
    # writer's own get() timeout still takes it, in order, and a flush commits it
    from netlapse._record.pipeline import Group, StreamSpec

    group = Group([StreamSpec("grads/g", {"kind": "grads", "capture": "stats"}, (4, 4),
                              np.dtype(np.float32), False)])
    arrays = [np.arange(16, dtype=np.float32).reshape(4, 4)]
    with nl.Run(tmp_path / "r", flush_every=0.05) as run:
        pipe = run._pipeline
        woke, quiet = [], []
        put, put_quiet = pipe._queue.put, pipe._queue.put_quiet
        pipe._queue.put = lambda item: (woke.append(item), put(item))
        pipe._queue.put_quiet = lambda item: (quiet.append(item), put_quiet(item))
        cap = pipe.submit_live(group, 3, arrays, lambda views: None, lambda: True, wake=False)
        with cap.cond:   # no other message: taken by the writer's get() timing out
            assert cap.cond.wait_for(lambda: cap.state == cap.DONE, timeout=30)
        run.log(3, loss=0.5)
        assert (len(woke), len(quiet)) == (0, 1)
    s = nl.open_run(tmp_path / "r")["grads/g"]
    assert list(s.steps) == [3]
    np.testing.assert_array_equal(s.stats_array[0], summarize(arrays[0])[0])
