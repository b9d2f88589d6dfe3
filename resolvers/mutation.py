"""Root mutation: `track` one event for the current visitor."""

from __future__ import annotations

import strawberry

from blocks.context import build_context
from delivery.errors import BadUserInput
from resolvers.events import graphql_field, submit, validate_inputs
from resolvers.inputs import EventInput
from resolvers.permissions import CanIngest
from resolvers.query import TesseraInfo, visitor_view
from resolvers.types import Visitor


@strawberry.type(description="The outcome of `track`.")
class TrackResult:
    accepted: bool = strawberry.field(description="Stored now, or already stored (a retry).")
    duplicate: bool = strawberry.field(description="The eventId was already stored.")
    dropped: bool = strawberry.field(description="Not stored: the visitor withheld consent.")
    visitor: Visitor


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Record an event (for the current visitor unless it names one).",
        permission_classes=[CanIngest],
    )
    async def track(self, info: TesseraInfo, event: EventInput) -> TrackResult:
        """Store the event durably, apply it to the profile, return the visitor."""
        ctx = info.context
        services = ctx.services
        events, problems = validate_inputs(info, [event])
        if problems:
            raise BadUserInput(
                "; ".join(f"event.{graphql_field(p)}: {p.message}" for p in problems)
            )
        tracked = events[0]
        outcome = await submit(info, events)
        profile = outcome.profiles.get(tracked.visitor_id)
        if profile is None:
            profile = await services.store.get(tracked.visitor_id)
        targeting = build_context(
            request=ctx.delivery.facts(visitor_id=tracked.visitor_id),
            profile=profile,
            audiences=services.audiences.current,
            now=services.clock(),
            locale=None,
        )
        visitor = visitor_view(dict(targeting.attributes), tracked.visitor_id, True)
        return TrackResult(
            accepted=outcome.accepted + outcome.duplicates > 0,
            duplicate=outcome.duplicates > 0,
            dropped=outcome.dropped > 0,
            visitor=visitor,
        )
