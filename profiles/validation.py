"""Validate raw ingested events, naming every problem by index, field and reason."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import bson
from bson.errors import BSONError

from profiles.devices import classify_device
from profiles.events import EventType

EVENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
VISITOR_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
CURRENCY = re.compile(r"[A-Z]{3}")
COUNTRY = re.compile(r"[A-Z]{2}")
PATTERN_MESSAGES = {
    EVENT_ID.pattern: "must be 1-128 letters, digits, '.', '_', ':' or '-'",
    KEY.pattern: "must be 1-64 letters, digits, '_' or '-'",
    CURRENCY.pattern: "must be an ISO 4217 code such as 'EUR'",
}
UTM_KEYS = ("source", "medium", "campaign", "term", "content")
MAX_TAGS = 20
MAX_AMOUNT = 1e9
MAX_QUANTITY = 10_000
MAX_PROPERTIES = 64
# Product ids end up in the profile (recently viewed, cart lines), so they stay short.
MAX_PRODUCT_ID = 128
# An event as stored (BSON), like Segment's 32 KB per event; far below MongoDB's 16 MB.
MAX_EVENT_BYTES = 32 * 1024
# Deepest nesting a stored document may have (an event is 3 levels deep at most).
MAX_DEPTH = 8
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Longest timestamp string worth parsing (ISO 8601 with nanoseconds and an offset is ~35).
MAX_TIMESTAMP_CHARS = 64
ISO_MESSAGE = "is not an ISO 8601 date-time"
SURROGATE = "holds a lone UTF-16 surrogate (not valid Unicode)"
_TOP_LEVEL = {
    "type", "eventId", "visitorId", "userId", "timestamp", "context", "properties",
    "blockId", "variantId", "writeKey",
}  # fmt: skip
_CONTEXT = {"page", "referrer", "utm", "userAgent", "country", "locale"}


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason an event was rejected."""

    index: int
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        """The JSON form clients receive."""
        return {"index": self.index, "field": self.field, "message": self.message}


@dataclass(frozen=True, slots=True)
class RequestDefaults:
    """What the HTTP request supplies when an event does not say."""

    visitor_id: str | None = None
    user_agent: str | None = None
    country: str | None = None
    mobile_hint: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """A validated event, ready to store and apply."""

    event_id: str
    type: EventType
    visitor_id: str
    timestamp: datetime
    received_at: datetime
    user_id: str | None = None
    original_timestamp: datetime | None = None
    context: Mapping[str, Any] = field(default_factory=dict)
    properties: Mapping[str, Any] = field(default_factory=dict)
    block_id: str | None = None
    variant_id: str | None = None

    def document(self, commit: str) -> dict[str, Any]:
        """The MongoDB document stored in `events` (`_id` is the event id)."""
        doc: dict[str, Any] = {
            "_id": self.event_id,
            "type": self.type.value,
            "visitorId": self.visitor_id,
            "timestamp": self.timestamp,
            "receivedAt": self.received_at,
            "context": dict(self.context),
            "properties": dict(self.properties),
            "commit": commit,
        }
        optional = {
            "userId": self.user_id,
            "originalTimestamp": self.original_timestamp,
            "blockId": self.block_id,
            "variantId": self.variant_id,
        }
        doc.update({k: v for k, v in optional.items() if v is not None})
        return doc

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Event:
        """Rebuild an event from its stored document (for reconciliation)."""
        return cls(
            event_id=doc["_id"],
            type=EventType(doc["type"]),
            visitor_id=doc["visitorId"],
            timestamp=_aware(doc["timestamp"]),
            received_at=_aware(doc["receivedAt"]),
            user_id=doc.get("userId"),
            context=doc.get("context") or {},
            properties=doc.get("properties") or {},
            block_id=doc.get("blockId"),
            variant_id=doc.get("variantId"),
        )


