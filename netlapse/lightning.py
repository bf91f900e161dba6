"""Lightning 2.x: ``Trainer(callbacks=[Recorder("runs/x", weights="full")])``.

The Recorder watches the ``LightningModule`` with the trainer's real optimizers (several, in
manual optimization, make one step when each has stepped once) and, under fp16 mixed precision,
its ``GradScaler``. What a step holds is what ``nl.watch`` stores in a plain loop:
- grads at step k: the ones update k used. Lightning steps with a closure that runs the training
  step, backward, ``on_before_optimizer_step`` and gradient clipping; the grads are taken when
  it returns, so they are the clipped ones. With ``accumulate_grad_batches`` they are the sums
  over the micro-batches of that update.
- weights at step k: after update k; validation and the sanity check do not count as steps.
- what the module logs with ``self.log`` (the values Lightning hands its loggers, every
  ``log_every_n_steps``) goes to the run's metrics at the Recorder's step; ``hparams`` to the
  config.
See docs/integrations.md.
"""

from __future__ import annotations

try:
    import lightning.pytorch as pl
    from lightning.pytorch.loggers.logger import Logger
except ImportError as exc:  # pragma: no cover - exercised without lightning installed
    raise ImportError("netlapse.lightning needs Lightning 2.x: pip install 'netlapse[lightning]'") from exc

from ._trainers import RecorderTarget, RunTarget, jsonable

__all__ = ["Recorder"]


class _RunLogger(Logger):
    """Receives what Lightning logs (``self.log``) and hands it to the run."""

    def __init__(self, target: RunTarget):
        super().__init__()
        self._target = target

    @property
    def name(self):
        return "netlapse"

    @property
    def version(self):
        return None

    def log_metrics(self, metrics, step=None) -> None:
        self._target.log(metrics)

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass   # the Recorder takes hparams from the module when fit starts


class Recorder(RecorderTarget, pl.Callback):
    """Record a Lightning ``fit`` into a netlapse run.

    ``run``: a folder path (the run is created at fit start and closed at fit end; marked failed
    if fit raises) or an open ``nl.Run``. ``config``, ``overwrite``, ``resume``: as for
    ``nl.Run`` when given a path. Other keywords are ``nl.watch``'s (``every``, ``weights``,
    ``grads``, ``activations``, ``probe``, ``include``, ``exclude``, ``name``, ...).
    """

    def __init__(self, run, *, config: dict | None = None, overwrite: bool = False,
                 resume: bool = False, **watch_options):
        super().__init__(run, config=config, overwrite=overwrite, resume=resume, **watch_options)
        self._logger = None

    def on_fit_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        config = {**jsonable(getattr(pl_module, "hparams", {}) or {}), **jsonable(self._config)}
        dm = getattr(trainer, "datamodule", None)
        if dm is not None and getattr(dm, "hparams", None):
            config = {**jsonable(dm.hparams), **config}
        self._target.open(config)
        optimizers = list(trainer.optimizers)
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        self._target.watch(pl_module, optimizers if len(optimizers) > 1 else (optimizers or [None])[0],
                           scaler=scaler)
        self._logger = _RunLogger(self._target)
        trainer.loggers = [*trainer.loggers, self._logger]

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._target.batch_starts(pl_module)

    def _end(self, trainer, exc=None) -> None:
        if self._logger is not None:
            trainer.loggers = [lg for lg in trainer.loggers if lg is not self._logger]
            self._logger = None
        self._target.finish(exc)

    def on_fit_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._end(trainer)

    def on_exception(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule",
                     exception: BaseException) -> None:
        self._end(trainer, exception)
