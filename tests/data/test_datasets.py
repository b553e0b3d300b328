"""The one Design and the dataset spec: PLISM and SCORPION entries, pair types from factors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from plismbench.data.catalogue import (
    PAIR_TYPES,
    SCANNERS,
    STAININGS,
    pair_type,
    parse_slide_id,
    plism_slide_ids,
)
from plismbench.data.datasets import get_dataset, list_datasets, pair_type_name, pair_types_of
from plismbench.errors import InputError
from plismbench.store.design import Design, crossed_design


def test_registry_holds_plism_and_scorpion() -> None:
    assert {"plism", "scorpion"} <= set(list_datasets())
    plism = get_dataset("PLISM")
    assert plism.factor_names == ("staining", "scanner")
    assert (
        plism.factor("staining").levels == STAININGS and plism.factor("scanner").levels == SCANNERS
    )
    assert plism.n_units == 91 and plism.unit_ids() == plism_slide_ids()
    assert plism.pair_types() == PAIR_TYPES
    sc = get_dataset("scorpion")
    assert sc.factor("scanner").levels == ("AT2", "DP200", "GT450", "P1000", "Philips")
    assert sc.n_units == 5 and sc.n_keys == 480 and sc.keys_independent
    assert sc.pair_types() == ("cross-scanner",)
    assert sc.source.doi == "10.5281/zenodo.16517924"
    with pytest.raises(InputError, match="unknown dataset"):
        get_dataset("nope")


def test_pair_types_derived_from_factors() -> None:
    # One factor -> one pair type; k factors -> 2**k - 1, single-factor types first.
    assert pair_types_of(["scanner"]) == ("cross-scanner",)
    three = pair_types_of(["staining", "scanner", "thickness"])
    assert len(three) == 7 and three[:3] == ("cross-scanner", "cross-staining", "cross-thickness")
    assert three[-1] == "cross-scanner-cross-staining-cross-thickness"
    assert pair_type_name([]) == "replicate"
    # PLISM's catalogue pair type agrees with the derived name on every slide pair.
    names = [parse_slide_id(s) for s in plism_slide_ids()]
    for a, b in itertools.combinations(names, 2):
        differing = [f for f in ("staining", "scanner") if getattr(a, f) != getattr(b, f)]
        assert pair_type(a, b) == pair_type_name(differing)


def test_one_design_for_plism_grid() -> None:
    names = [parse_slide_id(s) for s in plism_slide_ids()]
    d = crossed_design(names)
    assert d.factors == ("staining", "scanner") and d.n_units == 91
    assert d.stainings == tuple(sorted(STAININGS)) and d.scanners == tuple(sorted(SCANNERS))
    for i, n in enumerate(names):
        assert d.stainings[d.staining_of[i]] == n.staining
        assert d.scanners[d.scanner_of[i]] == n.scanner
        assert d.cell(i) == d.cell_of(i)
    # Pair types of the design agree with the catalogue.
    a, b = 0, 90
    assert d.pair_type_of(a, b) == pair_type(names[a], names[b])


def test_design_refuses_bad_grids() -> None:
    names = [parse_slide_id(s) for s in plism_slide_ids()]
    with pytest.raises(InputError, match="missing"):
        crossed_design(names[1:])
    with pytest.raises(InputError, match="at least 2"):
        crossed_design([n for n in names if n.scanner == "AT2"])
    dup = parse_slide_id(names[0].slide_id.replace("_to_", "_x_to_"))
    with pytest.raises(InputError, match="one slide per cell"):
        crossed_design([*names, dup])


def test_three_factor_design() -> None:
    cells = {
        f"{s}-{c}-{t}": (s, c, t)
        for s in ("A", "B")
        for c in ("X", "Y", "Z")
        for t in ("3um", "5um")
    }
    d = Design.of_units(cells, ("staining", "scanner", "thickness")).require_crossed()
    assert d.levels_of("thickness") == ("3um", "5um")
    assert np.array_equal(np.bincount(d.codes_of("scanner")), [4, 4, 4])
    assert d.pair_type_of(0, 1) == "cross-thickness"
    with pytest.raises(InputError, match="no factor"):
        d.codes_of("stain")
