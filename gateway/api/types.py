"""Output types of the contract, built from the UCD's profile answers.

A ``User`` is made from one (possibly merged, possibly shared) E2 answer: typed fields
are plain attributes filled at construction, so completing them costs graphql-core no
resolver call (perf-notes: ~10 µs per output object already). ``attribute``,
``attributes``, ``events`` and ``identifiers`` are resolvers that *filter* the answer:
the answer may hold more than this selection asked for (other selections of the same
user, a covering in-flight call), never less.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Annotated, Any, Final

import strawberry
from strawberry.scalars import JSON

from gateway.api.described import described_field
from gateway.api.names import ATTRIBUTE_INPUT_WRITE_NAMES
from gateway.api.strawberry_internals import graphql_name, withhold_field
from gateway.auth.scopes import Scope
from gateway.errors import BadUserInput, Forbidden
from gateway.ucd.answers import EventRecord, ProfileAnswer, created_date, event_source
from gateway.ucd.names import (
    AGE,
    BIRTHDAY,
    CITY,
    COUNTRY,
    CURRENCY,
    CUSTOM_PREFIX,
    DEFAULT_ATTRIBUTES,
    EMAIL,
    EMAIL_OPTIN,
    EVENT_GROUP_ID,
    GDPR,
    GENDER,
    IID,
    LANGUAGE,
    LO,
    NAME,
    PHONE_NUMBER,
    PRODUCT_ID,
    PRODUCT_NAME,
    QUANTITY,
    SMS_OPTIN,
    STATIC_SEGMENT_ID,
    SURNAME,
    TAXONOMY,
    UNIT_PRICE,
    UNIT_SALE_PRICE,
    URL,
    UUID,
    WHATSAPP_OPTIN,
    canonical_read_name,
    custom_read_name,
)
from gateway.ucd.times import parse_instant

__all__ = [
    "DEFAULT_EVENT_DAYS",
    "Attribute",
    "DeleteAttributesPayload",
    "Event",
    "ExportFormat",
    "ExportJob",
    "ExportStatus",
    "FieldError",
    "Identifier",
    "IdentifierType",
    "ItemResult",
    "UpsertUsersPayload",
    "User",
    "check_last",
    "default_from",
    "event_window",
    "pii_forbidden",
]

#: ``events(from:)`` defaults to 30 days before ``to`` (contract).
DEFAULT_EVENT_DAYS = 30


@strawberry.enum
class IdentifierType(Enum):
    EMAIL = "EMAIL"
    PHONE_NUMBER = "PHONE_NUMBER"
    UUID = "UUID"
    CUSTOM = "CUSTOM"


@strawberry.type(description="One identifier of a user.")
class Identifier:
    type: IdentifierType
    name: str = strawberry.field(
        description="email, phone_number, uuid, or the custom identifier's name."
    )
    value: str


@strawberry.type(description="One attribute value of a user.")
class Attribute:
    name: str = strawberry.field(
        description="The UCD name, e.g. email_optin; a custom attribute's name has no c_ prefix."
    )
    custom: bool
    value: JSON | None = strawberry.field(
        description="String, number, boolean, date-time string, or a list of these."
    )


def _attribute(key: str, value: Any) -> Attribute:
    if key.startswith(CUSTOM_PREFIX):
        return Attribute(name=key.removeprefix(CUSTOM_PREFIX), custom=True, value=value)
    return Attribute(name=key, custom=False, value=value)


def _given(value: object) -> bool:
    return value is not None and value is not strawberry.UNSET


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _int(value: Any) -> int | None:
    # The UCD keeps numbers as sent (§2.4): 36 and 36.0 are both an age of 36.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value)


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _str_list(value: Any) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _int_list(value: Any) -> list[int] | None:
    if not isinstance(value, list):
        return None
    ints = [_int(v) for v in value]
    return None if any(i is None for i in ints) else [i for i in ints if i is not None]


@strawberry.type(description="One event of a user.")
class Event:
    name: str
    timestamp: datetime
    source: str | None = strawberry.field(
        description="Where the UCD recorded it (web, app, api...), when known."
    )
    product_id: str | None
    product_name: str | None = strawberry.field(description='The UCD\'s default parameter "name".')
    taxonomy: list[str] | None
    currency: str | None
    unit_price: float | None
    unit_sale_price: float | None
    quantity: int | None
    event_group_id: str | None
    url: str | None
    _params: strawberry.Private[Mapping[str, Any]]

    @described_field("Any parameter by its UCD name; custom parameters with custom: true.")
    def param(self, name: str, custom: bool = False) -> JSON | None:
        return self._params.get(custom_read_name(name) if custom else name)

    @classmethod
    def from_ucd(cls, name: str, timestamp: datetime, raw: EventRecord) -> Event:
        """A value of another type than §4.8.2's reads as null.

        Spelled out, one keyword per field: this runs once per event of every answer,
        and building a dict to unpack with ``**`` cost ~40% more (2.1 µs -> 2.9 µs).
        """
        get = raw.get
        return cls(
            name=name,
            timestamp=timestamp,
            source=_str(event_source(raw)),
            product_id=_str(get(PRODUCT_ID)),
            product_name=_str(get(PRODUCT_NAME)),
            taxonomy=_str_list(get(TAXONOMY)),
            currency=_str(get(CURRENCY)),
            unit_price=_float(get(UNIT_PRICE)),
            unit_sale_price=_float(get(UNIT_SALE_PRICE)),
            quantity=_int(get(QUANTITY)),
            event_group_id=_str(get(EVENT_GROUP_ID)),
            url=_str(get(URL)),
            _params=raw,
        )


#: The earliest instant a DateTime can hold; the default ``from`` of a ``to`` near it.
_EARLIEST: Final = datetime.min.replace(tzinfo=UTC)


def default_from(to: datetime) -> datetime:
    """30 days before ``to``, or the earliest instant when that is before year 1.

    >>> default_from(datetime(1, 1, 5, tzinfo=UTC)) == _EARLIEST
    True
    """
    try:
        return to - timedelta(days=DEFAULT_EVENT_DAYS)
    except OverflowError:
        # The caller's own ``to`` is fine; only our default would not fit the calendar.
        return _EARLIEST


def event_window(
    now: datetime, start: datetime | None, end: datetime | None
) -> tuple[datetime, datetime]:
    """The contract's defaults: to = now, from = 30 days before to. Refuses from > to."""
    to = end if end is not None else now
    since = start if start is not None else default_from(to)
    if since > to:
        raise BadUserInput("events: from must not be after to", path="events.from")
    return since, to


