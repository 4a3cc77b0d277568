"""The GraphiQL page: HTML that names only the gateway's own files, and its headers.

Every URL in the page is a path on the gateway (after the app's root path, so a gateway
mounted under a prefix still finds its files), and the Content-Security-Policy tells
the browser to load and connect to nothing else. The example query is the catalogue:
it runs on any partner, needs no user key, and shows the names ``attribute(name:)``,
``attributes(names:)`` and ``events(names:)`` accept.
"""

from __future__ import annotations

import functools
import html
from typing import Final

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.graphiql.assets import STATIC_PATH, asset_response, vendored

__all__ = ["CONTENT_SECURITY_POLICY", "DEFAULT_QUERY", "graphiql_page", "graphiql_routes"]

DEFAULT_QUERY: Final = """\
# The UCD gateway. Docs: the explorer on the left.
# Ctrl-Enter (or ▶) runs; Ctrl-Space completes.
#
# The partner's catalogue from the UCD: the
# attributes users may have, and the events
# (with their parameters) User.events can read.
query Catalog {
  catalog {
    attributes {
      name
      type
      custom
    }
    events {
      name
      params {
        name
        type
        custom
      }
    }
  }
}
"""

#: Own origin only. Inline styles: React and CodeMirror set element styles; data: for
#: the fonts and icons GraphiQL's stylesheet carries inline.
CONTENT_SECURITY_POLICY: Final = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "font-src 'self' data:",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

_PAGE: Final = """\
<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>UCD gateway · GraphiQL</title>
{styles}
  </head>
  <body>
    <div id="graphiql" data-endpoint="{endpoint}" data-default-query="{query}">Loading…</div>
{scripts}
  </body>
</html>
"""


#: GraphiQL's browser build reads the React and ReactDOM globals as it loads.
_LOAD_ORDER: Final = ("react", "react-dom", "graphiql")


def _vendored(suffix: str) -> list[str]:
    """The vendored files of one kind (``.js``, ``.css``), in load order."""
    files = vendored()
    names = [name for name in files if name.endswith(suffix)]
    return sorted(names, key=lambda name: _LOAD_ORDER.index(files[name][0]))


@functools.lru_cache(maxsize=8)
def render_page(root_path: str) -> str:
    """The page's HTML for an app served under ``root_path`` ("" at the root)."""
    static = html.escape(root_path + STATIC_PATH)
    styles = [f"vendor/{name}" for name in _vendored(".css")] + ["page.css"]
    scripts = [f"vendor/{name}" for name in _vendored(".js")] + ["boot.js"]
    return _PAGE.format(
        styles="\n".join(f'    <link rel="stylesheet" href="{static}/{s}">' for s in styles),
        scripts="\n".join(f'    <script src="{static}/{s}"></script>' for s in scripts),
        endpoint=html.escape(root_path + "/graphql"),
        query=html.escape(DEFAULT_QUERY),
    )


def graphiql_page(request: Request) -> Response:
    """The page, for ``GET /graphql`` from a browser (the GraphQL view asks for it)."""
    return HTMLResponse(
        render_page(request.scope.get("root_path", "")),
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
        },
    )


def graphiql_routes(enabled: bool) -> list[BaseRoute]:
    """The asset route when GraphiQL is on (``UCD_GATEWAY_GRAPHIQL``); none when off."""
    if not enabled:
        return []
    return [Route(STATIC_PATH + "/{path:path}", asset_response, methods=["GET"])]
