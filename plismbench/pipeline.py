"""``plismbench run``: download -> extract -> evaluate -> leaderboard -> report.

Every stage resumes and is skipped when its outputs are complete. With no model and no
source, the embedded demo runs offline: a synthetic PLISM made from the shipped CC0 H&E
crop, evaluated with the weight-free baselines and a random-weight ViT-Tiny.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from plismbench.data.catalogue import N_TILES, plism_slide_ids
from plismbench.data.datasets import DatasetSpec
from plismbench.data.sources import open_source
from plismbench.errors import InputError
from plismbench.extractors.baselines import RANDOM_VIT
from plismbench.extractors.spec import ExtractorSpec
from plismbench.store.features import FEATURES_FILE, META_FILE
from plismbench.utils.io import write_json

DEFAULT_OUTPUT_DIR = Path("plismbench-results")
#: Weight-free baselines plus a random-weight ViT: the offline demo's models.
DEMO_MODELS: tuple[str, ...] = ("hed-histogram", "rgb-histogram", "vit-tiny-random")
DEMO_TILES = 48
DEMO_SEED = 0
#: What a person types to run the real benchmark.
REAL_COMMAND = "HF_TOKEN=... uv run plismbench run --model h0-mini --device cuda"


@dataclass
class RunResult:
    """What `run()` produced."""

    output_dir: Path
    models: list[str]
    n_tiles: int
    demo: bool
    leaderboard: pl.DataFrame
    report: Path | None
    #: Seconds per stage; a skipped stage is absent.
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "output_dir": str(self.output_dir),
            "demo": self.demo,
            "models": self.models,
            "n_tiles": self.n_tiles,
            "report": None if self.report is None else str(self.report),
            "leaderboard": self.leaderboard.to_dicts(),
            "timings_s": {k: round(v, 2) for k, v in self.timings.items()},
        }


def run(
    models: Sequence[str] | None = None,
    *,
    source: str | os.PathLike[str] | None = None,
    output_dir: str | os.PathLike[str] = DEFAULT_OUTPUT_DIR,
    n_tiles: int | str | None = None,
    device: str = "auto",
    batch_size: int = 64,
    workers: int | None = None,
    keep_data: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    distill_demo: bool = False,
    dataset: str = "plism",
) -> RunResult:
    """Run the whole benchmark and return the leaderboard and the report's path.

    ``source``: ``"hub"`` (download the h5 files into ``output_dir/data``),
    ``"streaming"``, ``"synthetic"`` (the demo data), or a local folder of h5 files,
    parquet files, or ``<slide_id>/<tile_id>.png`` images. With neither ``models`` nor
    ``source``, the offline demo runs; ``distill_demo`` adds to it a student distilled
    from the demo's random ViT (``<output>/distill/``). ``dataset``: ``plism``, or ``scorpion``
    (whose ``source`` is ``synthetic``, the offline SCORPION-shaped demo, or its folder).
    """
    say = log or (lambda message: None)
    out = Path(output_dir)
    demo = not models and source is None
    dataset_spec = _dataset(dataset, source, distill_demo)
    if demo:
        source = "synthetic"
        models = list(DEMO_MODELS)
    elif not models:
        raise InputError("--model: name at least one model (`plismbench models` lists them)")
    if distill_demo and not demo:
        raise InputError("--distill-demo adds a student to the demo: give no --model or --source")
    elif source is None:
        source = "hub"
    _register_demo_models()
    from plismbench.extractors.registry import get_extractor

    specs = [get_extractor(m) for m in models or ()]
    folders = [s.folder for s in specs]
    timings: dict[str, float] = {}
    features_dir, metrics_dir = out / "features", out / "metrics"
    expected = dataset_spec.unit_ids() if source in ("synthetic", "hub", "streaming") else None
    if dataset_spec.name != "plism" and source == "synthetic":
        expected = None  # the SCORPION demo holds fewer samples than the real one
    made_from = _expected_source(str(source), out)
    todo = [
        s
        for s in specs
        if not _features_complete(features_dir / s.folder, expected, s, device, made_from)
    ]
    preflight(todo, str(source), out, device)

    student = out / "distill" / "student"
    if distill_demo and not _student_done(student, features_dir, expected, device):
        todo = todo or specs[-1:]  # the data stage is needed for the student

    # Stages 1 and 2: data (only when some features are missing), then extraction.
    from plismbench.extraction import extract

    for spec in specs:
        if spec not in todo:
            say(f"extract: {spec.name} (reused: every slide is done)")
    if todo:
        t = time.perf_counter()
        tiles = _open(str(source), out, say, dataset_spec.name)
        timings["data"] = time.perf_counter() - t

        t = time.perf_counter()
        for spec in todo:
            say(f"extract: {spec.name}")
            extract(
                spec, tiles, features_dir, batch_size=batch_size, device=device,
                workers=workers if workers is not None else 2, progress=progress,
            )  # fmt: skip
        timings["extract"] = time.perf_counter() - t
        if distill_demo:
            from plismbench.distillation.demo import distill_demo_student

            t = time.perf_counter()
            say(f"distill: {RANDOM_VIT.name} -> a ViT-Tiny student ({out / 'distill'})")
            student = distill_demo_student(out / "distill", tiles, RANDOM_VIT.name, device=device)
            say(f"extract: {student}")
            extract(str(student), tiles, features_dir, batch_size=batch_size, device=device,
                    workers=workers if workers is not None else 2, progress=progress)  # fmt: skip
            timings["distill"] = time.perf_counter() - t
        if source == "synthetic" and not keep_data:
            shutil.rmtree(out / "data" / _synthetic_folder(dataset_spec.name), ignore_errors=True)

    if distill_demo:
        folders.append(get_extractor(str(student)).folder)

    # Stage 3: evaluate (each call returns at once when already complete).
    from plismbench.evaluation import evaluate
    from plismbench.stats.leaderboard import leaderboard

    t = time.perf_counter()
    n_used = 0
    evaluated = False
    for folder in folders:
        say(f"evaluate: {folder}")
        res = evaluate(
            folder, features_dir, metrics_dir, n_tiles=n_tiles, device=device,
            workers=workers, progress=progress, allow_missing=expected is None,
        )  # fmt: skip
        n_used = res.n_tiles
        evaluated |= not res.reused
        if res.reused:
            say(f"evaluate: {folder} (reused: already complete)")
    timings["evaluate"] = time.perf_counter() - t

    # Stage 3b: why are some models more robust? (<output>/analysis/, reused when unchanged)
    from plismbench.analysis.stage import run_stage

    if len(dataset_spec.factors) == 2:  # the decompositions need a staining x scanner grid
        t = time.perf_counter()
        evaluated |= run_stage(folders, features_dir, out / "analysis", n_tiles=n_tiles,
                               device=device, log=say)  # fmt: skip
        timings["analyze"] = time.perf_counter() - t
    else:
        n = len(dataset_spec.factors)
        say(f"analyze: skipped ({dataset_spec.name} has {n} factor(s), it needs 2)")

    # Stages 4 and 5: leaderboard and report.
    board = leaderboard(metrics_dir, n_used)
    board = board.filter(pl.col("model").is_in(folders))
    t = time.perf_counter()
    report_path = _report(metrics_dir, n_used, refresh=evaluated, say=say)
    timings["report"] = time.perf_counter() - t
    return RunResult(out, folders, n_used, demo, board, report_path, timings)


def preflight(specs: Sequence[ExtractorSpec], source: str, out: Path, device: str) -> None:
    """Checks that take seconds, before stages that take hours: one line each.

    The device exists, the output folder is writable, every model still to extract has its
    optional packages (``spec.requires``) and is cached or served by the Hub to this token
    (gated terms accepted) or by its release URL, and a Hub source is reachable (free disk
    for the download is checked by ``download`` before its first byte).
    """
    from plismbench.data.hub import require_online
    from plismbench.extractors.access import check_model_access, check_url_weights
    from plismbench.extractors.loaders import require
    from plismbench.utils.device import resolve_device
    from plismbench.utils.paths import check_free_space, check_writable_dir

    resolve_device(device)
    check_writable_dir(out, "--out-dir")
    for spec in specs:  # local checks first, then the network
        require(spec)
    for spec in specs:
        check_model_access(spec.name, spec.hub_id, spec.gated)
        check_url_weights(spec)
    if specs and source in ("hub", "streaming"):
        marker = out / "data" / "plism"
        if source == "streaming" or not _h5_complete(marker):
            require_online(f"--source {source}")
        # float32 (level, x, y) + features for every PLISM tile of every model still to do
        rows = len(plism_slide_ids()) * N_TILES
        need = sum(rows * (spec.embed_dim + 3) * 4 for spec in specs)
        check_free_space(out, need, f"the features of {len(specs)} model(s)")


def _h5_complete(folder: Path) -> bool:
    return all((folder / f"{sid}.h5").is_file() for sid in plism_slide_ids())


def _register_demo_models() -> None:
    """The demo's models are registry entries (kept for callers of the old name)."""
    from plismbench.extractors.registry import list_extractors, register_extractor

    if RANDOM_VIT.name not in {s.name for s in list_extractors()}:
        register_extractor(RANDOM_VIT)


