"""The registered datasets shipped with plismbench: PLISM and SCORPION."""

from __future__ import annotations

from plismbench.data import catalogue as plism
from plismbench.data.datasets.spec import (
    DatasetSpec,
    Factor,
    Source,
    TileGeometry,
    register_dataset,
)

PLISM = register_dataset(
    DatasetSpec(
        name="plism",
        title="PLISM: 13 H&E stainings x 7 scanners of one tissue micro-array",
        factors=(Factor("staining", plism.STAININGS), Factor("scanner", plism.SCANNERS)),
        unit_pattern="{staining}_{scanner}_" + plism.REFERENCE_SUFFIX,
        key_fields=("x", "y"),
        n_keys=plism.N_TILES,
        geometry=TileGeometry(tile_size=plism.TILE_SIZE, crop="native", level=plism.TILE_LEVEL),
        source=Source(
            kind="hub",
            location=plism.H5_REPO,
            tiles_location=plism.TILES_REPO,
            licence="CC BY 4.0",
        ),
        keys_independent=False,
        score=(
            "mean of four components over all 4,095 slide pairs: median cosine similarity, "
            "median top-1, top-5 and top-10 retrieval accuracy (the reference benchmark's)"
        ),
        citation="Ochi et al., PLISM, Scientific Data 2024",
    )
)

#: SCORPION's five scanners, as spelled in its file names.
SCORPION_SCANNERS: tuple[str, ...] = ("AT2", "DP200", "GT450", "P1000", "Philips")
#: Zenodo record of SCORPION (doi 10.5281/zenodo.16517924).
SCORPION_RECORD: str = "16517924"

SCORPION = register_dataset(
    DatasetSpec(
        name="scorpion",
        title="SCORPION: 480 tissue samples x 5 scanners, spatially aligned patches",
        factors=(Factor("scanner", SCORPION_SCANNERS),),
        # "SCORPION" stands in the staining field: one lab's staining, one level, so the
        # unit ids parse as {staining}_{scanner} like PLISM's and every pair is cross-scanner.
        unit_pattern="SCORPION_{scanner}",
        key_fields=("slide", "sample"),
        n_keys=480,
        geometry=TileGeometry(tile_size=224, crop="centre"),
        source=Source(
            kind="zenodo",
            location=SCORPION_RECORD,
            doi="10.5281/zenodo.16517924",
        ),
        keys_independent=True,
        score=(
            "mean of the same four components over the 10 cross-scanner unit pairs, each "
            "computed on the 480 registered samples: median cosine, median top-1/5/10 retrieval"
        ),
        citation="Ryu et al., SCORPION, arXiv 2507.20907 (MICCAI workshop 2025)",
        notes=(
            "Files are slide_{i}/sample_{j}/{scanner}.jpg. A unit is one scanner (its 480 "
            "images), stored as SCORPION_{scanner}. Each image is larger than 224 px; the tile "
            "is its centred 224 px crop at native resolution, so each sample gives one tile: "
            "one registered key per independent tissue. A grid of 224 px tiles per image "
            "would multiply the keys but not the independent samples."
        ),
    )
)
