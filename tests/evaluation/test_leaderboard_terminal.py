"""The terminal leaderboard is readable at 80 columns: every cell shown whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console
from synthetic import pairs_frame, synthetic_metrics, write_evaluation

import plismbench
from plismbench.stats.leaderboard import leaderboard_rich


def test_eighty_columns_show_every_rank_score_interval_and_group(tmp_path: Path) -> None:
    names = ("distill-student-long-name", "vit-tiny-random", "hed-histogram")
    rng, frame = np.random.default_rng(0), pairs_frame(3, 3)
    for level, name in zip((0.9, 0.8, 0.5), names, strict=True):
        write_evaluation(tmp_path / "m" / "20_tiles" / name, synthetic_metrics(frame, rng, level))
    board = plismbench.leaderboard(tmp_path / "m", write=False)
    console = Console(width=80, record=True, color_system=None)
    console.print(leaderboard_rich(board, "Leaderboard"))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text  # nothing cut
    # rows: "rank model cos scan stain both score [low, high] group"; a long model name
    # folds onto continuation lines holding just the rest of the name
    shown: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        tokens = line.split()
        if len(tokens) >= 9 and tokens[0].isdigit():
            current = tokens[0]
            shown[current] = " ".join(tokens)
        elif current is not None and len(tokens) == 1 and line.startswith("     "):
            rank, model, *rest = shown[current].split()
            shown[current] = " ".join([rank, model + tokens[0], *rest])
        elif not tokens:
            current = None
    for r in board.iter_rows(named=True):
        low, high = r["leaderboard_metric_ci_low"], r["leaderboard_metric_ci_high"]
        want = (
            f"{r['rank']} {r['model']} {r['cosine_similarity_all']:.3f} "
            f"{r['top_10_cross_scanner']:.3f} {r['top_10_cross_staining']:.3f} "
            f"{r['top_10_cross_scanner_cross_staining']:.3f} "
            f"{r['leaderboard_metric']:.3f} [{low:.3f}, {high:.3f}] {r['group']}"
        )
        assert shown[str(r["rank"])] == want
