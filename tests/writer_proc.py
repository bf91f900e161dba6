"""A recording process for crash and live-reading tests: step k's tensors are a known function of k."""
import sys
import time

import numpy as np

import netlapse as nl


def tensor_at(step: int, shape=(64, 33)) -> np.ndarray:
    base = np.arange(np.prod(shape), dtype=np.float32).reshape(shape) * 1e-3
    return np.sin(base + step).astype(np.float32)


def main(path: str, steps: int, sleep: float) -> None:
    run = nl.Run(path, flush_every=0.05)
    for k in range(steps):
        run.step = k
        run.record_array("weights/w", tensor_at(k))
        run.record_array("grads/g", tensor_at(-k, (7,)), full=False)
        run.log(loss=float(k) * 0.5)
        if k % 10 == 0:
            print(k, flush=True)
        time.sleep(sleep)
    run.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
