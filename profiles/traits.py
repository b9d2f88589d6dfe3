"""Derived traits: how a batch of events changes a profile, and how two profiles merge.

Pure functions over plain documents, so every rule is testable without a
server; the store writes the result back with a version check (atomically).
Interests are stored as `{v, t}` (value at time `t`) and decayed when read
(`blocks.context`), with the half-life recorded in the profile (`decay`).

Every map and list a profile holds is bounded (`bound`), so no stream of events
can grow a profile past `MAX_PROFILE_BYTES`: interests and tags keep the
highest decayed scores, recently viewed items, cart lines, commits and aliases
the most recent ones; strings are bounded by validation (or cut here).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from profiles.events import EventType
from profiles.validation import Event

SESSION_GAP = timedelta(minutes=30)
RECENTLY_VIEWED = 20
# Products bought (the latest purchase of each), so recommendations can leave them out.
PURCHASED = 50
# Commits whose events a profile already holds (so reconciliation never re-applies).
RECENT_COMMITS = 64
MAX_CART_LINES = 50
# Interest and tag scores kept per profile: those with the highest decayed score now.
TOP_INTERESTS = 50
TOP_TAGS = 50
# Merged visitor ids listed in `aliases` (the most recent; their stubs keep `mergedInto`).
MAX_ALIASES = 100
MAX_CONSENT_SOURCE = 256
# The largest profile these bounds allow, with every string at its validated maximum
# (tests/unit/test_traits.py builds it); documented in docs/profile.md.
MAX_PROFILE_BYTES = 64 * 1024
_COUNTERS = {
    EventType.PAGE_VIEW: "pageViews",
    EventType.CLICK: "clicks",
    EventType.BLOCK_VIEW: "blockViews",
    EventType.SEARCH: "searches",
}
_SUMMED_TRAITS = ("pageViews", "clicks", "blockViews", "searches", "orders", "ltv", "sessions")


def _aware(moment: Any) -> datetime | None:
    if not isinstance(moment, datetime):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def decayed(value: Any, at: datetime, half_life_days: float) -> float:
    """A stored interest (`{v, t}` or a plain number) decayed to `at`."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, Mapping):
        return 0.0
    amount = float(value.get("v", 0.0))
    since = _aware(value.get("t"))
    if since is None or at <= since:
        return amount
    days = (at - since).total_seconds() / 86400.0
    return float(amount * 0.5 ** (days / half_life_days))


def _bump(scores: dict[str, Any], key: str, weight: float, at: datetime, half_life: float) -> None:
    current = scores.get(key)
    since = _aware(current.get("t")) if isinstance(current, Mapping) else None
    if since is not None and at < since:
        # A late event: add its weight as it would have decayed by now.
        days = (since - at).total_seconds() / 86400.0
        scores[key] = {
            "v": decayed(current, since, half_life) + weight * 0.5 ** (days / half_life),
            "t": since,
        }
        return
    scores[key] = {"v": decayed(current, at, half_life) + weight, "t": at}


def new_profile(profile_id: str, now: datetime) -> dict[str, Any]:
    """An empty profile for a visitor never seen."""
    return {"_id": profile_id, "version": 0, "createdAt": now, "traits": {}, "counts": {}}


def _cart(doc: dict[str, Any]) -> dict[str, Any]:
    cart: dict[str, Any] = dict(doc.get("cart") or {})
    cart["lines"] = [dict(line) for line in cart.get("lines") or ()]
    return cart


def _cart_totals(cart: dict[str, Any]) -> None:
    lines = cart["lines"]
    cart["items"] = sum(int(line["quantity"]) for line in lines)
    cart["value"] = round(sum(float(line["price"]) * int(line["quantity"]) for line in lines), 2)


