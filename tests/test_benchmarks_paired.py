"""benchmarks/paired_overhead.py end to end, tiny: the recorded arm stores every step it took,
and the numbers it reports come from both arms' blocks (benchmarks/_paired.py)."""

import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import _paired  # noqa: E402
import paired_overhead  # noqa: E402


def test_alternate_flips_the_order_each_pair_and_times_the_after_hook():
    order = []
    bare = _paired.Arm(lambda: order.append("A"))
    recorded = _paired.Arm(lambda: order.append("B"), lambda: order.append("drain"))
    ratios = _paired.alternate(bare, recorded, pairs=3, block=2)
    assert "".join(o[0] for o in order) == "AABBd" "BBdAA" "AABBd"
    assert len(ratios) == 3 and len(bare.blocks) == len(recorded.blocks) == 3
    assert len(bare.step_s) == len(recorded.step_s) == 6
    assert ratios == [r / b for r, b in zip(recorded.blocks, bare.blocks)]
    assert _paired.spread([1.0, 2.0, 3.0]) == (2.0, 1.5, 2.5)


def test_paired_child_records_every_step_of_the_watched_arm():
    r = paired_overhead._spawn("mlp", "nl_stats", False, "1", pairs=2, block_s=0.05)
    assert r["complete"] is True   # every stream has warm-up + 2 blocks of steps (weights +1)
    assert r["pairs"] == 2 and r["block"] >= 3
    assert r["bare_step_ms"] > 0 and r["step_ms"] > 0
