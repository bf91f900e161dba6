"""Hugging Face transformers: ``Trainer(..., callbacks=[Recorder("runs/x", grads="stats")])``.

The Recorder watches the Trainer's model with the real optimizer inside Accelerate's
``AcceleratedOptimizer`` (and its ``GradScaler`` under fp16). What a step holds is what
``nl.watch`` stores in a plain loop:
- grads at step k: the ones update k used. The Trainer clips (``max_grad_norm``) before
  ``on_pre_optimizer_step`` and steps after it; the grads are taken in the optimizer's own
  step, so they are the clipped ones; with ``gradient_accumulation_steps`` the sums over the
  micro-batches of that update.
- weights at step k: after update k (= ``state.global_step`` unless an AMP update was skipped).
- what the Trainer logs (``on_log``: loss, learning_rate, grad_norm, eval metrics) goes to the
  run's metrics at the Recorder's step; selected ``TrainingArguments`` to the config.
See docs/integrations.md.
"""

from __future__ import annotations

try:
    from transformers import TrainerCallback
except ImportError as exc:  # pragma: no cover - exercised without transformers installed
    raise ImportError("netlapse.transformers needs transformers: "
                      "pip install 'netlapse[transformers]'") from exc

from ._trainers import RecorderTarget, jsonable

__all__ = ["Recorder", "ARGUMENTS"]

# TrainingArguments copied into the run's config (as "args.<name>")
ARGUMENTS = ("learning_rate", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon",
             "max_grad_norm", "num_train_epochs", "max_steps", "per_device_train_batch_size",
             "per_device_eval_batch_size", "gradient_accumulation_steps", "lr_scheduler_type",
             "warmup_steps", "optim", "seed", "bf16", "fp16", "logging_steps", "eval_strategy")


class Recorder(RecorderTarget, TrainerCallback):
    """Record a ``transformers.Trainer`` run into netlapse.

    ``run``: a folder path (the run is created when training begins and closed when it ends) or
    an open ``nl.Run``. ``config``, ``overwrite``, ``resume``: as for ``nl.Run`` when given a
    path. Other keywords are ``nl.watch``'s (``every``, ``weights``, ``grads``,
    ``activations``, ``probe``, ``include``, ``exclude``, ``name``, ...).
    """

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        config = {f"args.{k}": getattr(args, k) for k in ARGUMENTS if hasattr(args, k)}
        model_config = getattr(model, "config", None)
        if model_config is not None and getattr(model_config, "model_type", None):
            config["model_type"] = model_config.model_type
        self._target.open({**jsonable(config), **jsonable(self._config)})
        self._target.watch(model, optimizer, scaler=getattr(optimizer, "scaler", None))

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        self._target.batch_starts(model)

    def on_log(self, args, state, control, logs=None, **kwargs):
        self._target.log(logs or {})

    def on_train_end(self, args, state, control, **kwargs):
        self._target.finish()
