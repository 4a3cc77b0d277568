"""A real OTLP/HTTP receiver for the tests: a small Starlette app on a free loopback port,
served by uvicorn in a thread. It takes ``POST /v1/traces`` in protobuf, as a collector
does, and decodes each body with opentelemetry-proto.
"""

from __future__ import annotations

import contextlib
import gzip
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import uvicorn
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.gateway.threaded_server import loopback_socket, serving_in_thread, url_of


@dataclass
class Received:
    """One decoded export: its resource's attributes and its spans."""

    resource: dict[str, str]
    spans: list[Span]


@dataclass
class OtlpReceiver:
    url: str
    exports: list[Received] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def spans(self) -> list[tuple[dict[str, str], Span]]:
        with self.lock:
            return [(e.resource, span) for e in self.exports for span in e.spans]


def strings(attributes: list[KeyValue]) -> dict[str, str]:
    return {a.key: a.value.string_value for a in attributes}


def _receiver_app(receiver: OtlpReceiver) -> Starlette:
    async def traces(request: Request) -> Response:
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest()
        export.ParseFromString(body)
        with receiver.lock:
            receiver.content_types.append(request.headers.get("content-type", ""))
            for resource_spans in export.resource_spans:
                resource = strings(list(resource_spans.resource.attributes))
                spans = [s for scope in resource_spans.scope_spans for s in scope.spans]
                receiver.exports.append(Received(resource, spans))
        return Response(
            ExportTraceServiceResponse().SerializeToString(),
            media_type="application/x-protobuf",
        )

    return Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])


@contextlib.contextmanager
def serve_otlp() -> Iterator[OtlpReceiver]:
    """A receiver on a free loopback port until the block ends."""
    sock = loopback_socket()
    receiver = OtlpReceiver(url_of(sock))
    config = uvicorn.Config(_receiver_app(receiver), lifespan="off", log_config=None)
    with serving_in_thread(config, sock, "the OTLP receiver"):
        yield receiver
