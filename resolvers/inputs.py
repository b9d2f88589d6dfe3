"""GraphQL input types and their validation into plain domain values."""

from __future__ import annotations

from enum import Enum

import strawberry
from strawberry.scalars import JSON

from delivery.request_facts import RequestContext
from profiles.events import EventType as DomainEventType

# Flat `EventInput` fields that are `properties` in the event format.
FLAT_PROPERTIES = {
    "product_id": "productId",
    "category": "category",
    "price": "price",
    "revenue": "revenue",
}


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

    def domain(self) -> RequestContext:
        """The plain request context the delivery layer reads."""
        utm = vars(self.utm) if self.utm is not None else {}
        return RequestContext(
            device=self.device.value if self.device is not None else None,
            country=self.country,
            path=self.path,
            referrer=self.referrer,
            utm={key: value for key, value in utm.items() if isinstance(value, str) and value},
        )


# The domain enum itself is the GraphQL enum, so inputs need no translation.
strawberry.enum(DomainEventType, name="EventType")


@strawberry.input(
    description="A visitor event (see docs/profile.md); it updates the visitor's profile."
)
class EventInput:
    type: DomainEventType
    block_id: str | None = None
    variant_id: str | None = None
    product_id: str | None = None
    category: str | None = None
    price: float | None = None
    quantity: int = 1
    revenue: float | None = None
    event_id: str | None = strawberry.field(
        default=None, description="Client-generated id; retries with it are not counted twice."
    )
    visitor_id: str | None = strawberry.field(
        default=None, description="Defaults to the current visitor (header or cookie)."
    )
    user_id: str | None = None
    timestamp: str | None = strawberry.field(
        default=None, description="ISO 8601 with a timezone; defaults to the time received."
    )
    properties: JSON | None = strawberry.field(
        default=None, description="More properties: tags, query, currency, name, consent flags..."
    )
    context: JSON | None = strawberry.field(
        default=None, description="page, referrer, utm, userAgent, locale, country."
    )

    def raw(self) -> dict[str, object]:
        """The event in the ingestion format `profiles.validation` checks."""
        properties: dict[str, object] = (
            dict(self.properties) if isinstance(self.properties, dict) else {}
        )
        for attribute, name in FLAT_PROPERTIES.items():
            value = getattr(self, attribute)
            if value is not None:
                properties[name] = value
        if self.quantity != 1 or "quantity" not in properties:
            properties["quantity"] = self.quantity
        raw: dict[str, object] = {"type": self.type.value, "properties": properties}
        optional = {
            "eventId": self.event_id,
            "visitorId": self.visitor_id,
            "userId": self.user_id,
            "timestamp": self.timestamp,
            "blockId": self.block_id,
            "variantId": self.variant_id,
            "context": self.context,
        }
        raw.update({key: value for key, value in optional.items() if value is not None})
        if self.properties is not None and not isinstance(self.properties, dict):
            raw["properties"] = self.properties  # reported as "must be an object"
        return raw
