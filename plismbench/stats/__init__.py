"""Statistics over slide pairs that respect the design: bootstrap CIs, paired comparisons.

The units of replication are the stainings and the scanners, not the slide pairs;
see ``docs/statistics.md``.
"""

from plismbench.stats.bootstrap import Bootstrap, hierarchical_weights, weighted_quantiles
from plismbench.stats.summary import results_ci, score_replicates
from plismbench.store.design import Design, design_from_metrics

__all__ = [
    "Bootstrap",
    "Design",
    "design_from_metrics",
    "hierarchical_weights",
    "results_ci",
    "score_replicates",
    "weighted_quantiles",
]
