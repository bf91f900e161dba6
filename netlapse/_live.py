"""``nl.live``: a picture in a notebook that redraws itself while the run is being written.

A daemon thread reads the run's ``run.json`` and ``commit.json`` every ``every_s`` seconds;
when new steps were committed, a separate worker process (``_live_worker``, one per kernel)
reads the store and draws the view with matplotlib, so drawing never holds the kernel's GIL,
and the thread replaces the picture through an IPython display handle (``update_display_data``), which JupyterLab, Notebook,
VS Code and nbclient all understand: no widget extension. The thread never touches the
training thread or the ``Run`` object; it stops when the run is closed (after drawing its
last steps), deleted or overwritten by a new run (keeping the last picture), or on ``stop()``.
"""

from __future__ import annotations

import base64
import html
import json
import threading
from pathlib import Path

from ._live_worker import _plain, start_worker
from .errors import CorruptRunError, NetlapseError, NotARunError

__all__ = ["Live", "live", "VIEWS"]

VIEWS = ("trajectories", "weight_images", "layer_profile", "distributions", "function_fit",
         "hidden_space", "compare")


def live(run, view: str = "weight_images", stream: str | None = None, every_s: float = 1.0,
         *, dpi: int = 72, **view_args) -> "Live":
    """Show ``nl.plot.<view>`` of ``run`` in the notebook and keep it current while it trains.

    ``run``: a ``netlapse.Run`` being recorded in this kernel, a run folder, or a reader (for
    ``view="compare"``, a list of them; ``compare_view=`` names the view to compare).
    ``stream`` and ``view_args`` go to the view (e.g. ``image=(28, 28)``, ``vmax=0.5``).
    Every ``every_s`` seconds the thread checks the store; it redraws only when new steps
    were committed and replaces the picture only when it changed. Returns a ``Live``:
    ``.stop()`` ends it, ``.sync()`` waits until the picture shows everything recorded so far.
    """
    return Live(run, view, stream, every_s, dpi=dpi, **view_args)


def _require_ipython():
    try:
        from IPython import get_ipython
    except ImportError as exc:
        raise ImportError("nl.live shows pictures in a Jupyter notebook and needs IPython: "
                          "pip install 'netlapse[notebook]'") from exc
    if get_ipython() is None:
        raise NetlapseError("nl.live draws into a notebook (an IPython kernel), and none is "
                            "running here. In a script, watch the run with `netlapse ui RUNS_DIR` "
                            "or draw it with nl.plot.<view>(run).savefig(...).")


