"""JAX (and Flax NNX): record pytrees of parameters, gradients and activations into a run.

JAX has no training loop to hook into, so recording is one explicit call per step, outside
``jit``::

    nl.jax.record(run, step, params=params, grads=grads)          # any pytrees
    nl.jax.record_nnx(run, step, model, grads=grads, probe=x)     # a Flax NNX model

Stream names come from the pytree key paths joined with "/" (``{"dense": {"kernel": ...}}``
-> ``weights/dense/kernel``), in the order ``jax.tree_util`` flattens them. Flax NNX
variables drop their trailing ``.value``, so an ``nnx.Linear`` named ``fc1`` gives
``weights/fc1/kernel``, like Keras's ``weights/<layer>/<variable>``.
"""

from __future__ import annotations

try:
    import jax
    from jax import tree_util
except ImportError as exc:  # pragma: no cover - exercised without jax installed
    raise ImportError("netlapse.jax needs JAX: pip install 'netlapse[jax]' "
                      "(installs jax and flax)") from exc

import weakref

import numpy as np

from ._record.plan import CapturePlan, check_mode, resolve_updates, select_names
from ._record.support import (module_entry, param_entry, probe_rejected, record_host,
                               require_open_run, split_probe, summary)
from ._record.unitmeta import path_unit_meta
from .errors import NetlapseError

__all__ = ["record", "record_nnx", "flatten", "path_name"]

_SUMMARISED: "weakref.WeakSet" = weakref.WeakSet()
_PROBED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def path_name(path) -> str:
    """A pytree key path as a stream-name suffix: keys, indices and attributes joined by "/";
    a Flax variable's trailing ``value`` is dropped."""
    parts = []
    for key in path:
        if isinstance(key, tree_util.DictKey):
            parts.append(str(key.key))
        elif isinstance(key, tree_util.SequenceKey):
            parts.append(str(key.idx))
        elif isinstance(key, tree_util.GetAttrKey):
            parts.append(key.name)
        elif isinstance(key, tree_util.FlattenedIndexKey):
            parts.append(str(key.key))
        else:
            parts.append(str(key).strip(".[]'\""))
    if len(parts) > 1 and parts[-1] == "value" and isinstance(path[-1], tree_util.GetAttrKey):
        parts.pop()
    return "/".join(parts) or "value"


def flatten(tree) -> list[tuple[str, object]]:
    """``[(name, leaf)]`` in ``jax.tree_util``'s fixed flattening order; None leaves dropped."""
    leaves, _ = tree_util.tree_flatten_with_path(tree)
    out, seen = [], set()
    for path, leaf in leaves:
        if leaf is None or not hasattr(leaf, "shape") and not np.isscalar(leaf):
            continue
        name = path_name(path)
        if name in seen:
            raise NetlapseError(f"two pytree leaves are both named {name!r}; give them distinct "
                                "keys.")
        seen.add(name)
        out.append((name, leaf))
    return out


def _to_host(items):
    """One device-to-host transfer for the lot."""
    values = jax.device_get([leaf for _, leaf in items])
    return [(name, np.asarray(v)) for (name, _), v in zip(items, values)]


def _summary(trees: dict) -> dict:
    params = []
    for kind, tree in trees.items():
        if tree is None or kind != "weights":
            continue
        for name, leaf in flatten(tree):
            dtype = leaf.dtype if hasattr(leaf, "dtype") else np.asarray(leaf).dtype
            params.append(param_entry(name, np.shape(leaf), str(dtype)))
    return summary("pytree", params, [])


def _check_run(run) -> None:
    require_open_run(run, "record()")


def _record_trees(run, step: int, trees: dict, capture: str, include, exclude, every: int = 1,
                  updates=None) -> None:
    flat = {kind: flatten(tree) for kind, tree in trees.items() if tree is not None}
    names = sorted({n for items in flat.values() for n, _ in items})
    chosen = set(select_names(names, include, exclude)) if (include or exclude) else set(names)
    plan = CapturePlan.make(every, capture, capture, capture)
    for kind, items in flat.items():
        mode = "full" if kind == "probe" else capture
        if mode is None:
            continue
        items = [(n, leaf) for n, leaf in items if n in chosen]
        for name, value in _to_host(items):
            extra = {}
            if kind == "weights" and updates:
                extra["updates"] = updates
            elif kind == "activations":
                extra["units"] = path_unit_meta(name, np.shape(value))
            record_host(run, plan, f"{kind}/{name}", value, step, mode, **extra)


