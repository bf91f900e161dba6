"""The Keras Recorder on the TensorFlow backend. Needs TensorFlow, which CI does not install:

    pip install tensorflow-cpu && pytest -m tensorflow

Each test runs in a subprocess with KERAS_BACKEND=tensorflow (the backend is fixed per process).
"""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import contract_trainers as ct
import netlapse as nl
from test_contract import assert_matches_reference

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.tensorflow,
              pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                                 reason="TensorFlow is not installed: pip install tensorflow-cpu; "
                                        "pytest -m tensorflow")]


def _env():
    return dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3",
                PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


def test_contract_on_the_tensorflow_backend(tmp_path):
    """Compiled (tf.function) fit: gradients come through host-side shadow variables."""
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "contract_trainers.py"), "keras",
                          str(tmp_path / "run")], env=_env(), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert_matches_reference(nl.open_run(tmp_path / "run"), "keras", "keras-tensorflow", ct.reference())


def test_keras_suite_on_the_tensorflow_backend():
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:warnings",
                          str(ROOT / "tests" / "test_keras.py")],
                         env=_env(), capture_output=True, text=True, timeout=600, cwd=ROOT)
    summary = out.stdout.strip().splitlines()[-1]
    assert out.returncode == 0 and "5 passed" in summary, out.stdout[-4000:]
