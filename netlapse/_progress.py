"""Progress bars for long work (tqdm on a terminal; quiet when output is not a terminal)."""

from __future__ import annotations

import os
import sys

__all__ = ["progress"]


def progress(total=None, desc: str = "", unit: str = "it", disable: bool | None = None):
    from tqdm.auto import tqdm

    if disable is None:
        disable = os.environ.get("NETLAPSE_PROGRESS", "") == "0"
    return tqdm(total=total, desc=desc, unit=unit, disable=disable, leave=False,
                file=sys.stderr, dynamic_ncols=True, mininterval=0.2)
