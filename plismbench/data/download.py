"""Download the PLISM h5 files from the Hub, resumably and in parallel, then verify them."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from plismbench.data.catalogue import H5_REPO, N_TILES, SCANNERS, STAININGS, slide_id
from plismbench.data.tiles import parse_tile_id
from plismbench.errors import InputError

__all__ = ["DownloadReport", "download", "download_dataset", "expected_slides", "verify"]


@dataclass
class DownloadReport:
    """What a download folder holds compared with what was asked for."""

    download_dir: Path
    #: Slide ids asked for, sorted.
    expected: list[str]
    #: Slide ids whose h5 file is present, readable and complete.
    ok: list[str] = field(default_factory=list)
    #: Slide ids with no h5 file.
    missing: list[str] = field(default_factory=list)
    #: Slide id -> the problem with its h5 file.
    bad: dict[str, str] = field(default_factory=dict)
    #: For another dataset than PLISM: its one-line verification.
    note: str | None = None

    @property
    def complete(self) -> bool:
        """Every expected file is present and verified."""
        return not self.missing and not self.bad

    def summary(self) -> str:
        """One line: counts, and the first problems."""
        if self.note is not None:
            return self.note
        line = f"{len(self.ok)}/{len(self.expected)} h5 files verified in {self.download_dir}"
        if self.missing:
            shown = ", ".join(f"{s}.h5" for s in self.missing[:3])
            more = ", ..." if len(self.missing) > 3 else ""
            line += f"; {len(self.missing)} missing: {shown}{more}"
        if self.bad:
            sid, why = next(iter(self.bad.items()))
            line += f"; {len(self.bad)} unreadable or incomplete, e.g. {sid}.h5: {why}"
        return line


def expected_slides(
    stainings: Iterable[str] | None = None, scanners: Iterable[str] | None = None
) -> list[str]:
    """Slide ids of the chosen stainings x scanners (default: all 91), checked against PLISM."""
    chosen = []
    for values, allowed, what in (
        (stainings, STAININGS, "staining"),
        (scanners, SCANNERS, "scanner"),
    ):
        names = list(allowed) if values is None else [v.strip() for v in values if v.strip()]
        unknown = [v for v in names if v not in allowed]
        if unknown:
            raise InputError(f"unknown {what} {unknown[0]!r}: choose among {', '.join(allowed)}")
        if not names:
            raise InputError(f"no {what} chosen")
        chosen.append(names)
    return sorted({slide_id(st, sc) for st in chosen[0] for sc in chosen[1]})


def _check_file(path: Path, n_tiles: int | None) -> str | None:
    """None when the h5 file opens and holds ``n_tiles`` parsable tiles; else the problem."""
    import h5py
    import numpy as np

    try:
        with h5py.File(path, "r") as f:
            keys = list(f.keys())
            if n_tiles is not None and len(keys) != n_tiles:
                return f"{len(keys)} tiles, expected {n_tiles}"
            if not keys:
                return "no tiles"
            for key in keys:
                parse_tile_id(key, where=str(path))
            for key in (keys[0], keys[-1]):
                tile = f[key][()]
                if tile.dtype != np.uint8 or tile.ndim != 3 or tile.shape[2] != 3:
                    return f"tile {key!r} is {tile.dtype} {tile.shape}, expected uint8 (H, W, 3)"
    except InputError as exc:
        return exc.message.split(": ", 1)[-1]
    except (OSError, RuntimeError, KeyError) as exc:
        return f"cannot read (truncated or corrupt?): {exc}"
    return None


def verify(
    download_dir: str | os.PathLike[str],
    *,
    stainings: Iterable[str] | None = None,
    scanners: Iterable[str] | None = None,
    n_tiles: int | None = N_TILES,
) -> DownloadReport:
    """Check that every expected ``{slide_id}.h5`` is there, opens, and holds ``n_tiles`` tiles.

    ``n_tiles=None`` skips the count (e.g. for a synthetic dataset). Reads the first and last tile
    of each file, not every tile.
    """
    root = Path(download_dir)
    report = DownloadReport(root, expected_slides(stainings, scanners))
    for sid in report.expected:
        path = root / f"{sid}.h5"
        if not path.is_file():
            report.missing.append(sid)
            continue
        problem = _check_file(path, n_tiles)
        if problem is None:
            report.ok.append(sid)
        else:
            report.bad[sid] = problem
    return report


#: Written by :func:`download` beside the h5 files: the Hub dataset commit they came from.
REVISION_FILE = ".plism-revision.json"


def download(
    download_dir: str | os.PathLike[str],
    *,
    stainings: Iterable[str] | None = None,
    scanners: Iterable[str] | None = None,
    workers: int = 8,
    repo_id: str = H5_REPO,
    revision: str | None = None,
    n_tiles: int | None = N_TILES,
    dataset: str = "plism",
) -> DownloadReport:
    """Download the h5 files of the chosen stainings x scanners into ``download_dir``.

    ``dataset``: ``scorpion`` fetches SCORPION from Zenodo instead; a manifest (.csv/.yaml)
    is only validated (:func:`download_dataset`).

    Files already there are kept (so an interrupted download resumes), ``workers`` files are
    fetched in parallel, and the token comes from ``HF_TOKEN`` or the cached ``hf auth login``.
    Returns `verify()`'s report of what arrived.
    """
    from huggingface_hub import HfApi, snapshot_download

    from plismbench.data.hub import endpoint, hub_errors, require_online
    from plismbench.utils.paths import check_free_space, ensure_writable_dir

    if dataset.lower() != "plism":
        from plismbench.data.datasets.manifest import resolve_dataset

        line = download_dataset(dataset, download_dir)
        units = resolve_dataset(dataset).unit_ids()
        return DownloadReport(Path(download_dir), units, ok=units, note=line)
    wanted = expected_slides(stainings, scanners)
    root = ensure_writable_dir(download_dir, "--download-dir")
    files = [f"{sid}.h5" for sid in wanted]
    if all((root / f).is_file() for f in files):
        before = verify(root, stainings=stainings, scanners=scanners, n_tiles=n_tiles)
        if before.complete:  # nothing to fetch: no network needed (offline re-runs)
            return before
    require_online(f"downloading {repo_id}")
    with hub_errors(repo_id):
        # Resolve the revision first: snapshot_download would otherwise fall back silently on
        # a non-empty local folder when the Hub refuses access.
        api = HfApi(endpoint=endpoint())
        info = api.repo_info(repo_id, repo_type="dataset", revision=revision, files_metadata=True)
        sha = info.sha
        siblings = getattr(info, "siblings", None) or []
        sizes = {s.rfilename: int(s.size or 0) for s in siblings}
        need = sum(sizes.get(f, 0) for f in files if not (root / f).is_file())
        check_free_space(root, need + (1 << 30) * bool(need), f"downloading {len(files)} files")
        snapshot_download(
            repo_id,
            repo_type="dataset",
            revision=sha,
            local_dir=root,
            allow_patterns=files,
            max_workers=max(1, workers),
            endpoint=endpoint(),
        )
    # The dataset commit the files came from: meta.json, run.json and results.json report it.
    from plismbench.utils.io import write_json

    write_json(root / REVISION_FILE, {"repo_id": repo_id, "revision": sha})
    return verify(root, stainings=stainings, scanners=scanners, n_tiles=n_tiles)


def download_dataset(dataset: str, download_dir: str | os.PathLike[str]) -> str:
    """Fetch and verify a non-PLISM dataset; one line saying what is there.

    ``scorpion``: from Zenodo (:mod:`plismbench.data.zenodo`); a manifest (.csv/.yaml): only
    validated, its images are already local.
    """
    from plismbench.data.datasets.manifest import resolve_dataset

    spec = resolve_dataset(dataset)
    if spec.source.kind == "local":
        return (
            f"{spec.source.location}: {spec.n_units} units x {spec.n_keys} registered keys "
            f"({' x '.join(f'{len(f.levels)} {f.name}' for f in spec.factors)}), all present"
        )
    if spec.name == "scorpion":
        from plismbench.data import scorpion

        return scorpion.download(download_dir, spec.n_keys)
    raise InputError(f"--dataset {dataset}: download knows plism, scorpion and manifests")