class Live:
    """One live picture; see ``nl.live``. ``updates``: how many times the picture was replaced."""

    def __init__(self, run, view: str = "weight_images", stream: str | None = None,
                 every_s: float = 1.0, *, dpi: int = 72, **view_args):
        from .store.reader import RunReader

        if view not in VIEWS:
            raise NetlapseError(f"no view {view!r}; nl.live shows one of: {', '.join(VIEWS)}.")
        if not every_s > 0:
            raise ValueError(f"every_s must be a positive number of seconds, not {every_s!r}.")
        _require_ipython()
        if view == "compare" and not isinstance(run, (list, tuple)):
            raise NetlapseError("view='compare' shows several runs: pass a list of runs, e.g. "
                                "nl.live([run_a, run_b], 'compare', compare_view='function_fit').")
        sources = list(run) if view == "compare" else [run]
        if view == "compare":
            view_args["view"] = view_args.pop("compare_view", "function_fit")
        self.view, self.every_s, self.dpi = view, float(every_s), int(dpi)
        self._args = dict(view_args, **({"stream": stream} if stream is not None else {}))
        try:
            json.dumps(self._args, default=_plain)
        except TypeError as exc:
            raise NetlapseError(f"nl.live draws in a separate process, so the view's arguments "
                                f"must be plain values (numbers, strings, lists, arrays): {exc}.") from None
        self._runs = [r for r in sources if hasattr(r, "flush") and hasattr(r, "closed")]
        # its own readers (refreshed by the thread), also when given one
        self._readers = [RunReader(Path(getattr(r, "path", r))) for r in sources]
        self._created = [r.manifest.get("created") for r in self._readers]
        self.replaced = False      # True if a run was deleted or overwritten while shown
        self.in_worker = True      # redraw in the worker process (False: in this thread)
        self.updates = 0           # times the picture was replaced
        self.draws = 0             # times the view was drawn (only after new commits)
        self.error: BaseException | None = None
        self._handle = None
        self._seen = None          # the commit state last drawn
        self._shown = None         # the bytes last shown
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._cond = threading.Condition()
        self._asked = self._served = 0
        self._finished = self._tick(remote=False)    # the first picture, at once, in this cell
        self._ended = self._finished
        self._thread = threading.Thread(target=self._loop, name=f"netlapse-live-{view}", daemon=True)
        if not self._finished:
            start_worker()
            self._thread.start()

    # ------------------------------------------------------------------ public
    @property
    def running(self) -> bool:
        """True while the thread watches the run (False once it stopped, for whatever reason)."""
        return self._thread.is_alive() and not self._ended

    def stop(self) -> None:
        """Stop updating (the picture stays as it is)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(30)   # at most one picture being drawn

    def sync(self, timeout: float | None = 60.0) -> bool:
        """Flush the runs recorded in this kernel, and wait until the picture shows what they
        hold (the thread checks at once). False if ``timeout`` passed first."""
        for run in self._runs:
            if not run.closed:
                run.flush()
        with self._cond:
            if not self.running:
                return True
            self._asked += 1
            want = self._asked
            self._wake.set()
            return self._cond.wait_for(lambda: self._served >= want or self._ended, timeout)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<netlapse live {self.view} of {self._readers[0].path}: {self.updates} updates, {state}>"

    # ------------------------------------------------------------------ thread
    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.wait(self.every_s)
                self._wake.clear()
                if self._stop.is_set():
                    break
                with self._cond:
                    asked = self._asked
                finished = self._tick(self.in_worker)
                with self._cond:
                    self._ended = finished     # before sync() sees its answer
                    self._served = asked
                    self._cond.notify_all()
                if finished:
                    break
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def _tick(self, remote: bool = True) -> bool:
        """Read the store; redraw if new steps were committed. True once every run is closed."""
        try:
            for r, created in zip(self._readers, self._created):
                try:
                    r.refresh()    # run.json, then commit.json: a closed run's commit is final
                except (NotARunError, CorruptRunError):
                    if (r.path / "run.json").exists():
                        raise
                    created = None                          # being deleted
                if r.manifest.get("created") != created:   # deleted, or overwritten by a new
                    self.replaced = True                    # run: keep the last picture, stop
                    return True
            finished = all(r.status != "running" for r in self._readers)
            state = json.dumps([[[(n, r[n].length) for n in r.streams()], r.metric_rows]
                                for r in self._readers])
            if state != self._seen:
                self._seen = state
                self._show(self._draw(remote))
            return finished
        except Exception as exc:  # noqa: BLE001 - shown in the notebook; the thread ends
            self.error = exc
            self._show(self._text(f"netlapse live {self.view} stopped: {type(exc).__name__}: {exc}"))
            return True

    def _draw(self, remote: bool) -> dict:
        """Draw in the worker process (``remote``) or here (the first picture, in the cell)."""
        from ._live_worker import draw_png, render_remote

        paths = [r.path for r in self._readers]
        try:
            png, last = (render_remote if remote else draw_png)(paths, self.view, self._args, self.dpi)
        except NetlapseError as exc:   # e.g. nothing recorded yet: say so, keep watching
            return self._text(f"netlapse live {self.view}: {exc}")
        self.draws += 1
        return {"image/png": base64.b64encode(png).decode("ascii"),
                "text/plain": f"<netlapse live {self.view}: step {last}>"}

    @staticmethod
    def _text(message: str) -> dict:
        return {"text/plain": message,
                "text/html": f'<div style="font-family:sans-serif;color:#555">{html.escape(message)}</div>'}

    def _show(self, bundle: dict) -> None:
        from IPython.display import display

        key = bundle.get("image/png") or bundle["text/plain"]
        if key == self._shown:
            return
        self._shown = key
        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)
            self.updates += 1
