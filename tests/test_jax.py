"""The JAX helpers record pytrees and Flax NNX models exactly, under names from the key paths."""
import subprocess
import sys
from typing import NamedTuple

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

import netlapse as nl  # noqa: E402
from netlapse import NetlapseError  # noqa: E402
from netlapse.jax import flatten, record, record_nnx  # noqa: E402


class Adam(NamedTuple):
    mu: dict
    count: jax.Array


def test_pytree_names_follow_key_paths_in_a_fixed_order(tmp_path):
    key = jax.random.key(0)
    params = {"enc": {"w": jax.random.normal(key, (3, 2)), "b": jnp.zeros(2)},
              "layers": [jnp.ones((2, 2)), (jnp.arange(3.0), None)],
              "opt": Adam(mu={"m": jnp.full((2,), 0.5)}, count=jnp.array(3.0))}
    names = [n for n, _ in flatten(params)]
    assert names == ["enc/b", "enc/w", "layers/0", "layers/1/0", "opt/mu/m", "opt/count"]
    with nl.Run(tmp_path / "r") as run:
        assert record(run, 0, params=params, capture="full")
        assert run.step == 0
    r = nl.open_run(tmp_path / "r")
    assert r.streams("weights") == sorted(f"weights/{n}" for n in names)
    for name, leaf in flatten(params):
        np.testing.assert_array_equal(r[f"weights/{name}"].at(0), np.asarray(leaf))
    assert r.model["total_params"] == 6 + 2 + 4 + 3 + 2 + 1


def test_training_loop_stats_every_and_include(tmp_path):
    rng = np.random.default_rng(0)
    x, y = jnp.asarray(rng.normal(size=(20, 4))), jnp.asarray(rng.normal(size=(20,)))
    params = {"w": jnp.zeros(4), "b": jnp.zeros(())}
    grad = jax.jit(jax.grad(lambda p: jnp.mean((x @ p["w"] + p["b"] - y) ** 2)))
    kept_w, kept_g = {0: params}, {}
    with nl.Run(tmp_path / "r") as run:
        record(run, 0, params=params, every=3, include="w")
        for step in range(1, 10):
            g = grad(params)
            params = jax.tree.map(lambda p, d: p - 0.1 * d, params, g)
            kept_w[step], kept_g[step] = params, g
            done = record(run, step, params=params, grads=g, every=3, include="w")
            assert done == (step % 3 == 0)
    r = nl.open_run(tmp_path / "r")
    assert r.streams() == ["grads/w", "updates/w", "weights/w"]   # updates: the writer's w_k - w_(k-3)
    w = r["weights/w"]
    assert list(w.steps) == [0, 3, 6, 9] and w.capture == "stats"
    for i, k in enumerate(w.steps):
        a = np.asarray(kept_w[k]["w"], np.float64)
        assert w.stats["norm"].iloc[i] == pytest.approx(np.linalg.norm(a), rel=1e-6)
        assert w.stats["mean"].iloc[i] == pytest.approx(a.mean(), rel=1e-6, abs=1e-12)
    assert r["grads/w"].stats["max"].iloc[-1] == pytest.approx(float(kept_g[9]["w"].max()), rel=1e-6)


def test_bfloat16_is_stored_widened_with_its_dtype_named(tmp_path):
    p = {"w": jnp.asarray([1.5, -2.25, 3.0], dtype=jnp.bfloat16)}
    with nl.Run(tmp_path / "r") as run:
        record(run, 0, params=p, capture="full")
    s = nl.open_run(tmp_path / "r")["weights/w"]
    np.testing.assert_array_equal(s.at(0), [1.5, -2.25, 3.0])
    assert s.meta["dtype"] == "bfloat16"


class Block(nnx.Module):
    def __init__(self, rngs):
        self.conv = nnx.Conv(1, 3, kernel_size=(3, 3), rngs=rngs)
        self.norm = nnx.LayerNorm(3, rngs=rngs)
        self.head = nnx.Linear(3, 2, rngs=rngs)

    def __call__(self, x):
        h = nnx.relu(self.norm(self.conv(x)))
        pooled = h.mean(axis=(1, 2))
        self.sow(nnx.Intermediate, "pooled", pooled)
        return self.head(pooled)


def test_nnx_params_grads_and_probe_intermediates(tmp_path):
    model = Block(nnx.Rngs(1))
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(8, 5, 5, 1)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 2, 8))
    probe = x[:3]

    def loss_fn(m):
        logits = m(x)
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(8), y])

    expect = {}
    with nl.Run(tmp_path / "r") as run:
        for step in range(0, 3):
            grads = None
            if step:
                grads = nnx.grad(loss_fn)(model)
                nnx.update(model, jax.tree.map(lambda p, g: p - 0.5 * g, nnx.state(model, nnx.Param), grads))
            record_nnx(run, step, model, grads=grads, probe=(probe, y[:3]), capture="full")
            conv = model.conv(probe)
            norm = model.norm(conv)
            pooled = nnx.relu(norm).mean(axis=(1, 2))
            expect[step] = {"params": {n: np.asarray(v) for n, v in flatten(nnx.state(model, nnx.Param))},
                            "grads": {n: np.asarray(v) for n, v in flatten(grads)} if grads else {},
                            "probe": {"conv": conv, "norm": norm, "pooled": pooled, "head": model.head(pooled)}}
    r = nl.open_run(tmp_path / "r")
    assert r.streams("probe") == ["probe/conv", "probe/head", "probe/norm", "probe/pooled"]
    assert set(expect[0]["params"]) == {"conv/bias", "conv/kernel", "head/bias", "head/kernel",
                                        "norm/bias", "norm/scale"}
    for step, want in expect.items():
        for name, value in want["params"].items():
            np.testing.assert_array_equal(r[f"weights/{name}"].at(step), value)
        for name, value in want["grads"].items():
            np.testing.assert_array_equal(r[f"grads/{name}"].at(step), value)
        for name, value in want["probe"].items():
            np.testing.assert_allclose(r[f"probe/{name}"].at(step), np.asarray(value), rtol=1e-6, atol=1e-6)
    assert list(r["grads/head/kernel"].steps) == [1, 2]
    np.testing.assert_array_equal(r["inputs/probe_target"].at(0), np.asarray(y[:3]))
    types = {m["name"]: m["type"] for m in r.model["modules"]}
    assert types == {"conv": "Conv", "norm": "LayerNorm", "head": "Linear", "model": "Block"}
    assert r.manifest["framework"]["name"] == "flax.nnx"


def test_clear_errors(tmp_path):
    with nl.Run(tmp_path / "r") as run:
        with pytest.raises(NetlapseError, match="capture"):
            record(run, 0, params={"w": jnp.ones(2)}, capture="everything")
        with pytest.raises(NetlapseError, match="flax.nnx.Module"):
            record_nnx(run, 0, {"w": jnp.ones(2)})
        with pytest.raises(NetlapseError, match="Names look like: w"):
            record(run, 0, params={"w": jnp.ones(2)}, include="v*")
        with pytest.raises(NetlapseError, match="probe of shape"):
            record_nnx(run, 0, Block(nnx.Rngs(0)), probe=jnp.ones((2, 5)))
    with pytest.raises(NetlapseError, match="open netlapse.Run"):
        record(run, 1, params={"w": jnp.ones(2)})


def test_import_without_jax_names_the_extra():
    code = ("import sys; sys.modules['jax'] = None\n"
            "try:\n    import netlapse.jax\nexcept ImportError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'netlapse[jax]'" in out.stdout
