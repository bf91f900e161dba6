"""How a run ends when the script does not close it: interpreter exit, exceptions, Ctrl-C.

- **Exit without ``close()``.** Open runs are closed (drained, committed, marked ``finished``
  with a note) from ``threading``'s exit hooks, which run before the ones that shut down
  ``concurrent.futures``' thread pools. zarr does its I/O through such a pool (and an event loop
  whose executor is one); from a plain ``atexit`` handler every write fails with "cannot
  schedule new futures after interpreter shutdown". Those exit hooks run in reverse order of
  registration, so ours is registered after importing ``concurrent.futures.thread`` (which
  registers the pools' hook at import).
- **An uncaught exception in the main thread** reaches ``sys.excepthook`` before the interpreter
  exits: while runs are open a hook notes the exception on each (``failed``, or
  ``interrupted`` for ``KeyboardInterrupt``) and then calls the hook it replaced. It is put back
  when the last open run closes. Interactive sessions go on after an uncaught exception, so
  there it notes nothing.
- ``with nl.Run(...)`` and ``with nl.watch(...)`` note the exception leaving their block.
"""

from __future__ import annotations

import atexit
import sys
import threading
import traceback

__all__ = ["ending_of", "install", "closed_at_exit", "release_hook"]

EXIT_NOTE = "closed at interpreter exit (run.close() was not called)"

_OPEN: set = set()          # open runs, held until closed so that exit can close them
_lock = threading.Lock()
_registered = False
_exiting = False
_previous_hook = None


def ending_of(exc_type, exc, tb, step: int) -> dict:
    """The manifest fields for a run ended by ``exc`` at ``step``."""
    interrupted = isinstance(exc, KeyboardInterrupt) or (
        isinstance(exc_type, type) and issubclass(exc_type, KeyboardInterrupt))
    name = getattr(exc_type, "__qualname__", None) or type(exc).__name__
    where = None
    if tb is not None:
        frames = traceback.extract_tb(tb)
        if frames:
            f = frames[-1]
            where = f"{f.filename}:{f.lineno} in {f.name}"
    return {"status": "interrupted" if interrupted else "failed",
            "exception": {"type": name, "message": str(exc), "step": int(step), "where": where}}


def install(run) -> None:
    """Track ``run`` until it closes: closed at exit, told about an uncaught exception."""
    global _registered, _previous_hook
    with _lock:
        _OPEN.add(run)
        if not _registered:
            _registered = True
            import concurrent.futures.thread  # noqa: F401 - registers the pools' exit hook first

            register = getattr(threading, "_register_atexit", None)
            if register is not None:
                try:
                    register(_close_all_at_exit)
                except RuntimeError:   # the interpreter is already shutting down
                    pass
            atexit.register(_close_all_at_exit)   # fallback (and for runs opened later)
        if _previous_hook is None:   # not in the hook chain yet (or put back since)
            _previous_hook = sys.excepthook
            sys.excepthook = _excepthook


def release_hook(run) -> None:
    """``run`` closed: stop tracking it; put the previous excepthook back after the last one."""
    global _previous_hook
    with _lock:
        _OPEN.discard(run)
        if not _OPEN and sys.excepthook is _excepthook and _previous_hook is not None:
            sys.excepthook, _previous_hook = _previous_hook, None


def closed_at_exit() -> bool:
    """True while the exit hook is closing runs."""
    return _exiting


def _interactive() -> bool:
    return bool(sys.flags.interactive) or hasattr(sys, "ps1")


def _excepthook(exc_type, exc, tb):
    previous = _previous_hook or sys.__excepthook__
    if previous is _excepthook:
        previous = sys.__excepthook__
    if not _interactive():
        for run in list(_OPEN):
            try:
                run._note_exception(exc_type, exc, tb)
            except Exception:  # noqa: BLE001 - never hide the user's traceback
                pass
    previous(exc_type, exc, tb)


def _close_all_at_exit() -> None:
    global _exiting
    _exiting = True
    for run in list(_OPEN):
        try:
            run.close()
        except Exception:  # noqa: BLE001 - the interpreter is exiting; never mask the real exit
            pass
