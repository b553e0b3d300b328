"""A typed dataset spec: factors with levels, units, registered keys, tile geometry, source.

A *registered multi-condition dataset* images the same tissue under controlled changes. The
spec says, once, everything the benchmark needs to know about one such dataset:

- **factors** and their levels (PLISM: staining x scanner; SCORPION: scanner);
- **units**: what one level-per-factor cell is stored as (PLISM: a slide; SCORPION: the 480
  images of one scanner), and how a unit id is spelled;
- **registered keys**: what identifies the same tissue in every unit (PLISM: a tile's (x, y);
  SCORPION: a (slide, sample));
- **tile geometry**: how one 224 px tile is read from a unit at one key;
- **where to get it**: the Hub, Zenodo or a local folder.

Pair types are derived from the factors (:func:`pair_type_name`): ``cross-X`` means factor X
differs and every other factor is equal; one factor gives one pair type.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Literal

from plismbench.errors import InputError

#: Pair type of two units at the same level of every factor.
REPLICATE = "replicate"


def pair_type_name(differing: Sequence[str]) -> str:
    """``cross-X`` for every factor X that differs, alphabetically; ``replicate`` for none.

    ``("staining", "scanner")`` -> ``cross-scanner-cross-staining``, PLISM's name.
    """
    if not differing:
        return REPLICATE
    return "-".join(f"cross-{f}" for f in sorted(differing))


def pair_types_of(factors: Sequence[str]) -> tuple[str, ...]:
    """Every pair type of a set of factors, in report order.

    Fewer differing factors first, then alphabetically: one factor gives one pair type, two
    give three (PLISM: cross-scanner, cross-staining, cross-scanner-cross-staining), three
    give seven.
    """
    names = []
    for mask in product((False, True), repeat=len(factors)):
        differing = [f for f, d in zip(factors, mask, strict=True) if d]
        if differing:
            names.append((len(differing), pair_type_name(differing)))
    return tuple(name for _, name in sorted(names))


@dataclass(frozen=True)
class Factor:
    """One controlled change, e.g. the scanner, with its levels in catalogue order."""

    name: str
    levels: tuple[str, ...]
    #: Whether its levels may be resampled by the bootstrap (they are replicates of a
    #: population: stainings, scanners). Always true for the registered datasets.
    random: bool = True


@dataclass(frozen=True)
class TileGeometry:
    """How a ``tile_size`` px tile is read from a unit at one registered key."""

    #: Side of the tile given to a model, in pixels.
    tile_size: int = 224
    #: ``native``: the stored tile already is ``tile_size`` (PLISM); ``centre``: the centred
    #: ``tile_size`` crop of a larger registered image, at native resolution (SCORPION).
    crop: Literal["native", "centre"] = "native"
    #: Side of the stored image per key, when known (SCORPION: 1024).
    image_size: int | None = None
    #: Pyramid / deep-zoom level the tiles come from, when it applies (PLISM: 16).
    level: int | None = None
    #: Microns per pixel of the stored images, when known.
    mpp: float | None = None


@dataclass(frozen=True)
class Source:
    """Where to get the dataset."""

    kind: Literal["hub", "zenodo", "local"]
    #: Hub repository (``owner/name``), Zenodo record id, or local folder.
    location: str
    #: The DOI, when there is one.
    doi: str | None = None
    #: A second Hub repository holding the same tiles as parquet (PLISM).
    tiles_location: str | None = None
    #: Licence of the images.
    licence: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the benchmark needs to know about one registered dataset."""

    #: Registry name, lower case: ``plism``, ``scorpion``.
    name: str
    title: str
    factors: tuple[Factor, ...]
    #: ``str.format`` pattern of a unit id from its factor levels, e.g.
    #: ``"{staining}_{scanner}_to_GMH_S60.tif"``.
    unit_pattern: str
    #: Names of the fields of a registered key: PLISM ``("x", "y")``; SCORPION
    #: ``("slide", "sample")``.
    key_fields: tuple[str, ...]
    #: Number of registered keys shared by every unit.
    n_keys: int
    geometry: TileGeometry
    source: Source
    #: Whether the registered keys are independent tissue samples, so that the bootstrap
    #: resamples them too (SCORPION: 480 distinct tissue samples). PLISM's tiles are
    #: neighbouring locations of one section, so they are not.
    keys_independent: bool = False
    #: How the leaderboard score is defined on this dataset (docs/datasets.md).
    score: str = ""
    #: Paper, for citation.
    citation: str = ""
    #: Free-form notes (e.g. the crop choice).
    notes: str = ""
    #: Extra metadata a manifest brings (unit -> key -> path), not part of equality.
    paths: Mapping[str, Mapping[str, str]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def factor_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.factors)

    @property
    def n_units(self) -> int:
        n = 1
        for f in self.factors:
            n *= len(f.levels)
        return n

    def factor(self, name: str) -> Factor:
        """One factor by name."""
        for f in self.factors:
            if f.name == name:
                return f
        raise InputError(
            f"dataset {self.name}: no factor {name!r} (factors: {', '.join(self.factor_names)})"
        )

    def unit_id(self, **levels: str) -> str:
        """The unit id of one level per factor."""
        return self.unit_pattern.format(**levels)

    def cells(self) -> Iterator[tuple[str, tuple[str, ...]]]:
        """Every ``(unit id, levels)`` of the full grid, in catalogue order."""
        names = self.factor_names
        for combo in product(*(f.levels for f in self.factors)):
            yield self.unit_id(**dict(zip(names, combo, strict=True))), combo

    def unit_ids(self) -> list[str]:
        """All unit ids, sorted."""
        return sorted(u for u, _ in self.cells())

    def pair_types(self) -> tuple[str, ...]:
        """The pair types of this dataset, in report order (derived from the factors)."""
        return pair_types_of(self.factor_names)

    def score_components(self) -> tuple[tuple[str, str], ...]:
        """The leaderboard score's components, (pair type, metric); the score is their mean.

        The median cosine over all pairs, then the median top-10 accuracy of each pair type:
        PLISM's four (the reference benchmark's), SCORPION's two.
        """
        return (("all", "cosine_similarity"), *((t, "top_10_accuracy") for t in self.pair_types()))

    def pair_type(self, a: Mapping[str, str], b: Mapping[str, str]) -> str:
        """The pair type of two units given as ``{factor: level}``."""
        return pair_type_name([f for f in self.factor_names if a[f] != b[f]])


