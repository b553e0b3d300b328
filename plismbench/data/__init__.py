"""PLISM data: catalogue of stainings and scanners, tile sources, download and synthesis."""

from plismbench.data.catalogue import (
    N_SLIDES,
    N_TILES,
    SCANNERS,
    STAININGS,
    SlideName,
    pair_type,
    parse_slide_id,
    plism_slide_ids,
    slide_id,
)

__all__ = [
    "N_SLIDES",
    "N_TILES",
    "SCANNERS",
    "STAININGS",
    "SlideName",
    "pair_type",
    "parse_slide_id",
    "plism_slide_ids",
    "slide_id",
]
