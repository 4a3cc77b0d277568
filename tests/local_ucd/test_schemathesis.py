"""Property-based run of the whole local UCD against its own /openapi.json (§5.3).

Schemathesis generates requests for every documented operation (valid ones and, in the
negative mode, invalid ones) and checks each answer: never a 5xx, only documented status
codes, content types and headers, and a body that fits the documented schema. The run is
bounded (a few examples per operation, a fixed seed) so the file stays well under 60 s.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from gateway.local_ucd.app import create_local_ucd_app
from gateway.local_ucd.config import LocalUcdConfig
from tests.local_ucd.conftest import AUTH, PARTNER, TOKEN

pytestmark = pytest.mark.slow

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    unsupported_method,
]


def _hook_ok(request: httpx.Request) -> httpx.Response:
    # Export webhooks and error callbacks go here instead of to generated URLs on the network.
    return httpx.Response(200)


# The schema is loaded at import time (schemathesis.pytest.from_fixture does not work with
# pytest 9: it writes Node._nodeid), so the app and its data folder are module-level too.
_DATA_DIR = Path(tempfile.mkdtemp(prefix="ucd-schemathesis-"))
_APP = create_local_ucd_app(
    LocalUcdConfig(
        data_dir=_DATA_DIR / "ucd",
        partners={PARTNER: (TOKEN,)},
        public_base_url="http://local-ucd.test",
    ),
    hook_client=httpx.AsyncClient(transport=httpx.MockTransport(_hook_ok)),
)
schema = schemathesis.openapi.from_asgi(
    "/openapi.json",
    _APP,
    config=schemathesis.Config.from_dict(
        {
            "seed": 20261128,
            "generation": {"max-examples": 8, "mode": "all"},
            "phases": {"stateful": {"enabled": False}},
        }
    ),
)


@pytest.fixture(scope="module", autouse=True)
def _end_the_app() -> Iterator[None]:
    yield
    # Schemathesis keeps the app's lifespan running in its own thread; end it with the module.
    asgi.shutdown_lifespans()
    shutil.rmtree(_DATA_DIR, ignore_errors=True)


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_local_ucd_conforms_to_its_openapi_document(case: Any) -> None:
    case.call_and_validate(headers=AUTH, checks=CHECKS)