def unicode_ok(text: str) -> bool:
    """Whether `text` can be encoded as UTF-8 (a lone surrogate such as U+D800 cannot)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def label(value: Any, limit: int = 64) -> str:
    """A client-supplied name, safe to echo in a message: UTF-8-encodable and short."""
    text = str(value).encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else f"{text[:limit]}..."


def storage_problems(
    document: Mapping[str, Any], *, max_bytes: int, names: Mapping[str, str] | None = None
) -> list[tuple[str, str]]:
    """Why `document` cannot be stored in MongoDB, as (field path, reason); empty if it can.

    Checks what BSON and MongoDB refuse (integers beyond 64 bits, lone surrogates,
    key names with NUL, a leading `$` or a dot, nesting, size), naming the field,
    then encodes the document with `bson` itself as the final word.
    """
    found: list[tuple[str, str]] = []
    _walk(document, "", 0, found, names or {})
    if found:
        return found
    try:
        size = len(bson.encode(document))
    except (BSONError, OverflowError, ValueError, TypeError) as exc:
        return [("", f"cannot be stored: {label(exc, 160)}")]
    if size > max_bytes:
        return [("", f"is {size} bytes when stored; at most {max_bytes} are accepted")]
    return []


def _walk(
    value: Any, path: str, depth: int, found: list[tuple[str, str]], names: Mapping[str, str]
) -> None:
    if isinstance(value, Mapping):
        if depth >= MAX_DEPTH:
            found.append((path, f"is nested deeper than {MAX_DEPTH} levels"))
            return
        for key, item in value.items():
            name = names.get(key, key) if depth == 0 else key
            here = f"{path}.{label(name)}" if path else label(name)
            if not isinstance(key, str):
                found.append((here, "field names must be strings"))
            elif not unicode_ok(key):
                found.append((here, f"the field name {SURROGATE}"))
            elif "\x00" in key or key.startswith("$") or "." in key:
                found.append((here, "field names may not hold NUL or '.', nor start with '$'"))
            else:
                _walk(item, here, depth + 1, found, names)
    elif isinstance(value, (list, tuple)):
        if depth >= MAX_DEPTH:
            found.append((path, f"is nested deeper than {MAX_DEPTH} levels"))
            return
        for position, item in enumerate(value):
            _walk(item, f"{path}.{position}", depth + 1, found, names)
    elif isinstance(value, str):
        if not unicode_ok(value):
            found.append((path, SURROGATE))
    elif (
        isinstance(value, int)
        and not isinstance(value, bool)
        and not INT64_MIN <= value <= INT64_MAX
    ):
        found.append((path, "must be a 64-bit integer (between -2^63 and 2^63-1)"))


# A stand-in commit id of the real length, so the size check counts it.
_PLACEHOLDER_COMMIT = "0" * 32


def event_storage_problems(event: Event) -> list[tuple[str, str]]:
    """Why `event` cannot be stored in `events`, by field as the client names it."""
    return storage_problems(
        event.document(_PLACEHOLDER_COMMIT), max_bytes=MAX_EVENT_BYTES, names={"_id": "eventId"}
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class _Collector:
    def __init__(self, index: int) -> None:
        self.index = index
        self.problems: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(self.index, path, message))

    def string(
        self,
        raw: Mapping[str, Any],
        key: str,
        path: str,
        *,
        max_len: int,
        pattern: re.Pattern[str] | None = None,
    ) -> str | None:
        value = raw.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.add(path, "must be a string")
            return None
        if not unicode_ok(value):
            self.add(path, SURROGATE)
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.add(path, PATTERN_MESSAGES.get(pattern.pattern, f"must match {pattern.pattern}"))
            return None
        if not 1 <= len(value) <= max_len:
            self.add(path, f"must be 1-{max_len} characters")
            return None
        return value

    def amount(self, raw: Mapping[str, Any], key: str, path: str) -> float | None:
        value = raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.add(path, "must be a number")
            return None
        # Compared as they are: float(2**1100) would raise OverflowError.
        if (isinstance(value, float) and not math.isfinite(value)) or not 0 <= value <= MAX_AMOUNT:
            self.add(path, "must be a non-negative amount below 1e9")
            return None
        return float(value)


def _timestamp(raw: Any, c: _Collector) -> datetime | None:
    if raw is None:
        return None
    if isinstance(raw, bool):
        c.add("timestamp", "must be an ISO 8601 string or epoch milliseconds")
        return None
    if isinstance(raw, (int, float)):
        # NaN, Infinity and 1e999999 (inf) fail the comparison; ints are compared exactly.
        if not 0 <= raw < EPOCH_MS_LIMIT:
            c.add("timestamp", "epoch milliseconds out of range (0 to 1e14, i.e. 1970-5138)")
            return None
        return datetime.fromtimestamp(raw / 1000.0, UTC)
    if isinstance(raw, str):
        return _iso_timestamp(raw, c)
    c.add("timestamp", "must be an ISO 8601 string or epoch milliseconds")
    return None


EPOCH_MS_LIMIT = 10**14
_LONG_YEAR = re.compile(r"[+-]?\d{5}")
# Python's own reasons for a well-formed but impossible date-time (none echoes the input).
_ISO_REASONS = (
    ("hour must be in", "hour 24 is not supported; use 00:00 of the next day"),
    ("second must be in", "leap seconds (:60) are not supported"),
    ("minute must be in", "the minute must be 00-59"),
    ("month must be in", "the month must be 01-12"),
    ("day is out of range", "the day is out of range for the month"),
    ("year 0 is out of range", "the year must be 0001-9999"),
    ("offset must be a timedelta", "the UTC offset must be less than 24 hours"),
)


def _iso_timestamp(raw: str, c: _Collector) -> datetime | None:
    if len(raw) > MAX_TIMESTAMP_CHARS or not unicode_ok(raw):
        c.add("timestamp", ISO_MESSAGE)
        return None
    if _LONG_YEAR.match(raw):
        c.add("timestamp", "is not a valid date-time: the year must be 0001-9999")
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        reason = next((r for key, r in _ISO_REASONS if str(exc).startswith(key)), None)
        c.add("timestamp", f"is not a valid date-time: {reason}" if reason else ISO_MESSAGE)
        return None
    if parsed.tzinfo is None:
        c.add("timestamp", "needs a timezone (e.g. 'Z' or '+02:00')")
        return None
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        c.add("timestamp", "is outside the supported range (years 0001-9999 in UTC)")
        return None


def _context(raw: Any, c: _Collector, defaults: RequestDefaults) -> dict[str, Any]:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        c.add("context", "must be an object")
        raw = {}
    for key in raw:
        if key not in _CONTEXT:
            c.add(f"context.{label(key)}", f"unknown field; expected one of {sorted(_CONTEXT)}")
    out: dict[str, Any] = {}
    for key, limit in (("page", 2048), ("referrer", 2048), ("locale", 35)):
        value = c.string(raw, key, f"context.{key}", max_len=limit)
        if value is not None:
            out[key] = value
    utm = raw.get("utm")
    if utm is not None:
        if not isinstance(utm, Mapping):
            c.add("context.utm", "must be an object")
        else:
            tags: dict[str, str] = {}
            for key in utm:
                if key not in UTM_KEYS:
                    c.add(
                        f"context.utm.{label(key)}",
                        f"unknown UTM tag; expected one of {list(UTM_KEYS)}",
                    )
                    continue
                value = c.string(utm, key, f"context.utm.{key}", max_len=256)
                if value is not None:
                    tags[key] = value
            if tags:
                out["utm"] = tags
    user_agent = (
        c.string(raw, "userAgent", "context.userAgent", max_len=1024) or defaults.user_agent
    )
    if user_agent is not None:
        out["userAgent"] = user_agent[:1024]
    out["device"] = classify_device(user_agent, defaults.mobile_hint)
    country = raw.get("country")
    if country is not None:
        if isinstance(country, str) and COUNTRY.fullmatch(country.upper()):
            out["country"] = country.upper()
        else:
            c.add("context.country", "must be an ISO 3166-1 alpha-2 code such as 'DE'")
    elif defaults.country is not None:
        out["country"] = defaults.country
    return out


def _properties(raw: Any, c: _Collector) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        c.add("properties", "must be an object")
        return {}
    if len(raw) > MAX_PROPERTIES:
        c.add("properties", f"at most {MAX_PROPERTIES} properties per event")
        return {}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        path = f"properties.{label(key)}"
        if not isinstance(key, str) or not KEY.fullmatch(key):
            c.add(path, "property names are 1-64 letters, digits, '_' or '-'")
        elif key in ("price", "revenue"):
            amount = c.amount(raw, key, path)
            if amount is not None:
                out[key] = amount
        elif key == "quantity":
            if isinstance(value, bool) or not isinstance(value, int):
                c.add(path, "must be an integer")
            elif not 1 <= value <= MAX_QUANTITY:
                c.add(path, f"must be between 1 and {MAX_QUANTITY}")
            else:
                out[key] = value
        elif key == "category":
            category = c.string(raw, key, path, max_len=64, pattern=KEY)
            if category is not None:
                out[key] = category
        elif key == "tags":
            if not isinstance(value, list) or len(value) > MAX_TAGS:
                c.add(path, f"must be a list of at most {MAX_TAGS} tags")
            elif not all(isinstance(t, str) and KEY.fullmatch(t) for t in value):
                c.add(path, "tags are 1-64 letters, digits, '_' or '-'")
            else:
                out[key] = list(dict.fromkeys(value))
        elif key == "currency":
            currency = c.string(raw, key, path, max_len=3, pattern=CURRENCY)
            if currency is not None:
                out[key] = currency
        elif key in ("analytics", "personalization"):
            if not isinstance(value, bool):
                c.add(path, "must be true or false")
            else:
                out[key] = value
        elif value is None or isinstance(value, bool):
            out[key] = value
        elif isinstance(value, int):
            if INT64_MIN <= value <= INT64_MAX:
                out[key] = value
            else:
                c.add(path, "must be a 64-bit integer (between -2^63 and 2^63-1)")
        elif isinstance(value, float):
            if math.isfinite(value):
                out[key] = value
            else:
                c.add(path, "must be a finite number")
        elif isinstance(value, str):
            limit = MAX_PRODUCT_ID if key == "productId" else 1024
            if len(value) > limit:
                c.add(path, f"must be at most {limit} characters")
            elif not unicode_ok(value):
                c.add(path, SURROGATE)
            else:
                out[key] = value
        else:
            c.add(path, "must be a string, number, boolean or null")
    return out


def _type_rules(
    kind: EventType, props: Mapping[str, Any], user_id: str | None, c: _Collector
) -> None:
    if kind is EventType.ADD_TO_CART and "price" not in props:
        c.add("properties.price", "add_to_cart needs the item's price")
    elif kind is EventType.REMOVE_FROM_CART and "productId" not in props:
        c.add("properties.productId", "remove_from_cart needs the productId")
    elif kind is EventType.SEARCH and not props.get("query"):
        c.add("properties.query", "search needs the query")
    elif kind is EventType.IDENTIFY and user_id is None:
        c.add("userId", "identify needs the userId")
    elif kind is EventType.CONSENT and not ({"analytics", "personalization"} & set(props)):
        c.add("properties", "consent needs 'analytics' and/or 'personalization' (true or false)")
    elif kind is EventType.CUSTOM and not props.get("name"):
        c.add("properties.name", "custom events need a name")


IDENTIFY_NEEDS_SECRET = (
    "identify needs an admin key: send it from your server once the user has logged in "
    "(a publishable key could link any visitor to any user)"
)


def parse_event(
    raw: Any,
    index: int,
    *,
    now: datetime,
    max_skew: timedelta,
    defaults: RequestDefaults = RequestDefaults(),
    require_event_id: bool = True,
    generated_id: str | None = None,
    may_identify: bool = True,
) -> Event | list[Problem]:
    """The validated event, or every problem found in it (none is left unsaid)."""
    c = _Collector(index)
    if not isinstance(raw, Mapping):
        return [Problem(index, "", "each event must be a JSON object")]
    for key in raw:
        if key not in _TOP_LEVEL:
            c.add(label(key), "unknown field")
    kind: EventType | None = None
    raw_type = raw.get("type")
    if raw_type is None:
        c.add("type", "is required")
    elif not isinstance(raw_type, str):
        c.add("type", "must be a string")
    else:
        try:
            kind = EventType(raw_type.lower())
        except ValueError:
            c.add(
                "type",
                f"unknown type {label(raw_type)!r}; expected one of {[t.value for t in EventType]}",
            )
    event_id = c.string(raw, "eventId", "eventId", max_len=128, pattern=EVENT_ID)
    if event_id is None and raw.get("eventId") is None:
        if require_event_id or generated_id is None:
            c.add("eventId", "is required (a client-generated unique id, e.g. a UUID)")
        else:
            event_id = generated_id
    visitor_id = c.string(raw, "visitorId", "visitorId", max_len=128, pattern=VISITOR_ID)
    if visitor_id is None and raw.get("visitorId") is None:
        visitor_id = defaults.visitor_id
        if visitor_id is None:
            c.add("visitorId", "is required (or send the tsr_vid cookie / X-Visitor-Id header)")
    user_id = c.string(raw, "userId", "userId", max_len=256)
    block_id = c.string(raw, "blockId", "blockId", max_len=128)
    variant_id = c.string(raw, "variantId", "variantId", max_len=128)
    timestamp = _timestamp(raw.get("timestamp"), c)
    context = _context(raw.get("context"), c, defaults)
    props = _properties(raw.get("properties"), c)
    if kind is EventType.IDENTIFY and not may_identify:
        c.add("type", IDENTIFY_NEEDS_SECRET)
    if kind is not None:
        already = {p.field for p in c.problems}
        rules = _Collector(index)
        _type_rules(kind, props, user_id, rules)
        # A field already reported (e.g. a negative price) is not also "missing".
        c.problems.extend(p for p in rules.problems if p.field not in already)
    if c.problems:
        return c.problems
    assert kind is not None
    assert event_id is not None
    assert visitor_id is not None
    original: datetime | None = None
    if timestamp is None:
        timestamp = now
    elif abs(timestamp - now) > max_skew:
        original, timestamp = timestamp, now
    event = Event(
        event_id=event_id,
        type=kind,
        visitor_id=visitor_id,
        timestamp=timestamp,
        received_at=now,
        user_id=user_id,
        original_timestamp=original,
        context=context,
        properties=props,
        block_id=block_id,
        variant_id=variant_id,
    )
    # The last word: what the checks above allow must also be a storable document.
    unstorable = event_storage_problems(event)
    if unstorable:
        return [Problem(index, path, message) for path, message in unstorable]
    return event
