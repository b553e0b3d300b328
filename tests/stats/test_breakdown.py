"""Per-staining, per-scanner and per-tissue breakdowns with their intervals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from synthetic import pairs_frame, synthetic_metrics, write_evaluation
from typer.testing import CliRunner

from plismbench.cli import app
from plismbench.errors import InputError
from plismbench.stats.breakdown import breakdown, read_tissue_map, tissue_breakdown


def test_breakdown_medians_match_a_brute_force_filter() -> None:
    frame = pairs_frame(4, 3)
    metrics = synthetic_metrics(frame, np.random.default_rng(0), 0.5, top_k=(10,))
    table = breakdown(metrics, n_boot=100)
    assert set(table["by"]) == {"staining", "scanner"}
    for r in table.iter_rows(named=True):
        side = pl.col(f"{r['by']}_a") == r["level"]
        other = pl.col(f"{r['by']}_b") == r["level"]
        sub = metrics.filter(side | other)
        if r["pair_type"] != "all":
            sub = sub.filter(pl.col("pair_type") == r["pair_type"])
        assert r["n_pairs"] == sub.height
        assert r["median"] == pytest.approx(float(np.median(sub[r["metric"]].to_numpy())))
        assert r["ci_low"] <= r["ci_high"]


def test_tissue_breakdown_from_saved_ranks(tmp_path: Path) -> None:
    frame = pairs_frame(2, 2)
    metrics = synthetic_metrics(frame, np.random.default_rng(1), 0.5, top_k=(10,))
    folder = write_evaluation(tmp_path / "m" / "4_tiles" / "x", metrics, top_k=(10,))
    (folder / "ranks").mkdir()
    # 4 tiles: rows 0-3 at x = 0, 224, 448, 672; tumour = the first two.
    np.save(folder / "ranks" / "tiles.npy", np.array([[i, 16, 224 * i, 0] for i in range(4)]))
    want = {}
    for k, (a, b) in enumerate(zip(frame["slide_a"], frame["slide_b"], strict=True)):
        ranks = np.array([[1, 50, 2, 3], [11, 1, 1, 40]]) + k  # pair-specific ranks
        np.save(folder / "ranks" / f"{a}---{b}.npy", ranks.astype(np.int32))
        want[(a, b)] = ((ranks[:, :2] <= 10).mean(), (ranks[:, 2:] <= 10).mean())
    csv = tmp_path / "tissue.csv"
    csv.write_text("x,y,tissue\n0,0,tumour\n224,0,tumour\n448,0,stroma\n672,0,stroma\n9,9,x\n")
    table = tissue_breakdown(folder, read_tissue_map(csv), n_boot=50)
    assert set(table["level"]) == {"tumour", "stroma"}
    tum = table.filter((pl.col("level") == "tumour") & (pl.col("pair_type") == "all"))
    assert tum["median"][0] == pytest.approx(np.median([v[0] for v in want.values()]))
    res = CliRunner().invoke(app, ["breakdown", "x", "--metrics-dir", str(tmp_path / "m"),
                                   "--tissue-map", str(csv), "--n-boot", "50"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert set(pl.read_csv(folder / "breakdown.csv")["by"]) == {"staining", "scanner", "tissue"}
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\n")
    with pytest.raises(InputError, match="missing columns"):
        read_tissue_map(bad)