def _student_done(student: Path, features_dir: Path, expected: list[str] | None,
                  device: str) -> bool:  # fmt: skip
    """The demo's student exists and its features are complete."""
    if not (student / "model.safetensors").is_file():
        return False
    from plismbench.extractors.registry import get_extractor

    spec = get_extractor(str(student))
    return _features_complete(features_dir / spec.folder, expected, spec, device)


def _expected_source(source: str, out: Path) -> dict[str, str] | None:
    """What ``meta.json`` records as the source of this run's tiles (``describe()``'s keys)."""
    if source in ("synthetic", "hub"):
        folder = out / "data" / ("synthetic" if source == "synthetic" else "plism")
        return {"type": "h5", "download_dir": str(folder.resolve())}
    if source == "streaming":
        return {"type": "hub-streaming"}
    return None


def _features_complete(
    model_dir: Path, expected: list[str] | None, spec: Any, device: str,
    made_from: dict[str, str] | None = None,
) -> bool:  # fmt: skip
    """Every expected slide is finished by this model at this run's precision, from its source.

    A slide without ``meta.json``, or whose ``meta.json`` names another model, precision or
    source (a demo's synthetic tiles carry the real PLISM slide ids), is not complete:
    extraction then decides (and refuses a mismatch in one line) instead of the run
    evaluating someone else's features.
    """
    if expected is None:
        return False
    from plismbench.extraction.config import resolve_precision
    from plismbench.utils.device import resolve_device

    precision = resolve_precision(None, spec, resolve_device(device))
    for sid in expected:
        slide = model_dir / sid
        if not (slide / FEATURES_FILE).is_file():
            return False
        try:
            meta = json.loads((slide / META_FILE).read_text())
        except (OSError, ValueError):
            return False
        if not isinstance(meta, dict):
            return False
        if meta.get("model") != spec.name or meta.get("precision") != precision:
            return False
        recorded = meta.get("source")
        if made_from is not None and not (
            isinstance(recorded, dict) and all(recorded.get(k) == v for k, v in made_from.items())
        ):
            return False
    return True


