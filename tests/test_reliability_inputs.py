"""Bad arguments fail at watch()/Run() time with the problem and the fix; NaN/Inf are data."""
import os
import subprocess
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import netlapse as nl
from netlapse import NetlapseError, RunExistsError
from netlapse.cli import main as cli
from netlapse.torch import watch


# --------------------------------------------------------------------------- Run()
def test_run_folder_checks(tmp_path):
    with nl.Run(tmp_path / "a") as run:
        run.record_array("weights/w", np.ones(3, np.float32))
    with pytest.raises(RunExistsError, match="resume=True to append to it, overwrite=True"):
        nl.Run(tmp_path / "a")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(RunExistsError, match="not an empty folder or a netlapse run"):
        nl.Run(tmp_path / "notes")
    with pytest.raises(RunExistsError, match="not an empty folder"):
        nl.Run(tmp_path / "notes", overwrite=True)    # overwrite never deletes a non-run folder
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"
    with pytest.raises(NetlapseError, match="holds no run to resume"):
        nl.Run(tmp_path / "b", resume=True)
    with pytest.raises(ValueError, match="not both"):
        nl.Run(tmp_path / "c", resume=True, overwrite=True)
    with pytest.raises(ValueError, match="on_error must be 'warn' or 'raise'"):
        nl.Run(tmp_path / "c", on_error="ignore")
    assert not (tmp_path / "c").exists()               # a refused Run leaves nothing behind


def test_run_folder_that_cannot_be_written(tmp_path):
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    with pytest.raises(NetlapseError, match=r"cannot write to .*file.txt/run.*Choose a folder"):
        nl.Run(afile / "run")
    with pytest.raises(RunExistsError, match="not an empty folder"):
        nl.Run(afile)


def test_run_on_a_read_only_filesystem(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only tmpfs needs root (chmod does not stop root)")
    mnt = tmp_path / "ro"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mnt)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        with pytest.raises(NetlapseError, match=r"cannot write to .*ro/run: Read-only file system"):
            nl.Run(mnt / "run")
    finally:
        subprocess.run(["umount", str(mnt)])


# --------------------------------------------------------------------------- watch()
def _model_and_opt():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16, 2))
    return model, torch.optim.SGD(model.parameters(), lr=0.1)


@pytest.mark.parametrize("kwargs, expect", [
    (dict(weights="exact"), r"weights='exact' is not a capture mode; use \"full\""),
    (dict(grads="Full"), r"grads='Full' is not a capture mode"),
    (dict(activations=1), r"activations=1 is not a capture mode"),
    (dict(every=-3), r"every=-3: it must be a positive integer"),
    (dict(every=2.5), r"every=2.5: it must be a positive integer"),
    (dict(every=True), r"every=True: it must be a positive integer"),
    (dict(include="fc*"), r"include pattern 'fc\*' matches no parameter or layer. Names look like"),
    (dict(include=["0.*", "conv*"]), r"include pattern 'conv\*' matches no"),
    (dict(include=3), r"include takes a glob pattern or a list"),
    (dict(probe=torch.randn(2, 1, 4, 4)),
     r"rejects the probe of shape \(2, 1, 4, 4\) at layer '0' \(input shapes \[\(2, 1, 4, 4\)\]\).*"
     r"Pass a probe batch shaped like the model's training input"),
    (dict(probe=torch.randn(2, 3, 5, 5)),
     r"rejects the probe of shape \(2, 3, 5, 5\) at layer '3' \(input shapes \[\(2, 36\)\]\)"),
    (dict(probe=[[0.0] * 4] * 2), r"the probe must be a torch.Tensor batch, got list"),
    (dict(probe=(torch.randn(2, 3, 4, 4), [0, 1])), r"the probe target must be a torch.Tensor"),
])
def test_watch_rejects_bad_arguments_before_any_hook(tmp_path, kwargs, expect):
    model, opt = _model_and_opt()
    with nl.Run(tmp_path / "r") as run:
        with pytest.raises(NetlapseError, match=expect):
            watch(model, run, opt, **kwargs)
        # nothing was left installed and nothing was recorded: the model can be watched again
        assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
        assert not opt._optimizer_step_pre_hooks and not opt._optimizer_step_post_hooks
        assert run.watchers == []
        watch(model, run, opt, probe=torch.randn(2, 3, 4, 4)).close()
    assert "inputs/probe" in nl.open_run(tmp_path / "r")


def test_watch_needs_an_open_run(tmp_path):
    model, opt = _model_and_opt()
    run = nl.Run(tmp_path / "r")
    run.close()
    with pytest.raises(NetlapseError, match="needs an open netlapse.Run"):
        watch(model, run, opt)
    with pytest.raises(NetlapseError, match="needs an open netlapse.Run"):
        watch(model, str(tmp_path / "r"), opt)
    with pytest.raises(NetlapseError, match="takes a torch.nn.Module, got function"):
        watch(lambda x: x, nl.Run(tmp_path / "s"), opt)


# --------------------------------------------------------------------------- NaN / Inf
def test_diverging_training_keeps_nan_and_inf_as_data(tmp_path, capsys):
    """A real training run that blows up: values stored as they are, counted, kept out of moments."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=30.0)     # far too large: diverges
    x = torch.randn(32, 4) * 10
    y = torch.randn(32, 1) * 1e3
    ref = {}
    taps = {}
    for name, m in model.named_children():
        m.register_forward_hook(lambda mod, i, o, name=name: taps.__setitem__(name, o.detach().clone()))
    with nl.Run(tmp_path / "r") as run:
        w = watch(model, run, opt, weights="full", grads="full", activations="full")
        ref[("weights", 0)] = {n: p.detach().clone() for n, p in model.named_parameters()}
        with warnings.catch_warnings():
            warnings.simplefilter("error")                  # netlapse must not warn about NaN
            for k in range(1, 16):
                opt.zero_grad()
                loss = (model(x) - y).pow(2).mean()
                loss.backward()
                ref[("grads", k)] = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
                ref[("activations", k)] = dict(taps)
                opt.step()
                ref[("weights", k)] = {n: p.detach().clone() for n, p in model.named_parameters()}
                run.log(loss=loss.item())
        w.close()
    r = nl.open_run(tmp_path / "r")
    first_bad = None
    n_bad = 0
    for name in r.streams():
        kind, sub = name.split("/", 1)
        if kind == "updates":   # stats of weight differences: checked in test_doctor_recording
            continue
        s = r[name]
        for i, k in enumerate(s.steps):
            want = ref[(kind, int(k))][sub].numpy()
            got = s.at(k)
            np.testing.assert_array_equal(got, want)          # NaN == NaN here: stored as it is
            a = want.astype(np.float64).ravel()
            fin = a[np.isfinite(a)]
            st = s.stats.iloc[i]
            assert st["nonfinite"] == a.size - fin.size
            if fin.size:
                assert st["mean"] == pytest.approx(fin.mean(), rel=1e-9, abs=1e-300)
                assert st["min"] == fin.min() and st["max"] == fin.max()
            assert s.histograms.counts[i].sum() == fin.size
            if fin.size < a.size:
                n_bad += 1
                first_bad = min(first_bad or (int(k), name), (int(k), name))
    assert n_bad > 5, "the run must really have diverged"
    assert cli(["info", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert f"first NaN/Inf at step {first_bad[0]} in {first_bad[1]}" in out
