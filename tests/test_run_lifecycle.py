"""How a run ends: a script that never calls close(), an exception, Ctrl-C (see _ending.py)."""
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import netlapse as nl  # noqa: E402
from netlapse import _ending  # noqa: E402
from netlapse.cli.info import describe_run  # noqa: E402

PROC = Path(__file__).parent / "lifecycle_proc.py"


@pytest.fixture(scope="module")
def scripts(tmp_path_factory):
    """Both scripts, run at once (each imports torch): mode -> (run path, result, its copies)."""
    tmp = tmp_path_factory.mktemp("lifecycle")
    procs = {mode: subprocess.Popen([sys.executable, str(PROC), str(tmp / mode), mode],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for mode in ("noclose", "interrupt")}
    done = {}
    for mode, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        path = str(tmp / mode)
        done[mode] = (path, subprocess.CompletedProcess(proc.args, proc.returncode, out, err),
                      dict(np.load(path + ".ref.npz", allow_pickle=False)))
    return done


def _assert_exact(r, ref, last_step):
    """Every recorded tensor equals the script's own copy; steps 0..last (grads 1..last)."""
    for name, values in ref.items():
        s = r[name]
        first = 0 if name.startswith("weights/") else 1
        assert list(s.steps) == list(range(first, last_step + 1)), name
        assert len(values) == last_step + 1 - first
        for k, v in zip(s.steps, values):
            np.testing.assert_array_equal(s.at(int(k)), v)


def test_script_ending_without_close_keeps_every_step(scripts):
    path, out, ref = scripts["noclose"]
    assert out.returncode == 0, out.stderr
    assert "netlapse" not in out.stderr, out.stderr   # no recording-failure warning
    r = nl.open_run(path)
    assert r.status == "finished"
    assert "closed at interpreter exit" in r.manifest["note"]
    assert "exception" not in r.manifest and "error" not in r.manifest
    _assert_exact(r, ref, 25)
    assert list(r.metrics["step"]) == list(range(1, 26))


def test_uncaught_ctrl_c_marks_interrupted_and_keeps_data(scripts):
    path, out, ref = scripts["interrupt"]
    assert out.returncode != 0
    assert Path(path + ".hook").read_text() == "KeyboardInterrupt"   # the user's hook still ran
    r = nl.open_run(path)
    assert r.status == "interrupted"
    assert r.manifest["exception"]["type"] == "KeyboardInterrupt"
    assert r.manifest["exception"]["step"] == 10
    _assert_exact(r, ref, 10)
    info = describe_run(path)
    assert "status   interrupted" in info and "KeyboardInterrupt" in info


def _train(model, opt, run, steps, fail_at=None):
    for step in range(steps):
        if step == fail_at:
            raise RuntimeError("boom in training")
        opt.zero_grad()
        model(torch.randn(4, 3)).pow(2).mean().backward()
        opt.step()


def test_exception_in_with_run_marks_failed_with_message_and_step(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = [[p.detach().clone() for p in model.parameters()]]
    opt.register_step_post_hook(lambda *a: seen.append([p.detach().clone() for p in model.parameters()]))
    previous, others_open = sys.excepthook, bool(_ending._OPEN)
    with pytest.raises(RuntimeError, match="boom"):
        with nl.Run(tmp_path / "run") as run:
            assert sys.excepthook is _ending._excepthook   # while open, uncaught errors are noted
            nl.watch(model, run, opt, weights="full")
            _train(model, opt, run, 10, fail_at=7)
    if not others_open:
        assert sys.excepthook is previous   # put back once no run is open
    r = nl.open_run(tmp_path / "run")
    assert r.status == "failed"
    exc = r.manifest["exception"]
    assert exc["type"] == "RuntimeError" and exc["message"] == "boom in training"
    assert exc["step"] == 7 and "_train" in exc["where"]
    assert "note" not in r.manifest
    s = r["weights/0.weight"]
    assert list(s.steps) == list(range(8))
    for k in range(8):
        np.testing.assert_array_equal(s.at(k), seen[k][0].numpy())


def test_exception_in_with_watch_marks_the_run_failed_at_close(tmp_path):
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    run = nl.Run(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        with nl.watch(model, run, opt):
            _train(model, opt, run, 3)
            raise KeyboardInterrupt
    run.close()
    r = nl.open_run(tmp_path / "run")
    assert r.status == "interrupted" and r.manifest["exception"]["step"] == 3
    assert list(r["grads/weight"].steps) == [1, 2, 3]


def test_closed_run_is_no_longer_tracked(tmp_path):
    run = nl.Run(tmp_path / "run")
    assert run in _ending._OPEN
    run.close()
    assert run not in _ending._OPEN
    run._pipeline.stall_timeout = 0.5   # flush on a closed run must not wait for a writer
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run.flush()
    assert nl.open_run(tmp_path / "run").status == "finished"
