"""GraphQL input types and their validation into plain domain values."""

from __future__ import annotations

import re
from enum import Enum

import strawberry

from profiles.events import EventType as DomainEventType

_COUNTRY = re.compile(r"^[A-Z]{2}$")


@strawberry.enum(description="Kinds of device, as targeting conditions see them (`device`).")
class Device(Enum):
    DESKTOP = "desktop"
    MOBILE = "mobile"
    TABLET = "tablet"


@strawberry.input
class UtmInput:
    source: str | None = None
    medium: str | None = None
    campaign: str | None = None
    term: str | None = None
    content: str | None = None


@strawberry.input(
    description="Request facts a server-side renderer knows better than Tessera's headers."
)
class RequestContextInput:
    device: Device | None = None
    country: str | None = strawberry.field(
        default=None, description="ISO 3166-1 alpha-2 code, e.g. `DE`."
    )
    path: str | None = None
    referrer: str | None = None
    utm: UtmInput | None = None


# The domain enum itself is the GraphQL enum, so inputs need no translation.
strawberry.enum(DomainEventType, name="EventType")


@strawberry.input(description="A visitor event; it updates the current visitor's profile.")
class EventInput:
    type: DomainEventType
    block_id: str | None = None
    variant_id: str | None = None
    product_id: str | None = None
    category: str | None = None
    price: float | None = None
    quantity: int = 1
    revenue: float | None = None


def valid_country(value: str | None) -> str | None:
    """The upper-cased country code; raises ValueError when it is not one."""
    if value is None:
        return None
    code = value.strip().upper()
    if not _COUNTRY.match(code):
        raise ValueError(f"context.country: {value!r} is not an ISO 3166-1 alpha-2 code")
    return code
