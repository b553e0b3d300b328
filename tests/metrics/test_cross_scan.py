"""The k-partner cross scan, its counts and the intra scan, against direct counting.

Integer features keep every float32 dot product exact, so the kernels' values equal the
oracle's and every comparison with an integer ``lo``/``hi`` is a real tie. Small GEMM
blocks and sub-blocks (monkeypatched) make N = 37 and 300 ragged in several places.
"""

from __future__ import annotations

import numpy as np
import pytest
from reference import sign_features, unit

from plismbench.metrics import cpu as backend_module
from plismbench.metrics import dense
from plismbench.metrics.backend import Backend
from plismbench.metrics.cpu import NumpyBackend
from plismbench.metrics.cuda import TorchBackend
from plismbench.metrics.ranks import cross_counts, cross_counts_many, in_memory

KINDS = ["cpu", "torch-cpu"]


def _backend(kind: str, workers: int = 3) -> Backend:
    if kind == "torch-cpu":
        return TorchBackend("cpu")
    backend = NumpyBackend()
    backend.gemm_rows, backend.workers = 16, workers  # 16 is the smallest block allowed
    return backend


@pytest.fixture
def small_blocks(monkeypatch) -> None:
    """Sub-blocks of 5 rows at N = 37 (16-row blocks: 5 + 5 + 5 + 1, and 5 rows last)."""
    monkeypatch.setattr(backend_module, "SUB_ELEMENTS", 5 * 37)
    monkeypatch.setattr(backend_module, "INTRA_ROWS", 16)
    monkeypatch.setattr(backend_module, "DOT_ROWS", 7)


def _int_slides(rng: np.random.Generator, n: int, k: int, d: int = 4):
    x = rng.integers(-2, 3, size=(n, d)).astype(np.float32)
    ys = rng.integers(-2, 3, size=(k * n, d)).astype(np.float32)
    x[5 % n] = x[0]  # duplicated rows: equal similarities
    ys[n - 1] = ys[0]
    return x, ys


def _brute_scan(x, ys, lo, hi):
    n, k = len(x), len(ys) // len(x)
    rows_hi, cols_hi = np.zeros((k, n), np.int64), np.zeros((k, n), np.int64)
    band_r, band_c = set(), set()
    for p in range(k):
        s = x.astype(np.float64) @ ys[p * n : (p + 1) * n].astype(np.float64).T  # s[i, j]
        for i in range(n):
            for j in range(n):
                if i == j:
                    continue
                if s[i, j] >= hi[p, i]:
                    rows_hi[p, i] += 1
                elif s[i, j] >= lo[p, i]:
                    band_r.add((p, i, j))
                if s[i, j] >= hi[p, j]:
                    cols_hi[p, j] += 1
                elif s[i, j] >= lo[p, j]:
                    band_c.add((p, i, j))
    return rows_hi, cols_hi, band_r, band_c


def _triples(band) -> list[tuple[int, int, int]]:
    p, i, j = (np.asarray(a).tolist() for a in band)
    return list(zip(p, i, j, strict=True))


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("n", "k"), [(37, 1), (37, 3), (33, 2), (61, 4)])
def test_cross_scan_equals_direct_counting(kind: str, n: int, k: int) -> None:
    rng = np.random.default_rng(n + k)
    x, ys = _int_slides(rng, n, k)
    # the match lies in its own band (as thresholds32 makes it): lo <= s_p[i, i] < hi,
    # and both edges tie with other integer similarities
    diag = np.einsum("id,pid->pi", x, ys.reshape(k, n, -1)).astype(np.float32)
    lo = diag - rng.integers(0, 3, size=(k, n)).astype(np.float32)
    hi = diag + rng.integers(1, 3, size=(k, n)).astype(np.float32)
    backend = _backend(kind)
    scan = backend.cross_scan(backend.put(x), backend.put(ys), lo, hi)
    rows_hi, cols_hi, band_r, band_c = _brute_scan(x, ys, lo, hi)
    np.testing.assert_array_equal(scan.rows_hi, rows_hi)
    np.testing.assert_array_equal(scan.cols_hi, cols_hi)
    got_r, got_c = _triples(scan.band_rows), _triples(scan.band_cols)
    assert len(got_r) == len(set(got_r)) and set(got_r) == band_r
    assert len(got_c) == len(set(got_c)) and set(got_c) == band_c
    assert band_r and band_c and rows_hi.any()  # the test exercises every output


