"""Bootstrap intervals of what the report plots: the leaderboard values of each model."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from plismbench.errors import InputError
from plismbench.metrics.catalogue import ALL, SCORE, dataset_components, score
from plismbench.reporting.inputs import ModelRun
from plismbench.stats.bootstrap import N_BOOT, SEED, Bootstrap
from plismbench.stats.bounds import metric_bounds
from plismbench.stats.summary import component_replicates
from plismbench.store.design import design_from_metrics

#: The scatter's y: mean of the three cross-condition top-10 medians.
TOP10_MEAN = "top_10_cross_mean"


@dataclass
class Intervals:
    """Values and 95% intervals of one model (NaN when not computable)."""

    values: dict[str, float] = field(default_factory=dict)
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)

    def get(self, key: str) -> tuple[float, float]:
        return self.ci.get(key, (float("nan"), float("nan")))


def model_intervals(run: ModelRun, n_boot: int = N_BOOT, seed: int = SEED) -> Intervals:
    """The four leaderboard medians, the score and the scatter's y, with their intervals."""
    out = Intervals()
    try:
        boot = Bootstrap(design_from_metrics(run.metrics, str(run.folder)), n_boot, seed)
    except InputError:
        return out
    observed, reps = component_replicates(run.metrics, boot)
    observed[SCORE] = score(list(observed.values()))
    reps[SCORE] = score(list(reps.values()))
    tops = [c.label for c in dataset_components(boot.design.units) if c.pair_type != ALL]
    observed[TOP10_MEAN] = float(np.mean([observed[t] for t in tops]))
    reps[TOP10_MEAN] = np.mean(np.stack([reps[t] for t in tops]), axis=0)
    for key, value in observed.items():
        out.values[key] = value
        out.ci[key] = boot.ci(value, reps[key], bounds=metric_bounds(key))
    return out
