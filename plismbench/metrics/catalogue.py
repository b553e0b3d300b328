"""The metric catalogue: every per-pair metric and the leaderboard score, written once.

A per-pair metric is a column of ``metrics.csv``. Its entry here gives its name, its
labels, the values it can take (so that widened intervals stay inside them), its
direction and, for a metric of the exact ranks, the function that computes it for a
chunk of slide pairs. Evaluate, the aggregates, the bootstrap intervals, ``compare``,
the leaderboard and the report all read this module; adding a rank metric is one
entry in `RANK_METRICS` (see docs/contributing.md).

The reference leaderboard score is the mean of four medians, the
`COMPONENTS`; `score()` is the one place that mean is taken.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Bounds = tuple[float, float]
UNBOUNDED: Bounds = (-math.inf, math.inf)

#: (r_ab, r_ba) -> value per pair: two (n_pairs, n_tiles) arrays of the exact ranks of
#: each tile's match, slide a querying b and b querying a.
FromRanks = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Metric:
    """One per-pair metric (a column of ``metrics.csv``)."""

    name: str
    #: Short label (tables) and long label (figures, axes).
    label: str
    title: str
    bounds: Bounds
    higher_is_better: bool = True
    #: Computes the metric from the ranks (None: computed elsewhere, e.g. the cosine).
    from_ranks: FromRanks | None = None
    #: Prefix of the leaderboard labels built on this metric (``top_10_cross_scanner``).
    stem: str = ""

    @property
    def key(self) -> str:
        return self.stem or self.name


def mean_reciprocal_rank(r_ab: np.ndarray, r_ba: np.ndarray) -> np.ndarray:
    return (np.mean(1.0 / r_ab, axis=1) + np.mean(1.0 / r_ba, axis=1)) / 2


def median_rank(r_ab: np.ndarray, r_ba: np.ndarray) -> np.ndarray:
    return np.median(np.concatenate([r_ab, r_ba], axis=1), axis=1)


COSINE = Metric("cosine_similarity", "Cosine", "Cosine similarity", (-1.0, 1.0))

#: Metrics of the exact ranks, after the top-k accuracies, in report order.
RANK_METRICS: tuple[Metric, ...] = (
    Metric("mrr", "MRR", "Mean reciprocal rank", (0.0, 1.0), from_ranks=mean_reciprocal_rank),
    Metric("median_rank", "Median rank", "Median rank", (1.0, math.inf), False, median_rank),
)

_TOP_K = re.compile(r"top_(\d+)_accuracy")


def top_k(k: int) -> Metric:
    """Top-k accuracy: the fraction of tiles whose match ranks k or better (both ways)."""
    return Metric(
        f"top_{k}_accuracy", f"Top-{k}", f"Top-{k} accuracy", (0.0, 1.0), stem=f"top_{k}",
        from_ranks=lambda r_ab, r_ba: (np.mean(r_ab <= k, axis=1) + np.mean(r_ba <= k, axis=1)) / 2,
    )  # fmt: skip


def metric_names(top_ks: Sequence[int]) -> list[str]:
    """Per-pair metric columns, in report order."""
    return [COSINE.name, *(f"top_{k}_accuracy" for k in top_ks), *(m.name for m in RANK_METRICS)]


def present_metrics(columns: Sequence[str]) -> list[str]:
    """The catalogue's metrics among ``columns``, in report order (top-k by k)."""
    ks = sorted(int(m.group(1)) for c in columns if (m := _TOP_K.fullmatch(c)))
    return [n for n in metric_names(ks) if n in columns]


def lookup(name: str) -> Metric | None:
    """The metric of a column name (``top_3_accuracy``), or None if not in the catalogue."""
    if m := _TOP_K.fullmatch(name):
        return top_k(int(m.group(1)))
    return next((m for m in (COSINE, *RANK_METRICS) if m.name == name), None)


def label(name: str) -> str:
    """Short column label of a metric name."""
    m = lookup(name)
    return m.label if m else name