def _brute_cross(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``#{j != i : cos(a_i, b_j) >= cos(a_i, b_i)}`` and the same from b, float64."""
    s = unit(a) @ unit(b).T
    off = ~np.eye(len(a), dtype=bool)
    a_to_b = ((s >= np.diag(s)[:, None]) & off).sum(axis=1)
    b_to_a = ((s >= np.diag(s)[None, :]) & off).sum(axis=0)
    return a_to_b, b_to_a


def _exact_cross(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same for small integer features, exactly: compare sign(q.t)(q.t)^2 |m|^2."""
    ai, bi = a.astype(np.int64), b.astype(np.int64)

    def count(q, t):  # row r: #{c != r : cos(q_r, t_c) >= cos(q_r, t_r)}
        dots, n2 = q @ t.T, (t * t).sum(axis=1)
        key_t = np.sign(dots) * dots * dots * n2[np.arange(len(q)), None]
        key_m = (np.sign(np.diag(dots)) * np.diag(dots) ** 2)[:, None] * n2[None, :]
        return ((key_t >= key_m) & ~np.eye(len(q), dtype=bool)).sum(axis=1)

    return count(ai, bi), count(bi, ai)


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("data", ["signs", "integers", "floats"])
def test_cross_counts_many_equal_one_pair_at_a_time_and_the_oracle(kind: str, data: str) -> None:
    rng = np.random.default_rng(7)
    n, k = 37, 3
    if data == "signs":  # every cosine exact in float64 too
        a = sign_features(rng, n)
        bs = [a * np.where(rng.random(a.shape) < 0.2, -1.0, 1.0) for _ in range(k)]
        a[9] = a[2]
        bs[1][30] = bs[1][4]
        oracle = _brute_cross
    elif data == "integers":  # equal cosines of different vectors: settled exactly
        a = rng.integers(-2, 3, size=(n, 3)).astype(np.float64)
        bs = [rng.integers(-2, 3, size=(n, 3)).astype(np.float64) for _ in range(k)]
        for m in (a, *bs):
            m[~m.any(axis=1), 0] = 1
        oracle = _exact_cross
    else:
        a = rng.standard_normal((n, 12))
        bs = [a + 0.9 * rng.standard_normal(a.shape) for _ in range(k)]
        oracle = _brute_cross
    backend = _backend(kind)
    xa = backend.put(unit(a).astype(np.float32))
    xbs = backend.put(np.concatenate([unit(b) for b in bs]).astype(np.float32))
    got = cross_counts_many(backend, xa, xbs, in_memory(a), [in_memory(b) for b in bs])
    assert len(got) == k
    for p, b in enumerate(bs):
        want_ab, want_ba = oracle(a, b)
        np.testing.assert_array_equal(got[p].a_to_b, want_ab, err_msg=f"partner {p}")
        np.testing.assert_array_equal(got[p].b_to_a, want_ba, err_msg=f"partner {p}")
        np.testing.assert_allclose(got[p].match, np.sum(unit(a) * unit(b), axis=1), atol=1e-6)
        one = cross_counts(backend, xa, backend.put(unit(b).astype(np.float32)),
                           in_memory(a), in_memory(b))  # fmt: skip
        np.testing.assert_array_equal(got[p].match, one.match)  # bit for bit


@pytest.mark.parametrize("workers", [1, 4])
def test_matches_of_every_partner_block(monkeypatch, workers: int) -> None:
    monkeypatch.setattr(backend_module, "DOT_ROWS", 16)
    rng = np.random.default_rng(3)
    n, k = 37, 4
    x = rng.standard_normal((n, 9)).astype(np.float32)
    ys = rng.standard_normal((k * n, 9)).astype(np.float32)
    backend = _backend("cpu", workers)
    got = backend.matches(x, ys)
    want = np.einsum("id,pid->pi", x.astype(np.float64), ys.reshape(k, n, 9).astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    prods = (x[None] * ys.reshape(k, n, 9)).astype(np.float64)  # float32 products
    np.testing.assert_allclose(got, prods.sum(axis=2), rtol=1e-14, atol=1e-14)


def _brute_intra(x, lo, hi):
    s = x.astype(np.float64) @ x.astype(np.float64).T
    np.fill_diagonal(s, -np.inf)
    counts = (s[:, None, :] >= hi[:, :, None]).sum(axis=2)
    inside = (s[:, None, :] >= lo[:, :, None]) & (s[:, None, :] < hi[:, :, None])
    return counts, set(zip(*(a.tolist() for a in np.nonzero(inside)), strict=True))


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize(
    ("kind", "fraction", "limit"),
    [("cpu", 1.0, 1 << 24), ("cpu", 0.0, 1 << 24), ("cpu", 0.0, 0), ("torch-cpu", 1.0, 0)],
    ids=["strips", "blocks-sparse", "blocks-dense", "torch"],
)
@pytest.mark.parametrize("n", [37, 300])
def test_intra_scan_equals_direct_counting(
    monkeypatch, kind: str, fraction: float, limit: int, n: int
) -> None:
    monkeypatch.setattr(backend_module, "SURVIVOR_FRACTION", fraction)
    monkeypatch.setattr(dense, "SPARSE_LIMIT", limit)
    rng = np.random.default_rng(n)
    x = (sign_features(rng, n) / 4).astype(np.float32)  # unit rows, similarities k / 16
    x[n // 2] = x[1]
    m = 6
    lo = rng.integers(-4, 8, size=(n, m)).astype(np.float32) / 16
    lo[:, 1] = lo[:, 0]  # equal bands of several partners
    lo[:, 4] = lo[:, 0]
    hi = lo + rng.integers(1, 3, size=(n, m)).astype(np.float32) / 16
    hi[:, 4] = hi[:, 0]
    lo[:, 5], hi[:, 5] = hi[:, 0], hi[:, 0] + 1 / 16  # one partner's lo on another's hi
    backend = _backend(kind)
    counts, band = backend.intra_scan(backend.put(x), lo, hi)
    want_counts, want_band = _brute_intra(x, lo, hi)
    np.testing.assert_array_equal(counts, want_counts)
    got = list(zip(*(np.asarray(a).tolist() for a in band), strict=True))
    assert len(got) == len(set(got)) and set(got) == want_band
    assert want_band and want_counts.any()


def _fraction_cross(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_brute_cross` in rational arithmetic on the raw float64 rows (tiny slides)."""
    from fractions import Fraction

    def key(q, t):  # increasing in cos(q, t) for a fixed q
        dot = sum((Fraction(x) * Fraction(y) for x, y in zip(q, t, strict=True)), Fraction(0))
        return (1 if dot >= 0 else -1) * dot * dot / sum(Fraction(y) ** 2 for y in t)

    def count(q, t):
        n = len(q)
        return np.array([sum(key(q[r], t[c]) >= key(q[r], t[r]) for c in range(n) if c != r)
                         for r in range(n)])  # fmt: skip

    return count(a.tolist(), b.tolist()), count(b.tolist(), a.tolist())


@pytest.mark.parametrize("kind", KINDS)
def test_near_ties_settled_on_the_raw_rows_of_each_partner(kind: str) -> None:
    # cos(q, m) = cos(q, t) exactly (q=(-1,2,-1), m=(2,2,1), t=(1,2,2)); moving one
    # coordinate of t or q by one float64 ulp leaves the float32 rows, and so every GEMM
    # and float64 dot, unchanged: only the raw rows of the right partner decide.
    q, m, t = np.array([-1.0, 2, -1]), np.array([2.0, 2, 1]), np.array([1.0, 2, 2])
    down, up = t.copy(), t.copy()
    down[1], up[1] = np.nextafter(2.0, 0.0), np.nextafter(2.0, 4.0)
    q_down, q_up = q.copy(), q.copy()
    q_down[0], q_up[0] = np.nextafter(-1.0, 0.0), np.nextafter(-1.0, -2.0)
    other = np.array([5.0, -3.0, 1.0])
    cases = [  # rows (a_i -> b): a = [q, other], b_p = [m, t_p]
        (np.stack([q, other]), [np.stack([m, tt]) for tt in (t, down, up)]),
        # columns (b_j -> a): a = [m, t], b_p = [q_p, other]
        (np.stack([m, t]), [np.stack([qq, other]) for qq in (q, q_down, q_up)]),
    ]
    backend = _backend(kind)
    for a, bs in cases:
        xa = backend.put(unit(a).astype(np.float32))
        xbs = backend.put(np.concatenate([unit(b) for b in bs]).astype(np.float32))
        got = cross_counts_many(backend, xa, xbs, in_memory(a), [in_memory(b) for b in bs])
        wants = [_fraction_cross(a, b) for b in bs]
        for p, want in enumerate(wants):
            np.testing.assert_array_equal(got[p].a_to_b, want[0], err_msg=f"partner {p}")
            np.testing.assert_array_equal(got[p].b_to_a, want[1], err_msg=f"partner {p}")
        firsts = {int(w[0][0]) for w in wants} | {int(w[1][0]) for w in wants}
        assert firsts == {0, 1}  # some near ties count, some do not


def test_match_table_is_every_pairs_matches_whatever_the_threads() -> None:
    from plismbench.metrics import cpu as backend_module

    rng = np.random.default_rng(21)
    n_slides, n, d = 5, 37, 12
    stacked = rng.standard_normal((n_slides * n, d)).astype(np.float32)
    x3 = stacked.reshape(n_slides, n, d).astype(np.float64)
    want = np.einsum("srd,trd->rst", x3, x3)  # exact float32 products, float64 sums
    tables = []
    for workers in (1, 2, 3):
        b = backend_module.NumpyBackend()
        with b.threads(workers):
            tables.append(b.match_table(stacked, n))
    assert tables[0] is not None and tables[0].shape == (n, n_slides, n_slides)
    np.testing.assert_allclose(tables[0], want, rtol=1e-14, atol=1e-14)
    for t in tables[1:]:
        np.testing.assert_array_equal(t, tables[0])  # bits independent of the thread count
    b = backend_module.NumpyBackend()  # row by row: float32-rounded products, same to ~d u
    np.testing.assert_allclose(
        b.matches(stacked[:n], stacked[n:]), tables[0][:, 0, 1:].T, rtol=0, atol=1e-5
    )


def test_match_table_too_large_falls_back(monkeypatch) -> None:
    from plismbench.metrics import cpu as backend_module

    monkeypatch.setattr(backend_module, "MATCH_TABLE_BYTES", 100)
    stacked = np.ones((4 * 10, 3), dtype=np.float32)
    assert backend_module.NumpyBackend().match_table(stacked, 10) is None
