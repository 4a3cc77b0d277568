"""GraphiQL, served by the gateway from files inside the package: no CDN, no outside URL.

``GET /graphql`` from a browser answers the page (``page.py``); the page loads React,
ReactDOM and GraphiQL from ``/graphiql/static/`` (``assets.py``), vendored at pinned
versions by ``scripts/refresh_graphiql.py`` (``static/vendor/``, with their licences and
a manifest of hashes), plus two small files of ours: ``boot.js``, which starts GraphiQL
with the documentation explorer open and an example query, and ``page.css``. The page's
Content-Security-Policy allows its own origin only, so a browser refuses any other
address even if a vendored file asked for one. ``UCD_GATEWAY_GRAPHIQL=false`` removes
the page and the asset route (404).
"""
