"""Every command checks its inputs and output path before working: a bad one is one line
and exit 2, and a failed command leaves no folder it created."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from plismbench.cli import app

#: A command line per command, with ``{missing}`` (an input that does not exist) and
#: ``{out}`` (its output folder or file).
COMMANDS = {
    "synth": "synth -o {out} --from {missing} --tiles 1",
    "extract": "extract -m rgb-histogram --tiles-dir {missing} -o {out}",
    "evaluate": "evaluate -m m --features-dir {missing} --metrics-dir {out}",
    "analyze": "analyze -m m --features-dir {missing} -o {out}",
    "run": "run --source {missing} -m rgb-histogram -o {out}",
    "distill": "distill --teacher timm:vit_tiny_patch16_224 --corpus {missing} -o {out}",
    "report": "report --metrics-dir {missing} --out {out}/r.html",
    "compare": "compare a b --metrics-dir {missing} --out {out}/c.csv",
    "breakdown": "breakdown a --metrics-dir {missing} --out {out}/b.csv",
    "leaderboard": "leaderboard --metrics-dir {missing}",
}


def _run(line: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, line.split())
    return result.exit_code, result.output


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_missing_input_is_one_line_and_leaves_no_folder(name: str, tmp_path: Path) -> None:
    out = tmp_path / "new" / "out"
    code, text = _run(COMMANDS[name].format(missing=tmp_path / "nothing", out=out))
    assert code == 2, text
    assert len(text.strip().splitlines()) == 1 and "Traceback" not in text, text
    assert not (tmp_path / "new").exists(), f"{name} left {sorted((tmp_path / 'new').rglob('*'))}"


@pytest.mark.parametrize("name", ["synth", "run", "download"])
def test_unwritable_output_is_one_line_before_any_work(name: str, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    line = {
        "synth": "synth -o {out} --tiles 1 --stainings GIV --scanners AT2",
        "run": "run -o {out}",
        "download": "download --download-dir {out}",
    }[name]
    code, text = _run(line.format(out=blocker / "x"))
    assert code == 2, text
    assert len(text.strip().splitlines()) == 1 and "is a file, not a folder" in text, text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
