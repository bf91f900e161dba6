import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from netlapse._stats import HIST_BINS, STAT_NAMES, hist_edges, summarize


def reference(x):
    """Stats the slow, obvious way, in float64, over finite values."""
    x = np.asarray(x).ravel().astype(np.float64)
    fin = x[np.isfinite(x)]
    out = dict(zero_frac=np.mean(x == 0), nonfinite=np.sum(~np.isfinite(x)))
    if fin.size:
        out.update(mean=np.mean(fin), std=np.std(fin), min=fin.min(), max=fin.max(),
                   norm=np.linalg.norm(fin), mean_abs=np.mean(np.abs(fin)))
        lo, hi = fin.min(), fin.max()
        if hi > lo:
            idx = np.minimum(np.floor((fin - lo) * (HIST_BINS / (hi - lo))).astype(int), HIST_BINS - 1)
            out["hist"] = np.bincount(idx, minlength=HIST_BINS)
        else:
            out["hist"] = np.eye(HIST_BINS, dtype=int)[0] * fin.size
    return out


def check(x):
    stats, hist = summarize(x)
    ref = reference(x)
    for i, name in enumerate(STAT_NAMES):
        if name in ref:
            np.testing.assert_allclose(stats[i], ref[name], rtol=1e-9, atol=1e-12, err_msg=name)
        else:
            assert np.isnan(stats[i]), name
    if "hist" in ref:
        np.testing.assert_array_equal(hist, ref["hist"])
        assert hist.sum() == np.isfinite(np.asarray(x, np.float64)).sum()
    else:
        assert hist.sum() == 0


def test_known_values():
    x = np.array([0.0, 1.0, -1.0, 2.0, 0.0], np.float32)
    stats, hist = summarize(x)
    s = dict(zip(STAT_NAMES, stats))
    assert s["mean"] == pytest.approx(0.4)
    assert s["min"] == -1 and s["max"] == 2
    assert s["norm"] == pytest.approx(np.sqrt(6))
    assert s["mean_abs"] == pytest.approx(0.8)
    assert s["zero_frac"] == pytest.approx(0.4)
    assert s["nonfinite"] == 0
    assert hist[0] == 1 and hist[-1] == 1 and hist.sum() == 5
    # 0 sits at (0 - -1) * 64 / 3 = 21.33 -> bin 21; 1 at 42.67 -> bin 42
    assert hist[21] == 2 and hist[42] == 1


def test_nonfinite_left_out_of_moments_and_histogram():
    x = np.array([1.0, np.nan, 3.0, np.inf, -np.inf, 0.0], np.float32)
    stats, hist = summarize(x)
    s = dict(zip(STAT_NAMES, stats))
    assert s["nonfinite"] == 3
    assert s["mean"] == pytest.approx(4 / 3)
    assert s["max"] == 3 and s["min"] == 0
    assert s["zero_frac"] == pytest.approx(1 / 6)
    assert hist.sum() == 3


def test_all_nonfinite_and_empty_and_constant():
    stats, hist = summarize(np.array([np.nan, np.inf]))
    assert stats[STAT_NAMES.index("nonfinite")] == 2 and np.isnan(stats[0]) and hist.sum() == 0
    stats, hist = summarize(np.zeros((0, 3)))
    assert hist.sum() == 0
    stats, hist = summarize(np.full(7, 2.5))
    assert stats[1] == 0 and hist[0] == 7 and hist.sum() == 7


def test_edges_layout():
    e = hist_edges(-1.0, 3.0)
    assert len(e) == HIST_BINS + 1 and e[0] == -1 and e[-1] == 3
    np.testing.assert_allclose(np.diff(e), 4 / HIST_BINS)


@settings(max_examples=200, deadline=None)
@given(arrays(np.float32, st.integers(1, 300),
              elements=st.one_of(st.floats(-1e6, 1e6, width=32), st.just(np.nan), st.just(np.inf))))
def test_matches_reference(x):
    check(x)


def test_large_tensor_and_int_dtype():
    rng = np.random.default_rng(0)
    check(rng.normal(size=(784, 512)).astype(np.float32))
    check(rng.integers(-5, 5, size=1000))


@pytest.mark.parametrize("hi", [0.7, 1.1, 5.3])
def test_values_on_bin_edges_follow_the_documented_formula(hi):
    # values on (or within one rounding of) the bin edges: the documented float64 spelling
    # floor((x - lo) * (64 / (hi - lo))) decides; x * 64 / hi would put several elsewhere
    x = np.arange(HIST_BINS + 1) * hi / HIST_BINS
    documented = (x * (HIST_BINS / x.max())).astype(np.int64)
    assert (documented != np.floor(x * HIST_BINS / x.max()).astype(np.int64)).any()   # sharp
    check(x)


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.int32, np.uint8, np.bool_])
def test_other_dtypes_and_nonfinite_float64(dtype):
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(33, 17)) * 4).astype(dtype)
    check(x)
    if np.dtype(dtype).kind == "f":
        x = x.copy()
        x.flat[[0, 5, 9]] = [np.nan, np.inf, -np.inf]
        check(x)


def test_summarize_is_thread_safe():
    # the writer thread and a caller may summarize at once; each thread has its own scratch
    import threading

    rng = np.random.default_rng(4)
    arrays = [rng.normal(size=n).astype(np.float32) for n in (5000, 70000, 120000)]
    expected = [summarize(a) for a in arrays]
    errors = []

    def work(i):
        for _ in range(20):
            s, h = summarize(arrays[i])
            if not (np.array_equal(s, expected[i][0]) and np.array_equal(h, expected[i][1])):
                errors.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_counting_with_and_without_torch_loaded(monkeypatch):
    # _bincount uses torch's byte bincount only when torch is already imported; same counts
    import sys

    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(size=50000), rng.uniform(-3, 7, size=20000), [7.0, -3.0]])
    x = x.astype(np.float32)
    monkeypatch.setitem(sys.modules, "torch", torch)
    with_torch = summarize(x)
    check(x)
    monkeypatch.delitem(sys.modules, "torch")
    without = summarize(x)
    check(x)
    np.testing.assert_array_equal(with_torch[1], without[1])
    np.testing.assert_array_equal(with_torch[0], without[0])


def test_huge_float64_values_do_not_overflow_the_moments():
    x = np.array([1e308, 1.5e308, -1.7e308, 0.0, 3.0])
    stats, hist = summarize(x)
    s = dict(zip(STAT_NAMES, stats))
    k = 2.0 ** -1024   # exact power-of-two scaling: the reference without overflow
    scaled = x * k
    assert np.isfinite(s["mean"]) and np.isfinite(s["std"])
    assert s["mean"] == pytest.approx(np.mean(scaled) * 2.0 ** 1000 * 2.0 ** 24, rel=1e-12)
    assert s["std"] == pytest.approx(np.std(scaled) * 2.0 ** 1000 * 2.0 ** 24, rel=1e-12)
    assert s["mean_abs"] == pytest.approx(np.mean(np.abs(scaled)) * 2.0 ** 1000 * 2.0 ** 24,
                                          rel=1e-12)
    assert s["min"] == -1.7e308 and s["max"] == 1.5e308
    assert s["norm"] == np.inf   # the true L2 norm (~2.5e308) is beyond float64
    lo, hi = -1.7e308 * k, 1.5e308 * k
    want = np.bincount(np.minimum(np.floor((x * k - lo) * (HIST_BINS / (hi - lo))).astype(int),
                                  HIST_BINS - 1), minlength=HIST_BINS)
    np.testing.assert_array_equal(hist, want)