def _apply_one(doc: dict[str, Any], event: Event, half_life: float) -> None:
    traits: dict[str, Any] = doc.setdefault("traits", {})
    counts: dict[str, Any] = doc.setdefault("counts", {})
    at = event.timestamp
    props = event.properties
    counts[event.type.value] = counts.get(event.type.value, 0) + 1
    last_seen = _aware(traits.get("lastSeen"))
    if last_seen is None or at - last_seen > SESSION_GAP:
        traits["sessions"] = traits.get("sessions", 0) + 1
        traits["sessionStartedAt"] = at
    if last_seen is None or at >= last_seen:
        traits["lastSeen"] = at
        if event.context.get("device"):
            traits["device"] = event.context["device"]
        if event.context.get("country"):
            traits["country"] = event.context["country"]
        if event.context.get("page"):
            traits["lastPage"] = event.context["page"]
    first_seen = _aware(traits.get("firstSeen"))
    if first_seen is None or at < first_seen:
        traits["firstSeen"] = at
    counter = _COUNTERS.get(event.type)
    if counter is not None:
        traits[counter] = traits.get(counter, 0) + 1
    category = props.get("category")
    if isinstance(category, str):
        _bump(doc.setdefault("interests", {}), category, 1.0, at, half_life)
    for tag in props.get("tags") or ():
        _bump(doc.setdefault("tags", {}), tag, 1.0, at, half_life)
    product = props.get("productId")
    if event.type in (EventType.PAGE_VIEW, EventType.CLICK) and isinstance(product, str):
        seen = [
            item for item in doc.get("recentlyViewed") or () if item.get("productId") != product
        ]
        item = {"productId": product, "at": at, **({"category": category} if category else {})}
        doc["recentlyViewed"] = [item, *seen][:RECENTLY_VIEWED]
    if event.type is EventType.ADD_TO_CART:
        cart = _cart(doc)
        quantity = int(props.get("quantity", 1))
        for line in cart["lines"]:
            if line.get("productId") == product:
                line["quantity"] += quantity
                line["price"] = props["price"]
                break
        else:
            line = {"productId": product, "quantity": quantity, "price": props["price"]}
            if category:
                line["category"] = category
            cart["lines"] = [*cart["lines"], line][-MAX_CART_LINES:]
        cart["updatedAt"] = at
        _cart_totals(cart)
        doc["cart"] = cart
    elif event.type is EventType.REMOVE_FROM_CART:
        cart = _cart(doc)
        remaining = []
        for line in cart["lines"]:
            if line.get("productId") == product:
                left = line["quantity"] - int(props.get("quantity", line["quantity"]))
                if left > 0:
                    remaining.append({**line, "quantity": left})
            else:
                remaining.append(line)
        cart["lines"] = remaining
        cart["updatedAt"] = at
        _cart_totals(cart)
        doc["cart"] = cart
    elif event.type is EventType.PURCHASE:
        # What was bought: the product named, else the cart being checked out.
        bought = (
            [product]
            if isinstance(product, str)
            else [line.get("productId") for line in _cart(doc)["lines"]]
        )
        earlier = [
            item for item in doc.get("purchased") or () if item.get("productId") not in bought
        ]
        items = [{"productId": p, "at": at} for p in dict.fromkeys(bought) if isinstance(p, str)]
        if items:
            doc["purchased"] = [*items, *earlier][:PURCHASED]
        revenue = props.get("revenue")
        if revenue is None:
            revenue = float(props.get("price", 0.0)) * int(props.get("quantity", 1))
        traits["orders"] = traits.get("orders", 0) + 1
        traits["ltv"] = round(float(traits.get("ltv", 0)) + float(revenue), 2)
        last_order = _aware(traits.get("lastOrderAt"))
        if last_order is None or at > last_order:
            traits["lastOrderAt"] = at
        doc["cart"] = {"items": 0, "value": 0, "lines": [], "updatedAt": at}
    elif event.type is EventType.CONSENT:
        consent = dict(doc.get("consent") or {})
        for key in ("analytics", "personalization"):
            if key in props:
                consent[key] = props[key]
        consent["at"] = at
        source = str(props.get("source") or event.context.get("page") or "event")
        consent["source"] = source[:MAX_CONSENT_SOURCE]
        doc["consent"] = consent
    elif event.type is EventType.IDENTIFY and event.user_id and not doc.get("userId"):
        doc["userId"] = event.user_id


