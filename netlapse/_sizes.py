"""Bytes a folder takes on disk, and a byte count as people read it (``netlapse info``, the
notebook summary)."""

from __future__ import annotations

import os

__all__ = ["size_on_disk", "human_bytes"]


def size_on_disk(path) -> int:
    """Total size of the files under ``path`` (files that vanish meanwhile count as 0)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def human_bytes(n: float) -> str:
    """``512 B``, ``3.4 KB``, ``1.2 MB`` … (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            break
        n /= 1024
    else:
        unit = "TB"
    return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
