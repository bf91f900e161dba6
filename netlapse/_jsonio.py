"""JSON files written atomically (write to a temporary file, fsync-free rename) and read strictly."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import CorruptRunError

__all__ = ["write_json_atomic", "read_json"]


def write_json_atomic(path: Path, obj) -> None:
    """Write ``obj`` as JSON to ``path`` so that a reader sees the old or the new file, whole."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data = json.dumps(obj, indent=1, allow_nan=True, default=_jsonable)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:   # a full disk leaves a partial temporary file: remove it, keep the old file
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_json(path: Path) -> dict:
    """Read a JSON object; a missing file raises FileNotFoundError, a malformed one CorruptRunError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CorruptRunError(f"{path} is not valid JSON (it holds binary bytes); the file is "
                              "damaged. Restore it or remove the run.") from None
    if not text.strip():
        raise CorruptRunError(f"{path} is empty (truncated); the file is damaged. Restore it "
                              "or remove the run.")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CorruptRunError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); "
                              "the file is damaged. Restore it or remove the run.") from None
    if not isinstance(obj, dict):
        raise CorruptRunError(f"{path} should hold a JSON object, found {type(obj).__name__}.")
    return obj


def _jsonable(value):
    """Turn numpy scalars, paths and tuples into JSON; refuse anything else loudly."""
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if isinstance(value, (Path, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return repr(value)
