"""``Run``: one training run being recorded, and ``open_run`` to read one."""

from __future__ import annotations

import os
import shutil
import threading
import time
import warnings
from pathlib import Path

from . import _ending
from ._record import distributed as _distributed
from ._record.pipeline import Pipeline
from ._record.support import record_host
from .errors import NetlapseError, RecordingError, RunExistsError
from .store.layout import COMMIT_FILE, RUN_FILE
from .store.manifest import Manifest, new_manifest
from .store.reader import RunReader

__all__ = ["Run", "open_run"]


def open_run(path) -> RunReader:
    """Open a run read-only. Safe while it is still being written: only committed steps show."""
    return RunReader(path)


class Run:
    """A run folder being recorded. Use it as a context manager, or call ``close()``.

    ``Run(path, config=None, resume=False, overwrite=False, on_error="warn", flush_every=1.0,
    allocator=None)``

    - an existing run at ``path`` is refused unless ``resume=True`` (append to it) or
      ``overwrite=True`` (delete it first);
    - ``on_error="warn"``: if recording fails (e.g. the disk is full) training goes on and one
      warning names the path and the last step saved; ``"raise"`` raises instead;
    - ``allocator``: ``(shape, dtype) -> numpy array`` for the reused host buffers that
      tensors are copied into (default ``numpy.empty``); ``netlapse.torch`` sets pinned
      memory through ``run.allocator`` when the model is on a GPU.
    """

    def __init__(self, path, config: dict | None = None, *, resume: bool = False,
                 overwrite: bool = False, on_error: str = "warn", flush_every: float = 1.0,
                 allocator=None):
        if on_error not in ("warn", "raise"):
            raise ValueError(f"on_error must be 'warn' or 'raise', not {on_error!r}.")
        if resume and overwrite:
            raise ValueError("pass resume=True or overwrite=True, not both.")
        self.path = Path(path)
        self.on_error = on_error
        self._lock = threading.Lock()
        self._failed: BaseException | None = None
        self._closed = False
        self._ending: dict | None = None   # how the script ended the run (see _ending.py)
        self._saved_before: int | None = None   # resume: the last step already on disk
        self.watchers: list = []
        self._dist = _distributed.context()   # None outside a torch.distributed process group
        if self._dist is not None and not self._dist.is_writer:   # rank 0 alone writes
            self._manifest, self._pipeline = _distributed.follower_parts(config)
            self._step = 0
        else:
            self._prepare_folder(resume, overwrite, config)
            self._step = self._resume_step() if resume else 0
            self._pipeline = Pipeline(self._make_writer, flush_every=flush_every, alloc=allocator)
        if resume and self._dist is not None:
            self._step = self._dist.broadcast_int(self._step, "Run(resume=True)")
        _ending.install(self)   # closed at exit if the script does not; told of uncaught errors

    # ------------------------------------------------------------------ set-up
    def _prepare_folder(self, resume: bool, overwrite: bool, config: dict | None) -> None:
        path = self.path
        is_run = (path / RUN_FILE).exists()
        if is_run and overwrite:
            shutil.rmtree(path)
            is_run = False
        if is_run and not resume:
            raise RunExistsError(
                f"a run already exists at {path}. Pass resume=True to append to it, "
                "overwrite=True to replace it, or choose another path.")
        if resume and not is_run:
            raise NetlapseError(f"resume=True but {path} holds no run to resume.")
        if not is_run and path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise RunExistsError(f"{path} exists and is not an empty folder or a netlapse run; "
                                 "choose another path.")
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / ".netlapse-write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise NetlapseError(f"cannot write to {path}: {exc.strerror or exc}. "
                                "Choose a folder you can write to.") from None
        if is_run:
            self._manifest = Manifest.load(path)
            self._manifest.update(status="running", pid=os.getpid())
            if config:
                self._manifest.update(config={**self._manifest.data.get("config", {}), **config})
        else:
            self._manifest = Manifest(path, new_manifest(path.name, config))
            self._manifest.update()

    def _resume_step(self) -> int:
        """The step to go on from: the last one saved (also named if recording fails later)."""
        reader = RunReader(self.path)
        last = reader.last_step()
        if reader.metric_rows or any(reader[name].length for name in reader.streams()):
            self._saved_before = last
        return last

    def _make_writer(self):
        from .store.writer import StoreWriter

        return StoreWriter(self.path, self._manifest, resume=(self.path / COMMIT_FILE).exists())

    # ------------------------------------------------------------------ state
    @property
    def step(self) -> int:
        """Optimizer steps taken so far (advanced by a watcher, or set with ``run.step = n``).
        With several named watchers (``nl.watch(..., name=)``) the largest of their counts;
        ``run.log`` writes here unless given ``step=``."""
        return self._step

    @step.setter
    def step(self, value: int) -> None:
        self._step = int(value)

    @property
    def config(self) -> dict:
        return self._manifest.data.get("config", {})

    @property
    def allocator(self):
        """``(shape, dtype) -> numpy array``: how host buffers for new captures are made."""
        return self._pipeline.pool.alloc

    @allocator.setter
    def allocator(self, alloc) -> None:
        if not callable(alloc):
            raise TypeError(f"allocator must be a callable (shape, dtype) -> numpy array, "
                            f"not {type(alloc).__name__}.")
        self._pipeline.pool.alloc = alloc

    @property
    def closed(self) -> bool:
        return self._closed

    def set_model_summary(self, framework: dict, model: dict, name: str | None = None) -> None:
        """The watched model's summary; a named one (several models on a run) goes under
        ``models[name]`` in run.json."""
        if name is None:
            self._manifest.update(framework=framework, model=model)
        else:
            models = {**(self._manifest.data.get("models") or {}), name: model}
            self._manifest.update(framework=framework, models=models)

    def update_config(self, values: dict) -> None:
        """Add ``values`` (JSON-able) to the run's config (trainer adapters: hparams, arguments)."""
        self._manifest.update(config={**self._manifest.data.get("config", {}), **values})

    def enable_alerts(self, level: str = "problem") -> None:
        """Live alerts: the doctor's cheap instruments run on the writer thread as steps
        commit and warn once per new finding (``netlapse.doctor.HealthWarning``). ``level``:
        ``"problem"`` (default) or ``"warning"`` (warnings too). Calling it again is harmless."""
        from .doctor._live import Alerts

        if level not in ("problem", "warning"):
            raise ValueError(f"level={level!r}: use \"problem\" or \"warning\".")
        if not any(isinstance(o, Alerts) for o in self._pipeline.observers):
            self._pipeline.observers.append(Alerts(self.path, self._manifest, level))

    # ------------------------------------------------------------------ recording
    def log(self, step: int | None = None, *, reduce: str | None = None, **scalars) -> None:
        """Record scalar metrics at the current step (or at ``step``).

        Under torch.distributed only rank 0's values are stored, unless ``reduce="mean"``,
        ``"sum"`` or ``"max"``: then each metric is reduced over the ranks first (one
        all-reduce; every rank must make the same call).
        """
        if not scalars:
            raise ValueError("run.log() needs at least one metric, e.g. run.log(loss=0.3).")
        row = {}
        for key, value in scalars.items():
            if hasattr(value, "item"):
                value = value.item()
            try:
                row[key] = float(value)
            except (TypeError, ValueError):
                raise TypeError(f"metric {key!r} must be a number, got {type(value).__name__}.") from None
        if reduce is not None:
            row = _distributed.reduce_row(self._dist, row, reduce)
        self._guarded(self._pipeline.log, self._step if step is None else int(step), row)

    def record(self, name: str, step: int, fill, shape, dtype, *, full: bool, meta: dict) -> None:
        """Hand one tensor to the pipeline (framework adapters call this)."""
        self._guarded(self._pipeline.submit, name, step, meta, fill, tuple(shape), dtype, full)

    def record_group(self, group, step: int, fill) -> None:
        """Hand several tensors taken at one moment to the pipeline as one ``Group``."""
        self._guarded(self._pipeline.submit_group, group, step, fill)

    def record_rows(self, group, step: int, stats, hist) -> None:
        """Hand precomputed stats and histogram rows of a group's streams to the pipeline
        (``_stats``' layout; e.g. reduced across ranks): stored as they are."""
        self._guarded(self._pipeline.submit_rows, group, step, stats, hist)

    def record_live(self, group, step: int, arrays: list, fill, unchanged, wake: bool = True):
        """Hand tensors to the pipeline without a copy (see ``LiveCapture``); the adapter must
        call ``settle`` on the result before they can change. None if recording stopped.
        ``wake=False``: another message follows soon and wakes the writer for both."""
        return self._guarded(self._pipeline.submit_live, group, step, arrays, fill, unchanged, wake)

    def settle(self, live) -> None:
        """Wait until the writer no longer reads ``live``'s tensors in place (or copy them)."""
        if live is not None:
            self._guarded(self._pipeline.settle, live)

    def record_array(self, name: str, value, step: int | None = None, *, full: bool = True,
                     kind: str | None = None) -> None:
        """Record a numpy array (or anything ``np.asarray`` takes) as stream ``name``
        (bfloat16 and float8 are stored widened to float32; the meta keeps the dtype's name)."""
        step = self._step if step is None else int(step)
        record_host(self, None, name, value, step, "full" if full else "stats", kind)

    def _guarded(self, fn, *args):
        """``fn(*args)``; None once recording has failed (reported once, training goes on)."""
        if self._failed is not None:
            return None
        try:
            return fn(*args)
        except RecordingError as exc:
            self._fail(exc)
            return None

    def _fail(self, exc: RecordingError) -> None:
        """Recording failed: stop recording and tell the user once (warning, or raise)."""
        with self._lock:
            if self._failed is not None:
                return
            self._failed = exc
        saved = self._pipeline.last_committed_step
        last = max(saved.values()) if saved else self._saved_before
        last_text = (f"the last step saved is {last}" if last is not None
                     else "no step was saved")
        after = (" Training goes on (pass on_error=\"raise\" to stop instead)."
                 if not self._closed else "")
        cause = exc.__cause__
        reason = (f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)).rstrip(". ")
        message = (f"netlapse stopped recording to {self.path}: {reason}. {last_text[0].upper()}"
                   f"{last_text[1:]}; everything saved up to it is intact and readable.")
        if self.on_error == "raise":
            raise RecordingError(message) from exc
        warnings.warn(message + after, RuntimeWarning, stacklevel=4)

    @property
    def waited_s(self) -> float:
        """Seconds the training thread has waited for the background writer so far."""
        return self._pipeline.pool.waited_s

    def flush(self) -> None:
        """Block until everything recorded so far is committed to disk (at once on a closed
        run: close committed everything)."""
        if self._closed:
            return
        for watcher in list(self.watchers):
            settle = getattr(watcher, "_settle", None)
            if settle is not None:
                settle()
        self._guarded(self._pipeline.flush, self._pipeline.stall_timeout)

    def _note_exception(self, exc_type, exc, tb) -> None:
        """An exception ended the script's use of this run: at close it is marked ``failed``
        (``interrupted`` for Ctrl-C) with the exception and the step. The first one counts."""
        if not self._closed and self._ending is None:
            self._ending = _ending.ending_of(exc_type, exc, tb, self._step)

    def close(self, timeout: float = 60.0) -> None:
        """Close watchers, flush everything, mark the run finished.

        Never hangs: if the background writer makes no progress for ``timeout`` seconds, close
        gives up and reports (warning, or ``RecordingError`` with ``on_error="raise"``) which
        steps were not written; everything committed before stays intact.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for watcher in list(self.watchers):
            watcher.close()
        error = None
        try:
            if self._failed is None:
                self._pipeline.close(timeout)
            else:
                self._pipeline.close(min(timeout, 1.0))
        except RecordingError as exc:
            error = exc
        _ending.release_hook(self)
        self._mark_closed(self._failed or error, hung=self._pipeline.writer_alive())
        if error is not None:
            self._fail(error)

    def _mark_closed(self, error: BaseException | None, hung: bool) -> None:
        """Write the final status to run.json; bounded wait when the disk may be hanging."""
        failed = error is not None
        ending = self._ending or {}
        status = "failed" if failed else ending.get("status", "finished")
        fields = {"status": status, "closed": time.time()}
        if failed:
            fields["error"] = str(error.__cause__ or error)
        if "exception" in ending:
            fields["exception"] = ending["exception"]
        if _ending.closed_at_exit():
            fields["note"] = _ending.EXIT_NOTE

        def write():
            try:
                self._manifest.update(**fields)
            except OSError as exc:
                if not failed and self.path.exists():   # else reported already, or deleted
                    warnings.warn(f"netlapse could not mark {self.path} as {status}: {exc}",
                                  RuntimeWarning, stacklevel=4)

        if not hung:
            write()
            return
        t = threading.Thread(target=write, name="netlapse-close", daemon=True)
        t.start()
        t.join(1.0)

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._note_exception(exc_type, exc, tb)
        self.close()

    def _repr_html_(self) -> str:   # notebooks: what is committed so far (netlapse._display)
        from ._display import run_summary_html

        if not self._closed:
            self.flush()
        return run_summary_html(RunReader(self.path), "" if self._closed else f"step {self._step}")

    def __repr__(self) -> str:
        state = "closed" if self._closed else "recording"
        return f"<netlapse.Run {str(self.path)!r} step={self._step} {state}>"

