"""torch.compile and the PyTorch adapter: names without ``_orig_mod``, eager probe passes, and
hooks that a model compiled before ``watch()`` actually runs.

``torch.compile(model)`` returns an ``OptimizedModule`` whose parameters and modules are named
``_orig_mod.<name>``; a compiled submodule adds ``._orig_mod`` inside names. netlapse records
under the names of the original model.

Dynamo does not guard on module hooks (``torch._dynamo.config.skip_nnmodule_hook_guards``): a
hook added after a compiled model first ran is silently never called, and one removed keeps
being called. So ``watch()`` drops Dynamo's cached code for the watched model (one
recompilation at its next call, which then includes netlapse's hooks); after that, hooks are
never added or removed while training, so nothing recompiles.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

__all__ = ["unwrap", "clean_name", "eager_call", "forget_compiled_code", "has_compiled_parts"]

_ORIG = "_orig_mod"


def unwrap(model: nn.Module) -> nn.Module:
    """The module that ``torch.compile(module)`` wrapped (any depth), else ``model`` itself."""
    while isinstance(getattr(model, _ORIG, None), nn.Module) and _is_optimized(model):
        model = getattr(model, _ORIG)
    return model


def _dynamo_loaded() -> bool:
    """Nothing can be compiled before ``torch._dynamo`` is imported (and importing it costs
    seconds, so netlapse does not do it for eager users)."""
    return "torch._dynamo" in sys.modules


def _is_optimized(module) -> bool:
    if not _dynamo_loaded():
        return False
    try:
        from torch._dynamo.eval_frame import OptimizedModule
    except ImportError:  # pragma: no cover - torch without dynamo
        return False
    return isinstance(module, OptimizedModule)


def has_compiled_parts(model: nn.Module) -> bool:
    """Does ``model`` contain compiled submodules (their calls run compiled even when the
    model itself is called eagerly)?"""
    return any(_is_optimized(m) or getattr(m, "_compiled_call_impl", None) is not None
               for m in model.modules() if m is not model)


def clean_name(name: str) -> str:
    """``layers.0._orig_mod.fc`` -> ``layers.0.fc``: the name in the uncompiled model."""
    if _ORIG not in name:
        return name
    return ".".join(part for part in name.split(".") if part != _ORIG)


def eager_call(model: nn.Module, *args):
    """Call ``model`` without its own ``model.compile()`` (probe passes run eagerly: exact
    values as in eager mode, and no extra compiled variant of the training graph)."""
    if getattr(model, "_compiled_call_impl", None) is not None:
        return model._call_impl(*args)
    return model(*args)


def _codes(model: nn.Module) -> list:
    """Code objects Dynamo may have compiled for ``model``: each module class's ``forward``,
    ``Module._call_impl`` (``model.compile()``) and the wrapper ``torch.compile`` uses for
    modules whose ``forward`` is torch's own (``nn.Sequential``)."""
    codes = {nn.Module._call_impl.__code__, nn.Module._wrapped_call_impl.__code__}
    for m in model.modules():
        fwd = getattr(type(m), "forward", None)
        if hasattr(fwd, "__code__"):
            codes.add(fwd.__code__)
    try:
        from torch._dynamo import external_utils

        codes.add(external_utils.wrap_inline(len).__code__)
        for flag in (True, False):
            codes.add(external_utils.wrap_inline_with_error_on_graph_break(len, flag).__code__)
    except Exception:  # noqa: BLE001 - a torch without this helper: nothing to forget there
        pass
    return list(codes)


def forget_compiled_code(model: nn.Module) -> int:
    """Drop Dynamo's compiled code for ``model`` so that its next call is traced again with the
    hooks it has now. Returns how many code objects had compiled entries (0: nothing was
    compiled yet, nothing done)."""
    if not _dynamo_loaded():
        return 0
    try:
        from torch._C._dynamo.eval_frame import _debug_get_cache_entry_list, reset_code
    except ImportError:  # pragma: no cover
        return 0
    dropped = 0
    for code in _codes(model):
        try:
            if _debug_get_cache_entry_list(code):
                reset_code(code)
                dropped += 1
        except Exception:  # noqa: BLE001 - best effort; the first-step check still warns
            continue
    return dropped


def is_compiling() -> bool:
    return torch.compiler.is_compiling()
