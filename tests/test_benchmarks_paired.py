"""The benchmarks end to end, small: benchmarks/paired_overhead.py (the recorded arm stores every
step it took, and the numbers it reports come from both arms' blocks, benchmarks/_paired.py) and
benchmarks/kernel_builds.py."""

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


def test_kernel_builds_times_two_builds_on_the_same_tensors_and_checks_their_outputs(capsys):
    """benchmarks/kernel_builds.py loads another build as its own module, calls both on a
    model's tensors and prints one row per call (here the same build twice: equal outputs)."""
    from netlapse import _stats

    if not _stats.kernel_available():
        pytest.skip("netlapse._csummary is not built here")
    import kernel_builds

    other = kernel_builds.load_build(_stats._kernel().__file__)
    assert other is not _stats._kernel() and hasattr(other, "summarize_with_delta")
    assert kernel_builds.main(["--against", _stats._kernel().__file__, "--model", "mlp",
                               "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "mlp: 6 float32 tensors" in out and "outputs identical" in out
    rows = [line for line in out.splitlines() if line.startswith("| summarize")]
    assert [r.split("|")[1].strip() for r in rows] == ["summarize_many", "summarize_with_delta"]
    assert all(float(r.split("|")[2]) > 0 and float(r.split("|")[3]) > 0 for r in rows)
