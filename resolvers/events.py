"""`trackBatch`, and the event validation `track` shares with it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

import strawberry

from delivery.auth import Permission
from delivery.errors import BadUserInput, ProfileUnavailable
from profiles.ingest import IngestOutcome, IngestRejected, IngestUnavailable
from profiles.validation import Event, Problem, RequestDefaults, parse_event
from resolvers.inputs import FLAT_PROPERTIES, EventInput
from resolvers.permissions import CanIngest
from resolvers.query import TesseraInfo

_FLAT_NAMES = {name: attribute for attribute, name in FLAT_PROPERTIES.items()}
_CAMEL = {"product_id": "productId"}


def graphql_field(problem: Problem) -> str:
    """The problem's field as the GraphQL input names it (`price`, not `properties.price`)."""
    head, _, rest = problem.field.partition(".")
    if head == "properties" and rest in (*_FLAT_NAMES, "quantity"):
        return _CAMEL.get(_FLAT_NAMES.get(rest, rest), rest)
    return problem.field


def validate_inputs(
    info: TesseraInfo, inputs: Sequence[EventInput]
) -> tuple[list[Event], list[Problem]]:
    """Validate GraphQL event inputs; the current visitor is the default visitorId."""
    ctx = info.context
    services = ctx.services
    facts = ctx.delivery.facts()
    defaults = RequestDefaults(
        visitor_id=ctx.visitor.id, user_agent=facts.user_agent, country=facts.country
    )
    principal = ctx.principal
    now = services.clock()
    skew = timedelta(seconds=services.ingest_limits.max_skew_seconds)
    events: list[Event] = []
    problems: list[Problem] = []
    for index, item in enumerate(inputs):
        parsed = parse_event(
            item.raw(),
            index,
            now=now,
            max_skew=skew,
            defaults=defaults,
            require_event_id=False,
            generated_id=uuid.uuid4().hex,
            may_identify=principal is not None and principal.allows(Permission.ADMIN),
        )
        if isinstance(parsed, Event):
            events.append(parsed)
        else:
            problems.extend(parsed)
    return events, problems


async def submit(info: TesseraInfo, events: Sequence[Event]) -> IngestOutcome:
    """Hand events to the ingestor; an outage is a PROFILE_UNAVAILABLE error."""
    ingestor = info.context.services.ingestor
    assert ingestor is not None
    try:
        return await ingestor.submit(events)
    except IngestUnavailable as exc:
        raise ProfileUnavailable(
            f"The events were not recorded: the event store is unavailable; retry in "
            f"{exc.retry_after} s."
        ) from None
    except IngestRejected as exc:
        raise BadUserInput(f"events: none was recorded: {exc}.") from None


def rejections(
    outcome: IngestOutcome, events: Sequence[Event], indices: Sequence[int]
) -> list[Problem]:
    """The events the store refused one by one, as problems at their input index."""
    index_of = {id(event): index for event, index in zip(events, indices, strict=True)}
    return [Problem(index_of[id(r.event)], r.field, r.message) for r in outcome.rejected]


@strawberry.type(description="A rejected event: its index in the batch, the field and why.")
class EventProblem:
    index: int
    field: str
    message: str


@strawberry.type(description="The outcome of `trackBatch`.")
class TrackBatchResult:
    accepted: int = strawberry.field(description="New events stored durably and applied.")
    duplicates: int = strawberry.field(description="Events whose eventId was already stored.")
    dropped: int = strawberry.field(description="Events not stored: no analytics consent.")
    rejected: list[int] = strawberry.field(description="Indices of the invalid events.")
    errors: list[EventProblem]


@strawberry.type
class EventMutation:
    @strawberry.mutation(
        description="Record several events (any visitors); the valid ones are stored.",
        permission_classes=[CanIngest],
    )
    async def track_batch(self, info: TesseraInfo, events: list[EventInput]) -> TrackBatchResult:
        """Validate each event, store the good ones durably, report the rest."""
        limit = info.context.services.ingest_limits.max_events
        if len(events) > limit:
            raise BadUserInput(f"events: {len(events)} events; at most {limit} per batch.")
        good, problems = validate_inputs(info, events)
        outcome = await submit(info, good)
        invalid = {p.index for p in problems}
        valid = [index for index in range(len(events)) if index not in invalid]
        problems = sorted([*problems, *rejections(outcome, good, valid)], key=lambda p: p.index)
        return TrackBatchResult(
            accepted=outcome.accepted,
            duplicates=outcome.duplicates,
            dropped=outcome.dropped,
            rejected=sorted({p.index for p in problems}),
            errors=[
                EventProblem(index=p.index, field=graphql_field(p), message=p.message)
                for p in problems
            ],
        )
