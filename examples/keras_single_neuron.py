"""Seed 000 in Keras 3: read a neuron's weights during ``fit`` with netlapse's Recorder.

One tanh neuron with two inputs learns labels tanh(x1 + x2) (SGD, lr 0.5, MSE, 10 epochs,
500 samples), so both weights should approach 1.0. Instead of a hand-written callback that
copies weights into a list, ``netlapse.keras.Recorder`` stores every step in a run you can
open later (``netlapse info RUN``, the dashboard, or ``netlapse.open_run``).

    KERAS_BACKEND=torch python examples/keras_single_neuron.py --out runs/neuron

Any Keras 3 backend works (torch, jax, tensorflow); this one runs offline.
"""

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import netlapse as nl  # noqa: E402
from netlapse.keras import Recorder  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/keras-single-neuron", help="run folder to write")
    ap.add_argument("--epochs", type=int, default=10, help="training epochs (default 10)")
    args = ap.parse_args(argv)

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(500, 2)).astype("float32")
    y = np.tanh(x.sum(axis=1, keepdims=True)).astype("float32")

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="tanh", name="neuron")])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5), loss="mse")
    before = model.evaluate(x, y, verbose=0)

    with nl.Run(args.out, overwrite=True, config={"seed": "000", "lr": 0.5, "epochs": args.epochs}) as run:
        model.fit(x, y, epochs=args.epochs, verbose=0,
                  callbacks=[Recorder(run, weights="full", grads="full", probe=x[:8])])
    after = model.evaluate(x, y, verbose=0)

    r = nl.open_run(args.out)
    kernel = r["weights/neuron/kernel"]
    trajectory = kernel.history()[:, :, 0]          # (steps, 2): w1, w2 at every step
    print(f"backend {keras.backend.backend()}: recorded {len(kernel.steps)} steps into {args.out}")
    for i in np.linspace(0, len(kernel.steps) - 1, 6).astype(int):
        print(f"  step {int(kernel.steps[i]):4d}: w = [{trajectory[i, 0]:.3f}, {trajectory[i, 1]:.3f}]")
    print(f"loss before {before:.4f}, after {after:.6f}")


if __name__ == "__main__":
    main()