def record(run, step: int, params=None, grads=None, *, activations=None, capture="stats",
           every: int = 1, include=None, exclude=None, updates="auto") -> bool:
    """Record pytrees at ``step`` (updates done so far): ``params`` as ``weights/<path>``,
    ``grads`` (those of update ``step``) as ``grads/<path>``, ``activations`` as
    ``activations/<path>``. ``capture``: ``"full"`` or ``"stats"``. Steps not divisible by
    ``every`` are skipped (returns False). Sets ``run.step = step``. Call it outside ``jit``.
    ``updates``: ``"stats"`` (``"auto"``: when ``params`` are given) records the stats of
    ``params`` minus those of the previous recorded step as ``updates/<path>`` (the writer
    computes them; docs/doctor.md). Live alerts: ``run.enable_alerts()``.
    """
    _check_run(run)
    mode = check_mode("capture", capture)
    if mode is None:
        raise NetlapseError("capture=None records nothing; use \"full\" or \"stats\".")
    plan = CapturePlan.make(every, mode, mode, mode)
    step = int(step)
    run.step = step
    if not plan.due(step):
        return False
    if params is not None and run not in _SUMMARISED:
        _SUMMARISED.add(run)
        run.set_model_summary({"name": "jax", "version": jax.__version__}, _summary({"weights": params}))
    _record_trees(run, step, {"weights": params, "grads": grads, "activations": activations},
                  mode, include, exclude, every,
                  resolve_updates(updates, True, True) if params is not None else None)
    return True


# ---------------------------------------------------------------------- Flax NNX
def _nnx():
    try:
        from flax import nnx
    except ImportError as exc:  # pragma: no cover
        raise ImportError("record_nnx needs Flax: pip install 'netlapse[jax]'") from exc
    return nnx


def nnx_summary(model) -> dict:
    nnx = _nnx()
    base = _summary({"weights": nnx.state(model, nnx.Param)})
    modules = []
    for path, m in nnx.iter_modules(model):
        own = sum(int(np.prod(np.shape(v))) for _, v in flatten(nnx.state(m, nnx.Param)))
        modules.append(module_entry("/".join(map(str, path)) or "model", type(m).__name__, own,
                                    not any(True for p, _ in nnx.iter_modules(m) if p)))
    return summary(type(model).__name__, base["parameters"], modules)


def probe_outputs(model, probe) -> dict[str, object]:
    """Outputs of every sub-module's ``__call__`` (and values the model ``sow``s as
    ``nnx.Intermediate``) on ``probe``, by name, via ``nnx.capture``."""
    nnx = _nnx()
    _, inter = nnx.capture(model, nnx.Intermediate, method_outputs=nnx.Intermediate)(probe)
    out = {}
    for name, leaf in flatten(inter):
        out_name = _intermediate_name_from(name)
        if out_name is not None:
            out.setdefault(out_name, leaf)
    return out


def _intermediate_name_from(name: str) -> str | None:
    """``fc1/__call__/value/0`` -> ``fc1``; the model's own output -> None."""
    parts = name.split("/")
    if parts and parts[-1].isdigit():
        idx = parts.pop()
        if idx != "0":
            parts.append(idx)
    if parts and parts[-1] == "value":
        parts.pop()
    parts = [p for p in parts if p != "__call__"]
    return "/".join(parts) or None


def record_nnx(run, step: int, model, grads=None, *, probe=None, capture="stats", every: int = 1,
               include=None, exclude=None) -> bool:
    """Record a Flax NNX model at ``step``: its ``nnx.Param``s as ``weights/<path>``, ``grads``
    (the ``nnx.State`` that ``nnx.grad`` returns for update ``step``) as ``grads/<path>``, and
    with ``probe`` (an input batch, or ``(x, y)``) every sub-module's output on it, in full, as
    ``probe/<path>`` (values the model ``sow``s as ``nnx.Intermediate`` too). The probe runs as
    the model is: call ``model.eval()`` around training code if dropout should be off."""
    nnx = _nnx()
    _check_run(run)
    if not isinstance(model, nnx.Module):
        raise NetlapseError(f"record_nnx() takes a flax.nnx.Module, got {type(model).__name__}; "
                            "for plain pytrees use netlapse.jax.record().")
    mode = check_mode("capture", capture)
    plan = CapturePlan.make(every, mode, mode, mode)
    step = int(step)
    run.step = step
    if not plan.due(step):
        return False
    if run not in _SUMMARISED:
        _SUMMARISED.add(run)
        run.set_model_summary({"name": "flax.nnx", "version": jax.__version__}, nnx_summary(model))
    trees = {"weights": nnx.state(model, nnx.Param), "grads": grads}
    if probe is not None:
        x, y = split_probe(probe)
        if _PROBED.get(run) is None:
            _PROBED[run] = True
            record_host(run, plan, "inputs/probe", np.asarray(jax.device_get(x)), step, "full")
            if y is not None:
                record_host(run, plan, "inputs/probe_target", np.asarray(jax.device_get(y)), step, "full")
        try:
            trees["probe"] = probe_outputs(model, x)
        except Exception as exc:
            raise probe_rejected(np.shape(x), exc) from exc
    _record_trees(run, step, trees, mode, include, exclude)
    return True
