"""The PLISM catalogue: stainings, scanners, slide ids and pair types.

Use these names everywhere instead of literals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

from plismbench.data.datasets.spec import pair_type_name, pair_types_of
from plismbench.errors import InputError

#: The 13 H&E staining protocols of PLISM.
STAININGS: tuple[str, ...] = (
    "GIV", "GIVH", "GM", "GMH", "GV", "GVH", "HR", "HRH", "KR", "KRH", "LM", "LMH", "MY",
)  # fmt: skip
#: The 7 scanners of PLISM.
SCANNERS: tuple[str, ...] = ("AT2", "GT450", "P", "S210", "S360", "S60", "SQ")
#: Registered whole-slide images in PLISM (13 stainings x 7 scanners).
N_SLIDES: int = len(STAININGS) * len(SCANNERS)
#: Registered tile locations shared by every PLISM slide.
N_TILES: int = 16_278
#: Tile side in pixels.
TILE_SIZE: int = 224
#: Deep-zoom level of the PLISM tiles.
TILE_LEVEL: int = 16
#: Every PLISM slide was registered onto this reference slide.
REFERENCE_SUFFIX: str = "to_GMH_S60.tif"
#: Hub dataset repositories.
H5_REPO: str = "owkin/plism-dataset"
TILES_REPO: str = "owkin/plism-dataset-tiles"

PairType = Literal["cross-scanner", "cross-staining", "cross-scanner-cross-staining", "replicate"]
#: PLISM's factors, in catalogue order.
FACTORS: tuple[str, ...] = ("staining", "scanner")
#: Pair types in report order, derived from the factors; ``all`` is added by aggregation.
PAIR_TYPES: tuple[str, ...] = pair_types_of(FACTORS)


@dataclass(frozen=True)
class SlideName:
    """A parsed slide id: staining and scanner are its first two ``_`` fields."""

    slide_id: str
    staining: str
    scanner: str


def slide_id(staining: str, scanner: str) -> str:
    """The PLISM slide id of a staining and a scanner, e.g. ``GIV_AT2_to_GMH_S60.tif``."""
    return f"{staining}_{scanner}_{REFERENCE_SUFFIX}"


def plism_slide_ids() -> list[str]:
    """All 91 PLISM slide ids, sorted."""
    return sorted(slide_id(st, sc) for st in STAININGS for sc in SCANNERS)


def parse_slide_id(name: str) -> SlideName:
    """Parse ``{staining}_{scanner}[_...]``; any names are accepted, not only PLISM's."""
    fields = name.split("_")
    if len(fields) < 2 or not fields[0] or not fields[1]:
        raise InputError(
            f"slide id {name!r} cannot be parsed: expected '{{staining}}_{{scanner}}[_...]', "
            f"e.g. {slide_id(STAININGS[0], SCANNERS[0])!r}"
        )
    return SlideName(slide_id=name, staining=fields[0], scanner=fields[1])


def pair_type(a: SlideName, b: SlideName) -> PairType:
    """Which condition differs between two slides (``cross-X`` per differing factor X)."""
    differing = [f for f in FACTORS if getattr(a, f) != getattr(b, f)]
    return cast(PairType, pair_type_name(differing))
