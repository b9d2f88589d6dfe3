"""Root mutation: the minimal event tracker."""

from __future__ import annotations

import strawberry
from pymongo.errors import PyMongoError

from blocks.context import build_context
from profiles.events import EventError, TrackedEvent
from resolvers.errors import BadUserInput, ProfileUnavailable
from resolvers.inputs import EventInput
from resolvers.query import TesseraInfo, visitor_view
from resolvers.request_facts import request_facts
from resolvers.types import Visitor


@strawberry.type(description="The outcome of `track`.")
class TrackResult:
    accepted: bool
    visitor: Visitor


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Record an event for the current visitor.")
    async def track(self, info: TesseraInfo, event: EventInput) -> TrackResult:
        """Apply the event to the visitor's profile atomically."""
        ctx = info.context
        services = ctx.services
        try:
            tracked = TrackedEvent(
                type=event.type,
                visitor_id=ctx.visitor.id,
                timestamp=services.clock(),
                block_id=event.block_id,
                variant_id=event.variant_id,
                product_id=event.product_id,
                category=event.category,
                price=event.price,
                quantity=event.quantity,
                revenue=event.revenue,
            )
        except EventError as exc:
            raise BadUserInput(f"event.{exc.field}: {exc.message}") from None
        try:
            profile = await services.store.apply(tracked)
        except PyMongoError:
            raise ProfileUnavailable(
                "The event was not recorded: the profile store is unavailable; retry later."
            ) from None
        targeting = build_context(
            request=request_facts(ctx.request, ctx.visitor.id, None),
            profile=profile,
            audiences=services.audiences.current,
            now=tracked.timestamp,
            locale=None,
        )
        visitor = visitor_view(dict(targeting.attributes), ctx.visitor.id, True)
        return TrackResult(accepted=True, visitor=visitor)
