"""GraphiQL in a real headless Chromium (Debian's ``chromium``) against the real gateway.

Driven by playwright's Python package with ``executable_path``: it needs no browser of
its own (none can be downloaded here), and its request routing sees every request the
page makes, so the test aborts and records any that is not to the gateway's origin and
asserts there was none. (selenium would need chromedriver too, and cannot intercept
requests without its own proxy.) Chromium's flags are the ones this machine needs
(no sandbox as root, no background networking to hosts it cannot reach) and its
profile is a new empty folder, so GraphiQL starts as on a first visit.

When chromium is missing the tests fail with one line saying so: ``make test`` and
``.ci/run`` install it (scripts/ensure_chromium.sh).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Page, Route, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from gateway.graphiql.page import DEFAULT_QUERY
from tests.gateway.served_gateway import ServedGateway

CHROMIUM: Final = Path("/usr/bin/chromium")
FLAGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
#: A page load and a query on a loaded two-core machine.
TIMEOUT_MS: Final = 30_000

QUERY_EDITOR: Final = ".graphiql-query-editor .CodeMirror"
RESPONSE: Final = ".graphiql-response .CodeMirror"
#: Where a failing wait leaves what the page showed.
SCREENSHOT: Final = Path(tempfile.gettempdir()) / "graphiql-browser-test.png"


@dataclass
class Browsing:
    """One page of a fresh browser, and what it tried that it should not have."""

    page: Page
    origin: str
    #: Requests to any other origin: aborted before they left, and listed here.
    elsewhere: list[str] = field(default_factory=list)
    #: Every request the page made (its own origin's included).
    requests: list[str] = field(default_factory=list)
    websockets: list[str] = field(default_factory=list)
    #: Console errors and uncaught exceptions of the page.
    problems: list[str] = field(default_factory=list)

    def route(self, route: Route) -> None:
        if _origin(route.request.url) == self.origin:
            route.continue_()
        else:
            self.elsewhere.append(route.request.url)
            route.abort()

    def editor_text(self, selector: str) -> str:
        """The text of a CodeMirror editor (CodeMirror 5 hangs itself on its element)."""
        text: str = self.page.eval_on_selector(selector, "e => e.CodeMirror.getValue()")
        return text

    def response(self, containing: str) -> Any:
        """The JSON of the response pane, once it contains ``containing``."""
        try:
            self.page.wait_for_function(
                "([selector, text]) => {"
                "  const e = document.querySelector(selector);"
                "  return e !== null && e.CodeMirror.getValue().includes(text); }",
                arg=[RESPONSE, containing],
                timeout=TIMEOUT_MS,
            )
        except PlaywrightTimeout:
            shown = self.editor_text(RESPONSE) if self.page.query_selector(RESPONSE) else None
            self.page.screenshot(path=SCREENSHOT)
            raise AssertionError(
                f"no {containing!r} in the response pane: {shown!r} (screenshot {SCREENSHOT})"
            ) from None
        return json.loads(self.editor_text(RESPONSE))

    def assert_stayed_on_the_gateway(self) -> None:
        assert self.elsewhere == []
        assert self.websockets == []
        assert self.requests
        assert {_origin(url) for url in self.requests} == {self.origin}
        assert self.problems == []


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@contextlib.contextmanager
def graphiql(served: ServedGateway) -> Iterator[Browsing]:
    """GraphiQL (``GET /graphql``) open in a new headless Chromium with an empty profile,
    its network limited to the gateway; the editor is ready when this yields."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (scripts/ensure_chromium.sh, "
            "which make test and .ci/run run)",
            pytrace=False,
        )
    with sync_playwright() as driver, tempfile.TemporaryDirectory() as profile:
        browser = driver.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=list(FLAGS)
        )
        try:
            page = browser.new_page()
            seen = Browsing(page, served.origin)
            browser.route("**/*", seen.route)
            browser.on("request", lambda request: seen.requests.append(request.url))
            page.on("websocket", lambda socket: seen.websockets.append(socket.url))
            page.on("pageerror", lambda error: seen.problems.append(str(error)))
            page.on(
                "console",
                lambda message: (
                    seen.problems.append(message.text) if message.type == "error" else None
                ),
            )
            page.goto(f"{served.origin}/graphql", timeout=TIMEOUT_MS)
            page.wait_for_selector(QUERY_EDITOR, timeout=TIMEOUT_MS)
            yield seen
        finally:
            browser.close()


def test_graphiql_opens_with_its_docs_and_the_example_and_runs_it_from_the_gateway_alone(
    served_gateway: ServedGateway,
) -> None:
    with graphiql(served_gateway) as seen:
        page = seen.page
        assert seen.editor_text(QUERY_EDITOR) == DEFAULT_QUERY
        # The docs pane is open, on screen, and filled from the schema (introspection ran).
        docs = page.locator(".graphiql-doc-explorer")
        docs.get_by_text("query: Query").wait_for(timeout=TIMEOUT_MS)
        box = docs.bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["width"] > 200
        page.get_by_role("button", name="Hide Documentation Explorer").wait_for()
        # The example runs as it stands.
        page.locator(".graphiql-execute-button").click()
        answer = seen.response('"catalog"')
        assert "errors" not in answer
        assert answer["data"]["catalog"]["attributes"][0] == {
            "name": "iid",
            "type": "string",
            "custom": False,
        }
        seen.assert_stayed_on_the_gateway()


def test_a_query_typed_into_graphiql_runs_and_its_answer_shows(
    served_gateway: ServedGateway,
) -> None:
    written = httpx.post(
        f"{served_gateway.origin}/graphql",
        json={
            "query": 'mutation { upsertUsers(input: {users: [{key: {email: "grace@example.com"}, '
            'attributes: {name: "Grace", city: "Arlington"}}]}) { successCount } }'
        },
        timeout=30,
    )
    assert written.json() == {
        "data": {"upsertUsers": {"successCount": 1}},
        "extensions": {"cost": {"ucdCalls": {"planned": 1, "actual": 1}}},
    }
    typed = '{ user(key: {email: "grace@example.com"}) { name city } }'
    with graphiql(served_gateway) as seen:
        page = seen.page
        page.locator(QUERY_EDITOR).click()
        page.keyboard.press("Control+A")
        page.keyboard.press("Delete")
        # As one input event: key by key, CodeMirror would close each brace it opens.
        page.keyboard.insert_text(typed)
        assert seen.editor_text(QUERY_EDITOR) == typed
        # GraphiQL reads the operation's name from the editor a moment after an edit;
        # run once the tab is named after the new (anonymous) operation, as a person would.
        page.locator(".graphiql-tab-active").get_by_text("<untitled>").wait_for()
        page.keyboard.press("Control+Enter")
        answer = seen.response("Grace")
        assert answer["data"] == {"user": {"name": "Grace", "city": "Arlington"}}
        seen.assert_stayed_on_the_gateway()
