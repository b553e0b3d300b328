"""Ranks equal an exact oracle on every input: ties, integers, constants, d=1, N=1..2.

Two oracles, written straight from the definition:

* ``exact_ranks``: rational arithmetic (``fractions.Fraction``) on the raw features,
  comparing ``sign(q.t) (q.t)^2 |m|^2`` with ``sign(q.m) (q.m)^2 |t|^2``;
* ``brute_ranks`` (tests/reference.py): float64, where float64 is itself exact enough
  (duplicated rows, where equal rows give bit-equal float64 similarities).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from reference import brute_ranks

from plismbench.metrics import pair_ranks
from plismbench.metrics.exact import at_least_as_similar

BACKENDS = ["cpu", "torch-cpu"]


def _key(q: list[Fraction], t: list[Fraction]) -> Fraction:
    """sign(q.t) (q.t)^2 / |t|^2: increasing in cos(q, t) for a fixed q."""
    dot = sum((x * y for x, y in zip(q, t, strict=True)), Fraction(0))
    norm2 = sum((y * y for y in t), Fraction(0))
    return (1 if dot >= 0 else -1) * dot * dot / norm2


def exact_ranks(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fa = [[Fraction(float(v)) for v in row] for row in a]
    fb = [[Fraction(float(v)) for v in row] for row in b]

    def one(own: list, other: list) -> np.ndarray:
        n = len(own)
        out = np.empty(n, dtype=np.int64)
        for i in range(n):
            match = _key(own[i], other[i])
            cands = [own[j] for j in range(n) if j != i] + other
            out[i] = sum(_key(own[i], t) >= match for t in cands)
        return out

    return one(fa, fb), one(fb, fa)


def _check(a: np.ndarray, b: np.ndarray, device: str, oracle=exact_ranks) -> None:
    want = oracle(a, b)
    got = pair_ranks(a, b, device=device)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("device", BACKENDS)
def test_issue_example_equal_cosines_of_different_vectors(device: str) -> None:
    # q=(-1,2,-1), m=(2,2,1), t=(1,2,2): cos(q,m) = cos(q,t) = 1/(3 sqrt 6), a tie -> rank 2
    a = np.array([[-1.0, 2.0, -1.0], [1.0, 2.0, 2.0]])
    b = np.array([[2.0, 2.0, 1.0], [5.0, -3.0, 1.0]])
    ab, _ = pair_ranks(a, b, device=device)
    assert ab[0] == 2
    _check(a, b, device)


@pytest.mark.parametrize("device", BACKENDS)
@pytest.mark.parametrize(("d", "high"), [(1, 3), (2, 2), (3, 3), (5, 2)])
def test_integer_features(device: str, d: int, high: int) -> None:
    rng = np.random.default_rng(d)
    a = rng.integers(-high, high + 1, size=(24, d)).astype(np.float64)
    b = rng.integers(-high, high + 1, size=(24, d)).astype(np.float64)
    a[~a.any(axis=1), 0] = 1  # no zero rows
    b[~b.any(axis=1), 0] = -1
    _check(a, b, device)


@pytest.mark.parametrize("device", BACKENDS)
def test_constant_slides(device: str) -> None:
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal(8), rng.standard_normal(8)
    a, b = np.tile(x, (15, 1)), np.tile(y, (15, 1))
    _check(a, b, device)  # own tiles (cos 1) beat the match; the 14 other matches tie
    _check(a, a.copy(), device)  # every candidate ties: rank 2N - 1
    assert (pair_ranks(a, a.copy(), device=device)[0] == 29).all()
    _check(a, 3 * a, device)  # proportional: still all ties


@pytest.mark.parametrize("device", BACKENDS)
@pytest.mark.parametrize("n", [1, 2])
def test_one_and_two_tiles(device: str, n: int) -> None:
    rng = np.random.default_rng(n)
    a, b = rng.standard_normal((n, 4)), rng.standard_normal((n, 4))
    _check(a, b, device)
    _check(a, a.copy(), device)


@pytest.mark.parametrize("device", BACKENDS)
def test_duplicated_float_tiles_n460(device: str) -> None:
    # 460 tiles: numpy takes its syrk path for x @ x.T here, whose rounding differs from
    # the sgemm's; duplicated tiles must still tie exactly.
    rng = np.random.default_rng(460)
    base = rng.standard_normal((460, 64)).astype(np.float32)
    dup = rng.choice(460, size=(120, 2), replace=False)
    base[dup[:, 1]] = base[dup[:, 0]]
    a = base + 0.3 * rng.standard_normal(base.shape).astype(np.float32)
    a[dup[:, 1]] = a[dup[:, 0]]
    b = a.copy()
    _check(a, b, device, oracle=brute_ranks)
    c = base + 0.3 * rng.standard_normal(base.shape).astype(np.float32)
    c[dup[:, 1]] = c[dup[:, 0]]
    _check(a, c, device, oracle=brute_ranks)


@pytest.mark.parametrize("scale", [1e200, 1e-170, 2.0**-1000])
def test_huge_and_tiny_norms(scale: float) -> None:
    rng = np.random.default_rng(7)
    a = rng.integers(-3, 4, size=(20, 6)).astype(np.float64)
    b = rng.integers(-3, 4, size=(20, 6)).astype(np.float64)
    a[~a.any(axis=1), 0] = 1
    b[~b.any(axis=1), 0] = 1
    want = exact_ranks(a * scale, b * scale)  # the oracle sees the scaled (rounded) values
    got = pair_ranks(a * scale, b * scale)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_decision_on_wide_mantissas_and_proportional_rows() -> None:
    rng = np.random.default_rng(9)
    q = rng.standard_normal((50, 16))
    m = rng.standard_normal((50, 16))
    t = m * 2.0**-30  # proportional to the match, a different float: a tie
    assert at_least_as_similar(q, t, m).all()
    t2 = m.copy()
    t2[:, 0] = np.nextafter(t2[:, 0], np.inf)  # one ulp away: decided by the exact sign
    got = at_least_as_similar(q, t2, m)
    want = [_key(list(map(Fraction, qi)), list(map(Fraction, ti)))
            >= _key(list(map(Fraction, qi)), list(map(Fraction, mi)))
            for qi, ti, mi in zip(q.tolist(), t2.tolist(), m.tolist(), strict=True)]  # fmt: skip
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("fraction", "limit"), [(1.0, 1 << 24), (0.0, 1 << 24), (0.0, 0)],
    ids=["symmetric", "blocks-sparse", "blocks-dense"],
)  # fmt: skip
def test_every_intra_counting_path_is_exact(monkeypatch, fraction: float, limit: int) -> None:
    from plismbench.metrics import cpu, dense

    monkeypatch.setattr(cpu, "SURVIVOR_FRACTION", fraction)
    monkeypatch.setattr(dense, "SPARSE_LIMIT", limit)
    rng = np.random.default_rng(11)
    a = rng.integers(-2, 3, size=(40, 3)).astype(np.float64)
    a[~a.any(axis=1), 0] = 1
    b = a + rng.integers(-1, 2, size=a.shape)
    b[~b.any(axis=1), 1] = 1
    _check(a, b, "cpu")
