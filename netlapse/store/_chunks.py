"""Writing whole chunks of a full-tensor array straight to their files.

zarr's ``array[a:b] = rows`` costs about 1 ms of CPU per 1.6 MB step on top of compressing
and writing (fresh buffers for every chunk, its event loop and thread hand-offs). For whole,
aligned chunks of an array whose codecs are exactly ``bytes`` (little endian) + ``blosc``, the
writer encodes the chunk itself with the same blosc settings (read from the array's own
metadata, so the bytes are what zarr would write) and writes the file atomically, as zarr's
LocalStore does. Any zarr v3 reader decodes it; anything else goes through zarr.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import numpy as np

__all__ = ["DirectChunks"]


class DirectChunks:
    """Encodes and writes whole chunks of one array; ``for_array`` returns None when unsupported."""

    def __init__(self, array, folder: Path, blosc):
        self.array = array
        self.folder = folder
        self.blosc = blosc
        self.tail = (0,) * (array.ndim - 1)

    @classmethod
    def for_array(cls, array, folder: Path):
        from numcodecs import Blosc
        from zarr.codecs import BloscCodec, BytesCodec

        codecs = array.metadata.codecs
        dtype = np.dtype(array.dtype)
        if (len(codecs) != 2 or not isinstance(codecs[0], BytesCodec)
                or not isinstance(codecs[1], BloscCodec) or sys.byteorder != "little"
                or dtype.byteorder not in ("=", "<", "|") or dtype.hasobject):
            return None
        if getattr(codecs[0].endian, "value", codecs[0].endian) not in ("little", None):
            return None
        b = codecs[1]
        shuffle = {"noshuffle": Blosc.NOSHUFFLE, "shuffle": Blosc.SHUFFLE,
                   "bitshuffle": Blosc.BITSHUFFLE}[getattr(b.shuffle, "value", b.shuffle)]
        blosc = Blosc(cname=getattr(b.cname, "value", b.cname), clevel=b.clevel,
                      shuffle=shuffle, blocksize=b.blocksize, typesize=b.typesize)
        return cls(array, folder, blosc)

    def write(self, start: int, rows: np.ndarray, chunk_steps: int) -> int:
        """Write the whole chunks at the front of ``rows`` (``start`` on a chunk boundary);
        returns how many rows were written."""
        if start % chunk_steps:
            return 0
        done = 0
        while len(rows) - done >= chunk_steps:
            chunk = np.ascontiguousarray(rows[done:done + chunk_steps])
            data = self.blosc.encode(chunk.reshape(-1).view(np.uint8))
            index = (start + done) // chunk_steps
            _atomic_put(self.folder / self.array.metadata.encode_chunk_key((index,) + self.tail),
                        data)
            done += chunk_steps
        return done


def _atomic_put(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