def check_last(last: int | None) -> None:
    """``last`` keeps the newest N events; a negative N means nothing."""
    if last is not None and last < 0:
        raise BadUserInput("events: last must not be negative", path="events.last")


#: User's typed fields as (python name, GraphQL name, read name): the ones whose read
#: name is withheld from a caller answer FORBIDDEN (gateway/auth/pii.py says which).
_TYPED_FIELDS: Final = tuple(
    (field, graphql_name(field), DEFAULT_ATTRIBUTES[write][0])
    for field, write in ATTRIBUTE_INPUT_WRITE_NAMES.items()
)


def pii_forbidden(what: str) -> Forbidden:
    """The error of a PII field (or argument) the caller may not read."""
    return Forbidden(f"{what} is personal data: it needs the pii:read scope", scope=Scope.PII_READ)


@strawberry.type(description="A user profile in the Unified Customer Database.")
class User:
    insider_id: strawberry.ID | None
    email: str | None
    phone_number: str | None
    uuid: str | None
    name: str | None
    surname: str | None
    birthday: datetime | None
    gender: str | None
    age: int | None
    language: str | None
    country: str | None
    city: str | None
    locale: str | None
    email_optin: bool | None
    sms_optin: bool | None
    whatsapp_optin: bool | None
    gdpr_optin: bool | None
    static_segment_ids: list[int] | None
    _profile: strawberry.Private[ProfileAnswer]
    _custom_identifiers: strawberry.Private[tuple[str, ...]]
    _now: strawberry.Private[datetime]
    _withheld: strawberry.Private[frozenset[str]]

    @classmethod
    def from_ucd(
        cls,
        profile: ProfileAnswer,
        *,
        custom_identifiers: Iterable[str],
        now: datetime,
        withheld: frozenset[str] = frozenset(),
    ) -> User:
        """``custom_identifiers``: the custom identifier names the request's key used.
        ``withheld``: read names of the PII the caller may not see; selected, each is
        null with FORBIDDEN at its path (the profile answer may hold them all the same:
        it can be another request's, shared while in flight).

        One keyword per field, as in ``Event.from_ucd`` (no dict unpacked with ``**``). A
        value of another type than §4.7.1's reads as null; the contract types the one
        number attribute, age, as Int, and ``_int`` reads 36.0 as 36 (§2.4).
        """
        get = profile.attributes.get
        iid = profile.insider_id
        user = cls(
            insider_id=strawberry.ID(iid) if iid is not None else None,
            email=_str(get(EMAIL)),
            phone_number=_str(get(PHONE_NUMBER)),
            uuid=_str(get(UUID)),
            name=_str(get(NAME)),
            surname=_str(get(SURNAME)),
            birthday=parse_instant(get(BIRTHDAY)),
            gender=_str(get(GENDER)),
            age=_int(get(AGE)),
            language=_str(get(LANGUAGE)),
            country=_str(get(COUNTRY)),
            city=_str(get(CITY)),
            locale=_str(get(LO)),
            email_optin=_bool(get(EMAIL_OPTIN)),
            sms_optin=_bool(get(SMS_OPTIN)),
            whatsapp_optin=_bool(get(WHATSAPP_OPTIN)),
            gdpr_optin=_bool(get(GDPR)),
            static_segment_ids=_int_list(get(STATIC_SEGMENT_ID)),
            _profile=profile,
            _custom_identifiers=tuple(custom_identifiers),
            _now=now,
            _withheld=withheld,
        )
        if withheld:
            for python_name, field_name, read_name in _TYPED_FIELDS:
                if read_name in withheld:
                    withhold_field(user, python_name, pii_forbidden(field_name))
        return user

    @strawberry.field
    def identifiers(self) -> list[Identifier]:
        """Email, phone number and UUID from the profile; custom identifiers only those
        the request's key named.

        Why not all custom identifiers: the profile answer shows custom identifiers and
        custom attributes alike as ``c_<name>`` (§3.2.3), and the metadata endpoint
        types custom identifiers as plain ``string`` (§3.9), so the gateway cannot tell
        them apart. The names the caller used in its key are known to be identifiers.

        Without pii:read the field is FORBIDDEN: the UCD tells which identifiers a user
        has only by answering their values, and those are never asked for such a caller.
        """
        if self._withheld:
            raise pii_forbidden("identifiers")
        attributes = self._profile.attributes
        found: list[Identifier] = []
        for kind, key in (
            (IdentifierType.EMAIL, EMAIL),
            (IdentifierType.PHONE_NUMBER, PHONE_NUMBER),
            (IdentifierType.UUID, UUID),
        ):
            value = attributes.get(key)
            if isinstance(value, str):
                found.append(Identifier(type=kind, name=key, value=value))
        for name in self._custom_identifiers:
            value = attributes.get(custom_read_name(name))
            if isinstance(value, str):
                found.append(Identifier(type=IdentifierType.CUSTOM, name=name, value=value))
        return found

    @described_field(
        "One attribute; custom attributes with custom: true. Null when the user has no value."
    )
    def attribute(self, name: str, custom: bool = False) -> Attribute | None:
        key = canonical_read_name(name, custom=custom)
        if key in self._withheld:
            raise pii_forbidden(f"attribute {name}")
        attributes = self._profile.attributes
        if key == IID or key not in attributes:
            return None
        return _attribute(key, attributes[key])

    @described_field("Attributes by name. Both lists omitted: every attribute the user has.")
    def attributes(
        self,
        names: list[str] | None = strawberry.UNSET,
        custom_names: list[str] | None = strawberry.UNSET,
    ) -> list[Attribute]:
        attributes = self._profile.attributes
        # UNSET defaults keep "= null" out of the SDL; omitted and null mean the same.
        if not _given(names) and not _given(custom_names):
            if self._withheld:
                # Every attribute cannot be read without reading PII too: name them.
                raise pii_forbidden("attributes without names (every attribute)")
            # iid is the profile's id, not an attribute (insiderId carries it).
            return [_attribute(k, v) for k, v in attributes.items() if k != IID]
        keys = [canonical_read_name(n) for n in names or ()]
        keys += [canonical_read_name(n, custom=True) for n in custom_names or ()]
        for key in keys:
            if key in self._withheld:
                raise pii_forbidden(f"attribute {key.removeprefix(CUSTOM_PREFIX)}")
        seen: set[str] = set()
        found: list[Attribute] = []
        for key in keys:
            if key in seen or key == IID or key not in attributes:
                continue
            seen.add(key)
            found.append(_attribute(key, attributes[key]))
        return found

    @described_field(
        "Events with these names between from and to (defaults: to = now, "
        "from = 30 days before to), newest first; last keeps only the newest N."
    )
    def events(
        self,
        names: list[str],
        from_: Annotated[datetime | None, strawberry.argument(name="from")] = strawberry.UNSET,
        to: datetime | None = strawberry.UNSET,
        last: int | None = strawberry.UNSET,
    ) -> list[Event]:
        since, until = event_window(
            self._now, from_ if _given(from_) else None, to if _given(to) else None
        )
        if not _given(last):
            last = None
        check_last(last)
        found: list[Event] = []
        for name in dict.fromkeys(names):
            for raw in self._profile.events_named(name):
                # The same parser as the read path's ``last`` check
                # (need.limits_may_hide_events), so both agree on every event's time.
                stamp = parse_instant(created_date(raw))
                if stamp is not None and since <= stamp <= until:
                    found.append(Event.from_ucd(name, stamp, raw))
        if len(names) > 1:
            # Each name's list is newest first already (§3.2.3); several names interleave.
            found.sort(key=lambda e: e.timestamp, reverse=True)
        return found if last is None else found[:last]


@strawberry.type(
    description="Why one input item was refused, with the path of the offending input."
)
class FieldError:
    path: str = strawberry.field(
        description="Path inside the mutation's input, e.g. users.3.key.email"
    )
    message: str


@strawberry.type(description="The outcome for one input item, by its position in the input list.")
class ItemResult:
    index: int
    ok: bool
    errors: list[FieldError]


@strawberry.type
class UpsertUsersPayload:
    success_count: int
    failure_count: int
    results: list[ItemResult]


@strawberry.type
class DeleteAttributesPayload:
    success_count: int
    failure_count: int
    results: list[ItemResult]


@strawberry.enum
class ExportFormat(Enum):
    CSV = "csv"
    JSON = "json"
    PARQUET = "parquet"


@strawberry.enum
class ExportStatus(Enum):
    PENDING = "PENDING"
    READY = "READY"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"


@strawberry.type
class ExportJob:
    id: strawberry.ID
    status: ExportStatus
    format: ExportFormat
    segment_id: strawberry.ID
    requested_at: datetime
    ready_at: datetime | None
    url: str | None = strawberry.field(
        description="The download link, once READY; it expires at expiresAt."
    )
    expires_at: datetime | None
    error: str | None
