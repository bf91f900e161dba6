"""Reading whole small per-step arrays (steps, stats, unit activity) straight from their
chunk files: the read-side twin of ``_chunks.DirectChunks``.

zarr reads a 100,000-row array of 1,024-row chunks in about 100 small tasks through its event
loop; for the doctor, which reads every stream of a long run, that overhead is most of the
time. For arrays stored as ``bytes`` (little endian) + ``zstd`` (the writer's small arrays),
this decodes each chunk file with numcodecs directly — the same bytes zarr would decode. Any
other layout, and any chunk that fails to decode, goes through the reader (which reports a
damaged file by name).
"""

from __future__ import annotations

import sys

import numpy as np

__all__ = ["read_prefix", "read_rows"]


def read_prefix(reader, key: str, length: int) -> np.ndarray:
    """Rows ``0..length`` of array ``key`` of ``reader`` (a RunReader)."""
    return read_rows(reader, key, 0, length, length)


def read_rows(reader, key: str, start: int, stop: int, length: int) -> np.ndarray:
    """Rows ``start..stop`` of array ``key``, which holds ``length`` published rows."""
    try:
        out = _direct(reader, key, start, stop, length)
    except Exception:  # noqa: BLE001 - anything unusual: let the reader read (and report) it
        out = None
    if out is None:
        return np.asarray(reader._read(key, slice(start, stop), length))
    return out


def _direct(reader, key: str, start: int, stop: int, length: int):
    from numcodecs import Zstd
    from zarr.codecs import BytesCodec, ZstdCodec

    arr = reader._array(key)
    codecs = arr.metadata.codecs
    dtype = np.dtype(arr.dtype)
    if (len(codecs) != 2 or not isinstance(codecs[0], BytesCodec)
            or not isinstance(codecs[1], ZstdCodec) or sys.byteorder != "little"
            or dtype.byteorder not in ("=", "<", "|") or arr.shape[0] < length):
        return None
    chunk = arr.metadata.chunk_grid.chunk_shape
    if tuple(chunk[1:]) != tuple(arr.shape[1:]):
        return None
    rows = int(chunk[0])
    row_shape = tuple(arr.shape[1:])
    folder = reader.path / "data" / key
    codec = Zstd()
    tail = (0,) * (arr.ndim - 1)
    stop = min(stop, length)
    out = np.empty((max(0, stop - start),) + row_shape, dtype)
    fill = arr.metadata.fill_value
    for i in range(start // rows, -(-stop // rows)):
        lo, hi = max(start, i * rows), min(stop, (i + 1) * rows)
        path = folder / arr.metadata.encode_chunk_key((i,) + tail)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            out[lo - start:hi - start] = fill
            continue
        raw = np.frombuffer(codec.decode(data), dtype)
        if raw.size != rows * int(np.prod(row_shape, dtype=np.int64)):
            return None
        out[lo - start:hi - start] = raw.reshape((rows,) + row_shape)[lo - i * rows: hi - i * rows]
    return out
