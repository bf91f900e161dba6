"""Reading whole small per-step arrays (steps, stats, unit activity) straight from their
chunk files: the read-side twin of ``_chunks.DirectChunks``.

zarr reads a 100,000-row array of 1,024-row chunks in about 100 small tasks through its event
loop; for the doctor, which reads every stream of a long run, that overhead is most of the
time. For arrays stored as ``bytes`` (little endian) + ``zstd`` (the writer's small arrays),
this decodes each chunk file with numcodecs directly — the same bytes zarr would decode —
with the layout taken from the array's ``zarr.json``. Any other layout, and any chunk that
fails to decode, goes through the reader (which reports a damaged file by name).
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


_FILL = {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}


def _direct(reader, key: str, start: int, stop: int, length: int):
    """Rows straight from the chunk files, with the layout read from the array's own
    ``zarr.json`` (no zarr call: opening 100 arrays through zarr costs more than reading them);
    None when the layout is not the writer's plain one."""
    import json

    from numcodecs import Zstd

    folder = reader.path / "data" / key
    meta = json.loads((folder / "zarr.json").read_text())
    codecs = [c.get("name") for c in meta.get("codecs", [])]
    endian = (meta["codecs"][0].get("configuration") or {}).get("endian", "little") if codecs else None
    keys = meta.get("chunk_key_encoding", {})
    if (codecs != ["bytes", "zstd"] or endian != "little" or sys.byteorder != "little"
            or keys.get("name") != "default" or meta.get("chunk_grid", {}).get("name") != "regular"
            or meta["shape"][0] < length):
        return None
    dtype = np.dtype(meta["data_type"])
    chunk = meta["chunk_grid"]["configuration"]["chunk_shape"]
    row_shape = tuple(meta["shape"][1:])
    if tuple(chunk[1:]) != row_shape:
        return None
    rows = int(chunk[0])
    sep = (keys.get("configuration") or {}).get("separator", "/")
    tail = sep.join("0" for _ in row_shape)
    fill = meta.get("fill_value", 0)
    fill = _FILL.get(fill, fill) if isinstance(fill, str) else fill
    codec = Zstd()
    stop = min(stop, length)
    out = np.empty((max(0, stop - start),) + row_shape, dtype)
    per_chunk = rows * int(np.prod(row_shape, dtype=np.int64))
    for i in range(start // rows, -(-stop // rows)):
        lo, hi = max(start, i * rows), min(stop, (i + 1) * rows)
        name = f"c{sep}{i}" + (f"{sep}{tail}" if tail else "")
        try:
            data = (folder / name).read_bytes()
        except FileNotFoundError:
            out[lo - start:hi - start] = fill
            continue
        raw = np.frombuffer(codec.decode(data), dtype)
        if raw.size != per_chunk:
            return None
        out[lo - start:hi - start] = raw.reshape((rows,) + row_shape)[lo - i * rows: hi - i * rows]
    return out
