"""`POST /v1/events`: JSON arrays, NDJSON and `text/plain` beacons.

Authenticated by a publishable or admin key: `Authorization: Bearer <key>`,
else a `key` query parameter, else a `writeKey` body field (what
`navigator.sendBeacon` can send). Each event is validated on its own; the good
ones are stored durably before the answer, the bad ones are reported by index,
field and reason.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from blocks.context import build_context
from common.json_input import loads
from delivery.auth import Permission, Principal, bearer_token
from delivery.request_facts import COUNTRY_HEADERS, request_facts
from delivery.services import Services
from gateway.visitor import EDGE_COOKIE, CookiePolicy, identify
from profiles.ingest import IngestRejected, IngestUnavailable
from profiles.validation import Event, Problem, RequestDefaults, parse_event

#: What a browser beacon from any origin needs to read the answer.
BEACON_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Max-Age": "600",
}


class BodyError(ValueError):
    """The body as a whole cannot be read; `status` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"error": message},
        status_code=status,
        headers={**BEACON_CORS, "Cache-Control": "no-store", **headers},
    )


def parse_body(body: bytes, content_type: str) -> tuple[list[Any], str | None]:
    """The raw events and the body's `writeKey`, from JSON, NDJSON or text/plain."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError(400, "the body is not UTF-8") from None
    media = content_type.split(";")[0].strip().lower()
    if media in ("application/x-ndjson", "application/ndjson", "application/jsonl"):
        return _ndjson(text), None
    try:
        # Each event's values are checked on their own: one bad event, not the batch.
        data = loads(text, strict=False)
    except ValueError as exc:
        if media == "text/plain" and "\n" in text.strip():
            return _ndjson(text), None
        raise BodyError(400, f"the body is not valid JSON: {exc}") from None
    if isinstance(data, list):
        return data, None
    if isinstance(data, dict) and "events" in data:
        events, key = data["events"], data.get("writeKey")
        if not isinstance(events, list):
            raise BodyError(400, "'events' must be a JSON array of events")
        return events, key if isinstance(key, str) else None
    if isinstance(data, dict):  # a single event
        key = data.get("writeKey")
        return [data], key if isinstance(key, str) else None
    raise BodyError(
        400, "the body must be a JSON array of events, an object with 'events', or NDJSON"
    )


def _ndjson(text: str) -> list[Any]:
    events: list[Any] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            events.append(loads(line, strict=False))
        except ValueError as exc:
            raise BodyError(400, f"NDJSON line {number} is not valid JSON: {exc}") from None
    return events


def _authorize(services: Services, request: Request, body_key: str | None) -> Principal | Response:
    presented = bearer_token(request.headers) or request.query_params.get("key") or body_key
    if not presented:
        return _error(
            401,
            "An API key is required: send Authorization: Bearer <publishable key>, "
            "a 'key' query parameter or a 'writeKey' body field.",
            **{"WWW-Authenticate": "Bearer"},
        )
    principal = services.keys.authenticate(presented)
    if principal is None:
        return _error(401, "The API key is not valid.", **{"WWW-Authenticate": "Bearer"})
    if not principal.allows(Permission.INGEST):
        return _error(403, f"A {principal.kind} key does not allow event ingestion.")
    return principal


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyError(413, f"the body is larger than {limit} bytes; send smaller batches")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyError(413, f"the body is larger than {limit} bytes; send smaller batches")
        chunks.append(chunk)
    return b"".join(chunks)


def request_defaults(request: Request, minted: str | None = None) -> RequestDefaults:
    """Visitor id (header, cookie, else `minted`), User-Agent and country the request supplies."""
    visitor = identify(request.headers.get("x-visitor-id"), request.headers.get("cookie"))
    country = next((request.headers[h] for h in COUNTRY_HEADERS if h in request.headers), None)
    country = country.strip().upper() if country else None
    return RequestDefaults(
        visitor_id=visitor.id if visitor is not None and not visitor.is_new else minted,
        user_agent=request.headers.get("user-agent"),
        country=country if country and len(country) == 2 and country.isalpha() else None,
        mobile_hint=request.headers.get("sec-ch-ua-mobile"),
    )


async def events_endpoint(request: Request) -> Response:
    """Validate, store durably and apply a batch of events."""
    if request.method == "OPTIONS":
        return Response(status_code=204, headers=BEACON_CORS)
    services: Services = request.state.services
    limits = services.ingest_limits
    try:
        body = await _read_limited(request, limits.max_body_bytes)
        raw_events, body_key = parse_body(body, request.headers.get("content-type", "text/plain"))
    except BodyError as exc:
        if exc.status == 413:
            return _error(413, str(exc))
        # Authenticate first, so an anonymous caller learns nothing about the body.
        denied = _authorize(services, request, None)
        return denied if isinstance(denied, Response) else _error(exc.status, str(exc))
    auth = _authorize(services, request, body_key)
    if isinstance(auth, Response):
        return auth
    if len(raw_events) > limits.max_events:
        return _error(
            413,
            f"{len(raw_events)} events in one request; at most {limits.max_events} are accepted",
        )
    if not raw_events:
        return _error(400, "the batch holds no events")
    ingestor = services.ingestor
    assert ingestor is not None
    now = services.clock()
    visitor = identify(request.headers.get("x-visitor-id"), request.headers.get("cookie"))
    # A browser's first beacon, before any private page: its events get a new id (and
    # the cookie below), rather than being refused for want of a visitorId.
    minted = visitor.id if visitor is not None and visitor.is_new else None
    defaults = request_defaults(request, minted)
    good: list[Event] = []
    index_of: dict[int, int] = {}  # id(event) -> its index in the batch
    problems: list[Problem] = []
    for index, raw in enumerate(raw_events):
        parsed = parse_event(
            raw,
            index,
            now=now,
            max_skew=timedelta(seconds=limits.max_skew_seconds),
            defaults=defaults,
            may_identify=auth.allows(Permission.ADMIN),
        )
        if isinstance(parsed, Event):
            good.append(parsed)
            index_of[id(parsed)] = index
        else:
            problems.extend(parsed)
    try:
        outcome = await ingestor.submit(good)
    except IngestUnavailable as exc:
        return _error(
            503, f"No events were accepted: {exc}.", **{"Retry-After": str(exc.retry_after)}
        )
    except IngestRejected as exc:
        return _error(400, f"No events were accepted: {exc}.")
    # Events the store refused one by one are reported like invalid ones.
    problems.extend(Problem(index_of[id(r.event)], r.field, r.message) for r in outcome.rejected)
    problems.sort(key=lambda p: p.index)
    rejected = sorted({p.index for p in problems})
    payload = {
        "accepted": outcome.accepted,
        "duplicates": outcome.duplicates,
        "dropped": outcome.dropped,
        "rejected": rejected,
        "errors": [p.as_dict() for p in problems],
    }
    status = 400 if len(rejected) == len(raw_events) else 200
    response = JSONResponse(
        payload, status_code=status, headers={**BEACON_CORS, "Cache-Control": "no-store"}
    )
    cookies: CookiePolicy = request.state.cookies
    stored_for = {event.visitor_id for event in good}
    if minted is not None and minted in stored_for and outcome.accepted:
        response.headers.append("Set-Cookie", cookies.visitor(minted))
    current = (visitor.id if visitor is not None else None) or minted
    key = _edge_key(services, request, current, outcome.profiles.get(current or ""))
    if key is not None and key != _cookie(request, EDGE_COOKIE):
        # The events changed what the visitor's pages read: the next page uses the new key.
        response.headers.append("Set-Cookie", cookies.edge_key(key))
    return response


def _cookie(request: Request, name: str) -> str | None:
    return request.cookies.get(name)


def _edge_key(
    services: Services, request: Request, visitor_id: str | None, profile: dict[str, Any] | None
) -> str | None:
    """The visitor's edge key after the events, when their profile was just written."""
    if visitor_id is None or profile is None or services.edge_keys is None:
        return None
    context = build_context(
        request=request_facts(request.headers, visitor_id, None),
        profile=profile,
        audiences=services.audiences.current,
        now=services.clock(),
        locale=None,
    )
    arms = services.experiments.arms(context, services.allocation)
    return services.edge_keys.visitor_key(context, arms)
