"""The UCD's endpoint paths (docs/ucd-rest-api.md §3), relative to its base URL.

E1-E10 are Insider's; ``LOCAL_SEGMENTS_PATH`` exists on the local UCD only (§5), where the
seed command creates its demo segments.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ATTRIBUTE_DELETE_PATH",
    "CONTACT_ANONYMIZE_PATH",
    "EXPORT_PATH",
    "IDENTITY_PATH",
    "LOCAL_SEGMENTS_PATH",
    "METADATA_COLUMNS_PATH",
    "PROFILE_PATH",
    "UPSERT_PATH",
    "USER_ANONYMIZE_PATH",
    "USER_DELETE_PATH",
]

UPSERT_PATH: Final = "/api/user/v1/upsert"  # E1
PROFILE_PATH: Final = "/api/user/v1/profile"  # E2
EXPORT_PATH: Final = "/api/raw/v1/export"  # E3
ATTRIBUTE_DELETE_PATH: Final = "/api/user/v1/attribute/delete"  # E4
IDENTITY_PATH: Final = "/api/user/v1/identity"  # E5 (PATCH), E6 (DELETE)
CONTACT_ANONYMIZE_PATH: Final = "/api/contact/v1/anonymize"  # E7
USER_ANONYMIZE_PATH: Final = "/api/user/v1/anonymize"  # E8
USER_DELETE_PATH: Final = "/api/user/v1/delete"  # E9
METADATA_COLUMNS_PATH: Final = "/api/user/v3/metadata/columns"  # E10
LOCAL_SEGMENTS_PATH: Final = "/api/local/v1/segments"  # local UCD only