def _dataset(name: str, source: Any, distill_demo: bool) -> DatasetSpec:
    """The dataset spec of ``--dataset``; non-PLISM runs read a synthetic or local SCORPION."""
    from plismbench.data.datasets.manifest import resolve_dataset

    spec = resolve_dataset(name)
    if spec.name == "plism":
        return spec
    if spec.name != "scorpion":
        raise InputError(f"--dataset {name}: run knows plism and scorpion so far")
    if source in ("hub", "streaming"):
        raise InputError(
            f"--source {source}: SCORPION comes from Zenodo; run `plismbench download "
            "--dataset scorpion` then give its folder as --source, or use synthetic"
        )
    if distill_demo:
        raise InputError("--distill-demo runs on PLISM only")
    return spec


def _synthetic_folder(dataset: str) -> str:
    return "synthetic" if dataset == "plism" else f"synthetic-{dataset}"


def _open(source: str, out: Path, say: Callable[[str], None], dataset: str = "plism") -> Any:
    """A tile source for ``source``, making or downloading the data first if needed."""
    if dataset == "scorpion":
        from plismbench.data import scorpion

        if source == "synthetic":
            target = out / "data" / _synthetic_folder(dataset)
            say(f"synth: a SCORPION-shaped demo (5 simulated scanners) into {target}")
            return scorpion.source(scorpion.synth(target))
        return scorpion.source(source)
    if source == "synthetic":
        return open_source(download_dir=_demo_data(out / "data" / "synthetic", say))
    if source == "hub":
        from plismbench.data.download import download

        target = out / "data" / "plism"
        say(f"download: owkin/plism-dataset into {target} (about 225 GB; resumable)")
        report = download(target)
        if not report.complete:
            raise InputError(f"{target}: download incomplete: {report.summary()}")
        return open_source(download_dir=target)
    if source == "streaming":
        return open_source(streaming=True)
    path = Path(source)
    if not path.is_dir():
        raise InputError(
            f"--source {source!r}: expected hub, streaming, synthetic or an existing folder"
        )
    if any(path.glob("*.h5")):
        return open_source(download_dir=path)
    if any(path.rglob("*.parquet")):
        return open_source(parquet=path)
    if any(p.is_dir() for p in path.iterdir()):
        return open_source(tiles_dir=path)
    raise InputError(f"{path}: no *.h5, *.parquet or <slide_id>/ image folders found")


def _demo_data(target: Path, say: Callable[[str], None]) -> Path:
    """The synthetic PLISM of the demo, made once (deterministic) and marked complete."""
    marker = target / ".complete.json"
    params = {"tiles": DEMO_TILES, "seed": DEMO_SEED, "format": "h5"}
    if marker.is_file() and json.loads(marker.read_text()) == params:
        return target
    from plismbench.data.synth import synth

    say(f"synth: 91 synthetic slides x {DEMO_TILES} tiles from the CC0 H&E crop into {target}")
    shutil.rmtree(target, ignore_errors=True)
    synth(target, n_tiles=DEMO_TILES, seed=DEMO_SEED, formats=("h5",))
    write_json(marker, params)
    return target


def _report(
    metrics_dir: Path, n_tiles: int, *, refresh: bool, say: Callable[[str], None]
) -> Path:
    from plismbench.reporting import REPORT_FILE, report
    from plismbench.store.evaluation import tiles_dir

    default = tiles_dir(metrics_dir, n_tiles) / REPORT_FILE
    if default.is_file() and not refresh:
        say(f"report: {default} (reused)")
        return default
    say("report: " + str(default))
    return Path(report(metrics_dir, n_tiles=n_tiles))
