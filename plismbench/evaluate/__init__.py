"""``plismbench evaluate``: every slide pair's robustness metrics, aggregated.

The module is callable: ``plismbench.evaluate(...)`` is :func:`evaluate`.
"""

from plismbench.evaluate.engine import EvaluationResult, evaluate
from plismbench.evaluate.leaderboard import leaderboard
from plismbench.utils.callable_module import make_callable

__all__ = ["EvaluationResult", "evaluate", "leaderboard"]

make_callable(__name__, evaluate)
