"""The Keras Recorder records exactly what fit saw, on whichever backend KERAS_BACKEND names.

conftest.py makes it the torch backend; test_keras_on_the_jax_backend runs this file again
in a subprocess with KERAS_BACKEND=jax, and tests/test_keras_tensorflow.py with tensorflow.
"""
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import netlapse as nl
from netlapse import NetlapseError
from netlapse.keras import Recorder

BACKEND = keras.backend.backend()
ROOT = Path(__file__).resolve().parents[1]


def host(x):
    return np.array(keras.ops.convert_to_numpy(x))


class RecordingSGD(keras.optimizers.SGD):
    """SGD with momentum that keeps a copy of every gradient it is handed, by update number."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.received = {}

    def apply(self, grads, trainable_variables=None):      # torch, tensorflow
        step = int(host(self.iterations)) + 1
        self.received[step] = [host(g) for g in grads]
        return super().apply(grads, trainable_variables)

    def stateless_apply(self, optimizer_variables, grads, trainable_variables):   # jax
        idx = next(i for i, v in enumerate(self.variables) if v is self.iterations)
        self.received[int(np.asarray(optimizer_variables[idx])) + 1] = [np.array(g) for g in grads]
        return super().stateless_apply(optimizer_variables, grads, trainable_variables)


class GetWeights(keras.callbacks.Callback):
    """The independent reader: get_weights() at the start and after every batch."""

    def __init__(self):
        super().__init__()
        self.seen = {}

    def on_train_begin(self, logs=None):
        self.seen[0] = self.model.get_weights()

    def on_train_batch_end(self, batch, logs=None):
        self.seen[int(host(self.model.optimizer.iterations))] = self.model.get_weights()


def conv_model():
    keras.utils.set_random_seed(3)
    return keras.Sequential([
        keras.Input((6, 6, 1)),
        keras.layers.Conv2D(4, 3, padding="same", name="conv"),
        keras.layers.BatchNormalization(name="norm"),
        keras.layers.ReLU(name="act"),
        keras.layers.GlobalAveragePooling2D(name="pool"),
        keras.layers.Dense(3, name="fc"),
    ])


def data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6, 6, 1)).astype("float32"), rng.integers(0, 3, n)


def compile_(model, opt):
    # run_eagerly where the test's own optimizer must see concrete gradients
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy",
                  run_eagerly=BACKEND in ("jax", "tensorflow"))


def test_recorded_tensors_equal_get_weights_and_optimizer_inputs(tmp_path):
    model = conv_model()
    opt = RecordingSGD(learning_rate=0.05, momentum=0.9)
    compile_(model, opt)
    x, y = data()
    probe = x[:5]
    seen = GetWeights()
    with nl.Run(tmp_path / "run") as run:
        rec = Recorder(run, every=2, weights="full", grads="full", probe=(probe, y[:5]))
        model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, callbacks=[rec, seen])
    r = nl.open_run(tmp_path / "run")
    assert r.status == "finished"
    names = [f"{v.path.split('/')[-2]}/{v.name}" for v in model.weights]
    assert set(f"weights/{n}" for n in names) == set(r.streams("weights"))
    trainable = [f"{v.path.split('/')[-2]}/{v.name}" for v in model.trainable_weights]
    assert set(f"grads/{n}" for n in trainable) == set(r.streams("grads"))
    assert "weights/norm/moving_mean" in r.streams("weights")

    steps = list(range(0, 10, 2))
    for i, name in enumerate(names):
        s = r[f"weights/{name}"]
        assert list(s.steps) == steps
        for k in steps:
            np.testing.assert_array_equal(s.at(k), seen.seen[k][i], err_msg=f"{name} step {k}")
    for i, name in enumerate(trainable):
        s = r[f"grads/{name}"]
        assert list(s.steps) == steps[1:]
        for k in s.steps:
            np.testing.assert_array_equal(s.at(k), opt.received[k][i], err_msg=f"{name} step {k}")

    # probe: each layer's output on the probe, with the weights of that step
    check = keras.Model(model.inputs, [model.get_layer(n).output for n in ("conv", "norm", "act", "pool", "fc")])
    model.set_weights(seen.seen[8])
    for name, want in zip(("conv", "norm", "act", "pool", "fc"), check(probe, training=False)):
        np.testing.assert_allclose(r[f"probe/{name}"].at(8), host(want), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(r["inputs/probe_target"].at(0), y[:5])
    assert r.model["total_params"] == sum(int(np.prod(v.shape)) for v in model.weights)
    assert r.manifest["framework"]["backend"] == BACKEND
    assert list(r.metrics["step"]) == list(range(1, 10))


def test_training_activations_are_the_layer_outputs_of_each_batch(tmp_path):
    keras.utils.set_random_seed(5)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(5, activation="tanh", name="h"),
                              keras.layers.Dense(2, name="out")])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse",
                  run_eagerly=BACKEND == "tensorflow")
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(12, 3)).astype("float32"), rng.normal(size=(12, 2)).astype("float32")
    seen = GetWeights()
    with nl.Run(tmp_path / "r") as run:
        model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, validation_data=(x, y),
                  callbacks=[Recorder(run, every=2, weights=None, grads=None, activations="full"), seen])
    r = nl.open_run(tmp_path / "r")
    assert r.streams() == ["activations/h", "activations/out"]
    sub = keras.Model(model.inputs, [model.get_layer("h").output, model.get_layer("out").output])
    for k in (2, 4, 6):
        batch = x[((k - 1) % 3) * 4:((k - 1) % 3) * 4 + 4]
        model.set_weights(seen.seen[k - 1])        # the forward pass of update k used these
        want_h, want_out = (host(t) for t in sub(batch, training=True))
        np.testing.assert_allclose(r["activations/h"].at(k), want_h, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(r["activations/out"].at(k), want_out, rtol=1e-5, atol=1e-6)
    assert list(r["activations/h"].steps) == [2, 4, 6]   # validation passes are not recorded
    assert "val_loss" in r.metrics.columns


def test_fit_leaves_optimizer_and_layers_as_they_were_and_a_second_fit_continues(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="d")])
    opt = keras.optimizers.SGD(0.1)
    model.compile(optimizer=opt, loss="mse")
    x, y = np.ones((8, 2), "float32"), np.zeros((8, 1), "float32")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)   # compiled (traced) before recording
    with nl.Run(tmp_path / "r") as run:
        rec = Recorder(run, weights="full", grads="full", activations="stats", probe=x[:2])
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[rec])
        assert "apply" not in vars(opt) and "stateless_apply" not in vars(opt)
        assert "call" not in vars(model.get_layer("d"))
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[rec])
        model.fit(x, y, batch_size=4, epochs=1, verbose=0)   # unrecorded: the taps are gone
        rec.close()
    r = nl.open_run(tmp_path / "r")
    assert list(r["weights/d/kernel"].steps) == [2, 3, 4, 5, 6]   # steps = optimizer updates
    assert list(r["grads/d/kernel"].steps) == [3, 4, 5, 6]
    assert list(r["probe/d"].steps) == [2, 3, 4, 5, 6]
    if BACKEND != "tensorflow":   # compiled TF steps cannot hand activations out (a warning says so)
        assert list(r["activations/d"].steps) == [3, 4, 5, 6]
    assert list(r["inputs/probe"].steps) == [2]
    assert not np.array_equal(r["weights/d/kernel"].at(-1), host(model.get_layer("d").kernel))


@pytest.mark.skipif(BACKEND != "torch", reason="the custom loop uses torch autograd")
def test_custom_loop_with_record(tmp_path):
    import torch

    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="lin")])
    opt = keras.optimizers.SGD(0.2)
    opt.build(model.trainable_variables)
    x, y = torch.randn(6, 3), torch.randn(6, 2)
    grads_seen, weights_seen = {}, {}
    with nl.Run(tmp_path / "r") as run, Recorder(run, weights="full", grads="full", model=model,
                                             optimizer=opt) as rec:
        rec.record(0)
        weights_seen[0] = model.get_weights()
        for step in range(1, 4):
            model.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            grads = [v.value.grad.clone() for v in model.trainable_variables]
            opt.apply(grads, model.trainable_variables)
            grads_seen[step] = [g.numpy() for g in grads]
            rec.record(step)
            weights_seen[step] = model.get_weights()
    r = nl.open_run(tmp_path / "r")
    for k in range(4):
        np.testing.assert_array_equal(r["weights/lin/kernel"].at(k), weights_seen[k][0])
    for k in range(1, 4):
        np.testing.assert_array_equal(r["grads/lin/bias"].at(k), grads_seen[k][1])


def test_clear_errors(tmp_path):
    with nl.Run(tmp_path / "r") as run:
        with pytest.raises(NetlapseError, match="every=0"):
            Recorder(run, every=0)
        with pytest.raises(NetlapseError, match="capture mode"):
            Recorder(run, weights="all")
        unbuilt = keras.Sequential([keras.layers.Dense(2)])
        with pytest.raises(NetlapseError, match="not built"):
            Recorder(run, model=unbuilt).record(0)
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, name="dense_a")])
        with pytest.raises(NetlapseError, match="dense_a/kernel"):
            Recorder(run, include="dense_b*", model=model).record(0)
        with pytest.raises(NetlapseError, match="probe of shape"):
            Recorder(run, probe=np.ones((2, 7), "float32"), model=model).record(0)
        assert "call" not in vars(model.get_layer("dense_a"))     # a failed start leaves no tap
    with pytest.raises(NetlapseError, match="open netlapse.Run"):
        Recorder(run)


def test_import_without_keras_names_the_extra():
    code = ("import sys; sys.modules['keras'] = None\n"
            "try:\n    import netlapse.keras\nexcept ImportError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'netlapse[keras]'" in out.stdout


@pytest.mark.skipif(BACKEND != "torch", reason="runs once, from the default (torch) backend")
def test_keras_on_the_jax_backend():
    pytest.importorskip("jax")
    env = dict(os.environ, KERAS_BACKEND="jax",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:warnings",
                          str(Path(__file__)), "-k", "not on_the_jax_backend"],
                         env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-4000:]
    summary = out.stdout.strip().splitlines()[-1]
    assert "5 passed" in summary and "failed" not in summary, summary
