"""Where things live in a run folder, and how the zarr arrays are shaped and compressed.

A run folder::

    run.json            manifest: format version, versions, model summary, config, status, streams
    commit.json         published lengths: how many steps of each stream (and metric rows) are
                        complete. Written atomically after the data; readers read only up to it.
    data/               zarr v3 group
      <stream name>/    one group per stream, e.g. ``weights/fc1.weight``
        steps           int64 (T,)
        stats           float64 (T, 8)      see netlapse._stats.STAT_NAMES
        hist            int64 (T, 64)       see netlapse._stats for the bin layout
        values          (T, *shape)         only for streams captured "full"
        active          float32 (T, units)  activations with meta ``units`` (format 2): per
                                            unit, the fraction of non-zero outputs
        saturated       float32 (T, units)  the same, bounded activations: fraction of outputs
                                            within the margin of a bound (netlapse._record.derive)
      _metrics/
        step            int64 (R,)
        <quoted name>   float64 (R,)        NaN where a row did not log that metric

Arrays may be longer than what ``commit.json`` publishes (capacity is grown ahead); the extra
rows are not data.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import quote, unquote

import numpy as np

FORMAT_VERSION = 2   # 2: activation unit activity, updates/<param> streams (1 still read)
RUN_FILE = "run.json"
COMMIT_FILE = "commit.json"
DATA_DIR = "data"
METRICS_GROUP = "_metrics"
STREAM_KINDS = ("weights", "grads", "updates", "activations", "probe", "inputs")
CAPTURES = ("full", "stats")

FULL_CHUNK_BYTES = 4 << 20
SMALL_CHUNK_STEPS = 1024

__all__ = [
    "FORMAT_VERSION", "RUN_FILE", "COMMIT_FILE", "DATA_DIR", "METRICS_GROUP", "STREAM_KINDS",
    "CAPTURES", "values_chunk_steps", "metric_key", "metric_name", "stream_kind", "compressors",
    "values_compressors",
]


def values_chunk_steps(shape: tuple[int, ...], dtype) -> int:
    """Steps per chunk of a full stream: about 4 MiB a chunk, at least one step."""
    step_bytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    return int(max(1, min(SMALL_CHUNK_STEPS, FULL_CHUNK_BYTES // max(step_bytes, 1))))


def metric_key(name: str) -> str:
    """The array name of a metric inside the metrics group (slashes and dots escaped)."""
    return quote(name, safe="").replace(".", "%2E")


def metric_name(key: str) -> str:
    return unquote(key)


def stream_kind(name: str) -> str:
    return name.split("/", 1)[0]


def compressors(level: int = 1):
    """zstd, as a zarr v3 codec list (imported here so that `import netlapse` stays light)."""
    from zarr.codecs import ZstdCodec

    return (ZstdCodec(level=level),)


@lru_cache(maxsize=1)
def values_compressors():
    """The codec of full tensors: blosc lz4, level 1, bit-shuffled.

    Float weights barely compress (zstd level 1 saves about 8 % at about 400 MB/s on this
    machine kind); bit-shuffled lz4 saves about 12 % at about 2 GB/s on one core, so the
    writer keeps up with full captures every step. Zeros (ReLU outputs, masks) still shrink.
    """
    from zarr.codecs import BloscCodec

    return (BloscCodec(cname="lz4", clevel=1, shuffle="bitshuffle"),)
