"""The GraphiQL page's static files: a fixed table read once, served from memory.

Only the files listed here are served (a dict lookup, so no path can reach anything
else): the vendored files named in ``static/vendor/manifest.json`` and our own
``boot.js`` and ``page.css``. Vendored file names carry their version, so a browser may
keep them for a year (``immutable``); ours are revalidated by ETag on every load.
A body is gzipped on its first request that accepts gzip (GraphiQL's script is 1 MB,
about 300 kB gzipped) and kept that way for the life of the process.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

__all__ = ["STATIC_PATH", "STATIC_ROOT", "Asset", "asset_response", "assets", "vendored"]

STATIC_ROOT: Final = Path(__file__).parent / "static"
#: The URL path the files are served under (after the app's root path).
STATIC_PATH: Final = "/graphiql/static"

_MEDIA_TYPES: Final = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}
_OURS: Final = ("boot.js", "page.css")
_IMMUTABLE: Final = "public, max-age=31536000, immutable"
_REVALIDATE: Final = "no-cache"


@dataclass(frozen=True)
class Asset:
    """One file as served: its bytes, type, validator and caching rule."""

    body: bytes
    media_type: str
    etag: str
    cache_control: str

    @functools.cached_property
    def gzipped(self) -> bytes:
        return gzip.compress(self.body, compresslevel=6, mtime=0)


@functools.cache
def vendored() -> Mapping[str, tuple[str, str]]:
    """The vendored files by name, each with its npm package and version."""
    manifest = json.loads((STATIC_ROOT / "vendor" / "manifest.json").read_text("utf-8"))
    return {name: (f["package"], f["version"]) for name, f in manifest["files"].items()}


def _asset(path: Path, cache_control: str) -> Asset:
    body = path.read_bytes()
    return Asset(
        body=body,
        media_type=_MEDIA_TYPES[path.suffix],
        etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"',
        cache_control=cache_control,
    )


@functools.cache
def assets() -> Mapping[str, Asset]:
    """Every servable file by its path under ``STATIC_PATH``; read once per process."""
    vendor = STATIC_ROOT / "vendor"
    table = {f"vendor/{name}": _asset(vendor / name, _IMMUTABLE) for name in vendored()}
    table.update({name: _asset(STATIC_ROOT / name, _REVALIDATE) for name in _OURS})
    return table


def asset_response(request: Request) -> Response:
    """``GET /graphiql/static/{path}``: the file, 304 when the browser's copy is current."""
    asset = assets().get(request.path_params["path"])
    if asset is None:
        return Response("Not Found", status_code=404, media_type="text/plain")
    headers = {"ETag": asset.etag, "Cache-Control": asset.cache_control, "Vary": "Accept-Encoding"}
    if asset.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    body = asset.body
    if "gzip" in request.headers.get("accept-encoding", ""):
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=asset.media_type, headers=headers)