_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec, *, replace: bool = False) -> DatasetSpec:
    """Add ``spec`` to the registry under ``spec.name``."""
    key = spec.name.lower()
    if key in _REGISTRY and not replace:
        raise ValueError(f"dataset {key!r} is already registered")
    _REGISTRY[key] = spec
    return spec


def list_datasets() -> list[str]:
    """Registered dataset names, sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


def get_dataset(name: str) -> DatasetSpec:
    """A registered dataset by name (case-insensitive); unknown -> :class:`InputError`."""
    _load_builtins()
    try:
        return _REGISTRY[name.lower()]
    except KeyError:
        raise InputError(
            f"--dataset {name}: unknown dataset; choose among {', '.join(sorted(_REGISTRY))} "
            "or give a manifest (.csv/.yaml)"
        ) from None


def dataset_of_units(units: Iterable[str]) -> DatasetSpec:
    """The registered dataset whose unit ids hold all of ``units``; PLISM when none does.

    PLISM is the default so that users' own PLISM-named folders keep PLISM's score.
    """
    _load_builtins()
    wanted = set(units)
    for spec in _REGISTRY.values():
        if spec.name != "plism" and wanted and wanted <= set(spec.unit_ids()):
            return spec
    return _REGISTRY["plism"]


def _load_builtins() -> None:
    import plismbench.data.datasets.builtin  # noqa: F401  (registers plism and scorpion)
