"""Loading model weights from the Hub with honest errors.

* the endpoint does not answer: one line at once ("cannot reach the Hub"), no half minute of
  huggingface_hub retries; files already in the local cache still load (offline mode is
  switched on for the load);
* the "gated: accept its terms, set HF_TOKEN" line only for a real 401/403 refusal;
* ``HF_HUB_OFFLINE`` with files missing from the cache says so.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from plismbench.data.hub import _PROXY_VARS, endpoint, offline, unreachable
from plismbench.errors import InputError

if TYPE_CHECKING:
    from plismbench.extractors.spec import ExtractorSpec


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def is_hub_error(exc: BaseException) -> bool:
    """An error of huggingface_hub, of its HTTP client, or a loader's OSError about the Hub."""
    import httpx2
    from huggingface_hub import errors as hf_errors

    hub_types: tuple[type[BaseException], ...] = (
        hf_errors.HfHubHTTPError,
        hf_errors.LocalEntryNotFoundError,
        hf_errors.EntryNotFoundError,
        hf_errors.OfflineModeIsEnabled,
        httpx2.HTTPError,
    )
    return isinstance(exc, hub_types) or (
        isinstance(exc, OSError) and "huggingface" in str(exc).lower()
    )


def hub_error(
    label: str, hub_id: str | None, gated: bool, exc: BaseException, unreachable_why: str = ""
) -> InputError:
    """The one line that says why ``label`` could not be loaded from the Hub."""
    from huggingface_hub import get_token
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    page = f"https://huggingface.co/{hub_id}" if hub_id else label
    status = _status(exc)
    if isinstance(exc, GatedRepoError) or (status in (401, 403) and gated):
        if get_token() is None:
            return InputError(
                f"model {label!r} is gated (HTTP {status}): accept its terms at {page} and set "
                "HF_TOKEN (or run `hf auth login`)"
            )
        return InputError(
            f"model {label!r} is gated and your token was refused (HTTP {status}): accept its "
            f"terms at {page} with the account of HF_TOKEN"
        )
    if status in (401, 403):
        return InputError(
            f"the Hub refused access to model {label!r} (HTTP {status}); check HF_TOKEN and {page}"
        )
    if isinstance(exc, RepositoryNotFoundError) or status == 404:
        return InputError(f"model {label!r}: {page} was not found on the Hub at {endpoint()}")
    hint = f" (gated: accept its terms at {page} and set HF_TOKEN)" if gated else ""
    if unreachable_why:
        return InputError(
            f"cannot reach the Hub at {endpoint()} ({unreachable_why}) and model {label!r} is "
            "not in the local Hugging Face cache; check the network or HF_ENDPOINT, or pass "
            "local weights with --weights"
        )
    if offline():
        return InputError(
            f"model {label!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; "
            f"unset it to download it from {page}{hint}"
        )
    import httpx2

    if isinstance(exc, httpx2.HTTPError):
        return InputError(f"cannot reach the Hub at {endpoint()} ({_first_line(exc)})")
    return InputError(f"cannot load model {label!r} from {page}: {_first_line(exc)}")


@contextlib.contextmanager
def model_access(label: str, hub_id: str | None, gated: bool) -> Iterator[None]:
    """Run a Hub load: a quick reachability probe first, and Hub errors as one line."""
    from huggingface_hub import constants

    why = "" if offline() else (unreachable() or "")
    saved = constants.HF_HUB_OFFLINE
    if why:
        constants.HF_HUB_OFFLINE = True  # cached files load; nothing is retried
    try:
        yield
    except InputError:
        raise
    except Exception as exc:
        if is_hub_error(exc) or (why and isinstance(exc, OSError)):
            raise hub_error(label, hub_id, gated, exc, why) from None
        raise
    finally:
        constants.HF_HUB_OFFLINE = saved


def _cached(hub_id: str) -> bool:
    """Some snapshot of the model is in the local Hugging Face cache."""
    from pathlib import Path

    from huggingface_hub import constants

    snapshots = Path(constants.HF_HUB_CACHE) / f"models--{hub_id.replace('/', '--')}" / "snapshots"
    return snapshots.is_dir() and any(snapshots.iterdir())


def check_model_access(label: str, hub_id: str | None, gated: bool) -> None:
    """Before long work: the model's weights are cached, or the Hub will serve them to us.

    One line for offline mode, an unreachable Hub, a missing repo, or a gated repo whose terms
    are not accepted (or no token); nothing is downloaded.
    """
    if not hub_id or _cached(hub_id):
        return
    if offline():
        raise hub_error(label, hub_id, gated, OSError("offline"))
    why = unreachable()
    if why:
        raise hub_error(label, hub_id, gated, OSError("unreachable"), why)
    from huggingface_hub import HfApi

    try:
        HfApi(endpoint=endpoint()).auth_check(hub_id)
    except Exception as exc:
        if is_hub_error(exc):
            raise hub_error(label, hub_id, gated, exc) from None
        raise


def url_weights_path(spec: ExtractorSpec) -> Path | None:
    """Where ``torch.hub`` caches a URL-hosted checkpoint (``None`` for Hub or local models)."""
    if not spec.url or spec.hub_id:
        return None
    import torch.hub

    name = spec.weights_file or os.path.basename(urlsplit(spec.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def check_url_weights(spec: ExtractorSpec, timeout: float = 5.0) -> None:
    """Before long work: a URL-hosted checkpoint is cached, or its host answers (no download)."""
    cached = url_weights_path(spec)
    if cached is None or cached.is_file():
        return
    url = urlsplit(spec.url or "")
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    why = None
    if not any(os.environ.get(v) for v in _PROXY_VARS):
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except socket.gaierror as exc:
            why = f"cannot resolve {host}: {exc.strerror or exc}"
        except TimeoutError:
            why = f"no answer from {host}:{port} in {timeout:g} s"
        except OSError as exc:
            why = f"{host}:{port}: {exc.strerror or exc}"
    if why:
        raise InputError(
            f"model {spec.name!r}: its weights are not cached ({cached}) and {spec.url} cannot "
            f"be reached ({why}); download the file to that path"
        )


def resolved_revision(spec: ExtractorSpec) -> str | None:
    """The Hub commit a loaded model came from (read from the local cache), or ``None``.

    A 40-hex ``--revision`` is the commit itself; a branch or tag is resolved through the
    cache's ``refs/`` file, which ``huggingface_hub`` writes on every download.
    """
    if not spec.hub_id:
        return None
    rev = spec.revision or "main"
    if len(rev) == 40 and all(c in "0123456789abcdef" for c in rev.lower()):
        return rev.lower()
    from huggingface_hub import constants

    ref = Path(constants.HF_HUB_CACHE) / f"models--{spec.hub_id.replace('/', '--')}" / "refs" / rev
    try:
        text = ref.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return text or None
