"""Keras and JAX recorders store what the doctor needs, like PyTorch: unit activity equal to
the one computed from the exact layer outputs, and updates equal to the stats of the exact
weight differences (both captured "full" by the same run and checked exact elsewhere)."""

import numpy as np
import pytest

import netlapse as nl
from netlapse._stats import summarize


def _check_run(path, act_stream, weight_stream, bounded):
    r = nl.open_run(path)
    acts = r[act_stream]
    assert acts.meta["units"]["axis"] == len(acts.shape) - 1
    vals = acts.history()
    units = acts.units("active")
    np.testing.assert_allclose(units, (vals != 0).mean(axis=tuple(range(1, vals.ndim - 1))), atol=1e-6)
    if bounded:
        sat = (np.abs(vals) >= 0.97).mean(axis=tuple(range(1, vals.ndim - 1)))
        np.testing.assert_allclose(acts.units("saturated"), sat, atol=1e-6)
    w = r[weight_stream]
    up = r["updates/" + weight_stream.split("/", 1)[1]]
    assert len(up.steps) >= 3
    for i, k in enumerate(up.steps):
        delta = w.at(int(k)) - w.at(int(k) - 1)
        np.testing.assert_allclose(up.stats_array[i], summarize(delta)[0], rtol=1e-5, atol=1e-9)
    return r


def test_keras_records_unit_activity_and_updates(tmp_path):
    keras = pytest.importorskip("keras")
    from netlapse.keras import Recorder

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(6, activation="tanh"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x = np.random.default_rng(0).normal(size=(64, 5)).astype("float32") * 3
    y = x[:, :1] ** 2
    with nl.Run(tmp_path / "k") as run:
        model.fit(x, y, batch_size=16, epochs=1, verbose=0,
                  callbacks=[Recorder(run, weights="full", activations="full")])
    names = [l.name for l in model.layers]
    r = _check_run(tmp_path / "k", f"activations/{names[1]}", f"weights/{names[0]}/kernel", True)
    assert r[f"activations/{names[0]}"].meta["units"]["act"] == "relu"


def test_jax_records_unit_activity_and_updates(tmp_path):
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from netlapse.jax import record

    key = jax.random.key(0)
    params = {"w1": jax.random.normal(key, (4, 8)), "w2": jax.random.normal(key, (8, 1))}
    x = jax.random.normal(jax.random.key(1), (16, 4)) * 2

    def forward(p):
        h = jnp.tanh(x @ p["w1"])
        return h, jnp.mean((h @ p["w2"]) ** 2)

    with nl.Run(tmp_path / "j") as run:
        record(run, 0, params=params, capture="full")
        for step in range(1, 5):
            h = forward(params)[0]
            grads = jax.grad(lambda p: forward(p)[1])(params)
            params = jax.tree.map(lambda p, d: p - 0.1 * d, params, grads)
            record(run, step, params=params, grads=grads, activations={"block": {"tanh": h}},
                   capture="full")
    _check_run(tmp_path / "j", "activations/block/tanh", "weights/w1", True)
