"""A fake Hugging Face Hub on 127.0.0.1 for offline tests (stdlib http.server in a thread).

Serves dataset repos from local folders with the endpoints that huggingface_hub calls:
``/api/datasets/{repo}[/revision/{rev}]``, ``/api/datasets/{repo}/tree/{rev}[/{path}]`` and
``HEAD``/``GET /datasets/{repo}/resolve/{rev}/{file}`` (with HTTP Range, 206); model repos
(``/{repo}/resolve/{rev}/{file}``, ``/api/models/{repo}/auth-check``) share the same folders.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

SHA = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    sent: int


@dataclass
class FakeHub:
    """Repos: repo id -> folder whose files (recursively) are the repo's files."""

    repos: dict[str, Path]
    #: repo id -> HTTP status (401/403) answered with ``X-Error-Code: GatedRepo`` on file reads.
    gated: dict[str, int] = field(default_factory=dict)
    #: files whose first full GET is cut after half of the body (the client must resume).
    cut_once: set[str] = field(default_factory=set)
    log: list[Request] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- repo content ---------------------------------------------------------------------
    def files(self, repo: str) -> dict[str, Path]:
        root = self.repos[repo]
        return {
            p.relative_to(root).as_posix(): p
            for p in sorted(root.rglob("*"))
            if p.is_file() and not any(s.startswith(".") for s in p.relative_to(root).parts)
        }

    @staticmethod
    def oid(path: Path) -> str:
        return hashlib.sha1(path.read_bytes()).hexdigest()

    def record(self, req: Request) -> None:
        with self._lock:
            self.log.append(req)

    def served(self, suffix: str = "") -> list[Request]:
        """Logged file GETs (resolve) whose path ends with ``suffix``."""
        return [
            r
            for r in self.log
            if r.method == "GET" and "/resolve/" in r.path and r.path.endswith(suffix)
        ]

    # -- server ---------------------------------------------------------------------------
    def start(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            fake = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


_API = re.compile(r"^/api/datasets/([^/]+/[^/]+)(?:/revision/([^/]+))?/?$")
_TREE = re.compile(r"^/api/datasets/([^/]+/[^/]+)/tree/([^/]+)(?:/(.*))?$")
_RESOLVE = re.compile(r"^/datasets/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_MODEL_RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_AUTH_CHECK = re.compile(r"^/api/models/([^/]+/[^/]+)/auth-check$")


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj: object) -> None:
        self._send(200, json.dumps(obj).encode(), {"Content-Type": "application/json"})

    def _error(self, status: int, code: str, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        self._send(status, body, {"X-Error-Code": code, "X-Error-Message": message})

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        path = unquote(urlsplit(self.path).path)
        fake = self.fake
        rng = self.headers.get("Range")
        if m := _API.match(path):
            repo = m.group(1)
            fake.record(Request(self.command, path, rng, 0))
            if repo not in fake.repos:
                return self._error(404, "RepoNotFound", "Repository not found")
            siblings = [{"rfilename": f} for f in fake.files(repo)]
            gated = "auto" if repo in fake.gated else False
            info = {"id": repo, "sha": SHA, "private": False, "gated": gated, "siblings": siblings}
            return self._json(info)
        if m := _TREE.match(path):
            repo, sub = m.group(1), (m.group(3) or "").strip("/")
            fake.record(Request(self.command, path, rng, 0))
            if repo not in fake.repos:
                return self._error(404, "RepoNotFound", "Repository not found")
            entries = [
                {"type": "file", "path": f, "size": p.stat().st_size, "oid": fake.oid(p)}
                for f, p in fake.files(repo).items()
                if not sub or f.startswith(sub + "/")
            ]
            return self._json(entries)
        if m := _RESOLVE.match(path):
            return self._resolve(m.group(1), m.group(3), rng, path)
        if m := _AUTH_CHECK.match(path):
            repo = m.group(1)
            fake.record(Request(self.command, path, rng, 0))
            if repo not in fake.repos:
                return self._error(404, "RepoNotFound", "Repository not found")
            if repo in fake.gated:
                return self._error(fake.gated[repo], "GatedRepo", "Access is restricted.")
            return self._json({})
        if not path.startswith(("/api/", "/datasets/")) and (m := _MODEL_RESOLVE.match(path)):
            return self._resolve(m.group(1), m.group(3), rng, path)
        fake.record(Request(self.command, path, rng, 0))
        self._error(404, "EntryNotFound", f"no route {path}")

    def _resolve(self, repo: str, name: str, rng: str | None, path: str) -> None:
        fake = self.fake
        if repo not in fake.repos:
            fake.record(Request(self.command, path, rng, 0))
            return self._error(404, "RepoNotFound", "Repository not found")
        if repo in fake.gated:
            fake.record(Request(self.command, path, rng, 0))
            return self._error(
                fake.gated[repo], "GatedRepo", "Access to this dataset is restricted."
            )
        files = fake.files(repo)
        if name not in files:
            fake.record(Request(self.command, path, rng, 0))
            return self._error(404, "EntryNotFound", f"{name} does not exist")
        data = files[name].read_bytes()
        headers = {
            "X-Repo-Commit": SHA,
            "ETag": f'"{fake.oid(files[name])}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        status, body = 200, data
        if rng:
            m = re.match(r"bytes=(\d*)-(\d*)$", rng)
            if m is None:
                return self._error(416, "RangeNotSatisfiable", rng)
            first, last = m.groups()
            if first == "":
                start, end = max(0, len(data) - int(last)), len(data) - 1
            else:
                start, end = int(first), min(int(last) if last else len(data) - 1, len(data) - 1)
            if start >= len(data):
                return self._error(416, "RangeNotSatisfiable", rng)
            status, body = 206, data[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        if self.command == "GET" and not rng and name in fake.cut_once:
            fake.cut_once.discard(name)
            half = len(body) // 2
            fake.record(Request(self.command, path, rng, half))
            self.send_response(200)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:half])
            self.wfile.flush()
            self.close_connection = True
            return None
        fake.record(Request(self.command, path, rng, len(body) if self.command == "GET" else 0))
        return self._send(status, body, headers)