def apply_events(
    profile: Mapping[str, Any] | None,
    profile_id: str,
    events: Sequence[Event],
    *,
    now: datetime,
    half_life_days: float,
    commit: str,
) -> dict[str, Any] | None:
    """The profile after `events` (in timestamp order), or None if `commit` is applied."""
    doc = copy.deepcopy(dict(profile)) if profile is not None else new_profile(profile_id, now)
    commits: list[str] = list(doc.get("commits") or ())
    if commit in commits:
        return None
    doc["decay"] = {"halfLifeDays": half_life_days}
    for event in sorted(events, key=lambda e: e.timestamp):
        _apply_one(doc, event, half_life_days)
    doc["commits"] = [*commits, commit]
    bound(doc, now, half_life_days)
    doc["updatedAt"] = now
    doc["version"] = int(doc.get("version", 0)) + 1
    return doc


def _top(scores: Mapping[str, Any], limit: int, now: datetime, half_life: float) -> dict[str, Any]:
    """The `limit` entries with the highest decayed score (the most recent first among ties)."""
    if len(scores) <= limit:
        return dict(scores)

    def rank(item: tuple[str, Any]) -> tuple[float, datetime, str]:
        key, value = item
        stamp = _stamp(value) or datetime.min.replace(tzinfo=UTC)
        return decayed(value, now, half_life), stamp, key

    return dict(sorted(scores.items(), key=rank, reverse=True)[:limit])


def bound(doc: dict[str, Any], now: datetime, half_life: float) -> None:
    """Cut every growing map and list of `doc` to its bound, in place (see `MAX_PROFILE_BYTES`).

    Also shrinks profiles written before the bounds existed, on their next update.
    """
    for key, limit in (("interests", TOP_INTERESTS), ("tags", TOP_TAGS)):
        scores = doc.get(key)
        if isinstance(scores, Mapping):
            doc[key] = _top(scores, limit, now, half_life)
    if isinstance(doc.get("recentlyViewed"), list):
        doc["recentlyViewed"] = doc["recentlyViewed"][:RECENTLY_VIEWED]
    if isinstance(doc.get("purchased"), list):
        doc["purchased"] = doc["purchased"][:PURCHASED]
    cart = doc.get("cart")
    if isinstance(cart, dict) and len(cart.get("lines") or ()) > MAX_CART_LINES:
        cart["lines"] = list(cart["lines"])[-MAX_CART_LINES:]
        _cart_totals(cart)
    for key, limit in (("commits", RECENT_COMMITS), ("aliases", MAX_ALIASES)):
        if isinstance(doc.get(key), list):
            doc[key] = doc[key][-limit:]


def _earliest(*moments: Any) -> datetime | None:
    found = [m for m in (_aware(x) for x in moments) if m is not None]
    return min(found) if found else None


def _latest(*moments: Any) -> datetime | None:
    found = [m for m in (_aware(x) for x in moments) if m is not None]
    return max(found) if found else None


