import os
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from netlapse import _stats
from netlapse._stats import (HIST_BINS, STAT_NAMES, hist_edges, kernel_available, summarize,
                             summarize_many)


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


# ---------------------------------------------------------------------------------------------
# The compiled kernel (netlapse._csummary) against the numpy path and the reference
# ---------------------------------------------------------------------------------------------

needs_kernel = pytest.mark.skipif(
    not kernel_available(),
    reason="netlapse._csummary is not built (no C compiler at install time) or "
           "NETLAPSE_NO_CKERNEL is set: only the numpy path runs")
EXACT = [STAT_NAMES.index(n) for n in ("min", "max", "zero_frac", "nonfinite")]
MOMENTS = [STAT_NAMES.index(n) for n in ("mean", "std", "norm", "mean_abs")]


def test_kernel_is_built_where_required():
    # CI sets NETLAPSE_REQUIRE_CKERNEL=1 so that a silently failed build does not pass as numpy
    if os.environ.get("NETLAPSE_REQUIRE_CKERNEL", "") not in ("", "0"):
        assert kernel_available(), ("NETLAPSE_REQUIRE_CKERNEL is set but netlapse._csummary "
                                    "cannot be imported (or NETLAPSE_NO_CKERNEL is set)")


def kernel_rows(arrays):
    """The kernel's own answer: (status list, stats (k, 8), hist (k, 64))."""
    from netlapse import _csummary

    k = len(arrays)
    stats = np.full((k, 8), -12345.0)
    hist = np.full((k, HIST_BINS), -7, dtype=np.int64)
    status = _csummary.summarize_many(arrays, stats, hist)
    return status, stats, hist


def moment_atol(x):
    """Sums in another order differ by up to about m * eps * max|x| (the mean of values that
    cancel, the std of a constant whose sum is inexact); 1e-12 as in ``check``."""
    x = np.asarray(x, np.float64).ravel()
    fin = np.abs(x[np.isfinite(x)])
    if fin.size == 0:
        return 1e-12
    return 1e-12 + 4 * fin.size * np.finfo(np.float64).eps * fin.max()


def assert_same_summary(got, want, x, rtol=1e-9):
    """Histogram, min, max, zero_frac, nonfinite identical; moments to rounding."""
    (s1, h1), (s2, h2) = got, want
    np.testing.assert_array_equal(h1, h2)
    np.testing.assert_array_equal(s1[EXACT], s2[EXACT])   # NaN == NaN here
    np.testing.assert_allclose(s1[MOMENTS], s2[MOMENTS], rtol=rtol, atol=moment_atol(x))


def check_reference_scaled(x, stats, hist):
    """``check`` with the tolerance of ``moment_atol`` (for data with extreme cancellation)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)   # np.mean of no finite value
        ref = reference(x)
    for i, name in enumerate(STAT_NAMES):
        if name in ref:
            atol = moment_atol(x) if i in MOMENTS else 0
            np.testing.assert_allclose(stats[i], ref[name], rtol=1e-9, atol=atol, err_msg=name)
        else:
            assert np.isnan(stats[i]), name
    if "hist" in ref:
        np.testing.assert_array_equal(hist, ref["hist"])
    else:
        assert hist.sum() == 0


def finite_max_abs(x):
    x = np.asarray(x, np.float64)
    fin = np.abs(x[np.isfinite(x)])
    return fin.max() if fin.size else 0.0


def reference_applies(x):
    """``reference`` squares without scaling and has no branch for a range so narrow that
    64 / range overflows (the documented ``x >= max`` rule, checked against numpy instead)."""
    x = np.asarray(x, np.float64)
    fin = x[np.isfinite(x)]
    if fin.size == 0:
        return True
    lo, hi = fin.min(), fin.max()
    with np.errstate(over="ignore"):
        return max(-lo, hi) < 1e150 and (hi == lo or np.isfinite(HIST_BINS / (hi - lo)))


def check_kernel(x):
    """The kernel's rows against the numpy path and the reference; returns the status."""
    (status,), stats, hist = kernel_rows([x])
    if status:
        # only float64 beyond 2**450 is handed back (for the numpy power-of-two scaling)
        assert x.dtype == np.float64 and finite_max_abs(x) >= 2.0 ** 450
        assert (stats == -12345.0).all() and (hist == -7).all()   # rows left untouched
    else:
        assert_same_summary((stats[0], hist[0]), _stats._summarize_numpy(x), x)
        if reference_applies(x):
            check_reference_scaled(x, stats[0], hist[0])
    assert_same_summary(summarize(x), _stats._summarize_numpy(x), x)
    return status


