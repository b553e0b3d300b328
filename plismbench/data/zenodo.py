"""Download a Zenodo record (SCORPION) through its record API: resumable, checksummed, verified.

``GET {ZENODO_URL}/api/records/{id}`` lists the record's files with their size, ``md5:``
checksum and a content link. Each file is fetched into ``{name}.part``, resumed with an HTTP
``Range`` request when a part is already there, checked against its md5, then renamed: a file
under its final name is always complete and verified. Zip archives are then unpacked (into a
temporary folder renamed into place). No network, HTTP errors and checksum mismatches each
end with one line (:class:`InputError`). ``HF_HUB_OFFLINE`` is honoured as for the Hub.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plismbench.errors import InputError

#: Default Zenodo server; ``ZENODO_URL`` overrides it (read at call time; tests use a fake).
ZENODO_URL: str = "https://zenodo.org"
_CHUNK = 1 << 20
_TIMEOUT = 30.0


def zenodo_url() -> str:
    """The Zenodo server: ``ZENODO_URL`` when set, else zenodo.org."""
    return os.environ.get("ZENODO_URL", ZENODO_URL).rstrip("/")


@dataclass(frozen=True)
class RecordFile:
    """One file of a Zenodo record."""

    name: str
    size: int
    #: ``(algorithm, hex digest)``, e.g. ``("md5", "9e10...")``.
    checksum: tuple[str, str]
    url: str


def _open(url: str, what: str, headers: dict[str, str] | None = None) -> Any:
    """``urlopen`` with every network failure turned into one line."""
    request = urllib.request.Request(url, headers={"User-Agent": "plismbench", **(headers or {})})
    try:
        return urllib.request.urlopen(request, timeout=_TIMEOUT)
    except urllib.error.HTTPError as exc:
        hint = " (no such record or file)" if exc.code == 404 else ""
        raise InputError(f"{what}: HTTP {exc.code} from {url}{hint}") from exc
    except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InputError(
            f"{what}: cannot reach {zenodo_url()} ({reason}); check the network or ZENODO_URL"
        ) from exc


def record_files(record: str) -> list[RecordFile]:
    """The files of Zenodo record ``record``, from ``/api/records/{record}``."""
    from plismbench.data.hub import offline

    what = f"Zenodo record {record}"
    if offline():
        raise InputError(
            f"{what} needs the network, but HF_HUB_OFFLINE is set; unset it, or use files "
            "already on disk (--download-dir)"
        )
    url = f"{zenodo_url()}/api/records/{record}"
    with _open(url, what, {"Accept": "application/json"}) as response:
        try:
            doc = json.loads(response.read())
            files = []
            for f in doc["files"]:
                algo, _, digest = str(f["checksum"]).partition(":")
                link = f["links"].get("content") or f["links"]["self"]
                files.append(RecordFile(str(f["key"]), int(f["size"]), (algo, digest), link))
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{what}: unexpected answer from {url}: {exc!r}") from exc
    if not files:
        raise InputError(f"{what}: the record lists no files")
    return files


def _digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def fetch_file(file: RecordFile, root: Path, progress: Callable[[int], None] | None = None) -> Path:
    """Download one record file into ``root``, resuming a ``.part``; verified before renaming."""
    final = root / file.name
    if final.is_file() and final.stat().st_size == file.size:
        return final  # renamed only after its checksum matched
    part = root / f"{file.name}.part"
    have = part.stat().st_size if part.is_file() else 0
    if have > file.size:
        part.unlink()
        have = 0
    if have < file.size:
        headers = {"Range": f"bytes={have}-"} if have else {}
        with _open(file.url, f"downloading {file.name}", headers) as response:
            resumed = have and response.status == 206
            with part.open("ab" if resumed else "wb") as out:
                try:
                    while block := response.read(_CHUNK):
                        out.write(block)
                        if progress is not None:
                            progress(len(block))
                except (http.client.HTTPException, OSError) as exc:
                    out.flush()
                    raise InputError(
                        f"{final}: download interrupted after {out.tell()} of {file.size} "
                        f"bytes ({exc!r}); run the same command again to resume"
                    ) from exc
    got = part.stat().st_size
    if got < file.size:
        raise InputError(
            f"{final}: download interrupted after {got} of {file.size} bytes (connection "
            "closed); run the same command again to resume"
        )
    algo, want = file.checksum
    digest = _digest(part, algo or "md5")
    if got != file.size or digest != want:
        part.unlink()
        raise InputError(
            f"{final}: checksum mismatch ({algo} {digest[:12]}..., expected {want[:12]}...; "
            f"{got} of {file.size} bytes); the partial file was removed, run again to retry"
        )
    os.replace(part, final)
    return final


def unpack(archive: Path, root: Path) -> None:
    """Unpack a zip into ``root``, once: a marker records that it was fully unpacked."""
    marker = root / f".{archive.name}.unpacked"
    if marker.is_file():
        return
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".unpack-"))
    try:
        with zipfile.ZipFile(archive) as z:
            z.extractall(tmp)
        for entry in tmp.iterdir():
            dest = root / entry.name
            if dest.exists():
                shutil.rmtree(dest) if dest.is_dir() else dest.unlink()
            os.replace(entry, dest)
    except zipfile.BadZipFile as exc:
        raise InputError(f"{archive}: not a valid zip archive: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    marker.write_text(archive.name)


def download_record(record: str, download_dir: str | os.PathLike[str]) -> list[Path]:
    """Fetch, verify and unpack every file of a Zenodo record into ``download_dir``."""
    from plismbench.utils.paths import check_free_space, ensure_writable_dir

    root = ensure_writable_dir(download_dir, "--download-dir")
    files = record_files(record)
    need = sum(f.size for f in files if not (root / f.name).is_file())
    check_free_space(root, 2 * need, f"downloading Zenodo record {record}")
    paths = [fetch_file(f, root) for f in files]
    for path in paths:
        if path.suffix.lower() == ".zip":
            unpack(path, root)
    return paths
