"""Talking to the Hugging Face Hub: endpoint, clear errors, ranged reads and streaming rows."""

from __future__ import annotations

import contextlib
import io
import os
import socket
from collections.abc import Generator, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from plismbench.data.formats import TILE_COLUMNS
from plismbench.errors import InputError


def endpoint() -> str:
    """The Hub endpoint: ``HF_ENDPOINT`` when set (read at call time), else huggingface.co."""
    from huggingface_hub import constants

    return os.environ.get("HF_ENDPOINT", constants.ENDPOINT).rstrip("/")


_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set, now or at import."""
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return constants.HF_HUB_OFFLINE or any(
        (v or "").strip().lower() in ("1", "true", "yes", "on") for v in flags
    )


def unreachable(timeout: float = 3.0) -> str | None:
    """None when a TCP connection to the Hub endpoint opens; else the reason, in a few words.

    huggingface_hub retries a refused connection for about 30 s before failing; this probe
    answers in ``timeout`` seconds at most. Behind an HTTP proxy (``HTTPS_PROXY`` ...) the
    probe is skipped (None): the proxy, not the endpoint, is what a direct connection meets.
    """
    if any(os.environ.get(v) for v in _PROXY_VARS):
        return None
    url = urlsplit(endpoint())
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except socket.gaierror as exc:
        return f"cannot resolve {host}: {exc.strerror or exc}"
    except TimeoutError:
        return f"no answer from {host}:{port} in {timeout:g} s"
    except OSError as exc:
        return f"{host}:{port}: {exc.strerror or exc}"
    return None


def require_online(what: str) -> None:
    """One line when the Hub cannot be used: offline mode, or the endpoint does not answer."""
    if offline():
        raise InputError(
            f"{what} needs the Hugging Face Hub, but HF_HUB_OFFLINE is set; unset it, or use "
            "files already on disk (--download-dir)"
        )
    reason = unreachable()
    if reason is not None:
        raise InputError(
            f"cannot reach the Hub at {endpoint()} ({reason}) for {what}; check the network "
            "or HF_ENDPOINT"
        )


def dataset_page(repo_id: str) -> str:
    """The public page of a Hub dataset (where its access conditions are accepted)."""
    return f"https://huggingface.co/datasets/{repo_id}"


def _access_message(repo_id: str, status: int | None) -> str:
    page = dataset_page(repo_id)
    return (
        f"the Hub refused access to {repo_id} (HTTP {status}): the dataset is gated; accept its "
        f"conditions on {page} with your account, then log in with `hf auth login` or set the "
        "HF_TOKEN environment variable to a read token"
    )


@contextlib.contextmanager
def hub_errors(repo_id: str) -> Iterator[None]:
    """Turn Hub errors (gated, unauthorised, not found, unreachable) into one clear line."""
    import httpx2
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        yield
    except OfflineModeIsEnabled as exc:
        raise InputError(
            f"{repo_id} needs the Hugging Face Hub, but HF_HUB_OFFLINE is set; unset it, or use "
            "files already on disk (--download-dir)"
        ) from exc
    except GatedRepoError as exc:
        raise InputError(_access_message(repo_id, _status(exc))) from exc
    except RevisionNotFoundError as exc:
        page = dataset_page(repo_id)
        raise InputError(f"revision not found in {page}: {_first_line(exc)}") from exc
    except RepositoryNotFoundError as exc:
        if _status(exc) in (401, 403):
            raise InputError(_access_message(repo_id, _status(exc))) from exc
        raise InputError(
            f"{dataset_page(repo_id)} was not found (or you have no access: set HF_TOKEN)"
        ) from exc
    except HfHubHTTPError as exc:
        if _status(exc) in (401, 403):
            raise InputError(_access_message(repo_id, _status(exc))) from exc
        raise InputError(f"the Hub failed for {repo_id}: {_first_line(exc)}") from exc
    except (httpx2.HTTPError, LocalEntryNotFoundError) as exc:
        raise InputError(
            f"cannot reach the Hub at {endpoint()} for {repo_id}: {_first_line(exc)}"
        ) from exc


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class HubFile(io.RawIOBase):
    """A read-only, seekable file over HTTP Range requests to one Hub file."""

    def __init__(self, repo_id: str, filename: str, revision: str, size: int) -> None:
        super().__init__()
        from huggingface_hub import hf_hub_url

        self.repo_id = repo_id
        self.name = filename
        self.size = size
        self.url = hf_hub_url(
            repo_id, filename, repo_type="dataset", revision=revision, endpoint=endpoint()
        )
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self.size - self._pos)
        if n <= 0:
            return 0
        data = self.read_range(self._pos, n)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def read_range(self, start: int, length: int) -> bytes:
        """``length`` bytes from ``start`` in one ranged GET."""
        from huggingface_hub.utils import build_hf_headers, hf_raise_for_status, http_backoff

        headers = build_hf_headers()
        headers["Range"] = f"bytes={start}-{start + length - 1}"
        with hub_errors(self.repo_id):
            response = http_backoff("GET", self.url, headers=headers, follow_redirects=True)
            hf_raise_for_status(response)
        data = response.content
        if response.status_code == 200:  # the server ignored the range
            data = data[start : start + length]
        return data


def stream_slide_rows(
    repo_id: str, revision: str, data_files: Sequence[str], slide_id: str
) -> Generator[tuple[str, Any], None, None]:
    """``(tile_id, png)`` of one slide's rows, streamed with ``datasets.load_dataset``.

    Only ``data_files`` (the parquet shards holding the slide, paths in the repo) are opened.
    The ``slide_id`` filter is pushed down to the parquet reader, so row groups of other slides
    are skipped by their statistics, and is applied again to the streamed rows; ``png`` is cast
    to ``datasets.Image(decode=False)``, so no image is decoded here: ``png`` is the raw
    ``{"bytes": ..., "path": ...}`` of the HF Image struct. Rows come in storage order.
    """
    import datasets
    import pyarrow as pa
    from datasets.exceptions import DatasetsError

    kwargs: dict[str, Any] = {
        "split": "train",
        "streaming": True,
        "revision": revision,
        "data_files": list(data_files),
        "columns": list(TILE_COLUMNS),
        "filters": [("slide_id", "==", slide_id)],
    }
    with hub_errors(repo_id):
        try:
            try:
                rows = datasets.load_dataset(repo_id, **kwargs)
            except ValueError as exc:
                if "filters" not in str(exc):
                    raise
                del kwargs["filters"]  # datasets without parquet filter push-down
                rows = datasets.load_dataset(repo_id, **kwargs)
            rows = rows.cast_column("png", datasets.Image(decode=False))
            rows = rows.filter(lambda sid: sid == slide_id, input_columns="slide_id")
            for row in rows:
                yield str(row["tile_id"]), row["png"]
        except (DatasetsError, pa.ArrowException, OSError) as exc:
            raise InputError(
                f"cannot stream {', '.join(data_files)} of {repo_id}@{revision[:8]} with "
                f"datasets: {_first_line(exc)}"
            ) from exc
