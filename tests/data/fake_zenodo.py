"""A fake Zenodo on 127.0.0.1: the record API and file content with HTTP Range support."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class FakeZenodo:
    """Records ``{record: {name: bytes}}``; knobs to corrupt checksums or cut a transfer."""

    records: dict[str, dict[str, bytes]]
    #: Listed md5 replaced by a wrong one for these file names.
    bad_checksum: set[str] = field(default_factory=set)
    #: Close the connection after this many bytes, on the next content request only.
    cut_after: int | None = None
    #: ``Range`` headers received for file content (None: no Range).
    ranges: list[str | None] = field(default_factory=list)
    url: str = ""

    def listing(self, record: str) -> dict:
        files = []
        for name, data in self.records[record].items():
            md5 = hashlib.md5(data).hexdigest()
            if name in self.bad_checksum:
                md5 = "0" * 32
            link = f"{self.url}/api/records/{record}/files/{name}/content"
            files.append({"key": name, "size": len(data), "checksum": f"md5:{md5}",
                          "links": {"self": link}})  # fmt: skip
        return {"id": record, "files": files}


@contextmanager
def serve(fake: FakeZenodo) -> Iterator[FakeZenodo]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            parts = self.path.strip("/").split("/")
            if parts[:2] != ["api", "records"] or len(parts) < 3 or parts[2] not in fake.records:
                self._send(404, b'{"status": 404}')
                return
            record = parts[2]
            if len(parts) == 3:
                self._send(200, json.dumps(fake.listing(record)).encode())
                return
            name = parts[4] if len(parts) == 6 else ""
            data = fake.records[record].get(name)
            if data is None:
                self._send(404, b"")
                return
            rng = self.headers.get("Range")
            fake.ranges.append(rng)
            start = int(rng.split("=")[1].split("-")[0]) if rng else 0
            body = data[start:]
            code = 206 if rng else 200
            if fake.cut_after is not None:
                cut, fake.cut_after = fake.cut_after, None
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True
                return
            self._send(code, body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
