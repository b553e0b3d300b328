"""Feature extractors: the registry, built-in models, baselines and plugins."""

from plismbench.extractors.module import FeatureExtractor
from plismbench.extractors.registry import (
    ENTRY_POINT_GROUP,
    get_extractor,
    list_extractors,
    load_extractor,
    register_extractor,
    unregister_extractor,
)
from plismbench.extractors.spec import ExtractorSpec

__all__ = [
    "ENTRY_POINT_GROUP",
    "ExtractorSpec",
    "FeatureExtractor",
    "get_extractor",
    "list_extractors",
    "load_extractor",
    "register_extractor",
    "unregister_extractor",
]
