#!/usr/bin/env python3
"""Refresh the GraphiQL page's vendored assets from the npm registry, at pinned versions.

    .venv/bin/python scripts/refresh_graphiql.py

The gateway serves GraphiQL from files shipped inside the package
(gateway/graphiql/static/vendor/), so the page works offline and behind proxies that
block CDNs. This script is the one way those files change: for each pinned package it
runs ``npm pack NAME@VERSION`` (npm's own client, which checks the tarball against the
registry's integrity hash), takes the browser build and the licence out of the tarball,
and writes ``manifest.json``: what each file is, where it came from (package, version,
tarball integrity) and its SHA-256, which tests/gateway/test_graphiql.py checks.

Why these versions: GraphiQL 4 is the last release line with a browser (UMD) build; 5
is ESM with Monaco and needs a bundler. Its UMD build expects React 18's globals and
internals, and React 18 is the last line that ships UMD files. GraphiQL bundles its own
dependencies (graphql-js, CodeMirror 5, markdown-it, ...) and its fonts (as data: URLs in
its CSS), so these four files are the whole page.

The one change made to a vendored file: the trailing ``//# sourceMappingURL=`` comment is
dropped (the maps are not shipped), so a browser's developer tools ask for nothing that
is not there.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[1]
VENDOR: Final = ROOT / "gateway" / "graphiql" / "static" / "vendor"


@dataclass(frozen=True)
class Pin:
    """One npm package: which of its files the page needs, and under which name."""

    package: str
    version: str
    #: path inside the tarball (under ``package/``) -> file name in vendor/
    files: dict[str, str]


PINS: Final = (
    Pin(
        "react",
        "18.3.1",
        {
            "umd/react.production.min.js": "react-18.3.1.production.min.js",
            "LICENSE": "LICENSE.react.txt",
        },
    ),
    Pin(
        "react-dom",
        "18.3.1",
        {
            "umd/react-dom.production.min.js": "react-dom-18.3.1.production.min.js",
            "LICENSE": "LICENSE.react-dom.txt",
        },
    ),
    Pin(
        "graphiql",
        "4.1.2",
        {
            "graphiql.min.js": "graphiql-4.1.2.min.js",
            "graphiql.min.css": "graphiql-4.1.2.min.css",
            "LICENSE": "LICENSE.graphiql.txt",
        },
    ),
)

_SOURCE_MAP: Final = re.compile(rb"\n?/[/*]# sourceMappingURL=[^\n]*\s*$")


def _pack(pin: Pin, into: Path) -> tuple[Path, str]:
    """``npm pack`` the pinned version; the tarball and its registry integrity."""
    spec = f"{pin.package}@{pin.version}"
    out = subprocess.run(  # noqa: S603  # npm, with our own pinned arguments
        ["npm", "pack", spec, "--json", "--pack-destination", str(into)],  # noqa: S607
        check=True,
        capture_output=True,
        text=True,
    )
    (packed,) = json.loads(out.stdout)
    if packed["version"] != pin.version:
        raise SystemExit(f"npm packed {packed['name']}@{packed['version']}, not {spec}")
    return into / packed["filename"], str(packed["integrity"])


def _extract(tarball: Path, member: str) -> bytes:
    with tarfile.open(tarball) as archive:
        handle = archive.extractfile(f"package/{member}")
        if handle is None:
            raise SystemExit(f"{tarball.name} has no file {member}")
        return handle.read()


def refresh() -> dict[str, dict[str, str]]:
    """Write the vendored files and their manifest; the manifest's entries."""
    VENDOR.mkdir(parents=True, exist_ok=True)
    for old in VENDOR.iterdir():
        old.unlink()
    files: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for pin in PINS:
            tarball, integrity = _pack(pin, Path(scratch))
            for member, name in pin.files.items():
                body = _extract(tarball, member)
                if name.endswith((".js", ".css")):
                    body = _SOURCE_MAP.sub(b"\n", body)
                (VENDOR / name).write_bytes(body)
                files[name] = {
                    "package": pin.package,
                    "version": pin.version,
                    "from": member,
                    "integrity": integrity,
                    "sha256": hashlib.sha256(body).hexdigest(),
                }
    manifest = {
        "comment": "written by scripts/refresh_graphiql.py; do not edit by hand",
        "files": files,
    }
    (VENDOR / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
    return files


def main() -> int:
    files = refresh()
    for name in sorted(files):
        size = (VENDOR / name).stat().st_size
        print(f"{name:45} {size:>10,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
