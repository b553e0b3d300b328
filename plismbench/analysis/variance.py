"""Variance decomposition of a crossed location x staining x scanner design, in closed form.

Every slide (one staining x scanner cell) holds the same ``L`` tile locations. Streaming
the slides once fills `Moments` (sums per location, per location x staining,
per location x scanner and per cell); every sum of squares below is then a difference of
squared norms of those sums, summed over dimensions, with no per-dimension loop. With
``N = L S C`` rows and grand sum ``g``:

* total = sum ||x||^2 - ||g||^2 / N
* location, staining, scanner: main effects (between-level sums of squares);
* staining:scanner: the cell means beyond both main effects;
* location:condition: everything left (location:staining, location:scanner and the
  three-way location:staining:scanner term, which is the residual of a design without
  replicates). The three parts are reported too.

**Chance.** For features with no structure at all (independent isotropic noise), each
component's expected sum of squares is proportional to its degrees of freedom, so its
noise-floor fraction is ``df / (N - 1)``: ``location`` (L-1)/(LSC-1), about 1/(S C),
0.011 on PLISM's 13 x 7 (``chance`` column). ``adjusted`` is an omega^2-style fraction
``(SS - df MS_r) / (SS_total + MS_r)``, with ``MS_r`` the mean square of the three-way
term (the residual of a design without replicates): near 0 for a component at its noise
floor; the three-way term itself is 0 by construction.

**Offset share.** How much of a nuisance is a constant per-condition offset:
``staining / (staining + location:staining)``, the same for scanners, and for the slide
``(staining + scanner + staining:scanner) / (total - location)``. 1 when shifting every
slide by a vector removes the nuisance; noise gives 1/L.

Subsets: *cross-scanner* decomposes each staining's ``L x C`` slides into location,
scanner and location:scanner (residual); *cross-staining* each scanner's ``L x S`` slides
into location, staining and location:staining. Pooled rows sum each term over the groups.
"""

from __future__ import annotations

import numpy as np

from plismbench.store.design import Design

#: Components whose fractions sum to 1, in report order.
MAIN_COMPONENTS: tuple[str, ...] = (
    "location", "staining", "scanner", "staining:scanner", "location:condition",
)  # fmt: skip
#: The parts of ``location:condition``.
DETAIL_COMPONENTS: tuple[str, ...] = (
    "location:staining", "location:scanner", "location:staining:scanner",
)  # fmt: skip


class Moments:
    """First moments of a crossed design, filled one slide at a time."""

    def __init__(self, design: Design, n_locations: int, dim: int) -> None:
        s, c, n = design.n_stainings, design.n_scanners, n_locations
        self.design = design
        self.n_locations = n
        self.dim = dim
        self.loc = np.zeros((n, dim), np.float64)
        self.stain_loc = np.zeros((s, n, dim), np.float64)
        self.scan_loc = np.zeros((c, n, dim), np.float64)
        self.cell = np.zeros((s, c, dim), np.float64)
        self.sumsq = np.zeros((s, c), np.float64)
        self.seen = np.zeros((s, c), bool)

    def add(self, slide: int, x: np.ndarray) -> None:
        """Add the ``slide``-th slide's (L, d) features (rows in location order)."""
        s, c = self.design.cell_of(slide)
        if self.seen[s, c]:
            raise ValueError(f"slide {slide} added twice")
        x64 = np.asarray(x, dtype=np.float64)
        self.loc += x64
        self.stain_loc[s] += x64
        self.scan_loc[c] += x64
        self.cell[s, c] = x64.sum(axis=0)
        self.sumsq[s, c] = float(np.einsum("ij,ij->", x64, x64))
        self.seen[s, c] = True

    def check_complete(self) -> None:
        if not self.seen.all():
            raise ValueError("not every slide of the design was added")


def _sq(a: np.ndarray) -> float:
    """Sum of squares of every entry, in float64."""
    flat = np.asarray(a, dtype=np.float64).ravel()
    return float(flat @ flat)


def _terms(m: Moments) -> dict[str, float]:
    """The squared-norm building blocks ``A_*`` (each already divided by its count)."""
    n, s, c = m.n_locations, m.design.n_stainings, m.design.n_scanners
    return {
        "T": float(m.sumsq.sum()),
        "G": _sq(m.cell.sum(axis=(0, 1))) / (n * s * c),
        "loc": _sq(m.loc) / (s * c),
        "s": _sq(m.cell.sum(axis=1)) / (n * c),
        "c": _sq(m.cell.sum(axis=0)) / (n * s),
        "sc": _sq(m.cell) / n,
        "ls": sum(_sq(m.stain_loc[i]) for i in range(s)) / c,
        "lc": sum(_sq(m.scan_loc[j]) for j in range(c)) / s,
    }


def decompose(m: Moments) -> dict[str, float]:
    """Sums of squares of every component and ``total`` (summed over dimensions)."""
    m.check_complete()
    a = _terms(m)
    g = a["G"]
    out = {
        "location": a["loc"] - g,
        "staining": a["s"] - g,
        "scanner": a["c"] - g,
        "staining:scanner": a["sc"] - a["s"] - a["c"] + g,
        "location:staining": a["ls"] - a["loc"] - a["s"] + g,
        "location:scanner": a["lc"] - a["loc"] - a["c"] + g,
        "location:staining:scanner": (
            a["T"] - a["ls"] - a["lc"] - a["sc"] + a["loc"] + a["s"] + a["c"] - g
        ),
    }
    out["location:condition"] = sum(out[k] for k in DETAIL_COMPONENTS)
    out["total"] = a["T"] - g
    return {k: max(v, 0.0) for k, v in out.items()}


