"""One config generates the CLI; defaults -> --preset -> --config YAML -> options;
``--preset h0-mini --dry-run`` writes the paper's schedule."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from plismbench.cli import app
from plismbench.distillation.config import (
    PRESETS,
    PROTOTYPES,
    DistillConfig,
    config_from,
    resolve_config,
)
from plismbench.errors import InputError


def _dry(tmp_path: Path, *args: str) -> tuple[int, str, dict]:
    res = CliRunner().invoke(app, ["distill", "-o", str(tmp_path), "--dry-run", *args])
    path = tmp_path / "config.yaml"
    data = yaml.safe_load(path.read_text()) if path.is_file() else {}
    return res.exit_code, res.output, data


def test_preset_h0_mini_dry_run_writes_the_paper_schedule(tmp_path: Path) -> None:
    code, output, cfg = _dry(tmp_path, "--preset", "h0-mini")
    assert code == 0, output
    assert (cfg["warmup_steps"], cfg["teacher_temp_warmup"], cfg["freeze_last_layer_steps"]) == (
        20_000, 37_500, 1_250)  # fmt: skip
    assert (cfg["steps"], cfg["batch_size"], cfg["prototypes"], cfg["image_size"]) == (
        105_000, 2048, 131_072, 224)  # fmt: skip
    assert cfg["patch_embed_lr_mult"] == 0.2 and cfg["layer_decay"] == 0.9
    assert cfg["teacher"] == "h-optimus-0" and cfg["ema_momentum"] == [0.994, 1.0]
    assert cfg["derived"]["epochs_of_1250"] == 84
    # a pretrained teacher without --teacher-heads: the warning is in the run's config
    assert any("RANDOM" in w for w in cfg["warnings"]) and "RANDOM" in output
    assert not (tmp_path / "metrics.jsonl").exists()


def test_default_schedule_keeps_dinov2_epochs_in_proportion() -> None:
    assert config_from(teacher="t", output_dir="o").lengths() == (20_000, 37_500, 1_250)
    assert config_from(teacher="t", output_dir="o", steps=840).lengths() == (160, 300, 10)


def test_precedence_defaults_preset_yaml_options(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("preset: h0-mini\nsteps: 500\nlr: 0.001\nema_momentum: [0.9, 0.99]\n")
    code, output, cfg = _dry(tmp_path, "--config", str(path), "--steps", "7",
                             "--teacher-heads", "random", "--ema", "0.5,0.6")  # fmt: skip
    assert code == 0, output
    assert cfg["steps"] == 7 and cfg["lr"] == 0.001  # option > YAML
    assert cfg["teacher"] == "h-optimus-0" and cfg["prototypes"] == 131_072  # preset
    assert cfg["warmup_steps"] == 1  # 16/84 of the 7 steps: the preset does not pin it
    assert cfg["ema_momentum"] == [0.5, 0.6] and cfg["student_temp"] == 0.1  # option, default
    assert "warnings" not in cfg  # an explicit choice of heads
    # the written file is itself a valid --config
    again = resolve_config(config_file=tmp_path / "config.yaml")
    assert again.steps == 7 and again.ema_momentum == (0.5, 0.6)


def test_every_cli_field_is_an_option_of_the_command() -> None:
    import typer.main

    command = typer.main.get_command(app).commands["distill"]  # type: ignore[attr-defined]
    flags = {o for p in command.params for o in p.opts}
    for f in dataclasses.fields(DistillConfig):
        cli = f.metadata["cli"]
        if cli is not None:
            assert (cli or "--" + f.name.replace("_", "-")) in flags, f.name
    assert {"--config", "--dry-run", "--tiles-dir", "--corpus", "--preset"} <= flags
    res = CliRunner().invoke(app, ["distill", "--help"], env={"COLUMNS": "240"})
    assert "[default: vit-base]" in res.output and "[default: 0.994,1]" in res.output


def test_bad_config_files_and_values_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("stepz: 3\n")
    with pytest.raises(InputError, match="unknown distill option 'stepz' in"):
        resolve_config({"teacher": "t", "output_dir": "o"}, bad)
    with pytest.raises(InputError, match="does not exist"):
        resolve_config({}, tmp_path / "missing.yaml")
    with pytest.raises(InputError, match="unknown --preset"):
        resolve_config({}, preset="h1-maxi")
    code, output, _ = _dry(tmp_path, "--teacher", "t", "--ema", "0.9")
    assert code == 2 and "two comma-separated numbers" in output
    code, output, _ = _dry(tmp_path, "--teacher", "t", "--precision", "fp8")
    assert code == 2 and "--precision must be" in output


def test_preset_keeps_the_papers_proportions_at_any_length(tmp_path: Path) -> None:
    """Issue 17: ``--preset h0-mini --steps 1000`` warmed up for 20,000 steps."""
    code, output, cfg = _dry(tmp_path, "--preset", "h0-mini", "--steps", "1000")
    assert code == 0, output
    assert cfg["warmup_steps"] < 1000
    assert (cfg["warmup_steps"], cfg["teacher_temp_warmup"], cfg["freeze_last_layer_steps"]) == (
        round(1000 * 16 / 84), round(1000 * 30 / 84), round(1000 / 84))  # fmt: skip
    assert "lr warmup 190" in output


def test_presets_are_deltas_over_the_defaults() -> None:
    defaults = DistillConfig()
    for name, preset in PRESETS.items():
        for key, value in preset.items():
            assert getattr(defaults, key) != value, (name, key)  # nothing restated
            assert key not in ("steps", "warmup_steps", "teacher_temp_warmup",
                               "freeze_last_layer_steps"), (name, key)  # fmt: skip


def test_a_warmup_longer_than_the_run_is_one_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    for flag in ("--warmup-steps", "--teacher-temp-warmup", "--freeze-last-layer-steps"):
        code, output, _ = _dry(run, "--teacher", "t", "--steps", "100", flag, "101")
        assert code == 2 and f"{flag} 101 is longer than the run" in output, output
        assert len(output.strip().splitlines()) == 1 and not run.exists()
    code, output, _ = _dry(run, "--teacher", "t", "--steps", "100", "--warmup-steps", "100")
    assert code == 0, output


def test_dry_run_is_part_of_the_python_api(tmp_path: Path) -> None:
    from plismbench.distillation import distill

    result = distill("t", output_dir=tmp_path, preset="h0-mini", steps=1000, dry_run=True,
                     teacher_heads="random")  # fmt: skip
    assert result.dry_run and not result.last
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved["teacher"] == "t" and saved["warmup_steps"] == 190
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]
    (tmp_path / "checkpoint.pt").write_bytes(b"a real run")
    with pytest.raises(InputError, match="a dry run would replace"):
        distill("t", output_dir=tmp_path, dry_run=True)


def test_the_prototype_count_is_written_once() -> None:
    import re

    import plismbench

    root = Path(plismbench.__file__).parent
    owners = [p.relative_to(root).as_posix() for p in root.rglob("*.py")
              if re.search(r"\b131_?072\b", p.read_text())]  # fmt: skip
    assert owners == ["distillation/config.py"], owners
    assert config_from(teacher="t").num_prototypes() == PROTOTYPES == 131_072


def test_the_documented_schedule_lengths_come_from_the_config() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "distill.md").read_text()
    for steps, text in ((840, "`--steps 840`: {}, {}, {}"),
                        (1000, "`--preset h0-mini --steps 1000`: {}, {}, {}")):  # fmt: skip
        lengths = resolve_config({"teacher": "t", "steps": steps}, preset="h0-mini").lengths()
        assert text.format(*lengths) in docs.replace("\n", " "), (steps, lengths)
