"""netlapse: a time-lapse camera for neural-network training.

``import netlapse`` imports no ML framework and no plotting library: ``netlapse.torch``,
``netlapse.keras``, ``netlapse.jax``, ``netlapse.plot`` and ``netlapse.animate`` load on use.
"""

import importlib as _importlib

from ._run import Run, open_run
from ._stats import HIST_BINS, STAT_NAMES
from ._version import __version__
from .errors import (CollectiveError, CorruptRunError, NetlapseError, NotARunError, RecordingError,
                     RunExistsError, StepNotRecordedError, StreamNotFoundError)

__all__ = [
    "Run", "open_run", "watch", "STAT_NAMES", "HIST_BINS", "__version__",
    "NetlapseError", "NotARunError", "RunExistsError", "StreamNotFoundError",
    "StepNotRecordedError", "CorruptRunError", "RecordingError", "CollectiveError",
    "live", "diagnose",
]

_LAZY_MODULES = {"torch", "keras", "jax", "plot", "animate", "views", "render", "export", "doctor"}


def watch(model, run, optimizer=None, **options):
    """Record a model's training into ``run``. PyTorch models: see ``netlapse.torch.watch``."""
    from .torch import watch as torch_watch

    return torch_watch(model, run, optimizer, **options)


def live(run, view="weight_images", stream=None, every_s=1.0, **view_args):
    """A picture in a notebook that redraws while ``run`` trains: see ``netlapse._live.live``."""
    from ._live import live as _live

    return _live(run, view, stream, every_s, **view_args)


def diagnose(run_or_path, step=None):
    """The doctor's report on a run's training health; see ``netlapse.doctor.diagnose``."""
    from .doctor import diagnose as _diagnose

    return _diagnose(run_or_path, step=step)


def __getattr__(name: str):
    if name in _LAZY_MODULES:
        return _importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'netlapse' has no attribute {name!r}")
