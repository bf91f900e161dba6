"""What tests/test_torch_weights_in_place.py and tests/test_torch_grads_in_place.py share: a
tiny model, its batches, and the ordering of the writer and the training thread through
``LiveCapture.hook`` (events, no sleeping) on one kind of capture."""

import torch
from torch import nn

import netlapse._record.pipeline as pipeline


def tiny_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))


def batch(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(32, 6, generator=g), torch.randint(0, 3, (32,), generator=g)


def hook_captures(monkeypatch, kind: str, fn):
    """``fn(cap, event)`` for the live captures of ``kind`` ("weights" or "grads") only."""
    def only(cap, event):
        if cap.names[0].startswith(kind + "/"):
            fn(cap, event)
    monkeypatch.setattr(pipeline.LiveCapture, "hook", staticmethod(only))
