/*
 * netlapse._csummary: the per-tensor summary of netlapse._stats in two passes over the data,
 * with the GIL released.
 *
 *     summarize_many(arrays, stats, hist) -> list[int]
 *
 * arrays: a sequence of objects exporting C-contiguous float32 ('f') or float64 ('d') buffers.
 * stats:  a writable C-contiguous float64 buffer of len(arrays) * 8 values (one row per array).
 * hist:   a writable C-contiguous int64 buffer of len(arrays) * 64 counts.
 *
 * Returns one int per array: 0 = its stats and hist rows were written; 1 = not handled (another
 * dtype or byte order, not C-contiguous, not a buffer, or a float64 array whose finite maximum
 * magnitude is >= 2**450) and its rows were left untouched: the caller summarizes it with numpy.
 *
 * The stats row and the histogram follow netlapse/_stats.py (its docstring is the contract):
 *     mean, std (ddof 0), min, max, norm, mean_abs over the finite values, in float64;
 *     zero_frac = count(x == 0) / n over all elements; nonfinite = count of NaN and +-Inf.
 * A finite x goes to bin (int)(((double)x - lo) * (64.0 / (hi - lo))), clamped to 63, the same
 * IEEE double operations as numpy's np.subtract, np.multiply and truncating cast, so the counts
 * are identical. This file must be compiled without -ffast-math and with -ffp-contract=off (no
 * fused multiply-add) so that every one of these operations is rounded as numpy rounds it.
 *
 * Pass 1: min, max, sum and zero count over lanes of independent accumulators, which the
 * compiler vectorizes, a block of BLOCK values at a time; a NaN or an infinity makes the
 * block's sum non-finite, and then that block is redone by a loop that tests every value (and
 * counts the non-finite ones). Pass 2: centred squares, absolute values and the bin index of
 * each value, vectorizable, a block at a time, then the block's bins counted into 4 interleaved
 * sub-histograms. The moments are sums in another order than numpy's pairwise sums: equal to
 * rounding, not bit for bit. Nothing is allocated: the work arrays (6 KB) are on the stack.
 *
 *     summarize_with_delta(arrays, prevs, stats, hist, dstats, dhist) -> list[int]
 *
 * The same for each array, and then, tensor by tensor while it is still in the cache, the
 * summary of ``array - prev`` (computed in the array's float type, as numpy's subtraction
 * rounds it, into ``prev``) into ``dstats``/``dhist``, after which ``prev`` holds a copy of
 * ``array``. netlapse/_record/derive.py uses it for updates/<param>: one call replaces a
 * summary, a subtraction, a second summary and a copy, each over every weight of the model.
 * Per pair: 0 = done; 1 = not handled (prev untouched): the two arrays are not C-contiguous
 * buffers of the same float type and length, or the array's summary is not handled; 2 = prev
 * holds the difference but its summary is not handled (float64 beyond 2**450).
 *
 *     histogram_many(arrays, lo, hi, hist) -> list[int]
 *
 * Row i of hist: the counts of the finite values of arrays[i] on the bins of [lo[i], hi[i]]
 * (float64 buffers of len(arrays) values), with the same formula, for values inside that range
 * (netlapse/_record/torch_dist.py: a rank's shard on the edges of the min/max of all ranks).
 * Status 1: not handled (row untouched).
 *
 * Plain C99 and the CPython API (buffer protocol), no numpy headers. With GCC on x86-64 Linux
 * the hot loops get an AVX2 clone next to the baseline one (target_clones, picked at load time).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define NSTATS 8
#define NBINS 64
#define LANES 16                  /* independent accumulators per loop */
#define BLOCK 1024                /* values a block: passes 1 and 2 work block by block */
#define SAFE_MAGNITUDE 2.9073548971824276e+135   /* 2**450: float64 beyond this is handed back
                                                   * for the caller's power-of-two scaling */

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && !defined(NETLAPSE_NO_TARGET_CLONES)
/* an AVX-512 (x86-64-v4: 32 vector registers, no accumulator spilled), an AVX2 and a baseline
 * copy of each hot loop, picked at load time (ifunc) */
#define HOT __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define HOT
#endif

#if defined(__GNUC__) || defined(__clang__)
#define INLINE static inline __attribute__((always_inline))
#else
#define INLINE static __inline
#endif

typedef struct {
    double mn, mx, sum;
    int64_t zeros, nonfinite;
} Pass1;

typedef struct {
    double ssd, sabs;
} Pass2;

/* ---------------------------------------------------------------- pass 1 ------------------ */

/* min, max and sum (in double) of the finite values, the number of zeros and of non-finite
 * values. Each block of BLOCK values goes through a loop without tests: lanes of independent
 * accumulators side by side, which the compiler vectorizes. A NaN or an infinity makes the
 * block's sum non-finite (finite float32 values summed in double cannot overflow; float64 ones
 * that could are >= 2**450 and handed back anyway): then that block alone is redone by a loop
 * that tests each value, so a few NaN cost a few blocks. Lanes are combined in a fixed order. */
