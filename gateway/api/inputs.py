"""Input types of the contract. Conversion to UCD requests lives in ucd_requests.py.

Optional fields default to ``UNSET`` so the SDL matches the contract (no ``= null``
defaults); ``_NullForUnset`` turns an omitted field into ``None`` after construction, so
the rest of the code has one "not given" value.
"""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from gateway.api.types import ExportFormat

__all__ = [
    "AttributeValuesInput",
    "AttributesInput",
    "CustomAttributeInput",
    "CustomIdentifierInput",
    "DeleteAttributesInput",
    "EventInput",
    "ExportEventInput",
    "ExportInput",
    "IdentifierInput",
    "UpsertUsersInput",
    "UserKey",
    "UserUpsertInput",
]


class _NullForUnset:
    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value is strawberry.UNSET:
                setattr(self, name, None)


@strawberry.input(description="A custom identifier or a custom identifier's new value.")
class CustomIdentifierInput(_NullForUnset):
    name: str
    value: str


@strawberry.input(
    description=(
        "Points at one user: its insiderId, or one or more of its identifiers\n"
        "(the UCD matches them as one user)."
    )
)
class UserKey(_NullForUnset):
    insider_id: strawberry.ID | None = strawberry.UNSET
    email: str | None = strawberry.UNSET
    phone_number: str | None = strawberry.UNSET
    uuid: str | None = strawberry.UNSET
    custom: list[CustomIdentifierInput] | None = strawberry.UNSET


@strawberry.input(description="Exactly one identifier.", one_of=True)
class IdentifierInput(_NullForUnset):
    email: str | None = strawberry.UNSET
    phone_number: str | None = strawberry.UNSET
    uuid: str | None = strawberry.UNSET
    custom: CustomIdentifierInput | None = strawberry.UNSET


@strawberry.input
class CustomAttributeInput(_NullForUnset):
    name: str
    value: JSON


@strawberry.input
class AttributesInput(_NullForUnset):
    email: str | None = strawberry.UNSET
    phone_number: str | None = strawberry.UNSET
    uuid: str | None = strawberry.UNSET
    name: str | None = strawberry.UNSET
    surname: str | None = strawberry.UNSET
    birthday: datetime | None = strawberry.UNSET
    gender: str | None = strawberry.UNSET
    age: int | None = strawberry.UNSET
    language: str | None = strawberry.UNSET
    country: str | None = strawberry.UNSET
    city: str | None = strawberry.UNSET
    locale: str | None = strawberry.UNSET
    email_optin: bool | None = strawberry.UNSET
    sms_optin: bool | None = strawberry.UNSET
    whatsapp_optin: bool | None = strawberry.UNSET
    gdpr_optin: bool | None = strawberry.UNSET
    static_segment_ids: list[int] | None = strawberry.UNSET
    custom: list[CustomAttributeInput] | None = strawberry.UNSET


@strawberry.input
class EventInput(_NullForUnset):
    name: str
    timestamp: datetime
    product_id: str | None = strawberry.UNSET
    product_name: str | None = strawberry.UNSET
    taxonomy: list[str] | None = strawberry.UNSET
    currency: str | None = strawberry.UNSET
    unit_price: float | None = strawberry.UNSET
    unit_sale_price: float | None = strawberry.UNSET
    quantity: int | None = strawberry.UNSET
    event_group_id: str | None = strawberry.UNSET
    url: str | None = strawberry.UNSET
    params: JSON | None = strawberry.field(
        default=strawberry.UNSET,
        description="Other default parameters, as an object of UCD names to values.",
    )
    custom: JSON | None = strawberry.field(
        default=strawberry.UNSET,
        description="Custom parameters, as an object of names (no c_ prefix) to values.",
    )


@strawberry.input
class UserUpsertInput(_NullForUnset):
    key: UserKey
    attributes: AttributesInput | None = strawberry.UNSET
    events: list[EventInput] | None = strawberry.UNSET
    append_arrays: bool = strawberry.field(
        default=True,
        description="Array attributes append to the stored values unless this is false.",
    )


@strawberry.input
class UpsertUsersInput(_NullForUnset):
    users: list[UserUpsertInput]
    skip_hook: bool = strawberry.field(
        default=False,
        description="True: this data must not trigger journeys (the UCD's skip_hook).",
    )


@strawberry.input
class AttributeValuesInput(_NullForUnset):
    name: str
    custom: bool = False
    values: list[JSON] = strawberry.field(description="Values to remove from this array attribute.")


@strawberry.input
class DeleteAttributesInput(_NullForUnset):
    key: UserKey
    names: list[str] | None = strawberry.field(
        default=strawberry.UNSET, description="Default attributes to delete whole."
    )
    custom_names: list[str] | None = strawberry.field(
        default=strawberry.UNSET, description="Custom attributes to delete whole (no c_ prefix)."
    )
    values: list[AttributeValuesInput] | None = strawberry.field(
        default=strawberry.UNSET, description="Values to remove from array attributes."
    )


@strawberry.input
class ExportEventInput(_NullForUnset):
    name: str
    params: list[str] = strawberry.field(
        description="UCD parameter names; custom ones with a c_ prefix."
    )


@strawberry.input
class ExportInput(_NullForUnset):
    segment_id: strawberry.ID
    attributes: list[str] | None = strawberry.field(
        default=strawberry.UNSET,
        description=(
            "Default attribute names; omitted with customAttributes also omitted: every attribute."
        ),
    )
    custom_attributes: list[str] | None = strawberry.UNSET
    events: list[ExportEventInput] | None = strawberry.UNSET
    from_: datetime | None = strawberry.field(default=strawberry.UNSET, name="from")
    to: datetime | None = strawberry.UNSET
    format: ExportFormat = ExportFormat.CSV
