"""Layered fixtures for the GraphQL data path.

UCD transport: ``FakeUcd`` (a small in-memory UCD behind ``httpx.MockTransport``) by
  default, or the real local UCD app in-process (``local_transport``; a test module
  switches by overriding ``ucd_transport``)
  -> httpx.AsyncClient with an event hook recording every call
  -> UcdClient -> UpsertCoalescer -> ``Gateway.execute`` (schema.execute + build_context)

Push-down and call counts are asserted on ``ucd_calls``: the method, path and JSON body
of every request the gateway sent to the UCD, in order.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager
from strawberry.types import ExecutionResult

from gateway.api.context import build_context
from gateway.api.schema import build_schema
from gateway.coalesce import ProfileReads, UpsertCoalescer
from gateway.exports import ExportJobs
from gateway.local_ucd.app import create_local_ucd_app
from gateway.local_ucd.config import LocalUcdConfig
from gateway.local_ucd.testing import LocalUcdTransport
from gateway.settings import Settings
from gateway.ucd.client import UcdClient

UCD_BASE = "http://local-ucd.test"
GATEWAY_BASE = "http://gateway.test"


@dataclass(frozen=True)
class UcdCall:
    method: str
    path: str
    body: Any


@dataclass
class CallLog:
    """Every request sent to the UCD, in order."""

    calls: list[UcdCall] = field(default_factory=list)

    async def record(self, request: httpx.Request) -> None:
        body = orjson.loads(request.content) if request.content else None
        self.calls.append(UcdCall(request.method, request.url.path, body))

    def to(self, path: str) -> list[UcdCall]:
        return [c for c in self.calls if c.path == path]

    @property
    def profiles(self) -> list[UcdCall]:
        return self.to("/api/user/v1/profile")

    @property
    def upserts(self) -> list[UcdCall]:
        return self.to("/api/user/v1/upsert")

    def clear(self) -> None:
        self.calls.clear()


@pytest.fixture
def ucd_config(tmp_path: Path) -> LocalUcdConfig:
    return LocalUcdConfig(data_dir=tmp_path / "ucd", public_base_url=UCD_BASE)


@dataclass
class HookLog:
    """Webhooks and error callbacks the local UCD sent (answered 200)."""

    posts: list[tuple[str, Any]] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.posts.append((str(request.url), orjson.loads(request.content)))
        return httpx.Response(200, json={})


@pytest.fixture
def hook_log() -> HookLog:
    return HookLog()


@pytest.fixture
async def local_ucd(ucd_config: LocalUcdConfig, hook_log: HookLog) -> AsyncIterator[Any]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(hook_log)) as hooks:
        app = create_local_ucd_app(ucd_config, hook_client=hooks)
        async with LifespanManager(app) as manager:
            yield manager.app


@pytest.fixture
def ucd_calls() -> CallLog:
    return CallLog()


@pytest.fixture
def local_transport(local_ucd: Any) -> httpx.AsyncBaseTransport:
    return LocalUcdTransport(app=local_ucd)


@pytest.fixture
def fake_ucd() -> FakeUcd:
    return FakeUcd()


@pytest.fixture
def ucd_transport(fake_ucd: FakeUcd) -> httpx.AsyncBaseTransport:
    return httpx.MockTransport(fake_ucd)


@pytest.fixture
async def ucd_http(
    ucd_transport: httpx.AsyncBaseTransport, ucd_calls: CallLog
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=ucd_transport,
        base_url=UCD_BASE,
        event_hooks={"request": [ucd_calls.record]},
    ) as http:
        yield http


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None, upsert_window_ms=5.0)  # type: ignore[call-arg]


@pytest.fixture
def ucd(ucd_http: httpx.AsyncClient, settings: Settings) -> UcdClient:
    return UcdClient(ucd_http, partner="local", token="local-dev-token", max_concurrency=8)


@dataclass
class Gateway:
    """The schema with a fresh per-request context for every ``execute``."""

    ucd: UcdClient
    upserts: UpsertCoalescer
    exports: ExportJobs
    settings: Settings
    reads: ProfileReads
    schema: Any = field(default_factory=build_schema)

    async def execute(self, query: str, variables: dict[str, Any] | None = None) -> ExecutionResult:
        context = await build_context(
            ucd=self.ucd,
            exports=self.exports,
            upserts=self.upserts,
            settings=self.settings,
            reads=self.reads,
        )
        return await self.schema.execute(query, variable_values=variables, context_value=context)

    async def ok(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Execute and insist on no errors; the data."""
        result = await self.execute(query, variables)
        assert result.errors is None, [e.formatted for e in result.errors or ()]
        assert result.data is not None
        return result.data