SPECIAL32 = [0.0, -0.0, 1.0, -1.0, np.nan, np.inf, -np.inf, 1e-45, -1e-45, 1.17e-38, 3.4e38,
             -3.4e38, 1e-30, 0.5, 2.0 ** 24, 1 + 2.0 ** -23]
SPECIAL64 = SPECIAL32 + [5e-324, -5e-324, 2.2e-308, 1e300, -1e300, 1.7e308, 2.0 ** 450,
                         2.0 ** 449.9, 1e-300, 1 + 2.0 ** -52]


@needs_kernel
@settings(max_examples=300, deadline=None)
@given(arrays(np.float32, st.integers(0, 5000),
              elements=st.one_of(st.floats(width=32), st.sampled_from(SPECIAL32))))
def test_kernel_float32_any_values(x):
    assert check_kernel(x) == 0


@needs_kernel
@settings(max_examples=300, deadline=None)
@given(arrays(np.float64, st.integers(0, 5000),
              elements=st.one_of(st.floats(), st.sampled_from(SPECIAL64))))
def test_kernel_float64_any_values(x):
    check_kernel(x)


@st.composite
def dense_arrays(draw):
    """Every element drawn at random (hypothesis' own arrays are mostly one fill value):
    normal values at a random scale and offset, rounded to a coarse grid or not, with random
    special values sprinkled in, or a constant."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    n = draw(st.integers(0, 5000))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    exp = draw(st.integers(-40, 38) if dtype == np.float32 else st.integers(-320, 300))
    kind = draw(st.sampled_from(["normal", "offset", "grid", "constant", "uniform"]))
    with np.errstate(over="ignore", under="ignore"):
        scale = 10.0 ** exp
        if kind == "normal":
            x = rng.normal(size=n) * scale
        elif kind == "offset":   # a narrow range far from zero: few distinct values per bin
            x = scale * (1 + rng.normal(size=n) * 10.0 ** draw(st.integers(-15, -1)))
        elif kind == "grid":     # values on a grid of 64ths of the range: many on bin edges
            x = rng.integers(-64, 65, size=n) * (scale / 64)
        elif kind == "constant":
            x = np.full(n, scale * draw(st.sampled_from([1.0, -1.0, 0.1, 3.0, 1 / 3])))
        else:
            x = rng.uniform(-scale, scale, size=n)
        x = x.astype(dtype)
    specials = draw(st.lists(st.sampled_from(SPECIAL32 if dtype == np.float32 else SPECIAL64),
                             max_size=5))
    if n:
        for v in specials:
            x[rng.integers(n)] = v
    return x


@needs_kernel
@settings(max_examples=300, deadline=None)
@given(dense_arrays())
def test_kernel_dense_random_arrays(x):
    check_kernel(x)


@needs_kernel
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_values_on_bin_edges(dtype):
    # values on (or one rounding from) every bin edge, for many ranges: the kernel must do the
    # same float64 subtract, multiply and truncation as numpy, bit for bit
    rng = np.random.default_rng(6)
    for _ in range(300):
        lo = rng.normal() * 10.0 ** rng.integers(-5, 6)
        hi = lo + abs(rng.normal()) * 10.0 ** rng.integers(-8, 6)
        edges = (lo + (hi - lo) * (np.arange(HIST_BINS + 1) / HIST_BINS)).astype(dtype)
        x = np.concatenate([edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf),
                            rng.uniform(lo, hi, 37).astype(dtype)]).astype(dtype)
        x = np.clip(x, edges[0], edges[-1])
        assert check_kernel(x) == 0
    for hi in (0.7, 1.1, 5.3):   # the sharp cases of test_values_on_bin_edges_...
        assert check_kernel((np.arange(HIST_BINS + 1) * hi / HIST_BINS).astype(dtype)) == 0


@needs_kernel
def test_kernel_signed_zero_denormals_and_narrow_ranges():
    cases = [
        np.array([-0.0, 0.0, -0.0], np.float32),                 # all zero: hi == lo
        np.array([-0.0, 1.0, 0.0, -2.0], np.float32),
        np.array([-0.0] * 40 + [0.0] * 3, np.float64),
        np.array([1e-45, 2e-45, 0.0, -1e-45] * 9, np.float32),     # float32 denormals
        np.array([0.0, 5e-324, 1e-323] * 7, np.float64),          # 64 / range overflows
        np.array([1.0, 1.0 + 2.0 ** -52, 5e-324]),
        np.array([1.0, np.nextafter(1.0, 2.0)] * 20),             # range of one ulp
        np.array([2.0 ** 449, -2.0 ** 449, 1.0]),                 # just inside 2**450
        np.array([np.nan] * 17 + [2.5], np.float32),               # one finite value
        np.array([np.inf, -np.inf, np.nan] * 11, np.float32),      # none finite
        np.array([], np.float32),
        np.float64(3.5),                                           # 0-d
    ]
    for x in cases:
        assert check_kernel(np.asarray(x)) == 0
    (status,), _, _ = kernel_rows([np.array([1.0, 2.0 ** 450])])
    assert status == 1
    # the NaN of a float32 is not a zero; -0.0 is
    s, h = summarize(np.array([-0.0, np.nan, 0.0, 1.0], np.float32))
    assert s[STAT_NAMES.index("zero_frac")] == 0.5 and s[STAT_NAMES.index("nonfinite")] == 1


# _csummary.c counts arrays of PAIR_MIN (16384) values or more two values at a time (a table
# of pairs of bins, folded at the end): sizes on both sides of it, odd tails, values on bin
# edges, one bin holding nearly everything, non-finite values in a middle and the last block
@needs_kernel
@pytest.mark.parametrize("n", [16383, 16384, 16387, 16384 + 1023, 70001])
@pytest.mark.parametrize("kind", ["normal", "grid", "spike", "nonfinite"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_counts_pairs_of_values_exactly(n, kind, dtype):
    rng = np.random.default_rng(n)
    x = rng.normal(size=n)
    if kind == "grid":        # every value on one of the 65 edges
        x = rng.integers(0, 65, size=n) / 64.0
    elif kind == "spike":     # all but a few in the first bin: every pair in one cell
        x = np.zeros(n)
        x[rng.integers(n, size=3)] = 1.0
    x = x.astype(dtype)
    if kind == "nonfinite":
        x[n // 2], x[n - 2], x[5000] = np.nan, np.inf, -np.inf
    assert check_kernel(x) == 0
    finite = x[np.isfinite(x)]
    lo, hi = float(finite.min()), float(finite.max())
    np.testing.assert_array_equal(
        _stats.histogram_many([x], [lo], [hi])[0],
        _stats.histogram(finite.astype(np.float64), lo, hi))


@needs_kernel
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_large_tensor(dtype):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(784, 512)).astype(dtype)
    assert check_kernel(x) == 0
    x[100, 7] = np.nan   # the finite-only passes over the same tensor
    x[3, 3] = -np.inf
    assert check_kernel(x) == 0
    check(x)


def test_summarize_many_mixed_list_equals_summarize():
    rng = np.random.default_rng(8)
    base = rng.normal(size=(40, 30)) * 3
    with_nan = base.astype(np.float32)
    with_nan[1, 2] = np.nan
    arrays = [
        base.astype(np.float32), base, base.astype(np.float16), base.astype(np.int32),
        base > 0, np.zeros(0, np.float32), np.zeros((0, 4), np.int64),
        base.astype(np.float32)[:, ::3],                  # not contiguous
        np.asfortranarray(base.astype(np.float32)),       # not C-contiguous
        base.astype(">f4"), base.astype(">f8"),            # not native byte order
        np.array([1e308, -1.7e308, 0.0, 3.0]),            # float64 beyond 2**450
        with_nan, np.float32(2.5), np.full(9, 7.0), base.astype(np.uint8),
    ]
    stats, hist = summarize_many(arrays)
    assert stats.shape == (len(arrays), 8) and hist.shape == (len(arrays), HIST_BINS)
    assert stats.dtype == np.float64 and hist.dtype == np.int64
    for i, a in enumerate(arrays):
        s, h = summarize(a)
        np.testing.assert_array_equal(stats[i], s, err_msg=str(i))   # bit for bit (NaN == NaN)
        np.testing.assert_array_equal(hist[i], h, err_msg=str(i))
        assert_same_summary((stats[i], hist[i]), _stats._summarize_numpy(a), a)
    empty_stats, empty_hist = summarize_many([])
    assert empty_stats.shape == (0, 8) and empty_hist.shape == (0, HIST_BINS)


def _delta_cases():
    rng = np.random.default_rng(11)
    base = (rng.normal(size=(50, 40)) * 2).astype(np.float32)
    step = (rng.normal(size=(50, 40)) * 1e-3).astype(np.float32)
    with_nan = base.copy()
    with_nan[3, 4] = np.nan
    inf_pair = np.array([np.inf, 1.0, -np.inf, 2.0], np.float32)
    return [
        (base + step, base),                                         # float32, a small update
        ((base + step).astype(np.float64), base.astype(np.float64)),  # float64
        (with_nan, base),                                            # NaN in the new weights
        (inf_pair, inf_pair.copy()),                                 # inf - inf is NaN
        (base, base.copy()),                                         # no change: all zeros
        (np.zeros(0, np.float32), np.zeros(0, np.float32)),          # empty
        (np.array([1e308, -1.7e308, 0.0]), np.array([-1e308, 1e308, 0.0])),   # float64 > 2**450
        (np.array([1e300, 2.0]), np.array([1e300, 1.0])),            # the delta is small again
        (np.array([1.0, 2.0]), np.array([-1e300, 1.0])),             # only the delta is huge
        ((base + step).astype(np.float16), base.astype(np.float16)),  # not a kernel dtype
        (np.ascontiguousarray((base + step)[:, ::2]), base[:, ::2].copy()),   # prev's copy is fine
        ((base + step).astype(np.float32), base.astype(np.float64)),  # dtypes differ: numpy path
    ]


@pytest.mark.parametrize("kernel", [True, False])
def test_summarize_with_delta_equals_summaries_of_the_difference(kernel, monkeypatch):
    if kernel and not kernel_available():
        pytest.skip("compiled kernel not built")
    if not kernel:
        monkeypatch.setattr(_stats, "_kernel_module", None)
    cases = _delta_cases()
    arrays = [a for a, _ in cases]
    prevs = [p.copy() for _, p in cases]
    expected = []
    for a, p in cases:
        with np.errstate(all="ignore"):
            diff = np.subtract(a, p.astype(a.dtype, copy=False)) if a.dtype != p.dtype else a - p
        expected.append((summarize(a), summarize(diff.astype(p.dtype))))
    dstats, dhist, stats, hist = _stats.summarize_with_delta(arrays, prevs)
    for i, ((a, _), ((s, h), (ds, dh))) in enumerate(zip(cases, expected)):
        np.testing.assert_array_equal(stats[i], s, err_msg=str(i))     # bit for bit
        np.testing.assert_array_equal(hist[i], h, err_msg=str(i))
        np.testing.assert_array_equal(dstats[i], ds, err_msg=str(i))
        np.testing.assert_array_equal(dhist[i], dh, err_msg=str(i))
        np.testing.assert_array_equal(prevs[i], a.astype(prevs[i].dtype), err_msg=str(i))  # the new copy


@needs_kernel
def test_summarize_with_delta_kernel_statuses():
    """0: done; 1: not handled, prev untouched; 2: prev holds the difference (float64 beyond
    2**450), summarized by the caller."""
    a32 = np.arange(6, dtype=np.float32)
    out = [np.empty((3, 8)), np.empty((3, HIST_BINS), np.int64),
           np.empty((3, 8)), np.empty((3, HIST_BINS), np.int64)]
    prevs = [np.ones(6, np.float32), np.ones(6, np.float64), np.array([-1e300, 0.0])]
    arrays = [a32, a32, np.array([1.0, 1.0])]
    status = _stats._kernel().summarize_with_delta(arrays, prevs, *out)
    assert status == [0, 1, 2]
    np.testing.assert_array_equal(prevs[0], a32)
    np.testing.assert_array_equal(prevs[1], np.ones(6))             # untouched
    np.testing.assert_array_equal(prevs[2], [1e300, 1.0])           # the difference
    with pytest.raises(ValueError, match="differ in length"):
        _stats._kernel().summarize_with_delta([a32], [], *[o[:1] for o in out])
    with pytest.raises(ValueError, match="dstats holds"):
        _stats._kernel().summarize_with_delta([a32], [a32.copy()], out[0][:1], out[1][:1], out[2], out[3][:1])


@pytest.mark.parametrize("kernel", [True, False])
def test_histogram_many_on_given_edges_equals_histogram(kernel, monkeypatch):
    # a rank's shard counted on the edges of the min/max of the whole tensor (torch_dist.py):
    # equal to _stats.histogram of the shard's finite values on those edges
    if kernel and not kernel_available():
        pytest.skip("compiled kernel not built")
    if not kernel:
        monkeypatch.setattr(_stats, "_kernel_module", None)
    rng = np.random.default_rng(5)
    whole = rng.normal(size=4000).astype(np.float32)
    whole[::97] = np.round(whole[::97] * 4) / 4          # values on bin edges
    parts = np.array_split(whole, 3)
    parts[1] = parts[1].copy()
    parts[1][7] = np.nan                                 # left out
    arrays = parts + [parts[0].astype(np.float64), np.zeros(0, np.float32),
                      np.full(5, 2.0, np.float32), np.array([1.0, 1.0 + 2 ** -40]),
                      parts[2].astype(np.float16)]
    lo = [whole.min()] * 4 + [0.0, 2.0, 1.0, whole.min()]
    hi = [whole.max()] * 4 + [1.0, 2.0, 1.0 + 2 ** -40, whole.max()]
    # blocks of 1024 values counted without tests unless one holds a NaN or an infinity: one
    # in the second block, one in the last, short one (not a multiple of the 16 lanes)
    for bad in ((1500, np.inf), (3000 - 3, np.nan), (2049, -np.inf)):
        a = rng.normal(size=3000).astype(np.float32)
        a[bad[0]] = bad[1]
        finite = a[np.isfinite(a)]
        arrays.append(a)
        lo.append(finite.min())
        hi.append(finite.max())
    got = _stats.histogram_many(arrays, lo, hi)
    for i, a in enumerate(arrays):
        a64 = a[np.isfinite(a)].astype(np.float64)
        np.testing.assert_array_equal(got[i], _stats.histogram(a64, float(lo[i]), float(hi[i])),
                                      err_msg=str(i))
    joined = np.concatenate(parts)                       # the shards together: the whole tensor
    assert np.nanmin(joined) == whole.min() and np.nanmax(joined) == whole.max()
    np.testing.assert_array_equal(got[:3].sum(0), summarize(joined)[1])


def test_numpy_path_when_the_kernel_is_off(monkeypatch):
    monkeypatch.setattr(_stats, "_kernel_module", None)
    assert not kernel_available()
    rng = np.random.default_rng(9)
    x = rng.normal(size=(64, 33)).astype(np.float32)
    check(x)
    stats, hist = summarize_many([x, x.astype(np.float64)])
    for i, a in enumerate([x, x.astype(np.float64)]):
        want = _stats._summarize_numpy(a)
        np.testing.assert_array_equal(stats[i], want[0])
        np.testing.assert_array_equal(hist[i], want[1])


def test_no_ckernel_environment_variable():
    code = ("import netlapse, sys; from netlapse import _stats; "
            "print(_stats.kernel_available(), 'torch' in sys.modules)")
    env = dict(os.environ, NETLAPSE_NO_CKERNEL="1")
    env.pop("NETLAPSE_REQUIRE_CKERNEL", None)
    root = os.path.dirname(os.path.dirname(os.path.abspath(_stats.__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]


@needs_kernel
def test_kernel_rejects_wrong_output_buffers():
    from netlapse import _csummary

    x = [np.ones(5, np.float32)]
    with pytest.raises(ValueError):
        _csummary.summarize_many(x, np.empty((1, 7)), np.empty((1, 64), np.int64))
    with pytest.raises(ValueError):
        _csummary.summarize_many(x, np.empty((1, 8)), np.empty((2, 64), np.int64))
    with pytest.raises(TypeError):
        _csummary.summarize_many(x, np.empty((1, 8), np.float32), np.empty((1, 64), np.int64))
    with pytest.raises(TypeError):
        _csummary.summarize_many(x, np.empty((1, 8)), np.empty((1, 64), np.float64))
    with pytest.raises((TypeError, BufferError, ValueError)):   # read-only
        ro = np.empty((1, 8))
        ro.flags.writeable = False
        _csummary.summarize_many(x, ro, np.empty((1, 64), np.int64))
    with pytest.raises(TypeError):
        _csummary.summarize_many(5, np.empty((0, 8)), np.empty((0, 64), np.int64))
    # anything that is not a float32/float64 buffer is handed back, not an error
    assert kernel_rows([b"abcd", [1.0, 2.0], None, np.arange(3)])[0] == [1, 1, 1, 1]


@needs_kernel
def test_kernel_releases_the_gil():
    # a second Python thread keeps running while one summarize_many call works on 50M values;
    # with the GIL held it could run only just before the call or just after it
    big = np.arange(50_000_000, dtype=np.float32)
    stamps, stop, started = [], threading.Event(), threading.Event()

    def count():
        started.set()
        i = 0
        while not stop.is_set():
            i += 1
            if i % 64 == 0:
                stamps.append(time.perf_counter())

    t = threading.Thread(target=count)
    t.start()
    started.wait()
    time.sleep(0.01)
    t0 = time.perf_counter()
    (status,), stats, hist = kernel_rows([big])
    t1 = time.perf_counter()
    stop.set()
    t.join()
    assert status == 0 and hist.sum() == big.size
    mid0, mid1 = t0 + 0.25 * (t1 - t0), t1 - 0.25 * (t1 - t0)
    during = sum(mid0 < s < mid1 for s in stamps)
    assert t1 - t0 > 0.02, "the call was too short to tell"
    assert during > 10, f"{during} counter steps in the middle half of a {t1 - t0:.3f} s call"


@needs_kernel
def test_kernel_survives_data_changing_under_it():
    # the GIL is released: another thread may write into an array while it is summarized (a
    # live weight updated in place). The numbers are then meaningless but the kernel must stay
    # inside its memory: every bin index is clamped, whatever the values between the passes.
    rng = np.random.default_rng(10)
    x = rng.normal(size=300_000).astype(np.float32)
    y = x.astype(np.float64)
    stop = threading.Event()
    wild = np.array([np.nan, np.inf, -np.inf, 3e38, -3e38, 0.0, 1e-45], np.float32)

    def scribble():
        r = np.random.default_rng(11)
        while not stop.is_set():
            i = r.integers(0, x.size, 64)
            x[i] = r.choice(wild, 64)
            y[i] = r.choice(wild.astype(np.float64) * 1e100, 64)
            x[i] = r.normal(size=64) * 10.0 ** r.integers(-3, 4)
            y[i] = r.normal(size=64)

    t = threading.Thread(target=scribble)
    t.start()
    try:
        for _ in range(60):
            status, stats, hist = kernel_rows([x, y])
            for s, h in zip(status, hist):   # 1: float64 beyond 2**450 seen, row untouched
                assert s == 1 or ((h >= 0).all() and h.sum() <= x.size)
    finally:
        stop.set()
        t.join()