def _merge_scores(
    a: Mapping[str, Any], b: Mapping[str, Any], half_life: float, now: datetime
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in {*a, *b}:
        stamps = [s for s in (_stamp(a.get(key)), _stamp(b.get(key))) if s is not None]
        if not stamps:  # plain (undecayed) numbers, as seeded demo profiles hold
            out[key] = decayed(a.get(key), now, half_life) + decayed(b.get(key), now, half_life)
            continue
        at = max(stamps)
        out[key] = {
            "v": decayed(a.get(key), at, half_life) + decayed(b.get(key), at, half_life),
            "t": at,
        }
    return out


def _stamp(value: Any) -> datetime | None:
    return _aware(value.get("t")) if isinstance(value, Mapping) else None


def _merge_lists(items: Iterable[Mapping[str, Any]], key: str, limit: int) -> list[dict[str, Any]]:
    ordered = sorted(
        items, key=lambda i: _aware(i.get("at")) or datetime.min.replace(tzinfo=UTC), reverse=True
    )
    out: list[dict[str, Any]] = []
    seen: set[Any] = set()
    for item in ordered:
        if item.get(key) in seen:
            continue
        seen.add(item.get(key))
        out.append(dict(item))
    return out[:limit]


def merge_profiles(
    target: Mapping[str, Any], source: Mapping[str, Any], *, now: datetime
) -> dict[str, Any]:
    """`target` with `source` folded in: counts summed, interests decayed and combined."""
    doc = copy.deepcopy(dict(target))
    half_life = float((target.get("decay") or source.get("decay") or {}).get("halfLifeDays", 30.0))
    counts = dict(doc.get("counts") or {})
    for key, value in (source.get("counts") or {}).items():
        counts[key] = counts.get(key, 0) + value
    doc["counts"] = counts
    t_traits = dict(doc.get("traits") or {})
    s_traits = dict(source.get("traits") or {})
    traits = {**s_traits, **t_traits}
    for key in _SUMMED_TRAITS:
        if key in t_traits or key in s_traits:
            traits[key] = t_traits.get(key, 0) + s_traits.get(key, 0)
    if "ltv" in traits:
        traits["ltv"] = round(float(traits["ltv"]), 2)
    for key in ("firstSeen",):
        traits[key] = _earliest(t_traits.get(key), s_traits.get(key))
    for key in ("lastSeen", "lastOrderAt"):
        latest = _latest(t_traits.get(key), s_traits.get(key))
        if latest is not None:
            traits[key] = latest
    newer = (
        s_traits
        if (_aware(s_traits.get("lastSeen")) or datetime.min.replace(tzinfo=UTC))
        > (_aware(t_traits.get("lastSeen")) or datetime.min.replace(tzinfo=UTC))
        else t_traits
    )
    for key in ("device", "country", "lastPage", "sessionStartedAt"):
        if key in newer:
            traits[key] = newer[key]
    doc["traits"] = {k: v for k, v in traits.items() if v is not None}
    for key in ("interests", "tags"):
        if key in doc or key in source:
            doc[key] = _merge_scores(doc.get(key) or {}, source.get(key) or {}, half_life, now)
    viewed = [*(doc.get("recentlyViewed") or ()), *(source.get("recentlyViewed") or ())]
    if viewed:
        doc["recentlyViewed"] = _merge_lists(viewed, "productId", RECENTLY_VIEWED)
    bought = [*(doc.get("purchased") or ()), *(source.get("purchased") or ())]
    if bought:
        doc["purchased"] = _merge_lists(bought, "productId", PURCHASED)
    t_cart, s_cart = _cart(doc), _cart(dict(source))
    if s_cart["lines"]:
        lines = {line.get("productId"): dict(line) for line in t_cart["lines"]}
        for line in s_cart["lines"]:
            mine = lines.get(line.get("productId"))
            if mine is None:
                lines[line.get("productId")] = dict(line)
            else:
                mine["quantity"] += line["quantity"]
        t_cart["lines"] = list(lines.values())[-MAX_CART_LINES:]
        t_cart["updatedAt"] = _latest(t_cart.get("updatedAt"), s_cart.get("updatedAt"))
        _cart_totals(t_cart)
        doc["cart"] = t_cart
    elif "cart" not in doc and "cart" in source:
        doc["cart"] = dict(source["cart"])
    t_consent, s_consent = target.get("consent"), source.get("consent")
    if s_consent and (
        not t_consent or (_aware(s_consent.get("at")) or now) > (_aware(t_consent.get("at")) or now)
    ):
        doc["consent"] = dict(s_consent)
    commits = [*(doc.get("commits") or ()), *(source.get("commits") or ())]
    doc["commits"] = list(dict.fromkeys(commits))
    aliases = [*(doc.get("aliases") or ()), *(source.get("aliases") or ()), source["_id"]]
    doc["aliases"] = list(dict.fromkeys(aliases))
    if not doc.get("userId") and source.get("userId"):
        doc["userId"] = source["userId"]
    # Experiment assignments of both identities follow the person (the target's win).
    sticky = {**(source.get("stickyBuckets") or {}), **(doc.get("stickyBuckets") or {})}
    if sticky:
        doc["stickyBuckets"] = sticky
    bound(doc, now, half_life)
    doc["updatedAt"] = now
    doc["version"] = int(doc.get("version", 0)) + 1
    return doc