@pytest.fixture
async def gateway(ucd: UcdClient, settings: Settings) -> AsyncIterator[Gateway]:
    upserts = UpsertCoalescer(ucd, window_ms=settings.upsert_window_ms)
    yield Gateway(
        ucd=ucd,
        upserts=upserts,
        exports=ExportJobs(GATEWAY_BASE),
        settings=settings,
        reads=ProfileReads(ucd),
    )
    await upserts.aclose()


UPSERT = """
mutation Upsert($input: UpsertUsersInput!) {
  upsertUsers(input: $input) { successCount failureCount results { index ok errors { path message
      } } }
}
"""


async def seed(gateway: Gateway, users: list[dict[str, Any]]) -> None:
    """Write users through the gateway itself (the UCD is read-after-write consistent)."""
    data = await gateway.ok(UPSERT, {"input": {"users": users}})
    assert data["upsertUsers"]["failureCount"] == 0, data


# --- a small in-memory UCD, for where the local UCD is not the point ------------------------

_EMAIL = re.compile(r".+@.+\..+")
_PHONE = re.compile(r"\+[1-9][0-9]{6,14}")
_EVENT = re.compile(r"[a-z0-9][a-z0-9._-]*")
_READ = {"gdpr_optin": "gdpr", "locale": "lo", "list_id": "static_segment_id"}
_NOT_FOUND = {"error": "no such user for these identifiers: no data"}


