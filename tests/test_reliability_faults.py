"""Real filesystem faults while training: a full disk, a disk turned read-only, a disk that hangs.

The faults are real: a 2 MiB tmpfs that fills up, the same tmpfs remounted read-only mid-run, and
an ext4 loop image frozen with fsfreeze. They need root (mount); otherwise they are skipped with
the reason.
"""
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import netlapse as nl
from netlapse import RecordingError
from netlapse.torch import watch


def _writer_failed(run) -> None:
    """Wait until the run's writer thread has failed (an event, not a sleep)."""
    assert run._pipeline._loop.failed.wait(120), "the writer never failed"


def _writer_stopped(run) -> None:
    """Wait until the run's writer thread has ended (after close gave up on it)."""
    run._pipeline._thread.join(120)
    assert not run._pipeline.writer_alive()


def _sh(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def _need_root():
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root (run the suite as root to test this)")


@pytest.fixture
def small_fs(tmp_path):
    """A 2 MiB tmpfs mounted for the test, unmounted after."""
    _need_root()
    mnt = tmp_path / "small"
    mnt.mkdir()
    out = _sh("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt))
    if out.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {out.stderr.strip()}")
    try:
        yield mnt
    finally:
        if _sh("umount", str(mnt)).returncode:
            _sh("umount", "-l", str(mnt))


@pytest.fixture
def freezable_fs(tmp_path):
    """An 8 MiB ext4 loop image (fsfreeze works on ext4, not tmpfs); always thawed and unmounted."""
    _need_root()
    if not (shutil.which("mkfs.ext4") and shutil.which("fsfreeze")):
        pytest.skip("needs mkfs.ext4 and fsfreeze (util-linux, e2fsprogs)")
    img, mnt = tmp_path / "fs.img", tmp_path / "frozen"
    mnt.mkdir()
    with open(img, "wb") as f:
        f.truncate(8 << 20)
    if _sh("mkfs.ext4", "-q", "-F", str(img)).returncode:
        pytest.skip("mkfs.ext4 failed")
    out = _sh("mount", "-o", "loop", str(img), str(mnt))
    if out.returncode:
        pytest.skip(f"cannot mount a loop device here: {out.stderr.strip()}")
    try:
        yield mnt
    finally:
        _sh("fsfreeze", "-u", str(mnt))
        time.sleep(0.2)
        if _sh("umount", str(mnt)).returncode:
            _sh("umount", "-l", str(mnt))


def _train(model, run, steps, on_step=None):
    """A real training loop; returns the weights after each step, taken independently."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(64, model.in_features)
    ref = {}
    w = watch(model, run, opt, weights="full", grads="stats")
    ref[0] = model.weight.detach().clone().numpy()
    losses = []
    for k in range(1, steps + 1):
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        loss.backward()
        opt.step()
        ref[k] = model.weight.detach().clone().numpy()
        losses.append(loss.item())
        run.log(loss=loss.item())
        if on_step:
            on_step(k)
    w.close()
    return ref, losses


def _check_saved(path, ref, losses):
    r = nl.open_run(path)
    ws = r["weights/weight"]
    assert len(ws.steps) > 0, "steps before the disk filled must be saved"
    assert list(ws.steps) == list(range(len(ws.steps)))
    for k in ws.steps:
        np.testing.assert_array_equal(ws.at(k), ref[int(k)])
    m = r.metrics   # the disk may fill before the first metric row is committed: then none
    saved = m["loss"].to_numpy() if "loss" in m else np.zeros(0)
    assert len(saved) == len(m)
    np.testing.assert_array_equal(saved, np.asarray(losses)[m["step"].to_numpy() - 1])
    return r


def test_full_disk_warns_once_and_training_goes_on(small_fs):
    torch.manual_seed(0)
    model = nn.Linear(256, 256)            # 256 KiB of weights a step: the 2 MiB disk fills fast
    path = small_fs / "run"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = nl.Run(path, flush_every=0.01)
        # a commit while the disk has room, so some steps are saved whatever the timing
        ref, losses = _train(model, run, 40, on_step=lambda k: k == 2 and run.flush())
        run.close()
    ours = [w for w in caught if "netlapse" in str(w.message)]
    assert len(ours) == 1, [str(w.message) for w in ours]
    msg = str(ours[0].message)
    assert len(losses) == 40, "training went on to the end"
    r = _check_saved(path, ref, losses)
    assert str(path) in msg and "No space left on device" in msg
    assert f"last step saved is {r.last_step()};" in msg
    assert r.status == "failed" and "No space left" in r.manifest["error"]
    assert len(r["weights/weight"].steps) < 41
    # no temporary files left behind by the failed writes
    assert not [p for p in path.rglob("*") if p.name.endswith((".tmp", ".partial"))]


def test_full_disk_after_resume_names_the_step_saved_before(small_fs):
    # a resumed run whose disk fills before its first commit: the warning names the last step
    # of the earlier session (on disk and intact), not "no step was saved"
    torch.manual_seed(3)
    model = nn.Linear(256, 256)
    path = small_fs / "run"
    run = nl.Run(path)
    _train(model, run, 2)
    run.close()
    before = nl.open_run(path).last_step()
    assert before == 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = nl.Run(path, resume=True, flush_every=3600.0)   # no commit until the disk is full
        _train(model, run, 40)
        run.close()
    ours = [str(w.message) for w in caught if "netlapse" in str(w.message)]
    assert len(ours) == 1, ours
    assert "No space left on device" in ours[0]
    assert f"last step saved is {before};" in ours[0], ours[0]
    r = nl.open_run(path)
    assert r.last_step() == before and r.status == "failed"


def test_full_disk_raise_mode(small_fs):
    torch.manual_seed(1)
    model = nn.Linear(256, 256)
    path = small_fs / "run"
    run = nl.Run(path, flush_every=0.01, on_error="raise")
    with pytest.raises(RecordingError, match="No space left on device") as info:
        _train(model, run, 200, on_step=lambda k: k == 2 and run.flush())
    assert str(path) in str(info.value) and "last step saved is" in str(info.value)
    watchers = list(run.watchers)
    for w in watchers:
        w.close()
    run.close()                            # reported once: close does not raise it again
    r = nl.open_run(path)
    saved = r["weights/weight"].steps
    assert 0 < len(saved) < 200 and r.status == "failed"
    assert f"last step saved is {r.last_step()};" in str(info.value)


def test_disk_turning_read_only_mid_run_surfaces_at_next_step(small_fs):
    """The worker's exception reaches the training thread at a following step, not swallowed."""
    path = small_fs / "run"
    run = nl.Run(path, flush_every=0.01, on_error="raise")
    for k in range(5):
        run.step = k
        run.record_array("weights/w", np.full(100, k, np.float32))
    run.flush()
    assert _sh("mount", "-o", "remount,ro", str(small_fs)).returncode == 0
    try:
        run.step = 5
        run.record_array("weights/w", np.full(100, 5, np.float32))   # its commit fails
        _writer_failed(run)
        with pytest.raises(RecordingError, match="Read-only file system"):
            run.step = 6
            run.record_array("weights/w", np.full(100, 6, np.float32))
        t0 = time.monotonic()
        run.close()
        assert time.monotonic() - t0 < 30      # a hang would take the 60 s default timeout
    finally:
        _sh("mount", "-o", "remount,rw", str(small_fs))
    r = nl.open_run(path)
    s = r["weights/w"]
    assert list(s.steps[:5]) == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(s.history()[:, 0], s.steps.astype(np.float32))


def test_failure_in_the_final_flush_reaches_close(small_fs):
    path = small_fs / "run"
    run = nl.Run(path, flush_every=3600)   # nothing is written until close()
    for k in range(3):
        run.step = k
        run.record_array("weights/w", np.full(10, k, np.float32))
    run.flush()
    run.step = 3
    run.record_array("weights/w", np.full(10, 3, np.float32))
    assert _sh("mount", "-o", "remount,ro", str(small_fs)).returncode == 0
    try:
        with pytest.warns(RuntimeWarning, match=r"Read-only file system.*last step saved is 2;"):
            run.close()
    finally:
        _sh("mount", "-o", "remount,rw", str(small_fs))
    assert list(nl.open_run(path)["weights/w"].steps) == [0, 1, 2]


def test_close_never_hangs_on_a_frozen_disk(freezable_fs):
    path = freezable_fs / "run"
    run = nl.Run(path, flush_every=0.01)
    for k in range(5):
        run.step = k
        run.record_array("weights/w", np.full((64, 64), k, np.float32))
    run.flush()
    assert _sh("fsfreeze", "-f", str(freezable_fs)).returncode == 0
    try:
        for k in range(5, 8):              # buffers are free: these steps do not block training
            run.step = k
            run.record_array("weights/w", np.full((64, 64), k, np.float32))
        t0 = time.monotonic()
        with pytest.warns(RuntimeWarning) as caught:
            run.close(timeout=1.0)
        took = time.monotonic() - t0
    finally:
        _sh("fsfreeze", "-u", str(freezable_fs))
    msg = str(caught[0].message)
    assert took < 30, f"close took {took:.1f} s"   # the default timeout is 60 s
    assert "made no progress for 1 s" in msg and "weights/w steps 5..7 (3)" in msg
    _writer_stopped(run)                   # the thawed writer gave up without committing
    r = nl.open_run(path)
    assert list(r["weights/w"].steps) == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(r["weights/w"].history()[:, 0, 0], np.arange(5, dtype=np.float32))


def test_training_never_blocks_forever_on_a_frozen_disk(freezable_fs):
    """With every buffer in flight and the writer stuck, a step waits at most the stall limit."""
    path = freezable_fs / "run"
    run = nl.Run(path, flush_every=0.01)
    run._pipeline.stall_timeout = 1.0      # the default is 300 s
    run.step = 0
    run.record_array("weights/w", np.zeros(1000, np.float32))
    run.flush()
    assert _sh("fsfreeze", "-f", str(freezable_fs)).returncode == 0
    try:
        t0 = time.monotonic()
        with pytest.warns(RuntimeWarning, match="made no progress"):
            for k in range(1, 400):        # 4 buffers: training waits once the writer is stuck
                run.step = k
                run.record_array("weights/w", np.full(1000, k, np.float32))
        assert time.monotonic() - t0 < 60      # the default stall limit is 300 s
        run.close(timeout=1.0)             # already reported: no second warning, no hang
    finally:
        _sh("fsfreeze", "-u", str(freezable_fs))
    _writer_stopped(run)
    assert nl.open_run(path)["weights/w"].steps[0] == 0


@pytest.mark.parametrize("on_error", ["warn", "raise"])
def test_worker_exception_reaches_the_next_step(tmp_path, on_error):
    """No root needed: a new stream's folder is blocked by a file, so the writer thread fails."""
    path = tmp_path / "run"
    run = nl.Run(path, flush_every=0.01, on_error=on_error)
    for k in range(4):
        run.step = k
        run.record_array("weights/w", np.full(8, k, np.float32))
    run.flush()
    (path / "data" / "weights" / "late").write_text("not a folder")
    run.step = 4
    run.record_array("weights/late", np.ones(3, np.float32))
    run.record_array("weights/w", np.full(8, 4, np.float32))
    _writer_failed(run)                    # its next commit fails on the blocked folder
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            for k in range(5, 8):          # training goes on; the failure shows at the next step
                run.step = k
                run.record_array("weights/w", np.full(8, k, np.float32))
            raised = None
        except RecordingError as exc:
            raised = exc
        run.close()
    ours = [str(w.message) for w in caught if "netlapse" in str(w.message)]
    if on_error == "raise":
        assert raised is not None and not ours and run.step == 5   # raised at the next step
        msg = str(raised)
    else:
        assert raised is None and len(ours) == 1
        msg = ours[0]
    assert str(path) in msg and "last step saved is 3;" in msg
    r = nl.open_run(path)
    assert r.status == "failed" and list(r["weights/w"].steps) == [0, 1, 2, 3]
    out = subprocess.run([sys.executable, "-m", "netlapse", "info", str(path)],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "status   failed" in out.stdout
    assert "error    recording stopped:" in out.stdout
