"""What a live notebook picture costs the training it watches.

Trains seed 003's softmax regression (784 -> 10, batch 20, Adam; weights recorded in full
every 5 steps, grads as stats) in one process, inside a real IPython shell whose display
publisher keeps what is published (what ipykernel would send), three ways, interleaved:

- ``watch``: recording only;
- ``live1``: plus ``nl.live(run, "weight_images", every_s=0.5)``;
- ``live1_thread``: the same, drawn in the kernel's thread instead of the worker process
  (``live.in_worker = False``), to show what the worker saves;
- ``live2``: ``live1`` plus a second live picture (``distributions`` of the grads).

Prints the median time per epoch of each and its ratio to ``watch``; the CPU time the
training process spent outside the training thread (netlapse's writer thread, and the live
threads: what competes with training for the GIL), which a busy machine does not inflate the
way it inflates wall time; and how many pictures the live displays drew. Run with the machine's load printed next to it:

    uptime; PYTHONPATH=. python benchmarks/live_overhead.py [--epochs 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def epoch_times(variant: str, root: Path, epochs: int, x, y) -> tuple[list[float], int]:
    import torch

    import netlapse as nl

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 10, bias=False))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    run = nl.Run(root / variant, overwrite=True)
    nl.watch(model, run, opt, every=5, weights="full", grads="stats")
    lives = []
    if variant in ("live1", "live1_thread", "live2"):
        lives.append(nl.live(run, "weight_images", stream="weights/0.weight", every_s=0.5,
                             image=(28, 28)))
        lives[0].in_worker = variant != "live1_thread"
    if variant == "live2":
        lives.append(nl.live(run, "distributions", stream="grads/0.weight", every_s=0.5))
    times, others = [], []
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        t0 = time.perf_counter()
        p0, th0 = time.process_time(), time.thread_time()
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 20):
            idx = order[i:i + 20]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            run.log(loss=loss.item())
        times.append(time.perf_counter() - t0)
        others.append((time.process_time() - p0) - (time.thread_time() - th0))
    run.close()
    for live in lives:
        live.stop()
    for live in lives:
        if live.error is not None:
            print(f"  ({variant}: the live display stopped: {type(live.error).__name__}: {live.error})")
    return times, others, sum(live.draws for live in lives)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    import torch
    from IPython.core.displaypub import CapturingDisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell

    from netlapse.datasets import load_mnist

    torch.set_num_threads(1)
    shell = InteractiveShell.instance()
    shell.display_pub = CapturingDisplayPublisher()
    x, y, *_ = load_mnist(seed=0)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    variants = ("watch", "live1", "live1_thread", "live2")
    results = {v: [] for v in variants}
    other_cpu = {v: [] for v in variants}
    draws = {v: 0 for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for v in variants:
                times, others, n = epoch_times(v, Path(tmp), args.epochs, x, y)
                results[v] += times
                other_cpu[v] += others
                draws[v] += n
    base = statistics.median(results["watch"])
    print(f"{len(x)} digits, batch 20 ({-(-len(x) // 20)} steps per epoch), "
          f"{args.rounds} rounds x {args.epochs} epochs, variants interleaved")
    for v in variants:
        med = statistics.median(results[v])
        print(f"  {v:12s} median epoch {med * 1000:7.1f} ms   x{med / base:.3f}   "
              f"kernel CPU outside the training thread {sum(other_cpu[v]):6.2f} s   "
              f"pictures drawn {draws[v]}")


if __name__ == "__main__":
    main()
