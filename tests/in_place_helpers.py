"""What tests/test_torch_weights_in_place.py and tests/test_torch_grads_in_place.py share: a
tiny model, its batches, and the ordering of the writer and the training thread through
``LiveCapture.hook`` (events, no sleeping) on one kind of capture, and the check of stored
stats rows against the tensors the test took itself."""

import numpy as np
import pytest
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


def assert_stats_rows(stream, tensors: dict):
    """Each stored stats row of ``stream`` matches the tensor the test took at that step."""
    for i, k in enumerate(stream.steps):
        a = tensors[k].numpy().astype(np.float64)
        row = stream.stats.iloc[i]
        assert row["mean"] == pytest.approx(a.mean(), rel=1e-9, abs=1e-15)
        assert row["max"] == a.max() and row["min"] == a.min()
        assert row["norm"] == pytest.approx(np.linalg.norm(a), rel=1e-9)
