"""Demo users and segments for ``ucd-gateway seed``: fake, realistic and reproducible.

Fake but realistic: example.com / example.org mailboxes and +90555 numbers that belong
to no one. The same seed gives the same users (timestamps are relative to today's
date, 00:00 UTC). Pure data, no I/O: the seed command sends it to a UCD. Users are typed E1
users (``requests.UpsertUser``); segments are the local UCD's segment definitions (§5.5).

It lives in ``gateway/ucd`` because it is content in the UCD's own vocabulary, sent as
it is: attribute write names (§4.7.1), event parameter names (§4.8.2) and segment
conditions on read names. Nothing in it is the gateway's or GraphQL's.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from gateway.ucd.local_segments import SegmentCondition, SegmentDefinition
from gateway.ucd.names import PRODUCT_NAME, SOURCE, custom_read_name
from gateway.ucd.requests import UpsertEvent, UpsertUser, UserRef

__all__ = ["SEGMENTS", "demo_users"]

_FIRST = (
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Ayse",
    "Mehmet",
    "Zeynep",
    "Emre",
    "Elif",
    "Can",
    "Maria",
    "Jonas",
    "Sofia",
    "Omar",
    "Yuki",
    "Lena",
    "Deniz",
    "Selin",
    "Burak",
    "Ece",
)
_LAST = (
    "Lovelace",
    "Turing",
    "Hopper",
    "Yilmaz",
    "Kaya",
    "Demir",
    "Sahin",
    "Celik",
    "Arslan",
    "Schmidt",
    "Rossi",
    "Tanaka",
    "Haddad",
    "Novak",
    "Costa",
    "Ozturk",
    "Aydin",
    "Dogan",
)
_CITIES = (
    ("TR", "Istanbul", "tr_TR"),
    ("TR", "Izmir", "tr_TR"),
    ("TR", "Ankara", "tr_TR"),
    ("DE", "Berlin", "de_DE"),
    ("GB", "London", "en_GB"),
    ("US", "Austin", "en_US"),
)
_PRODUCTS = (
    ("SKU-1001", "Running shoes", ["Sports", "Shoes"], 89.9),
    ("SKU-1002", "Trail jacket", ["Sports", "Outerwear"], 149.0),
    ("SKU-2001", "Espresso machine", ["Home", "Kitchen"], 329.5),
    ("SKU-2002", "Coffee beans 1 kg", ["Home", "Grocery"], 18.75),
    ("SKU-3001", "Noise-cancelling headphones", ["Electronics", "Audio"], 249.0),
    ("SKU-3002", "Phone case", ["Electronics", "Accessories"], 14.99),
)
_TIERS = ("bronze", "bronze", "bronze", "silver", "silver", "gold")
#: The custom attribute holding the tier, and the segment of its best customers.
_TIER = "tier"

SEGMENTS: tuple[SegmentDefinition, ...] = (
    SegmentDefinition("Gold tier", (SegmentCondition(custom_read_name(_TIER), "eq", "gold"),)),
    SegmentDefinition(
        "Istanbul email opt-ins",
        (
            SegmentCondition("city", "eq", "Istanbul"),
            SegmentCondition("email_optin", "eq", True),
        ),
    ),
)


def demo_users(count: int, *, seed: int) -> Iterator[UpsertUser]:
    """``count`` E1 users with identifiers, attributes and events of the last 90 days."""
    rng = random.Random(seed)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for n in range(count):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        country, city, locale = rng.choice(_CITIES)
        domain = "example.com" if n % 2 == 0 else "example.org"
        born = datetime(1950, 1, 1, tzinfo=UTC) + timedelta(days=rng.randrange(365 * 55))
        yield UpsertUser(
            UserRef.of(
                email=f"{first.lower()}.{last.lower()}.{n}@{domain}",
                phone_number=f"+90555{n:07d}",
                uuid=f"demo-{seed}-{n:07d}",
                custom=[("crm_id", f"crm-{seed}-{n}")],
            ),
            attributes={
                "name": first,
                "surname": last,
                "gender": rng.choice(("F", "M")),
                "birthday": born.strftime("%Y-%m-%dT00:00:00Z"),
                "age": (today - born).days // 365,
                "country": country,
                "city": city,
                "language": locale,
                "email_optin": rng.random() < 0.7,
                "sms_optin": rng.random() < 0.4,
                "whatsapp_optin": rng.random() < 0.2,
                "gdpr_optin": rng.random() < 0.9,
            },
            custom_attributes={
                _TIER: rng.choice(_TIERS),
                "favorite_categories": sorted(
                    {rng.choice(_PRODUCTS)[2][0] for _ in range(rng.randint(1, 3))}
                ),
                "lifetime_value": round(rng.uniform(0, 2500), 2),
            },
            events=tuple(_demo_events(rng, today)),
        )


def _demo_events(rng: random.Random, today: datetime) -> Iterator[UpsertEvent]:
    # Within the last 89 days: custom and most default events keep 90 days (§4.8.4).
    for _ in range(rng.randint(1, 8)):
        when = today - timedelta(seconds=rng.randrange(89 * 86400))
        stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        sku, title, taxonomy, price = rng.choice(_PRODUCTS)
        product = {
            "product_id": sku,
            PRODUCT_NAME: title,
            "taxonomy": taxonomy,
            "unit_price": price,
        }
        kind = rng.random()
        if kind < 0.4:
            yield UpsertEvent("session_start", stamp, {SOURCE: rng.choice(("web", "app"))})
        elif kind < 0.75:
            yield UpsertEvent("product_detail_page_view", stamp, {**product, "currency": "USD"})
        else:
            quantity = rng.randint(1, 3)
            yield UpsertEvent(
                "purchase",
                stamp,
                {
                    **product,
                    "currency": "USD",
                    "quantity": quantity,
                    "unit_sale_price": round(price * rng.uniform(0.8, 1), 2),
                    "event_group_id": f"order-{rng.randrange(10**9):09d}",
                },
                custom={"gift_wrap": rng.random() < 0.1},
            )
