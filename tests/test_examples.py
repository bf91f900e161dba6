"""The framework examples run offline and record what they claim (seeds 000 and 003)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import netlapse as nl

ROOT = Path(__file__).resolve().parents[1]


def run_example(name, *args):
    env = dict(os.environ, KERAS_BACKEND="torch",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, str(ROOT / "examples" / name), *args], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_keras_single_neuron_weights_approach_one(tmp_path):
    out = run_example("keras_single_neuron.py", "--out", str(tmp_path / "run"))
    r = nl.open_run(tmp_path / "run")
    kernel = r["weights/neuron/kernel"]
    assert list(kernel.steps) == list(range(161))          # 10 epochs x 16 batches, and step 0
    np.testing.assert_allclose(kernel.at(-1)[:, 0], [1.0, 1.0], atol=0.01)
    assert abs(kernel.at(0)[:, 0] - 1).max() > 0.3             # it started elsewhere
    assert list(r["grads/neuron/kernel"].steps) == list(range(1, 161))
    assert r.config["seed"] == "000"
    w = kernel.at(-1)[:, 0]
    assert f"w = [{w[0]:.3f}, {w[1]:.3f}]" in out


def test_jax_mnist_softmax_learns_digit_maps(tmp_path):
    pytest.importorskip("optax")
    out = run_example("jax_mnist_softmax.py", "--out", str(tmp_path / "run"), "--steps", "40")
    r = nl.open_run(tmp_path / "run")
    w = r["weights/W"]
    assert list(w.steps) == list(range(0, 41, 5)) and w.shape == (784, 10)
    assert not w.at(0).any() and w.at(-1).std() > 0
    loss = r.metrics["loss"].to_numpy()
    assert len(loss) == 40 and loss[-5:].mean() < loss[:5].mean() - 0.5
    assert r["inputs/probe"].shape == (10, 28, 28)
    assert "accuracy on all 5000 digits" in out
