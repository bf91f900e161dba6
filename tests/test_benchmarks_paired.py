"""The benchmarks end to end, small: benchmarks/paired_overhead.py (the recorded arm stores every
step it took, and the numbers it reports come from both arms' blocks, benchmarks/_paired.py) and
benchmarks/kernel_builds.py."""

import statistics
import sys
import threading
import time
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
    if _paired.thread_cpu_clock(threading.current_thread()) is not None:   # Linux, macOS
        assert r["writer_thread_cpu_ms"] > 0 and r["writer_core_share"] > 0


def test_the_writer_clock_is_charged_to_the_blocks_and_shared_over_the_cores():
    readings = iter([10.0, 10.25, 10.25, 10.75])   # the writer's CPU clock at block edges
    steps = []
    bare = _paired.Arm(lambda: steps.append("A"))
    recorded = _paired.Arm(lambda: steps.append("B"), writer_clock=readings.__next__)
    _paired.alternate(bare, recorded, pairs=2, block=5)
    assert recorded.writer_cpu == pytest.approx(0.75) and bare.writer_cpu == 0.0
    r = _paired.summary(bare, recorded, [1.0, 1.0])
    assert r["writer_thread_cpu_ms"] == pytest.approx(0.75 / 10 * 1e3)
    bare_step = statistics.median(bare.step_s)
    assert r["writer_core_share"] == pytest.approx(0.075 / (_paired.cores() * bare_step))
    assert _paired.summary(recorded, bare, [1.0])["writer_thread_cpu_ms"] is None


def test_thread_cpu_clock_reads_that_threads_own_cpu_time():
    done, go = threading.Event(), threading.Event()

    def work():
        total = 0
        for i in range(300_000):
            total += i * i
        done.set()
        go.wait()

    t = threading.Thread(target=work)
    t.start()
    try:
        clock = _paired.thread_cpu_clock(t)
        if clock is None:
            pytest.skip("no per-thread CPU clocks on this platform")
        done.wait()
        used = clock()
        assert used > 0
        mine = time.thread_time()
        total = 0
        for i in range(300_000):   # the calling thread works; the other one waits on ``go``
            total += i * i
        mine = time.thread_time() - mine
        assert clock() - used < mine / 2   # that thread's clock, not the caller's
    finally:
        go.set()
        t.join()


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
