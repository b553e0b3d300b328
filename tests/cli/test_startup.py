"""The CLI starts without torch: reading commands (leaderboard, evaluate) never pay for it."""

from __future__ import annotations

import subprocess
import sys


def test_cli_and_evaluate_do_not_import_torch() -> None:
    code = (
        "import sys, plismbench.cli, plismbench.evaluation.engine, plismbench.stats.leaderboard\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
