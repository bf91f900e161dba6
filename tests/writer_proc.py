"""A recording process for crash and live-reading tests: step k's tensors are a known function of k.

``writer_proc.py PATH STEPS SLEEP`` records STEPS steps, SLEEP seconds apart.
``writer_proc.py PATH STEPS 0 --lockstep N`` records N steps at a time, flushes, prints
``flushed <steps so far>`` and waits for a line on stdin before going on: a reader can check
what it sees against what is known to be committed, with no timing involved.
"""
import sys
import time

import numpy as np

import netlapse as nl


def tensor_at(step: int, shape=(64, 33)) -> np.ndarray:
    base = np.arange(np.prod(shape), dtype=np.float32).reshape(shape) * 1e-3
    return np.sin(base + step).astype(np.float32)


def main(path: str, steps: int, sleep: float, lockstep: int = 0) -> None:
    run = nl.Run(path, flush_every=0.05)
    for k in range(steps):
        if lockstep and k and k % lockstep == 0:
            run.flush()
            print(f"flushed {k}", flush=True)
            sys.stdin.readline()
        run.step = k
        run.record_array("weights/w", tensor_at(k))
        run.record_array("grads/g", tensor_at(-k, (7,)), full=False)
        run.log(loss=float(k) * 0.5)
        if k % 10 == 0 and not lockstep:
            print(k, flush=True)
        if sleep:
            time.sleep(sleep)
    run.close()


if __name__ == "__main__":
    lock = int(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[4] == "--lockstep" else 0
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), lock)
