"""Whole chunks written by netlapse itself are the bytes zarr writes, and read back exactly."""

import os

import numpy as np
import pytest
import zarr
from zarr.storage import LocalStore

from netlapse.store._chunks import DirectChunks
from netlapse.store.layout import values_compressors


def _chunk_files(folder):
    return {os.path.relpath(os.path.join(r, f), folder): open(os.path.join(r, f), "rb").read()
            for r, _, files in os.walk(folder) for f in files}


@pytest.mark.parametrize("dtype,shape", [(np.float32, (5, 7)), (np.float64, (3,)),
                                         (np.int64, (2, 2)), (np.float16, ())])
def test_direct_chunks_match_zarr(tmp_path, dtype, shape):
    rows = (np.random.default_rng(1).standard_normal((7,) + shape) * 10).astype(dtype)
    group = zarr.open_group(LocalStore(tmp_path), mode="a")
    arrays = [group.create_array(name=n, shape=(8,) + shape, chunks=(2,) + shape, dtype=dtype,
                                 compressors=values_compressors(), fill_value=0) for n in "ab"]
    arrays[0][:7] = rows
    direct = DirectChunks.for_array(arrays[1], tmp_path / "b")
    assert direct is not None
    assert direct.write(1, rows[1:], 2) == 0          # not on a chunk boundary: zarr's job
    assert direct.write(0, rows, 2) == 6              # three whole chunks; the 7th row is not
    arrays[1][6:7] = rows[6:]
    assert _chunk_files(tmp_path / "a" / "c") == _chunk_files(tmp_path / "b" / "c")
    back = zarr.open_group(LocalStore(tmp_path), mode="r")["b"][:7]
    np.testing.assert_array_equal(back, rows)


def test_other_codecs_go_through_zarr(tmp_path):
    group = zarr.open_group(LocalStore(tmp_path), mode="a")
    array = group.create_array(name="z", shape=(4, 3), chunks=(2, 3), dtype=np.float32)
    assert DirectChunks.for_array(array, tmp_path / "z") is None