def decompose_subsets(m: Moments) -> list[dict[str, object]]:
    """Cross-scanner (per staining) and cross-staining (per scanner) decompositions.

    Rows: ``subset``, ``group`` (the fixed staining or scanner, or ``pooled``),
    ``component``, ``ss``, ``fraction``.
    """
    m.check_complete()
    n, d = m.n_locations, m.design
    rows: list[dict[str, object]] = []
    for subset, fixed_names, varying, fixed_axis in (
        ("cross-scanner", d.stainings, "scanner", 0),
        ("cross-staining", d.scanners, "staining", 1),
    ):
        n_vary = d.n_scanners if fixed_axis == 0 else d.n_stainings
        pooled = {"location": 0.0, varying: 0.0, f"location:{varying}": 0.0, "total": 0.0}
        for i, name in enumerate(fixed_names):
            cells = m.cell[i] if fixed_axis == 0 else m.cell[:, i]
            loc_sums = m.stain_loc[i] if fixed_axis == 0 else m.scan_loc[i]
            sumsq = m.sumsq[i].sum() if fixed_axis == 0 else m.sumsq[:, i].sum()
            g = _sq(cells.sum(axis=0)) / (n * n_vary)
            ss = {
                "location": _sq(loc_sums) / n_vary - g,
                varying: _sq(cells) / n - g,
                "total": float(sumsq) - g,
            }
            ss[f"location:{varying}"] = ss["total"] - ss["location"] - ss[varying]
            for k, v in ss.items():
                pooled[k] += v
            rows += _rows(subset, name, ss, n, n_vary)
        rows += _rows(subset, "pooled", pooled, n, n_vary)
    return rows


def _rows(
    subset: str, group: str, ss: dict[str, float], n_loc: int, n_vary: int
) -> list[dict[str, object]]:
    total = ss["total"]
    df_total = n_loc * n_vary - 1
    df = {"location": n_loc - 1, "interaction": (n_loc - 1) * (n_vary - 1), "varying": n_vary - 1}
    return [
        {
            "subset": subset,
            "group": group,
            "component": k,
            "ss": max(v, 0.0),
            "fraction": max(v, 0.0) / total if total > 0 else float("nan"),
            "chance": df[
                "location" if k == "location" else "interaction" if ":" in k else "varying"
            ]
            / df_total,
        }
        for k, v in ss.items()
        if k != "total"
    ]


def degrees_of_freedom(n_loc: int, n_st: int, n_sc: int) -> dict[str, int]:
    """Degrees of freedom of every component and ``total``."""
    lo, st, sc = n_loc - 1, n_st - 1, n_sc - 1
    df = {
        "location": lo, "staining": st, "scanner": sc, "staining:scanner": st * sc,
        "location:staining": lo * st, "location:scanner": lo * sc,
        "location:staining:scanner": lo * st * sc,
    }  # fmt: skip
    df["location:condition"] = lo * st + lo * sc + lo * st * sc
    df["total"] = n_loc * n_st * n_sc - 1
    return df


def chance_fractions(n_loc: int, n_st: int, n_sc: int) -> dict[str, float]:
    """Each component's expected fraction for structureless noise: ``df / df_total``."""
    df = degrees_of_freedom(n_loc, n_st, n_sc)
    return {k: v / df["total"] for k, v in df.items() if k != "total"}


def adjusted_fractions(ss: dict[str, float], n_loc: int, n_st: int, n_sc: int) -> dict[str, float]:
    """omega^2-style fractions ``(SS - df MS_r) / (SS_total + MS_r)`` (NaN if undefined)."""
    df = degrees_of_freedom(n_loc, n_st, n_sc)
    resid = "location:staining:scanner"
    ms_r = ss[resid] / df[resid] if df[resid] > 0 else float("nan")
    den = ss["total"] + ms_r
    return {
        k: (ss[k] - df[k] * ms_r) / den if den > 0 else float("nan") for k in df if k != "total"
    }


def offset_shares(ss: dict[str, float]) -> dict[str, float]:
    """Share of each nuisance that is a constant per-condition offset (NaN if none)."""

    def ratio(a: float, b: float) -> float:
        return a / b if b > 0 else float("nan")

    between = ss["staining"] + ss["scanner"] + ss["staining:scanner"]
    return {
        "offset_share_staining": ratio(ss["staining"], ss["staining"] + ss["location:staining"]),
        "offset_share_scanner": ratio(ss["scanner"], ss["scanner"] + ss["location:scanner"]),
        "offset_share_slide": ratio(between, ss["total"] - ss["location"]),
    }


def fractions(ss: dict[str, float]) -> dict[str, float]:
    """Each component's share of ``total`` (NaN when the total is 0)."""
    total = ss["total"]
    return {k: (v / total if total > 0 else float("nan")) for k, v in ss.items() if k != "total"}


def decompose_array(x: np.ndarray) -> dict[str, float]:
    """Sums of squares of an in-memory (stainings, scanners, locations, d) array, as is.

    The array is not normalised here (the store's reader does that); for one already in
    memory, e.g. ``fractions(decompose_array(x))``.
    """
    from plismbench.data.catalogue import SlideName

    if x.ndim != 4:
        raise ValueError(f"expected (stainings, scanners, locations, d), got shape {x.shape}")
    n_st, n_sc, n_loc, dim = x.shape
    names = [SlideName(f"S{s}_C{c}", f"S{s}", f"C{c}") for s in range(n_st) for c in range(n_sc)]
    from plismbench.store.design import crossed_design

    m = Moments(crossed_design(names, "array"), n_loc, dim)
    for i, (s, c) in enumerate((s, c) for s in range(n_st) for c in range(n_sc)):
        m.add(i, x[s, c])
    return decompose(m)
