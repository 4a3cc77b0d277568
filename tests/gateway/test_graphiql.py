"""The GraphiQL page and its assets over HTTP: same-origin only, shipped in the package,
cached by version, off with UCD_GATEWAY_GRAPHIQL. (A real browser: test_graphiql_browser.py.)"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import json
import tomllib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from gateway.graphiql.assets import STATIC_ROOT
from gateway.graphiql.page import CONTENT_SECURITY_POLICY, DEFAULT_QUERY, render_page
from tests.gateway.conftest import app_gateway

ROOT = Path(__file__).resolve().parents[2]
VENDOR = STATIC_ROOT / "vendor"
BROWSER = {"Accept": "text/html,application/xhtml+xml"}


class References(HTMLParser):
    """Every attribute value of the page that a browser would treat as a URL."""

    URL_ATTRIBUTES = frozenset({"src", "href", "action", "data", "poster", "srcset", "formaction"})

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []
        self.attributes: dict[str, str] = {}
        self.inline_scripts = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is not None:
                self.attributes[f"{tag}.{name}"] = value
                if name in self.URL_ATTRIBUTES:
                    self.urls.append((tag, value))
        self._in_script = tag == "script"

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False


def references(page: str) -> References:
    parser = References()
    parser.feed(page)
    return parser


async def test_the_page_refers_only_to_files_on_the_gateway_and_each_is_served() -> None:
    async with app_gateway() as (client, _):
        page = await client.get("/graphql", headers=BROWSER)
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        found = references(page.text)
        # Same origin: absolute paths, no scheme, no host ("//host/x" is another origin).
        assert found.urls
        for _tag, url in found.urls:
            assert url.startswith("/graphiql/static/"), url
            assert not url.startswith("//")
        assert "://" not in page.text
        assert found.inline_scripts == 0  # so the CSP can forbid inline script
        assert [tag for tag, _ in found.urls] == [
            "link",
            "link",
            "script",
            "script",
            "script",
            "script",
        ]
        for _tag, url in found.urls:
            asset = await client.get(url)
            assert asset.status_code == 200, url
            assert asset.headers["content-type"].startswith(("text/css", "text/javascript")), url
        assert found.attributes["div.data-endpoint"] == "/graphql"
        assert found.attributes["div.data-default-query"] == DEFAULT_QUERY


async def test_the_pages_policy_lets_the_browser_load_and_connect_to_its_own_origin_only() -> None:
    async with app_gateway() as (client, _):
        page = await client.get("/graphql", headers=BROWSER)
    policy = page.headers["content-security-policy"]
    assert policy == CONTENT_SECURITY_POLICY
    directives = dict(d.split(" ", 1) for d in policy.split("; "))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    # No host in any directive: only 'self', 'none', 'unsafe-inline' and data:.
    sources = {s for value in directives.values() for s in value.split()}
    assert sources <= {"'self'", "'none'", "'unsafe-inline'", "data:"}


def test_under_a_root_path_every_reference_keeps_the_prefix() -> None:
    found = references(render_page("/gw"))
    assert all(url.startswith("/gw/graphiql/static/") for _, url in found.urls)
    assert found.attributes["div.data-endpoint"] == "/gw/graphql"


@pytest.mark.parametrize("graphiql", [pytest.param(False, id="off")])
async def test_graphiql_off_serves_neither_the_page_nor_its_files(graphiql: bool) -> None:
    async with app_gateway(graphiql=graphiql) as (client, _):
        page = await client.get("/graphql", headers=BROWSER)
        asset = await client.get("/graphiql/static/boot.js")
    assert page.status_code == 404
    assert asset.status_code == 404


# --- the files: what they are, how they are served -------------------------------------------


def test_vendored_files_are_the_manifests_with_a_licence_per_package() -> None:
    manifest = json.loads((VENDOR / "manifest.json").read_text("utf-8"))["files"]
    on_disk = {p.name for p in VENDOR.iterdir()} - {"manifest.json"}
    assert on_disk == set(manifest)
    for name, entry in manifest.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == entry["sha256"], name
    packages = {(e["package"], e["version"]) for e in manifest.values()}
    assert packages == {("react", "18.3.1"), ("react-dom", "18.3.1"), ("graphiql", "4.1.2")}
    for package, _ in packages:
        licence = (VENDOR / f"LICENSE.{package}.txt").read_text("utf-8")
        assert "MIT License" in licence, package
        assert manifest[f"LICENSE.{package}.txt"]["from"] == "LICENSE"


def test_the_package_data_globs_carry_every_static_file() -> None:
    """A wheel (`pip install .`, the Docker image) holds what these globs match; a file
    they miss would be a white page in production only."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    globs = pyproject["tool"]["setuptools"]["package-data"]["gateway.graphiql"]
    package = STATIC_ROOT.parent
    files = [p.relative_to(package).as_posix() for p in STATIC_ROOT.rglob("*") if p.is_file()]
    assert files
    missed = [f for f in files if not any(fnmatch.fnmatchcase(f, g) for g in globs)]
    assert missed == []


async def test_versioned_files_are_immutable_and_ours_revalidate_by_etag() -> None:
    async with app_gateway() as (client, _):
        vendored = await client.get("/graphiql/static/vendor/react-18.3.1.production.min.js")
        boot = await client.get("/graphiql/static/boot.js")
        again = await client.get(
            "/graphiql/static/boot.js", headers={"If-None-Match": boot.headers["etag"]}
        )
        head = await client.head("/graphiql/static/page.css")
    assert vendored.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert vendored.content == (VENDOR / "react-18.3.1.production.min.js").read_bytes()
    assert boot.headers["cache-control"] == "no-cache"
    assert boot.headers["content-type"] == "text/javascript; charset=utf-8"
    assert (again.status_code, again.content) == (304, b"")
    assert again.headers["etag"] == boot.headers["etag"]
    assert head.status_code == 200
    assert head.headers["content-type"] == "text/css; charset=utf-8"


async def test_files_are_gzipped_for_browsers_that_accept_it() -> None:
    name = "vendor/graphiql-4.1.2.min.js"
    original = (STATIC_ROOT / name).read_bytes()
    async with app_gateway() as (client, _):
        headers = {"Accept-Encoding": "gzip, deflate, br"}
        async with client.stream("GET", f"/graphiql/static/{name}", headers=headers) as zipped:
            wire = b"".join([chunk async for chunk in zipped.aiter_raw()])
        plain = await client.get(
            f"/graphiql/static/{name}", headers={"Accept-Encoding": "identity"}
        )
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["vary"] == "Accept-Encoding"
    assert len(wire) < len(original) // 2
    assert gzip.decompress(wire) == original
    assert "content-encoding" not in plain.headers
    assert plain.content == original


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("vendor/manifest.json", id="the-manifest"),
        pytest.param("../page.py", id="outside"),
        pytest.param("vendor/graphiql-0.0.0.min.js", id="unknown"),
    ],
)
async def test_only_listed_files_are_served(path: str) -> None:
    async with app_gateway() as (client, _):
        response = await client.get(f"/graphiql/static/{path}")
    assert response.status_code == 404


def test_the_page_assets_come_from_a_refresh_script_that_pins_them() -> None:
    """The script and the manifest agree on every file (the script writes the manifest)."""
    script = (ROOT / "scripts" / "refresh_graphiql.py").read_text("utf-8")
    manifest = json.loads((VENDOR / "manifest.json").read_text("utf-8"))["files"]
    for name, entry in manifest.items():
        assert f'"{name}"' in script, name
        assert f'"{entry["version"]}"' in script, name
