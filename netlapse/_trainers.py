"""What the trainer adapters (``netlapse.lightning``, ``netlapse.transformers``) share.

A trainer Recorder is given either an open ``nl.Run`` (the user closes it) or a path (the
Recorder opens the run when training starts and closes it when training ends, marking it failed
if training raised). Its keyword arguments are ``nl.watch``'s, checked when it is created.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path

from ._run import Run
from .errors import NetlapseError

__all__ = ["RecorderTarget", "RunTarget", "jsonable", "numeric"]


def _watch_signature():
    from .torch import watch

    return inspect.signature(watch)


class RecorderTarget:
    """What both Recorders share: the ``RunTarget`` made from their arguments, ``run`` and
    ``watcher``. Listed first among a Recorder's bases."""

    def __init__(self, run, *, config: dict | None = None, overwrite: bool = False,
                 resume: bool = False, **watch_options):
        self._target = RunTarget(run, watch_options, {"overwrite": overwrite, "resume": resume})
        self._config = dict(config or {})
        super().__init__()

    @property
    def run(self):
        """The run being recorded (None before training starts and after a path's run is
        closed)."""
        return self._target.run

    @property
    def watcher(self):
        """The ``nl.watch`` watcher (None before training starts)."""
        return self._target.watcher


class RunTarget:
    """The run a Recorder writes to, and the ``nl.watch`` options it was given."""

    def __init__(self, run, watch_options: dict, run_options: dict):
        if not isinstance(run, (Run, str, Path)):
            raise NetlapseError(f"Recorder(run): got {type(run).__name__}; pass a folder path "
                                "(the run is opened when training starts) or an open nl.Run.")
        params = _watch_signature().parameters
        unknown = sorted(set(watch_options) - set(params) | (set(watch_options) & {"model", "run", "optimizer"}))
        if unknown:
            known = [p for p in params if p not in ("model", "run", "optimizer")]
            raise NetlapseError(f"Recorder got unknown option(s) {', '.join(unknown)}; it takes "
                                f"nl.watch's options: {', '.join(known)}.")
        from ._record.plan import CapturePlan

        CapturePlan.make(watch_options.get("every", 1), watch_options.get("weights", "stats"),
                         watch_options.get("grads", "stats"), watch_options.get("activations"))
        self.given = run
        self.watch_options = watch_options
        self.run_options = run_options
        self.run: Run | None = None
        self.watcher = None
        self.owned = not isinstance(run, Run)

    def open(self, config: dict) -> Run:
        if self.owned:
            self.run = Run(self.given, config=config, **self.run_options)
        else:
            if self.given.closed:
                raise NetlapseError("Recorder(run): the run is closed; pass an open nl.Run or a path.")
            self.run = self.given
            if config:
                self.run.update_config(config)
        return self.run

    def watch(self, model, optimizer, scaler=None):
        from .torch import watch

        options = dict(self.watch_options)
        if scaler is not None and options.get("scaler") is None:
            options["scaler"] = scaler
        self.watcher = watch(model, self.run, optimizer, **options)
        return self.watcher

    def batch_starts(self, model) -> None:
        """A training batch begins: a new forward pass (for the activation rule), and weights
        still due from the last update can be handed to the writer now, without a copy
        (trainers often call sub-modules, never the watched root module whose forward would)."""
        w = self.watcher
        if w is None or w.closed:
            return
        taps = getattr(w, "_taps", None)
        if taps is not None:
            # also a new forward pass for the activation taps: a LightningModule's training_step
            # may call sub-modules only, never the root whose forward would mark it
            taps._forward_start(True)
        else:
            w._on_forward(model, ())

    @property
    def step(self) -> int:
        return self.watcher.steps_taken if self.watcher is not None else self.run.step

    def log(self, metrics: dict, step: int | None = None) -> None:
        values = numeric(metrics)
        if values and self.run is not None and not self.run.closed:
            self.run.log(self.step if step is None else step, **values)

    def finish(self, exc: BaseException | None = None) -> None:
        """Training ended: hooks off; a run the Recorder opened is closed (failed if ``exc``)."""
        if self.watcher is not None:
            self.watcher.close()
            self.watcher = None
        run, self.run = self.run, None
        if run is None or not self.owned:
            return
        if exc is not None:
            run.__exit__(type(exc), exc, exc.__traceback__)
        else:
            run.close()


def numeric(values: dict) -> dict:
    """The entries that are finite-or-not numbers (tensors with one element included)."""
    out = {}
    for key, value in (values or {}).items():
        if hasattr(value, "numel") and value.numel() == 1:
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
            continue
        try:
            out[str(key)] = float(value)
        except (TypeError, ValueError):
            continue
    return out


def jsonable(values) -> dict:
    """A config dict that JSON can hold: numbers, strings, bools, None, lists and dicts of them;
    anything else becomes its ``str``."""
    def conv(v):
        if v is None or isinstance(v, (bool, int, str)):
            return v
        if isinstance(v, float):
            return v if math.isfinite(v) else str(v)
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {str(k): conv(x) for k, x in v.items()}
        return str(v)
    return {str(k): conv(v) for k, v in dict(values or {}).items()}