def _parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _render_ts(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FakeProfile:
    iid: str
    ids: dict[str, Any] = field(default_factory=dict)  # email, phone_number, uuid, c_<name>
    attrs: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FakeUcd:
    """Enough of the UCD REST contract for the gateway's data path, as an httpx handler.

    ``delay`` holds every answer that long (to make calls overlap); ``status`` forces an
    answer for a path (``{"/api/user/v1/upsert": 500}``).
    """

    profiles: dict[str, FakeProfile] = field(default_factory=dict)
    delay: float = 0.0
    status: dict[str, int] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    in_flight: int = 0
    max_in_flight: int = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: httpx.Request) -> httpx.Response:
        if self.delay:
            await asyncio.sleep(self.delay)
        path = request.url.path
        if path in self.status:
            return httpx.Response(self.status[path], json={"success": False, "message": "forced"})
        body = orjson.loads(request.content) if request.content else {}
        handler = {
            ("POST", "/api/user/v1/upsert"): self._upsert,
            ("POST", "/api/user/v1/profile"): self._profile,
            ("POST", "/api/user/v1/attribute/delete"): self._attribute_delete,
            ("PATCH", "/api/user/v1/identity"): self._identity_update,
            ("DELETE", "/api/user/v1/identity"): self._identity_delete,
            ("POST", "/api/contact/v1/anonymize"): self._anonymize,
            ("POST", "/api/user/v1/anonymize"): self._anonymize,
            ("POST", "/api/user/v1/delete"): self._delete,
            ("POST", "/api/raw/v1/export"): self._export,
        }.get((request.method, path))
        if handler is None:
            return httpx.Response(404, json={"error": "not found"})
        status, answer = handler(body)
        return httpx.Response(status, json=answer)

    # lookups

    def _find(self, body: dict[str, Any]) -> FakeProfile | None:
        if "insider_id" in body:
            return self.profiles.get(body["insider_id"])
        ids = body.get("identifiers") or {}
        wanted = [(k, ids[k]) for k in ("uuid", "email", "phone_number") if k in ids]
        wanted += sorted((f"c_{n}", v) for n, v in (ids.get("custom") or {}).items())
        for key, value in wanted:
            value = value.strip().lower() if key == "email" else value
            for profile in self.profiles.values():
                if profile.ids.get(key) == value:
                    return profile
        return None

    @staticmethod
    def _id_items(ids: dict[str, Any]) -> list[tuple[str, Any]]:
        items = [(k, ids[k]) for k in ("uuid", "email", "phone_number") if k in ids]
        items += [(f"c_{n}", v) for n, v in (ids.get("custom") or {}).items()]
        return [(k, v.strip().lower() if k == "email" else v) for k, v in items]

    @staticmethod
    def _envelope(ok: int, errors: dict[str, list[str]], failed: int) -> dict[str, Any]:
        fail = {"count": failed, "errors": errors} if failed else {}
        return {"data": {"successful": {"count": ok} if ok else {}, "fail": fail}}

    # endpoints

    def _upsert(self, body: dict[str, Any]) -> tuple[int, Any]:
        users = body.get("users")
        if not isinstance(users, list):
            return 400, {"error": "users must be defined: bad request"}
        if len(users) > 1000:
            return 400, {"error": "users must not contain more than 1000 items: bad request"}
        errors: dict[str, list[str]] = {}
        ok = failed = 0
        for n, user in enumerate(users):
            mine = self._check_user(n, user)
            if mine:
                errors.update(mine)
                failed += 1
                continue
            ok += 1
            self._apply(user, append=user.get("append", body.get("append", True)))
        return 200, self._envelope(ok, errors, failed)

    def _check_user(self, n: int, user: dict[str, Any]) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        ids = user.get("identifiers") or {}
        if "email" in ids and not _EMAIL.fullmatch(ids["email"].strip().lower()):
            errors[f"users.{n}.identifiers.*.regexp(^.+@.+\\..+$)"] = [
                f"not a valid email address: {ids['email']}"
            ]
        if "phone_number" in ids and not _PHONE.fullmatch(ids["phone_number"]):
            errors[f"users.{n}.identifiers.*.regexp(^\\+[1-9]\\d{{6,14}}$)"] = [
                f"user has an invalid phone number: {ids['phone_number']}"
            ]
        if not ids and "insider_id" not in user:
            text = ["either insider_id or idenifiers must be specified"]
            errors[f"users.{n}.identifiers.required"] = text
            errors[f"users.{n}.insider_id.required"] = text
        if "insider_id" in user and user["insider_id"] not in self.profiles and not errors:
            errors[f"users.{n}.insider_id.exists"] = ["no such user for this insider_id"]
        for m, event in enumerate(user.get("events") or ()):
            name = event.get("event_name", "")
            if not _EVENT.fullmatch(name):
                key = f"users.{n}.events.{m}.event_name.*.regexp(^[a-z0-9][a-zA-Z0-9._-]*$)"
                errors[key] = [f"invalid event name: {name}"]
            params = event.get("event_params") or {}
            if name in ("purchase", "cart_page_view"):
                missing = [
                    f"{p} parameter is required on {name} event"
                    for p in ("event_group_id", "currency", "unit_sale_price")
                    if params.get(p) is None
                ]
                if missing:
                    errors[f"users.{n}.events.{m}.event_params.*.required"] = missing
        return errors

    def _apply(self, user: dict[str, Any], *, append: bool) -> None:
        profile = self._find(user)
        if profile is None:
            iid = f"iid-{next(self._ids)}"
            profile = self.profiles[iid] = FakeProfile(iid)
        for key, value in self._id_items(user.get("identifiers") or {}):
            if key not in profile.ids and value not in ("", "anonymous"):
                profile.ids[key] = value
        attributes = dict(user.get("attributes") or {})
        custom = attributes.pop("custom", {}) or {}
        for name, value in [*attributes.items(), *((f"c_{k}", v) for k, v in custom.items())]:
            name = _READ.get(name, name)
            if value is None:
                continue
            if name in ("email", "phone_number", "uuid"):
                profile.ids.setdefault(name, value)
                continue
            old = profile.attrs.get(name)
            if isinstance(value, list) and append and isinstance(old, list):
                value = old + [v for v in value if v not in old]
            profile.attrs[name] = value
        for event in user.get("events") or ():
            params = dict(event.get("event_params") or {})
            custom_params = params.pop("custom", {}) or {}
            params.update({f"c_{k}": v for k, v in custom_params.items()})
            profile.events.append(
                {
                    "name": event["event_name"],
                    "at": _parse_ts(event["timestamp"]),
                    "source": params.get("source", "api"),
                    "params": params,
                }
            )

    def _profile(self, body: dict[str, Any]) -> tuple[int, Any]:
        profile = self._find(body)
        if profile is None:
            return 404, _NOT_FOUND
        everything = {**profile.ids, **profile.attrs}
        wanted = body.get("attributes")
        attrs: dict[str, Any] = {"iid": profile.iid}
        if wanted in ("*", ["*"]):
            attrs.update(everything)
        elif wanted:
            for name in wanted:
                name = _READ.get(name, name)
                if name in everything:
                    attrs[name] = everything[name]
        events: dict[str, list[dict[str, Any]]] = {}
        spec = body.get("events")
        if spec:
            for item in spec["wanted"]:
                name = item["event_name"]
                if name in events:
                    continue
                found = [
                    e
                    for e in profile.events
                    if e["name"] == name
                    and spec["start_date"] <= math.floor(e["at"].timestamp()) <= spec["end_date"]
                ]
                found.sort(key=lambda e: e["at"], reverse=True)
                events[name] = [
                    {
                        "created_date": _render_ts(e["at"]),
                        "source": e["source"],
                        **{p: e["params"][p] for p in item["params"] if p in e["params"]},
                    }
                    for e in found
                ]
        return 200, {"attributes": attrs, "events": events}

    def _attribute_delete(self, body: dict[str, Any]) -> tuple[int, Any]:
        errors: dict[str, list[str]] = {}
        ok = failed = 0
        for n, user in enumerate(body["users"]):
            profile = self._find(user)
            if profile is None:
                errors[f"users.{n}.identifiers.exists"] = ["no such user for these identifiers"]
                failed += 1
                continue
            ok += 1
            custom = user.get("custom") or {}
            for name in user.get("whole") or ():
                profile.attrs.pop(_READ.get(name, name), None)
            for name in custom.get("whole") or ():
                profile.attrs.pop(f"c_{name}", None)
            partial = [(_READ.get(k, k), v) for k, v in (user.get("partial") or {}).items()]
            partial += [(f"c_{k}", v) for k, v in (custom.get("partial") or {}).items()]
            for name, values in partial:
                kept = [v for v in profile.attrs.get(name, []) if v not in values]
                if kept:
                    profile.attrs[name] = kept
                else:
                    profile.attrs.pop(name, None)
        return 200, self._envelope(ok, errors, failed)

    def _identity_update(self, body: dict[str, Any]) -> tuple[int, Any]:
        ((old_key, _old_value),) = self._id_items(body["old_identifier"])
        ((new_key, new_value),) = self._id_items(body["new_identifier"])
        if old_key != new_key:
            return 400, {"error": "old and new identifiers must be of the same type: bad request"}
        profile = self._find({"identifiers": body["old_identifier"]})
        if profile is None:
            return 404, _NOT_FOUND
        if self._find({"identifiers": body["new_identifier"]}) is not None:
            return 400, {"error": "new identifier already has a user assigned to it: bad request"}
        profile.ids[new_key] = new_value
        return 200, {}

    def _identity_delete(self, body: dict[str, Any]) -> tuple[int, Any]:
        ((key, _),) = self._id_items(body["identifiers"])
        profile = self._find(body)
        if profile is None:
            return 404, _NOT_FOUND
        if len(profile.ids) == 1:
            return 400, {
                "error": "you cannot delete the sole identifier specified for a user: bad request"
            }
        del profile.ids[key]
        return 200, {}

    def _anonymize(self, body: dict[str, Any]) -> tuple[int, Any]:
        profile = self._find(body)
        if profile is None:
            return 404, _NOT_FOUND
        for key in ("email", "phone_number"):
            profile.ids.pop(key, None)
        for key in ("name", "surname", "gender", "birthday", "age", "city", "country"):
            profile.attrs.pop(key, None)
        return 200, {}

    def _delete(self, body: dict[str, Any]) -> tuple[int, Any]:
        profile = self._find(body)
        if profile is None:
            return 404, _NOT_FOUND
        del self.profiles[profile.iid]
        return 200, {}

    def _export(self, body: dict[str, Any]) -> tuple[int, Any]:
        if body.get("segment", {}).get("segment_id") != 1:
            return 400, {"error": "segment not found: bad request"}
        return 200, {}
