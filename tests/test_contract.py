"""One recording contract for every framework.

The same network, with the same initial weights copied in, trained with plain SGD on the same
batches (tests/contract_trainers.py), is recorded by the PyTorch adapter, the Keras Recorder on
the torch backend and on the JAX backend (a subprocess: Keras picks its backend once per
process), the JAX pytree helper and the Flax NNX helper. Every recorded weight, gradient and
probe output must match a float64 reference computed by hand at every step, and so each other,
and the reader must give them back through the same calls.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import contract_trainers as ct
import netlapse as nl

ROOT = Path(__file__).resolve().parents[1]

# canonical name -> (stream suffix, to-canonical-layout); torch Linear weights are (out, in)
T = np.transpose
IDENT = np.asarray
NAMES = {
    "torch": {"l1/kernel": ("0.weight", T), "l1/bias": ("0.bias", IDENT),
              "l2/kernel": ("2.weight", T), "l2/bias": ("2.bias", IDENT)},
    "keras": {k: (k, IDENT) for k in ct.CANON},
    "jax": {k: (k, IDENT) for k in ct.CANON},
    "nnx": {k: (k, IDENT) for k in ct.CANON},
}
# canonical probe output -> stream suffix (Keras's Dense applies tanh inside layer l1)
PROBES = {"torch": {"pre": "0", "hidden": "1", "out": "2"},
          "keras": {"hidden": "l1", "out": "l2"},
          "jax": {},
          "nnx": {"pre": "l1", "out": "l2"}}
CASES = {"torch": ("torch", None), "keras-torch": ("keras", "torch"),
         "keras-jax": ("keras", "jax"), "jax": ("jax", None), "flax-nnx": ("nnx", None)}


def train_in_subprocess(trainer: str, backend: str, path: Path) -> None:
    env = dict(os.environ, KERAS_BACKEND=backend,
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "contract_trainers.py"), trainer, str(path)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]


@pytest.fixture(scope="module")
def reference():
    return ct.reference()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Train each case once (on first use) and hand back its run folder."""
    cache = {}

    def get(case: str) -> Path:
        if case not in cache:
            trainer, backend = CASES[case]
            path = tmp_path_factory.mktemp(case) / "run"
            if trainer == "keras":
                import keras

                if keras.backend.backend() == backend:
                    ct.train_keras(path)
                else:
                    train_in_subprocess(trainer, backend, path)
            else:
                ct.TRAINERS[trainer](path)
            cache[case] = path
        return cache[case]

    return get


def canonical(run, trainer: str, kind: str, canon: str):
    stream, layout = NAMES[trainer][canon]
    s = run[f"{kind}/{stream}"]
    return s, layout


@pytest.mark.parametrize("case", list(CASES))
def test_recording_matches_the_reference_at_every_step(case, recorded, reference):
    assert_matches_reference(nl.open_run(recorded(case)), CASES[case][0], case, reference)


def assert_matches_reference(r, trainer: str, case: str, reference) -> None:
    """The whole contract for one recorded run (also used by test_keras_tensorflow.py)."""
    ref_w, ref_g, ref_p = reference
    assert r.status == "finished"
    assert r.model["total_params"] == 26
    weight_steps, grad_steps = list(range(ct.STEPS + 1)), list(range(1, ct.STEPS + 1))
    for canon in ct.CANON:
        for kind, ref, steps in (("weights", ref_w, weight_steps), ("grads", ref_g, grad_steps)):
            s, layout = canonical(r, trainer, kind, canon)
            assert (s.kind, s.capture) == (kind, "full")
            assert list(s.steps) == steps, (case, kind, canon)
            assert layout(s.at(-1)).shape == ref[steps[-1]][canon].shape
            history = s.history()
            assert history.shape == (len(steps), *s.shape)
            for i, k in enumerate(steps):
                np.testing.assert_allclose(layout(s.at(k)), ref[k][canon], rtol=2e-5, atol=2e-6,
                                           err_msg=f"{case} {kind}/{canon} step {k}")
                np.testing.assert_array_equal(history[i], s.at(k))
            norms = s.stats["norm"].to_numpy()
            np.testing.assert_allclose(norms, [np.linalg.norm(ref[k][canon]) for k in steps], rtol=2e-5)
    for canon, stream in PROBES[trainer].items():
        s = r[f"probe/{stream}"]
        assert list(s.steps) == weight_steps
        for k in weight_steps:
            np.testing.assert_allclose(s.at(k), ref_p[k][canon], rtol=2e-5, atol=2e-6,
                                       err_msg=f"{case} probe/{stream} step {k}")
    if PROBES[trainer]:
        np.testing.assert_array_equal(r["inputs/probe"].at(0), ct.data()[3])


def test_every_framework_agrees_with_pytorch(recorded):
    """Not only with the reference: the frameworks' own float32 results agree with each other."""
    base = nl.open_run(recorded("torch"))
    for case, (trainer, _) in CASES.items():
        if case == "torch":
            continue
        r = nl.open_run(recorded(case))
        for canon in ct.CANON:
            for kind in ("weights", "grads"):
                mine, layout = canonical(r, trainer, kind, canon)
                theirs, tlayout = canonical(base, "torch", kind, canon)
                assert list(mine.steps) == list(theirs.steps)
                np.testing.assert_allclose(np.stack([layout(a) for a in mine.history()]),
                                           np.stack([tlayout(a) for a in theirs.history()]),
                                           rtol=1e-5, atol=1e-6, err_msg=f"{case} {kind}/{canon}")
        assert list(r.metrics["step"]) == list(range(1, ct.STEPS + 1))
        losses = base.metrics["loss"].to_numpy()
        if trainer == "keras":   # fit's batch logs hold the running mean over the epoch
            per_epoch = losses.reshape(ct.EPOCHS, -1)
            losses = (np.cumsum(per_epoch, 1) / np.arange(1, per_epoch.shape[1] + 1)).ravel()
        np.testing.assert_allclose(r.metrics["loss"], losses, rtol=1e-5)
