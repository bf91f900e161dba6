"""Progress bars for long work (tqdm on a terminal; quiet when output is not a terminal)."""

from __future__ import annotations

import os
import sys

__all__ = ["progress"]


def _on_terminal() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):   # replaced or closed stderr
        return False


def progress(total=None, desc: str = "", unit: str = "it", disable: bool | None = None):
    """A tqdm bar on stderr, shown only when stderr is a terminal (a notebook's is not);
    ``NETLAPSE_PROGRESS=0`` hides it everywhere, ``=1`` shows it everywhere."""
    from tqdm import tqdm

    if disable is None:
        env = os.environ.get("NETLAPSE_PROGRESS", "")
        disable = env == "0" or (env != "1" and not _on_terminal())
    return tqdm(total=total, desc=desc, unit=unit, disable=disable, leave=False,
                file=sys.stderr, dynamic_ncols=True, mininterval=0.2)
