import subprocess
import sys

import numpy as np

import netlapse as nl
from netlapse.cli import main


def test_info_table(tmp_path, capsys):
    with nl.Run(tmp_path / "r", config={"lr": 0.1}) as run:
        run.record_array("weights/fc.weight", np.ones((3, 4), np.float32))
        run.step = 1
        run.record_array("weights/fc.weight", np.array([[np.nan] * 4] * 3, np.float32))
        run.log(loss=2.0)
    assert main(["info", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "status   finished" in out
    assert "weights/fc.weight" in out and "3x4" in out and "0..1 (2)" in out
    assert "first NaN/Inf at step 1 in weights/fc.weight" in out
    assert "loss: first 2" in out


def test_info_errors_exit_nonzero(tmp_path):
    out = subprocess.run([sys.executable, "-m", "netlapse", "info", str(tmp_path)],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert "is not a netlapse run" in out.stderr


def test_help_explains():
    out = subprocess.run([sys.executable, "-m", "netlapse", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "demo" in out.stdout and "info" in out.stdout
