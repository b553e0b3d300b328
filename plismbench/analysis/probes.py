"""Nuisance probes: can a linear classifier read the staining or the scanner?

A standardised multinomial logistic regression (scikit-learn, lbfgs, deterministic) is
cross-validated with ``GroupKFold`` over tile locations: every fold's test locations are
unseen in training, so the probe cannot recognise tissue it has memorised. Chance is
``1 / n_classes`` in the balanced design (also the majority-class rate). A robust model
has probe accuracies near chance.

The probe reports whether lbfgs converged in every fold (``converged``) and the most
iterations a fold used (``n_iter``); analyze logs a line when it did not.
"""

from __future__ import annotations

import warnings

import numpy as np

#: Probe targets.
TARGETS: tuple[str, ...] = ("staining", "scanner")


def probe_accuracy(
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    *,
    folds: int = 5,
    max_iter: int = 1000,
    c: float = 1.0,
) -> tuple[float, float, bool, int]:
    """Mean and std over folds of the held-out accuracy, whether every fold converged,
    and the most lbfgs iterations of a fold."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    n_groups = np.unique(groups).size
    splits = min(folds, n_groups)
    if splits < 2:
        raise ValueError(f"need at least 2 tile locations for grouped folds, got {n_groups}")
    scores = []
    converged, n_iter = True, 0
    for train, test in GroupKFold(n_splits=splits).split(x, y, groups):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter))
        # One BLAS thread: the problem is small per call, and several threads spinning on
        # a busy machine made a demo probe 50x slower.
        with warnings.catch_warnings(record=True) as caught, threadpool_limits(limits=1):
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(x[train], y[train])
            scores.append(float((model.predict(x[test]) == y[test]).mean()))
        if any(issubclass(w.category, ConvergenceWarning) for w in caught):
            converged = False
        n_iter = max(n_iter, int(np.max(model[-1].n_iter_)))
    return float(np.mean(scores)), float(np.std(scores)), converged, n_iter


def probes(
    x: np.ndarray,
    staining: np.ndarray,
    scanner: np.ndarray,
    location: np.ndarray,
    *,
    folds: int = 5,
    max_iter: int = 1000,
) -> list[dict[str, float | str | int | bool]]:
    """One row per target: accuracy, its fold std, chance, classes and folds."""
    rows: list[dict[str, float | str | int | bool]] = []
    for target, y in zip(TARGETS, (staining, scanner), strict=True):
        mean, std, converged, n_iter = probe_accuracy(
            x, y, location, folds=folds, max_iter=max_iter
        )
        n_classes = int(np.unique(y).size)
        majority = float(np.bincount(y).max() / y.size)
        rows.append(
            {
                "target": target,
                "accuracy": mean,
                "accuracy_std": std,
                "chance": max(1.0 / n_classes, majority),
                "n_classes": n_classes,
                "folds": min(folds, int(np.unique(location).size)),
                "n_rows": int(y.size),
                "converged": converged,
                "n_iter": n_iter,
                "max_iter": max_iter,
            }
        )
    return rows
