"""Whole chunks written by netlapse itself are the bytes zarr writes, and read back exactly."""

import os

import numpy as np
import pytest
import zarr
from zarr.storage import LocalStore

from netlapse.store._chunks import DirectChunks
from netlapse.store.layout import compressors, values_compressors


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
    from zarr.codecs import GzipCodec

    group = zarr.open_group(LocalStore(tmp_path), mode="a")
    array = group.create_array(name="z", shape=(4, 3), chunks=(2, 3), dtype=np.float32,
                               compressors=(GzipCodec(),))
    assert DirectChunks.for_array(array, tmp_path / "z") is None


@pytest.mark.parametrize("dtype,shape,fill", [(np.float64, (8,), np.nan), (np.int64, (), 0),
                                              (np.int64, (64,), 0)])
def test_row_appends_match_zarr_and_resume_reads_back(tmp_path, dtype, shape, fill):
    # the small per-step arrays: appends of any size at any row, as commits make them
    rng = np.random.default_rng(2)
    rows = (rng.standard_normal((23,) + shape) * 100).astype(dtype)
    group = zarr.open_group(LocalStore(tmp_path), mode="a")
    arrays = [group.create_array(name=n, shape=(32,) + shape, chunks=(8,) + shape, dtype=dtype,
                                 compressors=compressors(1), fill_value=fill) for n in "ab"]
    cuts = [0, 3, 4, 8, 15, 16, 21]
    direct = DirectChunks.for_array(arrays[1], tmp_path / "b")
    assert direct is not None
    for a, b in zip(cuts, cuts[1:]):
        arrays[0][a:b] = rows[a:b]
        direct.write_rows(a, rows[a:b], 8)
    assert _chunk_files(tmp_path / "a" / "c") == _chunk_files(tmp_path / "b" / "c")
    # a new writer (a resumed run) holds nothing: it reads the started chunk back
    again = DirectChunks.for_array(zarr.open_group(LocalStore(tmp_path), mode="a")["b"], tmp_path / "b")
    again.write_rows(21, rows[21:], 8)
    arrays[0][21:23] = rows[21:]
    assert _chunk_files(tmp_path / "a" / "c") == _chunk_files(tmp_path / "b" / "c")
    back = zarr.open_group(LocalStore(tmp_path), mode="r")["b"]
    np.testing.assert_array_equal(back[:23], rows)
    tail = back[23:]
    assert (np.isnan(tail).all() if np.isnan(fill) else (tail == fill).all())


def test_chunks_stored_uncompressed_when_behind_read_back_through_zarr(tmp_path):
    # a writer that falls behind stores blosc chunks at level 0; zarr decodes them with the
    # array's own codec (each blosc chunk carries its header), so readers see the same values
    rows = np.random.default_rng(3).standard_normal((6, 40, 3)).astype(np.float32)
    group = zarr.open_group(LocalStore(tmp_path), mode="a")
    array = group.create_array(name="v", shape=(6, 40, 3), chunks=(2, 40, 3), dtype=np.float32,
                               compressors=values_compressors(), fill_value=0)
    direct = DirectChunks.for_array(array, tmp_path / "v")
    assert direct.write(0, rows[:2], 2, fast=True) == 2
    assert direct.write(2, rows[2:], 2, fast=False) == 4
    sizes = [os.path.getsize(tmp_path / "v" / "c" / str(i) / "0" / "0") for i in range(3)]
    assert sizes[0] > rows[:2].nbytes          # stored as is (plus the blosc header)
    back = zarr.open_group(LocalStore(tmp_path), mode="r")["v"][:]
    np.testing.assert_array_equal(back, rows)