def title(name: str) -> str:
    """Long (human) name of a metric column."""
    m = lookup(name)
    return m.title if m else name.replace("_", " ").capitalize()


# ---------------------------------------------------------------------------- leaderboard

#: The leaderboard's top-k, and the name of its score.
LEADERBOARD_K = 10
SCORE = "leaderboard_metric"
#: The pseudo pair type covering every pair.
ALL = "all"


@dataclass(frozen=True)
class Component:
    """One median of the leaderboard score: a metric over a pair type."""

    pair_type: str
    metric: str
    #: Markdown header and terminal header.
    header: str
    short: str

    @property
    def label(self) -> str:
        """Leaderboard column name: ``cosine_similarity_all``, ``top_10_cross_scanner``..."""
        return component_label(self.pair_type, self.metric)


def component_label(pair_type: str, metric: str) -> str:
    """``<metric stem>_<pair type>`` with dashes as underscores."""
    m = lookup(metric)
    return f"{m.key if m else metric}_{pair_type}".replace("-", "_")


_TOP = f"top_{LEADERBOARD_K}_accuracy"
#: The four components of the reference leaderboard metric.
COMPONENTS: tuple[Component, ...] = (
    Component(ALL, COSINE.name, "Cosine (all)", "Cos"),
    Component("cross-scanner", _TOP, f"Top-{LEADERBOARD_K} cross-scanner", "Scan"),
    Component("cross-staining", _TOP, f"Top-{LEADERBOARD_K} cross-staining", "Stain"),
    Component("cross-scanner-cross-staining", _TOP, f"Top-{LEADERBOARD_K} cross-both", "Both"),
)
#: (pair type, metric) of each component.
LEADERBOARD_COMPONENTS: tuple[tuple[str, str], ...] = tuple(
    (c.pair_type, c.metric) for c in COMPONENTS
)
COMPONENT_LABELS: tuple[str, ...] = tuple(c.label for c in COMPONENTS)


def dataset_components(units: Any) -> tuple[Component, ...]:
    """The score's components of the dataset that holds ``units`` (unit / slide ids).

    PLISM (and any units no other registered dataset holds): :data:`COMPONENTS`. Another
    dataset: ``DatasetSpec.score_components()``, e.g. SCORPION's cosine (all) and top-10
    cross-scanner.
    """
    from plismbench.data.datasets import dataset_of_units

    known = {(c.pair_type, c.metric): c for c in COMPONENTS}
    pairs = dataset_of_units(units).score_components()
    return tuple(known.get(p) or Component(p[0], p[1], f"{p[1]} {p[0]}", p[0]) for p in pairs)


def score(parts: Sequence[Any]) -> Any:
    """The leaderboard score: the mean of the components (floats, or replicate vectors).

    NaN when a component is NaN (undefined stays undefined).
    """
    out = np.mean(np.stack([np.asarray(p, dtype=np.float64) for p in parts]), axis=0)
    return float(out) if np.ndim(out) == 0 else out


#: Range of the score: the mean of a cosine in [-1, 1] and three accuracies in [0, 1].
SCORE_BOUNDS: Bounds = (
    sum((lookup(c.metric) or COSINE).bounds[0] for c in COMPONENTS) / len(COMPONENTS),
    sum((lookup(c.metric) or COSINE).bounds[1] for c in COMPONENTS) / len(COMPONENTS),
)

_COMPONENT = re.compile(r"(top_\d+)(_.*)?")


def bounds(name: str) -> Bounds:
    """Range of a per-pair metric or of its median, given a column name, a leaderboard
    label (``top_10_cross_scanner``) or the score."""
    if name.startswith(SCORE):
        return SCORE_BOUNDS
    if m := _COMPONENT.fullmatch(name):
        return top_k(int(m.group(1)[4:])).bounds
    for metric in (COSINE, *RANK_METRICS):
        if name == metric.name or name.startswith(metric.name + "_"):
            return metric.bounds
    return UNBOUNDED
