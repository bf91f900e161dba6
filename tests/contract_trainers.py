"""One small network, trained the same way in every framework, recorded by netlapse.

Used by tests/test_contract.py (in-process, or as a script in a subprocess when Keras must use
another backend: ``KERAS_BACKEND=jax python tests/contract_trainers.py keras OUT``).

Network: x(3) -> Dense 4 (tanh) -> Dense 2; MSE loss over all outputs; plain SGD, lr 0.1;
16 samples in 4 batches of 4, in order, for 2 epochs: 8 updates. Weights are given in the
(in, out) "kernel" layout; the PyTorch Linear layout (out, in) is the transpose.
"""

from __future__ import annotations

import sys

import numpy as np

LR = 0.1
BATCH = 4
EPOCHS = 2
N = 16
STEPS = EPOCHS * N // BATCH
CANON = ("l1/kernel", "l1/bias", "l2/kernel", "l2/bias")
PROBE_CANON = ("pre", "hidden", "out")


def data():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(N, 3)).astype(np.float32)
    y = rng.normal(size=(N, 2)).astype(np.float32)
    init = {"l1/kernel": rng.normal(0, 0.5, (3, 4)), "l1/bias": rng.normal(0, 0.1, (4,)),
            "l2/kernel": rng.normal(0, 0.5, (4, 2)), "l2/bias": rng.normal(0, 0.1, (2,))}
    probe = rng.normal(size=(5, 3)).astype(np.float32)
    return x, y, {k: v.astype(np.float32) for k, v in init.items()}, probe


def batches():
    x, y, _, _ = data()
    for _ in range(EPOCHS):
        for i in range(0, N, BATCH):
            yield x[i:i + BATCH], y[i:i + BATCH]


def reference():
    """Weights after each step, grads of each update and probe outputs, by hand in float64."""
    _, _, init, probe = data()
    w = {k: v.astype(np.float64) for k, v in init.items()}

    def forward(x):
        pre = x @ w["l1/kernel"] + w["l1/bias"]
        h = np.tanh(pre)
        return pre, h, h @ w["l2/kernel"] + w["l2/bias"]

    weights, grads, probes = {0: dict(w)}, {}, {0: dict(zip(PROBE_CANON, forward(probe)))}
    for step, (x, y) in enumerate(batches(), start=1):
        x, y = x.astype(np.float64), y.astype(np.float64)
        pre, h, out = forward(x)
        d_out = 2 * (out - y) / out.size
        d_pre = (d_out @ w["l2/kernel"].T) * (1 - h ** 2)
        g = {"l2/kernel": h.T @ d_out, "l2/bias": d_out.sum(0),
             "l1/kernel": x.T @ d_pre, "l1/bias": d_pre.sum(0)}
        w = {k: w[k] - LR * g[k] for k in w}
        weights[step], grads[step] = dict(w), g
        probes[step] = dict(zip(PROBE_CANON, forward(probe)))
    return weights, grads, probes


# ---------------------------------------------------------------------------- trainers
def train_torch(path) -> None:
    import torch
    from torch import nn

    import netlapse as nl

    _, _, init, probe = data()
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    with torch.no_grad():
        for i, layer in (("l1", 0), ("l2", 2)):
            model[layer].weight.copy_(torch.from_numpy(init[f"{i}/kernel"].T))
            model[layer].bias.copy_(torch.from_numpy(init[f"{i}/bias"]))
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    with nl.Run(path) as run, nl.watch(model, run, opt, weights="full", grads="full",
                                       probe=torch.from_numpy(probe)):
        for x, y in batches():
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(torch.from_numpy(x)), torch.from_numpy(y))
            loss.backward()
            opt.step()
            run.log(loss=loss.item())


def train_keras(path) -> None:
    import keras

    import netlapse as nl
    from netlapse.keras import Recorder

    x, y, init, probe = data()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh", name="l1"),
                              keras.layers.Dense(2, name="l2")])
    model.set_weights([init[k] for k in CANON])
    model.compile(optimizer=keras.optimizers.SGD(LR), loss="mse")
    with nl.Run(path) as run:
        model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0,
                  callbacks=[Recorder(run, weights="full", grads="full", probe=probe)])


def train_jax(path) -> None:
    import jax
    import jax.numpy as jnp

    import netlapse as nl
    from netlapse.jax import record

    _, _, init, _ = data()
    params = {layer: {"kernel": jnp.asarray(init[f"{layer}/kernel"]), "bias": jnp.asarray(init[f"{layer}/bias"])}
              for layer in ("l1", "l2")}

    def loss_fn(p, x, y):
        h = jnp.tanh(x @ p["l1"]["kernel"] + p["l1"]["bias"])
        return jnp.mean((h @ p["l2"]["kernel"] + p["l2"]["bias"] - y) ** 2)

    grad_fn = jax.jit(jax.value_and_grad(loss_fn))
    with nl.Run(path) as run:
        record(run, 0, params=params, capture="full")
        for step, (x, y) in enumerate(batches(), start=1):
            loss, grads = grad_fn(params, x, y)
            params = jax.tree.map(lambda p, g: p - LR * g, params, grads)
            record(run, step, params=params, grads=grads, capture="full")
            run.log(loss=float(loss))


def train_nnx(path) -> None:
    import jax
    import jax.numpy as jnp
    from flax import nnx

    import netlapse as nl
    from netlapse.jax import record_nnx

    _, _, init, probe = data()

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.l1 = nnx.Linear(3, 4, rngs=rngs)
            self.l2 = nnx.Linear(4, 2, rngs=rngs)

        def __call__(self, x):
            return self.l2(jnp.tanh(self.l1(x)))

    model = Net(nnx.Rngs(0))
    for layer in ("l1", "l2"):
        getattr(model, layer).kernel[...] = jnp.asarray(init[f"{layer}/kernel"])
        getattr(model, layer).bias[...] = jnp.asarray(init[f"{layer}/bias"])

    @nnx.jit
    def train_step(model, x, y):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
        params = nnx.state(model, nnx.Param)
        nnx.update(model, jax.tree.map(lambda p, g: p - LR * g, params, grads))
        return loss, grads

    with nl.Run(path) as run:
        record_nnx(run, 0, model, probe=probe, capture="full")
        for step, (x, y) in enumerate(batches(), start=1):
            loss, grads = train_step(model, x, y)
            record_nnx(run, step, model, grads=grads, probe=probe, capture="full")
            run.log(loss=float(loss))


TRAINERS = {"torch": train_torch, "keras": train_keras, "jax": train_jax, "nnx": train_nnx}

if __name__ == "__main__":
    TRAINERS[sys.argv[1]](sys.argv[2])
