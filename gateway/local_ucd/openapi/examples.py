"""The contract's own request examples (§3, §5) for the local UCD's OpenAPI document."""

from __future__ import annotations

from typing import Any

__all__ = ["EXAMPLES"]

_ADA_IID = "3b9a6c1e-8f3d-4c1a-9e57-2d8f0b6a4c11"
_WINDOW = {"start_date": 1735689600, "end_date": 1738367999}

#: The contract's own request examples (§3, §5), by operation id. Schema-driven tools send
#: them first, in document order: the upsert creates the user the later examples read.
EXAMPLES: dict[str, Any] = {
    "upsert": {
        "skip_hook": False,
        "users": [
            {
                "identifiers": {"email": "ada@example.com", "custom": {"crm_id": "c-9"}},
                "attributes": {
                    "name": "Ada",
                    "age": 36,
                    "email_optin": True,
                    "birthday": "1989-12-10T00:00:00Z",
                    "static_segment_id": [1, 2],
                    "custom": {"tier": "gold", "favorite_color": ["green"]},
                },
                "events": [
                    {
                        "event_name": "purchase",
                        "timestamp": "2025-01-10T21:35:20Z",
                        "event_params": {
                            "product_id": "ABC21000",
                            "name": "Phone",
                            "currency": "USD",
                            "unit_price": 990.9,
                            "unit_sale_price": 890.9,
                            "quantity": 1,
                            "event_group_id": "ORDER123",
                            "taxonomy": ["Electronic", "Phone"],
                            "custom": {"gift_wrap": True},
                        },
                    }
                ],
            },
            {"insider_id": _ADA_IID, "not_append": True, "attributes": {"static_segment_id": [7]}},
        ],
    },
    "profile": {
        "identifiers": {"email": "ada@example.com"},
        "attributes": ["email", "name", "gdpr", "c_tier"],
        "events": {
            **_WINDOW,
            "wanted": [
                {
                    "event_name": "purchase",
                    "params": ["product_id", "unit_sale_price", "c_gift_wrap", "timestamp"],
                },
                {"event_name": "email_click", "params": ["campaign_id"]},
            ],
        },
        "quota": True,
    },
    "export": {
        "segment": {"segment_id": 1},
        "attributes": ["email", "name", "c_tier"],
        "events": {
            **_WINDOW,
            "wanted": [{"event_name": "purchase", "params": ["product_id", "quantity"]}],
        },
        "format": "csv",
        "hook": "http://127.0.0.1:9000/export-ready",
    },
    "attribute_delete": {
        "users": [
            {
                "identifiers": {"email": "ada@example.com"},
                "whole": ["name", "email_optin"],
                "partial": {"list_id": [1, 2]},
                "custom": {"whole": ["tier"], "partial": {"favorite_color": ["green"]}},
            }
        ]
    },
    "identity_update": {
        "old_identifier": {"custom": {"crm_id": "c-9"}},
        "new_identifier": {"custom": {"crm_id": "c-10"}},
    },
    "identity_delete": {"identifiers": {"phone_number": "+905551112233"}},
    "anonymize_contact": {"insider_id": _ADA_IID},
    "anonymize_user": {"identifiers": {"email": "ada@example.com"}},
    "delete_user": {"identifiers": {"custom": {"crm_id": "c-10"}}},
    "metadata_columns": {"table": "contacts"},
    "create_segment": {
        "name": "Gold buyers in Izmir",
        "conditions": [
            {"attribute": "c_tier", "operator": "eq", "value": "gold"},
            {"attribute": "city", "operator": "eq", "value": "Izmir"},
        ],
    },
    "declare_attribute": {"name": "renewal_date", "type": "date"},
}
