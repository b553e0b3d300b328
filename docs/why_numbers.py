"""Regenerate the numbers of docs/why.md from the current code.

    uv run python docs/why_numbers.py                      # the floors block (seconds)
    uv run python docs/why_numbers.py --demo-analysis DIR  # also the demo table, from
                                                           # `plismbench analyze` on the demo
    uv run python docs/why_numbers.py --check              # exit 1 if the floors drifted

Each block of docs/why.md between ``<!-- why:NAME -->`` and ``<!-- /why:NAME -->`` is
written by this script only; tests/analysis/test_why_doc.py fails when the floors block
no longer equals what the code computes.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

DOC = Path(__file__).with_name("why.md")


def floors() -> str:
    """What structureless or unrelated inputs give: the floor under every reading."""
    from plismbench.analysis import cka, neighbours, variance
    from plismbench.analysis.compute import compare
    from plismbench.data.catalogue import SlideName
    from plismbench.store.design import crossed_design

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((460, 1536)), rng.standard_normal((460, 1536))
    biased, debiased = cka.linear_cka(x, y, debiased=False), cka.linear_cka(x, y)
    noise = variance.fractions(variance.decompose_array(rng.standard_normal((13, 7, 20, 64))))
    chance = variance.chance_fractions(20, 13, 7)
    # Two unrelated models, each with a staining effect, on a 4 x 3 grid of 60 locations.
    names = [SlideName(f"S{s}_C{c}", f"S{s}", f"C{c}") for s in range(4) for c in range(3)]

    def model(d: int) -> np.ndarray:
        loc = rng.standard_normal((60, d))
        st = 0.7 * rng.standard_normal((4, d))
        m = np.stack([loc + st[s] + 0.3 * rng.standard_normal((60, d)) for s in range(4)
                      for _ in range(3)])  # fmt: skip
        return m / np.linalg.norm(m, axis=-1, keepdims=True)

    out = compare(model(64), model(96), crossed_design(names))
    ang = [r for r in out["angles"] if r["nuisance"] == "staining"]
    ck = next(r for r in out["cka"] if r["scope"] == "all")
    rows = [
        ("linear CKA, two independent 460 x 1,536 Gaussian matrices (biased)", biased),
        ("the same, debiased (the default)", debiased),
        ("p / (n + p) for n = 460, p = 1,536", 1536 / (460 + 1536)),
        ("variance: noise-floor `location` fraction, 13 x 7, 8,139 locations",
         variance.chance_fractions(8139, 13, 7)["location"]),
        ("variance: noise-floor `location` fraction, 13 x 7, 48 locations (demo)",
         variance.chance_fractions(48, 13, 7)["location"]),
        ("variance: `location` fraction of simulated noise, 13 x 7 x 20 locations",
         noise["location"]),
        ("its chance value (L-1)/(LSC-1)", chance["location"]),
        ("retrieval MAP@R of a random ranking, 91 slides x 460 locations",
         neighbours.chance_map_at_r(460, 91)),
        ("retrieval MAP@R of a random ranking, 91 slides x 48 locations (demo)",
         neighbours.chance_map_at_r(48, 91)),
        ("global top-10 of a random ranking, 91 slides x 48 locations (demo)",
         neighbours.chance_global_top_k(48, 91, 10)),
        ("two unrelated models with a staining effect: debiased CKA (all)", ck["cka"]),
        ("  the same pair: biased CKA (all)", ck["cka_biased"]),
        ("  their staining principal angles (degrees, smallest)", ang[0]["angle_deg"]),
        ("  their staining principal angles (degrees, largest)", ang[-1]["angle_deg"]),
        ("  null, shuffled within staining (degrees, largest)", ang[-1]["null_shuffled_deg"]),
        ("  null, random subspaces (degrees, largest)", ang[-1]["null_random_deg"]),
    ]  # fmt: skip
    lines = ["| quantity | value |", "|---|---:|"]
    lines += [f"| {name} | {value:.4f} |" for name, value in rows]
    return "\n".join(lines)


DEMO_COLUMNS = (
    ("location", "variance", "fraction", "component", "location"),
    ("location chance", "variance", "chance", "component", "location"),
    ("staining", "variance", "fraction", "component", "staining"),
    ("scanner", "variance", "fraction", "component", "scanner"),
    ("staining probe", "probes", "accuracy", "target", "staining"),
    ("scanner probe", "probes", "accuracy", "target", "scanner"),
    ("MAP@R", "neighbours", "value", "quantity", "map_at_r"),
    ("same location among 10-NN", "neighbours", "value", "quantity", "same_location"),
    ("global top-10", "neighbours", "value", "quantity", "global_top_k"),
    ("offset share (slide)", "offset", "value", "quantity", "offset_share_slide"),
    ("top-1", "offset", "value", "quantity", "top_1"),
    ("top-1 offset removed", "offset", "value", "quantity", "top_1_offset_corrected"),
    ("RI staining", "robustness", "ri", "confounder", "staining"),
    ("anisotropy", "geometry", "value", "metric", "anisotropy"),
    ("centred cosine", "geometry", "value", "metric", "centred_cosine"),
)


def demo(analysis_dir: Path) -> str:
    """The demo table, from an analysis folder of the demo's three models."""
    import polars as pl

    from plismbench.analysis.api import load_tables

    tables = load_tables(analysis_dir)
    models = list(tables["variance"]["model"].unique(maintain_order=True))
    lines = ["| model | " + " | ".join(c[0] for c in DEMO_COLUMNS) + " |",
             "|---|" + "---:|" * len(DEMO_COLUMNS)]  # fmt: skip
    for m in sorted(models):
        cells = []
        for _, table, column, key, value in DEMO_COLUMNS:
            t = tables[table].filter(
                (pl.col("model") == m) & (pl.col("layer") == "final") & (pl.col(key) == value)
            )
            cells.append(f"{float(t[column][0]):.3f}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def block(text: str, name: str) -> str:
    m = re.search(rf"<!-- why:{name} -->\n(.*?)\n<!-- /why:{name} -->", text, re.S)
    if m is None:
        raise SystemExit(f"{DOC}: no why:{name} block")
    return m.group(1)


def replace(text: str, name: str, body: str) -> str:
    old = block(text, name)
    return text.replace(
        f"<!-- why:{name} -->\n{old}\n<!-- /why:{name} -->",
        f"<!-- why:{name} -->\n{body}\n<!-- /why:{name} -->",
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--demo-analysis", type=Path)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    text = DOC.read_text(encoding="utf-8")
    if args.check:
        if block(text, "floors") != floors():
            print(f"{DOC}: the floors block drifted; run docs/why_numbers.py", file=sys.stderr)
            raise SystemExit(1)
        return
    text = replace(text, "floors", floors())
    if args.demo_analysis is not None:
        text = replace(text, "demo", demo(args.demo_analysis))
    DOC.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
