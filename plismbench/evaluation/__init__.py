"""``plismbench evaluate``: every slide pair's robustness metrics, aggregated.
"""

from plismbench.evaluation.engine import EvaluationResult, evaluate

__all__ = ["EvaluationResult", "evaluate"]
