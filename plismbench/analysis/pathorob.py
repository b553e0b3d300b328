"""PathoROB's robustness index (RI), computed by the ``croma`` package.

Biology is the tile location, the confounder is the staining or the scanner, and the
independence group is the slide: neighbours from the query's own slide are excluded (they
share both staining and scanner). Among a tile's k nearest remaining neighbours, ``SO``
ones have the same location and another confounder value, ``OS`` ones another location
and the same confounder value; RI is ``sum SO / (sum SO + sum OS)`` over all tiles. Above
0.5, biology outweighs the confounder. We call croma's ``RI.compute_curve`` at our own k
(croma's ``RI.compute`` would pick k by kNN accuracy), so models are compared at one k.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

CONFOUNDERS: tuple[str, ...] = ("staining", "scanner")


def manifest(
    location: np.ndarray, slide_ids: list[str], staining: list[str], scanner: list[str]
) -> pd.DataFrame:
    """croma's manifest (a pandas DataFrame): one row per feature row."""
    import pandas as pd

    n = len(location)
    return pd.DataFrame(
        {
            "sample_id": [str(i) for i in range(n)],
            "image_path": [f"{slide_ids[i]}/{int(location[i])}" for i in range(n)],
            "label": [str(int(v)) for v in location],
            "group_id": slide_ids,
            "staining": staining,
            "scanner": scanner,
        }
    )


def robustness_index(
    x: np.ndarray,
    location: np.ndarray,
    slide_ids: list[str],
    staining: list[str],
    scanner: list[str],
    k: int,
) -> dict[str, float]:
    """``{"ri_staining": ..., "ri_scanner": ...}`` from croma at neighbourhood size ``k``."""
    from croma import RI

    frame = manifest(location, slide_ids, staining, scanner)
    out: dict[str, float] = {}
    for confounder in CONFOUNDERS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            curve = RI.compute_curve(
                np.asarray(x, dtype=np.float32), frame, confounder_column=confounder, k_values=[k]
            )
        out[f"ri_{confounder}"] = float(curve[int(k)])
    return out