#define PASS1(NAME, T)                                                                         \
static HOT void NAME(const T *x, Py_ssize_t n, Pass1 *r)                                       \
{                                                                                              \
    T mn[LANES], mx[LANES], bmn[LANES], bmx[LANES];                                            \
    double s[LANES], bs[LANES];                                                                \
    int32_t z[LANES];                                                                          \
    int64_t zeros = 0, nonfinite = 0;                                                          \
    Py_ssize_t start = 0, i;                                                                   \
    int j, k;                                                                                  \
    for (j = 0; j < LANES; j++) {                                                              \
        mn[j] = (T)INFINITY;                                                                   \
        mx[j] = -(T)INFINITY;                                                                  \
        s[j] = 0.0;                                                                            \
    }                                                                                          \
    while (n - start >= LANES) {                                                               \
        Py_ssize_t cnt = n - start < BLOCK ? n - start : BLOCK;                                \
        double bsum = 0.0;                                                                     \
        cnt -= cnt % LANES;                                                                    \
        for (j = 0; j < LANES; j++) {                                                          \
            bmn[j] = (T)INFINITY;                                                              \
            bmx[j] = -(T)INFINITY;                                                             \
            bs[j] = 0.0;                                                                       \
            z[j] = 0;                                                                          \
        }                                                                                      \
        for (i = start; i < start + cnt; i += LANES) {                                         \
            for (j = 0; j < LANES; j++) {                                                      \
                T v = x[i + j];                                                                \
                bmn[j] = v < bmn[j] ? v : bmn[j];                                              \
                bmx[j] = v > bmx[j] ? v : bmx[j];                                              \
                bs[j] += (double)v;                                                            \
                z[j] += v == 0;   /* false for NaN */                                          \
            }                                                                                  \
        }                                                                                      \
        for (j = 0; j < LANES; j++) {                                                          \
            zeros += z[j];                                                                     \
            bsum += bs[j];                                                                     \
        }                                                                                      \
        if (isfinite(bsum)) {                                                                  \
            for (j = 0; j < LANES; j++) {                                                      \
                mn[j] = bmn[j] < mn[j] ? bmn[j] : mn[j];                                       \
                mx[j] = bmx[j] > mx[j] ? bmx[j] : mx[j];                                       \
                s[j] += bs[j];                                                                 \
            }                                                                                  \
        } else {   /* a NaN or an infinity in this block: again, leaving them out */           \
            for (i = start; i < start + cnt; i++) {                                            \
                T v = x[i];                                                                    \
                if (isfinite(v)) {                                                             \
                    mn[0] = v < mn[0] ? v : mn[0];                                             \
                    mx[0] = v > mx[0] ? v : mx[0];                                             \
                    s[0] += (double)v;                                                         \
                } else {                                                                       \
                    nonfinite++;                                                               \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
        start += cnt;                                                                          \
    }                                                                                          \
    for (j = LANES / 2; j > 0; j /= 2) {                                                       \
        for (k = 0; k < j; k++) {                                                              \
            mn[k] = mn[k + j] < mn[k] ? mn[k + j] : mn[k];                                     \
            mx[k] = mx[k + j] > mx[k] ? mx[k + j] : mx[k];                                     \
            s[k] += s[k + j];                                                                  \
        }                                                                                      \
    }                                                                                          \
    for (i = start; i < n; i++) {   /* the last < LANES values */                              \
        T v = x[i];                                                                            \
        zeros += v == 0;                                                                       \
        if (isfinite(v)) {                                                                     \
            mn[0] = v < mn[0] ? v : mn[0];                                                     \
            mx[0] = v > mx[0] ? v : mx[0];                                                     \
            s[0] += (double)v;                                                                 \
        } else {                                                                               \
            nonfinite++;                                                                       \
        }                                                                                      \
    }                                                                                          \
    r->mn = mn[0];                                                                             \
    r->mx = mx[0];                                                                             \
    r->sum = s[0];                                                                             \
    r->zeros = zeros;                                                                          \
    r->nonfinite = nonfinite;                                                                  \
}
PASS1(pass1_f32, float)
PASS1(pass1_f64, double)

/* ---------------------------------------------------------------- pass 2 ------------------ */

/* Only when hi > lo (with hi == lo every finite value is lo: summarize_one has the sums in
 * closed form). Sums of centred squares and of absolute values, and the bin of each value. */

INLINE double load(const void *data, int f32, Py_ssize_t i)
{
    return f32 ? (double)((const float *)data)[i] : ((const double *)data)[i];
}

/* (v - lo) * scale is in [0, 64] for lo <= v <= hi: truncation is floor, and 64 (v at, or a
 * rounding below, hi) goes to bin 63 later. The unsigned clamp to 64 changes none of these;
 * it keeps the index inside the counts should another thread change the data between the
 * passes (a negative index wraps to a large unsigned; what the CPU's conversion gives for a NaN
 * or an out-of-range value, INT_MIN on x86, 0 or saturated on arm64, ends in [0, 64] too). */
INLINE uint32_t raw_bin(double v, double lo, double scale)
{
    uint32_t k = (uint32_t)(int32_t)((v - lo) * scale);
    return k < NBINS ? k : NBINS;
}

/* The counts of raw bins 0..64 (and 65: histogram_given's skipped values). An array of
 * PAIR_MIN values or more is counted two values at a time: one increment of a cell of a
 * SLOTS x SLOTS table per pair (two tables, alternating), the tables folded into the bins at
 * the end (and every FOLD_EVERY values, before a uint32 cell could overflow). That halves the
 * increments, the bottleneck of counting (docs/performance.md, "A compiled summary
 * kernel"); a pair falls in the same cell as the previous pair far less often than a value in
 * the same bin as the previous value. The cells of a block's pairs are computed first, in a
 * loop the compiler vectorizes, so that each increment waits only on its own load
 * (docs/performance.md, "No free core", the kernel's pair cells). Smaller arrays: four
 * sub-histograms, consecutive values in the same bin not waiting on each other's increment. */
#define SLOTS (NBINS + 2)
#define PAIR_MIN 16384
#define FOLD_EVERY ((Py_ssize_t)1 << 30)

typedef struct {
    int64_t sub[4][SLOTS];
    uint32_t pairs[2][SLOTS * SLOTS];
    int use_pairs;
    Py_ssize_t since_fold;
} Tally;

static void tally_init(Tally *t, Py_ssize_t n)
{
    memset(t->sub, 0, sizeof t->sub);
    t->use_pairs = n >= PAIR_MIN;
    t->since_fold = 0;
    if (t->use_pairs)
        memset(t->pairs, 0, sizeof t->pairs);
}

static void tally_fold(Tally *t)
{
    int a, b;
    for (a = 0; a < SLOTS; a++) {
        for (b = 0; b < SLOTS; b++) {
            int64_t c = (int64_t)t->pairs[0][a * SLOTS + b] + t->pairs[1][a * SLOTS + b];
            t->sub[0][a] += c;
            t->sub[1][b] += c;
        }
    }
    memset(t->pairs, 0, sizeof t->pairs);
    t->since_fold = 0;
}

static HOT void tally_block(Tally *t, const uint32_t *idx, Py_ssize_t cnt)
{
    Py_ssize_t i = 0;
    if (t->use_pairs) {
        uint32_t *p0 = t->pairs[0], *p1 = t->pairs[1];
        uint32_t pidx[BLOCK / 2];
        Py_ssize_t q, npairs = (cnt / 4) * 2;
        for (q = 0; q < npairs; q++)   /* vectorized: the cell of each pair */
            pidx[q] = idx[2 * q] * SLOTS + idx[2 * q + 1];
        for (q = 0; q < npairs; q += 2) {
            p0[pidx[q]]++;
            p1[pidx[q + 1]]++;
        }
        i = npairs * 2;
        t->since_fold += cnt;
        if (t->since_fold >= FOLD_EVERY)
            tally_fold(t);
    } else {
        for (; i + 4 <= cnt; i += 4) {
            t->sub[0][idx[i]]++;
            t->sub[1][idx[i + 1]]++;
            t->sub[2][idx[i + 2]]++;
            t->sub[3][idx[i + 3]]++;
        }
    }
    for (; i < cnt; i++)
        t->sub[0][idx[i]]++;
}

/* adds the counts to hist's 64 bins (raw bin 64, a value at hi, is the last bin's) */
static void tally_finish(Tally *t, int64_t *hist)
{
    int j;
    if (t->use_pairs)
        tally_fold(t);
    for (j = 0; j <= NBINS; j++)
        hist[j < NBINS ? j : NBINS - 1] += (t->sub[0][j] + t->sub[1][j]) + (t->sub[2][j] + t->sub[3][j]);
}

/* 64 / (hi - lo) finite. Without skip (all values finite): for each block of BLOCK values, the
 * sums over lanes of independent accumulators and the raw bins in one vectorizable loop, then
 * the block's counts. With skip (some values are not finite): the block's sums first; if they
 * are finite the block has no NaN or infinity and its bins are computed as above, otherwise
 * the block is redone by a loop that tests each value. */
INLINE void pass2_lanes(const void *data, int f32, int skip, Py_ssize_t n, double mean,
                        double lo, double scale, Pass2 *r, int64_t *hist)
{
    double ss[LANES], sa[LANES], bss[LANES], bsa[LANES];
    Tally tally;
    uint32_t idx[BLOCK];
    Py_ssize_t start = 0, b;
    int j, k;
    for (j = 0; j < LANES; j++)
        ss[j] = sa[j] = 0.0;
    tally_init(&tally, n);
    while (start < n) {
        Py_ssize_t cnt = n - start < BLOCK ? n - start : BLOCK, full = cnt - cnt % LANES;
        if (!skip) {
            for (b = 0; b < full; b += LANES) {
                for (j = 0; j < LANES; j++) {
                    double v = load(data, f32, start + b + j), d = v - mean;
                    ss[j] += d * d;
                    sa[j] += fabs(v);
                    idx[b + j] = raw_bin(v, lo, scale);
                }
            }
            tally_block(&tally, idx, full);
        } else {
            double bsum = 0.0;
            for (j = 0; j < LANES; j++)
                bss[j] = bsa[j] = 0.0;
            for (b = 0; b < full; b += LANES) {
                for (j = 0; j < LANES; j++) {
                    double v = load(data, f32, start + b + j), d = v - mean;
                    bss[j] += d * d;
                    bsa[j] += fabs(v);
                }
            }
            for (j = 0; j < LANES; j++)
                bsum += bss[j];
            if (isfinite(bsum)) {
                for (j = 0; j < LANES; j++) {
                    ss[j] += bss[j];
                    sa[j] += bsa[j];
                }
                for (b = 0; b < full; b++)
                    idx[b] = raw_bin(load(data, f32, start + b), lo, scale);
                tally_block(&tally, idx, full);
            } else {
                for (b = 0; b < full; b++) {
                    double v = load(data, f32, start + b), d = v - mean;
                    if (isfinite(v)) {
                        ss[0] += d * d;
                        sa[0] += fabs(v);
                        tally.sub[0][raw_bin(v, lo, scale)]++;
                    }
                }
            }
        }
        for (b = full; b < cnt; b++) {   /* the last < LANES values of the array */
            double v = load(data, f32, start + b), d = v - mean;
            if (!skip || isfinite(v)) {
                ss[0] += d * d;
                sa[0] += fabs(v);
                tally.sub[0][raw_bin(v, lo, scale)]++;
            }
        }
        start += cnt;
    }
    for (j = LANES / 2; j > 0; j /= 2) {
        for (k = 0; k < j; k++) {
            ss[k] += ss[k + j];
            sa[k] += sa[k + j];
        }
    }
    r->ssd = ss[0];
    r->sabs = sa[0];
    tally_finish(&tally, hist);
}

#define PASS2(NAME, T, F32, SKIP)                                                              \
static HOT void NAME(const T *x, Py_ssize_t n, double mean, double lo, double scale,           \
                     Pass2 *r, int64_t *hist)                                                  \
{                                                                                              \
    pass2_lanes(x, F32, SKIP, n, mean, lo, scale, r, hist);                                    \
}
PASS2(pass2_f32, float, 1, 0)
PASS2(pass2_f64, double, 0, 0)
PASS2(pass2_skip_f32, float, 1, 1)
PASS2(pass2_skip_f64, double, 0, 1)

/* A range so narrow (below 64 / DBL_MAX, about 3.6e-307) that 64 / (hi - lo) overflows:
 * bin = x >= hi ? 63 : 0, as numpy's path does. Non-finite values skipped. */
static void pass2_narrow(const void *data, int f32, Py_ssize_t n, double mean, double hi,
                         Pass2 *r, int64_t *hist)
{
    double ss = 0.0, sa = 0.0;
    Py_ssize_t i;
    for (i = 0; i < n; i++) {
        double v = load(data, f32, i), d;
        if (!isfinite(v))
            continue;
        d = v - mean;
        ss += d * d;
        sa += fabs(v);
        hist[v >= hi ? NBINS - 1 : 0]++;
    }
    r->ssd = ss;
    r->sabs = sa;
}

/* ---------------------------------------------------------------- one array --------------- */

/* Fills one stats row and one histogram row; returns 0, or 1 when not handled (rows untouched). */
static int summarize_one(const void *data, int f32, Py_ssize_t n, double *stats, int64_t *hist)
{
    Pass1 p1;
    Pass2 p2;
    int64_t m;
    double mean, lo, hi, scale;
    int j;

    if (n == 0) {
        for (j = 0; j < NSTATS; j++)
            stats[j] = NAN;
        stats[7] = 0.0;
        memset(hist, 0, NBINS * sizeof *hist);
        return 0;
    }
    if (f32)
        pass1_f32((const float *)data, n, &p1);
    else
        pass1_f64((const double *)data, n, &p1);
    m = (int64_t)n - p1.nonfinite;
    lo = p1.mn;
    hi = p1.mx;
    if (m > 0 && !f32 && (fabs(lo) >= SAFE_MAGNITUDE || fabs(hi) >= SAFE_MAGNITUDE))
        return 1;

    memset(hist, 0, NBINS * sizeof *hist);
    for (j = 0; j < 6; j++)
        stats[j] = NAN;
    stats[6] = (double)p1.zeros / (double)n;
    stats[7] = (double)p1.nonfinite;
    if (m == 0)
        return 0;

    mean = p1.sum / (double)m;
    if (hi == lo) {   /* every finite value is lo (or -lo, a signed zero): all in bin 0 */
        double d = lo - mean;
        p2.ssd = ((double)m * d) * d;
        p2.sabs = (double)m * fabs(lo);
        hist[0] = m;
    } else {
        scale = (double)NBINS / (hi - lo);
        if (!isfinite(scale))
            pass2_narrow(data, f32, n, mean, hi, &p2, hist);
        else if (f32)
            (p1.nonfinite ? pass2_skip_f32 : pass2_f32)((const float *)data, n, mean, lo, scale,
                                                        &p2, hist);
        else
            (p1.nonfinite ? pass2_skip_f64 : pass2_f64)((const double *)data, n, mean, lo, scale,
                                                        &p2, hist);
    }
    stats[0] = mean;
    stats[1] = sqrt(p2.ssd / (double)m);
    stats[2] = lo;
    stats[3] = hi;
    stats[4] = sqrt(p2.ssd + ((double)m * mean) * mean);   /* sum x^2 = ssd + m mean^2 */
    stats[5] = p2.sabs / (double)m;
    return 0;
}

/* ---------------------------------------------------------------- Python binding ---------- */

/* 'f' -> 1, 'd' -> 0, anything else -> -1 (native byte order only) */
static int float_kind(const Py_buffer *v)
{
    const char *f = v->format;
    if (f == NULL)
        return -1;
    if (*f == '@' || *f == '=')
        f++;
#if PY_LITTLE_ENDIAN
    else if (*f == '<')
        f++;
#else
    else if (*f == '>' || *f == '!')
        f++;
#endif
    if (f[0] == 'f' && f[1] == '\0' && v->itemsize == 4)
        return 1;
    if (f[0] == 'd' && f[1] == '\0' && v->itemsize == 8)
        return 0;
    return -1;
}

static int format_is(const Py_buffer *v, const char *chars, Py_ssize_t itemsize)
{
    const char *f = v->format;
    if (f == NULL)
        return 0;
    if (*f == '@' || *f == '=')
        f++;
#if PY_LITTLE_ENDIAN
    else if (*f == '<')
        f++;
#endif
    return f[0] != '\0' && f[1] == '\0' && strchr(chars, f[0]) != NULL && v->itemsize == itemsize;
}

static int get_out_buffer(PyObject *obj, Py_buffer *view, const char *name, const char *chars,
                          const char *what, Py_ssize_t count)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    if (!format_is(view, chars, 8)) {
        PyErr_Format(PyExc_TypeError, "summarize_many: %s must be a %s buffer", name, what);
        PyBuffer_Release(view);
        return -1;
    }
    if (view->len != count * 8) {
        PyErr_Format(PyExc_ValueError, "summarize_many: %s holds %zd values, expected %zd",
                     name, view->len / 8, count);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* The float kind of obj's buffer (1 float32, 0 float64), held in *view; -1 when it is not a
 * C-contiguous float buffer (then nothing is held and no exception is set: numpy's path). */
static int input_kind(PyObject *obj, Py_buffer *view, int flags)
{
    int kind;
    if (PyObject_GetBuffer(obj, view, flags | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyErr_Clear();
        return -1;
    }
    kind = float_kind(view);
    if (kind < 0)
        PyBuffer_Release(view);
    return kind;
}

/* A new list of the k ints of status (NULL with an exception set on failure). */
static PyObject *status_list(const int *status, Py_ssize_t k)
{
    PyObject *result = PyList_New(k);
    Py_ssize_t i;
    for (i = 0; result != NULL && i < k; i++) {
        PyObject *v = PyLong_FromLong(status[i]);
        if (v == NULL) {
            Py_CLEAR(result);
            break;
        }
        PyList_SET_ITEM(result, i, v);
    }
    return result;
}

/* k zeroed items of size bytes (one at least, so that NULL means out of memory) */
static void *calloc_k(Py_ssize_t k, size_t size)
{
    return PyMem_Calloc(k > 0 ? (size_t)k : 1, size);
}

/* The buffers of seq's k items, with the GIL held; views[i] is held where kinds[i] >= 0 */
static void hold_inputs(PyObject *seq, Py_ssize_t k, Py_buffer *views, int *kinds)
{
    Py_ssize_t i;
    for (i = 0; i < k; i++)
        kinds[i] = input_kind(PySequence_Fast_GET_ITEM(seq, i), &views[i], 0);
}

static void release_inputs(Py_buffer *views, const int *kinds, Py_ssize_t k)
{
    Py_ssize_t i;
    for (i = 0; i < k; i++) {
        if (kinds[i] >= 0)
            PyBuffer_Release(&views[i]);
    }
}

PyDoc_STRVAR(summarize_many_doc,
"summarize_many(arrays, stats, hist) -> list[int]\n\n"
"Summarize each C-contiguous float32/float64 buffer in ``arrays`` into row i of ``stats``\n"
"(float64, k*8) and ``hist`` (int64, k*64), as netlapse._stats.summarize does, with the GIL\n"
"released. Returns one int per array: 0 = done, 1 = not handled (rows left untouched).");

static PyObject *summarize_many(PyObject *self, PyObject *args)
{
    PyObject *arrays, *stats_obj, *hist_obj, *seq = NULL, *result = NULL;
    Py_buffer stats_view, hist_view;
    Py_buffer *views = NULL;
    int *kinds = NULL, *status = NULL;
    Py_ssize_t k, i;
    (void)self;

    if (!PyArg_ParseTuple(args, "OOO:summarize_many", &arrays, &stats_obj, &hist_obj))
        return NULL;
    seq = PySequence_Fast(arrays, "summarize_many: arrays must be a sequence");
    if (seq == NULL)
        return NULL;
    k = PySequence_Fast_GET_SIZE(seq);
    if (get_out_buffer(stats_obj, &stats_view, "stats", "d", "float64", k * NSTATS) < 0) {
        Py_DECREF(seq);
        return NULL;
    }
    if (get_out_buffer(hist_obj, &hist_view, "hist", "lq", "int64", k * NBINS) < 0) {
        PyBuffer_Release(&stats_view);
        Py_DECREF(seq);
        return NULL;
    }
    views = calloc_k(k, sizeof *views);
    kinds = calloc_k(k, sizeof *kinds);
    status = calloc_k(k, sizeof *status);
    if (views == NULL || kinds == NULL || status == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    hold_inputs(seq, k, views, kinds);

    Py_BEGIN_ALLOW_THREADS
    for (i = 0; i < k; i++) {
        if (kinds[i] < 0) {
            status[i] = 1;
            continue;
        }
        status[i] = summarize_one(views[i].buf, kinds[i], views[i].len / views[i].itemsize,
                                  (double *)stats_view.buf + i * NSTATS,
                                  (int64_t *)hist_view.buf + i * NBINS);
    }
    Py_END_ALLOW_THREADS

    release_inputs(views, kinds, k);
    result = status_list(status, k);

done:
    PyMem_Free(views);
    PyMem_Free(kinds);
    PyMem_Free(status);
    PyBuffer_Release(&hist_view);
    PyBuffer_Release(&stats_view);
    Py_DECREF(seq);
    return result;
}

/* prev = cur - prev, element by element in the arrays' float type (as numpy subtracts) */
static HOT void subtract_into_f32(const float *cur, float *prev, Py_ssize_t n)
{
    Py_ssize_t i;
    for (i = 0; i < n; i++)
        prev[i] = cur[i] - prev[i];
}

static HOT void subtract_into_f64(const double *cur, double *prev, Py_ssize_t n)
{
    Py_ssize_t i;
    for (i = 0; i < n; i++)
        prev[i] = cur[i] - prev[i];
}

/* The summary of cur, then the summary of cur - prev, then prev = cur. 1: cur's summary not
 * handled, prev untouched; -1: prev holds cur - prev, whose summary is not handled. */
static int summarize_pair(const void *cur, void *prev, int f32, Py_ssize_t n,
                          double *stats, int64_t *hist, double *dstats, int64_t *dhist)
{
    size_t bytes = (size_t)n * (f32 ? sizeof(float) : sizeof(double));
    if (summarize_one(cur, f32, n, stats, hist))
        return 1;
    if (f32)
        subtract_into_f32((const float *)cur, (float *)prev, n);
    else
        subtract_into_f64((const double *)cur, (double *)prev, n);
    if (summarize_one(prev, f32, n, dstats, dhist))
        return -1;
    memcpy(prev, cur, bytes);
    return 0;
}

PyDoc_STRVAR(summarize_with_delta_doc,
"summarize_with_delta(arrays, prevs, stats, hist, dstats, dhist) -> list[int]\n\n"
"Row i of ``stats``/``hist``: the summary of ``arrays[i]``; row i of ``dstats``/``dhist``: the\n"
"summary of ``arrays[i] - prevs[i]`` (in their float type); then ``prevs[i]`` holds a copy of\n"
"``arrays[i]``. One tensor at a time, with the GIL released. Returns one int per pair: 0 =\n"
"done; 1 = not handled (``prevs[i]`` untouched); 2 = ``prevs[i]`` holds the difference but its\n"
"summary was not handled (float64 beyond 2**450): the caller summarizes it, then copies.");

static PyObject *summarize_with_delta(PyObject *self, PyObject *args)
{
    PyObject *arrays, *prevs, *outs[4], *seq = NULL, *pseq = NULL, *result = NULL;
    Py_buffer out[4];
    Py_buffer *views = NULL, *pviews = NULL;
    int *kinds = NULL, *status = NULL;
    Py_ssize_t k, i;
    int got = 0, j;
    static const char *names[4] = {"stats", "hist", "dstats", "dhist"};
    (void)self;

    if (!PyArg_ParseTuple(args, "OOOOOO:summarize_with_delta", &arrays, &prevs, &outs[0],
                          &outs[1], &outs[2], &outs[3]))
        return NULL;
    seq = PySequence_Fast(arrays, "summarize_with_delta: arrays must be a sequence");
    if (seq == NULL)
        return NULL;
    pseq = PySequence_Fast(prevs, "summarize_with_delta: prevs must be a sequence");
    if (pseq == NULL)
        goto done;
    k = PySequence_Fast_GET_SIZE(seq);
    if (PySequence_Fast_GET_SIZE(pseq) != k) {
        PyErr_SetString(PyExc_ValueError, "summarize_with_delta: arrays and prevs differ in length");
        goto done;
    }
    for (got = 0; got < 4; got++) {
        int is_stats = got % 2 == 0;
        if (get_out_buffer(outs[got], &out[got], names[got], is_stats ? "d" : "lq",
                           is_stats ? "float64" : "int64", k * (is_stats ? NSTATS : NBINS)) < 0)
            goto done;
    }
    views = calloc_k(k, sizeof *views);
    pviews = calloc_k(k, sizeof *pviews);
    kinds = calloc_k(k, sizeof *kinds);
    status = calloc_k(k, sizeof *status);
    if (views == NULL || pviews == NULL || kinds == NULL || status == NULL) {
        PyErr_NoMemory();
        goto done;
    }

    /* gather every pair of buffers while holding the GIL; kinds[i] < 0: not handled */
    for (i = 0; i < k; i++) {
        int pkind;
        kinds[i] = input_kind(PySequence_Fast_GET_ITEM(seq, i), &views[i], 0);
        if (kinds[i] < 0)
            continue;
        pkind = input_kind(PySequence_Fast_GET_ITEM(pseq, i), &pviews[i], PyBUF_WRITABLE);
        if (pkind != kinds[i] || pviews[i].len != views[i].len || pviews[i].buf == views[i].buf) {
            if (pkind >= 0)   /* held: another type, length, or the same memory */
                PyBuffer_Release(&pviews[i]);
            PyBuffer_Release(&views[i]);
            kinds[i] = -1;
        }
    }

    Py_BEGIN_ALLOW_THREADS
    for (i = 0; i < k; i++) {
        if (kinds[i] < 0) {
            status[i] = 1;
            continue;
        }
        status[i] = summarize_pair(views[i].buf, pviews[i].buf, kinds[i],
                                   views[i].len / views[i].itemsize,
                                   (double *)out[0].buf + i * NSTATS, (int64_t *)out[1].buf + i * NBINS,
                                   (double *)out[2].buf + i * NSTATS, (int64_t *)out[3].buf + i * NBINS);
        if (status[i] < 0)
            status[i] = 2;
    }
    Py_END_ALLOW_THREADS

    release_inputs(views, kinds, k);
    release_inputs(pviews, kinds, k);   /* held exactly where views[i] is */
    result = status_list(status, k);

done:
    PyMem_Free(views);
    PyMem_Free(pviews);
    PyMem_Free(kinds);
    PyMem_Free(status);
    for (j = 0; j < got; j++)
        PyBuffer_Release(&out[j]);
    Py_XDECREF(pseq);
    Py_DECREF(seq);
    return result;
}

/* Counts of the finite values of data on the bins of [lo, hi] (values inside that range), as
 * netlapse._stats.histogram counts them. */
/* The raw bins of a block of cnt <= BLOCK values, in a loop without tests (lanes side by side,
 * vectorized, as in pass 2); v - v is NaN for a NaN or an infinity, so the lanes' sums of it
 * tell whether the block had one. Only then is the block redone value by value, a non-finite
 * value going to slot NBINS + 1, which nobody reads. */
#define GIVEN_BINS(NAME, T)                                                                    \
static HOT void NAME(const T *x, Py_ssize_t cnt, double lo, double scale, uint32_t *idx)       \
{                                                                                              \
    double probe[LANES], total = 0.0;                                                          \
    Py_ssize_t i, full = cnt - cnt % LANES;                                                    \
    int j;                                                                                     \
    for (j = 0; j < LANES; j++)                                                                \
        probe[j] = 0.0;                                                                        \
    for (i = 0; i < full; i += LANES) {                                                        \
        for (j = 0; j < LANES; j++) {                                                          \
            double v = (double)x[i + j];                                                       \
            probe[j] += v - v;                                                                 \
            idx[i + j] = raw_bin(v, lo, scale);                                                \
        }                                                                                      \
    }                                                                                          \
    for (j = 0; j < LANES; j++)                                                                \
        total += probe[j];                                                                     \
    if (isfinite(total)) {                                                                     \
        for (i = full; i < cnt; i++)                                                           \
            idx[i] = isfinite((double)x[i]) ? raw_bin((double)x[i], lo, scale) : NBINS + 1;    \
        return;                                                                                \
    }                                                                                          \
    for (i = 0; i < cnt; i++)                                                                  \
        idx[i] = isfinite((double)x[i]) ? raw_bin((double)x[i], lo, scale) : NBINS + 1;        \
}
GIVEN_BINS(given_bins_f32, float)
GIVEN_BINS(given_bins_f64, double)

static void histogram_given(const void *data, int f32, Py_ssize_t n, double lo, double hi,
                            int64_t *hist)
{
    Tally tally;
    uint32_t idx[BLOCK];
    Py_ssize_t start, i, cnt;
    double scale;

    memset(hist, 0, NBINS * sizeof *hist);
    if (hi <= lo) {   /* one value (or none): all in the first bin */
        for (i = 0; i < n; i++)
            hist[0] += isfinite(load(data, f32, i)) != 0;
        return;
    }
    scale = (double)NBINS / (hi - lo);
    if (!isfinite(scale)) {   /* so narrow that 64 / range overflows: at lo or at hi */
        for (i = 0; i < n; i++) {
            double v = load(data, f32, i);
            if (isfinite(v))
                hist[v >= hi ? NBINS - 1 : 0]++;
        }
        return;
    }
    tally_init(&tally, n);
    for (start = 0; start < n; start += BLOCK) {
        cnt = n - start < BLOCK ? n - start : BLOCK;
        if (f32)
            given_bins_f32((const float *)data + start, cnt, lo, scale, idx);
        else
            given_bins_f64((const double *)data + start, cnt, lo, scale, idx);
        tally_block(&tally, idx, cnt);
    }
    tally_finish(&tally, hist);
}

PyDoc_STRVAR(histogram_many_doc,
"histogram_many(arrays, lo, hi, hist) -> list[int]\n\n"
"Row i of ``hist`` (int64, k*64): counts of the finite values of ``arrays[i]`` on the bins of\n"
"[lo[i], hi[i]] (``lo``, ``hi``: float64, k values), values inside that range, as\n"
"netlapse._stats.histogram counts them; the GIL released. Returns one int per array: 0 =\n"
"done, 1 = not handled (another dtype, not C-contiguous; row left untouched).");

static PyObject *histogram_many(PyObject *self, PyObject *args)
{
    PyObject *arrays, *lo_obj, *hi_obj, *hist_obj, *seq = NULL, *result = NULL;
    Py_buffer lo_view, hi_view, hist_view;
    Py_buffer *views = NULL;
    int *kinds = NULL;
    Py_ssize_t k, i;
    int got = 0;
    (void)self;

    if (!PyArg_ParseTuple(args, "OOOO:histogram_many", &arrays, &lo_obj, &hi_obj, &hist_obj))
        return NULL;
    seq = PySequence_Fast(arrays, "histogram_many: arrays must be a sequence");
    if (seq == NULL)
        return NULL;
    k = PySequence_Fast_GET_SIZE(seq);
    if (get_out_buffer(lo_obj, &lo_view, "lo", "d", "float64", k) < 0)
        goto done;
    got = 1;
    if (get_out_buffer(hi_obj, &hi_view, "hi", "d", "float64", k) < 0)
        goto done;
    got = 2;
    if (get_out_buffer(hist_obj, &hist_view, "hist", "lq", "int64", k * NBINS) < 0)
        goto done;
    got = 3;
    views = calloc_k(k, sizeof *views);
    kinds = calloc_k(k, sizeof *kinds);
    if (views == NULL || kinds == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    hold_inputs(seq, k, views, kinds);
    Py_BEGIN_ALLOW_THREADS
    for (i = 0; i < k; i++) {
        if (kinds[i] >= 0)
            histogram_given(views[i].buf, kinds[i], views[i].len / views[i].itemsize,
                            ((double *)lo_view.buf)[i], ((double *)hi_view.buf)[i],
                            (int64_t *)hist_view.buf + i * NBINS);
    }
    Py_END_ALLOW_THREADS
    release_inputs(views, kinds, k);
    for (i = 0; i < k; i++)
        kinds[i] = kinds[i] < 0;   /* the status: 1 = not handled */
    result = status_list(kinds, k);

done:
    PyMem_Free(views);
    PyMem_Free(kinds);
    if (got > 2)
        PyBuffer_Release(&hist_view);
    if (got > 1)
        PyBuffer_Release(&hi_view);
    if (got > 0)
        PyBuffer_Release(&lo_view);
    Py_DECREF(seq);
    return result;
}

static PyMethodDef methods[] = {
    {"summarize_many", summarize_many, METH_VARARGS, summarize_many_doc},
    {"summarize_with_delta", summarize_with_delta, METH_VARARGS, summarize_with_delta_doc},
    {"histogram_many", histogram_many, METH_VARARGS, histogram_many_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "netlapse._csummary",
    "Compiled per-tensor summaries for netlapse._stats (see summarize_many).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__csummary(void)
{
    return PyModule_Create(&module);
}
